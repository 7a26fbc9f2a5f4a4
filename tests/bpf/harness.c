// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "capture/cgroup.h"
#include "harness.h"
#include "proto/exch.h"
#include "test_progs.h"

const char *const h_method_names[M__COUNT] = {
	"read_write", "readv_writev", "send_recv", "sendto_recvfrom",
	"sendmsg_recvmsg", "sendmmsg_recvmmsg", "sendfile_splice",
	"splice_splice",
};

static char top_cg[PATH_MAX];
static char made_cgs[64][PATH_MAX];
static int nmade_cgs;
static char made_ns[8][32];
static int nmade_ns;
static pid_t kids[256];
static int nkids;

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

const char *h_env_setup(void)
{
	static char why[256];
	char root[PATH_MAX];
	struct pt_loader_opts o = {};
	struct pt_loader *l;

	signal(SIGPIPE, SIG_IGN);
	if (geteuid() != 0)
		return "needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)";
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		return "kernel has no BTF at /sys/kernel/btf/vmlinux";
	if (pt_cgroup2_root(root, sizeof(root)))
		return "no cgroup v2 hierarchy mounted";
	snprintf(top_cg, sizeof(top_cg), "%.3000s/podtap-test-%d", root,
		 (int)getpid());
	if (mkdir(top_cg, 0755)) {
		snprintf(why, sizeof(why), "cannot create %.150s: %s", top_cg,
			 strerror(errno));
		top_cg[0] = 0;
		return why;
	}
	if (getenv("PT_TEST_VERBOSE"))
		pt_verbose = true;
	/* Can this kernel load the programs at all? */
	o.ring_bytes = 1 << 16;
	o.on_record = NULL;
	if (pt_loader_open(&l, &o)) {
		snprintf(why, sizeof(why), "the podtap BPF programs do not load here (see the line above)");
		return why;
	}
	pt_loader_close(l);
	return NULL;
}

static void rm_cg(const char *path)
{
	/* Children are dead; a cgroup with none left can be removed. */
	for (int i = 0; i < 50 && rmdir(path) && errno == EBUSY; i++)
		sleep_ms(20);
}

void h_test_cleanup(void)
{
	char cmd[512];
	int i;

	for (i = 0; i < nkids; i++) {
		if (kids[i] > 0 && waitpid(kids[i], NULL, WNOHANG) == 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	}
	nkids = 0;
	for (i = nmade_cgs - 1; i >= 0; i--)
		rm_cg(made_cgs[i]);
	nmade_cgs = 0;
	for (i = 0; i < nmade_ns; i++) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null",
			 made_ns[i]);
		if (system(cmd))
			fprintf(stderr, "cleanup: '%s' failed\n", cmd);
	}
	nmade_ns = 0;
}

void h_env_teardown(void)
{
	h_test_cleanup();
	if (top_cg[0])
		rm_cg(top_cg);
}

int h_cg_make(struct h_cg *cg, const char *name)
{
	int err;

	if (nmade_cgs == (int)ARRAY_SIZE(made_cgs))
		return -ENOSPC;
	snprintf(cg->path, sizeof(cg->path), "%.3000s/%.200s", top_cg, name);
	if (mkdir(cg->path, 0755) && errno != EEXIST)
		return -errno;
	snprintf(made_cgs[nmade_cgs++], PATH_MAX, "%s", cg->path);
	err = pt_cgroup_id(cg->path, &cg->id);
	return err;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	return rc ? -1 : 0;
}

int h_netpair_make(struct h_netpair *np)
{
	int id = (int)getpid() % 100000;

	/* RFC 2544 benchmarking range and a ULA: only in our namespaces. */
	snprintf(np->srv_ns, sizeof(np->srv_ns), "pt%ds", id);
	snprintf(np->cli_ns, sizeof(np->cli_ns), "pt%dc", id);
	np->srv_ip4 = "198.18.0.1";
	np->cli_ip4 = "198.18.0.2";
	np->srv_ip6 = "fd70:7461:70::1";
	np->cli_ip6 = "fd70:7461:70::2";
	if (sh("ip netns add %s", np->srv_ns))
		return -1;
	snprintf(made_ns[nmade_ns++], 32, "%s", np->srv_ns);
	if (sh("ip netns add %s", np->cli_ns))
		return -1;
	snprintf(made_ns[nmade_ns++], 32, "%s", np->cli_ns);
	if (sh("ip link add pt%da netns %s type veth peer name pt%db netns %s",
	       id, np->srv_ns, id, np->cli_ns) ||
	    sh("ip -n %s addr add %s/30 dev pt%da && ip -n %s addr add %s/64 dev pt%da nodad",
	       np->srv_ns, np->srv_ip4, id, np->srv_ns, np->srv_ip6, id) ||
	    sh("ip -n %s addr add %s/30 dev pt%db && ip -n %s addr add %s/64 dev pt%db nodad",
	       np->cli_ns, np->cli_ip4, id, np->cli_ns, np->cli_ip6, id) ||
	    sh("ip -n %s link set lo up && ip -n %s link set pt%da up",
	       np->srv_ns, np->srv_ns, id) ||
	    sh("ip -n %s link set lo up && ip -n %s link set pt%db up",
	       np->cli_ns, np->cli_ns, id))
		return -1;
	return 0;
}

