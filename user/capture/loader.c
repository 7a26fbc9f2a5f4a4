// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <libgen.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "podtap.skel.h"
#include "capture/cgroup.h"
#include "base/common.h"
#include "capture/loader.h"
#include "capture/sockcg.h"

#define NPROGS 4

struct attach {
	char path[PATH_MAX];
	int cg_fd;
	struct bpf_link *links[NPROGS];
};

struct target {
	int kind;		/* enum pt_target_kind */
	uint64_t id;
	uint32_t session;
	char path[PATH_MAX];	/* cgroup targets */
};

struct pt_loader {
	struct podtap_bpf *skel;
	struct ring_buffer *rb;
	pt_record_fn on_record;
	void *ctx;
	char root[PATH_MAX];
	struct attach *att;
	size_t natt;
	struct target *tg;
	size_t ntg;
	/* cgroups where target processes have sockets they made before
	 * they moved into a target: the programs run there too */
	struct extra {
		char path[PATH_MAX];
		uint64_t target;	/* the cgroup target that needs it */
	} *extra;
	size_t nextra;
	int ncpus;
	size_t nports, nhosts;	/* --port, --host */
	uint16_t ports[PT_MAX_FILTERS];
	struct pt_host_key hosts[PT_MAX_FILTERS];
	bool skb_task, sock_task;	/* see bpf/compat.bpf.h */
	bool tls;		/* the TLS plaintext programs are loaded */
	bool tls_session;	/* as one session uprobe per function */
	bool tls_per_process;	/* for target processes only */
	int budget;	/* records left for this consume call */
	int stats_fd;	/* BPF_ENABLE_STATS held while >= 0 */
	const volatile uint64_t *ring_pos[2];	/* consumer, producer */
	uint64_t ring_size;
	char pin_dir[256];	/* "" when not pinned */
	char bpffs[256];	/* where we mounted bpffs for it, or "" */
};

/* Returned by ring_cb to end a consume call that has done enough. */
#define BUDGET_SPENT	(-EAGAIN)
#define CONSUME_BUDGET	8192

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	/* Without -v, our own one-line errors say what failed. */
	pt_vdbg(fmt, ap);
	return 0;
}

static void map_ring_positions(struct pt_loader *l);

static int ring_cb(void *ctx, void *data, size_t size)
{
	struct pt_loader *l = ctx;
	const struct pt_rec_hdr *h = data;

	int err;

	if (size < sizeof(*h) || h->size < sizeof(*h) || h->size > size)
		return 0;	/* cannot happen: the BPF side sizes them */
	err = l->on_record(l->ctx, h, h->size);
	if (err)
		return err;
	/*
	 * libbpf 1.1 consumes until the ring is empty, which under a steady
	 * load may be never: stop after a budget (this record is consumed).
	 */
	return --l->budget > 0 ? 0 : BUDGET_SPENT;
}

static bool has_helper(enum bpf_prog_type type, enum bpf_func_id fn)
{
	return libbpf_probe_bpf_helper(type, fn, NULL) > 0;
}

/*
 * Which task runs a cgroup program, feature by feature (compat.bpf.h says
 * what each flag stands for and what the kernels measured offer). A
 * missing feature is one line naming it; podtap goes on without it.
 * PODTAP_NO_TASK_HELPERS=1 takes both away, to test the fallback on a
 * kernel that has them.
 */
static void probe_task_features(struct pt_loader *l)
{
	const char *off = getenv("PODTAP_NO_TASK_HELPERS");
	bool forced = off && *off && strcmp(off, "0");

	l->skb_task = !forced &&
		has_helper(BPF_PROG_TYPE_CGROUP_SKB, BPF_FUNC_get_current_task) &&
		has_helper(BPF_PROG_TYPE_CGROUP_SKB, BPF_FUNC_probe_read_kernel) &&
		has_helper(BPF_PROG_TYPE_CGROUP_SKB, BPF_FUNC_skc_to_tcp_sock);
	l->sock_task = !forced &&
		has_helper(BPF_PROG_TYPE_CGROUP_SOCK, BPF_FUNC_get_current_task) &&
		has_helper(BPF_PROG_TYPE_CGROUP_SOCK, BPF_FUNC_probe_read_kernel);
	if (forced)
		pt_err("note: PODTAP_NO_TASK_HELPERS is set: running as on a kernel without task helpers in cgroup programs");
	else if (!l->skb_task)
		pt_err("note: this kernel does not let cgroup_skb programs call bpf_get_current_task, bpf_probe_read_kernel and bpf_skc_to_tcp_sock: processes are attributed when they create sockets only, and --pidns is unavailable");
	else if (!l->sock_task)
		pt_err("note: this kernel does not let cgroup/sock_create programs call bpf_get_current_task and bpf_probe_read_kernel: processes are attributed when they send only, and --pidns is unavailable");
}

/*
 * Whether uprobes can be session uprobes (6.13): the kernel knows the
 * attach type and lets such a program call bpf_session_is_return, which
 * 6.10 to 6.12 have for kprobe sessions only. A program that calls it is
 * the only way to tell: those kernels load a kprobe program of an attach
 * type they do not know.
 */
