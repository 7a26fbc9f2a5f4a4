// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * TLS libraries of the targets, found and hooked (bpf/tls.bpf.c). Each
 * target process's /proc/PID/maps names the files it maps; a TLS library
 * among them is hooked once per file (device and inode), through
 * /proc/PID/root so that a container's own copy is found in its mount
 * namespace. A uprobe is per file, not per process: a process that starts
 * later, or forks, and maps a file already hooked is covered from its
 * first call; only a file not seen before needs a scan, which the runtime
 * repeats. On 6.13 and later a library's functions are one uprobe_multi
 * link of session uprobes; with --tls-probes process, one such link per
 * target process instead, made when the scan first sees it, so that no
 * other process traps.
 *
 * A process's executable is looked at too: OpenSSL or BoringSSL linked in
 * statically is found by its symbols, Go's crypto/tls by symbol or, in a
 * stripped build, through the pclntab (capture/elfbin.c).
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
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/bpf.h>
#include "base/common.h"
#include "capture/elfbin.h"
#include "capture/loader.h"
#include "capture/runtime.h"
#include "capture/tgnames.h"
#include "capture/tls.h"

/*
 * The library functions hooked, and by which programs. The first two are
 * required; hook_lib pairs each of them with its _ex form two further on.
 */
static const struct hook {
	const char *func;
	const char *entry, *ret;
	uint64_t cookie;	/* for podtap_tls_s, the session program */
} hooks[] = {
	{ "SSL_write", "podtap_tls_w", "podtap_tls_w_r", PT_TLS_WRITE },
	{ "SSL_read", "podtap_tls_r", "podtap_tls_r_r", PT_TLS_READ },
	{ "SSL_write_ex", "podtap_tls_wx", "podtap_tls_wx_r",
	  PT_TLS_WRITE | PT_TLS_SESSION_EX },
	{ "SSL_read_ex", "podtap_tls_rx", "podtap_tls_rx_r",
	  PT_TLS_READ | PT_TLS_SESSION_EX },
	{ "SSL_do_handshake", "podtap_tls_hs", "podtap_tls_hs_r",
	  PT_TLS_HANDSHAKE },
	{ "SSL_connect", "podtap_tls_hs", "podtap_tls_hs_r", PT_TLS_HANDSHAKE },
	{ "SSL_accept", "podtap_tls_hs", "podtap_tls_hs_r", PT_TLS_HANDSHAKE },
};
#define NHOOKS	ARRAY_SIZE(hooks)

/*
 * Links after which no further file is hooked. When recording stops
 * (pt_tls_detach) the kernel takes some 0.1 s to let go of each perf
 * uprobe, of which a file takes about 10 (libssl) to 20 or more (a Go
 * program) on kernels before 6.13, and 0.05 s of a uprobe_multi link,
 * of which a file takes one (libssl) or four (Go) on 6.13 and later: a
 * target could otherwise make podtap hook any number of copies, and
 * stopping outlast a pod's grace period (30 s by default).
 */
#define MAX_LINKS	200

/* The session uprobes of a library's functions, pending or in a link. */
struct points {
	uint64_t off[NHOOKS], cookie[NHOOKS];
	size_t n, stepped;
};

enum lib_kind {
	LIB_SSL,	/* a libssl mapped by the process */
	EXE_SSL,	/* an executable with OpenSSL linked in */
	EXE_GO,		/* a Go program using crypto/tls */
	EXE_NONE,	/* an executable with neither: nothing to say */
};

struct lib {
	dev_t dev;
	ino_t ino;
	enum lib_kind kind;
	bool ok;		/* hooked; else why says why not */
	char why[152];
	char version[40];	/* EXE_GO, EXE_SSL: the Go or OpenSSL version */
	bool go_sockets;	/* EXE_GO: Conns over *net.TCPConn are followed */
	struct bpf_link **links;
	size_t nlinks;
	int session_fd;		/* the session uprobes' link, if > 0 */
	int go_fds[4];		/* EXE_GO with uprobe_multi: its links */
	size_t ngo_fds, go_probes;
	size_t stepped;		/* of links[] and go_fds[], single-stepped */
	struct points pts;	/* the functions of its session link(s) */
	uint64_t hooked_gen;	/* the scan that hooked it */
};

/* A target process and a TLS library it has, as told. */
struct proc {
	uint64_t key;		/* pid << 32 | lib index */
	uint64_t gen;		/* the scan that last saw it */
	int fd;			/* per process: its session link, if > 0 */
	uint64_t start;		/* the process's start time: a pid is reused */
	dev_t exe_dev;		/* its executable: a process runs exec */
	ino_t exe_ino;
	struct pt_tls_proc_rec r;
};

