// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * podtap agent: the per-node recorder of a cluster. It watches
 * RecordingSessions and the pods of its node, captures the containers the
 * sessions select, writes each session's records to segments in a spool
 * (uploaded to a collector if one is given), and reports what it does on
 * each session's status, in an entry of its own.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "agent_k8s.h"
#include "capfile.h"
#include "cgroup.h"
#include "cmds.h"
#include "common.h"
#include "jsonw.h"
#include "k8s.h"
#include "loader.h"
#include "metrics.h"
#include "spool.h"
#include "tgnames.h"

#define API_GROUP	"/apis/podtap.dev/v1alpha1"
#define SRC_SESSIONS	1
#define SRC_PODS	2
#define IDLE_POLL_NS	(200 * 1000000ull)
#define ORPHAN_NS	(600 * 1000000000ull)
#define STATUS_IDLE_NS	(60 * 1000000000ull)	/* unchanged: lastUpdate only */
#define RESOLVE_EVERY_NS (2 * 1000000000ull)

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
}

enum phase { PH_PENDING, PH_RECORDING, PH_DONE, PH_FAILED };
static const char *const phase_names[] = { "Pending", "Recording", "Done",
					   "Failed" };

struct session {
	struct pt_session_spec spec;
	uint32_t id;		/* in target maps and records */
	bool seen;		/* named by the latest list */
	bool done;		/* duration or maxBytes reached */
	char why[160];		/* message on the status */
	/* this node's part */
	struct pt_capw *w;	/* open segment, or NULL */
	char part[PATH_MAX];
	uint64_t seg_t0, seg_data;	/* opened at; DATA/OPEN records in it */
	uint64_t broken_until;	/* its spool failed: Failed until then */
	uint64_t segments, bytes, lost, conns;
	int pods, targets;
	bool reported;		/* has an entry on the status */
	char last[1024];	/* last status sent, without lastUpdate */
	char last_key[512];	/* its phase, message, pods and targets */
	uint64_t last_ns;
	int held;		/* selected containers an older session has */
	uint64_t failed_cgid;	/* the last target that could not be added */
};

struct pod {
	struct pt_pod p;
	bool seen;
};

struct target {
	uint64_t cgid;
	uint32_t session;
	char path[PATH_MAX];
	char desc[256];		/* ns/pod/container */
	bool want;		/* reconcile: still wanted */
};

/* Live connections: conn id -> session, and the OPEN record for reuse. */
struct conn {
	uint64_t id;		/* 0: free slot */
	bool need_open;		/* its session changed: OPEN it there first */
	uint64_t orphan_ns;	/* its target went at this time; 0: it has one */
	struct pt_conn_open open;
};

struct status_job {
	char *path, *body;
};

struct agent {
	const char *node;
	char cg_root[PATH_MAX];
	struct pt_kube kube;
	struct pt_kqueue q;
	struct pt_kwatch *wsess, *wpods;
	struct session **s;
	int ns;
	struct pod **p;
	int np;
	struct target *t;
	int nt;
	uint32_t next_id;
	struct pt_loader *l;
	struct pt_spool *sp;
	uint64_t seg_size, seg_time;
	uint64_t status_ns;	/* counters go to the status at most this often */
	bool dirty;
	bool targets_changed;	/* since the names were written */
	uint64_t last_resolve, last_purge;
	int fatal;		/* the ring cannot be read: stop */
	struct conn *conns;	/* open addressing, power of two */
	size_t conns_cap, conns_n;
	/* status writer thread */
	pthread_t st_thr;
	pthread_mutex_t st_mu;
	pthread_cond_t st_cv;
	struct status_job *jobs;
	int njobs;
	bool st_stop, st_started;
	uint64_t status_writes, status_errors;	/* under st_mu */
	/* read by the metrics thread */
	uint64_t heartbeat_ns, events, payload, opens, closes, unrouted;
	uint64_t n_sessions, n_active, n_pods, n_targets;
	bool capturing;
	bool applied;		/* the first lists reconciled */
};

#define BUMP(x, n)	__atomic_store_n(&(x), (x) + (n), __ATOMIC_RELAXED)
#define SET(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define READ(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)

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
static void conns_retarget(struct agent *a, uint64_t cgid, uint32_t session)
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
static void conns_orphan(struct agent *a, uint64_t cgid)
{
	size_t k;

	for (k = 0; k < a->conns_cap; k++)
		if (a->conns[k].id && a->conns[k].open.cgroup_id == cgid) {
			a->conns[k].open.session_id = 0;
			a->conns[k].orphan_ns = pt_now_mono_ns();
		}
}

/* Connections without a session for ten minutes are forgotten. */
static void conns_purge(struct agent *a)
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

static struct session *session_by_id(struct agent *a, uint32_t id)
{
	int i;

	for (i = 0; i < a->ns; i++)
		if (a->s[i]->id == id)
			return a->s[i];
	return NULL;
}

static void segment_close(struct agent *a, struct session *s);

/*
 * The spool failed this session (disk full, say): it stops recording
 * here, Failed with the reason, and tries again after a while. The other
 * sessions go on.
 */
static void session_broken(struct agent *a, struct session *s, int err,
			   const char *doing)
{
	pt_err("session %s/%s: %s %s: %s; trying again in 30 s", s->spec.ns,
	       s->spec.name, doing, s->part, strerror(-err));
	snprintf(s->why, sizeof(s->why), "%s its segment: %s; trying again in 30 s",
		 doing, strerror(-err));
	s->broken_until = pt_now_mono_ns() + 30 * 1000000000ull;
	segment_close(a, s);
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
		session_broken(a, s, err, "writing");
}

