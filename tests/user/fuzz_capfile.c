// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: any bytes as a capture file. The reader and the
 * reassembly and exchanges behind `podtap read` must never crash, hang or read out of
 * bounds, whatever the file says.
 */
#include <stdint.h>
#include <stdlib.h>
#include "capfile/capfile.h"
#include "stream/conns.h"
#include "proto/exch.h"
#include "feed_by_time.h"

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
	return 0;
}
