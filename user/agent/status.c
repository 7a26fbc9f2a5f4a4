// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What the agent tells: its node's entry on each session's status, by
 * server-side apply from a thread of its own, and /metrics
 * (agent/agent_int.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "agent/agent_int.h"
#include "base/common.h"
#include "base/jsonw.h"
#include "capture/metrics.h"
#include "capture/tls.h"
#include "podtap.h"

/* Processes listed on a session's status as not hooked, at most. */
#define TLS_NOT_HOOKED_LISTED	5

static const char *const phase_names[] = { "Pending", "Recording", "Done",
					   "Failed" };

/* ---- status: each node's entry, by server-side apply ---- */

void *ag_status_main(void *arg)
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
			/* the next ag_report carries the same, newer numbers */
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

/*
 * The TLS libraries of the session's processes on this node, as the last
 * scan found them: counts, and the first few that are not hooked, with
 * why. Nothing when the session has none.
 */
static void tls_entry(struct agent *a, struct session *s, char *buf,
		      size_t n)
{
	const struct pt_tls_proc_rec *p;
	uint64_t procs = 0, hooked = 0;
	size_t k, listed = 0, len;
	char *txt;
	FILE *f;

	buf[0] = 0;
	for (k = 0; (p = pt_tls_proc(a->rt.tls, k)); k++)
		if (p->session_id == s->id) {
			procs++;
			hooked += p->hook != PT_TLS_NOT_HOOKED;
		}
	if (!procs)
		return;
	f = open_memstream(&txt, &len);
	if (!f)
		pt_oom();
	fprintf(f, ",\"tls\":{\"processes\":%llu,\"hooked\":%llu",
		(unsigned long long)procs, (unsigned long long)hooked);
	if (procs > hooked) {
		fputs(",\"notHooked\":[", f);
		for (k = 0; (p = pt_tls_proc(a->rt.tls, k)) &&
		     listed < TLS_NOT_HOOKED_LISTED; k++) {
			if (p->session_id != s->id || p->hook != PT_TLS_NOT_HOOKED)
				continue;
			fprintf(f, "%s{\"pid\":%u,\"command\":", listed ? "," : "",
				p->tgid);
			pt_json_str(f, p->comm);
			fputs(",\"library\":", f);
			pt_json_str(f, p->path);
			fputs(",\"reason\":", f);
			pt_json_str(f, p->why);
			fputc('}', f);
			listed++;
		}
		fputc(']', f);
	}
	fputc('}', f);
	fclose(f);
	/* never cut: the counts alone if the list does not fit */
	if (len < n)
		memcpy(buf, txt, len + 1);
	else
		snprintf(buf, n, ",\"tls\":{\"processes\":%llu,\"hooked\":%llu}",
			 (unsigned long long)procs, (unsigned long long)hooked);
	free(txt);
}

void ag_report(struct agent *a, struct session *s, bool force)
{
	enum phase ph = session_phase(s);
	char entry[sizeof(s->last)], key[512], stamp[40], tls[3072];
	char *body, *path, *msg, *fm;
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
	tls_entry(a, s, tls, sizeof(tls));
	snprintf(entry, sizeof(entry),
		 "%s,\"connections\":%llu,\"bytes\":%llu,\"lostBytes\":%llu,\"segments\":%llu%s",
		 key, (unsigned long long)s->conns, (unsigned long long)s->bytes,
		 (unsigned long long)s->lost, (unsigned long long)s->segments,
		 tls);
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

void ag_write_metrics(void *ctx, FILE *f)
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

	pt_kwatch_stats(a->wsess, &ws[0]);
	pt_kwatch_stats(a->wpods, &ws[1]);
	pt_spool_stats(a->sp, &sp);
	pthread_mutex_lock(&a->st_mu);
	writes = a->status_writes;
	errors = a->status_errors;
	pthread_mutex_unlock(&a->st_mu);

	pt_prom_head(f, "podtap_sessions", "gauge",
		     "RecordingSessions known, and those capturing on this node.");
	pt_prom_u64(f, "podtap_sessions", "state=\"known\"", PT_READ(a->n_sessions));
	pt_prom_u64(f, "podtap_sessions", "state=\"capturing\"", PT_READ(a->n_active));
	pt_prom_one(f, "podtap_pods", "gauge",
		    "Pods of this node the agent sees.",
		    PT_READ(a->n_pods));
	pt_prom_head(f, "podtap_targets", "gauge", "Targets, by kind.");
	pt_prom_u64(f, "podtap_targets", "kind=\"cgroup\"", PT_READ(a->n_targets));
	pt_prom_one(f, "podtap_records_written_total", "counter",
		    "Records written to segments.",
		    PT_READ(a->events));
	pt_prom_one(f, "podtap_payload_bytes_written_total", "counter",
		    "Payload bytes written to segments.",
		    PT_READ(a->payload));
	pt_prom_one(f, "podtap_records_unrouted_total", "counter",
		    "Records of connections whose session ended or is gone (not written).",
		    PT_READ(a->unrouted));
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

/*
 * Ready once what both watches first listed is in effect (targets
 * attached): a node with nothing to record is ready too.
 */
bool ag_is_ready(void *ctx)
{
	struct agent *a = ctx;

	return PT_READ(a->applied);
}
