// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* podtap record: capture the TCP payload of target processes to a file. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <sys/stat.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "capfile/capfile.h"
#include "capture/cgroup.h"
#include "cmd/cmds.h"
#include "base/common.h"
#include "capture/loader.h"
#include "capture/metrics.h"
#include "capture/runtime.h"
#include "capture/tls.h"
#include "base/outfile.h"
#include "replay/mirror.h"
#include "capture/tgnames.h"

#define SESSION_CLI	1
/* The kernel's initial pid namespace: PROC_PID_INIT_INO, the host's. */
#define HOST_PIDNS_INO	0xeffffffcu

struct rec_target {
	int kind;
	uint64_t id;
	bool host_wide;		/* the root cgroup, or the host's pid namespace */
	char path[PATH_MAX];
	char name[256];
};

/* The capture file: the sink of `podtap record`. */
struct rec_state {
	struct pt_runtime *rt;
	struct pt_capw *w;
	int write_err;
	/* written by the capture loop, read by the metrics thread */
	uint64_t events, payload;
	struct rec_target *tg;
	int ntg;
	/* when to stop, and the live line */
	uint64_t t0, duration, max_bytes;
	uint64_t last_flush, last_status, ev_at_status;
	bool tty;
	struct pt_mirror *mirror;	/* --mirror-to, or NULL */
	const char *mirror_to;
};

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
	PT_BUMP(s->events, 1);
	if (s->mirror)
		pt_mirror_record(s->mirror, h);
	if (h->type == PT_REC_DATA)
		PT_BUMP(s->payload, ((const struct pt_data *)h)->cap_len);
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
"Filters (repeatable; in the kernel, per connection when it is first seen,\n"
"so a connection is captured whole or not at all):\n"
"      --port PORT        only connections with this port at either end\n"
"      --host ADDR        only connections with this IPv4 or IPv6 address at\n"
"                         either end (an address; names are not resolved)\n"
"                         With both, a connection must match both.\n"
"\n"
"      --no-tls           do not capture TLS plaintext: by default the TLS\n"
"                         library calls of the targets (OpenSSL, BoringSSL)\n"
"                         are hooked, so that what a TLS connection carried\n"
"                         is recorded in clear beside its ciphertext\n"
"      --tls-probes MODE  where the TLS library's uprobes trap: file (the\n"
"                         default) for every process that maps a hooked\n"
"                         library, targets or not, so that a process started\n"
"                         later is in clear from its first call; process for\n"
"                         the target processes alone, so that others pay\n"
"                         nothing, and a new one is hooked when the next scan\n"
"                         (every 2 s) finds it: its calls before that stay\n"
"                         ciphertext, and so do processes that live less\n"
"                         than that (a server's child per connection).\n"
"                         process needs Linux 6.13 or later\n"
"      --all-host         allow a target that is the whole host: the root\n"
"                         cgroup, or the host's own pid namespace (refused\n"
"                         without it, so that an empty variable cannot turn\n"
"                         a one-pod capture into a host-wide one)\n"
"\n"
"Options:\n"
"  -w, --write FILE       capture file to write (default: podtap.ptcap), or -\n"
"                         for standard output (not a terminal). A new file\n"
"                         is mode 0600: captures hold what went over the\n"
"                         wire, passwords, tokens and cookies included. The\n"
"                         file is locked while written; an existing file is\n"
"                         left as it was if recording never starts. A device\n"
"                         or FIFO is written in place.\n"
"      --mirror-to HOST:PORT  copy each inbound client connection of\n"
"                         the targets, as it is recorded, to a local\n"
"                         process: the client's bytes (TLS plaintext where\n"
"                         captured), every method, writes included; its\n"
"                         answers are read and thrown away. Never slows the\n"
"                         capture: a connection the local process does not\n"
"                         keep up with is cut and counted. Connected to once\n"
"                         before recording starts, to check\n"
"      --mirror-port PORT only mirror connections to this port of a target\n"
"      --ready-file FILE  create FILE (holding podtap's pid) once recording\n"
"                         has started, and remove it on exit\n"
"  -d, --duration TIME    stop after TIME (Go's form: 30s, 1.5s, 1h30m; a\n"
"                         bare number is seconds; default: Ctrl-C)\n"
"  -b, --max-bytes SIZE   stop after SIZE payload bytes (Kubernetes form:\n"
"                         k, M, G are powers of 1000, Ki, Mi, Gi of 1024:\n"
"                         100M, 1Gi; a bare number is bytes)\n"
"      --ring-size SIZE   kernel ring buffer size, rounded up to a power of\n"
"                         two (default: 32Mi)\n"
"      --poll TIME        how often the ring is drained (default: 10ms)\n"
"  -m, --metrics ADDR     serve /metrics (Prometheus), /healthz and /readyz\n"
"                         on ADDR: HOST:PORT, [V6]:PORT, or :PORT for all\n"
"                         addresses; turns on the kernel's BPF run-time\n"
"                         statistics for the per-program counters\n"
"      --pin              pin the maps and programs under /sys/fs/bpf/podtap\n"
"                         (for bpftool and podtap status); unpinned on exit\n"
"      --log-format FMT   text (default) or json: one object per line\n"
"  -q, --quiet            no live status line and no closing summary; the\n"
"                         \"recording\" line and errors are still printed\n"
"  -v, --verbose          debug output, libbpf's included\n"
"  -h, --help             this text\n"
"\n"
"Recording starts once the programs are attached, about a second after\n"
"podtap starts: traffic before that is not captured. The line \"podtap:\n"
"recording ...\" on stderr (and --ready-file) says when it has begun.\n"
"\n"
"Needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN) and a kernel with BTF.\n");
}

