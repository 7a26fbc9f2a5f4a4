// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * HTTP/1.x exchanges, request by request: request k, then its response
 * (after any 1xx), so a 101 or a CONNECT tunnel turns the rest of both
 * streams raw at the right byte. A message that runs into bytes not
 * captured is kept as incomplete and parsing starts again at the next
 * message start after the gap; nothing is stitched across a gap.
 *
 * Fed a growing stream, an exchange is added once nothing after it can
 * change it: its messages are whole, or cut by a gap whose far side is
 * there. Otherwise it is parsed again from the same place next time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/common.h"
#include "proto/proto.h"

/* How far into a stream the first request line is looked for. */
#define HTTP_PROBE_LEN	(64u << 10)

struct h1_state {
	uint64_t pos[2];	/* where the next request and response start */
	bool started[2];	/* pos[d] set from d's first message start */
	bool rest_raw;		/* a tunnel or unparsable bytes: raw from pos */
	bool raw_begun;		/* raw.pos set */
	/* requests may have been lost before pos[req_dir]: bytes not
	 * captured there, or a request before it cut by them */
	bool req_lost;
	bool paired;		/* a request was paired already */
	struct pt_raw_state raw;
};

/* A gap anywhere in [from, to) of a? */
static bool gap_within(const struct pt_assembled *a, uint64_t from,
		       uint64_t to)
{
	size_t i;

	for (i = 0; i < a->ngaps && a->gaps[i].start < to; i++)
		if (a->gaps[i].end > from)
			return true;
	return false;
}

/* The connection's first bytes were not captured, so its first request
 * may not have been: older than the recording, plaintext with no socket
 * or of a library hooked after it opened, or no OPEN at all. */
static bool start_missed(const struct pt_xconn *xc)
{
	const struct pt_conn *c = xc->conn;

	return !c->has_open || (c->open.h.flags & PT_F_PREEXISTING) ||
	       (xc->tls && (pt_conn_pseudo(c) || c->tls_hooked_late));
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
		if (pt_in_gap(a, off, &gend)) {
			off = gend;
			continue;
		}
		end = pt_run_end(a, off);
		fresh = off == 0 || pt_in_gap(a, off - 1, &gend);
		for (; off < end && off < limit; off++, fresh = false)
			if ((fresh || a->buf[off - 1] == '\n') &&
			    pt_http_looks_like_start(a->buf + off, end - off,
						     request))
				return off;
	}
	return limit;
}

/*
 * The next message start at or after off, a->len if none. Unless done
 * (nothing more will come), a request line still being written at the end
 * of what is there is no start yet: its verdict may change.
 */
static uint64_t next_start(const struct pt_assembled *a, uint64_t off,
			   bool request, bool done)
{
	uint64_t at = next_start_within(a, off, request, a->len);

	if (!done && request && at < a->len && pt_run_end(a, at) == a->len &&
	    a->len - at < PT_HTTP_HEAD_MAX && !memchr(a->buf + at, '\n',
						     a->len - at))
		return a->len;
	return at;
}

/* MSG_WAIT: only more bytes can tell (never when final). */
enum msg_result { MSG_OK, MSG_CUT, MSG_BAD, MSG_NONE, MSG_WAIT };

/*
 * One message at *pos of direction dir. MSG_CUT: it ran into a gap or the
 * end of what was captured (kept, *pos moved past it). MSG_NONE: no bytes.
 */
