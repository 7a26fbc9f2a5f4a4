// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "base/common.h"
#include "stream/conns.h"

void pt_conns_init(struct pt_conns *c)
{
	memset(c, 0, sizeof(*c));
}

static void stream_free(struct pt_stream *s)
{
	size_t i;

	for (i = 0; i < s->nchunks; i++)
		free(s->chunks[i].data);
	free(s->chunks);
	free(s->losses);
}

void pt_conns_free(struct pt_conns *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		stream_free(&c->v[i]->s[0]);
		stream_free(&c->v[i]->s[1]);
		stream_free(&c->v[i]->tls[0]);
		stream_free(&c->v[i]->tls[1]);
		free(c->v[i]);
	}
	free(c->v);
	free(c->tab);
	free(c->targets);
	free(c->tls_procs);
	free(c->alias);
	memset(c, 0, sizeof(*c));
}

static size_t slot(uint64_t id, size_t sz)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (size_t)id & (sz - 1);
}

struct pt_conn *pt_conns_find(struct pt_conns *c, uint64_t id)
{
	size_t i;

	if (!c->tabsz)
		return NULL;
	for (i = slot(id, c->tabsz); c->tab[i]; i = (i + 1) & (c->tabsz - 1))
		if (c->tab[i]->id == id)
			return c->tab[i];
	return NULL;
}

static void index_conn(struct pt_conns *c, struct pt_conn *conn)
{
	size_t i;

	for (i = slot(conn->id, c->tabsz); c->tab[i];
	     i = (i + 1) & (c->tabsz - 1))
		;
	c->tab[i] = conn;
}

static struct pt_conn *get_conn(struct pt_conns *c, uint64_t id)
{
	struct pt_conn *conn = pt_conns_find(c, id);
	size_t i;

	if (conn)
		return conn;
	if ((c->n + 1) * 2 > c->tabsz) {
		c->tabsz = c->tabsz ? c->tabsz * 2 : 64;
		free(c->tab);
		c->tab = pt_xcalloc(c->tabsz, sizeof(*c->tab));
		for (i = 0; i < c->n; i++)
			index_conn(c, c->v[i]);
	}
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->v = pt_xrealloc(c->v, c->cap, sizeof(*c->v));
	}
	conn = pt_xcalloc(1, sizeof(*conn));
	conn->id = id;
	c->v[c->n++] = conn;
	index_conn(c, conn);
	return conn;
}

static void add_data(struct pt_stream *s, const struct pt_data *d)
{
	struct pt_chunk *ch;

	if (d->offset + d->len < d->offset)
		return;	/* wraps: the reader refuses such records */

	if (d->h.flags & PT_F_FIN) {
		s->fin = true;
		s->fin_off = d->offset + d->len;
	}
	if (d->offset + d->len > s->seen_end)
		s->seen_end = d->offset + d->len;
	if (!d->cap_len)
		return;
	if (s->nchunks == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->chunks = pt_xrealloc(s->chunks, s->cap, sizeof(*s->chunks));
	}
	ch = &s->chunks[s->nchunks++];
	ch->off = d->offset;
	ch->ts = d->h.ts_ns;
	ch->len = d->cap_len;
	ch->data = pt_xcalloc(1, d->cap_len);
	memcpy(ch->data, d->payload, d->cap_len);
	s->captured += d->cap_len;
}

static void add_loss(struct pt_stream *s, const struct pt_loss *l)
{
	if (l->offset + l->len < l->offset)
		return;
	s->losses = pt_xrealloc(s->losses, s->nlosses + 1, sizeof(*s->losses));
	s->losses[s->nlosses].start = l->offset;
	s->losses[s->nlosses].end = l->offset + l->len;
	s->losses[s->nlosses].reason = l->reason;
	s->nlosses++;
}

/* The connection a pseudo-connection was joined to, or itself. */
static uint64_t alias_of(const struct pt_conns *c, uint64_t id)
{
	size_t i;

	for (i = c->nalias; i > 0; i--)
		if (c->alias[i - 1].from == id)
			return c->alias[i - 1].to;
	return id;
}