static bool has_uprobe_session(void)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	LIBBPF_OPTS(bpf_prog_load_opts, o,
		    .expected_attach_type = PT_TRACE_UPROBE_SESSION);
	struct bpf_insn insn[] = {
		{ .code = BPF_JMP | BPF_CALL, .src_reg = BPF_PSEUDO_KFUNC_CALL },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int id, fd;

	if (!vmlinux)
		return false;
	id = btf__find_by_name_kind(vmlinux, "bpf_session_is_return",
				    BTF_KIND_FUNC);
	btf__free(vmlinux);
	if (id <= 0)
		return false;
	insn[0].imm = id;
	fd = bpf_prog_load(BPF_PROG_TYPE_KPROBE, NULL, "GPL", insn,
			   ARRAY_SIZE(insn), &o);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void probe_tls_features(struct pt_loader *l)
{
	const char *off = getenv("PODTAP_NO_UPROBE_SESSION");

	l->tls_session = l->tls && !(off && *off && strcmp(off, "0")) &&
			 has_uprobe_session();
}

static size_t ring_size(size_t want)
{
	size_t sz = (size_t)sysconf(_SC_PAGESIZE);

	while (sz < want && sz < ((size_t)1 << 30))
		sz <<= 1;
	return sz;
}

/*
 * Open the skeleton with the task features as probed, size the ring and
 * load. Errors are reported here, but for a failed load that the caller
 * may retry without the task features (quiet_load).
 */
/*
 * The uprobe programs load only when TLS plaintext is wanted; the
 * library's either as one session program or as entry and return pairs
 * (bpf/tls.bpf.c).
 */
static void set_tls_autoload(struct pt_loader *l)
{
	struct bpf_program *p;
	const char *name;

	bpf_object__for_each_program(p, l->skel->obj) {
		if (bpf_program__type(p) != BPF_PROG_TYPE_KPROBE)
			continue;
		name = bpf_program__name(p);
		if (!strcmp(name, "podtap_tls_s")) {
			bpf_program__set_autoload(p, l->tls && l->tls_session);
			bpf_program__set_expected_attach_type(p,
				PT_TRACE_UPROBE_SESSION);
		} else if (!strncmp(name, "podtap_tls_", 11)) {
			bpf_program__set_autoload(p, l->tls && !l->tls_session);
		} else {
			/* Go's: uprobe_multi links alongside the sessions */
			bpf_program__set_autoload(p, l->tls);
			if (l->tls_session)
				bpf_program__set_expected_attach_type(p,
					PT_TRACE_UPROBE_MULTI);
		}
	}
}

static int open_and_load(struct pt_loader *l, size_t ring_bytes,
			 bool quiet_load)
{
	int err;

	l->skel = podtap_bpf__open();
	if (!l->skel) {
		err = -errno;
		pt_err("opening BPF object: %s", strerror(-err));
		return err;
	}
	l->skel->rodata->skb_task = l->skb_task;
	l->skel->rodata->sock_task = l->sock_task;
	l->skel->rodata->filter_nports = (uint32_t)l->nports;
	l->skel->rodata->filter_nhosts = (uint32_t)l->nhosts;
	l->skel->rodata->tls_on = l->tls;
	set_tls_autoload(l);
	err = bpf_map__set_max_entries(l->skel->maps.podtap_events,
				       ring_size(ring_bytes ? ring_bytes
							    : 32 << 20));
	if (err) {
		pt_err("sizing the ring buffer: %s", strerror(-err));
		return err;
	}
	err = podtap_bpf__load(l->skel);
	if (err && (err == -EPERM || !quiet_load))
		pt_err("loading BPF programs: %s%s", strerror(-err),
		       err == -EPERM ? " (run as root, or with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)" : "");
	return err;
}

/* --port and --host, into the maps the programs read once per connection. */
static int fill_filters(struct pt_loader *l)
{
	const struct {
		struct bpf_map *map;
		const void *keys;
		size_t n, size;
	} f[] = {
		{ l->skel->maps.filter_ports, l->ports, l->nports, sizeof(*l->ports) },
		{ l->skel->maps.filter_hosts, l->hosts, l->nhosts, sizeof(*l->hosts) },
	};
	uint8_t one = 1;
	size_t i, k;
	int err;

	for (k = 0; k < ARRAY_SIZE(f); k++)
		for (i = 0; i < f[k].n; i++) {
			err = bpf_map__update_elem(f[k].map,
						   (const char *)f[k].keys + i * f[k].size,
						   f[k].size, &one, sizeof(one),
						   BPF_ANY);
			if (err) {
				pt_err("setting up --port/--host: %s",
				       strerror(-err));
				return err;
			}
		}
	return 0;
}

int pt_loader_open(struct pt_loader **out, const struct pt_loader_opts *o)
{
	struct pt_loader *l;
	int err;

	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		pt_err("this kernel exposes no BTF (/sys/kernel/btf/vmlinux: %s); podtap needs CONFIG_DEBUG_INFO_BTF=y",
		       strerror(errno));
		return -ENOENT;
	}
	l = pt_xcalloc(1, sizeof(*l));
	l->on_record = o->on_record;
	l->ctx = o->ctx;
	l->nports = o->nports < PT_MAX_FILTERS ? o->nports : PT_MAX_FILTERS;
	l->nhosts = o->nhosts < PT_MAX_FILTERS ? o->nhosts : PT_MAX_FILTERS;
	memcpy(l->ports, o->ports, l->nports * sizeof(*l->ports));
	memcpy(l->hosts, o->hosts, l->nhosts * sizeof(*l->hosts));
	libbpf_set_print(libbpf_print);
	/* a cgroup and a link per program for each target: hundreds of
	 * targets pass the usual soft limit of 1024 */
	pt_nofile_raise();
	err = pt_cgroup2_root(l->root, sizeof(l->root));
	if (err) {
		pt_err("no cgroup v2 hierarchy is mounted (looked in /proc/self/mountinfo)");
		goto fail;
	}
	l->stats_fd = -1;
	l->ncpus = libbpf_num_possible_cpus();
	if (l->ncpus <= 0) {
		err = l->ncpus ? l->ncpus : -EINVAL;
		pt_err("cannot count possible CPUs: %s", strerror(-err));
		goto fail;
	}
	probe_task_features(l);
	l->tls = !o->no_tls;
	probe_tls_features(l);
	err = open_and_load(l, o->ring_bytes, l->skb_task || l->sock_task ||
			    l->tls);
	if (err && err != -EPERM && l->tls_session) {
		pt_err("note: the TLS session uprobe program did not load (%s); using entry and return uprobes",
		       strerror(-err));
		podtap_bpf__destroy(l->skel);
		l->skel = NULL;
		l->tls_session = false;
		err = open_and_load(l, o->ring_bytes, true);
	}
	if (err && err != -EPERM && l->tls) {
		/* uprobes are optional: the sockets are captured regardless */
		pt_err("note: the TLS plaintext programs did not load (%s); recording without them: TLS stays ciphertext",
		       strerror(-err));
		podtap_bpf__destroy(l->skel);
		l->skel = NULL;
		l->tls = false;
		err = open_and_load(l, o->ring_bytes, l->skb_task || l->sock_task);
	}
	if (err && err != -EPERM && (l->skb_task || l->sock_task)) {
		/*
		 * A probe of one helper in a minimal program can say yes where
		 * the real program is refused (6.12 told yes for
		 * bpf_get_current_comm in cgroup_skb, then refused it): a
		 * missing optional feature never stops the recorder.
		 */
		pt_err("note: the programs did not load with the task helpers (%s); loading them without: no process attribution from the kernel, no --pidns",
		       strerror(-err));
		podtap_bpf__destroy(l->skel);
		l->skel = NULL;
		l->skb_task = l->sock_task = false;
		err = open_and_load(l, o->ring_bytes, false);
	}
	if (err)
		goto fail;
	if (l->tls && o->tls_per_process && !l->tls_session) {
		pt_err("--tls-probes process needs session uprobes, which this kernel does not have (Linux 6.13 or later): use --tls-probes file");
		err = -EOPNOTSUPP;
		goto fail;
	}
	l->tls_per_process = l->tls && o->tls_per_process;
	err = fill_filters(l);
	if (err)
		goto fail;
	l->rb = ring_buffer__new(bpf_map__fd(l->skel->maps.podtap_events),
				 ring_cb, l, NULL);
	if (!l->rb) {
		err = -errno;
		pt_err("setting up the ring buffer: %s", strerror(-err));
		goto fail;
	}
	map_ring_positions(l);
	*out = l;
	return 0;
fail:
	pt_loader_close(l);
	return err;
}

