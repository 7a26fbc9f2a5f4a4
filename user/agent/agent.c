// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * podtap agent: the per-node recorder of a cluster. It watches
 * RecordingSessions and the pods of its node, captures the containers the
 * sessions select, writes each session's records to segments in a spool
 * (uploaded to a collector if one is given), and reports what it does on
 * each session's status, in an entry of its own. This file runs it; the
 * parts are route.c, cluster.c and status.c.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "agent/agent_int.h"
#include "base/common.h"
#include "capture/tgnames.h"

/* ---- the run ---- */

/* Each turn of the capture loop: the cluster's news, targets, segments. */
static int on_tick(void *ctx, uint64_t now, const char **why)
{
	struct agent *a = ctx;
	int i;

	ag_take_events(a);
	for (i = 0; i < a->ns; i++)
		if (!a->s[i]->done && !a->s[i]->spec.invalid[0] &&
		    ag_session_expired(a->s[i]))
			a->dirty = true;	/* its time is up */
	if (a->dirty || now - a->last_resolve >= RESOLVE_EVERY_NS)
		ag_reconcile(a);
	for (i = 0; i < a->ns; i++) {
		struct session *s = a->s[i];

		if (s->w && s->seg_data && now - s->seg_t0 >= a->seg_time) {
			ag_segment_close(a, s);
			ag_segment_open(a, s);
		}
	}
	if (now - a->last_flush >= 250000000ull) {
		for (i = 0; i < a->ns; i++) {
			int err = a->s[i]->w ? pt_capw_flush(a->s[i]->w) : 0;

			if (err)
				ag_session_broken(a, a->s[i], err, "writing");
		}
		a->last_flush = now;
	}
	if (now - a->last_report >= 1000000000ull) {
		for (i = 0; i < a->ns; i++)
			ag_report(a, a->s[i], false);
		a->last_report = now;
	}
	return 0;
}

/* Write what is left, close every segment, say so on each status. */
static void finish(struct agent *a)
{
	struct pt_counters totals;
	int i;

	pt_runtime_drain(&a->rt, &totals);
	for (i = 0; i < a->ns; i++) {
		ag_segment_close(a, a->s[i]);
		a->s[i]->targets = 0;
		/* Done and Failed say why already */
		if (ag_session_live(a->s[i]))
			snprintf(a->s[i]->why, sizeof(a->s[i]->why),
				 "the agent stopped");
		ag_report(a, a->s[i], true);
	}
}

static void teardown(struct agent *a)
{
	int i;

	/* first the metrics thread, which reads the watches and the spool */
	pt_runtime_close(&a->rt);
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
	pt_kube_free(&a->kube);
	pthread_mutex_destroy(&a->st_mu);
	pthread_cond_destroy(&a->st_cv);
}

int pt_agent_run(const struct pt_agent_cfg *c)
{
	struct pt_kwatch_cfg sc = { .what = "recordingsessions",
		.path = API_GROUP "/recordingsessions", .source = SRC_SESSIONS };
	struct pt_kwatch_cfg pc = { .what = "pods", .path = "/api/v1/pods",
		.source = SRC_PODS };
	struct pt_runtime_cfg rc = c->rt;
	static struct agent a;
	char fsel[320];
	int err, status = 1;

	memset(&a, 0, sizeof(a));
	a.node = c->node;
	snprintf(a.cg_root, sizeof(a.cg_root), "%s", c->cg_root);
	a.seg_size = c->seg_size;
	a.seg_time = c->seg_time;
	a.status_ns = c->status_ns;
	a.next_id = 1;
	pthread_mutex_init(&a.st_mu, NULL);
	pthread_cond_init(&a.st_cv, NULL);
	pt_kqueue_init(&a.q);
	if (pt_kube_config(&a.kube, c->kubeconfig))
		goto out;
	pt_runtime_signals();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (pt_spool_open(&a.sp, &c->spool))
		goto out;
	err = pthread_create(&a.st_thr, NULL, ag_status_main, &a);
	if (err) {
		pt_err("starting the status writer: %s", strerror(err));
		goto out;
	}
	a.st_started = true;
	rc.sink = (struct pt_sink){ .record = ag_on_record, .tick = on_tick,
				    .metrics = ag_write_metrics,
				    .ready = ag_is_ready, .ctx = &a };
	/* the watches first: /metrics, started with the runtime, reads them */
	snprintf(fsel, sizeof(fsel), "spec.nodeName=%s", a.node);
	pc.field_selector = fsel;
	if (pt_kwatch_start(&a.wsess, &a.kube, &sc, &a.q) ||
	    pt_kwatch_start(&a.wpods, &a.kube, &pc, &a.q))
		goto out;
	if (pt_runtime_open(&a.rt, &rc))
		goto out;
	pt_runtime_started(&a.rt);
	pt_info("agent on node %s: API server %s, spool %s%s%s%s%s", a.node,
		a.kube.server, c->spool.dir, c->spool.collector ?
		", collector " : "", c->spool.collector ? c->spool.collector : "",
		rc.metrics_addr ? ", metrics on " : "",
		rc.metrics_addr ? rc.metrics_addr : "");
	status = pt_runtime_run(&a.rt) ? 1 : 0;
	finish(&a);
out:
	pt_tgnames_remove();
	teardown(&a);
	curl_global_cleanup();
	return status;
}
