// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * OpenSSL on the running kernel: an HTTPS server and client written here
 * against the system's libssl, each in a target cgroup, hooked as
 * `podtap record` hooks them (capture/tls.c). The server reads and writes
 * with SSL_read and SSL_write, the client with the _ex forms; the client
 * starts after the scan, so it is covered by the hooks on the library
 * file alone. One keep-alive connection (1 byte to 1 MiB, a 300 kB POST
 * echoed) and 20 parallel ones: every connection, on both sides, must be
 * HTTP/1 in plaintext on its own socket, each body what was sent. The
 * kernel matrix runs it in its guests, whose initramfs carries the
 * libraries test_progs links.
 *
 * What the probes cost other processes is counted too: calls to the same
 * libssl from a cgroup that is not a target run the session program once
 * each (on its entry, which asks for no return), or the entry and the
 * return programs of a pair where the kernel has no session uprobes.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "capture/tgnames.h"
#include "capture/tls.h"
#include "harness.h"
#include "podtap.h"
#include "proto/exch.h"
#include "test_progs.h"

#define PORT		20913
#define NPAR		20
#define POST_LEN	300000
#define NCALLS		20000

static const long sizes[] = { 1, 100, 16384, 16385, 65536, 1 << 20 };

/* A P-256 key and a certificate for it, signed by itself, for a day. */
static SSL_CTX *server_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;

	if (!ctx || !key || !x)
		goto bad;
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, n);
	if (!X509_sign(x, key, EVP_sha256()) ||
	    SSL_CTX_use_certificate(ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1)
		goto bad;
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
bad:
	X509_free(x);
	EVP_PKEY_free(key);
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * One HTTP/1.1 message head, read with rd (SSL_read or a wrapper of
 * SSL_read_ex) into buf; its length, or -1 at the end or on a bad one.
 * What came after the head stays in buf[head..*have).
 */
static long read_head(SSL *s, bool ex, char *buf, size_t cap, size_t *have)
{
	for (;;) {
		char *e;
		size_t got;
		int r;

		buf[*have] = 0;
		e = strstr(buf, "\r\n\r\n");
		if (e)
			return e + 4 - buf;
		if (*have + 1 >= cap)
			return -1;
		if (ex) {
			if (SSL_read_ex(s, buf + *have, cap - 1 - *have, &got) != 1)
				return -1;
		} else {
			r = SSL_read(s, buf + *have, (int)(cap - 1 - *have));
			if (r <= 0)
				return -1;
			got = (size_t)r;
		}
		*have += got;
	}
}

/* The body after a head: the part already in buf, then read whole. */
static int read_body(SSL *s, bool ex, char *buf, size_t head, size_t have,
		     uint8_t *body, size_t len)
{
	size_t at = have - head < len ? have - head : len, got;
	int r;

	memcpy(body, buf + head, at);
	while (at < len) {
		if (ex) {
			if (SSL_read_ex(s, body + at, len - at, &got) != 1)
				return -1;
		} else {
			r = SSL_read(s, body + at, (int)(len - at));
			if (r <= 0)
				return -1;
			got = (size_t)r;
		}
		at += got;
	}
	return 0;
}

static long content_length(const char *head)
{
	const char *c = strcasestr(head, "\r\ncontent-length:");

	return c ? atol(c + 17) : 0;
}

/* One connection, request after request: GET /n/K, POST /echo. */
static void serve_conn(SSL_CTX *ctx, int fd)
{
	char buf[8192], resp[128];
	SSL *s = SSL_new(ctx);
	uint8_t *body = NULL;
	size_t have = 0;
	long head, k, n;

	SSL_set_fd(s, fd);
	if (SSL_accept(s) != 1)
		goto out;
	while ((head = read_head(s, false, buf, sizeof(buf), &have)) > 0) {
		n = content_length(buf);
		if (!strncmp(buf, "POST /echo ", 11)) {
			k = n;
			body = realloc(body, k ? k : 1);
			if (read_body(s, false, buf, head, have, body, k))
				break;
			have = 0;	/* a client sends nothing more before the answer */
		} else if (sscanf(buf, "GET /n/%ld ", &k) == 1 && k >= 0 &&
			   k <= 1 << 20) {
			body = realloc(body, k ? k : 1);
			h_tls_body(body, k);
			have -= head;
			memmove(buf, buf + head, have);
		} else {
			break;
		}
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 200 OK\r\nContent-Length: %ld\r\n\r\n", k);
		if (SSL_write(s, resp, (int)strlen(resp)) <= 0 ||
		    (k && SSL_write(s, body, (int)k) <= 0))
			break;
	}
	SSL_shutdown(s);
out:
	SSL_free(s);
	free(body);
	close(fd);
}

static int run_server(void *arg)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	SSL_CTX *ctx = server_ctx();

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!ctx || bind(ls, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(ls, 128))
		return 1;
	signal(SIGCHLD, SIG_IGN);	/* no zombies */
	for (;;) {
		int fd = accept(ls, NULL, NULL);

		if (fd < 0)
			continue;
		if (!fork()) {
			close(ls);
			serve_conn(ctx, fd);
			_exit(0);
		}
		close(fd);
	}
}

