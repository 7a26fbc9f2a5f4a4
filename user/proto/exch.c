// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * From two reassembled streams to exchanges: who is the client, which
 * protocol speaks (the first in pt_protos[] to say so), then that
 * protocol's cuts. A connection read whole is fed once, final; a stream
 * is fed as it grows, and every decision waits until the bytes it reads
 * can no longer change, so both give the same exchanges.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/common.h"
#include "proto/proto.h"

/* Index of the first gap that ends after off; ngaps if none (gaps are
 * sorted and disjoint). */
static size_t gap_after(const struct pt_assembled *a, uint64_t off)
{
	size_t lo = 0, hi = a->ngaps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a->gaps[mid].end > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

uint64_t pt_run_end(const struct pt_assembled *a, uint64_t off)
{
	size_t i = gap_after(a, off);

	if (i == a->ngaps)
		return a->len;
	return a->gaps[i].start > off ? a->gaps[i].start : off;
}

bool pt_in_gap(const struct pt_assembled *a, uint64_t off, uint64_t *end)
{
	size_t i = gap_after(a, off);

	if (i == a->ngaps || a->gaps[i].start > off)
		return false;
	*end = a->gaps[i].end;
	return true;
}

void pt_span_set(struct pt_span *s, const struct pt_assembled *a, int dir,
		 uint64_t off, uint64_t end)
{
	s->dir = dir;
	s->off = off;
	s->end = end;
	s->ts = pt_assembled_ts(a, off);
	s->ts_end = end > off ? pt_assembled_ts(a, end - 1) : s->ts;
}

struct pt_exchange *pt_x_new(struct pt_xconn *xc, enum pt_xkind kind)
{
	struct pt_exchange *x;

	xc->x = pt_xrealloc(xc->x, xc->nx + 1, sizeof(*xc->x));
	x = &xc->x[xc->nx++];
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	x->proto = xc->p;
	return x;
}

void pt_x_incomplete(struct pt_exchange *x, const char *why)
{
	if (!x->incomplete)
		snprintf(x->note, sizeof(x->note), "%s", why);
	x->incomplete = true;
}

void pt_x_release(struct pt_exchange *x)
{
	pt_http_msg_free(&x->req);
	pt_http_msg_free(&x->resp);
	free(x->turns);
	x->turns = NULL;
	x->nturns = 0;
}

const char *pt_xproto_name(enum pt_xproto p)
{
	static const char *const n[] = { "none", "http1", "tls", "http2",
					 "other" };

	return (unsigned)p < ARRAY_SIZE(n) ? n[p] : "other";
}

const char *pt_xproto_words(enum pt_xproto p)
{
	static const char *const n[] = { "no payload", "HTTP/1",
					 "TLS ciphertext", "HTTP/2",
					 "an unknown protocol" };

	return (unsigned)p < ARRAY_SIZE(n) ? n[p] : n[PT_XP_OTHER];
}

/*
 * Can more bytes still change what pt_http_looks_like_start says of a's
 * start? Not once its first line is whole (it reads no further), nor
 * when the first byte cannot begin a method.
 */
static bool line_known(const struct pt_assembled *a)
{
	return a->len >= PT_HTTP_HEAD_MAX ||
	       (a->len && (a->buf[0] < 'A' || a->buf[0] > 'Z')) ||
	       memchr(a->buf, '\n', a->len);
}

/*
 * A role the kernel did not see (a connection older than the capture,
 * guessed from ports) is checked against the bytes: the side that sends
 * a request line first is the client. Waits until both first lines are
 * known.
 */
static bool decide_role(struct pt_xconn *xc, bool final)
{
	const struct pt_conn *conn = xc->conn;
	const struct pt_assembled *rx = &xc->a[PT_DIR_RX],
				  *tx = &xc->a[PT_DIR_TX];

	xc->inbound = conn->open.role == PT_ROLE_SERVER;
	xc->req_dir = xc->inbound ? PT_DIR_RX : PT_DIR_TX;
	if (conn->open.role == PT_ROLE_UNKNOWN ||
	    (conn->open.h.flags & PT_F_ROLE_GUESSED)) {
		if (!final && !((line_known(rx) || xc->ended[PT_DIR_RX]) &&
				(line_known(tx) || xc->ended[PT_DIR_TX])))
			return false;
		if (pt_http_looks_like_start(rx->buf, rx->len, true) &&
		    !pt_http_looks_like_start(tx->buf, tx->len, true))
			xc->inbound = true;
		else if (pt_http_looks_like_start(tx->buf, tx->len, true))
			xc->inbound = false;
		xc->req_dir = xc->inbound ? PT_DIR_RX : PT_DIR_TX;
	}
	xc->role_known = true;
	return true;
}

/* What a connection speaks, once it is final. */
static enum pt_xproto final_label(const struct pt_xconn *xc)
{
	size_t i;

	if (xc->http)
		return PT_XP_HTTP1;
	if (!xc->a[0].len && !xc->a[1].len)
		return PT_XP_NONE;
	/* an HTTP/1 connection with no request parsed is what the rest
	 * of the table says it is */
	for (i = 0; pt_protos[i]; i++)
		if (pt_protos[i] != &pt_proto_http1 &&
		    pt_protos[i]->detect(xc, true) == PT_DETECT_YES)
			return pt_protos[i]->label;
	return PT_XP_OTHER;
}

void pt_xconn_begin(struct pt_xconn *xc, const struct pt_conn *conn)
{
	memset(xc, 0, sizeof(*xc));
	xc->conn = conn;
	xc->assembled = true;
	xc->inbound = conn->open.role == PT_ROLE_SERVER;
	xc->req_dir = xc->inbound ? PT_DIR_RX : PT_DIR_TX;
}

/* When the last plaintext byte of a direction came, 0 if none did. */
static uint64_t last_plain(const struct pt_assembled *a)
{
	return a->len ? pt_assembled_ts(a, a->len - 1) : 0;
}

/*
 * More application data on the wire than plaintext from the library, in
 * one direction, beyond what records add (an IV, a tag or MAC, padding:
 * 96 bytes a record at most for the usual suites) and the encrypted
 * handshake of TLS 1.3 (certificates, a client's too, tickets: 16 KiB):
 * calls were made before the library was hooked. Received records that
 * ended after the last plaintext the library gave may not have been read
 * yet, and are not counted (sent ones reach the wire after their call).
 * Read from the ciphertext's record headers, up to its first gap.
 */
static bool plaintext_missing(const struct pt_xconn *xc, int dir)
{
	const struct pt_assembled *pa = &xc->a[dir];
	uint64_t off = 0, app = 0, recs = 0, end, last = UINT64_MAX;
	struct pt_assembled w;
	bool missing;

	if (dir == PT_DIR_RX) {
		last = last_plain(pa);
		if (!last)
			last = last_plain(&xc->a[PT_DIR_TX]);
		if (!last)
			return false;
	}
	if (pt_stream_assemble_layer(xc->conn, dir, false, &w))
		return false;
	end = w.ngaps ? w.gaps[0].start : w.len;
	while (off + 5 <= end) {
		const uint8_t *h = w.buf + off;
		uint64_t len = (uint64_t)h[3] << 8 | h[4];

		if (h[0] < 20 || h[0] > 23 || h[1] != 3 ||
		    off + 5 + len > end ||
		    pt_assembled_ts(&w, off + 5 + len - 1) > last)
			break;	/* not a TLS record, cut, or not read yet */
		if (h[0] == 23) {
			app += len;
			recs++;
		}
		off += 5 + len;
	}
	missing = app > pa->len + recs * 96 + (16 << 10);
	pt_assembled_free(&w);
	return missing;
}

void pt_xconn_feed(struct pt_xconn *xc, bool final)
{
	size_t i;

	if (!xc->assembled)
		return;
	if (!xc->role_known && !decide_role(xc, final))
		return;
	for (i = 0; !xc->p && pt_protos[i]; i++) {
		enum pt_detect d = pt_protos[i]->detect(xc, final);

		if (d == PT_DETECT_WAIT)
			return;	/* an earlier one may yet say yes */
		if (d == PT_DETECT_YES)
			xc->p = pt_protos[i];
	}
	if (!xc->p)
		xc->p = &pt_proto_raw;
	xc->p->feed(xc, final);
	if (final)
		xc->proto = xc->base[0] || xc->base[1] ? pt_xconn_label(xc) :
			    final_label(xc);
	/*
	 * Plaintext of a TLS session older than the recording starts where
	 * podtap first saw a call: what came before is unknown, so turns
	 * that cannot tell where a message starts are not taken as whole.
	 * So with a library hooked after the session had begun (a program
	 * new to podtap is hooked at the next scan).
	 */
	if (!xc->tls || !xc->nx || xc->first_checked ||
	    (!final && !xc->streamed))
		return;
	xc->first_checked = true;
	if (pt_conn_pseudo(xc->conn) ||
	    (xc->conn->open.h.flags & PT_F_PREEXISTING)) {
		if (xc->x[0].kind == PT_X_RAW)
			pt_x_incomplete(&xc->x[0], "the TLS session began before the recording: plaintext before this was not captured");
	} else if (xc->conn->tls_hooked_late ||	/* known, whatever it parsed as */
		   (xc->x[0].kind == PT_X_RAW &&
		    (plaintext_missing(xc, PT_DIR_RX) ||
		     plaintext_missing(xc, PT_DIR_TX)))) {
		pt_x_incomplete(&xc->x[0], "its TLS library was hooked after the session began: plaintext before this was not captured");
	}
}

/* The sender finished: a FIN, or a close that was not a reset (a reset
 * proves nothing about where a close-delimited body ends). */
bool pt_conn_ended(const struct pt_conn *c, int dir)
{
	return c->s[dir].fin ||
	       (c->has_close && !(c->close_flags & PT_F_RST));
}

void pt_xconn_build(const struct pt_conn *conn, struct pt_xconn *xc)
{
	int d;

	pt_xconn_begin(xc, conn);
	xc->owns_a = true;
	/* a TLS connection's exchanges are its plaintext's */
	xc->tls = conn->has_tls;
	for (d = 0; d < 2; d++) {
		if (pt_stream_assemble_layer(conn, d, xc->tls, &xc->a[d])) {
			snprintf(xc->error, sizeof(xc->error),
				 "%s stream of %llu bytes is too large to assemble",
				 d == PT_DIR_TX ? "tx" : "rx",
				 (unsigned long long)pt_stream_end(conn, d));
			xc->assembled = false;
			return;
		}
		xc->ended[d] = pt_conn_ended(conn, d);
	}
	pt_xconn_feed(xc, true);
}

void pt_xconn_decide(struct pt_xconn *xc)
{
	size_t i;

	if (xc->p || !xc->assembled)
		return;
	if (!xc->role_known)
		decide_role(xc, true);
	for (i = 0; !xc->p && pt_protos[i]; i++)
		if (pt_protos[i]->detect(xc, true) == PT_DETECT_YES)
			xc->p = pt_protos[i];
	if (!xc->p)
		xc->p = &pt_proto_raw;
}

enum pt_xproto pt_xconn_label(const struct pt_xconn *xc)
{
	if (xc->http)
		return PT_XP_HTTP1;
	return xc->p ? xc->p->label : PT_XP_NONE;
}

void pt_xconn_free(struct pt_xconn *xc)
{
	size_t i;

	for (i = 0; i < xc->nx; i++)
		pt_x_release(&xc->x[i]);
	free(xc->x);
	if (xc->p && xc->p->release)
		xc->p->release(xc);
	if (xc->owns_a) {
		pt_assembled_free(&xc->a[0]);
		pt_assembled_free(&xc->a[1]);
	}
	memset(xc, 0, sizeof(*xc));
}