struct pt_tls {
	struct bpf_object *obj;
	bool session_uprobes;	/* pt_loader_tls_session */
	bool per_process;	/* pt_loader_tls_per_process */
	struct lib *libs;
	size_t nlibs;
	struct proc *procs;	/* by key */
	size_t nprocs;
	uint64_t gen;		/* scans so far */
	bool changed;		/* procs differ from the status file */
	bool wrote;		/* the status file exists: removed at close */
	/* the target being scanned */
	uint32_t session;
	uint64_t target;
	uint64_t start;		/* of the process being scanned */
	dev_t exe_dev;		/* and its executable's file */
	ino_t exe_ino;
	pt_tls_emit_fn emit;
	void *emit_ctx;
	/* the libcrypto files seen, and the version each says */
	struct crypto {
		dev_t dev;
		ino_t ino;
		char version[40];
	} *cryptos;
	size_t ncryptos;
	/* read by the metrics thread */
	uint64_t live, live_hooked;	/* procs, of which hooked */
	uint64_t libs_found, libs_hooked;
	uint64_t probes, stepped;	/* uprobes attached; single-stepped */
};

int pt_tls_open(struct pt_tls **out, struct pt_loader *l)
{
	struct bpf_object *obj = pt_loader_tls_object(l);

	*out = NULL;
	if (!obj)
		return 0;
	*out = pt_xcalloc(1, sizeof(**out));
	(*out)->obj = obj;
	(*out)->session_uprobes = pt_loader_tls_session(l);
	(*out)->per_process = pt_loader_tls_per_process(l);
	if ((*out)->per_process)
		pt_info("note: --tls-probes process: a target process is hooked when a scan finds it (every 2 s); its calls before that, and those of processes that live less (a server's child per connection), stay ciphertext");
	return 0;
}

/*
 * A TLS library by its file name: OpenSSL's and BoringSSL's libssl, as
 * distributions name it (libssl.so.3) and as Python wheels bundle it
 * (auditwheel's libssl-1a2b3c4d.so.3); not NSS's libssl3.so.
 */
static bool tls_lib_name(const char *path)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	return (!strncmp(b, "libssl", 6) && (b[6] == '.' || b[6] == '-') &&
		strstr(b, ".so")) || !strncmp(b, "libboringssl", 12);
}

static struct lib *find_lib(struct pt_tls *t, dev_t dev, ino_t ino)
{
	size_t i;

	for (i = 0; i < t->nlibs; i++)
		if (t->libs[i].dev == dev && t->libs[i].ino == ino)
			return &t->libs[i];
	return NULL;
}

/* One uprobe at offset off of the file, counted by what it costs. */
static int attach_one(struct pt_tls *t, struct lib *lib, const char *file,
		      uint64_t off, const char *prog, bool ret,
		      uint64_t cookie, bool stepped)
{
	LIBBPF_OPTS(bpf_uprobe_opts, o, .retprobe = ret, .bpf_cookie = cookie);
	struct bpf_program *p = bpf_object__find_program_by_name(t->obj, prog);
	struct bpf_link *link;

	if (!p)
		return -ENOENT;
	link = bpf_program__attach_uprobe_opts(p, -1, file, off, &o);
	if (!link)
		return -errno;
	lib->links = pt_xrealloc(lib->links, lib->nlinks + 1,
				 sizeof(*lib->links));
	lib->links[lib->nlinks++] = link;
	lib->stepped += stepped;
	PT_SET(t->probes, t->probes + 1);
	PT_SET(t->stepped, t->stepped + stepped);
	return 0;
}

/*
 * BPF_LINK_CREATE for uprobe_multi (6.6), as the kernel lays it out:
 * Debian 12's headers and libbpf 1.1 predate it.
 */
union link_create_uprobe_multi {
	union bpf_attr attr;
	struct {
		uint32_t prog_fd, target_fd, attach_type, flags;
		uint64_t path, offsets, ref_ctr_offsets, cookies;
		uint32_t cnt, multi_flags, pid;
	} um;
};

/*
 * One link for all of a file's functions, with podtap_tls_s: its
 * uprobes are let go of together (the kernel waits once per link, where
 * each perf uprobe waits on its own). With a pid, for that process only:
 * the kernel puts the breakpoints in its memory and no other's. The
 * link's fd, or -errno.
 */
static int multi_link(struct pt_tls *t, const char *prog, uint32_t type,
		      const char *file, const uint64_t *off,
		      const uint64_t *cookie, size_t n, pid_t pid)
{
	struct bpf_program *p = bpf_object__find_program_by_name(t->obj, prog);
	union link_create_uprobe_multi a;
	int fd;

	if (!p)
		return -ENOENT;
	memset(&a, 0, sizeof(a));
	a.um.prog_fd = (uint32_t)bpf_program__fd(p);
	a.um.attach_type = type;
	a.um.path = (uint64_t)(uintptr_t)file;
	a.um.offsets = (uint64_t)(uintptr_t)off;
	a.um.cookies = (uint64_t)(uintptr_t)cookie;
	a.um.cnt = (uint32_t)n;
	a.um.pid = (uint32_t)pid;
	fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &a, sizeof(a));
	return fd < 0 ? -errno : fd;
}

