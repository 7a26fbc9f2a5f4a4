// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * TLS libraries of the targets, found and hooked (bpf/tls.bpf.c). Each
 * target process's /proc/PID/maps names the files it maps; a TLS library
 * among them is hooked once per file (device and inode), through
 * /proc/PID/root so that a container's own copy is found in its mount
 * namespace. A uprobe is per file, not per process: a process that starts
 * later, or forks, and maps a file already hooked is covered from its
 * first call; only a file not seen before needs a scan, which the runtime
 * repeats.
 */
#include <bpf/libbpf.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "base/common.h"
#include "capture/loader.h"
#include "capture/runtime.h"
#include "capture/tls.h"

/* The library functions hooked, and by which programs. */
static const struct hook {
	const char *func;
	const char *entry, *ret;
} hooks[] = {
	{ "SSL_write", "podtap_tls_w", "podtap_tls_w_r" },
	{ "SSL_read", "podtap_tls_r", "podtap_tls_r_r" },
	{ "SSL_write_ex", "podtap_tls_wx", "podtap_tls_wx_r" },
	{ "SSL_read_ex", "podtap_tls_rx", "podtap_tls_rx_r" },
	{ "SSL_do_handshake", "podtap_tls_hs", "podtap_tls_hs_r" },
	{ "SSL_connect", "podtap_tls_hs", "podtap_tls_hs_r" },
	{ "SSL_accept", "podtap_tls_hs", "podtap_tls_hs_r" },
};
#define NHOOKS	ARRAY_SIZE(hooks)

struct lib {
	dev_t dev;
	ino_t ino;
	char path[PATH_MAX];	/* as the first process that mapped it names it */
	bool ok;		/* hooked; else why says why not */
	char why[160];
	struct bpf_link *links[NHOOKS * 2];
};

struct pt_tls {
	struct bpf_object *obj;
	struct lib *libs;
	size_t nlibs;
	uint64_t *said;		/* (pid << 32 | lib index) already told */
	size_t nsaid;
	/* read by the metrics thread */
	uint64_t procs, hooked_procs;	/* processes with a TLS library */
	uint64_t libs_found, libs_hooked;
};

int pt_tls_open(struct pt_tls **out, struct pt_loader *l)
{
	struct bpf_object *obj = pt_loader_tls_object(l);

	*out = NULL;
	if (!obj)
		return 0;
	*out = pt_xcalloc(1, sizeof(**out));
	(*out)->obj = obj;
	return 0;
}

/* A TLS library by its file name: OpenSSL's and BoringSSL's libssl. */
static bool tls_lib_name(const char *path)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	return !strncmp(b, "libssl.so", 9) || !strncmp(b, "libboringssl", 12);
}

static struct lib *find_lib(struct pt_tls *t, dev_t dev, ino_t ino)
{
	size_t i;

	for (i = 0; i < t->nlibs; i++)
		if (t->libs[i].dev == dev && t->libs[i].ino == ino)
			return &t->libs[i];
	return NULL;
}

static int attach_one(struct pt_tls *t, struct lib *lib, const char *file,
		      size_t *k, const char *func, const char *prog, bool ret)
{
	LIBBPF_OPTS(bpf_uprobe_opts, o, .func_name = func, .retprobe = ret);
	struct bpf_program *p = bpf_object__find_program_by_name(t->obj, prog);
	struct bpf_link *link;

	if (!p)
		return -ENOENT;
	link = bpf_program__attach_uprobe_opts(p, -1, file, 0, &o);
	if (!link)
		return -errno;
	lib->links[(*k)++] = link;
	return 0;
}

/* Hook every function of hooks[] the file has; SSL_write and SSL_read
 * at least, or none. */
static void hook_lib(struct pt_tls *t, struct lib *lib, const char *file)
{
	size_t i, k = 0;
	int err;

	for (i = 0; i < NHOOKS; i++) {
		/* the return first: an entry without it would leave its
		 * call behind in tls_calls */
		err = attach_one(t, lib, file, &k, hooks[i].func,
				 hooks[i].ret, true);
		if (!err) {
			err = attach_one(t, lib, file, &k, hooks[i].func,
					 hooks[i].entry, false);
			if (err)
				bpf_link__destroy(lib->links[--k]);
		}
		if (err && i < 2) {
			snprintf(lib->why, sizeof(lib->why), "%s: %s",
				 hooks[i].func, err == -ENOENT ?
				 "no such function in it" : strerror(-err));
			while (k)
				bpf_link__destroy(lib->links[--k]);
			return;
		}
	}
	lib->ok = true;
	PT_SET(t->libs_hooked, t->libs_hooked + 1);
}

/* Told already that pid uses library k? Remembers it if not. */
static bool said_before(struct pt_tls *t, pid_t pid, size_t k)
{
	uint64_t key = (uint64_t)pid << 32 | k;
	size_t lo = 0, hi = t->nsaid, i;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->said[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < t->nsaid && t->said[lo] == key)
		return true;
	t->said = pt_xrealloc(t->said, t->nsaid + 1, sizeof(*t->said));
	for (i = t->nsaid; i > lo; i--)
		t->said[i] = t->said[i - 1];
	t->said[lo] = key;
	t->nsaid++;
	return false;
}