static void detach(struct attach *a)
{
	int i;

	for (i = 0; i < NPROGS; i++)
		bpf_link__destroy(a->links[i]);
	if (a->cg_fd >= 0)
		close(a->cg_fd);
}

static int attach(struct pt_loader *l, const char *path, struct attach *a)
{
	struct bpf_program *progs[NPROGS] = {
		l->skel->progs.podtap_sock_new,
		l->skel->progs.podtap_sockops,
		l->skel->progs.podtap_ingress,
		l->skel->progs.podtap_egress,
	};
	int i, err;

	memset(a, 0, sizeof(*a));
	snprintf(a->path, sizeof(a->path), "%s", path);
	a->cg_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (a->cg_fd < 0) {
		err = -errno;
		pt_err("opening cgroup %s: %s", path, strerror(-err));
		return err;
	}
	for (i = 0; i < NPROGS; i++) {
		a->links[i] = bpf_program__attach_cgroup(progs[i], a->cg_fd);
		if (!a->links[i]) {
			err = -errno;
			pt_err("attaching %s to cgroup %s: %s",
			       bpf_program__name(progs[i]), path,
			       strerror(-err));
			detach(a);
			return err;
		}
	}
	pt_dbg("attached to %s", path);
	return 0;
}

/*
 * The programs run where the targets are and nowhere else: on the fewest
 * cgroups that cover every target cgroup, or on the root while a pid
 * namespace is targeted (its processes may be in any cgroup).
 */
static int sync_attach(struct pt_loader *l)
{
	const char **want;
	size_t nwant = 0, i, j;
	struct attach *att;
	size_t natt = 0;
	int err = 0;

	want = pt_xcalloc(l->ntg + l->nextra + 1, sizeof(*want));
	for (i = 0; i < l->ntg + l->nextra; i++) {
		const char *p = i >= l->ntg ? l->extra[i - l->ntg].path :
				l->tg[i].kind == PT_TARGET_PIDNS ?
					l->root : l->tg[i].path;
		bool covered = false;

		for (j = 0; j < l->ntg + l->nextra && !covered; j++) {
			const char *q = j >= l->ntg ? l->extra[j - l->ntg].path :
					l->tg[j].kind == PT_TARGET_PIDNS ?
						l->root : l->tg[j].path;

			/* Covered by a strict ancestor, or a duplicate. */
			if (pt_path_covers(q, p) &&
			    (strcmp(q, p) || j < i))
				covered = true;
		}
		if (!covered)
			want[nwant++] = p;
	}
	att = pt_xcalloc(nwant + 1, sizeof(*att));
	/* Keep what stays, attach what is new, then detach what went. */
	for (i = 0; i < nwant; i++) {
		for (j = 0; j < l->natt; j++)
			if (l->att[j].cg_fd >= 0 &&
			    strcmp(l->att[j].path, want[i]) == 0)
				break;
		if (j < l->natt) {
			att[natt++] = l->att[j];
			l->att[j].cg_fd = -1;
			continue;
		}
		err = attach(l, want[i], &att[natt]);
		if (err)
			break;
		natt++;
	}
	if (err) {
		/* Give back the ones kept, undo the new ones. */
		for (i = 0; i < natt; i++) {
			for (j = 0; j < l->natt; j++)
				if (l->att[j].cg_fd < 0 &&
				    strcmp(l->att[j].path, att[i].path) == 0)
					break;
			if (j < l->natt)
				l->att[j] = att[i];
			else
				detach(&att[i]);
		}
		free(att);
		free(want);
		return err;
	}
	for (j = 0; j < l->natt; j++)
		if (l->att[j].cg_fd >= 0) {
			pt_dbg("detaching from %s", l->att[j].path);
			detach(&l->att[j]);
		}
	free(l->att);
	l->att = att;
	l->natt = natt;
	free(want);
	return 0;
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

static bool is_tcp(int fd)
{
	int proto = 0, dom = 0;
	socklen_t l = sizeof(proto);

	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l))
		return false;
	l = sizeof(dom);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l))
		return false;
	return proto == IPPROTO_TCP && (dom == AF_INET || dom == AF_INET6);
}