static int session_link(struct pt_tls *t, const char *file,
			const struct points *ps, pid_t pid)
{
	int fd = multi_link(t, "podtap_tls_s", PT_TRACE_UPROBE_SESSION, file,
			    ps->off, ps->cookie, ps->n, pid);

	if (fd < 0)
		return fd;
	PT_SET(t->probes, t->probes + ps->n);
	PT_SET(t->stepped, t->stepped + ps->stepped);
	return fd;
}

static void session_unlink(struct pt_tls *t, int fd, const struct points *ps)
{
	close(fd);
	PT_SET(t->probes, t->probes - ps->n);
	PT_SET(t->stepped, t->stepped - ps->stepped);
}

static void unhook(struct pt_tls *t, struct lib *lib)
{
	PT_SET(t->probes, t->probes - lib->nlinks - lib->go_probes);
	PT_SET(t->stepped, t->stepped - lib->stepped);
	while (lib->nlinks)
		bpf_link__destroy(lib->links[--lib->nlinks]);
	while (lib->ngo_fds)
		close(lib->go_fds[--lib->ngo_fds]);
	lib->go_probes = 0;
	lib->stepped = 0;
	if (lib->session_fd > 0)
		session_unlink(t, lib->session_fd, &lib->pts);
	lib->session_fd = 0;
}

/* A function for the session link, once per offset. */
static void add_point(struct points *ps, uint64_t off, uint64_t cookie,
		      bool stepped)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		if (ps->off[i] == off)
			return;	/* an alias: hooked once */
	ps->off[ps->n] = off;
	ps->cookie[ps->n++] = cookie;
	ps->stepped += stepped;
}

/*
 * Where a library function is hooked: its cheapest probe point (see
 * capture/elfbin.c: most of a probe's cost is single-stepping the
 * instruction under it), else its entry. 0 with *off set, or -ENOENT.
 */
static int where(struct pt_elf *e, uint64_t addr, uint64_t size,
		 uint64_t *off, bool *stepped)
{
	uint64_t at = pt_elf_probe_point(e, addr, size, PT_KEEP_SYSV);

	*stepped = !at || pt_elf_offset(e, at, off);
	if (!*stepped)
		return 0;
	return pt_elf_offset(e, addr, off) ? -ENOENT : 0;
}

/* The entry and return of one function, at off: the return first, for
 * an entry without it would leave its call behind in tls_calls. */
static int attach_pair(struct pt_tls *t, struct lib *lib, const char *file,
		       uint64_t off, const struct hook *h, bool stepped)
{
	int err = attach_one(t, lib, file, off, h->ret, true, 0, stepped);

	if (err)
		return err;
	err = attach_one(t, lib, file, off, h->entry, false, 0, stepped);
	if (err) {
		bpf_link__destroy(lib->links[--lib->nlinks]);
		lib->stepped -= stepped;
		PT_SET(t->probes, t->probes - 1);
		PT_SET(t->stepped, t->stepped - stepped);
	}
	return err;
}

/*
 * Hook every function of hooks[] the file has; SSL_write and SSL_read
 * at least, or none. Where OpenSSL's SSL_write and SSL_write_ex (and the
 * read pair) wrap one internal function, that function is hooked for
 * both, with the _ex form's programs: it is where the SSL BIO's writes go
 * too, and in Debian's build it begins with an instruction the kernel
 * emulates, where SSL_write begins with one it single-steps. With
 * session uprobes the functions are gathered, then hooked in one link.
 */
static void hook_lib(struct pt_tls *t, struct lib *lib, struct pt_elf *e)
{
	char file[32];
	bool inner[2] = { false, false }, stepped;
	uint64_t addr, size, off, in[2];
	struct points ps = { .n = 0 };
	size_t i;
	int err;

	snprintf(file, sizeof(file), "/proc/self/fd/%d", pt_elf_fd(e));
	/* two functions, or it is not what they are (an mcount, say) */
	if (pt_elf_ssl_inner(e, hooks[2].func, hooks[0].func, &in[0]) &&
	    pt_elf_ssl_inner(e, hooks[3].func, hooks[1].func, &in[1]) &&
	    in[0] != in[1])
		for (i = 0; i < 2; i++) {
			if (where(e, in[i], 0, &off, &stepped))
				continue;
			if (t->session_uprobes)
				add_point(&ps, off, hooks[i + 2].cookie, stepped);
			else if (attach_pair(t, lib, file, off, &hooks[i + 2],
					     stepped))
				continue;
			inner[i] = true;
		}
	for (i = 0; i < NHOOKS; i++) {
		if (i < 4 && inner[i % 2])
			continue;	/* hooked through the inner function */
		err = -ENOENT;
		if (pt_elf_func(e, hooks[i].func, &addr, &size) &&
		    !(err = where(e, addr, size, &off, &stepped))) {
			if (t->session_uprobes)
				add_point(&ps, off, hooks[i].cookie, stepped);
			else
				err = attach_pair(t, lib, file, off, &hooks[i],
						  stepped);
		}
		if (err && i < 2) {
			snprintf(lib->why, sizeof(lib->why), "%s: %s",
				 hooks[i].func, err == -ENOENT ?
				 "no such function in it" : strerror(-err));
			unhook(t, lib);
			return;
		}
	}
	lib->pts = ps;
	if (t->session_uprobes && !t->per_process) {
		/* per process, each target's link is made when it is seen */
		err = session_link(t, file, &ps, 0);
		if (err < 0) {
			snprintf(lib->why, sizeof(lib->why),
				 "attaching session uprobes: %s",
				 strerror(-err));
			return;
		}
		lib->session_fd = err;
	}
	lib->ok = true;
	lib->hooked_gen = t->gen;
	PT_SET(t->libs_hooked, t->libs_hooked + 1);
}