static enum msg_result one_msg(struct pt_xconn *xc, int dir, uint64_t *pos,
			       bool request, const char *req_method,
			       struct pt_http_msg *m, struct pt_span *span,
			       bool final)
{
	const struct pt_assembled *a = &xc->a[dir];
	bool done = final || xc->ended[dir], eof;
	uint64_t end, gend, start;
	char err[128];

	if (*pos < a->len && pt_in_gap(a, *pos, &gend))
		*pos = next_start(a, gend, request, done);
	if (*pos >= a->len)
		return final ? MSG_NONE : MSG_WAIT;
	end = pt_run_end(a, *pos);
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
			return final ? MSG_NONE : MSG_WAIT;
		}
	}
	eof = end == a->len && xc->ended[dir];
	if (pt_http_parse(a->buf + *pos, end - *pos, request, req_method, eof,
			  m, err, sizeof(err))) {
		snprintf(xc->error, sizeof(xc->error), "%s %s at offset %llu: %s",
			 dir == PT_DIR_TX ? "tx" : "rx",
			 request ? "request" : "response",
			 (unsigned long long)*pos, err);
		return MSG_BAD;
	}
	start = *pos;
	pt_span_set(span, a, dir, *pos, *pos + m->len);
	*pos += m->len;
	if (m->complete)
		return MSG_OK;
	if (!final && *pos == a->len && !eof) {
		pt_http_msg_free(m);
		return MSG_WAIT;	/* cut by the end of what is there yet */
	}
	/*
	 * Cut: carry on at the next message after the gap. A known length
	 * says where that is; otherwise look for a start line (past body
	 * bytes that might look like one, when the length is known).
	 */
	if (m->head_len && m->framing == PT_FRAME_LENGTH) {
		if (m->content_length <= a->len - start - m->head_len)
			*pos = start + m->head_len + m->content_length;
		else if (!done) {
			/* its end may yet be among bytes still to come */
			pt_http_msg_free(m);
			return MSG_WAIT;
		}
	}
	if (*pos < a->len && pt_in_gap(a, *pos, &gend))
		*pos = next_start(a, gend, request, done);
	else if (*pos < a->len && *pos == start + m->len)
		*pos = next_start(a, *pos, request, done);
	if (!final && *pos >= a->len) {
		/* where the next one starts is not known yet */
		pt_http_msg_free(m);
		return MSG_WAIT;
	}
	return MSG_CUT;
}

/* When the message at pos (the next request) was first seen; 0 if that is
 * not known (nothing there, or bytes not captured). */
static uint64_t next_start_ts(const struct pt_assembled *a, uint64_t pos)
{
	uint64_t gend;

	if (pos >= a->len || pt_in_gap(a, pos, &gend))
		return 0;
	return pt_assembled_ts(a, pos);
}

/* Is pos in bytes not captured (so that nothing can come there)? */
static bool in_gap_at(const struct pt_assembled *a, uint64_t pos)
{
	uint64_t gend;

	return pos < a->len && pt_in_gap(a, pos, &gend);
}

enum resp_result { RESP_GO_ON, RESP_STOP, RESP_WAIT };

/*
 * Response of x, after any 1xx: only a final response (or a 101, or one
 * cut short) becomes x->resp.
 */
static enum resp_result response(struct pt_xconn *xc, struct pt_exchange *x,
				 uint64_t *pos, const char *method,
				 uint64_t next_req_ts, bool next_req_lost,
				 bool final)
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
	if (at < xc->a[rdir].len && pt_in_gap(&xc->a[rdir], at, &gend)) {
		/* no next request to compare yet; one in bytes not
		 * captured is never known: then nothing is waited for */
		if (!next_req_ts && !next_req_lost && !final)
			return RESP_WAIT;
		if (next_req_ts) {
			r = one_msg(xc, rdir, &at, false, method, &m, &sp, final);
			if (r == MSG_WAIT)
				return RESP_WAIT;
			if (r == MSG_OK || r == MSG_CUT)
				pt_http_msg_free(&m);
			if ((r == MSG_OK || r == MSG_CUT) && sp.ts > next_req_ts) {
				*pos = sp.off;
				pt_x_incomplete(x, "response not captured");
				return RESP_GO_ON;
			}
		}
	}
	for (;;) {
		r = one_msg(xc, rdir, pos, false, method, &m, &sp, final);
		if (r == MSG_WAIT)
			return RESP_WAIT;
		if (r == MSG_NONE) {
			if (x->has_req || any)
				pt_x_incomplete(x, any ?
						"no final response captured" :
						"no response captured");
			return RESP_GO_ON;
		}
		if (r == MSG_BAD) {
			if (x->has_req || any)
				pt_x_incomplete(x, "response malformed");
			return RESP_STOP;
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
				pt_x_incomplete(x, "response runs into bytes not captured");
			return RESP_GO_ON;
		}
		if (x->ninterim < PT_INTERIM_MAX)
			x->interim[x->ninterim++] = m.status;
		pt_http_msg_free(&m);
	}
}

/* Drop the exchanges from n on, and go back to pos: bytes still to come
 * will settle them. */
static void roll_back(struct pt_xconn *xc, size_t n, struct h1_state *st,
		      const uint64_t pos[2], bool http)
{
	while (xc->nx > n)
		pt_x_release(&xc->x[--xc->nx]);
	st->pos[0] = pos[0];
	st->pos[1] = pos[1];
	xc->http = http;
}