static bool is_root_cgroup(const char *abs)
{
	char root[PATH_MAX];

	return !pt_cgroup2_root(root, sizeof(root)) && !strcmp(root, abs);
}

static int add_pid_target(struct rec_target *t, const char *arg, bool pidns)
{
	uint64_t pid;
	uint32_t inum;
	int err;

	if (!arg[0]) {
		pt_err("%s: an empty process id", pidns ? "--pidns" : "--pid");
		return -EINVAL;
	}
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
		t->host_wide = inum == HOST_PIDNS_INO;
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
	t->host_wide = is_root_cgroup(t->path);
	snprintf(t->name, sizeof(t->name), "%.200s (of pid %s)", t->path, arg);
	return 0;
}

static int add_cgroup_target(struct rec_target *t, const char *arg)
{
	char root[PATH_MAX] = "";
	int err;

	if (!arg[0]) {
		pt_err("--cgroup: an empty path (the root cgroup, the whole host, is --cgroup / --all-host)");
		return -EINVAL;
	}
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
	t->host_wide = is_root_cgroup(t->path);
	snprintf(t->name, sizeof(t->name), "%.255s", t->path);
	return 0;
}

static void write_metrics(void *ctx, FILE *f)
{
	struct rec_state *s = ctx;
	int i, ncg = 0;

	pt_prom_one(f, "podtap_records_written_total", "counter",
		    "Records written to the capture file.",
		    PT_READ(s->events));
	pt_prom_one(f, "podtap_payload_bytes_written_total", "counter",
		    "Payload bytes written to the capture file.",
		    PT_READ(s->payload));
	for (i = 0; i < s->ntg; i++)
		ncg += s->tg[i].kind == PT_TARGET_CGROUP;
	pt_prom_head(f, "podtap_targets", "gauge", "Targets, by kind.");
	pt_prom_u64(f, "podtap_targets", "kind=\"cgroup\"", ncg);
	pt_prom_u64(f, "podtap_targets", "kind=\"pidns\"", s->ntg - ncg);
	pt_prom_one(f, "podtap_sessions", "gauge",
		    "Recording sessions.",
		    1);
	if (s->mirror) {
		struct pt_mirror_stats m;

		pt_mirror_stats(s->mirror, &m);
		pt_prom_one(f, "podtap_mirror_connections_total", "counter",
			    "Local connections the mirror opened.", m.mirrored);
		pt_prom_one(f, "podtap_mirror_open_connections", "gauge",
			    "Connections the mirror holds state for now.", m.open);
		pt_prom_one(f, "podtap_mirror_bytes_total", "counter",
			    "Bytes the mirror delivered.", m.bytes);
		pt_prom_one(f, "podtap_mirror_dropped_bytes_total", "counter",
			    "Bytes the mirror dropped (cut connections).", m.dropped);
		pt_prom_head(f, "podtap_mirror_cut_total", "counter",
			     "Mirrored connections cut, by why.");
		pt_prom_u64(f, "podtap_mirror_cut_total", "why=\"gap\"", m.cut_gap);
		pt_prom_u64(f, "podtap_mirror_cut_total", "why=\"slow\"", m.cut_slow);
		pt_prom_u64(f, "podtap_mirror_cut_total", "why=\"error\"", m.cut_error);
	}
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
	const struct pt_runtime *rt = s->rt;
	struct pt_tls_stats tls;
	char b[32];
	uint64_t lost = 0;
	int i;

	for (i = 0; i < PT_LOSS_MAX; i++)
		lost += c->lost_bytes[i];
	human(s->payload, b, sizeof(b));
	fprintf(stderr, "\r\033[K%llu connections (%llu open)  %s captured  %llu events/s  %llu events lost (%llu bytes)",
		(unsigned long long)rt->opens,
		(unsigned long long)(rt->opens - rt->closes), b,
		(unsigned long long)ev_rate,
		(unsigned long long)c->lost_events, (unsigned long long)lost);
	pt_tls_stats(rt->tls, &tls);
	if (tls.procs) {
		human(c->tls_bytes, b, sizeof(b));
		fprintf(stderr, "  TLS: %llu of %llu processes hooked, %s plaintext",
			(unsigned long long)tls.hooked_procs,
			(unsigned long long)tls.procs, b);
	}
	if (s->mirror) {
		struct pt_mirror_stats m;

		pt_mirror_stats(s->mirror, &m);
		human(m.bytes, b, sizeof(b));
		fprintf(stderr, "  mirror: %llu connections, %s",
			(unsigned long long)m.mirrored, b);
		if (m.dropped) {
			human(m.dropped, b, sizeof(b));
			fprintf(stderr, ", %s dropped", b);
		}
	}
}

