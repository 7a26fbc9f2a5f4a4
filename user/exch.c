// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * From two reassembled streams to exchanges. HTTP/1.x is parsed request by
 * request: request k, then its response (after any 1xx), so a 101 or a
 * CONNECT tunnel turns the rest of both streams raw at the right byte. A
 * message that runs into bytes not captured is kept as incomplete and the
 * parser starts again at the next message start after the gap; nothing is
 * stitched across a gap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "exch.h"

/* How far into a stream the first request line is looked for. */
#define HTTP_PROBE_LEN	(64u << 10)

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

/* Where the captured run containing off ends: the next gap, or the end. */
static uint64_t run_end(const struct pt_assembled *a, uint64_t off)
{
	size_t i = gap_after(a, off);

	if (i == a->ngaps)
		return a->len;
	return a->gaps[i].start > off ? a->gaps[i].start : off;
}

static bool in_gap(const struct pt_assembled *a, uint64_t off, uint64_t *end)
{
	size_t i = gap_after(a, off);

	if (i == a->ngaps || a->gaps[i].start > off)
		return false;
	*end = a->gaps[i].end;
	return true;
}

/*
 * The next offset in [off, limit), at a line start, where a message seems
 * to begin; limit if there is none. The first byte after a gap counts as a
 * line start.
 */
static uint64_t next_start_within(const struct pt_assembled *a, uint64_t off,
				  bool request, uint64_t limit)
{
	uint64_t gend, end;
	bool fresh;

	if (limit > a->len)
		limit = a->len;
	while (off < limit) {
		if (in_gap(a, off, &gend)) {
			off = gend;
			continue;
		}
		end = run_end(a, off);
		fresh = off == 0 || in_gap(a, off - 1, &gend);
		for (; off < end && off < limit; off++, fresh = false)
			if ((fresh || a->buf[off - 1] == '\n') &&
			    pt_http_looks_like_start(a->buf + off, end - off,
						     request))
				return off;
	}
	return limit;
}

static uint64_t next_start(const struct pt_assembled *a, uint64_t off,
			   bool request)
{
	return next_start_within(a, off, request, a->len);
}

/* The sender finished: a FIN, or a close that was not a reset (a reset
 * proves nothing about where a close-delimited body ends). */
static bool stream_ended(const struct pt_conn *c, int dir)
{
	return c->s[dir].fin ||
	       (c->has_close && !(c->close_flags & PT_F_RST));
}

static void span_set(struct pt_span *s, const struct pt_assembled *a, int dir,
		     uint64_t off, uint64_t end)
{
	s->dir = dir;
	s->off = off;
	s->end = end;
	s->ts = pt_assembled_ts(a, off);
	s->ts_end = end > off ? pt_assembled_ts(a, end - 1) : s->ts;
}

static struct pt_exchange *new_x(struct pt_xconn *xc, enum pt_xkind kind)
{
	struct pt_exchange *x;

	xc->x = pt_xrealloc(xc->x, xc->nx + 1, sizeof(*xc->x));
	x = &xc->x[xc->nx++];
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	return x;
}

static void set_incomplete(struct pt_exchange *x, const char *why)
{
	if (!x->incomplete)
		snprintf(x->note, sizeof(x->note), "%s", why);
	x->incomplete = true;
}

enum msg_result { MSG_OK, MSG_CUT, MSG_BAD, MSG_NONE };

/*
 * One message at *pos of direction dir. MSG_CUT: it ran into a gap or the
 * end of what was captured (kept, *pos moved past it). MSG_NONE: no bytes.
 */
static enum msg_result one_msg(struct pt_xconn *xc, int dir, uint64_t *pos,
			       bool request, const char *req_method,
			       struct pt_http_msg *m, struct pt_span *span)
{
	const struct pt_assembled *a = &xc->a[dir];
	uint64_t end, gend, start;
	char err[128];
	bool eof;