struct pt_conn *pt_conns_of(struct pt_conns *c, uint64_t id)
{
	return pt_conns_find(c, (id & PT_PSEUDO_CONN) ? alias_of(c, id) : id);
}

/* The plaintext of a pseudo-connection joins its socket's connection. */
static void move_stream(struct pt_stream *to, struct pt_stream *from)
{
	size_t i;

	for (i = 0; i < from->nchunks; i++) {
		if (to->nchunks == to->cap) {
			to->cap = to->cap ? to->cap * 2 : 16;
			to->chunks = pt_xrealloc(to->chunks, to->cap,
						 sizeof(*to->chunks));
		}
		to->chunks[to->nchunks++] = from->chunks[i];
	}
	to->captured += from->captured;
	if (from->seen_end > to->seen_end)
		to->seen_end = from->seen_end;
	to->losses = pt_xrealloc(to->losses, to->nlosses + from->nlosses + 1,
				 sizeof(*to->losses));
	memcpy(to->losses + to->nlosses, from->losses,
	       from->nlosses * sizeof(*to->losses));
	to->nlosses += from->nlosses;
	free(from->chunks);
	free(from->losses);
	memset(from, 0, sizeof(*from));
}

static void join_pseudo(struct pt_conns *c, const struct pt_tls_assoc *a)
{
	struct pt_conn *ps = pt_conns_find(c, a->pseudo_id), *real;
	size_t i, k;
	int d;

	if (!(a->pseudo_id & PT_PSEUDO_CONN) || (a->h.conn_id & PT_PSEUDO_CONN))
		return;
	/* records of the pseudo-connection still under way go there too */
	c->alias = pt_xrealloc(c->alias, c->nalias + 1, sizeof(*c->alias));
	c->alias[c->nalias].from = a->pseudo_id;
	c->alias[c->nalias].to = a->h.conn_id;
	c->nalias++;
	if (!ps)
		return;
	real = get_conn(c, a->h.conn_id);
	for (d = 0; d < 2; d++)
		move_stream(&real->tls[d], &ps->tls[d]);
	real->has_tls = true;
	if (!real->first_ts || (ps->first_ts && ps->first_ts < real->first_ts))
		real->first_ts = ps->first_ts;
	/* the pseudo-connection goes: out of the list, the index rebuilt */
	for (i = 0, k = 0; i < c->n; i++)
		if (c->v[i] != ps)
			c->v[k++] = c->v[i];
	c->n = k;
	memset(c->tab, 0, c->tabsz * sizeof(*c->tab));
	for (i = 0; i < c->n; i++)
		index_conn(c, c->v[i]);
	free(ps);
}

/* Each segment of a session names its targets again: keep one. */
static bool known_target(const struct pt_conns *c, const struct pt_target_rec *t)
{
	size_t i;

	for (i = 0; i < c->ntargets; i++)
		if (c->targets[i].id == t->id && c->targets[i].kind == t->kind &&
		    c->targets[i].session_id == t->session_id)
			return true;
	return false;
}

/* Whichever of the two comes first in the file: a connection that was
 * open before its process's calls were hooked. */
static void mark_hooked_late(struct pt_conn *conn,
			     const struct pt_tls_proc_rec *r)
{
	if (conn->has_open && conn->open.tgid == r->tgid &&
	    conn->open.h.ts_ns < r->h.ts_ns &&
	    (r->flags & PT_TLS_PROC_HOOKED_NOW))
		conn->tls_hooked_late = true;
}