/*
 * What seeding a cgroup target learns: the cgroups it covers, and the
 * sockets its processes made in other cgroups before they moved in
 * (cgroup programs run by a socket's cgroup, not its owner's).
 */
struct seed {
	struct pt_loader *l;
	uint64_t target;	/* the target's cgroup id */
	uint64_t *sub;		/* it and the cgroups below it */
	size_t nsub;
	uint64_t netns;		/* socks were read in this netns */
	struct pt_sockcg *socks;
	size_t nsocks;
	bool no_diag;		/* sock_diag failed: say so once */
	uint64_t *moved;	/* the cgroups those sockets belong to */
	size_t nmoved, moved_socks;
	pid_t moved_pid;	/* one of their processes, for the note */
};

static bool has_id(const uint64_t *v, size_t n, uint64_t id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] == id)
			return true;
	return false;
}

void pt_host_key_set(struct pt_host_key *k, int family, const void *addr)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	memset(k, 0, sizeof(*k));
	k->family = (uint16_t)family;
	memcpy(k->addr, addr, family == AF_INET ? 4 : 16);
	if (family == AF_INET6 && !memcmp(k->addr, mapped, sizeof(mapped))) {
		memmove(k->addr, k->addr + 12, 4);
		memset(k->addr + 4, 0, 12);
		k->family = AF_INET;
	}
}

/* One end of a socket as the programs compare it. */
static void sa_key(const struct sockaddr_storage *ss, struct pt_host_key *k,
		   uint16_t *port)
{
	const struct sockaddr_in *in = (const void *)ss;
	const struct sockaddr_in6 *in6 = (const void *)ss;

	if (ss->ss_family == AF_INET) {
		pt_host_key_set(k, AF_INET, &in->sin_addr);
		*port = ntohs(in->sin_port);
	} else {
		pt_host_key_set(k, AF_INET6, &in6->sin6_addr);
		*port = ntohs(in6->sin6_port);
	}
}

/*
 * --port/--host for a socket older than the recording, as sockops decides
 * for new ones: 0 for a listener (its connections are decided one by one).
 */
static uint8_t fd_fstate(const struct pt_loader *l, int fd)
{
	struct sockaddr_storage a[2];
	struct pt_host_key k[2];
	uint16_t p[2];
	socklen_t n;
	bool port_ok = !l->nports, host_ok = !l->nhosts;
	size_t i;
	int e;

	if (!l->nports && !l->nhosts)
		return 0;
	n = sizeof(a[0]);
	if (getsockname(fd, (void *)&a[0], &n))
		return 0;
	n = sizeof(a[1]);
	if (getpeername(fd, (void *)&a[1], &n))
		return 0;	/* a listener, or not connected */
	for (e = 0; e < 2; e++) {
		sa_key(&a[e], &k[e], &p[e]);
		for (i = 0; i < l->nports; i++)
			port_ok |= l->ports[i] == p[e];
		for (i = 0; i < l->nhosts; i++)
			host_ok |= !memcmp(&l->hosts[i], &k[e], sizeof(k[e]));
	}
	return port_ok && host_ok ? 1 : 2;
}

/* Is the socket with inode ino one made outside the target? */
/* The socket table of pid's network namespace, unless sd has it. */
static void load_socks(struct seed *sd, pid_t pid)
{
	char path[64];
	struct stat sb;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (stat(path, &sb) || sb.st_ino == sd->netns)
		return;
	free(sd->socks);
	sd->netns = sb.st_ino;
	err = pt_sock_cgroups(pid, &sd->socks, &sd->nsocks);
	if (err && !sd->no_diag) {
		pt_dbg("sock_diag in the network namespace of pid %d: %s",
		       (int)pid, strerror(-err));
		sd->no_diag = true;
	}
}

static bool socket_moved(struct seed *sd, pid_t pid, uint64_t ino)
{
	uint64_t cg = pt_sockcg_find(sd->socks, sd->nsocks, ino);

	if (!cg || has_id(sd->sub, sd->nsub, cg))
		return false;
	if (!has_id(sd->moved, sd->nmoved, cg)) {
		sd->moved = pt_xrealloc(sd->moved, sd->nmoved + 1,
					sizeof(*sd->moved));
		sd->moved[sd->nmoved++] = cg;
	}
	sd->moved_socks++;
	sd->moved_pid = pid;
	return true;
}

/*
 * Tell the programs who owns the TCP sockets a process already has
 * (listeners included: the connections they accept inherit it). Sockets
 * made from now on are seen by sock_create; these are not. Each socket is
 * reached through pidfd_getfd(2) and its socket storage written by fd.
 * A socket made in another cgroup is marked with the target (owner_cg).
 */
