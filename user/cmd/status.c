// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * podtap status: what podtap has loaded in this kernel, found the way
 * bpftool finds it (by walking program ids, and the cgroup tree for attach
 * points), so it works without pinning: per recorder, its process, its
 * programs with their attach points and run statistics, its targets and
 * its counters.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "capture/cgroup.h"
#include "cmd/cmds.h"
#include "base/common.h"
#include "base/jsonw.h"
#include "capture/tgnames.h"
#include "podtap.h"

#define MAX_PROGS	64
#define MAX_MAPS	32

struct prog {
	uint32_t id;
	char name[BPF_OBJ_NAME_LEN];
	uint32_t type;
	uint64_t run_cnt, run_time_ns;
	uint32_t map_ids[MAX_MAPS];
	uint32_t nmaps;
	char **cgroups;		/* attached to, with the attach type */
	size_t ncgroups;
};

struct inst {			/* one recorder: the programs sharing maps */
	uint32_t maps[64];	/* every map of its programs */
	int nmaps;
	uint32_t targets_map, pidns_map, counters_map;
	struct prog *progs[24];
	int nprogs;
	int pids[8];
	int npids;
};

struct cg {
	uint64_t id;
	char *path;
};

struct status {
	struct prog p[MAX_PROGS];
	int np;
	struct inst in[16];
	int ni;
	struct cg *cgs;
	size_t ncgs;
	char root[PATH_MAX];
	bool json;
};

static int map_name(uint32_t id, char *name, uint32_t *type)
{
	struct bpf_map_info info = {};
	uint32_t len = sizeof(info);
	int fd = bpf_map_get_fd_by_id(id), err = 0;

	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		err = -errno;
	close(fd);
	snprintf(name, BPF_OBJ_NAME_LEN, "%s", info.name);
	*type = info.type;
	return err;
}

/* Every program whose name starts with podtap_. */
static int find_progs(struct status *s)
{
	uint32_t id = 0;

	while (!bpf_prog_get_next_id(id, &id) && s->np < MAX_PROGS) {
		struct bpf_prog_info info = {};
		uint32_t len = sizeof(info);
		struct prog *p = &s->p[s->np];
		int fd = bpf_prog_get_fd_by_id(id);

		if (fd < 0) {
			if (errno == EPERM)
				return -EPERM;
			continue;
		}
		info.nr_map_ids = MAX_MAPS;
		info.map_ids = (uint64_t)(unsigned long)p->map_ids;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
		    !strncmp(info.name, "podtap_", 7)) {
			p->id = info.id;
			snprintf(p->name, sizeof(p->name), "%s", info.name);
			p->type = info.type;
			p->run_cnt = info.run_cnt;
			p->run_time_ns = info.run_time_ns;
			p->nmaps = info.nr_map_ids < MAX_MAPS ? info.nr_map_ids :
								MAX_MAPS;
			s->np++;
		}
		close(fd);
	}
	return errno == ENOENT || !errno ? 0 : -errno;
}

static bool inst_has_map(const struct inst *in, uint32_t id)
{
	int i;

	for (i = 0; i < in->nmaps; i++)
		if (in->maps[i] == id)
			return true;
	return false;
}

/* Programs that share a map are one recorder's (one object, linked). */
static void group(struct status *s)
{
	int i, k;
	uint32_t m;

	for (i = 0; i < s->np; i++) {
		struct prog *p = &s->p[i];
		uint32_t tg = 0, ns = 0, cnt = 0, type;
		char name[BPF_OBJ_NAME_LEN];
		struct inst *in = NULL;

		for (m = 0; m < p->nmaps; m++) {
			if (map_name(p->map_ids[m], name, &type))
				continue;
			if (!strcmp(name, "target_cgroups"))
				tg = p->map_ids[m];
			else if (!strcmp(name, "target_pidns"))
				ns = p->map_ids[m];
			else if (!strcmp(name, "podtap_counters"))
				cnt = p->map_ids[m];
		}
		for (k = 0; k < s->ni && !in; k++)
			for (m = 0; m < p->nmaps && !in; m++)
				if (inst_has_map(&s->in[k], p->map_ids[m]))
					in = &s->in[k];
		if (!in) {
			if (s->ni == (int)ARRAY_SIZE(s->in))
				continue;
			in = &s->in[s->ni++];
		}
		for (m = 0; m < p->nmaps; m++)
			if (!inst_has_map(in, p->map_ids[m]) &&
			    in->nmaps < (int)ARRAY_SIZE(in->maps))
				in->maps[in->nmaps++] = p->map_ids[m];
		in->targets_map = in->targets_map ? in->targets_map : tg;
		in->pidns_map = in->pidns_map ? in->pidns_map : ns;
		in->counters_map = in->counters_map ? in->counters_map : cnt;
		if (in->nprogs < (int)ARRAY_SIZE(in->progs))
			in->progs[in->nprogs++] = p;
	}
}

