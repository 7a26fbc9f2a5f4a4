// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A capture read as a stream: exchanges handed over in order by start as
 * the records come, with only what is in flight in memory.
 *
 * Each connection still open keeps its records' bytes not yet in a
 * settled exchange. From time to time (when it holds pt_stream_step
 * bytes, when new bytes have waited SETTLE_NS, when it is closed) its
 * streams are assembled from where the last cut ended and fed to its
 * protocol: the exchanges that settle go to a heap by start, with the
 * assembled bytes they point into, and the protocol's state is moved
 * down to the bytes it has yet to read, so the rest can be freed.
 *
 * An exchange leaves the heap once none can still come that began
 * before it: no connection holds a byte older than it, and SETTLE_NS of
 * records have gone by (records of one moment come from several CPUs,
 * nearly but not quite in order; one that comes later still is handed on
 * out of order, and counted). Past pt_held_max, a connection whose oldest
 * byte holds the others up for longer than that is cut as if it had
 * ended, its open exchange said cut short, and it starts afresh after
 * those bytes. So memory holds at most about pt_held_max, and what
 * SETTLE_NS of records bring.
 *
 * Read raw (the sink takes bytes, not exchanges: pcapng), a connection is
 * cut once its role and protocol can be told, as for exchanges, and then
 * whenever it has new bytes: each piece goes to the sink and is let go.
 * The sink is told how far records have come: the oldest byte a
 * connection keeps, the handshake of one not yet cut, a close not yet
 * done, or what SETTLE_NS ago was, whichever is earliest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "base/common.h"
#include "export/export.h"
#include "proto/proto.h"

#define SETTLE_NS	(1000000000ull)
/* A connection whose bytes start as TLS records is first cut this long
 * after its first record (unless it holds pt_stream_step bytes, or ends):
 * by then its plaintext, if any, has come (a library is hooked at the
 * recorder's 2 s scan), which decides the layer it is read in. */
#define FIRST_NS	(3ull * 1000000000)

uint64_t pt_held_max = PT_HELD_MAX;
uint64_t pt_stream_step = 4u << 20;
size_t pt_stream_every = 8192;	/* records between looks at the connections */
/* ... or payload bytes, whichever comes first: 8192 records of 64 KiB
 * would be half a gigabyte held between looks */
#define LOOK_BYTES	(16u << 20)

/* Assembled bytes of one cut, kept while an exchange points into them. */
struct slab {
	struct pt_xconn xc;	/* the connection as of the cut, no exchanges */
	size_t refs;
	uint64_t bytes;
	struct pt_range *gaps[2];	/* a connection done: its gaps */
};

/* An exchange, or (done) its connection's end, after its last exchange. */
struct pend {
	uint64_t ts, seq;
	struct slab *sl;
	struct pt_exchange x;
	bool done;
};

struct live {
	struct pt_conn *c;
	struct pt_xconn xc;
	bool begun;
	uint64_t base[2];	/* where the next begin starts (after a cut short) */
	uint64_t held;		/* captured bytes c keeps */
	uint64_t fed;		/* c's captured bytes at the last cut */
	uint64_t kept;		/* what it held after the last cut */
	bool too_big;		/* bytes over --max-stream were left out */
	int big_dir;		/* the first direction that was */
	struct pt_range *gaps[2];	/* of the bytes handed on */
	size_t ngaps[2];
	uint64_t last_x;	/* start of its latest exchange handed on */
	/* raw */
	void *state;		/* the sink's */
	uint8_t ends;		/* FINs and close as of the last cut */
};

struct streamer {
	struct pt_capture *cap;
	const struct pt_xsink *sink;
	struct live **v;
	size_t n, cap_v;
	struct pend *heap;
	size_t nheap, cap_heap;
	uint64_t held, heap_bytes, now, seq;
	uint64_t last_ts;	/* start of the last exchange handed on */
	size_t since;
	uint64_t since_bytes;	/* payload since the last look */
	int err;
	bool raw;		/* sink->bytes: no exchanges */
};

