// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: any bytes as a capture file. The reader and the
 * reassembly and exchanges behind `podtap read` must never crash, hang or read out of
 * bounds, whatever the file says; nor must the stream reader behind
 * `podtap export -f jsonl` and `-f pcapng`, cutting as often as it can.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/mman.h>
#include "capfile/capfile.h"
#include "stream/conns.h"
#include "proto/exch.h"
#include "export/export.h"
#include "feed_by_time.h"

static int write_x(void *ctx, const struct pt_capture *cap,
		   const struct pt_xconn *xc, struct pt_exchange *x)
{
	pt_x_json(ctx, cap, xc, x, true);
	return 0;
}

/* The bytes as a file, read as a stream: exchanges (jsonl), or the
 * bytes themselves (pcapng). */
static void streamed(const uint8_t *data, size_t size, bool raw)
{
	const struct pt_xsink sink = { .x = write_x };
	struct pt_export_counts cnt = {};
	struct pt_xsink s = sink;
	struct pt_capture cap;
	const char *paths[1];
	char path[64], *out = NULL;
	size_t outn = 0;
	int err, fd = memfd_create("capture", 0);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		if (fd >= 0)
			close(fd);
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	paths[0] = path;
	s.ctx = open_memstream(&out, &outn);
	pt_stream_step = 64;
	pt_stream_every = 4;
	pt_held_max = 4096;
	pt_assemble_max = 64u << 20;
	if (raw)
		pt_exporter_pcapng.raw_begin(&s, s.ctx, &cnt);
	err = pt_capture_stream(&cap, paths, 1, &s);
	if (raw)
		pt_exporter_pcapng.raw_end(&s, &cap, err != 0);
	if (!err)
		pt_capture_free(&cap);
	fclose(s.ctx);
	free(out);
	close(fd);
}

static int collect(void *ctx, const struct pt_rec_hdr *h)
{
	return pt_conns_add(ctx, h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pt_capr_info info;
	struct pt_conns c;
	size_t i;
	int d;

	pt_conns_init(&c);
	pt_capr_read_mem(data, size, collect, &c, &info);
	for (i = 0; i < c.n; i++) {
		for (d = 0; d < 2; d++) {
			struct pt_assembled a;

			/* streams claiming terabytes are refused, not built */
			if (pt_stream_end(c.v[i], d) > (64u << 20))
				continue;
			if (!pt_stream_assemble(c.v[i], d, &a))
				pt_assembled_free(&a);
		}
		/* and the exchanges cut from them */
		if (pt_stream_end(c.v[i], 0) <= (64u << 20) &&
		    pt_stream_end(c.v[i], 1) <= (64u << 20)) {
			struct pt_xconn xc;
			char why[160];
			size_t early;

			pt_xconn_build(c.v[i], &xc);
			pt_xconn_free(&xc);
			/* fed as a live stream, the same exchanges */
			if (feed_by_time_check(c.v[i], why, sizeof(why), &early)) {
				fprintf(stderr, "fed by time: %s\n", why);
				abort();
			}
		}
	}
	pt_conns_free(&c);
	streamed(data, size, false);
	streamed(data, size, true);
	return 0;
}
