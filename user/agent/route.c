// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's records: live connections mapped to their session, and each
 * session's records written to its segments (agent/agent_int.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "agent/agent_int.h"
#include "base/common.h"
#include "capture/tls.h"
#include "podtap.h"

/* ---- connections ---- */

static size_t conn_slot(struct agent *a, uint64_t id)
{
	size_t m = a->conns_cap - 1, i = (size_t)(id * 0x9e3779b97f4a7c15ull) & m;

	while (a->conns[i].id && a->conns[i].id != id)
		i = (i + 1) & m;
	return i;
}

static struct conn *conn_find(struct agent *a, uint64_t id)
{
	size_t i;

	if (!a->conns_cap)
		return NULL;	/* (a LOSS can come before any OPEN) */
	i = conn_slot(a, id);
	return a->conns[i].id ? &a->conns[i] : NULL;
}

static void conn_put(struct agent *a, const struct pt_conn_open *o)
{
	size_t i;

	if ((a->conns_n + 1) * 2 > a->conns_cap) {
		struct conn *old = a->conns;
		size_t oldcap = a->conns_cap, k;

		a->conns_cap = oldcap ? oldcap * 2 : 1024;
		a->conns = pt_xcalloc(a->conns_cap, sizeof(*a->conns));
		for (k = 0; k < oldcap; k++)
			if (old[k].id)
				a->conns[conn_slot(a, old[k].id)] = old[k];
		free(old);
	}
	i = conn_slot(a, o->h.conn_id);
	if (!a->conns[i].id)
		a->conns_n++;
	a->conns[i].id = o->h.conn_id;
	a->conns[i].open = *o;
}

static void conn_del(struct agent *a, uint64_t id)
{
	size_t m = a->conns_cap - 1, i, j;

	if (!a->conns_cap)
		return;
	i = conn_slot(a, id);
	if (!a->conns[i].id)
		return;
	a->conns[i].id = 0;
	a->conns_n--;
	/* re-place the entries after it in its run (linear probing) */
	for (j = (i + 1) & m; a->conns[j].id; j = (j + 1) & m) {
		struct conn c = a->conns[j];

		a->conns[j].id = 0;
		a->conns[conn_slot(a, c.id)] = c;
	}
}

/*
 * A target changed hands: its open connections go to the new session,
 * which gets their OPEN (marked as older than its capture) before their
 * next bytes. The BPF side re-resolved them already.
 */
void ag_conns_retarget(struct agent *a, uint64_t cgid, uint32_t session)
{
	size_t k;

	for (k = 0; k < a->conns_cap; k++) {
		struct conn *c = &a->conns[k];

		if (c->id && c->open.cgroup_id == cgid &&
		    c->open.session_id != session) {
			c->open.session_id = session;
			c->orphan_ns = 0;
			c->open.h.flags |= PT_F_PREEXISTING;
			c->need_open = true;
		}
	}
}

/*
 * A target is gone: its connections are kept a while without a session,
 * in case a session takes the container back while they are open (the
 * programs do not OPEN them again).
 */
void ag_conns_orphan(struct agent *a, uint64_t cgid)
{
	size_t k;

	for (k = 0; k < a->conns_cap; k++)
		if (a->conns[k].id && a->conns[k].open.cgroup_id == cgid) {
			a->conns[k].open.session_id = 0;
			a->conns[k].orphan_ns = pt_now_mono_ns();
		}
}

/* Connections without a session for ten minutes are forgotten. */
void ag_conns_purge(struct agent *a)
{
	uint64_t *ids = NULL, now = pt_now_mono_ns();
	size_t k, n = 0;

	for (k = 0; k < a->conns_cap; k++)
		if (a->conns[k].id && a->conns[k].orphan_ns &&
		    now - a->conns[k].orphan_ns > ORPHAN_NS) {
			ids = pt_xrealloc(ids, n + 1, sizeof(*ids));
			ids[n++] = a->conns[k].id;
		}
	for (k = 0; k < n; k++)
		conn_del(a, ids[k]);
	free(ids);
}

/* ---- sessions and segments ---- */

struct session *ag_session_by_id(struct agent *a, uint32_t id)
{
	int i;

	for (i = 0; i < a->ns; i++)
		if (a->s[i]->id == id)
			return a->s[i];
	return NULL;
}

/*
 * The spool failed this session (disk full, say): it stops recording
 * here, Failed with the reason, and tries again after a while. The other
 * sessions go on.
 */
void ag_session_broken(struct agent *a, struct session *s, int err,
		       const char *doing)
{
	pt_err("session %s/%s: %s %s: %s; trying again in 30 s", s->spec.ns,
	       s->spec.name, doing, s->part, strerror(-err));
	snprintf(s->why, sizeof(s->why), "%s its segment: %s; trying again in 30 s",
		 doing, strerror(-err));
	s->broken_until = pt_now_mono_ns() + 30 * 1000000000ull;
	ag_segment_close(a, s);
	a->dirty = true;
}

static void write_rec(struct agent *a, struct session *s,
		      const struct pt_rec_hdr *h, size_t size)
{
	int err;

	if (!s->w)
		return;
	err = pt_capw_add(s->w, h, size);
	if (err)
		ag_session_broken(a, s, err, "writing");
}

