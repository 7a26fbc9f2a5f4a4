// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* podtap record: capture the TCP payload of target processes to a file. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "capfile.h"
#include "cgroup.h"
#include "cmds.h"
#include "common.h"
#include "loader.h"
#include "metrics.h"
#include "tgnames.h"

#define SESSION_CLI	1

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
}

struct rec_target {
	int kind;
	uint64_t id;
	char path[PATH_MAX];
	char name[256];
};

struct rec_state {
	struct pt_capw *w;
	int write_err;
	/* written by the capture loop, read by the metrics thread */
	uint64_t opens, closes, events, payload;
	uint64_t heartbeat_ns;	/* last turn of the capture loop */
	bool capturing;		/* targets attached */
	/* for /metrics */
	struct pt_loader *l;
	struct rec_target *tg;
	int ntg;
};

/* Single writer (the capture loop); the metrics thread only reads. */
#define BUMP(x, n)	__atomic_store_n(&(x), (x) + (n), __ATOMIC_RELAXED)
#define READ(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)

static int on_record(void *ctx, const struct pt_rec_hdr *h, size_t size)
{
	struct rec_state *s = ctx;
	int err;

	if (s->write_err)
		return 0;
	err = pt_capw_add(s->w, h, size);
	if (err) {
		s->write_err = err;
		return 0;
	}
	BUMP(s->events, 1);
	if (h->type == PT_REC_CONN_OPEN)
		BUMP(s->opens, 1);
	else if (h->type == PT_REC_CONN_CLOSE)
		BUMP(s->closes, 1);
	else if (h->type == PT_REC_DATA)
		BUMP(s->payload, ((const struct pt_data *)h)->cap_len);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: podtap record [OPTIONS] TARGET...\n"
"\n"
"Capture every byte of every TCP connection (IPv4 and IPv6, client and\n"
"server side) of the target processes, in both directions, to a capture\n"
"file that `podtap read` shows. Connections already open are captured from\n"
"their next byte on. Other processes on the host are not captured.\n"
"\n"
"Targets (repeatable, at least one):\n"
"  -c, --cgroup PATH      a cgroup v2 directory, absolute or relative to the\n"
"                         cgroup v2 mount (e.g. /kubepods.slice/...)\n"
"  -p, --pid PID          the cgroup of process PID\n"
"  -n, --pidns PID        every process in the pid namespace of PID\n"
"\n"
"Options:\n"
"  -w, --write FILE       capture file to write (default: podtap.ptcap)\n"
"  -d, --duration TIME    stop after TIME (e.g. 30s, 5m; default: Ctrl-C)\n"
"  -b, --max-bytes SIZE   stop after SIZE payload bytes (e.g. 100M)\n"
"      --ring-size SIZE   kernel ring buffer size (default: 32M)\n"
"      --poll TIME        how often the ring is drained (default: 10ms)\n"
"  -m, --metrics ADDR     serve /metrics (Prometheus), /healthz and /readyz\n"
"                         on ADDR: HOST:PORT, [V6]:PORT, or :PORT for all\n"
"                         addresses; turns on the kernel's BPF run-time\n"
"                         statistics for the per-program counters\n"
"      --pin              pin the maps and programs under /sys/fs/bpf/podtap\n"
"                         (for bpftool and podtap status); unpinned on exit\n"
"      --log-format FMT   text (default) or json: one object per line\n"
"  -q, --quiet            no live status line\n"
"  -v, --verbose          debug output, libbpf's included\n"
"  -h, --help             this text\n"
"\n"
"Needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN) and a kernel with BTF.\n");
}

static int add_pid_target(struct rec_target *t, const char *arg, bool pidns)
{
	uint64_t pid;
	uint32_t inum;
	int err;

	if (pt_parse_u64(arg, 1, INT_MAX, &pid)) {
		pt_err("%s %s: not a process id", pidns ? "--pidns" : "--pid",
		       arg);
		return -EINVAL;
	}
	if (pidns) {
		err = pt_pid_pidns((pid_t)pid, &inum);
		if (err) {
			pt_err("--pidns %s: %s", arg, err == -ENOENT ?
			       "no such process" : strerror(-err));
			return err;
		}
		t->kind = PT_TARGET_PIDNS;
		t->id = inum;
		snprintf(t->name, sizeof(t->name), "pidns:[%u] (of pid %s)",
			 inum, arg);
		return 0;
	}
	err = pt_pid_cgroup((pid_t)pid, t->path, sizeof(t->path));
	if (!err)
		err = pt_cgroup_id(t->path, &t->id);
	if (err) {
		pt_err("--pid %s: %s", arg, err == -ENOENT ?
		       "no such process (or it is in no cgroup v2 cgroup)" :
		       strerror(-err));
		return err;
	}
	t->kind = PT_TARGET_CGROUP;
	snprintf(t->name, sizeof(t->name), "%.200s (of pid %s)", t->path, arg);
	return 0;
}