/* The client's side of one request; 0 if the answer is what it asked. */
static int request(SSL *s, const char *method, const char *target,
		   const uint8_t *body, size_t len, long want_k)
{
	char buf[8192], req[256];
	size_t have = 0, done;
	uint8_t *got;
	long head, n;
	int bad;

	snprintf(req, sizeof(req),
		 "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n",
		 method, target, len);
	if (SSL_write_ex(s, req, strlen(req), &done) != 1 ||
	    (len && SSL_write_ex(s, body, len, &done) != 1))
		return -1;
	head = read_head(s, true, buf, sizeof(buf), &have);
	if (head <= 0 || strncmp(buf, "HTTP/1.1 200 ", 13))
		return -1;
	n = content_length(buf);
	got = malloc(n ? n : 1);
	bad = read_body(s, true, buf, head, have, got, n);
	if (!bad)
		bad = body ? (size_t)n != len || memcmp(got, body, len) :
			     !h_is_tls_body(got, n, want_k);
	free(got);
	return bad ? -1 : 0;
}

static SSL *dial(SSL_CTX *ctx, int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	SSL *s;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(*fd, (struct sockaddr *)&a, sizeof(a))) {
		close(*fd);
		return NULL;
	}
	s = SSL_new(ctx);
	SSL_set_fd(s, *fd);
	if (SSL_connect(s) != 1) {
		SSL_free(s);
		close(*fd);
		return NULL;
	}
	return s;
}

static void hang_up(SSL *s, int fd)
{
	SSL_shutdown(s);
	SSL_free(s);
	close(fd);
}

static int run_client(void *arg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	uint8_t *post = malloc(POST_LEN);
	char target[32];
	pid_t kids[NPAR];
	int fd, bad = 0, st;
	size_t i;
	SSL *s;

	for (i = 0; i < POST_LEN; i++)
		post[i] = (uint8_t)(i * 2654435761u >> 13);
	s = ctx ? dial(ctx, &fd) : NULL;
	if (!s)
		return 2;
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		snprintf(target, sizeof(target), "/n/%ld", sizes[i]);
		bad |= request(s, "GET", target, NULL, 0, sizes[i]);
	}
	bad |= request(s, "POST", "/echo", post, POST_LEN, 0);
	hang_up(s, fd);
	for (i = 0; i < NPAR; i++) {
		kids[i] = fork();
		if (kids[i])
			continue;
		s = dial(ctx, &fd);
		snprintf(target, sizeof(target), "/n/%zu", 1000 + i);
		if (!s || request(s, "GET", target, NULL, 0, 1000 + i))
			_exit(1);
		hang_up(s, fd);
		_exit(0);
	}
	for (i = 0; i < NPAR; i++)
		bad |= kids[i] < 0 || waitpid(kids[i], &st, 0) != kids[i] ||
		       !WIFEXITED(st) || WEXITSTATUS(st);
	free(post);
	SSL_CTX_free(ctx);
	return bad ? 1 : 0;
}