/* The answer at *pos as an exchange of its own, its request not
 * captured; false (nothing added) when none is there, or not yet (*go). */
static bool orphan_one(struct pt_xconn *xc, uint64_t *pos, bool final,
		       enum resp_result *go)
{
	struct pt_exchange *x = pt_x_new(xc, PT_X_HTTP);

	*go = response(xc, x, pos, NULL, 0, false, final);
	if (*go == RESP_WAIT || !x->has_resp) {
		pt_x_release(x);
		xc->nx--;
		return false;
	}
	x->incomplete = false;
	pt_x_incomplete(x, "request not captured");
	return true;
}

/* Answers with no request: the server spoke first, or requests were lost. */
static void orphan_responses(struct pt_xconn *xc, struct h1_state *st)
{
	uint64_t *pos = &st->pos[!xc->req_dir];
	enum resp_result go;

	while (*pos < xc->a[!xc->req_dir].len &&
	       orphan_one(xc, pos, true, &go) && go == RESP_GO_ON)
		;
}

/*
 * Where a request may be missing (see h1_feed), answers that first showed
 * before the request at hand was sent cannot be its answers: they are to
 * requests not captured (plaintext of a TLS session whose library was
 * hooked between a request and its response, a connection older than the
 * recording, requests lost to a full ring). Each becomes an exchange of
 * its own, so that this request is paired with its own response. Only
 * there: a write's plaintext is stamped when the call returns, so a
 * large request a thread is still writing can look later than an early
 * answer another thread read (a 413 before the body).
 */
static enum resp_result answers_before(struct pt_xconn *xc,
				       struct h1_state *st, uint64_t req_ts,
				       bool final)
{
	const struct pt_assembled *a = &xc->a[!xc->req_dir];
	uint64_t *pos = &st->pos[!xc->req_dir], ts, gend;
	enum resp_result go;

	while (req_ts) {
		uint64_t at = *pos;

		/* past a gap, the first answer after it (what the gap holds
		 * of the answer before is lost with that answer's request) */
		if (at < a->len && pt_in_gap(a, at, &gend))
			at = next_start(a, gend, false, true);
		if (at >= a->len)
			return RESP_GO_ON;
		ts = pt_assembled_ts(a, at);
		if (!ts || ts >= req_ts)
			return RESP_GO_ON;
		*pos = at;
		if (!orphan_one(xc, pos, final, &go))
			return go == RESP_WAIT ? RESP_WAIT : RESP_GO_ON;
		if (go != RESP_GO_ON)
			return go;
	}
	return RESP_GO_ON;
}

