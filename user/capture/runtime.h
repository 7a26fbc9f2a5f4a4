/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The capture runtime that every recorder runs: load and attach (the
 * loader), targets, the poll loop, the final drain, the counters, /metrics,
 * /healthz and /readyz. What a recorder does with the records is its sink:
 * `podtap record` writes one capture file, the agent routes records to
 * each session's segments.
 */
#ifndef __PODTAP_RUNTIME_H
#define __PODTAP_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "capture/loader.h"

/* Counters written by the capture loop only and read by the metrics
 * thread: relaxed atomics, one writer. */
#define PT_BUMP(x, n)	__atomic_store_n(&(x), (x) + (n), __ATOMIC_RELAXED)
#define PT_SET(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define PT_READ(x)	__atomic_load_n(&(x), __ATOMIC_RELAXED)

struct pt_sink {
	/* Each record, in ring order, then the totals as PT_REC_STATS. */
	int (*record)(void *ctx, const struct pt_rec_hdr *h, size_t size);
	/*
	 * Once per turn of the loop, after the ring was drained (flush,
	 * rotate, reconcile). Non-zero stops the run: > 0 because it is done
	 * (*why says why, for the summary), < 0 because it failed.
	 */
	int (*tick)(void *ctx, uint64_t now_ns, const char **why);
	/* Its own lines of /metrics, after the runtime's. */
	void (*metrics)(void *ctx, FILE *f);
	/* Ready beyond capturing (optional). */
	bool (*ready)(void *ctx);
	void *ctx;
};

struct pt_runtime_cfg {
	struct pt_loader_opts lo;	/* on_record and ctx are the runtime's */
	bool pin;			/* under PT_PIN_DIR */
	const char *metrics_addr;	/* NULL: no metrics server */
	uint64_t poll_ns;		/* ring drained this often */
	struct pt_sink sink;
};

#define PT_PIN_DIR	"/sys/fs/bpf/podtap"

struct pt_tls;

struct pt_runtime {
	struct pt_loader *l;
	struct pt_tls *tls;	/* the targets' TLS libraries, hooked */
	uint64_t last_tls_scan;
	struct pt_metrics *metrics;
	struct pt_sink sink;
	uint64_t poll_ns;
	/* by the loop; the metrics thread reads them */
	uint64_t opens, closes;
	uint64_t attached;	/* cgroups the programs are attached to */
	uint64_t heartbeat_ns;
	bool capturing;
	/* how the run ended */
	int stop_sig;		/* the signal that stopped it, or 0 */
	const char *why;	/* the sink's reason, or NULL */
	int err;		/* < 0: the ring or the sink failed */
};

/*
 * From here on SIGINT, SIGTERM and SIGHUP end the run cleanly, and a
 * reader that goes away is a write error rather than SIGPIPE.
 */
void pt_runtime_signals(void);
/* Load, pin, serve metrics; one line and < 0 on error (then close it). */
int pt_runtime_open(struct pt_runtime *rt, const struct pt_runtime_cfg *c);
/* Targets are attached: their TLS libraries are hooked, and /readyz may
 * say so. Called again after targets change. */
void pt_runtime_started(struct pt_runtime *rt);
/* The loop, until a signal, the sink or an error ends it; 0 or < 0. */
int pt_runtime_run(struct pt_runtime *rt);
/*
 * The end of every run: detach (nothing new after this), the records
 * left in the ring, the losses the programs still hold, then the
 * counter totals as a PT_REC_STATS record, all to the sink.
 */
void pt_runtime_drain(struct pt_runtime *rt, struct pt_counters *totals);
/* Stop serving metrics, unload and unpin; safe on a failed open. */
void pt_runtime_close(struct pt_runtime *rt);

#endif
