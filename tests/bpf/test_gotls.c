// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Go crypto/tls on the running kernel: the Go HTTPS peer
 * (tests/peers/gotls), a stripped PIE build, in a target cgroup, hooked
 * as `podtap record` hooks it (capture/tls.c); the same program as a
 * client outside the targets, one keep-alive connection (1 byte to
 * 1 MiB, a POST) and 50 parallel ones. Every server-side connection must
 * be HTTP/1 in plaintext, on its own socket, each response body what the
 * peer sends for its request. The kernel matrix copies the binary into
 * its guests (PODTAP_GOTLS); here it is built when Go is installed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "capture/tls.h"
#include "harness.h"
#include "proto/exch.h"
#include "test_progs.h"

#define PORT	20911

static char bin[PATH_MAX];

static int run_server(void *arg)
{
	char port[8];

	snprintf(port, sizeof(port), "%d", PORT);
	/* not the handshake errors of listening()'s probe */
	if (!freopen("/dev/null", "w", stderr))
		return 126;
	execl(bin, "gotls", "serve", port, "auto", "auto", (char *)NULL);
	return 127;
}

static int run_client(void *arg)
{
	char url[64];

	snprintf(url, sizeof(url), "https://127.0.0.1:%d", PORT);
	execl(bin, "gotls", "client", url, "/tmp/podtap-gotls-truth.json",
	      (char *)NULL);
	return 127;
}

static bool listening(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(PORT) };
	int s = socket(AF_INET, SOCK_STREAM, 0), i, ok = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < 400 && !ok; i++) {
		ok = !connect(s, (struct sockaddr *)&a, sizeof(a));
		if (!ok)
			usleep(50000);
	}
	close(s);
	return ok;
}

/* The peer: from PODTAP_GOTLS, or built now; false (skipped) if neither. */
static bool find_peer(char *tmp)
{
	const char *env = getenv("PODTAP_GOTLS");
	char cmd[2 * PATH_MAX];

	if (env) {
		snprintf(bin, sizeof(bin), "%s", env);
		return true;
	}
	if (system("command -v go >/dev/null 2>&1") ||
	    access("tests/peers/gotls/main.go", R_OK) || !mkdtemp(tmp))
		return false;
	snprintf(bin, sizeof(bin), "%s/gotls", tmp);
	snprintf(cmd, sizeof(cmd),
		 "cd tests/peers/gotls && GOCACHE=%s/cache GOPATH=%s/gopath "
		 "GOFLAGS=-mod=mod CGO_ENABLED=0 go build -buildmode=pie "
		 "-ldflags='-s -w' -o %s . 2>&1", tmp, tmp, bin);
	return !system(cmd);
}

/* Server-side connections: exchanges in plaintext, bodies exact. */
static void verify(struct h_rec *rec)
{
	size_t i, conns = 0, exchanges = 0, bad = 0;

	for (i = 0; i < rec->conns.n; i++) {
		struct pt_conn *c = rec->conns.v[i];

		if (c->open.t.lport != PORT ||
		    !(c->s[0].captured + c->s[1].captured))
			continue;	/* listening()'s probe sent nothing */
		conns++;
		bad += h_tls_http_bad(c, 0, &exchanges);
	}
	/* one keep-alive connection with 9 exchanges, 50 with one each */
	ASSERT_EQ(conns, 51, "server-side connections");
	ASSERT_EQ(exchanges, 59, "exchanges in plaintext");
	ASSERT_EQ(bad, 0, "exchanges not what was sent");
}

void test_gotls(void)
{
	char tmp[] = "/tmp/podtap-gotls.XXXXXX", cmd[64];
	struct pt_tls_stats st;
	struct pt_tls *tls = NULL;
	struct h_rec rec;
	struct h_cg srv;
	pid_t server, client;

	if (!find_peer(tmp)) {
		test__skip("no Go peer: set PODTAP_GOTLS or install golang-go");
		return;
	}
	if (!ASSERT_OK(h_cg_make(&srv, "gotls"), "cgroup") ||
	    !ASSERT_OK(h_rec_start(&rec, 16 << 20), "recorder"))
		goto out;
	if (!pt_loader_tls_object(rec.l)) {
		test__skip("the TLS programs did not load on this kernel");
		goto free;
	}
	if (!ASSERT_OK(h_rec_target(&rec, &srv), "target") ||
	    !ASSERT_OK(pt_tls_open(&tls, rec.l), "TLS hooks"))
		goto free;
	server = h_spawn(&srv, NULL, run_server, NULL);
	if (!ASSERT_TRUE(server > 0 && listening(), "the Go server listens"))
		goto free;
	pt_tls_scan(tls, rec.l, true);
	pt_tls_stats(tls, &st);
	ASSERT_EQ(st.hooked_procs, 1, "the Go server is hooked");
	client = h_spawn(NULL, NULL, run_client, NULL);
	ASSERT_EQ(h_wait(client, 300000), 0, "the Go client got what was sent");
	h_rec_stop(&rec);
	ASSERT_EQ(kill(server, 0), 0, "the Go server is still alive");
	verify(&rec);
free:
	pt_tls_close(tls);
	h_rec_free(&rec);
out:
	if (strcmp(tmp, "/tmp/podtap-gotls.XXXXXX")) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
		if (system(cmd))
			perror("rm");
	}
	unlink("/tmp/podtap-gotls-truth.json");
}