/* Each turn of the loop: flush, the live line, the limits. */
static int on_tick(void *ctx, uint64_t now, const char **why)
{
	struct rec_state *s = ctx;
	struct pt_counters c;
	int err;

	if (now - s->last_flush >= 250000000ull) {
		if (!s->write_err && (err = pt_capw_flush(s->w)))
			s->write_err = err;
		s->last_flush = now;
	}
	if (s->write_err)
		return s->write_err;
	if (s->tty && now - s->last_status >= 1000000000ull) {
		pt_loader_counters(s->rt->l, &c);
		status_line(s, &c, (s->events - s->ev_at_status) *
				   1000000000ull / (now - s->last_status));
		s->ev_at_status = s->events;
		s->last_status = now;
	}
	if (s->duration && now - s->t0 >= s->duration) {
		*why = " (--duration elapsed)";
		return 1;
	}
	if (s->max_bytes && s->payload >= s->max_bytes) {
		*why = " (--max-bytes reached)";
		return 1;
	}
	return 0;
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

/* An address as the programs compare it: IPv4-mapped IPv6 is IPv4. */
static int parse_host(const char *arg, struct pt_host_key *k)
{
	uint8_t a[16];

	if (inet_pton(AF_INET, arg, a) == 1) {
		pt_host_key_set(k, AF_INET, a);
		return 0;
	}
	if (inet_pton(AF_INET6, arg, a) == 1) {
		pt_host_key_set(k, AF_INET6, a);
		return 0;
	}
	pt_err("--host %s: not an IPv4 or IPv6 address (names are not resolved)",
	       arg);
	return -EINVAL;
}

/* --ready-file: made once recording has begun, holding our pid. */
static int write_ready(const char *path)
{
	FILE *f = pt_out_create_excl(path);

	if (!f)
		return -errno;
	fprintf(f, "%d\n", (int)getpid());
	if (fclose(f))
		return -errno;
	return 0;
}

/*
 * --ready-file is made once recording has begun, when a failure would
 * come too late: what can be known is checked before anything else.
 */
/* dir's real path and base: two names of one file compare equal. */
static void real_name(const char *path, char *out, size_t n)
{
	char d[PATH_MAX], b[PATH_MAX], *r;

	snprintf(d, sizeof(d), "%s", path);
	snprintf(b, sizeof(b), "%s", path);
	r = realpath(dirname(d), NULL);
	snprintf(out, n, "%s/%s", r ? r : "?", basename(b));
	free(r);
}

static int check_ready_file(const char *path, const char *out)
{
	char a[PATH_MAX * 2], b[PATH_MAX * 2];
	struct stat st;
	int fd;

	if (!path[0]) {
		pt_err("--ready-file: an empty path");
		return -EINVAL;
	}
	if (!lstat(path, &st)) {
		if (S_ISDIR(st.st_mode))
			pt_err("--ready-file %s: %s", path, strerror(EISDIR));
		else
			pt_err("--ready-file %s: it exists already (from an earlier run?); remove it or give another",
			       path);
		return -EEXIST;
	}
	real_name(path, a, sizeof(a));
	real_name(out, b, sizeof(b));
	if (strcmp(out, "-") && !strcmp(a, b)) {
		pt_err("--ready-file %s: the capture file itself; give another", path);
		return -EINVAL;
	}
	/* can it be made? (made and removed at once: it says nothing yet) */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		pt_err("--ready-file %s: %s", path, strerror(errno));
		return -errno;
	}
	close(fd);
	unlink(path);
	return 0;
}

