// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The capture runtime (capture/runtime.h): the same loop for every recorder. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include "base/common.h"
#include "capture/metrics.h"
#include "capture/runtime.h"
#include "capture/tls.h"

/* With nothing attached there is nothing to drain: a node without
 * sessions costs next to nothing. */
#define IDLE_POLL_NS	(200 * 1000000ull)
/* Below this many records a turn, the ring is all but empty: sleep. */
#define BUSY_RECORDS	64
/* New TLS library files of the targets are looked for this often. */
#define TLS_SCAN_NS	(2 * 1000000000ull)
/* The loop turns every poll; this long without a turn is stuck. */
#define HEALTHY_NS	(5 * 1000000000ull)

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
}

void pt_runtime_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int on_record(void *ctx, const struct pt_rec_hdr *h, size_t size)
{
	struct pt_runtime *rt = ctx;

	if (h->type == PT_REC_CONN_OPEN)
		PT_BUMP(rt->opens, 1);
	else if (h->type == PT_REC_CONN_CLOSE)
		PT_BUMP(rt->closes, 1);
	return rt->sink.record(rt->sink.ctx, h, size);
}

static void write_metrics(void *ctx, FILE *f)
{
	struct pt_runtime *rt = ctx;
	uint64_t opens = PT_READ(rt->opens), closes = PT_READ(rt->closes);

	pt_loader_metrics(rt->l, f);
	/* a CLOSE whose OPEN did not fit the ring is counted too */
	pt_prom_one(f, "podtap_connections_tracked", "gauge",
		    "Connections open now (opened and not yet closed).",
		    opens > closes ? opens - closes : 0);
	pt_prom_one(f, "podtap_attached_cgroups", "gauge",
		    "Cgroups the programs are attached to.",
		    PT_READ(rt->attached));
	if (rt->sink.metrics)
		rt->sink.metrics(rt->sink.ctx, f);
	if (rt->tls) {
		struct pt_tls_stats ts;

		/* a plain read: the loop's scan may be counting */
		pt_tls_stats(rt->tls, &ts);
		pt_prom_head(f, "podtap_tls_processes", "gauge",
			     "Target processes using a TLS library as of the last scan (every 2 s; each library of a process once), by whether its calls are hooked.");
		pt_prom_u64(f, "podtap_tls_processes", "library=\"hooked\"",
			    ts.hooked_procs);
		pt_prom_u64(f, "podtap_tls_processes", "library=\"not_hooked\"",
			    ts.procs - ts.hooked_procs);
		pt_prom_head(f, "podtap_tls_probes", "gauge",
			     "Uprobes on the targets' TLS library calls, by whether the kernel emulates the instruction under each or single-steps it (a second trap, the larger part of a probe's cost).");
		pt_prom_u64(f, "podtap_tls_probes", "instruction=\"emulated\"",
			    ts.probes - ts.stepped);
		pt_prom_u64(f, "podtap_tls_probes", "instruction=\"single_stepped\"",
			    ts.stepped);
		pt_prom_one(f, "podtap_tls_session_uprobes", "gauge",
			    "1 when TLS libraries are hooked with session uprobes (Linux 6.13+): a process that is not a target traps once per call, not twice, and each library's uprobes are one link. 0: an entry and a return uprobe per function.",
			    ts.session);
		pt_prom_one(f, "podtap_tls_probes_per_process", "gauge",
			    "1 with --tls-probes process: the uprobes trap in the target processes alone, each hooked when a scan finds it. 0: in every process that maps a hooked library.",
			    ts.per_process);
	}
}

static bool is_healthy(void *ctx)
{
	struct pt_runtime *rt = ctx;

	return pt_now_mono_ns() - PT_READ(rt->heartbeat_ns) < HEALTHY_NS;
}

static bool is_ready(void *ctx)
{
	struct pt_runtime *rt = ctx;

	return PT_READ(rt->capturing) &&
	       (!rt->sink.ready || rt->sink.ready(rt->sink.ctx));
}