static bool listening(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	int i, ok = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < 200 && !ok; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);

		ok = !connect(s, (struct sockaddr *)&a, sizeof(a));
		close(s);
		if (!ok)
			usleep(50000);
	}
	return ok;
}

/*
 * Each side's connections to PORT: exchanges in plaintext, bodies exact.
 * pseudo: the pseudo-connections instead, where the plaintext stays on a
 * kernel whose cgroup programs cannot tell which task sends (nothing
 * joins a call to its socket there), each side's the same.
 */
static void verify(struct h_rec *rec, bool server, bool pseudo)
{
	size_t i, conns = 0, exchanges = 0, bad = 0;
	char what[64];

	for (i = 0; i < rec->conns.n; i++) {
		struct pt_conn *c = rec->conns.v[i];

		if (pseudo) {
			if (!pt_conn_pseudo(c) || !c->has_tls)
				continue;
		} else if (!c->has_open ||
			   (server ? c->open.t.lport : c->open.t.rport) != PORT ||
			   !c->s[server ? PT_DIR_RX : PT_DIR_TX].captured) {
			/* listening()'s probes sent nothing (the server, an alert) */
			continue;
		}
		conns++;
		bad += h_tls_http_bad(c, POST_LEN, &exchanges);
	}
	snprintf(what, sizeof(what), "%s connections",
		 pseudo ? "pseudo-" : server ? "server-side" : "client-side");
	ASSERT_EQ(conns, (1 + NPAR) * (pseudo ? 2 : 1), what);
	snprintf(what, sizeof(what), "%s exchanges in plaintext",
		 pseudo ? "pseudo-connections'" : server ? "server-side" : "client-side");
	ASSERT_EQ(exchanges, (ARRAY_SIZE(sizes) + 1 + NPAR) * (pseudo ? 2 : 1), what);
	snprintf(what, sizeof(what), "%s-side exchanges not what was sent",
		 server ? "server" : "client");
	ASSERT_EQ(bad, 0, what);
}

/* NCALLS of SSL_read_ex on an SSL with no connection: each fails at
 * once, in the inner read function the probes sit on. */
static int run_calls(void *arg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	SSL *s = ctx ? SSL_new(ctx) : NULL;
	char buf[16];
	size_t got;
	int i;

	if (!s)
		return 1;
	for (i = 0; i < NCALLS; i++) {
		SSL_read_ex(s, buf, sizeof(buf), &got);
		ERR_clear_error();
	}
	SSL_free(s);
	SSL_CTX_free(ctx);
	return 0;
}

static uint64_t run_cnt(struct h_rec *rec, const char *name)
{
	struct bpf_program *p;
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);

	p = bpf_object__find_program_by_name(pt_loader_object(rec->l), name);
	memset(&info, 0, sizeof(info));
	if (!p || bpf_program__fd(p) < 0 ||
	    bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
		return 0;
	return info.run_cnt;
}

/* Runs of the read programs while NCALLS are made from cg: the entry's
 * and the return's (the same program, with session uprobes). */
static void count_calls(struct h_rec *rec, const struct h_cg *cg,
			uint64_t *entry, uint64_t *ret)
{
	bool ses = pt_loader_tls_session(rec->l);
	const char *e = ses ? "podtap_tls_s" : "podtap_tls_rx";
	const char *r = ses ? "podtap_tls_s" : "podtap_tls_rx_r";
	uint64_t e0 = run_cnt(rec, e), r0 = run_cnt(rec, r);

	ASSERT_EQ(h_wait(h_spawn(cg, NULL, run_calls, NULL), 60000), 0,
		  "the calls ran");
	*entry = run_cnt(rec, e) - e0;
	*ret = ses ? 0 : run_cnt(rec, r) - r0;
}

/*
 * Once per call for a process that is not a target, with session
 * uprobes; the programs may run more often (some other process on the
 * machine using this libssl), never less.
 */