static void seed_pid(struct pt_loader *l, pid_t pid, bool set_pidns,
		     uint32_t pidns, struct seed *sd)
{
	int mfd = bpf_map__fd(l->skel->maps.conn_state);
	char path[320], link[64], comm[PT_COMM_LEN] = "";
	struct pt_conn_state st;
	struct dirent *e;
	int pidfd, fd, n;
	bool moved;
	DIR *dir;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (sd)
		load_socks(sd, pid);
	while (dir && pidfd >= 0 && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid,
			 e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0 || strncmp(link, "socket:", 7))
			continue;
		link[n] = 0;
		fd = syscall(SYS_pidfd_getfd, pidfd, atoi(e->d_name), 0);
		if (fd < 0)
			continue;
		if (!is_tcp(fd)) {
			close(fd);
			continue;
		}
		moved = sd && socket_moved(sd, pid, strtoull(link + 8, NULL, 10));
		if (bpf_map_lookup_elem(mfd, &fd, &st)) {
			memset(&st, 0, sizeof(st));
			st.preexisting = 1;
		} else if (!moved && (st.opened ||
				      (st.task_attr &&
				       (!set_pidns || st.pidns_known)))) {
			close(fd);	/* the programs know it already */
			continue;
		}
		st.pid = st.tgid = pid;
		memcpy(st.comm, comm, sizeof(st.comm));
		st.task_attr = 1;
		if (set_pidns) {
			st.pidns = pidns;
			st.pidns_known = 1;
		}
		if (moved)
			st.owner_cg = sd->target;
		if (!st.fstate)
			st.fstate = fd_fstate(l, fd);
		st.gen = 0;
		if (bpf_map_update_elem(mfd, &fd, &st, BPF_ANY))
			pt_dbg("seeding a socket of pid %d: %s", (int)pid,
			       strerror(errno));
		close(fd);
	}
	if (dir)
		closedir(dir);
	if (pidfd >= 0)
		close(pidfd);
}

/* fn for a cgroup and each cgroup below it (to PT_MAX_CGROUP_LEVEL). */
static void each_cgroup(const char *cg, int depth,
			void (*fn)(const char *cg, void *ctx), void *ctx)
{
	char path[PATH_MAX + 32];
	struct dirent *e;
	DIR *dir;

	fn(cg, ctx);
	dir = depth < PT_MAX_CGROUP_LEVEL ? opendir(cg) : NULL;
	while (dir && (e = readdir(dir))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", cg, e->d_name) <
		    (int)sizeof(path))
			each_cgroup(path, depth + 1, fn, ctx);
	}
	if (dir)
		closedir(dir);
}

static void add_subtree_id(const char *cg, void *ctx)
{
	struct seed *sd = ctx;
	uint64_t id;

	if (!pt_cgroup_id(cg, &id)) {
		sd->sub = pt_xrealloc(sd->sub, sd->nsub + 1, sizeof(*sd->sub));
		sd->sub[sd->nsub++] = id;
	}
}

/* Every process of one cgroup. */
static void seed_procs(const char *cg, void *ctx)
{
	struct seed *sd = ctx;
	char path[PATH_MAX + 32];
	FILE *f;
	int pid;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	f = fopen(path, "re");
	while (f && fscanf(f, "%d", &pid) == 1)
		seed_pid(sd->l, pid, false, 0, sd);
	if (f)
		fclose(f);
}

static bool has_extra(const struct pt_loader *l, const char *path,
		      uint64_t target)
{
	size_t i;

	for (i = 0; i < l->nextra; i++)
		if (!strcmp(l->extra[i].path, path) &&
		    l->extra[i].target == target)
			return true;
	return false;
}

/* A target gone: the cgroups attached for its moved sockets go too. */
static void drop_extras(struct pt_loader *l, uint64_t target)
{
	size_t i = 0;

	while (i < l->nextra)
		if (l->extra[i].target == target)
			l->extra[i] = l->extra[--l->nextra];
		else
			i++;
}

/*
 * The sockets a target's processes made elsewhere are captured where the
 * programs can run for them without the root cgroup (which would put
 * them on every packet of the host): on the cgroups they belong to.
 */
/* The directories of the cgroups sd->moved names, in one walk. */
struct moved_paths {
	const struct seed *sd;
	char (*path)[PATH_MAX];		/* by sd->moved[i]; "" if not found */
};

static void find_moved(const char *cg, void *ctx)
{
	struct moved_paths *m = ctx;
	uint64_t id;
	size_t i;

	if (pt_cgroup_id(cg, &id))
		return;
	for (i = 0; i < m->sd->nmoved; i++)
		if (m->sd->moved[i] == id)
			snprintf(m->path[i], PATH_MAX, "%s", cg);
}

static void cover_moved(struct pt_loader *l, const char *target,
			struct seed *sd)
{
	size_t i, added = 0, at_root = 0, gone = 0;
	struct moved_paths m = { .sd = sd };