static void add_tls_proc(struct pt_conns *c, const struct pt_tls_proc_rec *r)
{
	struct pt_tls_proc_rec n = *r;
	size_t i;

	n.comm[sizeof(n.comm) - 1] = 0;
	n.version[sizeof(n.version) - 1] = 0;
	n.path[sizeof(n.path) - 1] = 0;
	n.why[sizeof(n.why) - 1] = 0;
	/* each segment of a session says it again; a process that ran
	 * exec says it anew, under its new comm */
	for (i = 0; i < c->ntls_procs; i++)
		if (c->tls_procs[i].tgid == n.tgid &&
		    c->tls_procs[i].session_id == n.session_id &&
		    !strcmp(c->tls_procs[i].path, n.path) &&
		    !strcmp(c->tls_procs[i].comm, n.comm))
			return;
	c->tls_procs = pt_xrealloc(c->tls_procs, c->ntls_procs + 1,
				   sizeof(*c->tls_procs));
	c->tls_procs[c->ntls_procs++] = n;
	if (n.flags & PT_TLS_PROC_HOOKED_NOW)
		for (i = 0; i < c->n; i++)
			mark_hooked_late(c->v[i], &n);
}

const struct pt_tls_proc_rec *pt_conns_tls_proc(const struct pt_conns *c,
					       uint32_t tgid, uint64_t ts)
{
	const struct pt_tls_proc_rec *got = NULL, *r;
	bool early = true;	/* only records after ts seen so far */
	size_t i;

	for (i = 0; i < c->ntls_procs; i++) {
		r = &c->tls_procs[i];
		if (r->tgid != tgid)
			continue;
		if (r->h.ts_ns <= ts) {
			/* the latest said by then, a hooked one before not */
			if (early || (r->hook != PT_TLS_NOT_HOOKED) >=
				     (got->hook != PT_TLS_NOT_HOOKED))
				got = r;
			early = false;
		} else if (early && (!got || r->h.ts_ns < got->h.ts_ns)) {
			got = r;	/* none by then: the first after */
		}
	}
	return got;
}

int pt_conns_add(struct pt_conns *c, const struct pt_rec_hdr *h)
{
	struct pt_conn *conn;

	switch (h->type) {
	case PT_REC_TARGET:
		if (known_target(c, (const void *)h))
			return 0;
		c->targets = pt_xrealloc(c->targets, c->ntargets + 1,
					 sizeof(*c->targets));
		memcpy(&c->targets[c->ntargets], h, sizeof(*c->targets));
		c->targets[c->ntargets].name[sizeof(c->targets->name) - 1] = 0;
		c->ntargets++;
		return 0;
	case PT_REC_STATS: {
		/* older files have fewer counters: the rest stay 0 */
		size_t n = h->size - offsetof(struct pt_stats_rec, c);

		memset(&c->stats, 0, sizeof(c->stats));
		memcpy(&c->stats, &((const struct pt_stats_rec *)h)->c,
		       n < sizeof(c->stats) ? n : sizeof(c->stats));
		c->has_stats = true;
		return 0;
	}
	case PT_REC_TLS_ASSOC:
		join_pseudo(c, (const void *)h);
		return 0;
	case PT_REC_TLS_PROC:
		add_tls_proc(c, (const void *)h);
		return 0;
	case PT_REC_CONN_OPEN: case PT_REC_DATA: case PT_REC_CONN_CLOSE:
	case PT_REC_LOSS: case PT_REC_ATTR: case PT_REC_TLS_DATA:
		break;
	default:
		return 0;	/* unknown types are for newer readers */
	}
	conn = get_conn(c, (h->conn_id & PT_PSEUDO_CONN) ?
			   alias_of(c, h->conn_id) : h->conn_id);
	if (!conn->first_ts || h->ts_ns < conn->first_ts)
		conn->first_ts = h->ts_ns;
	if (h->ts_ns > conn->last_ts)
		conn->last_ts = h->ts_ns;
	switch (h->type) {
	case PT_REC_CONN_OPEN:
		if (!conn->has_open) {
			size_t i;

			memcpy(&conn->open, h, sizeof(conn->open));
			conn->open.comm[PT_COMM_LEN - 1] = 0;
			conn->has_open = true;
			for (i = 0; i < c->ntls_procs; i++)
				mark_hooked_late(conn, &c->tls_procs[i]);
		}
		break;
	case PT_REC_DATA: {
		const struct pt_data *d = (const void *)h;

		add_data(&conn->s[d->dir & 1], d);
		break;
	}
	case PT_REC_CONN_CLOSE:
		memcpy(&conn->close, h, sizeof(conn->close));
		conn->close_flags = h->flags;
		conn->has_close = true;
		break;
	case PT_REC_LOSS: {
		const struct pt_loss *l = (const void *)h;

		if (l->dir >= PT_DIR_TLS) {
			add_loss(&conn->tls[l->dir & 1], l);
			conn->has_tls = true;
		} else {
			add_loss(&conn->s[l->dir & 1], l);
		}
		break;
	}
	case PT_REC_TLS_DATA: {
		const struct pt_data *d = (const void *)h;

		add_data(&conn->tls[d->dir & 1], d);
		conn->has_tls = true;
		break;
	}
	case PT_REC_ATTR: {
		const struct pt_attr *a = (const void *)h;

		conn->open.pid = a->pid;
		conn->open.tgid = a->tgid;
		memcpy(conn->open.comm, a->comm, PT_COMM_LEN);
		conn->open.comm[PT_COMM_LEN - 1] = 0;
		conn->open.h.flags |= PT_F_TASK_ATTR;
		break;
	}
	}
	return 0;
}