static void write_target_rec(struct agent *a, struct session *s,
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

static int segment_open(struct agent *a, struct session *s)
{
	int err, i;
	size_t k;

	err = pt_spool_new_segment(a->sp, s->spec.ns, s->spec.name, s->part,
				   sizeof(s->part));
	if (!err)
		err = pt_capw_open(&s->w, s->part, a->node);
	if (err) {
		s->w = NULL;
		session_broken(a, s, err, "opening");
		return err;
	}
	s->seg_t0 = pt_now_mono_ns();
	s->seg_data = 0;
	for (i = 0; i < a->nt; i++)
		if (a->t[i].session == s->id)
			write_target_rec(a, s, &a->t[i]);
	/* connections that go on: their OPEN again, so the segment names them */
	for (k = 0; k < a->conns_cap; k++)
		if (a->conns[k].id && a->conns[k].open.session_id == s->id &&
		    !a->conns[k].need_open)
			write_rec(a, s, &a->conns[k].open.h,
				  sizeof(a->conns[k].open));
	return 0;
}

/* Close the open segment; keep it if it holds any traffic. */
static void segment_close(struct agent *a, struct session *s)
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

static int on_record(void *ctx, const struct pt_rec_hdr *h, size_t size)
{
	struct agent *a = ctx;
	struct conn *c = NULL;
	struct session *s;
	uint32_t sid;

	if (h->type == PT_REC_CONN_OPEN) {
		const struct pt_conn_open *o = (const void *)h;

		conn_put(a, o);
		sid = o->session_id;
		BUMP(a->opens, 1);
	} else {
		c = conn_find(a, h->conn_id);
		if (!c) {
			BUMP(a->unrouted, 1);
			return 0;
		}
		sid = c->open.session_id;
		if (h->type == PT_REC_ATTR) {
			const struct pt_attr *at = (const void *)h;

			/* OPENs written again in later segments carry it */
			c->open.pid = at->pid;
			c->open.tgid = at->tgid;
			memcpy(c->open.comm, at->comm, sizeof(c->open.comm));
		}
	}
	s = session_by_id(a, sid);
	if (c && c->need_open && s && s->w) {
		write_rec(a, s, &c->open.h, sizeof(c->open));
		s->conns++;
		c->need_open = false;
	}
	if (h->type == PT_REC_CONN_CLOSE) {
		conn_del(a, h->conn_id);	/* c is gone from here on */
		BUMP(a->closes, 1);
	}
	if (!s || !s->w) {
		BUMP(a->unrouted, 1);
		return 0;
	}
	write_rec(a, s, h, size);
	s->seg_data++;
	BUMP(a->events, 1);
	if (h->type == PT_REC_CONN_OPEN)
		s->conns++;
	else if (h->type == PT_REC_DATA) {
		const struct pt_data *d = (const void *)h;

		s->bytes += d->cap_len;
		BUMP(a->payload, d->cap_len);
	} else if (h->type == PT_REC_LOSS)
		s->lost += ((const struct pt_loss *)h)->lost_bytes;
	if (a->seg_size && s->w && pt_capw_size(s->w) >= a->seg_size) {
		segment_close(a, s);
		segment_open(a, s);
	}
	if (s->spec.max_bytes && s->bytes >= s->spec.max_bytes && !s->done) {
		s->done = true;
		snprintf(s->why, sizeof(s->why), "maxBytes %llu reached on this node",
			 (unsigned long long)s->spec.max_bytes);
		a->dirty = true;
	}
	return 0;
}

/* ---- cluster view: events from the watches ---- */

static int find_session_uid(struct agent *a, const char *uid)
{
	int i;

	for (i = 0; i < a->ns; i++)
		if (!strcmp(a->s[i]->spec.uid, uid))
			return i;
	return -1;
}

static int find_pod_uid(struct agent *a, const char *uid)
{
	int i;

	for (i = 0; i < a->np; i++)
		if (!strcmp(a->p[i]->p.uid, uid))
			return i;
	return -1;
}

static void session_drop(struct agent *a, int i)
{
	struct session *s = a->s[i];

	/* its targets go at the next reconcile, which runs before any
	 * record could name the id again: ids are never reused */
	segment_close(a, s);
	pt_info("session %s/%s deleted", s->spec.ns, s->spec.name);
	pt_session_free(&s->spec);
	free(s);
	a->s[i] = a->s[--a->ns];
}

/*
 * What this node wrote of the session before (an earlier run of the
 * agent): the counts go on from there, and maxBytes stays reached.
 */
static void resume_counts(struct agent *a, struct session *s,
			  const struct pt_kev *e)
{
	struct pt_node_status ns;

	if (pt_session_node_status(e->obj, e->len, a->node, &ns))
		return;
	s->bytes = ns.bytes;
	s->lost = ns.lost;
	s->conns = ns.conns;
	s->segments = ns.segments;
	s->reported = true;
	if (!strcmp(ns.phase, "Done")) {
		s->done = true;
		snprintf(s->why, sizeof(s->why), "%s", ns.message);
	}
}

/* Returns whether the targets may change. */
static bool on_session(struct agent *a, const struct pt_kev *e)
{
	struct pt_session_spec spec;
	struct session *s;
	int i;

	if (e->type == PT_KEV_DELETED) {
		char *uid = pt_obj_uid(e->obj, e->len);

		i = uid ? find_session_uid(a, uid) : -1;
		if (i >= 0)
			session_drop(a, i);
		free(uid);
		return true;
	}
	if (pt_session_parse(e->obj, e->len, &spec)) {
		pt_dbg("a RecordingSession the agent cannot read: ignored");
		return false;
	}
	i = find_session_uid(a, spec.uid);
	if (i < 0) {
		s = pt_xcalloc(1, sizeof(*s));
		s->id = a->next_id++;
		a->s = pt_xrealloc(a->s, a->ns + 1, sizeof(*a->s));
		a->s[a->ns++] = s;
		if (spec.invalid[0])
			pt_err("session %s/%s: %s", spec.ns, spec.name,
			       spec.invalid);
		else
			pt_info("session %s/%s (id %u)", spec.ns, spec.name,
				s->id);
		resume_counts(a, s, e);
	} else {
		s = a->s[i];
		s->seen = true;
		/* the agents' own status writes: nothing to do */
		if (spec.generation && spec.generation == s->spec.generation) {
			pt_session_free(&spec);
			return false;
		}
		pt_session_free(&s->spec);
	}
	s->spec = spec;
	s->seen = true;
	return true;
}

static void on_pod(struct agent *a, const struct pt_kev *e)
{
	struct pt_pod p;
	int i;

	if (e->type == PT_KEV_DELETED) {
		char *uid = pt_obj_uid(e->obj, e->len);

		i = uid ? find_pod_uid(a, uid) : -1;
		if (i >= 0) {
			pt_pod_free(&a->p[i]->p);
			free(a->p[i]);
			a->p[i] = a->p[--a->np];
		}
		free(uid);
		return;
	}
	if (pt_pod_parse(e->obj, e->len, &p)) {
		pt_dbg("a pod the agent cannot read: ignored");
		return;
	}
	/* the field selector says so, but a stale event may not */
	if (!p.node || strcmp(p.node, a->node)) {
		i = find_pod_uid(a, p.uid);
		if (i >= 0) {
			pt_pod_free(&a->p[i]->p);
			free(a->p[i]);
			a->p[i] = a->p[--a->np];
		}
		pt_pod_free(&p);
		return;
	}
	i = find_pod_uid(a, p.uid);
	if (i < 0) {
		a->p = pt_xrealloc(a->p, a->np + 1, sizeof(*a->p));
		a->p[a->np] = pt_xcalloc(1, sizeof(struct pod));
		i = a->np++;
	} else {
		pt_pod_free(&a->p[i]->p);
	}
	a->p[i]->p = p;
	a->p[i]->seen = true;
}

/* A full list is starting (begin) or done: what it did not name is gone. */
static void on_sync(struct agent *a, int source, bool begin)
{
	int i;

	if (source == SRC_SESSIONS) {
		for (i = a->ns - 1; i >= 0; i--)
			if (begin)
				a->s[i]->seen = false;
			else if (!a->s[i]->seen)
				session_drop(a, i);
		return;
	}
	for (i = a->np - 1; i >= 0; i--)
		if (begin) {
			a->p[i]->seen = false;
		} else if (!a->p[i]->seen) {
			pt_pod_free(&a->p[i]->p);
			free(a->p[i]);
			a->p[i] = a->p[--a->np];
		}
}

static void take_events(struct agent *a)
{
	struct pt_kev *e, *all = pt_kqueue_take(&a->q);

	for (e = all; e; e = e->next) {
		if (e->type == PT_KEV_SYNC_BEGIN || e->type == PT_KEV_SYNC_END) {
			on_sync(a, e->source, e->type == PT_KEV_SYNC_BEGIN);
			a->dirty = true;
		} else if (e->source == SRC_SESSIONS) {
			a->dirty |= on_session(a, e);
		} else {
			on_pod(a, e);
			a->dirty = true;
		}
	}
	pt_kev_free(all);
}

/* ---- reconcile: the targets the sessions want, attached ---- */

static int cmp_session_age(const void *x, const void *y)
{
	const struct session *a = *(struct session *const *)x;
	const struct session *b = *(struct session *const *)y;

	if (a->spec.created_real_ns != b->spec.created_real_ns)
		return a->spec.created_real_ns < b->spec.created_real_ns ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* Past spec.duration (a duration beyond the year 2554 never ends). */
static bool session_expired(const struct session *s)
{
	uint64_t d = s->spec.duration_ns, c = s->spec.created_real_ns;

	return d && d < UINT64_MAX - c && pt_now_real_ns() >= c + d;
}

static bool session_live(const struct session *s)
{
	return !s->spec.invalid[0] && !s->done &&
	       pt_now_mono_ns() >= s->broken_until && !session_expired(s);
}

static struct target *target_find(struct agent *a, uint64_t cgid)
{
	int i;

	for (i = 0; i < a->nt; i++)
		if (a->t[i].cgid == cgid)
			return &a->t[i];
	return NULL;
}

/* Want cgroup cgid for session s; attach it if new. */
static void want_target(struct agent *a, struct session *s, uint64_t cgid,
			const char *path, const char *desc)
{
	struct target *t = target_find(a, cgid);

	if (t && t->want) {
		s->held++;	/* an older session has it */
		return;
	}
	if (t && t->session == s->id) {
		t->want = true;
		s->targets++;
		return;
	}
	if (pt_loader_add_cgroup(a->l, path, cgid, s->id)) {
		/* said once: this is tried again at every reconcile */
		if (s->failed_cgid != cgid)
			pt_err("session %s/%s: cannot capture %s", s->spec.ns,
			       s->spec.name, desc);
		s->failed_cgid = cgid;
		return;
	}
	if (!t) {
		a->t = pt_xrealloc(a->t, a->nt + 1, sizeof(*a->t));
		t = &a->t[a->nt++];
	}
	t->cgid = cgid;
	t->session = s->id;
	t->want = true;
	conns_retarget(a, cgid, s->id);
	snprintf(t->path, sizeof(t->path), "%s", path);
	snprintf(t->desc, sizeof(t->desc), "%s", desc);
	s->targets++;
	a->targets_changed = true;
	pt_info("session %s/%s: capturing %s", s->spec.ns, s->spec.name, desc);
	if (!s->w)
		segment_open(a, s);
	else
		write_target_rec(a, s, t);
}

/* For `podtap status`: which pod and session each target is. */
static void name_targets(struct agent *a)
{
	struct pt_tgname *v = pt_xcalloc(a->nt + 1, sizeof(*v));
	char **names = pt_xcalloc(a->nt + 1, sizeof(*names));
	int i, err;

	for (i = 0; i < a->nt; i++) {
		struct session *s = session_by_id(a, a->t[i].session);

		if (s && asprintf(&names[i], "%s/%s", s->spec.ns,
				  s->spec.name) < 0)
			pt_oom();
		v[i].kind = PT_TARGET_CGROUP;
		v[i].id = a->t[i].cgid;
		v[i].session = a->t[i].session;
		v[i].session_name = names[i];
		v[i].what = a->t[i].desc;
	}
	err = pt_tgnames_write(v, a->nt);
	if (err)
		pt_dbg("%s: %s", PT_TGNAMES_DIR, strerror(-err));
	for (i = 0; i < a->nt; i++)
		free(names[i]);
	free(names);
	free(v);
	a->targets_changed = false;
}

static void reconcile(struct agent *a)
{
	int i, k, c, active = 0;

	qsort(a->s, a->ns, sizeof(*a->s), cmp_session_age);
	for (i = 0; i < a->nt; i++)
		a->t[i].want = false;
	for (i = 0; i < a->ns; i++) {
		struct session *s = a->s[i];

		s->pods = s->targets = s->held = 0;
		if (s->broken_until && pt_now_mono_ns() >= s->broken_until) {
			s->broken_until = 0;	/* try the spool again */
			s->why[0] = 0;
		}
		if (!s->done && !s->spec.invalid[0] && session_expired(s)) {
			s->done = true;
			snprintf(s->why, sizeof(s->why), "duration reached");
		}
		if (!session_live(s))
			continue;
		for (k = 0; k < a->np; k++) {
			const struct pt_pod *p = &a->p[k]->p;

			if (p->terminated || !pt_session_selects(&s->spec, p))
				continue;
			s->pods++;
			for (c = 0; c < p->nc; c++) {
				char path[PATH_MAX], desc[256];
				uint64_t id;

				if (!pt_session_wants_container(&s->spec, p->c[c].name) ||
				    pt_container_cgroup(a->cg_root, p, &p->c[c],
							path, sizeof(path)) ||
				    pt_cgroup_id(path, &id))
					continue;
				snprintf(desc, sizeof(desc), "%s/%s/%s", p->ns,
					 p->name, p->c[c].name);
				want_target(a, s, id, path, desc);
			}
		}
		active += s->targets > 0;
	}
	for (i = a->nt - 1; i >= 0; i--) {
		if (a->t[i].want)
			continue;
		pt_info("no longer capturing %s", a->t[i].desc);
		pt_loader_remove_cgroup(a->l, a->t[i].cgid);
		conns_orphan(a, a->t[i].cgid);
		a->targets_changed = true;
		a->t[i] = a->t[--a->nt];
	}
	/* sessions that ended here: their last segment is closed */
	for (i = 0; i < a->ns; i++)
		if (!session_live(a->s[i]) && a->s[i]->w)
			segment_close(a, a->s[i]);
	if (a->targets_changed)
		name_targets(a);
	if (pt_now_mono_ns() - a->last_purge > 60 * 1000000000ull) {
		conns_purge(a);
		a->last_purge = pt_now_mono_ns();
	}
	if (!a->applied) {
		struct pt_kwatch_stats s1, s2;

		pt_kwatch_stats(a->wsess, &s1);
		pt_kwatch_stats(a->wpods, &s2);
		/* the first lists are in effect: targets attached */
		if (s1.synced && s2.synced)
			SET(a->applied, true);
	}
	SET(a->n_sessions, (uint64_t)a->ns);
	SET(a->n_active, (uint64_t)active);
	SET(a->n_targets, (uint64_t)a->nt);
	SET(a->n_pods, (uint64_t)a->np);
	a->dirty = false;
	a->last_resolve = pt_now_mono_ns();
}

/* ---- status: each node's entry, by server-side apply ---- */

static void *status_main(void *arg)
{
	struct agent *a = arg;

	pthread_mutex_lock(&a->st_mu);
	for (;;) {
		struct status_job j;
		char *resp;
		long code;
		int err;

		while (!a->njobs && !a->st_stop)
			pthread_cond_wait(&a->st_cv, &a->st_mu);
		if (!a->njobs)
			break;	/* stopping, and all was sent */
		j = a->jobs[0];
		memmove(&a->jobs[0], &a->jobs[1], (a->njobs - 1) * sizeof(j));
		a->njobs--;
		pthread_mutex_unlock(&a->st_mu);
		err = pt_kube_call(&a->kube, "PATCH", j.path,
				   "application/apply-patch+yaml", j.body,
				   &resp, &code);
		pthread_mutex_lock(&a->st_mu);
		if (err || code < 200 || code > 299) {
			/* the next report carries the same, newer numbers */
			if (!a->status_errors++ || pt_verbose)
				pt_err("status of %s: %s%s", j.path,
				       err ? "" : "HTTP ", err ? resp :
				       code == 404 ? "404 (session gone)" :
				       code == 403 ? "403 (RBAC: the agent may not patch recordingsessions/status)" :
				       resp);
			/* stopping: one failure says the rest would fail too */
			while (a->st_stop && a->njobs) {
				a->njobs--;
				free(a->jobs[a->njobs].path);
				free(a->jobs[a->njobs].body);
			}
		} else {
			a->status_writes++;
		}
		free(resp);
		free(j.path);
		free(j.body);
	}
	pthread_mutex_unlock(&a->st_mu);
	return NULL;
}

/* Queue a status apply; a newer one for the same session replaces it. */
static void status_queue(struct agent *a, char *path, char *body)
{
	int i;

	pthread_mutex_lock(&a->st_mu);
	for (i = 0; i < a->njobs; i++)
		if (!strcmp(a->jobs[i].path, path))
			break;
	if (i == a->njobs) {
		a->jobs = pt_xrealloc(a->jobs, a->njobs + 1, sizeof(*a->jobs));
		a->njobs++;
	} else {
		free(a->jobs[i].path);
		free(a->jobs[i].body);
	}
	a->jobs[i].path = path;
	a->jobs[i].body = body;
	pthread_cond_signal(&a->st_cv);
	pthread_mutex_unlock(&a->st_mu);
}

static enum phase session_phase(const struct session *s)
{
	if (s->spec.invalid[0] || pt_now_mono_ns() < s->broken_until)
		return PH_FAILED;
	if (s->done)
		return PH_DONE;
	return s->targets ? PH_RECORDING : PH_PENDING;
}

static void report(struct agent *a, struct session *s, bool force)
{
	enum phase ph = session_phase(s);
	char entry[1024], key[512], stamp[40], *body, *path, *msg, *fm;
	size_t n;
	FILE *f;
	uint64_t now = pt_now_mono_ns();

	/* a node with nothing of the session says nothing */
	if (!s->reported && !s->pods && !s->segments && !s->spec.invalid[0])
		return;
	f = open_memstream(&msg, &n);
	if (!f)
		pt_oom();
	pt_json_str(f, s->spec.invalid[0] ? s->spec.invalid : s->why[0] ?
		    s->why : ph != PH_PENDING ? "" : s->held ?
		    "the selected containers are recorded by an older session" :
		    s->pods ? "waiting for the containers' cgroups" :
		    "no selected pod on this node");
	fclose(f);
	snprintf(key, sizeof(key),
		 "\"phase\":\"%s\",\"message\":%s,\"pods\":%d,\"targets\":%d",
		 phase_names[ph], msg, s->pods, s->targets);
	snprintf(entry, sizeof(entry),
		 "%s,\"connections\":%llu,\"bytes\":%llu,\"lostBytes\":%llu,\"segments\":%llu",
		 key, (unsigned long long)s->conns, (unsigned long long)s->bytes,
		 (unsigned long long)s->lost, (unsigned long long)s->segments);
	free(msg);
	/*
	 * Every agent watches every session, so each write reaches all of
	 * them: a change of phase or targets goes out at once, counters at
	 * most every --status-interval, an unchanged entry every minute.
	 */
	if (!force && !strcmp(key, s->last_key) &&
	    now - s->last_ns < (strcmp(entry, s->last) ? a->status_ns :
				STATUS_IDLE_NS))
		return;
	snprintf(s->last, sizeof(s->last), "%s", entry);
	snprintf(s->last_key, sizeof(s->last_key), "%s", key);
	s->last_ns = now;
	s->reported = true;
	pt_fmt_time(stamp, sizeof(stamp), pt_now_real_ns(), 3);
	f = open_memstream(&body, &n);
	if (!f)
		pt_oom();
	fprintf(f, "{\"apiVersion\":\"podtap.dev/v1alpha1\",\"kind\":\"RecordingSession\",\"metadata\":{\"name\":");
	pt_json_str(f, s->spec.name);
	fprintf(f, ",\"namespace\":");
	pt_json_str(f, s->spec.ns);
	fprintf(f, "},\"status\":{\"perNode\":[{\"node\":");
	pt_json_str(f, a->node);
	fprintf(f, ",%s,\"lastUpdate\":\"%s\"}]}}", entry, stamp);
	fclose(f);
	if (asprintf(&fm, "podtap-agent-%s", a->node) < 0 ||
	    asprintf(&path, API_GROUP "/namespaces/%s/recordingsessions/%s/status?fieldManager=%s&force=true",
		     s->spec.ns, s->spec.name, fm) < 0)
		pt_oom();
	free(fm);
	status_queue(a, path, body);
}

/* ---- metrics ---- */

static void write_metrics(void *ctx, FILE *f)
{
	struct agent *a = ctx;
	struct pt_spool_stats sp;
	struct pt_kwatch_stats ws[2];
	const char *res[2] = { "recordingsessions", "pods" };
	static const struct {
		const char *name, *help;
		size_t off;
	} api[] = {
		{ "podtap_apiserver_lists_total",
		  "Full lists of a resource (at start, and after a watch expired).",
		  offsetof(struct pt_kwatch_stats, lists) },
		{ "podtap_apiserver_watch_expired_total",
		  "Watches answered 410 Gone (resourceVersion too old).",
		  offsetof(struct pt_kwatch_stats, expired) },
		{ "podtap_apiserver_errors_total",
		  "Failed list or watch requests (retried).",
		  offsetof(struct pt_kwatch_stats, errors) },
		{ "podtap_apiserver_events_total",
		  "Watch events received (ADDED, MODIFIED, DELETED).",
		  offsetof(struct pt_kwatch_stats, events) },
	};
	uint64_t writes, errors;
	char lab[96];
	size_t k;
	int i;

	pt_loader_metrics(a->l, f);
	pt_kwatch_stats(a->wsess, &ws[0]);
	pt_kwatch_stats(a->wpods, &ws[1]);
	pt_spool_stats(a->sp, &sp);
	pthread_mutex_lock(&a->st_mu);
	writes = a->status_writes;
	errors = a->status_errors;
	pthread_mutex_unlock(&a->st_mu);

	pt_prom_head(f, "podtap_sessions", "gauge",
		     "RecordingSessions known, and those capturing on this node.");
	pt_prom_u64(f, "podtap_sessions", "state=\"known\"", READ(a->n_sessions));
	pt_prom_u64(f, "podtap_sessions", "state=\"capturing\"", READ(a->n_active));
	pt_prom_one(f, "podtap_pods", "gauge",
		    "Pods of this node the agent sees.",
		    READ(a->n_pods));
	pt_prom_head(f, "podtap_targets", "gauge", "Targets, by kind.");
	pt_prom_u64(f, "podtap_targets", "kind=\"cgroup\"", READ(a->n_targets));
	pt_prom_one(f, "podtap_attached_cgroups", "gauge",
		    "Cgroups the programs are attached to.",
		    READ(a->n_targets));
	pt_prom_one(f, "podtap_connections_tracked", "gauge",
		    "Connections open now (opened and not yet closed).",
		    READ(a->opens) - READ(a->closes));
	pt_prom_one(f, "podtap_records_written_total", "counter",
		    "Records written to segments.",
		    READ(a->events));
	pt_prom_one(f, "podtap_payload_bytes_written_total", "counter",
		    "Payload bytes written to segments.",
		    READ(a->payload));
	pt_prom_one(f, "podtap_records_unrouted_total", "counter",
		    "Records of connections whose session ended or is gone (not written).",
		    READ(a->unrouted));
	pt_prom_one(f, "podtap_spool_bytes", "gauge",
		    "Bytes of segments in the spool, open ones included.",
		    sp.bytes);
	pt_prom_one(f, "podtap_spool_segments", "gauge",
		    "Segments in the spool.",
		    sp.segments);
	pt_prom_one(f, "podtap_spool_dropped_segments_total", "counter",
		    "Closed segments removed to keep the spool under --spool-max.",
		    sp.dropped);
	pt_prom_one(f, "podtap_upload_queue_segments", "gauge",
		    "Closed segments waiting for the collector.",
		    sp.queue_segments);
	pt_prom_one(f, "podtap_upload_queue_bytes", "gauge",
		    "Bytes of closed segments waiting for the collector.",
		    sp.queue_bytes);
	pt_prom_one(f, "podtap_uploaded_segments_total", "counter",
		    "Segments the collector took.",
		    sp.uploaded);
	pt_prom_one(f, "podtap_uploaded_bytes_total", "counter",
		    "Bytes of segments the collector took.",
		    sp.uploaded_bytes);
	pt_prom_one(f, "podtap_upload_failures_total", "counter",
		    "Upload attempts that failed (retried).",
		    sp.upload_failures);
	pt_prom_head(f, "podtap_status_writes_total", "counter",
		     "Session status entries written to the API server, by result.");
	pt_prom_u64(f, "podtap_status_writes_total", "result=\"ok\"", writes);
	pt_prom_u64(f, "podtap_status_writes_total", "result=\"error\"", errors);
	for (k = 0; k < ARRAY_SIZE(api); k++) {
		pt_prom_head(f, api[k].name, "counter", api[k].help);
		for (i = 0; i < 2; i++) {
			snprintf(lab, sizeof(lab), "resource=\"%s\"", res[i]);
			pt_prom_u64(f, api[k].name, lab, *(const uint64_t *)
				    ((const char *)&ws[i] + api[k].off));
		}
	}
}

static bool is_healthy(void *ctx)
{
	struct agent *a = ctx;

	return pt_now_mono_ns() - READ(a->heartbeat_ns) < 5000000000ull;
}

/*
 * Ready once what both watches first listed is in effect (targets
 * attached): a node with nothing to record is ready too.
 */
static bool is_ready(void *ctx)
{
	struct agent *a = ctx;

	return READ(a->capturing) && READ(a->applied);
}

/* ---- the command ---- */

static void usage(FILE *f)
{
	fprintf(f,
"Usage: podtap agent [OPTIONS]\n"
"\n"
"The per-node recorder of a Kubernetes cluster (run it as a DaemonSet:\n"
"deploy/). It watches RecordingSessions (podtap.dev/v1alpha1) in every\n"
"namespace and the pods of this node, captures the TCP traffic of the\n"
"containers each session selects, writes it per session to capture\n"
"segments in the spool, uploads closed segments to a collector if one is\n"
"given, and keeps this node's entry of each session's status.perNode\n"
"current (server-side apply, field manager podtap-agent-NODE).\n"
"\n"
"Options:\n"
"      --node NAME          this node (default: $NODE_NAME, else the hostname)\n"
"      --kubeconfig FILE    API server and credentials (default: the pod's\n"
"                           service account, as in a DaemonSet)\n"
"      --spool DIR          segments: DIR/NAMESPACE/SESSION/NODE-TIME-SEQ.ptcap,\n"
"                           \".part\" while written (default: /var/lib/podtap/spool)\n"
"      --collector URL      POST closed segments to URL/v1/segments/NS/SESSION/FILE\n"
"                           and remove them once taken (default: keep them)\n"
"      --segment-size SIZE  close a segment at this size (default: 64Mi)\n"
"      --segment-time TIME  or after this long (default: 5m)\n"
"      --spool-max SIZE     keep at most this much of closed segments; the\n"
"                           oldest go first (default: 1Gi)\n"
"      --status-interval TIME  write changed counters to the session's status\n"
"                           at most this often (default: 10s; a change of\n"
"                           phase or targets goes at once)\n"
"      --cgroup-root DIR    where the kubelet's cgroups are (default: the\n"
"                           cgroup v2 mount)\n"
"      --ring-size SIZE     kernel ring buffer size (default: 32Mi)\n"
"      --poll TIME          how often the ring is drained (default: 10ms)\n"
"  -m, --metrics ADDR       serve /metrics, /healthz and /readyz on ADDR\n"
"      --pin                pin maps and programs under /sys/fs/bpf/podtap\n"
"      --log-format FMT     text (default) or json\n"
"  -v, --verbose            debug output\n"
"  -h, --help               this text\n"
"\n"
"SIZE is a Kubernetes quantity (64Mi, 1Gi; k, M, G are powers of 1000, Ki,\n"
"Mi, Gi of 1024), TIME a Go duration (5m, 1h30m, 1.5s; a bare number is\n"
"seconds), as in a RecordingSession.\n"
"\n"
"A session selects pods of its own namespace by label (spec.selector),\n"
"optionally only some containers (spec.containers), for spec.duration after\n"
"its creation and up to spec.maxBytes per node. docs/crd.md has the rest.\n"
"Read a session's segments with `podtap read SEG...` (several segments of\n"
"one session read as one capture, in order).\n");
}

static int setup(struct agent *a, bool pin,
		 const char *metrics_addr, struct pt_metrics **metrics,
		 const struct pt_loader_opts *lo)
{
	struct pt_kwatch_cfg sc = { .what = "recordingsessions",
		.path = API_GROUP "/recordingsessions", .source = SRC_SESSIONS };
	struct pt_kwatch_cfg pc = { .what = "pods", .path = "/api/v1/pods",
		.source = SRC_PODS };
	char fsel[320];
	int err;

	if (pt_loader_open(&a->l, lo))
		return -EINVAL;
	if (pin && pt_loader_pin(a->l, "/sys/fs/bpf/podtap"))
		return -EINVAL;
	snprintf(fsel, sizeof(fsel), "spec.nodeName=%s", a->node);
	pc.field_selector = fsel;
	if (pt_kwatch_start(&a->wsess, &a->kube, &sc, &a->q) ||
	    pt_kwatch_start(&a->wpods, &a->kube, &pc, &a->q))
		return -EINVAL;
	if (metrics_addr) {
		struct pt_metrics_cfg mc = {
			.addr = metrics_addr, .write = write_metrics,
			.healthy = is_healthy, .ready = is_ready, .ctx = a,
		};

		err = pt_loader_enable_stats(a->l);
		if (err)
			pt_err("note: kernel BPF statistics unavailable (%s); program run counts stay 0",
			       strerror(-err));
		if (pt_metrics_start(metrics, &mc))
			return -EINVAL;
	}
	return 0;
}

static void run(struct agent *a, uint64_t poll_ns)
{
	uint64_t last_flush = 0, last_report = 0;
	int i;

	while (!stop_sig && !a->fatal) {
		uint64_t now;
		int n = pt_loader_consume(a->l);

		if (n < 0) {
			pt_err("reading the ring buffer: %s", strerror(-n));
			a->fatal = n;
			break;
		}
		take_events(a);
		now = pt_now_mono_ns();
		for (i = 0; i < a->ns; i++)
			if (!a->s[i]->done && !a->s[i]->spec.invalid[0] &&
			    session_expired(a->s[i]))
				a->dirty = true;	/* its time is up */
		SET(a->heartbeat_ns, now);
		if (a->dirty || now - a->last_resolve >= RESOLVE_EVERY_NS)
			reconcile(a);
		for (i = 0; i < a->ns; i++) {
			struct session *s = a->s[i];

			if (s->w && s->seg_data && now - s->seg_t0 >= a->seg_time) {
				segment_close(a, s);
				segment_open(a, s);
			}
		}
		if (now - last_flush >= 250000000ull) {
			for (i = 0; i < a->ns; i++) {
				int err = a->s[i]->w ? pt_capw_flush(a->s[i]->w) : 0;

				if (err)
					session_broken(a, a->s[i], err, "writing");
			}
			last_flush = now;
		}
		if (now - last_report >= 1000000000ull) {
			for (i = 0; i < a->ns; i++)
				report(a, a->s[i], false);
			last_report = now;
		}
		if (n < 64) {
			/* nothing attached, nothing to drain: a node without
			 * sessions costs next to nothing */
			struct timespec ts = { 0, (long)(a->nt ? poll_ns :
							  IDLE_POLL_NS) };

			nanosleep(&ts, NULL);
		}
	}
}

/* Stop capturing, write what is left, close every segment. */
static void finish(struct agent *a)
{
	int i;

	pt_loader_detach(a->l);
	while (pt_loader_consume(a->l) > 0)
		;
	pt_loader_drain_losses(a->l);
	for (i = 0; i < a->ns; i++) {
		segment_close(a, a->s[i]);
		a->s[i]->targets = 0;
		/* Done and Failed say why already */
		if (session_live(a->s[i]))
			snprintf(a->s[i]->why, sizeof(a->s[i]->why),
				 "the agent stopped");
		report(a, a->s[i], true);
	}
}

static void teardown(struct agent *a)
{
	int i;

	pt_kwatch_stop(a->wsess);
	pt_kwatch_stop(a->wpods);
	if (a->st_started) {
		pthread_mutex_lock(&a->st_mu);
		a->st_stop = true;
		pthread_cond_signal(&a->st_cv);
		pthread_mutex_unlock(&a->st_mu);
		pthread_join(a->st_thr, NULL);
	}
	for (i = 0; i < a->njobs; i++) {
		free(a->jobs[i].path);
		free(a->jobs[i].body);
	}
	free(a->jobs);
	pt_kev_free(pt_kqueue_take(&a->q));
	for (i = 0; i < a->ns; i++) {
		if (a->s[i]->w) {
			pt_capw_abort(a->s[i]->w);
			unlink(a->s[i]->part);
		}
		pt_session_free(&a->s[i]->spec);
		free(a->s[i]);
	}
	free(a->s);
	for (i = 0; i < a->np; i++) {
		pt_pod_free(&a->p[i]->p);
		free(a->p[i]);
	}
	free(a->p);
	free(a->t);
	free(a->conns);
	pt_spool_close(a->sp);
	pt_loader_close(a->l);
	pt_kube_free(&a->kube);
}

int cmd_agent(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "node", required_argument, NULL, 'N' },
		{ "kubeconfig", required_argument, NULL, 'K' },
		{ "spool", required_argument, NULL, 'S' },
		{ "collector", required_argument, NULL, 'C' },
		{ "segment-size", required_argument, NULL, 'Z' },
		{ "segment-time", required_argument, NULL, 'T' },
		{ "spool-max", required_argument, NULL, 'X' },
		{ "cgroup-root", required_argument, NULL, 'G' },
		{ "status-interval", required_argument, NULL, 'U' },
		{ "ring-size", required_argument, NULL, 'R' },
		{ "poll", required_argument, NULL, 'P' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "pin", no_argument, NULL, 'I' },
		{ "log-format", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static struct agent a;
	struct pt_spool_cfg sc = { .dir = "/var/lib/podtap/spool",
				   .max_bytes = 1ull << 30 };
	struct pt_loader_opts lo = { .ring_bytes = 32 << 20 };
	const char *kubeconfig = NULL, *metrics_addr = NULL, *cgroot = NULL;
	const char *node_opt = NULL;
	struct pt_metrics *metrics = NULL;
	uint64_t poll_ns = 10 * 1000000ull, v;
	struct sigaction sa = {};
	char host[256] = "";
	struct stat sb;
	bool pin = false;
	int opt, rc = 1, err, c;

	memset(&a, 0, sizeof(a));
	a.seg_size = 64 << 20;
	a.seg_time = 300 * 1000000000ull;
	a.status_ns = 10 * 1000000000ull;
	a.next_id = 1;
	a.node = getenv("NODE_NAME");
	pthread_mutex_init(&a.st_mu, NULL);
	pthread_cond_init(&a.st_cv, NULL);
	pt_kqueue_init(&a.q);
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":m:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'N': node_opt = optarg; break;
		case 'K': kubeconfig = optarg; break;
		case 'S': sc.dir = optarg; break;
		case 'C':
			if (strncmp(optarg, "http://", 7) &&
			    strncmp(optarg, "https://", 8)) {
				pt_err("--collector %s: want an http:// or https:// URL", optarg);
				return 1;
			}
			sc.collector = optarg;
			break;
		case 'Z':
			if (pt_opt_size("--segment-size", optarg, 4096,
					UINT64_MAX, &a.seg_size))
				return 1;
			break;
		case 'T':
			if (pt_opt_duration("--segment-time", optarg,
					    100000000ull, UINT64_MAX, &a.seg_time))
				return 1;
			break;
		case 'X':
			if (pt_opt_size("--spool-max", optarg, 1, UINT64_MAX,
					&sc.max_bytes))
				return 1;
			break;
		case 'G': cgroot = optarg; break;
		case 'U':
			if (pt_opt_duration("--status-interval", optarg,
					    1000000000ull, UINT64_MAX, &a.status_ns))
				return 1;
			break;
		case 'R':
			if (pt_opt_ring_size(optarg, &v))
				return 1;
			lo.ring_bytes = v;
			break;
		case 'P':
			if (pt_opt_poll(optarg, &poll_ns))
				return 1;
			break;
		case 'm': metrics_addr = optarg; break;
		case 'I': pin = true; break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			c = pt_common_opt(opt, optarg);
			if (c > 0)
				break;
			if (!c)
				pt_bad_option("agent", opt, argv[optind - 1]);
			return 1;
		}
	}
	if (optind < argc) {
		pt_err("agent: unexpected argument '%s' (see --help)", argv[optind]);
		return 1;
	}
	if (node_opt && !*node_opt) {
		pt_err("--node: an empty name (give this node's name, or leave --node out for $NODE_NAME or the host name)");
		return 1;
	}
	if (node_opt)
		a.node = node_opt;
	if (!a.node || !*a.node) {
		gethostname(host, sizeof(host) - 1);
		a.node = host;
	}
	if (strlen(a.node) > 253 || strchr(a.node, '/') || strchr(a.node, '&')) {
		pt_err("--node %s: not a node name", a.node);
		return 1;
	}
	if (cgroot) {
		if (!realpath(cgroot, a.cg_root)) {
			pt_err("--cgroup-root %s: %s", cgroot, strerror(errno));
			return 1;
		}
	} else if ((err = pt_cgroup2_root(a.cg_root, sizeof(a.cg_root)))) {
		pt_err("cgroup v2 is not mounted: %s", strerror(-err));
		return 1;
	}
	sc.node = a.node;
	if (!stat(sc.dir, &sb) && !S_ISDIR(sb.st_mode)) {
		pt_err("--spool %s: not a directory", sc.dir);
		return 1;
	}
	if (!sc.dir[0]) {
		pt_err("--spool: an empty path");
		return 1;
	}
	if (pt_kube_config(&a.kube, kubeconfig))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	lo.on_record = on_record;
	lo.ctx = &a;
	if (pt_spool_open(&a.sp, &sc))
		goto out;
	err = pthread_create(&a.st_thr, NULL, status_main, &a);
	if (err) {
		pt_err("starting the status writer: %s", strerror(err));
		goto out;
	}
	a.st_started = true;
	SET(a.heartbeat_ns, pt_now_mono_ns());
	if (setup(&a, pin, metrics_addr, &metrics, &lo))
		goto out;
	SET(a.capturing, true);
	pt_info("agent on node %s: API server %s, spool %s%s%s%s%s", a.node,
		a.kube.server, sc.dir, sc.collector ? ", collector " : "",
		sc.collector ? sc.collector : "", metrics_addr ?
		", metrics on " : "", metrics_addr ? metrics_addr : "");
	run(&a, poll_ns);
	finish(&a);
	rc = a.fatal ? 1 : 0;
out:
	pt_tgnames_remove();
	pt_metrics_stop(metrics);
	teardown(&a);
	curl_global_cleanup();
	return rc;
}
