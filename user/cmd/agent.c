// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* podtap agent: its options; the agent itself is agent/agent.c. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "agent/agent.h"
#include "base/common.h"
#include "capture/cgroup.h"
#include "cmd/cmds.h"

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
"      --tls-probes MODE    file (default) or process: whether TLS library\n"
"                           uprobes trap in every process mapping a hooked\n"
"                           library or in the targets alone (6.13+), as\n"
"                           `podtap record --help` says\n"
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
		{ "tls-probes", required_argument, NULL, 'E' },
		{ "log-format", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct pt_agent_cfg a = {
		.spool = { .dir = "/var/lib/podtap/spool",
			   .max_bytes = 1ull << 30 },
		.seg_size = 64 << 20,
		.seg_time = 300 * 1000000000ull,
		.status_ns = 10 * 1000000000ull,
		.rt = { .lo = { .ring_bytes = 32 << 20 },
			.poll_ns = 10 * 1000000ull },
	};
	struct pt_spool_cfg *sc = &a.spool;
	const char *cgroot = NULL, *node_opt = NULL;
	char host[256] = "", cg_root[PATH_MAX];
	struct stat sb;
	uint64_t v;
	int opt, err;

	a.node = getenv("NODE_NAME");
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":m:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'N': node_opt = optarg; break;
		case 'K': a.kubeconfig = optarg; break;
		case 'S': sc->dir = optarg; break;
		case 'C':
			if (strncmp(optarg, "http://", 7) &&
			    strncmp(optarg, "https://", 8)) {
				pt_err("--collector %s: want an http:// or https:// URL", optarg);
				return 1;
			}
			sc->collector = optarg;
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
					&sc->max_bytes))
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
			a.rt.lo.ring_bytes = v;
			break;
		case 'P':
			if (pt_opt_poll(optarg, &a.rt.poll_ns))
				return 1;
			break;
		case 'm': a.rt.metrics_addr = optarg; break;
		case 'I': a.rt.pin = true; break;
		case 'E':
			if (pt_opt_tls_probes(optarg, &a.rt.lo.tls_per_process))
				return 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (pt_opt_other("agent", opt, optarg,
					 argv[optind - 1]))
				return 1;
			break;
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
		if (!realpath(cgroot, cg_root)) {
			pt_err("--cgroup-root %s: %s", cgroot, strerror(errno));
			return 1;
		}
	} else if ((err = pt_cgroup2_root(cg_root, sizeof(cg_root)))) {
		pt_err("cgroup v2 is not mounted: %s", strerror(-err));
		return 1;
	}
	a.cg_root = cg_root;
	sc->node = a.node;
	if (!sc->dir[0]) {
		pt_err("--spool: an empty path");
		return 1;
	}
	if (!stat(sc->dir, &sb) && !S_ISDIR(sb.st_mode)) {
		pt_err("--spool %s: not a directory", sc->dir);
		return 1;
	}
	return pt_agent_run(&a);
}