static int add_cgroup_target(struct rec_target *t, const char *arg)
{
	char root[PATH_MAX] = "";
	int err;

	err = pt_cgroup_resolve(arg, t->path, sizeof(t->path), &t->id);
	if (err) {
		pt_cgroup2_root(root, sizeof(root));
		if (err == -ENOENT)
			pt_err("--cgroup %s: no such cgroup (cgroup v2 is mounted at %s)",
			       arg, root[0] ? root : "nowhere");
		else if (err == -ENOTDIR || err == -EXDEV)
			pt_err("--cgroup %s: not a cgroup v2 directory (cgroup v2 is mounted at %s)",
			       arg, root[0] ? root : "nowhere");
		else
			pt_err("--cgroup %s: %s", arg, strerror(-err));
		return err;
	}
	t->kind = PT_TARGET_CGROUP;
	snprintf(t->name, sizeof(t->name), "%.255s", t->path);
	return 0;
}

static void write_metrics(void *ctx, FILE *f)
{
	struct rec_state *s = ctx;
	int i, ncg = 0;

	pt_loader_metrics(s->l, f);
	pt_prom_one(f, "podtap_connections_tracked", "gauge",
		    "Connections open now (opened and not yet closed).",
		    READ(s->opens) - READ(s->closes));
	pt_prom_one(f, "podtap_records_written_total", "counter",
		    "Records written to the capture file.",
		    READ(s->events));
	pt_prom_one(f, "podtap_payload_bytes_written_total", "counter",
		    "Payload bytes written to the capture file.",
		    READ(s->payload));
	for (i = 0; i < s->ntg; i++)
		ncg += s->tg[i].kind == PT_TARGET_CGROUP;
	pt_prom_head(f, "podtap_targets", "gauge", "Targets, by kind.");
	pt_prom_u64(f, "podtap_targets", "kind=\"cgroup\"", ncg);
	pt_prom_u64(f, "podtap_targets", "kind=\"pidns\"", s->ntg - ncg);
	pt_prom_one(f, "podtap_sessions", "gauge",
		    "Recording sessions.",
		    1);
	pt_prom_one(f, "podtap_attached_cgroups", "gauge",
		    "Cgroups the programs are attached to.",
		    READ(s->capturing) ? pt_loader_attach_count(s->l) : 0);
}

static bool is_healthy(void *ctx)
{
	struct rec_state *s = ctx;

	/* the loop turns every --poll; a few seconds without is stuck */
	return pt_now_mono_ns() - READ(s->heartbeat_ns) < 5000000000ull;
}

static bool is_ready(void *ctx)
{
	return READ(((struct rec_state *)ctx)->capturing);
}

static void human(uint64_t v, char *buf, size_t n)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double d = (double)v;
	int i = 0;

	while (d >= 1024 && i < 4) {
		d /= 1024;
		i++;
	}
	snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", d, u[i]);
}

static void status_line(struct rec_state *s, struct pt_counters *c,
			uint64_t ev_rate)
{
	char b[32];
	uint64_t lost = 0;
	int i;

	for (i = 0; i < PT_LOSS_MAX; i++)
		lost += c->lost_bytes[i];
	human(s->payload, b, sizeof(b));
	fprintf(stderr, "\r\033[K%llu connections (%llu open)  %s captured  %llu events/s  %llu events lost (%llu bytes)",
		(unsigned long long)s->opens,
		(unsigned long long)(s->opens - s->closes), b,
		(unsigned long long)ev_rate,
		(unsigned long long)c->lost_events, (unsigned long long)lost);
}

static int write_targets(struct rec_state *s, struct rec_target *t, int n)
{
	struct pt_target_rec r;
	int i;

	for (i = 0; i < n; i++) {
		memset(&r, 0, sizeof(r));
		r.h.type = PT_REC_TARGET;
		r.h.size = sizeof(r);
		r.h.ts_ns = pt_now_mono_ns();
		r.id = t[i].id;
		r.kind = t[i].kind;
		r.session_id = SESSION_CLI;
		snprintf(r.name, sizeof(r.name), "%s", t[i].name);
		on_record(s, &r.h, sizeof(r));
	}
	return s->write_err;
}