void ag_write_target_rec(struct agent *a, struct session *s,
			 const struct target *t)
{
	struct pt_target_rec r = {};
	const char *base = strrchr(t->path, '/');

	r.h.type = PT_REC_TARGET;
	r.h.size = sizeof(r);
	r.h.ts_ns = pt_now_mono_ns();
	r.id = t->cgid;
	r.kind = PT_TARGET_CGROUP;
	r.session_id = s->id;
	snprintf(r.name, sizeof(r.name), "%.120s (%.130s)", t->desc,
		 base ? base + 1 : t->path);
	write_rec(a, s, &r.h, sizeof(r));
}

int ag_segment_open(struct agent *a, struct session *s)
{
	const struct pt_tls_proc_rec *p;
	int err, i;
	size_t k;

	err = pt_spool_new_segment(a->sp, s->spec.ns, s->spec.name, s->part,
				   sizeof(s->part));
	if (!err)
		err = pt_capw_open(&s->w, s->part, a->node);
	if (err) {
		s->w = NULL;
		ag_session_broken(a, s, err, "opening");
		return err;
	}
	s->seg_t0 = pt_now_mono_ns();
	s->seg_data = 0;
	for (i = 0; i < a->nt; i++)
		if (a->t[i].session == s->id)
			ag_write_target_rec(a, s, &a->t[i]);
	/* the TLS libraries of its processes, as the last scan found them */
	for (k = 0; (p = pt_tls_proc(a->rt.tls, k)); k++)
		if (p->session_id == s->id)
			write_rec(a, s, &p->h, sizeof(*p));
	/* connections that go on: their OPEN again, so the segment names them */
	for (k = 0; k < a->conns_cap; k++)
		if (a->conns[k].id && a->conns[k].open.session_id == s->id &&
		    !a->conns[k].need_open)
			write_rec(a, s, &a->conns[k].open.h,
				  sizeof(a->conns[k].open));
	return 0;
}

/* Close the open segment; keep it if it holds any traffic. */
void ag_segment_close(struct agent *a, struct session *s)
{
	int err;

	if (!s->w)
		return;
	err = pt_capw_close(s->w);
	s->w = NULL;
	/* a segment that did not close well reads up to its last block */
	if (err)
		pt_err("closing %s: %s (kept as it is)", s->part, strerror(-err));
	if (!s->seg_data) {
		unlink(s->part);
		return;
	}
	err = pt_spool_commit(a->sp, s->part);
	if (err)
		pt_err("closing %s: %s", s->part, strerror(-err));
	else
		s->segments++;
}

/*
 * Plaintext of a TLS connection whose socket is not known yet has no
 * OPEN: the record says its session. Its TLS_ASSOC, later, goes with the
 * socket's connection, and readers join the two.
 */
static uint32_t pseudo_session(const struct pt_rec_hdr *h)
{
	if (h->type != PT_REC_TLS_DATA || !(h->conn_id & PT_PSEUDO_CONN))
		return 0;
	return ((const struct pt_data *)h)->session;
}

int ag_on_record(void *ctx, const struct pt_rec_hdr *h, size_t size)
{
	struct agent *a = ctx;
	struct conn *c = NULL;
	struct session *s;
	uint32_t sid;

	if (h->type == PT_REC_CONN_OPEN) {
		const struct pt_conn_open *o = (const void *)h;

		conn_put(a, o);
		sid = o->session_id;
	} else if (h->type == PT_REC_STATS) {
		/* the node's totals: no one session's; /metrics has them */
		return 0;
	} else if (h->type == PT_REC_TLS_PROC) {
		/* said again in each later segment: not traffic to keep one */
		s = ag_session_by_id(a, ((const struct pt_tls_proc_rec *)h)->session_id);
		if (s)
			write_rec(a, s, h, size);
		return 0;
	} else {
		c = conn_find(a, h->conn_id);
		if (c)
			sid = c->open.session_id;
		else if (!(sid = pseudo_session(h))) {
			PT_BUMP(a->unrouted, 1);
			return 0;
		}
		if (c && h->type == PT_REC_ATTR) {
			const struct pt_attr *at = (const void *)h;

			/* OPENs written again in later segments carry it */
			c->open.pid = at->pid;
			c->open.tgid = at->tgid;
			memcpy(c->open.comm, at->comm, sizeof(c->open.comm));
		}
	}
	s = ag_session_by_id(a, sid);
	if (c && c->need_open && s && s->w) {
		write_rec(a, s, &c->open.h, sizeof(c->open));
		s->conns++;
		c->need_open = false;
	}
	if (h->type == PT_REC_CONN_CLOSE) {
		conn_del(a, h->conn_id);	/* c is gone from here on */
	}
	if (!s || !s->w) {
		PT_BUMP(a->unrouted, 1);
		return 0;
	}
	write_rec(a, s, h, size);
	s->seg_data++;
	PT_BUMP(a->events, 1);
	if (h->type == PT_REC_CONN_OPEN)
		s->conns++;
	else if (h->type == PT_REC_DATA) {
		const struct pt_data *d = (const void *)h;

		s->bytes += d->cap_len;
		PT_BUMP(a->payload, d->cap_len);
	} else if (h->type == PT_REC_LOSS)
		s->lost += ((const struct pt_loss *)h)->lost_bytes;
	if (a->seg_size && s->w && pt_capw_size(s->w) >= a->seg_size) {
		ag_segment_close(a, s);
		ag_segment_open(a, s);
	}
	if (s->spec.max_bytes && s->bytes >= s->spec.max_bytes && !s->done) {
		s->done = true;
		snprintf(s->why, sizeof(s->why), "maxBytes %llu reached on this node",
			 (unsigned long long)s->spec.max_bytes);
		a->dirty = true;
	}
	return 0;
}