pid_t h_spawn(const struct h_cg *cg, const char *netns, int (*fn)(void *),
	      void *arg)
{
	char path[PATH_MAX + 32];
	pid_t pid;
	int fd;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		if (nkids < (int)ARRAY_SIZE(kids))
			kids[nkids++] = pid;
		return pid;
	}
	if (cg) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg->path);
		fd = open(path, O_WRONLY);
		if (fd < 0 || write(fd, "0\n", 2) != 2) {
			fprintf(stderr, "child: joining %s: %s\n", cg->path,
				strerror(errno));
			_exit(100);
		}
		close(fd);
	}
	if (netns) {
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
		fd = open(path, O_RDONLY);
		if (fd < 0 || setns(fd, CLONE_NEWNET)) {
			fprintf(stderr, "child: entering netns %s: %s\n", netns,
				strerror(errno));
			_exit(101);
		}
		close(fd);
	}
	_exit(fn(arg));
}

int h_wait(pid_t pid, int timeout_ms)
{
	int status, waited = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0)
			return -1;
		if (waited >= timeout_ms) {
			fprintf(stderr, "child %d still running after %d ms: killed\n",
				(int)pid, timeout_ms);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return -1;
		}
		sleep_ms(5);
		waited += 5;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	fprintf(stderr, "child %d died of signal %d\n", (int)pid,
		WTERMSIG(status));
	return -1;
}

/* ---- recorder ---- */

static int rec_cb(void *ctx, const struct pt_rec_hdr *h, size_t size)
{
	struct h_rec *r = ctx;

	r->records++;
	return pt_conns_add(&r->conns, h);
}

static void *rec_thread(void *arg)
{
	struct h_rec *r = arg;

	while (!r->stop) {
		if (r->paused || pt_loader_consume(r->l) < 16)
			sleep_ms(1);
	}
	return NULL;
}

int h_rec_start(struct h_rec *r, size_t ring_bytes)
{
	struct pt_loader_opts o = {
		.ring_bytes = ring_bytes,
		.on_record = rec_cb,
		.ctx = r,
	};
	int err;

	memset(r, 0, sizeof(*r));
	pt_conns_init(&r->conns);
	err = pt_loader_open(&r->l, &o);
	if (err)
		return err;
	err = pthread_create(&r->thr, NULL, rec_thread, r);
	if (err)
		return -err;
	r->running = true;
	return 0;
}

int h_rec_target(struct h_rec *r, const struct h_cg *cg)
{
	return pt_loader_add_cgroup(r->l, cg->path, cg->id, 7);
}

int h_rec_untarget(struct h_rec *r, const struct h_cg *cg)
{
	return pt_loader_remove_cgroup(r->l, cg->id);
}

void h_rec_stop(struct h_rec *r)
{
	if (!r->running)
		return;
	/* Softirq work of the last packets finishes within a few ms. */
	sleep_ms(50);
	r->paused = 0;
	r->stop = 1;
	pthread_join(r->thr, NULL);
	r->running = false;
	pt_loader_detach(r->l);
	while (pt_loader_consume(r->l) > 0)
		;
	pt_loader_drain_losses(r->l);
}

void h_rec_free(struct h_rec *r)
{
	h_rec_stop(r);
	pt_loader_close(r->l);
	r->l = NULL;
	pt_conns_free(&r->conns);
}

/* ---- payloads ---- */