/* Processes holding a map of the instance: the recorder. */
static void find_owners(struct status *s)
{
	DIR *proc = opendir("/proc");
	struct dirent *de;

	while (proc && (de = readdir(proc))) {
		char path[64], line[128], link[64];
		int pid = atoi(de->d_name);
		struct dirent *fe;
		DIR *fds;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		fds = opendir(path);
		while (fds && (fe = readdir(fds))) {
			char fp[300];
			ssize_t n;
			FILE *f;

			snprintf(fp, sizeof(fp), "/proc/%d/fd/%s", pid, fe->d_name);
			n = readlink(fp, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = 0;
			if (strcmp(link, "anon_inode:bpf-map"))
				continue;
			snprintf(fp, sizeof(fp), "/proc/%d/fdinfo/%s", pid,
				 fe->d_name);
			f = fopen(fp, "re");
			while (f && fgets(line, sizeof(line), f)) {
				unsigned int id;
				int k;

				if (sscanf(line, "map_id: %u", &id) != 1)
					continue;
				for (k = 0; k < s->ni; k++) {
					struct inst *in = &s->in[k];

					if (inst_has_map(in, id) &&
					    in->npids < (int)ARRAY_SIZE(in->pids) &&
					    (!in->npids || in->pids[in->npids - 1] != pid))
						in->pids[in->npids++] = pid;
				}
			}
			if (f)
				fclose(f);
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
}

static const struct {
	enum bpf_attach_type type;
	const char *name;
} attach_types[] = {
	{ BPF_CGROUP_INET_INGRESS, "ingress" },
	{ BPF_CGROUP_INET_EGRESS, "egress" },
	{ BPF_CGROUP_SOCK_OPS, "sock_ops" },
	{ BPF_CGROUP_INET_SOCK_CREATE, "sock_create" },
};

static void add_attach(struct status *s, uint32_t id, const char *path,
		       const char *type)
{
	int i;

	for (i = 0; i < s->np; i++) {
		struct prog *p = &s->p[i];
		char *e;

		if (p->id != id)
			continue;
		if (asprintf(&e, "%s (%s)", path, type) < 0)
			return;
		p->cgroups = pt_xrealloc(p->cgroups, p->ncgroups + 1,
					 sizeof(*p->cgroups));
		p->cgroups[p->ncgroups++] = e;
	}
}

/* Walk the cgroup tree: ids for names, and where programs are attached. */
static void walk(struct status *s, const char *path, int depth)
{
	struct dirent *de;
	uint32_t ids[64];
	uint64_t cgid;
	size_t i;
	DIR *d;
	int fd;

	if (depth > 32)
		return;
	if (!pt_cgroup_id(path, &cgid)) {
		s->cgs = pt_xrealloc(s->cgs, s->ncgs + 1, sizeof(*s->cgs));
		s->cgs[s->ncgs].id = cgid;
		s->cgs[s->ncgs].path = strdup(path);
		s->ncgs++;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (i = 0; fd >= 0 && i < ARRAY_SIZE(attach_types); i++) {
		uint32_t n = ARRAY_SIZE(ids), k;

		if (bpf_prog_query(fd, attach_types[i].type, 0, NULL, ids, &n))
			continue;
		for (k = 0; k < n; k++)
			add_attach(s, ids[k], path, attach_types[i].name);
	}
	if (fd >= 0)
		close(fd);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		char sub[PATH_MAX];

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) <
		    (int)sizeof(sub))
			walk(s, sub, depth + 1);
	}
	if (d)
		closedir(d);
}

static const char *cg_path(const struct status *s, uint64_t id)
{
	size_t i;

	for (i = 0; i < s->ncgs; i++)
		if (s->cgs[i].id == id)
			return s->cgs[i].path;
	return NULL;
}

/* What the recorder said its target is: session name, pod or path. */
static bool target_names(const struct inst *in, int kind, uint64_t id,
			 char *sess, size_t sn, char *what, size_t wn)
{
	int i;

	for (i = 0; i < in->npids; i++)
		if (!pt_tgnames_find(in->pids[i], kind, id, sess, sn, what, wn))
			return true;
	sess[0] = what[0] = 0;
	return false;
}

static void print_targets(const struct status *s, const struct inst *in)
{
	char sess[256], what[512];
	uint64_t key, next;
	uint32_t v, k32, n32;
	void *prev = NULL;
	int fd = in->targets_map ? bpf_map_get_fd_by_id(in->targets_map) : -1;
	bool first = true;

	fputs(s->json ? ",\"targets\":[" : "  targets:\n", stdout);
	while (fd >= 0 && !bpf_map_get_next_key(fd, prev, &next)) {
		const char *p;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		p = cg_path(s, key);
		target_names(in, PT_TARGET_CGROUP, key, sess, sizeof(sess),
			     what, sizeof(what));
		if (s->json) {
			printf("%s{\"kind\":\"cgroup\",\"id\":%llu,\"session\":%u,\"session_name\":",
			       first ? "" : ",", (unsigned long long)key, v);
			pt_json_str(stdout, sess);
			fputs(",\"what\":", stdout);
			pt_json_str(stdout, what);
			fputs(",\"path\":", stdout);
			pt_json_str(stdout, p ? p : "");
			fputc('}', stdout);
		} else {
			char b[3][PATH_MAX];

			printf("    cgroup %-8llu session %-4u%s%s%s %s%s%s\n",
			       (unsigned long long)key, v, sess[0] ? " (" : "",
			       pt_printable(sess, b[0], sizeof(b[0])),
			       sess[0] ? ")" : "",
			       what[0] && (!p || strcmp(what, p)) ?
			       pt_printable(what, b[1], sizeof(b[1])) : "",
			       what[0] && (!p || strcmp(what, p)) ? "  " : "",
			       p ? pt_printable(p, b[2], sizeof(b[2])) :
			       "(not under the cgroup v2 mount)");
		}
		first = false;
	}
	if (fd >= 0)
		close(fd);
	fd = in->pidns_map ? bpf_map_get_fd_by_id(in->pidns_map) : -1;
	prev = NULL;
	while (fd >= 0 && !bpf_map_get_next_key(fd, prev, &n32)) {
		k32 = n32;
		prev = &k32;
		if (bpf_map_lookup_elem(fd, &k32, &v))
			continue;
		target_names(in, PT_TARGET_PIDNS, k32, sess, sizeof(sess),
			     what, sizeof(what));
		if (s->json) {
			printf("%s{\"kind\":\"pidns\",\"id\":%u,\"session\":%u,\"session_name\":",
			       first ? "" : ",", k32, v);
			pt_json_str(stdout, sess);
			fputs(",\"what\":", stdout);
			pt_json_str(stdout, what);
			fputc('}', stdout);
		} else {
			char b[2][PATH_MAX];

			printf("    pidns  %-8u session %-4u%s%s%s pid:[%u]%s%s\n",
			       k32, v, sess[0] ? " (" : "",
			       pt_printable(sess, b[0], sizeof(b[0])),
			       sess[0] ? ")" : "", k32, what[0] ? "  " : "",
			       pt_printable(what, b[1], sizeof(b[1])));
		}
		first = false;
	}
	if (fd >= 0)
		close(fd);
	if (s->json)
		fputc(']', stdout);
	else if (first)
		puts("    (none)");
}

static void print_counters(const struct status *s, const struct inst *in)
{
	int ncpu = libbpf_num_possible_cpus(), fd, cpu;
	struct pt_counters *per, c = {};
	/* __u64, as the fields are: uint64_t (unsigned long) may not alias them */
	__u64 *sum = (__u64 *)&c, lost = 0;
	uint32_t zero = 0;
	size_t i;

	fd = in->counters_map ? bpf_map_get_fd_by_id(in->counters_map) : -1;
	if (fd < 0 || ncpu <= 0)
		return;
	per = pt_xcalloc(ncpu, sizeof(*per));
	if (!bpf_map_lookup_elem(fd, &zero, per))
		for (cpu = 0; cpu < ncpu; cpu++)
			for (i = 0; i < sizeof(c) / 8; i++)
				sum[i] += ((const __u64 *)&per[cpu])[i];
	close(fd);
	free(per);
	for (i = 0; i < PT_LOSS_MAX; i++)
		lost += c.lost_bytes[i];
	printf(s->json ?
	       ",\"counters\":{\"events\":%llu,\"bytes\":%llu,\"lost_events\":%llu,\"lost_bytes\":%llu,\"connections\":%llu,\"closes\":%llu,\"passed_over\":%llu,\"tls_records\":%llu,\"tls_bytes\":%llu,\"tls_socket_not_yet\":%llu,\"tls_lost_bytes\":%llu}" :
	       "  counters: %llu events, %llu bytes, %llu events lost (%llu bytes), %llu connections opened, %llu closed, %llu packets of other sockets passed over\n"
	       "  TLS plaintext: %llu records, %llu bytes, %llu before their socket was known, %llu bytes lost\n",
	       (unsigned long long)c.events, (unsigned long long)c.bytes,
	       (unsigned long long)c.lost_events,
	       (unsigned long long)lost, (unsigned long long)c.conns,
	       (unsigned long long)c.closes,
	       (unsigned long long)c.filtered,
	       (unsigned long long)c.tls_records,
	       (unsigned long long)c.tls_bytes,
	       (unsigned long long)c.tls_unassoc,
	       (unsigned long long)c.tls_lost);
}

/* The TLS libraries its target processes have, as its last scan found
 * them (/run/podtap/PID.tls). */
static void print_tls(const struct status *s, const struct inst *in)
{
	struct pt_tls_proc_rec *v = pt_xcalloc(PT_TGNAMES_TLS_MAX, sizeof(*v));
	size_t total, more = 0;
	int i, k, n, shown = 0;

	for (i = 0; i < in->npids; i++) {
		n = pt_tgnames_tls(in->pids[i], v, PT_TGNAMES_TLS_MAX, &total);
		if (n > 0)
			more += total - (size_t)n;
		for (k = 0; k < n; k++, shown++) {
			if (s->json) {
				fputs(shown ? "," : ",\"tls_processes\":[", stdout);
				pt_tls_proc_json(stdout, &v[k]);
				continue;
			}
			if (!shown)
				puts("  TLS libraries of the target processes:");
			fputs("    ", stdout);
			pt_tls_proc_text(stdout, &v[k]);
			fputc('\n', stdout);
		}
	}
	if (s->json)
		printf("%s,\"tls_processes_not_listed\":%zu",
		       shown ? "]" : ",\"tls_processes\":[]", more);
	else if (more)
		printf("    ... and %zu more (%d are listed, those not hooked first)\n",
		       more, PT_TGNAMES_TLS_MAX);
	free(v);
}

static void print_prog(const struct status *s, const struct prog *p,
		       bool first)
{
	char b[PATH_MAX];
	size_t i;

	if (s->json) {
		printf("%s{\"id\":%u,\"name\":\"%s\",\"run_cnt\":%llu,\"run_time_ns\":%llu,\"attached\":[",
		       first ? "" : ",", p->id, p->name,
		       (unsigned long long)p->run_cnt,
		       (unsigned long long)p->run_time_ns);
		for (i = 0; i < p->ncgroups; i++) {
			if (i)
				fputc(',', stdout);
			pt_json_str(stdout, p->cgroups[i]);
		}
		fputs("]}", stdout);
		return;
	}
	if (p->run_cnt)
		printf("    %-16s id %-6u %12llu runs  %8.0f ns/run\n", p->name,
		       p->id, (unsigned long long)p->run_cnt,
		       (double)p->run_time_ns / p->run_cnt);
	else
		printf("    %-16s id %-6u %12s runs  %8s ns/run\n", p->name,
		       p->id, "-", "-");
	for (i = 0; i < p->ncgroups; i++)
		printf("      on %s\n", pt_printable(p->cgroups[i], b, sizeof(b)));
	if (!p->ncgroups)
		puts(p->type == BPF_PROG_TYPE_KPROBE ?
		     "      on the targets' TLS library calls (uprobes)" :
		     "      attached nowhere");
}

static void print_inst(const struct status *s, const struct inst *in,
		       bool first)
{
	bool stats = false;
	int i;

	for (i = 0; i < in->nprogs; i++)
		stats |= in->progs[i]->run_cnt > 0;
	if (s->json) {
		printf("%s{\"pids\":[", first ? "" : ",");
		for (i = 0; i < in->npids; i++)
			printf("%s%d", i ? "," : "", in->pids[i]);
		fputs("],\"programs\":[", stdout);
	} else {
		printf("podtap recorder");
		for (i = 0; i < in->npids; i++) {
			char path[64], comm[64] = "?";
			FILE *f;

			snprintf(path, sizeof(path), "/proc/%d/comm", in->pids[i]);
			f = fopen(path, "re");
			if (f && fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = 0;
			if (f)
				fclose(f);
			printf("%s pid %d (%s)", i ? "," : "", in->pids[i], comm);
		}
		printf("%s\n  programs:%s\n", in->npids ? "" : " (no process holds its maps)",
		       stats ? "" : " (run counts need BPF statistics on: podtap record --metrics, or sysctl kernel.bpf_stats_enabled=1)");
	}
	for (i = 0; i < in->nprogs; i++)
		print_prog(s, in->progs[i], i == 0);
	if (s->json)
		fputc(']', stdout);
	print_targets(s, in);
	print_tls(s, in);
	print_counters(s, in);
	if (s->json)
		fputc('}', stdout);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: podtap status [--json]\n"
"\n"
"Show what podtap has loaded in this kernel: for each running recorder, its\n"
"process, its BPF programs (id, run count and ns per run, the cgroups each\n"
"is attached to), its targets (cgroup id, session, cgroup path; pid\n"
"namespaces), the TLS library of each target process that has one (path,\n"
"version, hooked or why not, as of its last scan, every 2 s) and its\n"
"counters. Targets and processes are named as their recorder named them\n"
"(/run/podtap/PID.targets and PID.tls): the agent gives each target's\n"
"session (namespace/name) and pod (namespace/pod/container). Needs root.\n"
"Works without --pin; with it, the same maps are under /sys/fs/bpf/podtap\n"
"for bpftool.\n"
"\n"
"Options:\n"
"  -j, --json   one JSON object\n"
"  -h, --help   this text\n");
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "log-format", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct status *s = pt_xcalloc(1, sizeof(*s));
	int opt, err, i, rc = 1;
	size_t k;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":jvh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			s->json = true;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			if (pt_opt_other("status", opt, optarg,
					 argv[optind - 1]))
				goto out;
			break;
		}
	}
	if (optind < argc) {
		pt_err("status: unexpected argument '%s'", argv[optind]);
		goto out;
	}
	err = find_progs(s);
	if (err) {
		pt_err("listing BPF programs: %s%s", strerror(-err),
		       err == -EPERM ? " (run as root)" : "");
		goto out;
	}
	group(s);
	find_owners(s);
	pt_cgroup2_root(s->root, sizeof(s->root));
	if (s->root[0])
		walk(s, s->root, 0);
	if (s->json)
		fputs("{\"recorders\":[", stdout);
	else if (!s->ni)
		puts("no podtap programs are loaded");
	for (i = 0; i < s->ni; i++)
		print_inst(s, &s->in[i], i == 0);
	if (s->json)
		fputs("]}\n", stdout);
	rc = fflush(stdout) ? 1 : 0;
out:
	for (i = 0; i < s->np; i++) {
		for (k = 0; k < s->p[i].ncgroups; k++)
			free(s->p[i].cgroups[k]);
		free(s->p[i].cgroups);
	}
	for (k = 0; k < s->ncgs; k++)
		free(s->cgs[k].path);
	free(s->cgs);
	free(s);
	return rc;
}
