/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The agent's own state, shared by its parts: route.c (records to each
 * session's segments), cluster.c (the watches' news, and the targets the
 * sessions want), status.c (each node's entry on a session's status, and
 * /metrics), agent.c (the run). Not for use outside agent/.
 */
#ifndef __PODTAP_AGENT_INT_H
#define __PODTAP_AGENT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "agent/agent.h"
#include "kube/objects.h"
#include "capfile/capfile.h"
#include "capture/runtime.h"
#include "kube/k8s.h"
#include "agent/spool.h"

#define API_GROUP	"/apis/podtap.dev/v1alpha1"
#define SRC_SESSIONS	1
#define SRC_PODS	2
#define ORPHAN_NS	(600 * 1000000000ull)
#define STATUS_IDLE_NS	(60 * 1000000000ull)	/* unchanged: lastUpdate only */
#define RESOLVE_EVERY_NS (2 * 1000000000ull)

enum phase { PH_PENDING, PH_RECORDING, PH_DONE, PH_FAILED };

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
	char last[4096];	/* last status sent, without lastUpdate */
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
	struct pt_runtime rt;
	struct pt_spool *sp;
	uint64_t seg_size, seg_time;
	uint64_t status_ns;	/* counters go to the status at most this often */
	bool dirty;
	bool targets_changed;	/* since the names were written */
	uint64_t last_resolve, last_purge;
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
	uint64_t events, payload, unrouted;
	uint64_t n_sessions, n_active, n_pods, n_targets;
	bool applied;		/* the first lists reconciled */
	/* between ticks */
	uint64_t last_flush, last_report;
};

/* route.c */
struct session *ag_session_by_id(struct agent *a, uint32_t id);
void ag_session_broken(struct agent *a, struct session *s, int err,
		       const char *what);
void ag_write_target_rec(struct agent *a, struct session *s,
			 const struct target *t);
int ag_segment_open(struct agent *a, struct session *s);
void ag_segment_close(struct agent *a, struct session *s);
void ag_conns_retarget(struct agent *a, uint64_t cgid, uint32_t session);
void ag_conns_orphan(struct agent *a, uint64_t cgid);
void ag_conns_purge(struct agent *a);
int ag_on_record(void *ctx, const struct pt_rec_hdr *h, size_t size);

/* cluster.c */
void ag_take_events(struct agent *a);
bool ag_session_expired(const struct session *s);
bool ag_session_live(const struct session *s);
void ag_reconcile(struct agent *a);

/* status.c */
void *ag_status_main(void *arg);
void ag_report(struct agent *a, struct session *s, bool force);
void ag_write_metrics(void *ctx, FILE *f);
bool ag_is_ready(void *ctx);

#endif