static void fill(uint32_t seed, int k, int dir, int round, uint8_t *p,
		 size_t n)
{
	uint64_t s = ((uint64_t)seed << 32) ^ ((uint64_t)k << 16) ^
		     ((uint64_t)dir << 8) ^ (uint64_t)round ^
		     0x9e3779b97f4a7c15ull;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!(i & 7)) {
			s ^= s >> 12;
			s ^= s << 25;
			s ^= s >> 27;
		}
		p[i] = (uint8_t)((s * 0x2545f4914f6cdd1dull) >> (8 * (i & 7)));
	}
}

uint8_t *h_expected(const struct h_xfer *x, int k, int dir, size_t *len)
{
	size_t one = dir ? x->resp_len : x->req_len;
	int rounds = x->mode == X_KEEPALIVE ? x->rounds : 1, i;
	uint8_t *buf = pt_xcalloc(1, one * rounds + 1);

	for (i = 0; i < rounds; i++)
		fill(x->seed, k, dir, i, buf + one * i, one);
	*len = one * rounds;
	return buf;
}

/* ---- I/O through every syscall family ---- */

/*
 * n bytes in at most cnt uneven pieces (salt, salt + 2, salt + 4, ...,
 * the last one takes the rest), so that segment and iovec boundaries
 * differ between the peers. Returns the number of iovecs used.
 */
static int split_iov(struct iovec *iov, int cnt, uint8_t *p, size_t n,
		     size_t salt)
{
	size_t off = 0, part;
	int i;

	for (i = 0; i < cnt && off < n; i++) {
		part = i == cnt - 1 ? n - off : salt + 2 * i;
		if (part > n - off)
			part = n - off;
		iov[i].iov_base = p + off;
		iov[i].iov_len = part;
		off += part;
	}
	return i;
}

static ssize_t send_some(int fd, int m, const uint8_t *p, size_t n)
{
	switch (m) {
	case M_RW:
		return write(fd, p, n);
	case M_SEND:
		return send(fd, p, n, 0);
	case M_SENDTO:
		return sendto(fd, p, n, 0, NULL, 0);
	case M_VEC:
	case M_MSG: {
		struct iovec iov[16];
		struct msghdr mh = { .msg_iov = iov };
		int i = split_iov(iov, m == M_VEC ? 7 : 16, (uint8_t *)p, n, 1);

		if (m == M_VEC)
			return writev(fd, iov, i);
		mh.msg_iovlen = i;
		return sendmsg(fd, &mh, 0);
	}
	case M_MMSG: {
		struct mmsghdr mm[4] = {};
		struct iovec iov[4];
		size_t q = n / 4 ? n / 4 : n, off = 0;
		int cnt = 0, r, i;
		ssize_t sent = 0;

		while (off < n && cnt < 4) {
			size_t part = cnt == 3 || n - off < q ? n - off : q;

			iov[cnt].iov_base = (void *)(p + off);
			iov[cnt].iov_len = part;
			mm[cnt].msg_hdr.msg_iov = &iov[cnt];
			mm[cnt].msg_hdr.msg_iovlen = 1;
			off += part;
			cnt++;
		}
		r = sendmmsg(fd, mm, cnt, 0);
		if (r < 0)
			return -1;
		for (i = 0; i < r; i++) {
			sent += mm[i].msg_len;
			if (mm[i].msg_len < iov[i].iov_len)
				break;
		}
		return sent;
	}
	case M_SENDFILE: {
		int mfd = memfd_create("pt-sendfile", 0);
		off_t off = 0;
		ssize_t r;

		if (mfd < 0)
			return -1;
		if (write(mfd, p, n) != (ssize_t)n) {
			close(mfd);
			return -1;
		}
		r = sendfile(fd, mfd, &off, n);
		close(mfd);
		return r;
	}
	case M_SPLICE: {
		int pfd[2];
		ssize_t w, r;

		if (pipe(pfd))
			return -1;
		w = write(pfd[1], p, n > 65536 ? 65536 : n);
		if (w <= 0) {
			close(pfd[0]);
			close(pfd[1]);
			return -1;
		}
		r = splice(pfd[0], NULL, fd, NULL, w, SPLICE_F_MOVE);
		/* A short splice would leave bytes behind: drain them. */
		while (r > 0 && r < w) {
			ssize_t more = splice(pfd[0], NULL, fd, NULL, w - r, 0);

			if (more <= 0)
				break;
			r += more;
		}
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	}
	errno = EINVAL;
	return -1;
}

static int send_all(int fd, int m, const uint8_t *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = send_some(fd, m, p + off, n - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "send (%s): %s\n", h_method_names[m],
				r ? strerror(errno) : "sent nothing");
			return -1;
		}
		off += r;
	}
	return 0;
}