/* For `podtap status`: what each target is (best effort). */
static void name_targets(const struct rec_target *t, int n)
{
	struct pt_tgname *v = pt_xcalloc(n + 1, sizeof(*v));
	int i, err;

	for (i = 0; i < n; i++) {
		v[i].kind = t[i].kind;
		v[i].id = t[i].id;
		v[i].session = SESSION_CLI;
		v[i].session_name = "podtap record";
		v[i].what = t[i].name;
	}
	err = pt_tgnames_write(v, n);
	if (err)
		pt_dbg("%s: %s", PT_TGNAMES_DIR, strerror(-err));
	free(v);
}

int cmd_record(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, 'c' },
		{ "pid", required_argument, NULL, 'p' },
		{ "pidns", required_argument, NULL, 'n' },
		{ "write", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'd' },
		{ "max-bytes", required_argument, NULL, 'b' },
		{ "ring-size", required_argument, NULL, 'R' },
		{ "poll", required_argument, NULL, 'P' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "pin", no_argument, NULL, 'I' },
		{ "log-format", required_argument, NULL, 'L' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	uint64_t duration = 0, max_bytes = 0, ring = 32 << 20;
	uint64_t poll_ns = 10 * 1000000ull;
	const char *out = "podtap.ptcap", *metrics_addr = NULL;
	struct pt_metrics *metrics = NULL;
	bool pin = false;
	struct rec_target *tg = NULL;
	struct pt_loader_opts lo = {};
	struct pt_loader *l = NULL;
	struct rec_state st = {};
	struct pt_counters c = {};
	struct sigaction sa = {};
	char host[64] = "";
	bool quiet = false, tty, started = false;
	int ntg = 0, opt, i, err = 0, rc = 1;
	uint64_t t0, last_flush, last_status, ev_at_status = 0;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:p:n:w:d:b:m:qvh", opts,
				  NULL)) != -1) {
		switch (opt) {
		case 'c': case 'p': case 'n':
			tg = pt_xrealloc(tg, ntg + 1, sizeof(*tg));
			memset(&tg[ntg], 0, sizeof(*tg));
			err = opt == 'c' ? add_cgroup_target(&tg[ntg], optarg) :
					   add_pid_target(&tg[ntg], optarg,
							  opt == 'n');
			if (err)
				goto out;
			ntg++;
			break;
		case 'w':
			out = optarg;
			break;
		case 'd':
			if (pt_parse_duration(optarg, &duration) || !duration) {
				pt_err("--duration %s: not a duration (try 30s, 500ms, 5m)", optarg);
				goto out;
			}
			break;
		case 'b':
			if (pt_parse_size(optarg, &max_bytes) || !max_bytes) {
				pt_err("--max-bytes %s: not a size (try 100M, 64K, 1G)", optarg);
				goto out;
			}
			break;
		case 'R':
			if (pt_opt_ring_size(optarg, &ring))
				goto out;
			break;
		case 'P':
			if (pt_opt_poll(optarg, &poll_ns))
				goto out;
			break;
		case 'm':
			metrics_addr = optarg;
			break;
		case 'I':
			pin = true;
			break;
		case 'L':
			if (pt_set_log_format(optarg)) {
				pt_err("--log-format %s: want text or json", optarg);
				goto out;
			}
			break;
		case 'q':
			quiet = true;
			break;
		case 'v':
			pt_verbose = true;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			pt_bad_option("record", opt, argv[optind - 1]);
			goto out;
		}
	}
	if (optind < argc) {
		pt_err("record: unexpected argument '%s' (targets are given with --cgroup, --pid or --pidns)",
		       argv[optind]);
		goto out;
	}
	if (!ntg) {
		pt_err("record: no target; give --cgroup PATH, --pid PID or --pidns PID (see --help)");
		goto out;
	}
	/* From here on a signal stops the recording cleanly. */
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	gethostname(host, sizeof(host) - 1);
	err = pt_capw_open(&st.w, out, host);
	if (err) {
		pt_err("-w %s: %s", out, strerror(-err));
		goto out;
	}
	lo.ring_bytes = ring;
	lo.on_record = on_record;
	lo.ctx = &st;
	if (pt_loader_open(&l, &lo))
		goto fail_file;
	if (pin && pt_loader_pin(l, "/sys/fs/bpf/podtap"))
		goto fail_file;
	st.l = l;
	st.tg = tg;
	st.ntg = ntg;
	st.heartbeat_ns = pt_now_mono_ns();
	if (metrics_addr) {
		struct pt_metrics_cfg mc = {
			.addr = metrics_addr, .write = write_metrics,
			.healthy = is_healthy, .ready = is_ready, .ctx = &st,
		};

		err = pt_loader_enable_stats(l);
		if (err)
			pt_err("note: kernel BPF statistics unavailable (%s); program run counts stay 0",
			       strerror(-err));
		if (pt_metrics_start(&metrics, &mc))
			goto fail_file;
	}
	for (i = 0; i < ntg; i++) {
		err = tg[i].kind == PT_TARGET_CGROUP ?
			pt_loader_add_cgroup(l, tg[i].path, tg[i].id, SESSION_CLI) :
			pt_loader_add_pidns(l, (uint32_t)tg[i].id, SESSION_CLI);
		if (err)
			goto fail_file;
		pt_dbg("target %s (id %llu)", tg[i].name,
		       (unsigned long long)tg[i].id);
	}
	started = true;
	__atomic_store_n(&st.capturing, true, __ATOMIC_RELAXED);
	name_targets(tg, ntg);
	if (write_targets(&st, tg, ntg))
		goto write_failed;

	tty = !quiet && isatty(STDERR_FILENO);
	if (!quiet)
		pt_info("recording %d target%s to %s%s%s; Ctrl-C stops", ntg,
			ntg == 1 ? "" : "s", out, metrics_addr ?
			", metrics on " : "", metrics_addr ? metrics_addr : "");
	t0 = last_flush = last_status = pt_now_mono_ns();
	while (!stop_sig && !st.write_err) {
		uint64_t now;
		int n = pt_loader_consume(l);

		if (n < 0) {
			pt_err("reading the ring buffer: %s", strerror(-n));
			goto fail_file;
		}
		now = pt_now_mono_ns();
		__atomic_store_n(&st.heartbeat_ns, now, __ATOMIC_RELAXED);
		if (now - last_flush >= 250000000ull) {
			if ((err = pt_capw_flush(st.w)))
				st.write_err = err;
			last_flush = now;
		}
		if (tty && now - last_status >= 1000000000ull) {
			pt_loader_counters(l, &c);
			status_line(&st, &c, (st.events - ev_at_status) *
					     1000000000ull / (now - last_status));
			ev_at_status = st.events;
			last_status = now;
		}
		if (duration && now - t0 >= duration)
			break;
		if (max_bytes && st.payload >= max_bytes)
			break;
		if (n < 64) {
			struct timespec ts = { 0, (long)poll_ns };

			nanosleep(&ts, NULL);
		}
	}
	/* Nothing new after detaching: the last records, losses, counters. */
	pt_loader_detach(l);
	while (pt_loader_consume(l) > 0)
		;
	pt_loader_drain_losses(l);
	if (!pt_loader_counters(l, &c)) {
		struct pt_stats_rec sr = {};

		sr.h.type = PT_REC_STATS;
		sr.h.size = sizeof(sr);
		sr.h.ts_ns = pt_now_mono_ns();
		sr.c = c;
		on_record(&st, &sr.h, sizeof(sr));
	}
	if (tty)
		fputc('\n', stderr);
	pt_metrics_stop(metrics);
	metrics = NULL;
	pt_loader_close(l);
	l = NULL;
	if (st.write_err)
		goto write_failed;
	err = pt_capw_close(st.w);
	st.w = NULL;
	if (err) {
		pt_err("writing %s: %s", out, strerror(-err));
		goto out;
	}
	if (!quiet) {
		char b[32];

		human(st.payload, b, sizeof(b));
		pt_info("wrote %s: %llu connections, %s of payload, %llu records, %llu lost",
			out, (unsigned long long)st.opens, b,
			(unsigned long long)st.events,
			(unsigned long long)c.lost_events);
	}
	rc = 0;
	goto out;

write_failed:
	pt_err("writing %s: %s (the file is incomplete)", out,
	       strerror(-st.write_err));
fail_file:
	if (st.w) {
		pt_capw_abort(st.w);
		/* Nothing was recorded: leave no file behind. */
		if (!started)
			unlink(out);
	}
	st.w = NULL;
out:
	if (started)
		pt_tgnames_remove();
	pt_metrics_stop(metrics);
	pt_loader_close(l);
	free(tg);
	return rc;
}