	if (*pos < a->len && in_gap(a, *pos, &gend))
		*pos = next_start(a, gend, request);
	if (*pos >= a->len)
		return MSG_NONE;
	end = run_end(a, *pos);
	/* RFC 9112 2.2: empty lines before a request are ignored; after the
	 * last one they are no request at all */
	if (request) {
		uint64_t p = *pos;

		while (p < end && (a->buf[p] == '\n' ||
				   (a->buf[p] == '\r' && p + 1 < end &&
				    a->buf[p + 1] == '\n')))
			p += a->buf[p] == '\r' ? 2 : 1;
		if (p == a->len) {
			*pos = p;
			return MSG_NONE;
		}
	}
	eof = end == a->len && stream_ended(xc->conn, dir);
	if (pt_http_parse(a->buf + *pos, end - *pos, request, req_method, eof,
			  m, err, sizeof(err))) {
		snprintf(xc->error, sizeof(xc->error), "%s %s at offset %llu: %s",
			 dir == PT_DIR_TX ? "tx" : "rx",
			 request ? "request" : "response",
			 (unsigned long long)*pos, err);
		return MSG_BAD;
	}
	start = *pos;
	span_set(span, a, dir, *pos, *pos + m->len);
	*pos += m->len;
	if (m->complete)
		return MSG_OK;
	/*
	 * Cut: carry on at the next message after the gap. A known length
	 * says where that is; otherwise look for a start line (past body
	 * bytes that might look like one, when the length is known).
	 */
	if (m->head_len && m->framing == PT_FRAME_LENGTH &&
	    m->content_length <= a->len - start - m->head_len)
		*pos = start + m->head_len + m->content_length;
	if (*pos < a->len && in_gap(a, *pos, &gend))
		*pos = next_start(a, gend, request);
	else if (*pos < a->len && *pos == start + m->len)
		*pos = next_start(a, *pos, request);
	return MSG_CUT;
}

/* When the message at pos (the next request) was first seen; 0 if that is
 * not known (nothing there, or bytes not captured). */
static uint64_t next_start_ts(const struct pt_assembled *a, uint64_t pos)
{
	uint64_t gend;

	if (pos >= a->len || in_gap(a, pos, &gend))
		return 0;
	return pt_assembled_ts(a, pos);
}

/*
 * Response of x, after any 1xx: only a final response (or a 101, or one
 * cut short) becomes x->resp. Returns false when parsing must stop.
 */
static bool response(struct pt_xconn *xc, struct pt_exchange *x,
		     uint64_t *pos, const char *method, uint64_t next_req_ts)
{
	int rdir = !xc->req_dir;
	struct pt_http_msg m;
	struct pt_span sp, first = { 0 };
	enum msg_result r;
	bool any = false;
	uint64_t at = *pos, gend;

	/*
	 * The response was to start in bytes not captured: how many
	 * responses the gap swallowed is unknown. One that first shows after
	 * the next request was sent answers that one (or a later one), not
	 * this: this one's answer was lost.
	 */
	if (next_req_ts && at < xc->a[rdir].len &&
	    in_gap(&xc->a[rdir], at, &gend)) {
		r = one_msg(xc, rdir, &at, false, method, &m, &sp);
		if (r == MSG_OK || r == MSG_CUT)
			pt_http_msg_free(&m);
		if ((r == MSG_OK || r == MSG_CUT) && sp.ts > next_req_ts) {
			*pos = sp.off;
			set_incomplete(x, "response not captured");
			return true;
		}
	}
	for (;;) {
		r = one_msg(xc, rdir, pos, false, method, &m, &sp);
		if (r == MSG_NONE) {
			if (x->has_req || any)
				set_incomplete(x, any ?
					       "no final response captured" :
					       "no response captured");
			return true;
		}
		if (r == MSG_BAD) {
			if (x->has_req || any)
				set_incomplete(x, "response malformed");
			return false;
		}
		if (!any)
			first = sp;
		any = true;
		if (r == MSG_CUT || m.status >= 200 || m.status == 101) {
			x->resp = m;
			x->resp_span = first;
			x->resp_span.end = sp.end;
			x->resp_span.ts_end = sp.ts_end;
			x->has_resp = true;
			if (r == MSG_CUT)
				set_incomplete(x, "response runs into bytes not captured");
			return true;
		}
		if (x->ninterim < PT_INTERIM_MAX)
			x->interim[x->ninterim++] = m.status;
		pt_http_msg_free(&m);
	}
}

/* Ordered raw turns from pos[] on in both directions, then grouped. */
static void raw_turns(struct pt_xconn *xc, const uint64_t pos[2]);