static ssize_t recv_some(int fd, int m, uint8_t *p, size_t n)
{
	switch (m) {
	case M_RW:
		return read(fd, p, n);
	case M_SEND:
		return recv(fd, p, n, 0);
	case M_SENDTO:
		return recvfrom(fd, p, n, 0, NULL, NULL);
	case M_VEC:
	case M_MSG: {
		struct iovec iov[16];
		struct msghdr mh = { .msg_iov = iov };
		int i = split_iov(iov, m == M_VEC ? 7 : 16, p, n, 2);

		if (m == M_VEC)
			return readv(fd, iov, i);
		mh.msg_iovlen = i;
		return recvmsg(fd, &mh, 0);
	}
	case M_MMSG: {
		/* Each message lands in its own buffer: append them in order. */
		static uint8_t tmp[4][16384];
		struct mmsghdr mm[4] = {};
		struct iovec iov[4];
		size_t per = n / 4 ? n / 4 : n, got = 0;
		int cnt, r, i;

		if (per > sizeof(tmp[0]))
			per = sizeof(tmp[0]);
		cnt = n >= 4 ? 4 : (int)n;
		for (i = 0; i < cnt; i++) {
			iov[i].iov_base = tmp[i];
			iov[i].iov_len = per;
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		r = recvmmsg(fd, mm, cnt, MSG_WAITFORONE, NULL);
		if (r < 0)
			return -1;
		for (i = 0; i < r; i++) {
			memcpy(p + got, tmp[i], mm[i].msg_len);
			got += mm[i].msg_len;
		}
		return got;
	}
	case M_SENDFILE:
	case M_SPLICE: {
		int pfd[2];
		ssize_t r, rd, got = 0;

		if (pipe(pfd))
			return -1;
		r = splice(fd, NULL, pfd[1], NULL, n > 65536 ? 65536 : n, 0);
		while (r > 0 && got < r) {
			rd = read(pfd[0], p + got, r - got);
			if (rd <= 0) {
				r = -1;
				break;
			}
			got += rd;
		}
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	}
	errno = EINVAL;
	return -1;
}

/* Read exactly n bytes, or until EOF; returns bytes read or -1. */
static ssize_t recv_all(int fd, int m, uint8_t *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = recv_some(fd, m, p + off, n - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "recv (%s): %s\n", h_method_names[m],
				strerror(errno));
			return -1;
		}
		if (r == 0)
			break;
		off += r;
	}
	return off;
}

static int expect_eof(int fd)
{
	char c;
	ssize_t r = read(fd, &c, 1);

	if (r != 0) {
		fprintf(stderr, "expected EOF, read returned %zd\n", r);
		return -1;
	}
	return 0;
}

/* ---- the two peers ---- */

struct peer_arg {
	struct h_xfer *x;
	int ready_fd;
};

static socklen_t mkaddr(const struct h_xfer *x, const char *ip, uint16_t port,
			struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (x->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
		return sizeof(*s6);
	}
	((struct sockaddr_in *)ss)->sin_family = AF_INET;
	((struct sockaddr_in *)ss)->sin_port = htons(port);
	inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr);
	return sizeof(struct sockaddr_in);
}

static int serve_one(struct h_xfer *x, int fd, int k, uint8_t *buf,
		     uint8_t *exp)
{
	size_t len;
	uint8_t *want;
	ssize_t got;
	int i, rc = 0;

	if (x->mode == X_HALFCLOSE) {
		want = h_expected(x, k, 0, &len);
		got = recv_all(fd, x->rcv, buf, len + 1);	/* to EOF */
		if (got != (ssize_t)len || memcmp(buf, want, len)) {
			fprintf(stderr, "server: conn %d: request mismatch (%zd of %zu)\n",
				k, got, len);
			rc = -1;
		}
		free(want);
		fill(x->seed, k, 1, 0, exp, x->resp_len);
		if (!rc)
			rc = send_all(fd, x->snd, exp, x->resp_len);
		close(fd);
		return rc;
	}
	for (i = 0; i < x->rounds && !rc; i++) {
		fill(x->seed, k, 0, i, exp, x->req_len);
		got = recv_all(fd, x->rcv, buf, x->req_len);
		if (got != (ssize_t)x->req_len || memcmp(buf, exp, x->req_len)) {
			fprintf(stderr, "server: conn %d round %d: request mismatch (%zd)\n",
				k, i, got);
			rc = -1;
			break;
		}
		fill(x->seed, k, 1, i, exp, x->resp_len);
		rc = send_all(fd, x->snd, exp, x->resp_len);
	}
	if (!rc)
		rc = expect_eof(fd);
	close(fd);
	return rc;
}