/* Marks a connection that is done: its later records are counted, not kept. */
static char done_mark;

static bool pend_before(const struct pend *a, const struct pend *b)
{
	return a->ts != b->ts ? a->ts < b->ts : a->seq < b->seq;
}

static void heap_push(struct streamer *st, const struct pend *p)
{
	size_t i;

	if (st->nheap == st->cap_heap) {
		st->cap_heap = st->cap_heap ? st->cap_heap * 2 : 256;
		st->heap = pt_xrealloc(st->heap, st->cap_heap, sizeof(*st->heap));
	}
	i = st->nheap++;
	while (i && pend_before(p, &st->heap[(i - 1) / 2])) {
		st->heap[i] = st->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	st->heap[i] = *p;
}

static void heap_pop(struct streamer *st, struct pend *out)
{
	struct pend last;
	size_t i = 0, k;

	*out = st->heap[0];
	last = st->heap[--st->nheap];
	for (;;) {
		k = 2 * i + 1;
		if (k >= st->nheap)
			break;
		if (k + 1 < st->nheap && pend_before(&st->heap[k + 1], &st->heap[k]))
			k++;
		if (!pend_before(&st->heap[k], &last))
			break;
		st->heap[i] = st->heap[k];
		i = k;
	}
	if (st->nheap)
		st->heap[i] = last;
}

static void slab_put(struct streamer *st, struct slab *sl)
{
	if (--sl->refs)
		return;
	st->heap_bytes -= sl->bytes;
	pt_assembled_free(&sl->xc.a[0]);
	pt_assembled_free(&sl->xc.a[1]);
	free(sl->gaps[0]);
	free(sl->gaps[1]);
	free(sl);
}

/* Records stamped before this have had SETTLE_NS for any earlier one to
 * come: what is still missing then is not coming. */
static uint64_t settled_before(const struct streamer *st)
{
	return st->now > SETTLE_NS ? st->now - SETTLE_NS : 0;
}

static uint64_t all_captured(const struct pt_conn *c)
{
	return c->s[0].captured + c->s[1].captured + c->tls[0].captured +
	       c->tls[1].captured;
}

/* The oldest byte c still keeps (UINT64_MAX if none): no exchange of it
 * still to come can begin before. */
static uint64_t oldest(const struct pt_conn *c)
{
	const struct pt_stream *s[4] = { &c->s[0], &c->s[1], &c->tls[0],
					 &c->tls[1] };
	uint64_t t = UINT64_MAX;
	size_t i, k;

	for (k = 0; k < 4; k++)
		for (i = 0; i < s[k]->nchunks; i++)
			if (s[k]->chunks[i].ts < t)
				t = s[k]->chunks[i].ts;
	return t;
}

/* Could c be TLS whose plaintext is still to come? Its wire bytes start
 * with a TLS record header, or its start was not seen. */
static bool may_be_tls(const struct pt_conn *c)
{
	size_t i;
	int d;

	if (c->has_tls)
		return false;
	for (d = 0; d < 2; d++)
		for (i = 0; i < c->s[d].nchunks; i++) {
			const struct pt_chunk *ch = &c->s[d].chunks[i];

			if (ch->off || ch->len < 3)
				continue;
			if (ch->data[0] >= 0x14 && ch->data[0] <= 0x17 &&
			    ch->data[1] == 3)
				return true;
			return false;
		}
	return true;
}

static void drop(struct streamer *st, struct live *lv, struct pt_stream *s,
		 uint64_t before)
{
	uint64_t freed = pt_stream_drop_before(s, before);

	lv->held -= freed;
	st->held -= freed;
}

static void shift_span(struct pt_span *s, const uint64_t base[2])
{
	s->off += base[s->dir];
	s->end += base[s->dir];
}

/* The gaps of a[d] before lim, in stream offsets (base on): one that
 * goes on where the last ended is the same gap. */
static void tally_gaps(struct live *lv, int d, const struct pt_assembled *a,
		       uint64_t base, uint64_t lim)
{
	size_t i;

	for (i = 0; i < a->ngaps && a->gaps[i].start < lim; i++) {
		uint64_t start = base + a->gaps[i].start,
			 end = base + (a->gaps[i].end < lim ? a->gaps[i].end : lim);
		struct pt_range *last = lv->ngaps[d] ?
					&lv->gaps[d][lv->ngaps[d] - 1] : NULL;

		if (last && last->end == start) {
			last->end = end;
			continue;
		}
		lv->gaps[d] = pt_xrealloc(lv->gaps[d], lv->ngaps[d] + 1,
					  sizeof(*lv->gaps[d]));
		lv->gaps[d][lv->ngaps[d]].start = start;
		lv->gaps[d][lv->ngaps[d]].end = end;
		lv->gaps[d][lv->ngaps[d]].reason = a->gaps[i].reason;
		lv->ngaps[d]++;
	}
}

/* A slab for xc as it is now: the connection, none of what xc owns. */
static struct slab *slab_new(const struct pt_xconn *xc)
{
	struct slab *sl = pt_xcalloc(1, sizeof(*sl));

	sl->xc = *xc;
	sl->xc.x = NULL;
	sl->xc.nx = 0;
	sl->xc.pstate = NULL;
	sl->xc.owns_a = false;
	memset(sl->xc.a, 0, sizeof(sl->xc.a));
	sl->xc.sgaps[0] = sl->xc.sgaps[1] = NULL;
	return sl;
}

/* Hand what settled in xc's last feed to the heap, with a[]. */
static void take_settled(struct streamer *st, struct live *lv,
			 struct pt_assembled a[2], bool final)
{
	struct pt_xconn *xc = &lv->xc;
	struct slab *sl;
	size_t i, k;

	if (!xc->nx) {
		pt_assembled_free(&a[0]);
		pt_assembled_free(&a[1]);
		return;
	}
	sl = slab_new(xc);
	sl->xc.a[0] = a[0];
	sl->xc.a[1] = a[1];
	if (!final)
		sl->xc.proto = pt_xconn_label(xc);
	sl->refs = xc->nx;
	sl->bytes = pt_assembled_held(&a[0]) + pt_assembled_held(&a[1]) +
		    sizeof(*sl) +
		    xc->nx * sizeof(struct pend);
	st->heap_bytes += sl->bytes;
	for (i = 0; i < xc->nx; i++) {
		struct pend p = { .seq = st->seq++, .sl = sl, .x = xc->x[i] };

		if (p.x.kind == PT_X_HTTP) {
			shift_span(&p.x.req_span, xc->base);
			shift_span(&p.x.resp_span, xc->base);
		}
		for (k = 0; k < p.x.nturns; k++)
			shift_span(&p.x.turns[k], xc->base);
		p.ts = pt_x_start(&p.x);
		if (p.ts > lv->last_x)
			lv->last_x = p.ts;
		heap_push(st, &p);
	}
	xc->nx = 0;
}

/*
 * Cut lv's connection: feed what has come since the last cut (all of it
 * when final), hand on what settled, free the bytes behind it. why: the
 * cut is forced (--max-held), and the exchanges it leaves incomplete say
 * so. decide: its bytes have waited long enough for the protocol to be
 * known; a request line that comes after a second of other bytes is not
 * waited for (read whole, it could make the connection HTTP after all).
 */
static void cut(struct streamer *st, struct live *lv, bool final,
		bool decide, const char *why)
{
	struct pt_conn *c = lv->c;
	struct pt_xconn *xc = &lv->xc;
	struct pt_assembled a[2];
	uint64_t pos[2], end[2];
	bool rebase;
	size_t i;
	int d;

	if (!lv->begun) {
		pt_xconn_begin(xc, c);
		xc->streamed = true;
		/* a TLS connection's exchanges are its plaintext's */
		xc->tls = c->has_tls;
		xc->base[0] = lv->base[0];
		xc->base[1] = lv->base[1];
		lv->begun = true;
	}
	for (d = 0; d < 2; d++)
		if (pt_stream_assemble_from(c, d, xc->tls, xc->base[d], !final,
					    settled_before(st),
					    &a[d]))
			break;
	if (d < 2) {
		/* more than --max-stream at once: left out, as read whole,
		 * and read on afresh after it */
		bool tls = xc->tls;

		if (!lv->too_big)
			lv->big_dir = d;
		while (d-- > 0)
			pt_assembled_free(&a[d]);
		lv->too_big = true;
		pt_xconn_free(xc);
		lv->begun = false;
		for (d = 0; d < 2; d++) {
			struct pt_stream *s = tls ? &c->tls[d] : &c->s[d];

			lv->base[d] = s->seen_end > lv->base[d] ? s->seen_end :
				      lv->base[d];
			drop(st, lv, s, lv->base[d]);
			if (tls)
				drop(st, lv, &c->s[d], UINT64_MAX);
		}
		lv->fed = all_captured(c);
		lv->kept = lv->held;
		return;
	}
	for (d = 0; d < 2; d++) {
		xc->a[d] = a[d];
		end[d] = xc->base[d] + a[d].len;
		/* a FIN or close is only known to end the bytes at the end */
		xc->ended[d] = pt_conn_ended(c, d) &&
			       (final || (!xc->tls && end[d] >=
					  pt_stream_end(c, d)));
	}
	pt_xconn_feed(xc, final);
	if (!final && decide && !xc->p) {
		pt_xconn_decide(xc);
		pt_xconn_feed(xc, false);
	}
	for (i = 0; why && i < xc->nx; i++)
		if (xc->x[i].incomplete)
			snprintf(xc->x[i].note, sizeof(xc->x[i].note), "%s", why);
	/* where the bytes still to be read start, if they can be let go */
	rebase = !final && xc->p && xc->p->settled &&
		 !(xc->tls && !xc->first_checked);
	pos[0] = pos[1] = 0;
	if (rebase)
		xc->p->settled(xc, pos);
	for (d = 0; d < 2; d++)
		tally_gaps(lv, d, &a[d], xc->base[d], final ? a[d].len : pos[d]);
	take_settled(st, lv, a, final);
	memset(xc->a, 0, sizeof(xc->a));
	lv->fed = all_captured(c);
	if (why) {
		/* afresh after what was there */
		bool tls = xc->tls;

		pt_xconn_free(xc);
		lv->begun = false;
		for (d = 0; d < 2; d++) {
			lv->base[d] = end[d];
			drop(st, lv, tls ? &c->tls[d] : &c->s[d], end[d]);
			if (tls)
				drop(st, lv, &c->s[d], UINT64_MAX);
		}
		lv->kept = lv->held;
		return;
	}
	lv->kept = lv->held;
	if (!rebase)
		return;
	xc->p->rebase(xc, pos);
	for (d = 0; d < 2; d++) {
		xc->base[d] += pos[d];
		drop(st, lv, xc->tls ? &c->tls[d] : &c->s[d], xc->base[d]);
		/* the ciphertext of plaintext read: pcapng's, not ours */
		if (xc->tls)
			drop(st, lv, &c->s[d], UINT64_MAX);
	}
	lv->kept = lv->held;
}

static uint8_t ends_of(const struct pt_conn *c)
{
	return c->s[0].fin | c->s[1].fin << 1 | c->has_close << 2;
}

/* Raw: the earliest a packet of lv still to come can be. */
static uint64_t raw_oldest(const struct live *lv)
{
	const struct pt_conn *c = lv->c;
	uint64_t t = oldest(c), hs = c->first_ts > 3 ? c->first_ts - 3 : 0;

	/* its handshake, not told yet (plaintext with no socket has none:
	 * joined, its bytes are its socket's) */
	if (!lv->xc.p && !pt_conn_pseudo(c) && hs < t)
		t = hs;
	if (c->has_close && c->close.h.ts_ns < t)
		t = c->close.h.ts_ns;
	return t;
}

/*
 * Raw: hand the sink lv's bytes from where the last cut ended, as far as
 * they go on without a hole still to be filled (live), or all of them;
 * then let them go. decide: tell the role and protocol even from no
 * bytes. A connection past --max-stream is left out from there on.
 */
static void raw_cut(struct streamer *st, struct live *lv, bool final,
		    bool live, bool decide)
{
	struct pt_conn *c = lv->c;
	struct pt_xconn *xc = &lv->xc;
	int d, k;

	if (!lv->begun) {
		pt_xconn_begin(xc, c);
		xc->streamed = true;
		lv->begun = true;
	}
	if (!xc->p)
		xc->tls = c->has_tls;	/* its plaintext, if it has any */
	for (d = 0; !lv->too_big && d < 2; d++) {
		if (!pt_stream_assemble_from(c, d, xc->tls, xc->base[d], live,
					     settled_before(st),
					     &xc->a[d]))
			continue;
		for (k = 0; k < d; k++)
			pt_assembled_free(&xc->a[k]);
		lv->too_big = true;
		lv->big_dir = d;
		xc->assembled = false;
	}
	if (!lv->too_big) {
		bool some = xc->a[0].len || xc->a[1].len;

		for (d = 0; d < 2; d++)
			xc->ended[d] = pt_conn_ended(c, d) &&
				       (final || (!xc->tls && xc->base[d] +
						  xc->a[d].len >= pt_stream_end(c, d)));
		if (!xc->p && (some || decide || final))
			pt_xconn_decide(xc);
		if (xc->p && xc->proto == PT_XP_NONE && some)
			xc->proto = pt_xconn_label(xc);
	}
	if (xc->p && !st->err)
		st->err = st->sink->bytes(st->sink->bctx, st->cap, xc,
					  &lv->state, final);
	for (d = 0; d < 2; d++) {
		struct pt_stream *s = xc->tls ? &c->tls[d] : &c->s[d];

		if (!lv->too_big)
			xc->base[d] += xc->a[d].len;
		pt_assembled_free(&xc->a[d]);
		drop(st, lv, s, lv->too_big ? UINT64_MAX : xc->base[d]);
		/* the other layer: the ciphertext of plaintext read, or
		 * plaintext that came after the connection was told */
		if (xc->p || lv->too_big)
			drop(st, lv, xc->tls ? &c->s[d] : &c->tls[d], UINT64_MAX);
	}
	lv->fed = all_captured(c);
	lv->ends = ends_of(c);
	lv->kept = lv->held;
}

static void unlist(struct streamer *st, size_t i)
{
	st->v[i] = st->v[--st->n];
}

/* lv's connection is done: its last exchanges, then it goes. */
static void finish(struct streamer *st, size_t i)
{
	struct live *lv = st->v[i];
	struct pend p = {};
	struct slab *sl;
	int d;

	if (st->raw)
		raw_cut(st, lv, true, false, true);
	else
		cut(st, lv, true, false, NULL);
	if (!lv->begun)
		pt_xconn_begin(&lv->xc, lv->c);	/* left out whole */
	if (lv->too_big) {
		lv->xc.assembled = false;	/* said as too large */
		if (!lv->xc.error[0])
			snprintf(lv->xc.error, sizeof(lv->xc.error),
				 "%s stream: more than --max-stream %llu bytes held at once is too large to assemble; left out",
				 lv->big_dir == PT_DIR_TX ? "tx" : "rx",
				 (unsigned long long)pt_assemble_max);
	}
	/* told once its last exchange is handed on */
	sl = slab_new(&lv->xc);
	for (d = 0; d < 2; d++) {
		sl->gaps[d] = lv->gaps[d];
		sl->xc.sgaps[d] = lv->gaps[d];
		sl->xc.nsgaps[d] = lv->ngaps[d];
	}
	sl->refs = 1;
	sl->bytes = sizeof(*sl) + (lv->ngaps[0] + lv->ngaps[1]) *
				   sizeof(struct pt_range);
	st->heap_bytes += sl->bytes;
	p.ts = lv->last_x;
	p.seq = st->seq++;
	p.sl = sl;
	p.done = true;
	heap_push(st, &p);
	pt_xconn_free(&lv->xc);
	for (d = 0; d < 2; d++) {
		drop(st, lv, &lv->c->s[d], UINT64_MAX);
		drop(st, lv, &lv->c->tls[d], UINT64_MAX);
	}
	pt_conn_drop_chunks(lv->c);
	lv->c->owner = &done_mark;
	unlist(st, i);
	free(lv);
}

/* Hand on the exchanges that nothing still to come can precede. */
static void emit(struct streamer *st, bool all)
{
	uint64_t w = all ? UINT64_MAX : settled_before(st);
	struct pend p;
	size_t i;

	for (i = 0; !all && i < st->n; i++) {
		uint64_t t = st->raw ? raw_oldest(st->v[i]) :
			     oldest(st->v[i]->c);

		if (t < w)
			w = t;
	}
	while (st->nheap && (all || st->heap[0].ts < w)) {
		heap_pop(st, &p);
		if (p.done) {
			if (!st->err && st->sink->conn)
				st->sink->conn(st->sink->ctx, st->cap, &p.sl->xc);
			slab_put(st, p.sl);
			continue;
		}
		if (p.ts < st->last_ts)
			st->cap->out_of_order++;
		else
			st->last_ts = p.ts;
		if (!st->err)
			st->err = st->sink->x(st->sink->ctx, st->cap, &p.sl->xc,
					      &p.x);
		pt_x_release(&p.x);
		slab_put(st, p.sl);
	}
	if (st->raw && st->sink->flush && !st->err)
		st->err = st->sink->flush(st->sink->bctx, st->cap, w);
}

static uint64_t all_held(const struct streamer *st)
{
	return st->held + st->heap_bytes +
	       (st->raw && st->sink->held ? st->sink->held(st->sink->bctx) : 0);
}

static void note_peak(struct streamer *st)
{
	uint64_t n = all_held(st);

	if (n > st->cap->peak_held)
		st->cap->peak_held = n;
}

/* Raw: cut what has news; a connection not yet told, once it has waited
 * to be told (as cut is in check), or holds a step. */
static void raw_check(struct streamer *st, struct live *lv)
{
	struct pt_conn *c = lv->c;
	uint64_t t;
	bool waited;

	if (lv->xc.p) {
		if (all_captured(c) != lv->fed || ends_of(c) != lv->ends)
			raw_cut(st, lv, false, true, false);
		return;
	}
	t = oldest(c) < c->first_ts ? oldest(c) : c->first_ts;
	waited = st->now > t + SETTLE_NS &&
		 (st->now > c->first_ts + FIRST_NS || !may_be_tls(c));
	if (waited || lv->held >= pt_stream_step || lv->held > pt_assemble_max)
		raw_cut(st, lv, false, true, waited);
}

static void check(struct streamer *st)
{
	char why[96];
	size_t i;

	st->since = 0;
	st->since_bytes = 0;
	for (i = st->n; i > 0; i--) {
		struct live *lv = st->v[i - 1];
		struct pt_conn *c = lv->c;
		bool waited;

		/* plaintext whose socket is not known yet may still join it */
		if (pt_conn_pseudo(c))
			continue;
		if (c->has_close && st->now > c->close.h.ts_ns + SETTLE_NS) {
			finish(st, i - 1);
			continue;
		}
		if (st->raw) {
			raw_check(st, lv);
			continue;
		}
		if (all_captured(c) == lv->fed)
			continue;	/* nothing new */
		/* a message still arriving is parsed again at each cut:
		 * cut when what is held has doubled, not at every step */
		waited = st->now > oldest(c) + SETTLE_NS &&
			 (lv->begun || st->now > c->first_ts + FIRST_NS ||
			  !may_be_tls(c));
		if ((lv->held >= pt_stream_step && lv->held >= 2 * lv->kept) ||
		    waited || lv->held > pt_assemble_max)
			cut(st, lv, false, waited, NULL);
	}
	emit(st, false);
	note_peak(st);
	/* over the bound: cut the connection that holds the rest up (what
	 * the last SETTLE_NS brought waits whatever is cut) */
	snprintf(why, sizeof(why),
		 "cut short: more than --max-held %llu MiB was in memory",
		 (unsigned long long)(pt_held_max >> 20));
	while (all_held(st) > pt_held_max) {
		struct live *lv = NULL;
		uint64_t t, best = st->now > SETTLE_NS ? st->now - SETTLE_NS : 0;

		for (i = 0; i < st->n; i++) {
			if (st->raw)
				t = raw_oldest(st->v[i]);
			else if (st->v[i]->held)
				t = oldest(st->v[i]->c);
			else
				continue;
			if (t < best) {
				best = t;
				lv = st->v[i];
			}
		}
		if (!lv)
			break;
		if (st->raw) {
			/* what is still awaited is taken as not captured */
			st->cap->cut_short += lv->held != 0;
			raw_cut(st, lv, false, false, true);
			if (raw_oldest(lv) <= best)
				break;	/* nothing more to let go */
		} else {
			cut(st, lv, true, false, why);
			st->cap->cut_short++;
		}
		emit(st, false);
	}
}

static struct live *live_of(struct streamer *st, struct pt_conn *c)
{
	struct live *lv = c->owner;

	if (lv)
		return lv;
	lv = pt_xcalloc(1, sizeof(*lv));
	lv->c = c;
	c->owner = lv;
	if (st->n == st->cap_v) {
		st->cap_v = st->cap_v ? st->cap_v * 2 : 64;
		st->v = pt_xrealloc(st->v, st->cap_v, sizeof(*st->v));
	}
	st->v[st->n++] = lv;
	return lv;
}

static void hook_pre(void *ctx, const struct pt_rec_hdr *h)
{
	const struct pt_tls_assoc *a = (const void *)h;
	struct streamer *st = ctx;
	struct pt_conn *ps, *real;
	struct live *from, *to;
	size_t i;

	if (h->type != PT_REC_TLS_ASSOC || h->size < sizeof(*a))
		return;
	/* its bytes join the socket's connection, which keeps them now */
	ps = pt_conns_find(&st->cap->conns, a->pseudo_id);
	if (!ps || !ps->owner || ps->owner == &done_mark ||
	    !(a->pseudo_id & PT_PSEUDO_CONN) || (h->conn_id & PT_PSEUDO_CONN))
		return;
	from = ps->owner;
	real = pt_conns_find(&st->cap->conns, h->conn_id);
	for (i = 0; i < st->n; i++)
		if (st->v[i] == from)
			unlist(st, i);
	if (real && real->owner == &done_mark) {
		/* too late: dropped as they join (hook_post) */
		st->held -= from->held;
	} else if (real) {
		to = live_of(st, real);
		to->held += from->held;
	} else {
		st->held -= from->held;	/* counted again as they join */
	}
	free(from);
	ps->owner = NULL;
}

static int hook_post(void *ctx, const struct pt_rec_hdr *h)
{
	struct streamer *st = ctx;
	struct pt_conn *c;
	struct live *lv;

	if (h->ts_ns > st->now)
		st->now = h->ts_ns;
	switch (h->type) {
	case PT_REC_CONN_OPEN: case PT_REC_DATA: case PT_REC_CONN_CLOSE:
	case PT_REC_LOSS: case PT_REC_ATTR: case PT_REC_TLS_DATA:
		break;
	case PT_REC_TLS_ASSOC:
		/* a joined pseudo-connection's bytes, now the socket's */
		c = pt_conns_find(&st->cap->conns, h->conn_id);
		if (c && c->owner == &done_mark &&
		    (c->tls[0].nchunks || c->tls[1].nchunks)) {
			st->cap->late_records++;
			pt_conn_drop_chunks(c);
		} else if (c && !c->owner) {
			lv = live_of(st, c);
			lv->held = all_captured(c);
			st->held += lv->held;
		}
		goto out;
	default:
		goto out;
	}
	c = pt_conns_of(&st->cap->conns, h->conn_id);
	if (!c)
		goto out;
	if (c->owner == &done_mark) {
		if (h->type == PT_REC_DATA || h->type == PT_REC_TLS_DATA) {
			st->cap->late_records++;
			pt_conn_drop_chunks(c);
		}
		goto out;
	}
	lv = live_of(st, c);
	if (h->type == PT_REC_DATA || h->type == PT_REC_TLS_DATA) {
		uint32_t n = ((const struct pt_data *)h)->cap_len;

		lv->held += n;
		st->held += n;
		st->since_bytes += n;
	}
out:
	/* over the bound, sooner (but not at every record: a second of
	 * records may hold more than the bound whatever is cut) */
	if (++st->since >= pt_stream_every || st->since_bytes >= LOOK_BYTES ||
	    (st->held > pt_held_max && st->since >= 64))
		check(st);
	return st->err;
}

static bool hook_failed(void *ctx)
{
	return ((struct streamer *)ctx)->err;
}

int pt_capture_stream(struct pt_capture *cap, const char *const *paths,
		      int n, const struct pt_xsink *sink)
{
	struct streamer st = { .cap = cap, .sink = sink, .raw = !!sink->bytes };
	const struct pt_load_hooks hooks = {
		.ctx = &st, .pre = hook_pre, .post = hook_post,
		.failed = hook_failed,
	};
	size_t i;
	int err;

	err = pt_capture_load_hooked(cap, paths, n, &hooks);
	if (err) {
		/* cap's connections are gone: let go of what was ours */
		for (i = 0; i < st.n; i++) {
			pt_xconn_free(&st.v[i]->xc);
			free(st.v[i]->gaps[0]);
			free(st.v[i]->gaps[1]);
			free(st.v[i]);
		}
		while (st.nheap) {
			struct pend p;

			heap_pop(&st, &p);
			if (!p.done)
				pt_x_release(&p.x);
			slab_put(&st, p.sl);
		}
		free(st.v);
		free(st.heap);
		return st.err ? st.err : err;
	}
	cap->raw = st.raw;
	note_peak(&st);
	while (st.n)
		finish(&st, st.n - 1);
	note_peak(&st);
	emit(&st, true);
	free(st.v);
	free(st.heap);
	return st.err;
}

int pt_opt_max_held(const char *arg)
{
	return pt_opt_size("--max-held", arg, 1 << 20, 1ull << 50, &pt_held_max);
}

void pt_stream_notes(const struct pt_capture *cap)
{
	if (cap->cut_short && cap->raw)
		pt_info("more than --max-held %llu MiB was held in memory at once: bytes still awaited were taken as not captured (%zu time%s)",
			(unsigned long long)(pt_held_max >> 20),
			cap->cut_short, cap->cut_short == 1 ? "" : "s");
	else if (cap->cut_short)
		pt_info("%zu exchange%s cut short: more than --max-held %llu MiB was held in memory at once",
			cap->cut_short, cap->cut_short == 1 ? "" : "s",
			(unsigned long long)(pt_held_max >> 20));
	else if (cap->peak_held > pt_held_max)
		pt_info("%llu MiB was held in memory at once, more than --max-held %llu MiB: the last second of records is always held",
			(unsigned long long)(cap->peak_held >> 20),
			(unsigned long long)(pt_held_max >> 20));
	if (cap->late_records)
		pt_info("%zu record%s of bytes came more than 1 s after their connection closed, and were not used",
			cap->late_records, cap->late_records == 1 ? "" : "s");
	if (cap->out_of_order)
		pt_info("%zu exchange%s written out of order: their records came more than 1 s after later ones",
			cap->out_of_order, cap->out_of_order == 1 ? "" : "s");
	pt_dbg("at most %llu bytes held in memory at once",
	       (unsigned long long)cap->peak_held);
}