void pt_conn_drop_chunks(struct pt_conn *conn)
{
	size_t i;
	int d;

	for (d = 0; d < 4; d++) {
		struct pt_stream *s = d < 2 ? &conn->s[d] : &conn->tls[d - 2];

		for (i = 0; i < s->nchunks; i++)
			free(s->chunks[i].data);
		free(s->chunks);
		s->chunks = NULL;
		s->nchunks = s->cap = 0;
	}
}

uint64_t pt_stream_end(const struct pt_conn *conn, int dir)
{
	const struct pt_stream *s = &conn->s[dir];
	uint64_t end = s->seen_end;
	size_t i;

	if (s->fin && s->fin_off > end)
		end = s->fin_off;
	if (conn->has_close && conn->close.bytes[dir] > end)
		end = conn->close.bytes[dir];
	for (i = 0; i < s->nlosses; i++)
		if (s->losses[i].end > end)
			end = s->losses[i].end;
	return end;
}

static int cmp_chunk(const void *a, const void *b)
{
	const struct pt_chunk *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return 0;
}

static uint8_t gap_reason(const struct pt_stream *s, uint64_t start,
			  uint64_t end)
{
	size_t i;

	for (i = 0; i < s->nlosses; i++)
		if (s->losses[i].start <= start && s->losses[i].end >= end)
			return s->losses[i].reason;
	return 0;
}

/* A gap of [start, end) in the stream, kept relative to from. */
static void add_gap(struct pt_assembled *a, const struct pt_stream *s,
		    uint64_t from, uint64_t start, uint64_t end)
{
	a->gaps = pt_xrealloc(a->gaps, a->ngaps + 1, sizeof(*a->gaps));
	a->gaps[a->ngaps].start = start - from;
	a->gaps[a->ngaps].end = end - from;
	a->gaps[a->ngaps].reason = gap_reason(s, start, end);
	a->ngaps++;
}

uint64_t pt_assemble_max = PT_ASSEMBLE_MAX;

/* How far the plaintext of one direction goes, as the records tell. */
static uint64_t tls_end(const struct pt_stream *s)
{
	uint64_t end = s->seen_end;
	size_t i;

	for (i = 0; i < s->nlosses; i++)
		if (s->losses[i].end > end)
			end = s->losses[i].end;
	return end;
}

int pt_stream_assemble(const struct pt_conn *conn, int dir,
		       struct pt_assembled *a)
{
	return pt_stream_assemble_layer(conn, dir, false, a);
}

int pt_stream_assemble_layer(const struct pt_conn *conn, int dir, bool tls,
			     struct pt_assembled *a)
{
	return pt_stream_assemble_from(conn, dir, tls, 0, false, 0, a);
}

/* Is [start, end) inside a range a LOSS record named? */
static bool loss_covers(const struct pt_stream *s, uint64_t start,
			uint64_t end)
{
	size_t i;

	for (i = 0; i < s->nlosses; i++)
		if (s->losses[i].start <= start && s->losses[i].end >= end)
			return true;
	return false;
}