	m.path = pt_xcalloc(sd->nmoved, sizeof(*m.path));
	each_cgroup(l->root, 0, find_moved, &m);
	for (i = 0; i < sd->nmoved; i++) {
		const char *path = m.path[i];

		if (!path[0])
			gone++;
		else if (!strcmp(path, l->root))
			at_root++;
		else if (!has_extra(l, path, sd->target)) {
			l->extra = pt_xrealloc(l->extra, l->nextra + 1,
					       sizeof(*l->extra));
			snprintf(l->extra[l->nextra].path, PATH_MAX, "%s", path);
			l->extra[l->nextra++].target = sd->target;
			added++;
			pt_dbg("attaching to %s too, for sockets made there", path);
		}
	}
	free(m.path);
	if (added && sync_attach(l)) {
		l->nextra -= added;
		at_root += added;
		added = 0;
	}
	pt_err("note: %zu TCP socket%s of processes in %s (pid %d among them) %s made in another cgroup before they moved in; %s%s%s",
	       sd->moved_socks, sd->moved_socks == 1 ? "" : "s", target,
	       (int)sd->moved_pid, sd->moved_socks == 1 ? "was" : "were",
	       added ? "captured: the programs also run, filtered, on the cgroups they belong to" : "",
	       added && (at_root || gone) ? "; " : "",
	       at_root || gone ? "not captured: those made in the root cgroup (that would put the programs on every packet of the host) or in a cgroup gone since" : "");
}

static void seed_cgroup(struct pt_loader *l, const char *cg, uint64_t id)
{
	struct seed sd = { .l = l, .target = id };

	each_cgroup(cg, 0, add_subtree_id, &sd);
	each_cgroup(cg, 0, seed_procs, &sd);
	if (sd.moved_socks)
		cover_moved(l, cg, &sd);
	free(sd.sub);
	free(sd.socks);
	free(sd.moved);
}

/* Every process whose pid namespace is inum. */
static void seed_pidns(struct pt_loader *l, uint32_t inum)
{
	char path[320];
	struct dirent *e;
	struct stat sb;
	DIR *dir = opendir("/proc");

	while (dir && (e = readdir(dir))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/pid", e->d_name);
		if (!stat(path, &sb) && (uint32_t)sb.st_ino == inum)
			seed_pid(l, atoi(e->d_name), true, inum, NULL);
	}
	if (dir)
		closedir(dir);
}

static void bump_gen(struct pt_loader *l)
{
	size_t i;
	uint32_t n = 0;

	for (i = 0; i < l->ntg; i++)
		n += l->tg[i].kind == PT_TARGET_PIDNS;
	l->skel->bss->pidns_targets = n;
	__atomic_add_fetch(&l->skel->data->targets_gen, 1, __ATOMIC_SEQ_CST);
}

static int add_target(struct pt_loader *l, int kind, uint64_t id,
		      const char *path, uint32_t session)
{
	struct bpf_map *map = kind == PT_TARGET_CGROUP ?
				      l->skel->maps.target_cgroups :
				      l->skel->maps.target_pidns;
	uint32_t key32 = (uint32_t)id;
	const void *key = kind == PT_TARGET_CGROUP ? (void *)&id : (void *)&key32;
	size_t ksz = kind == PT_TARGET_CGROUP ? sizeof(id) : sizeof(key32);
	size_t i;
	int err;

	if (kind == PT_TARGET_PIDNS && !pt_loader_task_helpers(l)) {
		pt_err("targeting a pid namespace needs task helpers in cgroup programs, which this kernel lacks");
		return -EOPNOTSUPP;
	}
	for (i = 0; i < l->ntg; i++)
		if (l->tg[i].kind == kind && l->tg[i].id == id)
			break;
	if (i == l->ntg) {
		l->tg = pt_xrealloc(l->tg, l->ntg + 1, sizeof(*l->tg));
		memset(&l->tg[i], 0, sizeof(l->tg[i]));
		l->tg[i].kind = kind;
		l->tg[i].id = id;
		snprintf(l->tg[i].path, sizeof(l->tg[i].path), "%s",
			 path ? path : "");
		l->ntg++;
		err = sync_attach(l);
		if (err) {
			l->ntg--;
			return err;
		}
		if (kind == PT_TARGET_CGROUP)
			seed_cgroup(l, path, id);
		else
			seed_pidns(l, (uint32_t)id);
	}
	err = bpf_map__update_elem(map, key, ksz, &session, sizeof(session),
				   BPF_ANY);
	if (err) {
		pt_err("updating %s: %s", bpf_map__name(map), strerror(-err));
		return err;
	}
	l->tg[i].session = session;
	bump_gen(l);
	return 0;
}

static int remove_target(struct pt_loader *l, int kind, uint64_t id)
{
	struct bpf_map *map = kind == PT_TARGET_CGROUP ?
				      l->skel->maps.target_cgroups :
				      l->skel->maps.target_pidns;
	uint32_t key32 = (uint32_t)id;
	const void *key = kind == PT_TARGET_CGROUP ? (void *)&id : (void *)&key32;
	size_t ksz = kind == PT_TARGET_CGROUP ? sizeof(id) : sizeof(key32);
	size_t i;

	for (i = 0; i < l->ntg; i++)
		if (l->tg[i].kind == kind && l->tg[i].id == id)
			break;
	if (i == l->ntg)
		return -ENOENT;
	bpf_map__delete_elem(map, key, ksz, 0);
	bump_gen(l);
	l->tg[i] = l->tg[--l->ntg];
	if (kind == PT_TARGET_CGROUP)
		drop_extras(l, id);
	return sync_attach(l);
}

int pt_loader_add_cgroup(struct pt_loader *l, const char *abs, uint64_t id,
			 uint32_t session)
{
	return add_target(l, PT_TARGET_CGROUP, id, abs, session);
}

int pt_loader_add_pidns(struct pt_loader *l, uint32_t inum, uint32_t session)
{
	return add_target(l, PT_TARGET_PIDNS, inum, NULL, session);
}

int pt_loader_remove_cgroup(struct pt_loader *l, uint64_t id)
{
	return remove_target(l, PT_TARGET_CGROUP, id);
}