/* A whole-host target only when asked for by name. */
static int check_host_wide(const struct rec_target *tg, int ntg,
			   bool all_host)
{
	int i;

	for (i = 0; i < ntg && !all_host; i++)
		if (tg[i].host_wide) {
			pt_err("%s is the whole host (%s): every process on it would be recorded; add --all-host if that is meant",
			       tg[i].name, tg[i].kind == PT_TARGET_PIDNS ?
			       "the host's pid namespace" : "the root cgroup");
			return -EPERM;
		}
	return 0;
}

/* What the command line asks for. */
struct rec_args {
	struct rec_target *tg;
	int ntg;
	const char *out, *ready_file;
	bool all_host, quiet;
	uint64_t duration, max_bytes, ring;
	struct pt_runtime_cfg rc;	/* filters, poll, metrics, pin */
	uint16_t ports[PT_MAX_FILTERS];
	struct pt_host_key hosts[PT_MAX_FILTERS];
	struct pt_mirror_opts mirror;
};

/*
 * The command line into a: 0 to record, > 0 when --help was shown, < 0
 * after one line saying what is wrong.
 */
static int parse_args(int argc, char **argv, struct rec_args *a)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, 'c' },
		{ "pid", required_argument, NULL, 'p' },
		{ "pidns", required_argument, NULL, 'n' },
		{ "all-host", no_argument, NULL, 'A' },
		{ "no-tls", no_argument, NULL, 'T' },
		{ "tls-probes", required_argument, NULL, 'E' },
		{ "port", required_argument, NULL, 'O' },
		{ "host", required_argument, NULL, 'H' },
		{ "write", required_argument, NULL, 'w' },
		{ "ready-file", required_argument, NULL, 'Y' },
		{ "mirror-to", required_argument, NULL, 'M' },
		{ "mirror-port", required_argument, NULL, 'N' },
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
	uint64_t v;
	int opt, i, err;

	a->out = "podtap.ptcap";
	a->ring = 32 << 20;
	a->rc.poll_ns = 10 * 1000000ull;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:p:n:w:d:b:m:qvh", opts,
				  NULL)) != -1) {
		switch (opt) {
		case 'c': case 'p': case 'n':
			a->tg = pt_xrealloc(a->tg, a->ntg + 1, sizeof(*a->tg));
			memset(&a->tg[a->ntg], 0, sizeof(*a->tg));
			err = opt == 'c' ? add_cgroup_target(&a->tg[a->ntg], optarg) :
					   add_pid_target(&a->tg[a->ntg], optarg,
							  opt == 'n');
			if (err)
				return -1;
			/* the same cgroup or namespace named twice is one */
			for (i = 0; i < a->ntg; i++)
				if (a->tg[i].kind == a->tg[a->ntg].kind &&
				    a->tg[i].id == a->tg[a->ntg].id)
					break;
			if (i == a->ntg)
				a->ntg++;
			break;
		case 'A':
			a->all_host = true;
			break;
		case 'T':
			a->rc.lo.no_tls = true;
			break;
		case 'E':
			if (pt_opt_tls_probes(optarg, &a->rc.lo.tls_per_process))
				return -1;
			break;
		case 'O':
			if (a->rc.lo.nports >= PT_MAX_FILTERS) {
				pt_err("--port %s: at most %d ports", optarg,
				       PT_MAX_FILTERS);
				return -1;
			}
			if (pt_parse_u64(optarg, 1, 65535, &v)) {
				pt_err("--port %s: not a port (1 to 65535)", optarg);
				return -1;
			}
			a->ports[a->rc.lo.nports++] = (uint16_t)v;
			break;
		case 'H':
			if (a->rc.lo.nhosts >= PT_MAX_FILTERS) {
				pt_err("--host %s: at most %d addresses", optarg,
				       PT_MAX_FILTERS);
				return -1;
			}
			if (parse_host(optarg, &a->hosts[a->rc.lo.nhosts]))
				return -1;
			a->rc.lo.nhosts++;
			break;
		case 'w':
			a->out = optarg;
			break;
		case 'Y':
			a->ready_file = optarg;
			break;
		case 'M':
			a->mirror.to = optarg;
			break;
		case 'N':
			if (pt_parse_u64(optarg, 1, 65535, &v)) {
				pt_err("--mirror-port %s: not a port (1 to 65535)", optarg);
				return -1;
			}
			a->mirror.port = (uint16_t)v;
			break;
		case 'd':
			if (pt_opt_duration("--duration", optarg, 1, UINT64_MAX,
					    &a->duration))
				return -1;
			break;
		case 'b':
			if (pt_opt_size("--max-bytes", optarg, 1, UINT64_MAX,
					&a->max_bytes))
				return -1;
			break;
		case 'R':
			if (pt_opt_ring_size(optarg, &a->ring))
				return -1;
			break;
		case 'P':
			if (pt_opt_poll(optarg, &a->rc.poll_ns))
				return -1;
			break;
		case 'm':
			a->rc.metrics_addr = optarg;
			break;
		case 'I':
			a->rc.pin = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			if (pt_opt_other("record", opt, optarg,
					 argv[optind - 1]))
				return -1;
			break;
		}
	}
	if (optind < argc) {
		pt_err("record: unexpected argument '%s' (targets are given with --cgroup, --pid or --pidns)",
		       argv[optind]);
		return -1;
	}
	if (!a->ntg) {
		pt_err("record: no target; give --cgroup PATH, --pid PID or --pidns PID (see --help)");
		return -1;
	}
	if (check_host_wide(a->tg, a->ntg, a->all_host))
		return -1;
	if (a->mirror.port && !a->mirror.to) {
		pt_err("record: --mirror-port without --mirror-to");
		return -1;
	}
	if (a->rc.lo.no_tls && a->rc.lo.tls_per_process) {
		pt_err("record: --tls-probes process with --no-tls: there are no TLS probes to place");
		return -1;
	}
	if (a->ready_file && check_ready_file(a->ready_file, a->out))
		return -1;
	return 0;
}

