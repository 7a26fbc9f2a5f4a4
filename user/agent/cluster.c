// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's view of the cluster: sessions and pods from the watches,
 * and the targets the sessions want, attached (agent/agent_int.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "agent/agent_int.h"
#include "base/common.h"
#include "capture/cgroup.h"
#include "capture/tgnames.h"

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

	/* its targets go at the next ag_reconcile, which runs before any
	 * record could name the id again: ids are never reused */
	ag_segment_close(a, s);
	pt_loader_session_tls(a->rt.l, s->id, true);
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
	if (pt_loader_session_tls(a->rt.l, s->id, spec.tls))
		pt_err("session %s/%s: cannot turn TLS plaintext %s",
		       spec.ns, spec.name, spec.tls ? "on" : "off");
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

void ag_take_events(struct agent *a)
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

/* ---- ag_reconcile: the targets the sessions want, attached ---- */

static int cmp_session_age(const void *x, const void *y)
{
	const struct session *a = *(struct session *const *)x;
	const struct session *b = *(struct session *const *)y;

	if (a->spec.created_real_ns != b->spec.created_real_ns)
		return a->spec.created_real_ns < b->spec.created_real_ns ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* Past spec.duration (a duration beyond the year 2554 never ends). */
bool ag_session_expired(const struct session *s)
{
	uint64_t d = s->spec.duration_ns, c = s->spec.created_real_ns;

	return d && d < UINT64_MAX - c && pt_now_real_ns() >= c + d;
}

bool ag_session_live(const struct session *s)
{
	return !s->spec.invalid[0] && !s->done &&
	       pt_now_mono_ns() >= s->broken_until && !ag_session_expired(s);
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
	if (pt_loader_add_cgroup(a->rt.l, path, cgid, s->id)) {
		/* said once: this is tried again at every ag_reconcile */
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
	ag_conns_retarget(a, cgid, s->id);
	snprintf(t->path, sizeof(t->path), "%s", path);
	snprintf(t->desc, sizeof(t->desc), "%s", desc);
	s->targets++;
	a->targets_changed = true;
	pt_info("session %s/%s: capturing %s", s->spec.ns, s->spec.name, desc);
	if (!s->w)
		ag_segment_open(a, s);
	else
		ag_write_target_rec(a, s, t);
}

/* For `podtap status`: which pod and session each target is. */
static void name_targets(struct agent *a)
{
	struct pt_tgname *v = pt_xcalloc(a->nt + 1, sizeof(*v));
	char **names = pt_xcalloc(a->nt + 1, sizeof(*names));
	int i, err;

	for (i = 0; i < a->nt; i++) {
		struct session *s = ag_session_by_id(a, a->t[i].session);

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

void ag_reconcile(struct agent *a)
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
		if (!s->done && !s->spec.invalid[0] && ag_session_expired(s)) {
			s->done = true;
			snprintf(s->why, sizeof(s->why), "duration reached");
		}
		if (!ag_session_live(s))
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
		pt_loader_remove_cgroup(a->rt.l, a->t[i].cgid);
		ag_conns_orphan(a, a->t[i].cgid);
		a->targets_changed = true;
		a->t[i] = a->t[--a->nt];
	}
	/* sessions that ended here: their last segment is closed */
	for (i = 0; i < a->ns; i++)
		if (!ag_session_live(a->s[i]) && a->s[i]->w)
			ag_segment_close(a, a->s[i]);
	if (a->targets_changed)
		name_targets(a);
	if (pt_now_mono_ns() - a->last_purge > 60 * 1000000000ull) {
		ag_conns_purge(a);
		a->last_purge = pt_now_mono_ns();
	}
	if (!a->applied) {
		struct pt_kwatch_stats s1, s2;

		pt_kwatch_stats(a->wsess, &s1);
		pt_kwatch_stats(a->wpods, &s2);
		/* the first lists are in effect: targets attached */
		if (s1.synced && s2.synced)
			PT_SET(a->applied, true);
	}
	PT_SET(a->n_sessions, (uint64_t)a->ns);
	PT_SET(a->n_active, (uint64_t)active);
	PT_SET(a->n_targets, (uint64_t)a->nt);
	PT_SET(a->n_pods, (uint64_t)a->np);
	a->dirty = false;
	a->last_resolve = pt_now_mono_ns();
}