int pt_loader_session_tls(struct pt_loader *l, uint32_t session, bool on)
{
	struct bpf_map *map = l->skel->maps.tls_off;
	uint8_t one = 1;
	int err;

	if (on) {
		err = bpf_map__delete_elem(map, &session, sizeof(session), 0);
		return err == -ENOENT ? 0 : err;
	}
	return bpf_map__update_elem(map, &session, sizeof(session), &one,
				    sizeof(one), BPF_ANY);
}

size_t pt_loader_attach_count(const struct pt_loader *l)
{
	return l->natt;
}

bool pt_loader_task_helpers(const struct pt_loader *l)
{
	return l->skb_task && l->sock_task;
}

const struct bpf_object *pt_loader_object(const struct pt_loader *l)
{
	return l->skel->obj;
}

int pt_loader_consume(struct pt_loader *l)
{
	int n;

	l->budget = CONSUME_BUDGET;
	n = ring_buffer__consume(l->rb);
	if (n == BUDGET_SPENT)
		return CONSUME_BUDGET;
	return n;
}

void pt_loader_detach(struct pt_loader *l)
{
	size_t i;

	for (i = 0; i < l->natt; i++)
		if (l->att[i].cg_fd >= 0) {
			detach(&l->att[i]);
			l->att[i].cg_fd = -1;
		}
	l->natt = 0;
}

int pt_loader_counters(struct pt_loader *l, struct pt_counters *sum)
{
	struct pt_counters *per;
	uint32_t zero = 0;
	__u64 *s = (__u64 *)sum;	/* as the fields are typed: no aliasing */
	size_t n = sizeof(*sum) / sizeof(uint64_t), i;
	int cpu, err;

	per = pt_xcalloc(l->ncpus, sizeof(*per));
	err = bpf_map__lookup_elem(l->skel->maps.podtap_counters, &zero,
				   sizeof(zero), per,
				   sizeof(*per) * l->ncpus, 0);
	memset(sum, 0, sizeof(*sum));
	for (cpu = 0; !err && cpu < l->ncpus; cpu++) {
		const __u64 *p = (const __u64 *)&per[cpu];

		for (i = 0; i < n; i++)
			s[i] += p[i];
	}
	free(per);
	return err;
}

int pt_loader_drain_losses(struct pt_loader *l)
{
	int fd = bpf_map__fd(l->skel->maps.conn_losses);
	struct pt_loss_key key, next;
	struct pt_loss_val v;
	struct pt_loss rec;
	void *prev = NULL;
	int n = 0, err;

	/* Each entry is deleted as it is read, so the walk starts over. */
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		err = bpf_map_lookup_and_delete_elem(fd, &key, &v);
		if (err == -EINVAL || err == -524 /* ENOTSUPP */ || err == -EOPNOTSUPP) {
			/* before 5.14: not atomic, a racing loss may go */
			if (bpf_map_lookup_elem(fd, &key, &v))
				continue;
			bpf_map_delete_elem(fd, &key);
		} else if (err) {
			continue;
		}
		memset(&rec, 0, sizeof(rec));
		rec.h.type = PT_REC_LOSS;
		rec.h.size = sizeof(rec);
		rec.h.ts_ns = pt_now_mono_ns();
		rec.h.conn_id = key.conn_id;
		rec.offset = v.start;
		rec.len = v.end - v.start;
		rec.lost_bytes = v.bytes;
		rec.dir = key.dir;
		rec.reason = v.reason;
		err = l->on_record(l->ctx, &rec.h, sizeof(rec));
		if (err)
			return err;
		n++;
		prev = NULL;	/* the key is gone: start over */
	}
	return n;
}

struct bpf_object *pt_loader_tls_object(struct pt_loader *l)
{
	return l->tls ? l->skel->obj : NULL;
}

bool pt_loader_tls_session(const struct pt_loader *l)
{
	return l->tls && l->tls_session;
}

bool pt_loader_tls_per_process(const struct pt_loader *l)
{
	return l->tls_per_process;
}

int pt_loader_target(const struct pt_loader *l, size_t i, int *kind,
		     uint64_t *id, const char **path)
{
	if (i >= l->ntg)
		return -ENOENT;
	*kind = l->tg[i].kind;
	*id = l->tg[i].id;
	*path = l->tg[i].path;
	return 0;
}

uint32_t pt_loader_target_session(const struct pt_loader *l, size_t i)
{
	return i < l->ntg ? l->tg[i].session : 0;
}

bool pt_loader_target_tls(const struct pt_loader *l, size_t i)
{
	uint8_t v;

	return i < l->ntg &&
	       bpf_map__lookup_elem(l->skel->maps.tls_off, &l->tg[i].session,
				    sizeof(l->tg[i].session), &v, sizeof(v),
				    0) == -ENOENT;
}

void pt_loader_close(struct pt_loader *l)
{
	long pg = sysconf(_SC_PAGESIZE);
	int i;

	if (!l)
		return;
	pt_loader_unpin(l);
	if (l->stats_fd >= 0)
		close(l->stats_fd);
	for (i = 0; i < 2; i++)
		if (l->ring_pos[i])
			munmap((void *)l->ring_pos[i], pg);
	ring_buffer__free(l->rb);
	if (l->skel)
		pt_loader_detach(l);
	free(l->att);
	free(l->tg);
	free(l->extra);
	podtap_bpf__destroy(l->skel);
	free(l);
}

/*
 * The ring buffer's consumer and producer positions, mapped read-only
 * (the same pages libbpf maps), for a fill level any thread may read.
 */