/* The mirror's last deliveries (2 s at most), and its counts. */
static void stop_mirror(struct rec_state *st, bool quiet)
{
	struct pt_mirror_stats m;
	char *line;

	if (!st->mirror)
		return;
	pt_mirror_stop(st->mirror, 2000000000ULL, &m);
	st->mirror = NULL;
	if (quiet)
		return;
	line = pt_mirror_summary(st->mirror_to, &m);
	pt_info("%s", line);
	free(line);
}

/* Record as a says, until stopped: the exit status. */
static int record(struct rec_args *a)
{
	struct pt_loader_opts *lo = &a->rc.lo;
	struct pt_runtime rt = {};
	struct pt_out of = {};
	struct rec_state st = { .rt = &rt, .duration = a->duration,
				.max_bytes = a->max_bytes };
	struct pt_counters c = {};
	bool ready_made = false, started = false;
	char host[64] = "";
	int i, err = 0, rc = 1;

	/* From here on a signal stops the recording cleanly; a reader of
	 * -w - or a FIFO that goes away is a write error, not SIGPIPE. */
	pt_runtime_signals();
	gethostname(host, sizeof(host) - 1);
	/* opened and locked now, truncated only once recording starts */
	if (pt_out_open(&of, a->out, PT_OUT_INPLACE | PT_OUT_BINARY, "-w"))
		goto out;
	if (a->mirror.to) {
		a->mirror.conn_buf = 4u << 20;
		a->mirror.total_buf = 64u << 20;
		a->mirror.max_conns = 4096;
		a->mirror.write_timeout_ns = 5000000000ULL;
		if (pt_mirror_start(&st.mirror, &a->mirror))
			goto fail_file;
		st.mirror_to = a->mirror.to;
	}
	lo->ring_bytes = a->ring;
	lo->ports = a->ports;
	lo->hosts = a->hosts;
	st.tg = a->tg;
	st.ntg = a->ntg;
	a->rc.sink = (struct pt_sink){ .record = on_record, .tick = on_tick,
					.metrics = write_metrics, .ctx = &st };
	if (pt_runtime_open(&rt, &a->rc))
		goto fail_file;
	for (i = 0; i < a->ntg; i++) {
		err = a->tg[i].kind == PT_TARGET_CGROUP ?
			pt_loader_add_cgroup(rt.l, a->tg[i].path, a->tg[i].id, SESSION_CLI) :
			pt_loader_add_pidns(rt.l, (uint32_t)a->tg[i].id, SESSION_CLI);
		if (err)
			goto fail_file;
		pt_dbg("target %s (id %llu)", a->tg[i].name,
		       (unsigned long long)a->tg[i].id);
	}
	/* the programs are in place: now the file may be truncated */
	err = pt_out_begin(&of);
	if (!err)
		err = pt_capw_open_file(&st.w, of.f, host);
	if (err) {
		pt_err("-w %s: %s", a->out, strerror(-err));
		goto fail_file;
	}
	started = true;
	pt_runtime_started(&rt);
	name_targets(a->tg, a->ntg);
	if (write_targets(&st, a->tg, a->ntg))
		goto write_failed;

	st.tty = !a->quiet && isatty(STDERR_FILENO);
	/* the documented signal that capture has begun: never quieted */
	pt_info("recording %d target%s to %s%s%s; Ctrl-C stops", a->ntg,
		a->ntg == 1 ? "" : "s", of.is_stdout ? "standard output" : a->out,
		a->rc.metrics_addr ? ", metrics on " : "",
		a->rc.metrics_addr ? a->rc.metrics_addr : "");
	if (a->ready_file) {
		err = write_ready(a->ready_file);
		if (err) {
			pt_err("--ready-file %s: %s", a->ready_file, strerror(-err));
			goto stop;
		}
		ready_made = true;
	}
	st.t0 = st.last_flush = st.last_status = pt_now_mono_ns();
	/* a failed write stops it too; that is said below */
	if (!pt_runtime_run(&rt) || st.write_err)
		rc = 0;
stop:
	/* Nothing new after detaching: the last records, losses, counters. */
	pt_runtime_drain(&rt, &c);
	if (st.tty)
		fputc('\n', stderr);
	/* /metrics first: it reads the mirror's counters */
	pt_runtime_close(&rt);
	stop_mirror(&st, a->quiet);
	if (st.write_err)
		goto write_failed;
	err = pt_capw_close(st.w);
	st.w = NULL;
	if (!err)
		err = pt_out_commit(&of);
	else
		pt_out_abort(&of);
	if (err) {
		pt_err("writing %s: %s (the file is incomplete)", a->out,
		       strerror(-err));
		rc = 1;
		goto out;
	}
	if (!a->quiet) {
		char b[32];

		human(st.payload, b, sizeof(b));
		pt_info("wrote %s%s: %llu connection%s, %s of payload, %llu records, %llu lost",
			of.is_stdout ? "standard output" : a->out,
			rt.why ? rt.why : "",
			(unsigned long long)rt.opens, rt.opens == 1 ? "" : "s", b,
			(unsigned long long)st.events,
			(unsigned long long)c.lost_events);
	}
	goto out;

write_failed:
	pt_err("writing %s: %s (the file is incomplete)", a->out,
	       strerror(-st.write_err));
	rc = 1;
fail_file:
	if (st.w)
		pt_capw_abort(st.w);
	st.w = NULL;
	/*
	 * A file made here is removed if recording never began; an existing
	 * one, a device or a FIFO is never truncated early or removed.
	 */
	pt_out_abort(&of);
out:
	pt_runtime_close(&rt);
	stop_mirror(&st, true);
	if (ready_made)
		unlink(a->ready_file);
	if (started)
		pt_tgnames_remove();
	return rc;
}

int cmd_record(int argc, char **argv)
{
	static struct rec_args a;
	int r;

	memset(&a, 0, sizeof(a));
	r = parse_args(argc, argv, &a);
	if (!r)
		r = record(&a);
	else
		r = r > 0 ? 0 : 1;
	free(a.tg);
	return r;
}