int pt_runtime_open(struct pt_runtime *rt, const struct pt_runtime_cfg *c)
{
	struct pt_loader_opts lo = c->lo;
	int err;

	memset(rt, 0, sizeof(*rt));
	rt->sink = c->sink;
	rt->poll_ns = c->poll_ns;
	PT_SET(rt->heartbeat_ns, pt_now_mono_ns());
	lo.on_record = on_record;
	lo.ctx = rt;
	err = pt_loader_open(&rt->l, &lo);
	if (err)
		return err;
	if (c->pin && (err = pt_loader_pin(rt->l, PT_PIN_DIR)))
		return err;
	pt_tls_open(&rt->tls, rt->l);
	/* what each process has: to the sink as it is, not a connection's */
	pt_tls_set_emit(rt->tls, rt->sink.record, rt->sink.ctx);
	if (c->metrics_addr) {
		struct pt_metrics_cfg mc = {
			.addr = c->metrics_addr, .write = write_metrics,
			.healthy = is_healthy, .ready = is_ready, .ctx = rt,
		};

		err = pt_loader_enable_stats(rt->l);
		if (err)
			pt_err("note: kernel BPF statistics unavailable (%s); program run counts stay 0",
			       strerror(-err));
		err = pt_metrics_start(&rt->metrics, &mc);
		if (err)
			return err;
	}
	return 0;
}

void pt_runtime_started(struct pt_runtime *rt)
{
	pt_tls_scan(rt->tls, rt->l, false);
	rt->last_tls_scan = pt_now_mono_ns();
	PT_SET(rt->attached, pt_loader_attach_count(rt->l));
	PT_SET(rt->capturing, true);
}

int pt_runtime_run(struct pt_runtime *rt)
{
	while (!stop_sig) {
		int n = pt_loader_consume(rt->l), r;
		uint64_t now;

		if (n < 0) {
			pt_err("reading the ring buffer: %s", strerror(-n));
			rt->err = n;
			break;
		}
		now = pt_now_mono_ns();
		PT_SET(rt->heartbeat_ns, now);
		r = rt->sink.tick ? rt->sink.tick(rt->sink.ctx, now, &rt->why) : 0;
		if (rt->tls && now - rt->last_tls_scan >= TLS_SCAN_NS) {
			pt_tls_scan(rt->tls, rt->l, false);
			rt->last_tls_scan = now;
		}
		/* for the metrics thread: the loader's list is the loop's */
		PT_SET(rt->attached, pt_loader_attach_count(rt->l));
		if (r < 0)
			rt->err = r;
		if (r)
			break;
		if (n < BUSY_RECORDS) {
			uint64_t ns = pt_loader_attach_count(rt->l) ?
				      rt->poll_ns : IDLE_POLL_NS;
			struct timespec ts = { (time_t)(ns / 1000000000ull),
					       (long)(ns % 1000000000ull) };

			nanosleep(&ts, NULL);
		}
	}
	rt->stop_sig = stop_sig;
	return rt->err;
}

void pt_runtime_drain(struct pt_runtime *rt, struct pt_counters *totals)
{
	struct pt_stats_rec sr = {};

	memset(totals, 0, sizeof(*totals));
	pt_tls_detach(rt->tls);
	pt_loader_detach(rt->l);
	PT_SET(rt->attached, 0);
	while (pt_loader_consume(rt->l) > 0)
		;
	pt_loader_drain_losses(rt->l);
	if (pt_loader_counters(rt->l, &sr.c))
		return;
	*totals = sr.c;
	sr.h.type = PT_REC_STATS;
	sr.h.size = sizeof(sr);
	sr.h.ts_ns = pt_now_mono_ns();
	rt->sink.record(rt->sink.ctx, &sr.h, sizeof(sr));
}

void pt_runtime_close(struct pt_runtime *rt)
{
	pt_metrics_stop(rt->metrics);
	rt->metrics = NULL;
	pt_tls_close(rt->tls);
	rt->tls = NULL;
	pt_loader_close(rt->l);
	rt->l = NULL;
}
