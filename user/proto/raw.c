// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Raw turns: what any connection can be cut into. Each side's captured
 * runs, in the order they were seen, merged while one side goes on, and a
 * new exchange at each client turn after the server spoke. Also the rest
 * of a connection another protocol hands over (pt_raw_feed), and the
 * table entries of protocols recognised but not parsed yet (TLS
 * ciphertext, HTTP/2).
 */
#include <stdlib.h>
#include <string.h>
#include "base/common.h"
#include "proto/proto.h"

/* Captured runs of one direction from its marks, clipped to [from, len). */
struct run {
	int dir;
	uint64_t off, end, ts, ts_end;
};

static size_t runs_of(const struct pt_assembled *a, int dir, uint64_t from,
		      struct run **v, size_t n)
{
	size_t i, lo = 0, hi = a->nmarks;

	/* the last mark at or before from: marks are sorted by offset, and
	 * a stream fed again starts where the settled turns ended */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a->marks[mid].off <= from)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo ? lo - 1 : 0; i < a->nmarks; i++) {
		uint64_t off = a->marks[i].off, end;

		end = i + 1 < a->nmarks ? a->marks[i + 1].off : a->len;
		if (pt_run_end(a, off) < end)
			end = pt_run_end(a, off);
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

/* Could bytes still to come change exchange x (a turn grow, a gap after
 * it show)? Only when a turn reaches the end of what is there. */
static bool unsettled(const struct pt_xconn *xc, const struct pt_exchange *x)
{
	size_t i;

	for (i = 0; i < x->nturns; i++)
		if (x->turns[i].end >= xc->a[x->turns[i].dir].len)
			return true;
	return false;
}

void pt_raw_feed(struct pt_xconn *xc, struct pt_raw_state *rs, bool final)
{
	struct run *v = NULL;
	struct pt_exchange *x = NULL;
	size_t n = 0, i, k, first = xc->nx;
	int d;

	for (d = 0; d < 2; d++)
		n = runs_of(&xc->a[d], d, rs->pos[d], &v, n);
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

		if (!x || (client && x->turns[x->nturns - 1].dir != xc->req_dir))
			x = pt_x_new(xc, PT_X_RAW);
		x->turns = pt_xrealloc(x->turns, x->nturns + 1,
				       sizeof(*x->turns));
		t = &x->turns[x->nturns++];
		t->dir = v[i].dir;
		t->off = v[i].off;
		t->end = v[i].end;
		t->ts = v[i].ts;
		t->ts_end = v[i].ts_end;
		if (t->end < xc->a[t->dir].len &&
		    pt_run_end(&xc->a[t->dir], t->off) == t->end)
			pt_x_incomplete(x, "followed by bytes not captured");
	}
	free(v);
	/*
	 * Not final: the last exchange may grow (its server has not
	 * answered, or is still answering), and one whose turn ends where
	 * the bytes do may yet turn out to be followed by a gap. Those are
	 * cut again next time.
	 */
	if (!final) {
		for (i = first; i < xc->nx; i++)
			if (i + 1 == xc->nx || unsettled(xc, &xc->x[i]))
				break;
		for (k = i; k < xc->nx; k++)
			pt_x_release(&xc->x[k]);
		xc->nx = i;
	}
	for (i = first; i < xc->nx; i++)
		for (k = 0; k < xc->x[i].nturns; k++) {
			const struct pt_span *t = &xc->x[i].turns[k];

			if (t->end > rs->pos[t->dir])
				rs->pos[t->dir] = t->end;
		}
}

static enum pt_detect raw_detect(const struct pt_xconn *xc, bool final)
{
	return PT_DETECT_YES;
}

static void raw_feed(struct pt_xconn *xc, bool final)
{
	if (!xc->pstate)
		xc->pstate = pt_xcalloc(1, sizeof(struct pt_raw_state));
	pt_raw_feed(xc, xc->pstate, final);
}

void pt_raw_settled(const struct pt_xconn *xc, uint64_t pos[2])
{
	const struct pt_raw_state *rs = xc->pstate;

	pos[0] = rs ? rs->pos[0] : 0;
	pos[1] = rs ? rs->pos[1] : 0;
}

void pt_raw_rebase(struct pt_xconn *xc, const uint64_t by[2])
{
	struct pt_raw_state *rs = xc->pstate;

	if (!rs)
		return;
	rs->pos[0] -= by[0];
	rs->pos[1] -= by[1];
}

static void raw_release(struct pt_xconn *xc)
{
	free(xc->pstate);
	xc->pstate = NULL;
}

const struct pt_proto pt_proto_raw = {
	.name = "raw",
	.label = PT_XP_OTHER,
	.detect = raw_detect,
	.feed = raw_feed,
	.release = raw_release,
	.settled = pt_raw_settled,
	.rebase = pt_raw_rebase,
};

/* A TLS record header at the start of a stream: type, version 3.x. */
static enum pt_detect tls_start(const struct pt_assembled *a)
{
	const uint8_t *b = a->buf;

	if (a->len < 5 || (a->ngaps && a->gaps[0].start < 5))
		return a->len < 5 ? PT_DETECT_WAIT : PT_DETECT_NO;
	return b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 3 && b[2] <= 4 ?
	       PT_DETECT_YES : PT_DETECT_NO;
}

/* TLS: ciphertext, kept as raw turns. Either side may speak first. */
static enum pt_detect tls_detect(const struct pt_xconn *xc, bool final)
{
	enum pt_detect a = tls_start(&xc->a[0]), b = tls_start(&xc->a[1]);

	if (a == PT_DETECT_YES || b == PT_DETECT_YES)
		return PT_DETECT_YES;
	/* a side still short of a record header may yet start one */
	if (!final && ((a == PT_DETECT_WAIT && !xc->ended[0]) ||
		       (b == PT_DETECT_WAIT && !xc->ended[1])))
		return PT_DETECT_WAIT;
	return PT_DETECT_NO;
}

const struct pt_proto pt_proto_tls = {
	.name = "tls",
	.label = PT_XP_TLS,
	.detect = tls_detect,
	.feed = raw_feed,
	.release = raw_release,
	.settled = pt_raw_settled,
	.rebase = pt_raw_rebase,
};

/* HTTP/2 (RFC 9113 3.4): the client's preface. Raw turns for now. */
static enum pt_detect h2_detect(const struct pt_xconn *xc, bool final)
{
	static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	const struct pt_assembled *q = &xc->a[xc->req_dir];
	size_t n = q->len < sizeof(h2) - 1 ? q->len : sizeof(h2) - 1;

	if (memcmp(q->buf, h2, n))
		return PT_DETECT_NO;
	if (n == sizeof(h2) - 1)
		return PT_DETECT_YES;
	return final || xc->ended[xc->req_dir] ? PT_DETECT_NO : PT_DETECT_WAIT;
}

const struct pt_proto pt_proto_http2 = {
	.name = "http2",
	.label = PT_XP_HTTP2,
	.detect = h2_detect,
	.feed = raw_feed,
	.release = raw_release,
	.settled = pt_raw_settled,
	.rebase = pt_raw_rebase,
};