/* Room for one more link? Else why (n bytes) says why not. */
static bool room(const struct pt_tls *t, char *why, size_t n)
{
	size_t i, links = 0;

	for (i = 0; i < t->nlibs; i++)
		links += t->libs[i].nlinks + t->libs[i].ngo_fds +
			 (t->libs[i].session_fd > 0);
	for (i = 0; i < t->nprocs; i++)
		links += t->procs[i].fd > 0;
	if (links < MAX_LINKS)
		return true;
	snprintf(why, n,
		 "podtap has %d uprobe links on TLS files, its most: letting go of each takes up to 0.1 s when recording stops",
		 MAX_LINKS);
	return false;
}

/*
 * A Go function's RETs (ret) or its entry as one uprobe_multi link of
 * prog, where the kernel has them (the session uprobes' 6.13 is taken as
 * the sign): waited for once when recording stops, not once a probe.
 */
static int go_multi(struct pt_tls *t, struct lib *lib, const char *file,
		    const struct pt_go_tls *g, const struct pt_go_func *f,
		    const char *prog, bool ret)
{
	size_t n = ret ? f->nrets : 1, r;
	uint64_t *off = pt_xcalloc(n, sizeof(*off));
	uint64_t *cookie = pt_xcalloc(n, sizeof(*cookie));
	int fd;

	for (r = 0; r < n; r++) {
		off[r] = ret ? f->rets[r] : f->entry;
		cookie[r] = pt_go_cookie(g, ret ? f->ret_addrs[r] : f->entry_addr);
	}
	fd = multi_link(t, prog, PT_TRACE_UPROBE_MULTI, file, off, cookie, n, 0);
	free(off);
	free(cookie);
	if (fd < 0)
		return fd;
	lib->go_fds[lib->ngo_fds++] = fd;
	lib->go_probes += n;
	r = ret ? n : !f->entry_emulated;
	lib->stepped += r;
	PT_SET(t->probes, t->probes + n);
	PT_SET(t->stepped, t->stepped + r);
	return 0;
}

/* A Go program's (*Conn).Write and Read: every RET, then the entry. */
static void hook_go(struct pt_tls *t, struct lib *lib, const char *file,
		    const struct pt_go_tls *g)
{
	const struct pt_go_func *fs[2] = { &g->write, &g->read };
	static const char *progs[2][2] = {
		{ "podtap_go_w", "podtap_go_w_ret" },
		{ "podtap_go_r", "podtap_go_r_ret" },
	};
	size_t i, r;
	int err = 0;

	for (i = 0; i < 2 && !err; i++) {
		if (t->session_uprobes) {
			err = go_multi(t, lib, file, g, fs[i], progs[i][1], true);
			if (!err)
				err = go_multi(t, lib, file, g, fs[i],
					       progs[i][0], false);
			continue;
		}
		for (r = 0; r < fs[i]->nrets && !err; r++)
			err = attach_one(t, lib, file, fs[i]->rets[r],
					 progs[i][1], false,
					 pt_go_cookie(g, fs[i]->ret_addrs[r]), true);
		if (!err)
			err = attach_one(t, lib, file, fs[i]->entry,
					 progs[i][0], false,
					 pt_go_cookie(g, fs[i]->entry_addr),
					 !fs[i]->entry_emulated);
	}
	if (err) {
		snprintf(lib->why, sizeof(lib->why), "attaching uprobes: %s",
			 strerror(-err));
		unhook(t, lib);
		return;
	}
	lib->ok = true;
	lib->hooked_gen = t->gen;
	PT_SET(t->libs_hooked, t->libs_hooked + 1);
}

/*
 * What a process's executable has to hook, looked at once per file:
 * Go's crypto/tls, or SSL_read and SSL_write defined in it (not merely
 * imported from a libssl, which the maps show on their own).
 */
