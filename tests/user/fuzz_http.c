// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: any bytes as HTTP/1.x, first parsed as back-to-back
 * requests and responses, then as the two streams of a connection cut into
 * records of fuzzer-chosen sizes with gaps, turned into exchanges and
 * written as JSON. Nothing may crash, leak, hang or read out of bounds;
 * and the same connection fed by time, as a live stream, must give the
 * same exchanges as read whole.
 *
 * Input: byte 0 flags (bit 0 server role, bit 1 FIN, bit 2 HEAD, bit 3
 * drop some records), byte 1 where the response stream starts (in 1/256ths
 * of the rest), then the bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "stream/conns.h"
#include "proto/exch.h"
#include "export/export.h"
#include "proto/http1.h"
#include "feed_by_time.h"

static FILE *devnull;

static void parse_all(const uint8_t *p, size_t n, bool request, bool eof,
		      const char *method)
{
	char err[160];

	while (n) {
		struct pt_http_msg m;
		uint8_t *out;
		size_t outlen;

		if (pt_http_parse(p, n, request, method, eof, &m, err,
				  sizeof(err)))
			return;
		if (m.len > n)
			abort();	/* never more than it was given */
		if (pt_http_decode_body(&m, &out, &outlen, err, sizeof(err)) == 1)
			free(out);
		pt_http_has_token(&m, "Connection", "close");
		p += m.len;
		n -= m.len;
		if (!m.len || !m.complete) {
			pt_http_msg_free(&m);
			return;
		}
		pt_http_msg_free(&m);
	}
}

static void add_stream(struct pt_conns *c, int dir, const uint8_t *p,
		       size_t n, uint8_t flags)
{
	uint8_t buf[sizeof(struct pt_data) + 64 + 8];
	struct pt_data *d = (void *)buf;
	size_t off = 0, k = 0;

	while (off < n) {
		size_t len = 1 + (p[off] % 64);

		if (len > n - off)
			len = n - off;
		k++;
		if (!((flags & 8) && k % 7 == 3)) {
			memset(buf, 0, sizeof(buf));
			d->h.type = PT_REC_DATA;
			d->h.size = sizeof(*d) + ((len + 7) & ~7u);
			d->h.ts_ns = 1000 + k * 2 + dir;
			d->h.conn_id = 1;
			d->h.flags = (flags & 2) && off + len == n ? PT_F_FIN : 0;
			d->offset = off;
			d->len = len;
			d->cap_len = len;
			d->dir = dir;
			memcpy(d->payload, p + off, len);
			pt_conns_add(c, &d->h);
		}
		off += len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pt_conn_open o = {};
	struct pt_capture cap = {};
	struct pt_conns c;
	struct pt_xconn xc;
	size_t split, i, early;
	char why[160];
	uint8_t flags;

	if (size < 2)
		return 0;
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	flags = data[0];
	split = (size - 2) * data[1] / 256;
	data += 2;
	size -= 2;
	parse_all(data, size, true, flags & 2, NULL);
	parse_all(data, size, false, flags & 2, flags & 4 ? "HEAD" : "GET");

	pt_conns_init(&c);
	o.h.type = PT_REC_CONN_OPEN;
	o.h.size = sizeof(o);
	o.h.conn_id = 1;
	o.role = flags & 1 ? PT_ROLE_SERVER : PT_ROLE_CLIENT;
	o.t.family = 2;
	pt_conns_add(&c, &o.h);
	add_stream(&c, flags & 1 ? PT_DIR_RX : PT_DIR_TX, data, split, flags);
	add_stream(&c, flags & 1 ? PT_DIR_TX : PT_DIR_RX, data + split,
		   size - split, flags);
	pt_xconn_build(c.v[0], &xc);
	for (i = 0; i < xc.nx; i++)
		pt_x_json(devnull, &cap, &xc, &xc.x[i], true);
	pt_xconn_free(&xc);
	if (feed_by_time_check(c.v[0], why, sizeof(why), &early)) {
		fprintf(stderr, "fed by time: %s\n", why);
		abort();
	}
	pt_conns_free(&c);
	return 0;
}