static void parse_http(struct pt_xconn *xc)
{
	int qdir = xc->req_dir;
	uint64_t pos[2], gend;
	struct pt_exchange *x;
	enum msg_result r;
	bool tunnel = false;

	pos[qdir] = next_start(&xc->a[qdir], 0, true);
	/* a response stream that begins in a gap is skipped by response() */
	pos[!qdir] = in_gap(&xc->a[!qdir], 0, &gend) ? 0 :
		     next_start(&xc->a[!qdir], 0, false);
	for (;;) {
		struct pt_http_msg req;
		struct pt_span sp;
		bool go_on;

		r = one_msg(xc, qdir, &pos[qdir], true, NULL, &req, &sp);
		if (r == MSG_BAD)
			break;
		if (r == MSG_NONE) {
			/* answers without a request: server first, or lost */
			while (pos[!qdir] < xc->a[!qdir].len) {
				bool go_on;

				x = new_x(xc, PT_X_HTTP);
				go_on = response(xc, x, &pos[!qdir], NULL, 0);
				if (!x->has_resp) {
					xc->nx--;
					break;
				}
				x->incomplete = false;
				set_incomplete(x, "request not captured");
				if (!go_on)
					break;
			}
			break;
		}
		xc->http = true;
		x = new_x(xc, PT_X_HTTP);
		x->req = req;
		x->req_span = sp;
		x->has_req = true;
		if (r == MSG_CUT)
			set_incomplete(x, "request runs into bytes not captured");
		go_on = response(xc, x, &pos[!qdir], x->req.method,
				 next_start_ts(&xc->a[qdir], pos[qdir]));
		x->ambiguous = x->req.ambiguous ? x->req.ambiguous :
			       x->has_resp ? x->resp.ambiguous : NULL;
		if (!go_on)
			break;
		if (x->has_resp && x->resp.framing == PT_FRAME_TUNNEL) {
			tunnel = true;
			break;
		}
	}
	if (xc->error[0] || tunnel)
		raw_turns(xc, pos);
}

/* Captured runs of one direction from its marks, clipped to [from, len). */
struct run {
	int dir;
	uint64_t off, end, ts, ts_end;
};

static size_t runs_of(const struct pt_assembled *a, int dir, uint64_t from,
		      struct run **v, size_t n)
{
	size_t i;

	for (i = 0; i < a->nmarks; i++) {
		uint64_t off = a->marks[i].off, end;

		end = i + 1 < a->nmarks ? a->marks[i + 1].off : a->len;
		if (run_end(a, off) < end)
			end = run_end(a, off);
		if (off < from)
			off = from;
		if (off >= end)
			continue;
		*v = pt_xrealloc(*v, n + 1, sizeof(**v));
		(*v)[n] = (struct run){ dir, off, end, a->marks[i].ts,
					a->marks[i].ts };
		n++;
	}
	return n;
}

static int cmp_run(const void *pa, const void *pb)
{
	const struct run *a = pa, *b = pb;

	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	if (a->dir != b->dir)
		return a->dir < b->dir ? -1 : 1;
	return a->off < b->off ? -1 : a->off > b->off;
}