static int inspect_exe(struct pt_tls *t, struct lib *lib, const char *file)
{
	char held[32];
	struct pt_go_tls g;
	struct pt_elf *e;
	uint64_t a, sz;
	int r;

	lib->kind = EXE_NONE;
	r = pt_elf_open(&e, file, lib->why, sizeof(lib->why));
	if (r == -EINVAL)
		return 0;	/* not ELF: nothing to hook, ever */
	if (r)
		return r;	/* gone, say: another time */
	/* attached through the file held open, not the process's mapping,
	 * which may be gone by the time the looking is done */
	snprintf(held, sizeof(held), "/proc/self/fd/%d", pt_elf_fd(e));
	r = pt_go_tls_find(e, &g, lib->why, sizeof(lib->why));
	if (r) {
		lib->kind = EXE_GO;
		snprintf(lib->version, sizeof(lib->version), "%s",
			 g.version[0] ? g.version : "an unknown Go version");
		lib->go_sockets = g.tcpconn_type != 0;
		if (r > 0 && room(t, lib->why, sizeof(lib->why)))
			hook_go(t, lib, held, &g);
	} else if (pt_elf_func(e, "SSL_write", &a, &sz) &&
		   pt_elf_func(e, "SSL_read", &a, &sz)) {
		lib->kind = EXE_SSL;
		if (room(t, lib->why, sizeof(lib->why)))
			hook_lib(t, lib, e);
	} else if (!pt_elf_imports(e, "SSL_write") && pt_elf_has_openssl(e)) {
		/* OpenSSL's code is there, but not its names */
		lib->kind = EXE_SSL;
		snprintf(lib->why, sizeof(lib->why),
			 "stripped: no SSL_read or SSL_write symbol to hook");
	}
	if (lib->kind == EXE_SSL)
		pt_elf_openssl_version(e, lib->version, sizeof(lib->version));
	pt_elf_close(e);
	if (lib->kind != EXE_NONE)
		PT_SET(t->libs_found, t->libs_found + 1);
	return 0;
}

void pt_tls_set_emit(struct pt_tls *t, pt_tls_emit_fn fn, void *ctx)
{
	if (!t)
		return;
	t->emit = fn;
	t->emit_ctx = ctx;
}

/*
 * Process pid's entry for library k, marked seen by this scan; NULL with
 * *slot where a new one goes if it has none.
 */