int pt_stream_assemble_from(const struct pt_conn *conn, int dir, bool tls,
			    uint64_t from, bool live, uint64_t lost_before,
			    struct pt_assembled *a)
{
	const struct pt_stream *s = tls ? &conn->tls[dir & 1] : &conn->s[dir & 1];
	struct pt_chunk *v;
	uint64_t cur = from, end;
	size_t i;

	memset(a, 0, sizeof(*a));
	v = pt_xcalloc(s->nchunks + 1, sizeof(*v));
	memcpy(v, s->chunks, s->nchunks * sizeof(*v));
	qsort(v, s->nchunks, sizeof(*v), cmp_chunk);
	if (live) {
		/* as far as the bytes go on without a hole no record named,
		 * or one with bytes stamped before lost_before beyond it */
		uint64_t settled = 0;

		for (i = 0; i < s->nchunks; i++)
			if (v[i].ts < lost_before &&
			    v[i].off + v[i].len > settled)
				settled = v[i].off + v[i].len;
		for (i = 0; i < s->nchunks; i++) {
			uint64_t cend = v[i].off + v[i].len;

			if (cend < v[i].off || cend <= cur)
				continue;
			if (v[i].off > cur && !loss_covers(s, cur, v[i].off) &&
			    cur >= settled)
				break;
			cur = cend;
		}
		end = cur;
		cur = from;
	} else {
		end = tls ? tls_end(s) : pt_stream_end(conn, dir & 1);
		if (end < from)
			end = from;
	}
	if (end - from > pt_assemble_max) {
		free(v);
		return -EFBIG;
	}
	a->len = end - from;
	a->buf = pt_xcalloc(1, a->len ? a->len : 1);
	a->marks = pt_xcalloc(s->nchunks + 1, sizeof(*a->marks));
	for (i = 0; i < s->nchunks; i++) {
		uint64_t off = v[i].off, cend = off + v[i].len;

		/* records that did not pass the reader's checks, bytes
		 * before from (already handed on), bytes past a live end */
		if (cend < off || cend > end || cend <= from)
			continue;
		if (off < from) {
			/* the part from on: as if the rest had been trimmed */
			off = from;
		}
		if (off > cur)
			add_gap(a, s, from, cur, off);
		if (off < cur) {
			/* Overlap: keep the first copy, compare the rest. */
			uint64_t ovl_end = cend < cur ? cend : cur;

			a->dup_bytes += ovl_end - off;
			if (memcmp(a->buf + (off - from),
				   v[i].data + (off - v[i].off), ovl_end - off))
				a->conflicts++;
		}
		if (cend > cur) {
			uint64_t at = off > cur ? off : cur;

			a->marks[a->nmarks].off = at - from;
			a->marks[a->nmarks].ts = v[i].ts;
			a->nmarks++;
			memcpy(a->buf + (at - from), v[i].data + (at - v[i].off),
			       cend - at);
			cur = cend;
		}
	}
	if (cur < end)
		add_gap(a, s, from, cur, end);
	free(v);
	return 0;
}

uint64_t pt_stream_drop_before(struct pt_stream *s, uint64_t off)
{
	uint64_t freed = 0;
	size_t i, k;

	for (i = 0, k = 0; i < s->nchunks; i++) {
		if (s->chunks[i].off + s->chunks[i].len <= off) {
			freed += s->chunks[i].len;
			free(s->chunks[i].data);
			continue;
		}
		s->chunks[k++] = s->chunks[i];
	}
	s->nchunks = k;
	for (i = 0, k = 0; i < s->nlosses; i++)
		if (s->losses[i].end > off)
			s->losses[k++] = s->losses[i];
	s->nlosses = k;
	return freed;
}

void pt_assembled_free(struct pt_assembled *a)
{
	free(a->buf);
	free(a->gaps);
	free(a->marks);
	memset(a, 0, sizeof(*a));
}

uint64_t pt_assembled_ts(const struct pt_assembled *a, uint64_t off)
{
	size_t lo = 0, hi = a->nmarks;

	/* the last mark at or before off */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a->marks[mid].off <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? a->marks[lo - 1].ts : 0;
}