static void map_ring_positions(struct pt_loader *l)
{
	int fd = bpf_map__fd(l->skel->maps.podtap_events);
	long pg = sysconf(_SC_PAGESIZE);
	void *p;
	int i;

	l->ring_size = bpf_map__max_entries(l->skel->maps.podtap_events);
	for (i = 0; i < 2; i++) {
		p = mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, i * pg);
		if (p == MAP_FAILED) {
			pt_dbg("mapping the ring buffer's positions: %s",
			       strerror(errno));
			return;
		}
		l->ring_pos[i] = p;
	}
}

int pt_loader_ring_fill(struct pt_loader *l, uint64_t *used, uint64_t *size)
{
	uint64_t cons, prod;

	*size = l->ring_size;
	*used = 0;
	if (!l->ring_pos[0] || !l->ring_pos[1])
		return -ENODATA;
	cons = __atomic_load_n(l->ring_pos[0], __ATOMIC_ACQUIRE);
	prod = __atomic_load_n(l->ring_pos[1], __ATOMIC_ACQUIRE);
	*used = prod > cons ? prod - cons : 0;
	return 0;
}

int pt_loader_enable_stats(struct pt_loader *l)
{
	if (l->stats_fd >= 0)
		return 0;
	l->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	return l->stats_fd < 0 ? -errno : 0;
}

int pt_loader_prog_stats(struct pt_loader *l, struct pt_prog_stat *v, int max)
{
	struct bpf_program *p;
	int n = 0;

	bpf_object__for_each_program(p, l->skel->obj) {
		struct bpf_prog_info info = {};
		uint32_t len = sizeof(info);

		if (n == max)
			break;
		if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
			continue;
		snprintf(v[n].name, sizeof(v[n].name), "%s",
			 bpf_program__name(p));
		v[n].id = info.id;
		v[n].run_cnt = info.run_cnt;
		v[n].run_time_ns = info.run_time_ns;
		n++;
	}
	return n;
}

/*
 * The directory that holds dir must be a bpffs; mount one there when it is
 * not (as bpftool does), and unmount it again in pt_loader_unpin.
 */
static int ensure_bpffs(struct pt_loader *l, const char *dir)
{
	char copy[256], *parent;
	struct statfs st;
	int err;

	snprintf(copy, sizeof(copy), "%s", dir);
	parent = dirname(copy);
	if (statfs(parent, &st)) {
		err = -errno;
		pt_err("--pin: %s: %s", parent, strerror(-err));
		return err;
	}
	if (st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", parent, "bpf", 0, "mode=0700")) {
		err = -errno;
		pt_err("--pin: %s is not a bpffs and mounting one there failed: %s",
		       parent, strerror(-err));
		return err;
	}
	snprintf(l->bpffs, sizeof(l->bpffs), "%s", parent);
	pt_dbg("mounted bpffs at %s", parent);
	return 0;
}

/*
 * Pin (or unpin) every loaded program as dir/NAME; libbpf's own walk
 * refuses the programs not loaded (the TLS ones under --no-tls).
 */
static int pin_programs(struct pt_loader *l, const char *dir, bool pin)
{
	struct bpf_program *p;
	char path[PATH_MAX];
	int err;

	if (pin && mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	bpf_object__for_each_program(p, l->skel->obj) {
		if (bpf_program__fd(p) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, bpf_program__name(p));
		err = pin ? bpf_program__pin(p, path) : bpf_program__unpin(p, path);
		if (err && pin)
			return err;
	}
	if (!pin)
		rmdir(dir);
	return 0;
}

int pt_loader_pin(struct pt_loader *l, const char *dir)
{
	char sub[PATH_MAX];
	int err;

	if (strlen(dir) >= sizeof(l->pin_dir)) {
		pt_err("--pin: %s: path too long", dir);
		return -ENAMETOOLONG;
	}
	err = ensure_bpffs(l, dir);
	if (err)
		return err;
	if (mkdir(dir, 0700)) {
		err = -errno;
		if (err == -EEXIST)
			pt_err("--pin: %s exists: another podtap pinned there, or one that was killed (remove it with rm -r)",
			       dir);
		else if (err == -ENOENT)
			pt_err("--pin: %s: its parent does not exist (is bpffs mounted at /sys/fs/bpf?)",
			       dir);
		else
			pt_err("--pin: %s: %s", dir, strerror(-err));
		return err;
	}
	snprintf(l->pin_dir, sizeof(l->pin_dir), "%s", dir);
	snprintf(sub, sizeof(sub), "%s/maps", dir);
	err = bpf_object__pin_maps(l->skel->obj, sub);
	if (!err) {
		snprintf(sub, sizeof(sub), "%s/progs", dir);
		err = pin_programs(l, sub, true);
	}
	if (err) {
		pt_err("--pin: pinning under %s: %s%s", dir, strerror(-err),
		       err == -EPERM || err == -EINVAL ?
		       " (is bpffs mounted at /sys/fs/bpf?)" : "");
		pt_loader_unpin(l);
	}
	return err;
}

void pt_loader_unpin(struct pt_loader *l)
{
	char sub[PATH_MAX];

	if (!l->pin_dir[0])
		goto umount;
	snprintf(sub, sizeof(sub), "%s/maps", l->pin_dir);
	bpf_object__unpin_maps(l->skel->obj, sub);
	rmdir(sub);
	snprintf(sub, sizeof(sub), "%s/progs", l->pin_dir);
	pin_programs(l, sub, false);
	rmdir(sub);
	rmdir(l->pin_dir);
	l->pin_dir[0] = 0;
umount:
	if (l->bpffs[0]) {
		if (umount2(l->bpffs, MNT_DETACH))
			pt_err("unmounting the bpffs podtap mounted at %s: %s",
			       l->bpffs, strerror(errno));
		l->bpffs[0] = 0;
	}
}