static struct proc *proc_find(struct pt_tls *t, pid_t pid, size_t k,
			      size_t *slot)
{
	uint64_t key = (uint64_t)pid << 32 | k;
	size_t lo = 0, hi = t->nprocs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->procs[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	*slot = lo;
	if (lo < t->nprocs && t->procs[lo].key == key) {
		t->procs[lo].gen = t->gen;
		return &t->procs[lo];
	}
	return NULL;
}

/* Let go of a process's own link (--tls-probes process), if it has one. */
static void proc_unlink(struct pt_tls *t, struct proc *p)
{
	if (p->fd > 0)
		session_unlink(t, p->fd, &t->libs[p->key & 0xffffffff].pts);
	p->fd = 0;
}

/* Forget the processes the scan did not see: gone, or no target now. */
static void proc_prune(struct pt_tls *t)
{
	size_t i, n = 0, hooked = 0;

	for (i = 0; i < t->nprocs; i++) {
		if (t->procs[i].gen != t->gen) {
			proc_unlink(t, &t->procs[i]);
			t->changed = true;
			continue;
		}
		hooked += t->procs[i].r.hook != PT_TLS_NOT_HOOKED;
		t->procs[n++] = t->procs[i];
	}
	t->nprocs = n;
	PT_SET(t->live, n);
	PT_SET(t->live_hooked, hooked);
}

/* A process's name whole: it may hold a newline of its own. */
static void comm_of(pid_t pid, char *buf, size_t n)
{
	char p[64];
	ssize_t r;
	int fd;

	snprintf(p, sizeof(p), "/proc/%d/comm", (int)pid);
	buf[0] = 0;
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	r = read(fd, buf, n - 1);
	close(fd);
	buf[r > 0 ? r : 0] = 0;
	if (r > 0 && buf[r - 1] == '\n')
		buf[r - 1] = 0;
}

/* A path into a field of n bytes: its end, the file's name, if it is
 * too long, after "...". */
static void put_path(char *dst, size_t n, const char *path)
{
	size_t len = strlen(path);

	if (len < n)
		memcpy(dst, path, len + 1);
	else
		snprintf(dst, n, "...%s", path + len - (n - 4));
}

/*
 * Say once per process what it has of lib (mapped as path), hooked or
 * why not: a line (unless quiet), a record, an entry of the table. With
 * --tls-probes process, the process's own link is made here, through
 * file (its mapping of lib).
 */
static void tell(struct pt_tls *t, pid_t pid, struct lib *lib,
		 const char *path, const char *file, const char *version,
		 bool quiet)
{
	char comm[32], what[PATH_MAX + 96], ver[48] = "", pc[64], pp[PATH_MAX];
	char why[sizeof(lib->why)];
	struct pt_tls_proc_rec *r;
	struct proc *p;
	bool ok = lib->ok, kept = false;
	size_t slot;
	int fd = 0;

	if (lib->kind == EXE_NONE)
		return;
	p = proc_find(t, pid, (size_t)(lib - t->libs), &slot);
	if (p && p->start == t->start && p->exe_dev == t->exe_dev &&
	    p->exe_ino == t->exe_ino)
		return;
	if (p) {
		/* the pid is another process's now (its own link with
		 * --tls-probes process), or it ran exec (the same process:
		 * its link kept, its new comm told) */
		if (p->start == t->start && p->fd > 0) {
			fd = p->fd;
			p->fd = 0;
			kept = true;
		}
		proc_unlink(t, p);
		t->nprocs--;
		memmove(p, p + 1, (t->nprocs - slot) * sizeof(*p));
	}
	t->procs = pt_xrealloc(t->procs, t->nprocs + 1, sizeof(*t->procs));
	memmove(&t->procs[slot + 1], &t->procs[slot],
		(t->nprocs - slot) * sizeof(*t->procs));
	t->nprocs++;
	t->changed = true;
	snprintf(why, sizeof(why), "%s", lib->why);
	if (ok && t->per_process && lib->kind != EXE_GO && !kept) {
		if (!room(t, why, sizeof(why))) {
			ok = false;
		} else if ((fd = session_link(t, file, &lib->pts, pid)) < 0) {
			ok = false;
			snprintf(why, sizeof(why), "attaching session uprobes: %s",
				 strerror(-fd));
			fd = 0;
		}
	}
	p = &t->procs[slot];
	memset(p, 0, sizeof(*p));
	p->key = (uint64_t)pid << 32 | (size_t)(lib - t->libs);
	p->gen = t->gen;
	p->fd = fd;
	p->start = t->start;
	p->exe_dev = t->exe_dev;
	p->exe_ino = t->exe_ino;
	comm_of(pid, comm, sizeof(comm));
	r = &p->r;
	r->h.type = PT_REC_TLS_PROC;
	r->h.size = sizeof(*r);
	r->h.ts_ns = pt_now_mono_ns();
	r->target_id = t->target;
	r->session_id = t->session;
	r->tgid = (uint32_t)pid;
	r->lib = lib->kind == LIB_SSL ? PT_TLS_LIB_SHARED :
		 lib->kind == EXE_SSL ? PT_TLS_LIB_STATIC : PT_TLS_LIB_GO;
	if (ok && !kept && (fd > 0 || lib->hooked_gen == t->gen))
		r->flags |= PT_TLS_PROC_HOOKED_NOW;
	r->hook = !ok ? PT_TLS_NOT_HOOKED :
		  lib->kind == EXE_GO && !lib->go_sockets ?
		  PT_TLS_HOOKED_PSEUDO : PT_TLS_HOOKED;
	snprintf(r->comm, sizeof(r->comm), "%s", comm);
	snprintf(r->version, sizeof(r->version), "%s", version);
	put_path(r->path, sizeof(r->path), path);
	if (!ok)
		snprintf(r->why, sizeof(r->why), "%s", why);
	if (t->emit)
		t->emit(t->emit_ctx, &r->h, sizeof(*r));
	if (quiet)
		return;
	if (lib->kind != EXE_GO)
		snprintf(ver, sizeof(ver), " (%s)",
			 version[0] ? version : "version unknown");
	/* names as status and read print them: no control bytes */
	pt_printable(comm, pc, sizeof(pc));
	pt_printable(path, pp, sizeof(pp));
	if (lib->kind == LIB_SSL)
		snprintf(what, sizeof(what), "uses %s%s", pp, ver);
	else if (lib->kind == EXE_SSL)
		snprintf(what, sizeof(what), "runs %s, which has OpenSSL linked in%s",
			 pp, ver);
	else
		snprintf(what, sizeof(what), "runs %s, built with %s",
			 pp, version);
	if (ok)
		pt_info("TLS: pid %d (%s) %s: %s are hooked%s", (int)pid, pc,
			what, lib->kind == EXE_GO ?
			"its crypto/tls Read and Write calls" :
			"its SSL_read and SSL_write calls",
			lib->kind == EXE_GO && !lib->go_sockets ?
			" (no *net.TCPConn in it: plaintext on pseudo-connections)" : "");
	else
		pt_info("TLS: pid %d (%s) %s: not hooked (%s): its TLS stays ciphertext",
			(int)pid, pc, what, why);
}

/* Where a process's executable is mapped, from its maps. */
struct exe_map {
	bool found;
	dev_t dev;
	ino_t ino;
	unsigned long start, end;
	char path[PATH_MAX];
};

static struct lib *add_lib(struct pt_tls *t, const struct lib *nl)
{
	t->libs = pt_xrealloc(t->libs, t->nlibs + 1, sizeof(*t->libs));
	t->libs[t->nlibs] = *nl;
	return &t->libs[t->nlibs++];
}

/*
 * The executable of process pid, looked at once per file: the file its
 * mapping names (dev and inode as in the maps, the underlying file's
 * even on overlayfs, where each container's mount has its own st_dev),
 * opened through the mapping itself.
 */
static void scan_exe(struct pt_tls *t, pid_t pid, const struct exe_map *x,
		     bool quiet)
{
	char file[96];
	struct lib nl = {}, *lib;

	if (!x->found)
		return;		/* a kernel thread, or gone */
	snprintf(file, sizeof(file), "/proc/%d/map_files/%lx-%lx", (int)pid,
		 x->start, x->end);
	lib = find_lib(t, x->dev, x->ino);
	if (!lib) {
		nl.dev = x->dev;
		nl.ino = x->ino;
		if (inspect_exe(t, &nl, file))
			return;
		lib = add_lib(t, &nl);
	}
	tell(t, pid, lib, x->path, file, lib->version, quiet);
}

/*
 * A libssl's version is its libcrypto's (libssl has no text of it): that
 * of the libcrypto file the process maps (dev, ino, opened as file),
 * read once per file. "" if unknown.
 */
static const char *crypto_version(struct pt_tls *t, dev_t dev, ino_t ino,
				  const char *file)
{
	struct crypto *c;
	struct pt_elf *e;
	char why[64];
	size_t i;

	if (!file[0])
		return "";
	for (i = 0; i < t->ncryptos; i++)
		if (t->cryptos[i].dev == dev && t->cryptos[i].ino == ino)
			return t->cryptos[i].version;
	if (pt_elf_open(&e, file, why, sizeof(why)))
		return "";	/* gone, say: another time */
	t->cryptos = pt_xrealloc(t->cryptos, t->ncryptos + 1,
				 sizeof(*t->cryptos));
	c = &t->cryptos[t->ncryptos++];
	c->dev = dev;
	c->ino = ino;
	c->version[0] = 0;
	pt_elf_openssl_version(e, c->version, sizeof(c->version));
	pt_elf_close(e);
	return c->version;
}

/*
 * A path as /proc/PID/maps shows it: the kernel writes a newline in it
 * as \012 (and nothing else escaped).
 */
static void maps_form(char *dst, size_t n, const char *path)
{
	size_t i = 0;

	for (; *path && i + 5 < n; path++) {
		if (*path == '\n') {
			memcpy(dst + i, "\\012", 4);
			i += 4;
		} else {
			dst[i++] = *path;
		}
	}
	dst[i] = 0;
}

/* When process pid started (clock ticks since boot), or 0. */
static uint64_t start_time(pid_t pid)
{
	char p[64], buf[1024], *c;
	unsigned long long st = 0;
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	/* after the comm, which may hold anything: field 22 is the 20th */
	c = strrchr(buf, ')');
	if (!c || sscanf(c + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
			  &st) != 1)
		return 0;
	return st;
}

/*
 * The TLS libraries process pid maps now (a process may load one late:
 * Python imports ssl when first asked) and its executable: hooked if
 * new, said once.
 */
static void scan_pid(struct pt_tls *t, pid_t pid, bool quiet)
{
	char p[64], line[PATH_MAX + 128], file[96], crypto[96] = "";
	char exe[PATH_MAX];
	dev_t crypto_dev = 0;
	ino_t crypto_ino = 0;
	struct {
		size_t lib;
		char path[PATH_MAX];
		char file[96];	/* its mapping, as file below */
	} *found = NULL;
	size_t nfound = 0, i;
	struct exe_map x = {};
	ssize_t n;
	FILE *f;

	t->start = start_time(pid);
	snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	n = readlink(p, x.path, sizeof(x.path) - 1);
	x.path[n > 0 ? n : 0] = 0;
	maps_form(exe, sizeof(exe), x.path);
	snprintf(p, sizeof(p), "/proc/%d/maps", (int)pid);
	f = fopen(p, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end, ino;
		unsigned int maj, min;
		char perms[8], path[PATH_MAX];
		struct pt_elf *e;
		struct lib *lib;
		int n = 0, r;

		path[0] = 0;
		if (sscanf(line, "%lx-%lx %7s %*x %x:%x %lu %n", &start, &end,
			   perms, &maj, &min, &ino, &n) < 6 || !n ||
		    !strchr(perms, 'x'))
			continue;
		snprintf(path, sizeof(path), "%s", line + n);
		path[strcspn(path, "\n")] = 0;
		if (ino && !x.found && x.path[0] && !strcmp(path, exe)) {
			x.found = true;
			x.dev = makedev(maj, min);
			x.ino = ino;
			x.start = start;
			x.end = end;
		}
		if (ino && !crypto[0] && strstr(path, "/libcrypto")) {
			snprintf(crypto, sizeof(crypto), "/proc/%d/map_files/%lx-%lx",
				 (int)pid, start, end);
			crypto_dev = makedev(maj, min);
			crypto_ino = ino;
		}
		if (!ino || !tls_lib_name(path))
			continue;
		/*
		 * The mapping itself: right in another mount namespace or
		 * chroot, and for a file replaced since (" (deleted)").
		 */
		snprintf(file, sizeof(file), "/proc/%d/map_files/%lx-%lx",
			 (int)pid, start, end);
		lib = find_lib(t, makedev(maj, min), ino);
		if (!lib) {
			struct lib nl = { .dev = makedev(maj, min), .ino = ino };

			r = pt_elf_open(&e, file, nl.why, sizeof(nl.why));
			if (r && r != -EINVAL)
				continue;	/* gone: try again next time */
			if (!r && room(t, nl.why, sizeof(nl.why)))
				hook_lib(t, &nl, e);
			pt_elf_close(e);
			lib = add_lib(t, &nl);
			PT_SET(t->libs_found, t->libs_found + 1);
		}
		/* told once its libcrypto is known too */
		found = pt_xrealloc(found, nfound + 1, sizeof(*found));
		found[nfound].lib = (size_t)(lib - t->libs);
		snprintf(found[nfound].path, sizeof(found[nfound].path), "%s",
			 path);
		memcpy(found[nfound].file, file, sizeof(file));
		nfound++;
	}
	fclose(f);
	t->exe_dev = x.found ? x.dev : 0;
	t->exe_ino = x.found ? x.ino : 0;
	for (i = 0; i < nfound; i++) {
		struct lib *lib = &t->libs[found[i].lib];

		/* a file of OpenSSL's API: else its libcrypto says nothing of it */
		tell(t, pid, lib, found[i].path, found[i].file, lib->ok ?
		     crypto_version(t, crypto_dev, crypto_ino, crypto) : "",
		     quiet);
	}
	free(found);
	scan_exe(t, pid, &x, quiet);
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
	t->gen++;
	for (i = 0; !pt_loader_target(l, i, &kind, &id, &path); i++) {
		if (!pt_loader_target_tls(l, i))
			continue;	/* its session said tls: false */
		t->session = pt_loader_target_session(l, i);
		t->target = id;
		if (kind == PT_TARGET_CGROUP)
			scan_cgroup(t, path, 0, quiet);
		else
			scan_pidns(t, id, quiet);
	}
	proc_prune(t);
	if (t->changed) {
		const struct pt_tls_proc_rec *v[PT_TGNAMES_TLS_MAX];
		size_t n = 0, k;
		int pass;

		/* those not hooked first: what a cut must not hide */
		for (pass = 0; pass < 2; pass++)
			for (k = 0; k < t->nprocs && n < ARRAY_SIZE(v); k++)
				if ((t->procs[k].r.hook == PT_TLS_NOT_HOOKED) == !pass)
					v[n++] = &t->procs[k].r;
		/* status goes without it: not worth a line per scan */
		if (!pt_tgnames_write_tls(v, n, t->nprocs))
			t->changed = false;
		t->wrote = true;
	}
}

const struct pt_tls_proc_rec *pt_tls_proc(const struct pt_tls *t, size_t i)
{
	return t && i < t->nprocs ? &t->procs[i].r : NULL;
}

/* Any thread: counters the scan keeps, never its arrays. */
void pt_tls_stats(const struct pt_tls *t, struct pt_tls_stats *s)
{
	memset(s, 0, sizeof(*s));
	if (!t)
		return;
	s->procs = PT_READ(t->live);
	s->hooked_procs = PT_READ(t->live_hooked);
	s->libs = PT_READ(t->libs_found);
	s->libs_hooked = PT_READ(t->libs_hooked);
	s->probes = PT_READ(t->probes);
	s->stepped = PT_READ(t->stepped);
	s->session = t->session_uprobes;
	s->per_process = t->per_process;
}

/*
 * Removing a perf uprobe waits for an RCU tasks-trace grace period,
 * about 100 ms on this project's machines, one removal at a time
 * (removals from several threads measured no faster): a Go program's 17
 * or so hooks take it 2 s to let go. A uprobe_multi link waits once for
 * all of its uprobes, some 50 ms: 0.2 s for a Go program's four.
 */
void pt_tls_detach(struct pt_tls *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->nlibs; i++)
		unhook(t, &t->libs[i]);
	for (i = 0; i < t->nprocs; i++)
		proc_unlink(t, &t->procs[i]);
}

void pt_tls_close(struct pt_tls *t)
{
	size_t i;

	if (!t)
		return;
	pt_tls_detach(t);
	if (t->wrote)
		pt_tgnames_remove_tls();
	for (i = 0; i < t->nlibs; i++)
		free(t->libs[i].links);
	free(t->libs);
	free(t->procs);
	free(t->cryptos);
	free(t);
}