static void h1_feed(struct pt_xconn *xc, bool final)
{
	struct h1_state *st = xc->pstate;
	int qdir = xc->req_dir;
	uint64_t gend;

	if (!st)
		st = xc->pstate = pt_xcalloc(1, sizeof(*st));
	/*
	 * Where each side's first message starts, once it is there (a
	 * response stream that begins in a gap is skipped by response()).
	 */
	if (!st->started[qdir]) {
		st->pos[qdir] = next_start(&xc->a[qdir], 0, true,
					   final || xc->ended[qdir]);
		st->started[qdir] = final || st->pos[qdir] < xc->a[qdir].len;
		st->req_lost = gap_within(&xc->a[qdir], 0, st->pos[qdir]);
	}
	if (!st->started[!qdir]) {
		st->pos[!qdir] = pt_in_gap(&xc->a[!qdir], 0, &gend) ? 0 :
				 next_start(&xc->a[!qdir], 0, false, true);
		st->started[!qdir] = final || st->pos[!qdir] < xc->a[!qdir].len;
	}
	if (!st->started[0] || !st->started[1])
		return;
	while (!st->rest_raw) {
		uint64_t saved[2] = { st->pos[0], st->pos[1] };
		size_t n = xc->nx;
		bool was_http = xc->http;
		struct pt_http_msg req;
		struct pt_exchange *x;
		enum msg_result r;
		enum resp_result go;
		struct pt_span sp;
		bool lost;

		r = one_msg(xc, qdir, &st->pos[qdir], true, NULL, &req, &sp,
			    final);
		if (r == MSG_WAIT) {
			roll_back(xc, n, st, saved, was_http);
			return;
		}
		if (r == MSG_BAD) {
			st->rest_raw = true;
			break;
		}
		if (r == MSG_NONE) {
			orphan_responses(xc, st);
			break;
		}
		lost = st->req_lost ||
		       gap_within(&xc->a[qdir], saved[qdir], sp.off) ||
		       (!st->paired && start_missed(xc));
		go = lost ? answers_before(xc, st, sp.ts, final) : RESP_GO_ON;
		if (go != RESP_GO_ON) {
			pt_http_msg_free(&req);
			if (go == RESP_WAIT) {
				roll_back(xc, n, st, saved, was_http);
				return;
			}
			/* a malformed answer: raw from this request on */
			st->pos[qdir] = saved[qdir];
			st->rest_raw = true;
			break;
		}
		xc->http = true;
		x = pt_x_new(xc, PT_X_HTTP);
		x->req = req;
		x->req_span = sp;
		x->has_req = true;
		if (r == MSG_CUT)
			pt_x_incomplete(x, "request runs into bytes not captured");
		go = response(xc, x, &st->pos[!qdir], x->req.method,
			      next_start_ts(&xc->a[qdir], st->pos[qdir]),
			      in_gap_at(&xc->a[qdir], st->pos[qdir]), final);
		if (go == RESP_WAIT) {
			roll_back(xc, n, st, saved, was_http);
			return;
		}
		st->paired = true;
		st->req_lost = r == MSG_CUT;
		x->ambiguous = x->req.ambiguous ? x->req.ambiguous :
			       x->has_resp ? x->resp.ambiguous : NULL;
		if (go == RESP_STOP) {
			st->rest_raw = true;
			break;
		}
		if (x->has_resp && x->resp.framing == PT_FRAME_TUNNEL) {
			st->rest_raw = true;
			break;
		}
	}
	if (!st->rest_raw && !final)
		return;
	if (!st->raw_begun) {
		st->raw_begun = true;
		if (!xc->http) {
			/* no request at all: not HTTP after all, raw from
			 * the start (only answers were cut, never added
			 * before final) */
			while (xc->nx)
				pt_x_release(&xc->x[--xc->nx]);
			st->rest_raw = true;
		} else {
			st->raw.pos[0] = st->pos[0];
			st->raw.pos[1] = st->pos[1];
		}
	}
	if (xc->error[0] || st->rest_raw)
		pt_raw_feed(xc, &st->raw, final);
}

/* Does the client's stream carry a request line early on (late for a
 * connection older than the capture, whose first bytes may be
 * mid-message)? Waits for a whole line, or for so much that none came. */
static enum pt_detect h1_detect(const struct pt_xconn *xc, bool final)
{
	const struct pt_assembled *q = &xc->a[xc->req_dir];
	uint64_t lim = q->len < HTTP_PROBE_LEN ? q->len : HTTP_PROBE_LEN;
	uint64_t at = next_start_within(q, 0, true, HTTP_PROBE_LEN);

	if (final || xc->ended[xc->req_dir])
		return at < lim ? PT_DETECT_YES : PT_DETECT_NO;
	if (at < lim && memchr(q->buf + at, '\n', pt_run_end(q, at) - at))
		return PT_DETECT_YES;
	if (q->len >= HTTP_PROBE_LEN + PT_HTTP_HEAD_MAX)
		return at < lim ? PT_DETECT_YES : PT_DETECT_NO;
	return PT_DETECT_WAIT;
}

static void h1_settled(const struct pt_xconn *xc, uint64_t pos[2])
{
	const struct h1_state *st = xc->pstate;
	int d;

	for (d = 0; d < 2; d++)
		pos[d] = !st || !st->started[d] ? 0 :
			 st->rest_raw ? st->raw.pos[d] : st->pos[d];
}

static void h1_rebase(struct pt_xconn *xc, const uint64_t by[2])
{
	struct h1_state *st = xc->pstate;
	int d;

	for (d = 0; st && d < 2; d++) {
		st->pos[d] -= st->pos[d] >= by[d] ? by[d] : st->pos[d];
		if (st->raw_begun)
			st->raw.pos[d] -= by[d];
	}
}

static void h1_release(struct pt_xconn *xc)
{
	free(xc->pstate);
	xc->pstate = NULL;
}

const struct pt_proto pt_proto_http1 = {
	.name = "http1",
	.label = PT_XP_HTTP1,
	.detect = h1_detect,
	.feed = h1_feed,
	.release = h1_release,
	.settled = h1_settled,
	.rebase = h1_rebase,
};