static int server_main(void *arg)
{
	struct peer_arg *pa = arg;
	struct h_xfer *x = pa->x;
	struct sockaddr_storage ss;
	socklen_t sl = mkaddr(x, x->srv_bind, x->port, &ss);
	size_t big = x->req_len > x->resp_len ? x->req_len : x->resp_len;
	uint8_t *buf = malloc(big + 1), *exp = malloc(big + 1);
	int *fds = calloc(x->nconns, sizeof(int));
	int lfd, one = 1, zero = 0, k, rc = 0;

	lfd = socket(x->family, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (x->family == AF_INET6)
		setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(lfd, (void *)&ss, sl) || listen(lfd, 1024)) {
		fprintf(stderr, "server: bind/listen %s:%u: %s\n", x->srv_bind,
			x->port, strerror(errno));
		return 1;
	}
	if (write(pa->ready_fd, "r", 1) != 1)
		return 1;
	close(pa->ready_fd);
	if (x->concurrent) {
		for (k = 0; k < x->nconns; k++)
			fds[k] = accept(lfd, NULL, NULL);
		for (k = 0; k < x->nconns && !rc; k++)
			rc = fds[k] < 0 ? -1 : serve_one(x, fds[k], k, buf, exp);
	} else {
		for (k = 0; k < x->nconns && !rc; k++) {
			int fd = accept(lfd, NULL, NULL);

			rc = fd < 0 ? -1 : serve_one(x, fd, k, buf, exp);
		}
	}
	close(lfd);
	return rc ? 1 : 0;
}

static int client_open(struct h_xfer *x, int k)
{
	struct sockaddr_storage ss, ls;
	socklen_t sl = mkaddr(x, x->dst, x->port, &ss), ll;
	int fd, one = 1, tries;

	for (tries = 0; tries < 50; tries++) {
		fd = socket(x->family, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		if (x->bind_port) {
			struct sockaddr_storage bs;
			socklen_t bl = mkaddr(x, x->family == AF_INET6 ? "::" :
					      "0.0.0.0", x->bind_port, &bs);

			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				   sizeof(one));
			if (bind(fd, (void *)&bs, bl)) {
				close(fd);
				usleep(20000);
				continue;
			}
		}
		if (!connect(fd, (void *)&ss, sl))
			break;
		close(fd);
		fd = -1;
		if (errno != EADDRNOTAVAIL && errno != EADDRINUSE)
			break;
		usleep(20000);
	}
	if (fd < 0) {
		fprintf(stderr, "client: connect %s:%u: %s\n", x->dst, x->port,
			strerror(errno));
		return -1;
	}
	ll = sizeof(ls);
	getsockname(fd, (void *)&ls, &ll);
	x->cli_ports[k] = ntohs(ls.ss_family == AF_INET6 ?
				((struct sockaddr_in6 *)&ls)->sin6_port :
				((struct sockaddr_in *)&ls)->sin_port);
	return fd;
}

static int client_talk(struct h_xfer *x, int fd, int k, uint8_t *buf,
		       uint8_t *exp)
{
	ssize_t got;
	int i, rc = 0;

	if (x->mode == X_HALFCLOSE) {
		fill(x->seed, k, 0, 0, exp, x->req_len);
		rc = send_all(fd, x->snd, exp, x->req_len);
		if (!rc && shutdown(fd, SHUT_WR))
			rc = -1;
		fill(x->seed, k, 1, 0, exp, x->resp_len);
		got = rc ? -1 : recv_all(fd, x->rcv, buf, x->resp_len + 1);
		if (got != (ssize_t)x->resp_len || memcmp(buf, exp, x->resp_len)) {
			fprintf(stderr, "client: conn %d: response mismatch (%zd)\n",
				k, got);
			rc = -1;
		}
		close(fd);
		return rc;
	}
	for (i = 0; i < x->rounds && !rc; i++) {
		fill(x->seed, k, 0, i, exp, x->req_len);
		rc = send_all(fd, x->snd, exp, x->req_len);
		if (rc)
			break;
		fill(x->seed, k, 1, i, exp, x->resp_len);
		got = recv_all(fd, x->rcv, buf, x->resp_len);
		if (got != (ssize_t)x->resp_len || memcmp(buf, exp, x->resp_len)) {
			fprintf(stderr, "client: conn %d round %d: response mismatch (%zd)\n",
				k, i, got);
			rc = -1;
		}
	}
	close(fd);
	return rc;
}