static void raw_turns(struct pt_xconn *xc, const uint64_t pos[2])
{
	struct run *v = NULL;
	struct pt_exchange *x = NULL;
	size_t n = 0, i, k;
	int d;

	for (d = 0; d < 2; d++)
		n = runs_of(&xc->a[d], d, pos[d], &v, n);
	qsort(v, n, sizeof(*v), cmp_run);
	/* merge runs that continue the previous one of the same side */
	for (i = 0, k = 0; i < n; i++) {
		if (k && v[k - 1].dir == v[i].dir && v[k - 1].end == v[i].off) {
			v[k - 1].end = v[i].end;
			v[k - 1].ts_end = v[i].ts;
			continue;
		}
		v[k++] = v[i];
	}
	for (i = 0; i < k; i++) {
		struct pt_span *t;
		bool client = v[i].dir == xc->req_dir;

		/* a new exchange at each client turn after the server spoke */
		if (!x || (client && x->turns[x->nturns - 1].dir != xc->req_dir))
			x = new_x(xc, PT_X_RAW);
		x->turns = pt_xrealloc(x->turns, x->nturns + 1,
				       sizeof(*x->turns));
		t = &x->turns[x->nturns++];
		t->dir = v[i].dir;
		t->off = v[i].off;
		t->end = v[i].end;
		t->ts = v[i].ts;
		t->ts_end = v[i].ts_end;
		if (t->end < xc->a[t->dir].len &&
		    run_end(&xc->a[t->dir], t->off) == t->end)
			set_incomplete(x, "followed by bytes not captured");
	}
	free(v);
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

/* A TLS record header at the start of a stream: type, version 3.x. */
static bool tls_start(const struct pt_assembled *a)
{
	const uint8_t *b = a->buf;

	return a->len >= 5 && (!a->ngaps || a->gaps[0].start >= 5) &&
	       b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 3 && b[2] <= 4;
}

static enum pt_xproto guess_xproto(const struct pt_xconn *xc)
{
	static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	const struct pt_assembled *q = &xc->a[xc->req_dir];

	if (xc->http)
		return PT_XP_HTTP1;
	if (!xc->a[0].len && !xc->a[1].len)
		return PT_XP_NONE;
	if (tls_start(&xc->a[0]) || tls_start(&xc->a[1]))
		return PT_XP_TLS;
	if (q->len >= sizeof(h2) - 1 && !memcmp(q->buf, h2, sizeof(h2) - 1))
		return PT_XP_HTTP2;
	return PT_XP_OTHER;
}

void pt_xconn_build(const struct pt_conn *conn, struct pt_xconn *xc)
{
	static const uint64_t zero[2];
	int d;

	memset(xc, 0, sizeof(*xc));
	xc->conn = conn;
	for (d = 0; d < 2; d++)
		if (pt_stream_assemble(conn, d, &xc->a[d])) {
			snprintf(xc->error, sizeof(xc->error),
				 "%s stream of %llu bytes is too large to assemble",
				 d == PT_DIR_TX ? "tx" : "rx",
				 (unsigned long long)pt_stream_end(conn, d));
			return;
		}
	xc->assembled = true;
	xc->inbound = conn->open.role == PT_ROLE_SERVER;
	xc->req_dir = xc->inbound ? PT_DIR_RX : PT_DIR_TX;
	/* a role guessed from ports is checked against the bytes */
	if (conn->open.role == PT_ROLE_UNKNOWN ||
	    (conn->open.h.flags & PT_F_ROLE_GUESSED)) {
		const struct pt_assembled *rx = &xc->a[PT_DIR_RX],
					  *tx = &xc->a[PT_DIR_TX];

		if (pt_http_looks_like_start(rx->buf, rx->len, true) &&
		    !pt_http_looks_like_start(tx->buf, tx->len, true))
			xc->inbound = true;
		else if (pt_http_looks_like_start(tx->buf, tx->len, true))
			xc->inbound = false;
		xc->req_dir = xc->inbound ? PT_DIR_RX : PT_DIR_TX;
	}
	/* HTTP if a request starts early on (late for a connection older
	 * than the capture, whose first bytes may be mid-message) */
	if (next_start_within(&xc->a[xc->req_dir], 0, true, HTTP_PROBE_LEN) <
	    (xc->a[xc->req_dir].len < HTTP_PROBE_LEN ?
	     xc->a[xc->req_dir].len : HTTP_PROBE_LEN))
		parse_http(xc);
	if (!xc->http) {
		for (d = 0; d < (int)xc->nx; d++) {
			pt_http_msg_free(&xc->x[d].req);
			pt_http_msg_free(&xc->x[d].resp);
			free(xc->x[d].turns);
		}
		free(xc->x);
		xc->x = NULL;
		xc->nx = 0;
		raw_turns(xc, zero);
	}
	xc->proto = guess_xproto(xc);
}

void pt_xconn_free(struct pt_xconn *xc)
{
	size_t i;

	for (i = 0; i < xc->nx; i++) {
		pt_http_msg_free(&xc->x[i].req);
		pt_http_msg_free(&xc->x[i].resp);
		free(xc->x[i].turns);
	}
	free(xc->x);
	pt_assembled_free(&xc->a[0]);
	pt_assembled_free(&xc->a[1]);
	memset(xc, 0, sizeof(*xc));
}