static void comm_of(pid_t pid, char *buf, size_t n)
{
	char p[64];
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/comm", (int)pid);
	buf[0] = 0;
	f = fopen(p, "re");
	if (!f)
		return;
	if (fgets(buf, (int)n, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

/*
 * The TLS libraries process pid maps now (a process may load one late:
 * Python imports ssl when first asked): hooked if new, said once.
 */
static void scan_pid(struct pt_tls *t, pid_t pid, bool quiet)
{
	char p[64], line[PATH_MAX + 128], comm[32], file[PATH_MAX + 64];
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/maps", (int)pid);
	f = fopen(p, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end, ino;
		unsigned int maj, min;
		char perms[8], path[PATH_MAX];
		struct lib *lib;
		int n = 0;

		path[0] = 0;
		if (sscanf(line, "%lx-%lx %7s %*x %x:%x %lu %n", &start, &end,
			   perms, &maj, &min, &ino, &n) < 6 || !n ||
		    !strchr(perms, 'x'))
			continue;
		snprintf(path, sizeof(path), "%s", line + n);
		path[strcspn(path, "\n")] = 0;
		if (!ino || !tls_lib_name(path))
			continue;
		lib = find_lib(t, makedev(maj, min), ino);
		if (!lib) {
			struct lib nl = { .dev = makedev(maj, min), .ino = ino };

			snprintf(nl.path, sizeof(nl.path), "%s", path);
			/*
			 * The mapping itself: right in another mount
			 * namespace or chroot, and for a file replaced
			 * since (" (deleted)").
			 */
			snprintf(file, sizeof(file), "/proc/%d/map_files/%lx-%lx",
				 (int)pid, start, end);
			if (access(file, R_OK))
				continue;	/* gone: try again next time */
			hook_lib(t, &nl, file);
			t->libs = pt_xrealloc(t->libs, t->nlibs + 1,
					      sizeof(*t->libs));
			lib = &t->libs[t->nlibs++];
			*lib = nl;
			PT_SET(t->libs_found, t->nlibs);
		}
		if (said_before(t, pid, (size_t)(lib - t->libs)))
			continue;
		PT_SET(t->procs, t->procs + 1);
		if (lib->ok)
			PT_SET(t->hooked_procs, t->hooked_procs + 1);
		comm_of(pid, comm, sizeof(comm));
		if (quiet)
			continue;
		if (lib->ok)
			pt_info("TLS: pid %d (%s) uses %s: its SSL_read and SSL_write calls are hooked",
				(int)pid, comm, lib->path);
		else
			pt_info("TLS: pid %d (%s) uses %s: not hooked (%s): its TLS stays ciphertext",
				(int)pid, comm, lib->path, lib->why);
	}
	fclose(f);
}

/* Every process of a cgroup and the cgroups under it. */
static void scan_cgroup(struct pt_tls *t, const char *dir, int depth,
			bool quiet)
{
	char p[PATH_MAX + 16];
	struct dirent *e;
	FILE *f;
	DIR *d;
	int pid;

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	f = fopen(p, "re");
	if (f) {
		while (fscanf(f, "%d", &pid) == 1)
			scan_pid(t, pid, quiet);
		fclose(f);
	}
	if (depth >= 16 || !(d = opendir(dir)))
		return;
	while ((e = readdir(d)))
		if (e->d_type == DT_DIR && e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			scan_cgroup(t, p, depth + 1, quiet);
		}
	closedir(d);
}

/* Every process in the pid namespace with this inode. */
static void scan_pidns(struct pt_tls *t, uint64_t inum, bool quiet)
{
	char p[64];
	struct dirent *e;
	struct stat st;
	DIR *d = opendir("/proc");

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(p, sizeof(p), "/proc/%.20s/ns/pid", e->d_name);
		if (stat(p, &st) || st.st_ino != inum)
			continue;
		scan_pid(t, atoi(e->d_name), quiet);
	}
	closedir(d);
}

void pt_tls_scan(struct pt_tls *t, struct pt_loader *l, bool quiet)
{
	const char *path;
	uint64_t id;
	size_t i;
	int kind;

	if (!t)
		return;
	for (i = 0; !pt_loader_target(l, i, &kind, &id, &path); i++)
		if (kind == PT_TARGET_CGROUP)
			scan_cgroup(t, path, 0, quiet);
		else
			scan_pidns(t, id, quiet);
}

/* Any thread: counters the scan keeps, never its arrays. */
void pt_tls_stats(const struct pt_tls *t, struct pt_tls_stats *s)
{
	memset(s, 0, sizeof(*s));
	if (!t)
		return;
	s->procs = PT_READ(t->procs);
	s->hooked_procs = PT_READ(t->hooked_procs);
	s->libs = PT_READ(t->libs_found);
	s->libs_hooked = PT_READ(t->libs_hooked);
}

void pt_tls_detach(struct pt_tls *t)
{
	size_t i, k;

	if (!t)
		return;
	for (i = 0; i < t->nlibs; i++)
		for (k = 0; k < ARRAY_SIZE(t->libs[i].links); k++) {
			bpf_link__destroy(t->libs[i].links[k]);
			t->libs[i].links[k] = NULL;
		}
}

void pt_tls_close(struct pt_tls *t)
{
	if (!t)
		return;
	pt_tls_detach(t);
	free(t->libs);
	free(t->said);
	free(t);
}