static void check_costs(struct h_rec *rec, const struct h_cg *cli)
{
	uint64_t e, r;
	struct h_cg other;
	int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	bool ok;

	if (!ASSERT_TRUE(fd >= 0, "BPF run statistics") ||
	    !ASSERT_OK(h_cg_make(&other, "openssl-other"), "cgroup"))
		goto out;
	count_calls(rec, &other, &e, &r);
	if (pt_loader_tls_session(rec->l)) {
		ok = ASSERT_TRUE(e >= NCALLS && e < NCALLS + NCALLS / 4,
				 "not a target: one run per call (session: no return)");
		count_calls(rec, cli, &e, &r);
		ok &= ASSERT_TRUE(e >= 2 * NCALLS && e < 2 * NCALLS + NCALLS / 4,
				  "a target: two runs per call, entry and return");
	} else {
		ok = ASSERT_TRUE(e >= NCALLS && r >= NCALLS &&
				 e < NCALLS + NCALLS / 4,
				 "not a target: an entry and a return per call");
	}
	if (!ok)
		printf("runs for the last %d calls: %llu entry, %llu return\n",
		       NCALLS, (unsigned long long)e, (unsigned long long)r);
out:
	if (fd >= 0)
		close(fd);
}

void test_openssl(void)
{
	const struct pt_tls_proc_rec *p;
	struct pt_tls_stats st;
	struct pt_tls *tls = NULL;
	struct h_cg srv, cli;
	struct h_rec rec;
	pid_t server = -1, client;

	if (!ASSERT_OK(h_cg_make(&srv, "openssl-srv"), "cgroup") ||
	    !ASSERT_OK(h_cg_make(&cli, "openssl-cli"), "cgroup") ||
	    !ASSERT_OK(h_rec_start(&rec, 16 << 20), "recorder"))
		return;
	if (!pt_loader_tls_object(rec.l)) {
		test__skip("the TLS programs did not load on this kernel");
		goto free;
	}
	if (!ASSERT_OK(h_rec_target(&rec, &srv), "target server") ||
	    !ASSERT_OK(h_rec_target(&rec, &cli), "target client") ||
	    !ASSERT_OK(pt_tls_open(&tls, rec.l), "TLS hooks"))
		goto free;
	server = h_spawn(&srv, NULL, run_server, NULL);
	if (!ASSERT_TRUE(server > 0 && listening(), "the server listens"))
		goto free;
	pt_tls_scan(tls, rec.l, true);
	pt_tls_stats(tls, &st);
	ASSERT_EQ(st.hooked_procs, 1, "the server's libssl is hooked");
	p = pt_tls_proc(tls, 0);
	if (ASSERT_PTR(p, "the server in the process table")) {
		ASSERT_EQ(p->tgid, (uint32_t)server, "its pid");
		ASSERT_EQ(p->lib, PT_TLS_LIB_SHARED, "a shared libssl");
		ASSERT_EQ(p->hook, PT_TLS_HOOKED, "hooked, on its sockets");
		ASSERT_TRUE(!strncmp(p->version, "OpenSSL 3.", 10),
			    "its version, from its libcrypto");
	}
	check_costs(&rec, &cli);
	client = h_spawn(&cli, NULL, run_client, NULL);
	ASSERT_EQ(h_wait(client, 300000), 0, "the client got what was sent");
	h_rec_stop(&rec);
	ASSERT_EQ(kill(server, 0), 0, "the server is still alive");
	if (pt_loader_task_helpers(rec.l)) {
		verify(&rec, true, false);
		verify(&rec, false, false);
	} else {
		verify(&rec, true, true);
	}
free:
	if (server > 0) {
		/* the server and the children serving its connections */
		char path[PATH_MAX + 16];
		FILE *f;

		snprintf(path, sizeof(path), "%s/cgroup.kill", srv.path);
		f = fopen(path, "we");
		if (!f || fputs("1", f) == EOF)
			kill(server, SIGKILL);
		if (f)
			fclose(f);
		h_wait(server, 5000);
	}
	pt_tls_close(tls);
	if (tls) {
		char path[64];

		snprintf(path, sizeof(path), PT_TGNAMES_DIR "/%d.tls", (int)getpid());
		ASSERT_TRUE(access(path, F_OK), "the status file is gone with the hooks");
	}
	h_rec_free(&rec);
}