static int client_main(void *arg)
{
	struct peer_arg *pa = arg;
	struct h_xfer *x = pa->x;
	size_t big = x->req_len > x->resp_len ? x->req_len : x->resp_len;
	uint8_t *buf = malloc(big + 1), *exp = malloc(big + 1);
	int *fds = calloc(x->nconns, sizeof(int));
	int k, rc = 0;

	if (x->concurrent) {
		/* Every connection open, every request sent, then answers. */
		for (k = 0; k < x->nconns && !rc; k++) {
			fds[k] = client_open(x, k);
			if (fds[k] < 0)
				rc = -1;
		}
		for (k = 0; k < x->nconns && !rc; k++)
			rc = client_talk(x, fds[k], k, buf, exp);
	} else {
		for (k = 0; k < x->nconns && !rc; k++) {
			int fd = client_open(x, k);

			rc = fd < 0 ? -1 : client_talk(x, fd, k, buf, exp);
		}
	}
	return rc ? 1 : 0;
}

/* pid 1 of a new pid namespace runs the server. */
static int server_pidns_main(void *arg)
{
	struct peer_arg *pa = arg;
	struct stat st;
	pid_t pid;
	int status;

	if (unshare(CLONE_NEWPID)) {
		fprintf(stderr, "server: new pid namespace: %s\n",
			strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		/* the namespace exists once it has its pid 1 */
		if (stat("/proc/self/ns/pid", &st))
			_exit(1);
		*pa->x->srv_pidns = (uint32_t)st.st_ino;
		_exit(server_main(arg));
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 1;
	return WEXITSTATUS(status);
}

int h_run_xfer(struct h_xfer *x, const struct h_cg *srv_cg, const char *srv_ns,
	       const struct h_cg *cli_cg, const char *cli_ns)
{
	struct peer_arg pa = { .x = x };
	struct pollfd pfd;
	int p[2], rs, rc;
	char c;

	if (!x->rounds)
		x->rounds = 1;
	if (!x->nconns)
		x->nconns = 1;
	if (!x->cli_ports) {
		x->cli_ports = mmap(NULL, sizeof(uint16_t) * x->nconns,
				    PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (x->cli_ports == MAP_FAILED) {
			x->cli_ports = NULL;
			return -1;
		}
	}
	if (x->srv_new_pidns && !x->srv_pidns) {
		x->srv_pidns = mmap(NULL, sizeof(uint32_t),
				    PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (x->srv_pidns == MAP_FAILED) {
			x->srv_pidns = NULL;
			return -1;
		}
	}
	if (pipe(p))
		return -1;
	pa.ready_fd = p[1];
	x->srv_pid = h_spawn(srv_cg, srv_ns, x->srv_new_pidns ?
			     server_pidns_main : server_main, &pa);
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	if (x->srv_pid < 0 || poll(&pfd, 1, 10000) != 1 ||
	    read(p[0], &c, 1) != 1) {
		close(p[0]);
		fprintf(stderr, "server did not start\n");
		return -1;
	}
	close(p[0]);
	if (x->on_srv_ready)
		x->on_srv_ready(x, x->ctx);
	x->cli_pid = h_spawn(cli_cg, cli_ns, client_main, &pa);
	rc = h_wait(x->cli_pid, 120000);
	rs = h_wait(x->srv_pid, rc ? 1000 : 120000);
	if (rc || rs)
		fprintf(stderr, "traffic failed: client %d, server %d\n", rc, rs);
	return rc || rs ? -1 : 0;
}

void h_xfer_free(struct h_xfer *x)
{
	if (x->cli_ports)
		munmap(x->cli_ports, sizeof(uint16_t) * x->nconns);
	x->cli_ports = NULL;
	if (x->srv_pidns)
		munmap(x->srv_pidns, sizeof(uint32_t));
	x->srv_pidns = NULL;
}

/* ---- checks ---- */

void h_tls_body(uint8_t *b, long k)
{
	char unit[32];
	size_t u = (size_t)snprintf(unit, sizeof(unit), "%ld:", k), i;

	for (i = 0; i < (size_t)k; i++)
		b[i] = (uint8_t)unit[i % u];
}

bool h_is_tls_body(const uint8_t *b, size_t n, long k)
{
	uint8_t *want;
	bool ok;

	if (k < 0 || (long)n != k)
		return false;
	want = malloc(k ? k : 1);
	h_tls_body(want, k);
	ok = !memcmp(b, want, n);
	free(want);
	return ok;
}

size_t h_tls_http_bad(const struct pt_conn *c, size_t echo_len,
		      size_t *exchanges)
{
	struct pt_xconn xc;
	size_t k, bad = 0;

	if (!c->has_tls)
		return 1;
	pt_xconn_build(c, &xc);
	bad += !xc.tls || !xc.http;
	for (k = 0; k < xc.nx; k++) {
		const struct pt_exchange *x = &xc.x[k];
		long n;

		(*exchanges)++;
		if (x->incomplete || !x->has_req || !x->has_resp)
			bad++;
		else if (sscanf(x->req.target, "/n/%ld", &n) == 1)
			bad += !h_is_tls_body(x->resp.body, x->resp.body_len, n);
		else
			bad += strcmp(x->req.target, "/echo") ||
			       (echo_len && x->req.body_len != echo_len) ||
			       x->req.body_len != x->resp.body_len ||
			       memcmp(x->req.body, x->resp.body, x->req.body_len);
	}
	pt_xconn_free(&xc);
	return bad;
}

size_t h_find_conns(struct pt_conns *c, int role, uint16_t lport,
		    uint16_t rport, struct pt_conn **out, size_t max)
{
	size_t i, n = 0, a, b;

	for (i = 0; i < c->n; i++) {
		struct pt_conn *x = c->v[i];

		if (!x->has_open || (role && x->open.role != role) ||
		    (lport && x->open.t.lport != lport) ||
		    (rport && x->open.t.rport != rport))
			continue;
		if (n < max)
			out[n] = x;
		n++;
	}
	/*
	 * Creation order, from the first record of each. Not the socket
	 * cookie: kernels hand cookies out in per-CPU batches
	 * (gen_cookie_next()), so two CPUs' sockets can be numbered out of
	 * order, as seen on 6.1 under qemu with two CPUs.
	 */
	for (a = 1; a < n && a < max; a++)
		for (b = a; b > 0 && out[b - 1]->first_ts > out[b]->first_ts;
		     b--) {
			struct pt_conn *t = out[b];

			out[b] = out[b - 1];
			out[b - 1] = t;
		}
	return n;
}

bool h_check_stream(const struct pt_conn *c, int dir, const uint8_t *exp,
		    size_t len, const char *what)
{
	struct pt_assembled a;
	bool ok;

	if (!ASSERT_OK(pt_stream_assemble(c, dir, &a), what))
		return false;
	ok = ASSERT_EQ(a.ngaps, 0, what);
	if (!ok)
		fprintf(stderr, "  first gap [%llu, %llu) reason %u\n",
			(unsigned long long)a.gaps[0].start,
			(unsigned long long)a.gaps[0].end, a.gaps[0].reason);
	ok &= ASSERT_EQ(a.conflicts, 0, what);
	ok &= ASSERT_BYTES_EQ(a.buf, a.len, exp, len, what);
	pt_assembled_free(&a);
	return ok;
}

int h_verify_xfer(struct h_rec *r, const struct h_xfer *x, bool cli_side,
		  bool srv_side)
{
	struct pt_conn *found[256];
	int k, fails = 0;
	char what[128];

	for (k = 0; k < x->nconns; k++) {
		size_t rl, pl, n;
		uint8_t *req = h_expected(x, k, 0, &rl);
		uint8_t *resp = h_expected(x, k, 1, &pl);
		struct pt_conn *cc = NULL, *sc = NULL;

		if (cli_side) {
			n = h_find_conns(&r->conns, PT_ROLE_CLIENT,
					 x->cli_ports[k], x->port, found,
					 ARRAY_SIZE(found));
			/* a reused port: the k-th connection on it */
			if (x->bind_port && n == (size_t)x->nconns)
				cc = found[k];
			else if (n == 1)
				cc = found[0];
			snprintf(what, sizeof(what), "client conn %d found once", k);
			fails += !ASSERT_PTR(cc, what);
		}
		if (srv_side) {
			n = h_find_conns(&r->conns, PT_ROLE_SERVER, x->port,
					 x->cli_ports[k], found,
					 ARRAY_SIZE(found));
			if (x->bind_port && n == (size_t)x->nconns)
				sc = found[k];
			else if (n == 1)
				sc = found[0];
			snprintf(what, sizeof(what), "server conn %d found once", k);
			fails += !ASSERT_PTR(sc, what);
		}
		if (x->family == AF_INET6 && !strncmp(x->dst, "::ffff:", 7)) {
			snprintf(what, sizeof(what), "conn %d v4-mapped flagged", k);
			if (sc)
				fails += !ASSERT_TRUE(sc->open.h.flags & PT_F_V4MAPPED, what);
			if (cc)
				fails += !ASSERT_TRUE(cc->open.h.flags & PT_F_V4MAPPED, what);
		}
		if (cc) {
			snprintf(what, sizeof(what), "conn %d client tx", k);
			fails += !h_check_stream(cc, PT_DIR_TX, req, rl, what);
			snprintf(what, sizeof(what), "conn %d client rx", k);
			fails += !h_check_stream(cc, PT_DIR_RX, resp, pl, what);
			snprintf(what, sizeof(what), "conn %d client closed", k);
			fails += !ASSERT_TRUE(cc->has_close, what);
			if (pt_loader_task_helpers(r->l)) {
				snprintf(what, sizeof(what), "conn %d client tgid", k);
				fails += !ASSERT_EQ(cc->open.tgid, x->cli_pid, what);
			}
		}
		if (sc) {
			snprintf(what, sizeof(what), "conn %d server rx", k);
			fails += !h_check_stream(sc, PT_DIR_RX, req, rl, what);
			snprintf(what, sizeof(what), "conn %d server tx", k);
			fails += !h_check_stream(sc, PT_DIR_TX, resp, pl, what);
			snprintf(what, sizeof(what), "conn %d server closed", k);
			fails += !ASSERT_TRUE(sc->has_close, what);
			if (pt_loader_task_helpers(r->l) && !x->srv_new_pidns) {
				snprintf(what, sizeof(what), "conn %d server tgid", k);
				fails += !ASSERT_EQ(sc->open.tgid, x->srv_pid, what);
			}
		}
		free(req);
		free(resp);
		if (fails > 20)
			break;	/* enough said */
	}
	return fails;
}

/* How many sockets of /proc/net/tcp are in each TCP state, on stderr. */
static void tcp_states(void)
{
	static const char *const names[] = { "?", "ESTABLISHED", "SYN_SENT",
		"SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
		"CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING" };
	unsigned int n[ARRAY_SIZE(names)] = {}, st, i;
	char line[256];
	FILE *f = fopen("/proc/net/tcp", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %*s %*s %x", &st) == 1 &&
		    st < ARRAY_SIZE(names))
			n[st]++;
	if (f)
		fclose(f);
	fprintf(stderr, "tcp sockets by state:");
	for (i = 1; i < ARRAY_SIZE(names); i++)
		if (n[i])
			fprintf(stderr, " %s %u", names[i], n[i]);
	fputc('\n', stderr);
}

int h_record_xfer_tries(struct h_xfer *x, const struct h_cg *srv,
			const char *srv_ns, const struct h_cg *cli,
			const char *cli_ns, int tries)
{
	struct h_rec rec;
	int fails = 0, err;

	if (!ASSERT_OK(h_rec_start(&rec, 64 << 20), "recorder"))
		return 1;
	if (!ASSERT_OK(h_rec_target(&rec, srv), "target server cgroup") ||
	    !ASSERT_OK(h_rec_target(&rec, cli), "target client cgroup")) {
		fails++;
		goto out;
	}
	err = h_run_xfer(x, srv, srv_ns, cli, cli_ns);
	if (err && tries > 1) {
		/* the peers themselves, not the capture: said, then again */
		tcp_states();
		fprintf(stderr, "the peers failed on port %u; once more on %u\n",
			x->port, x->port + 1);
		h_rec_free(&rec);
		h_xfer_free(x);
		x->port++;
		return h_record_xfer_tries(x, srv, srv_ns, cli, cli_ns,
					   tries - 1);
	}
	if (!ASSERT_OK(err, "traffic")) {
		fails++;
	} else {
		h_rec_stop(&rec);
		fails += h_verify_xfer(&rec, x, true, true);
	}
out:
	h_rec_free(&rec);
	h_xfer_free(x);
	return fails;
}

int h_record_xfer(struct h_xfer *x, const struct h_cg *srv, const char *srv_ns,
		  const struct h_cg *cli, const char *cli_ns)
{
	return h_record_xfer_tries(x, srv, srv_ns, cli, cli_ns, 1);
}
