// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Who is captured: only targets, from the moment they become targets to
 * the moment they stop being targets; connections older than the
 * recording from their next byte; a pid namespace as a target.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include "capture/cgroup.h"
#include "harness.h"
#include "test_progs.h"

static struct h_xfer plain(uint16_t port, uint32_t seed)
{
	struct h_xfer x = {
		.family = AF_INET, .srv_bind = "127.0.0.1", .dst = "127.0.0.1",
		.port = port, .snd = M_RW, .rcv = M_RW, .req_len = 3000,
		.resp_len = 5000, .nconns = 2, .seed = seed,
	};

	return x;
}

static size_t count_port(struct h_rec *r, uint16_t port)
{
	size_t i, n = 0;

	for (i = 0; i < r->conns.n; i++)
		if (r->conns.v[i]->open.t.lport == port ||
		    r->conns.v[i]->open.t.rport == port)
			n++;
	return n;
}

static void untargeted(void)
{
	struct h_cg idle, srv, cli;
	struct h_xfer x = plain(20500, 5000);
	struct h_rec rec;

	if (!ASSERT_OK(h_cg_make(&idle, "idle"), "cgroup") ||
	    !ASSERT_OK(h_cg_make(&srv, "srv"), "cgroup") ||
	    !ASSERT_OK(h_cg_make(&cli, "cli"), "cgroup") ||
	    !ASSERT_OK(h_rec_start(&rec, 1 << 20), "recorder"))
		return;
	if (ASSERT_OK(h_rec_target(&rec, &idle), "target idle cgroup") &&
	    ASSERT_OK(h_run_xfer(&x, &srv, NULL, &cli, NULL), "traffic")) {
		h_rec_stop(&rec);
		ASSERT_EQ(rec.conns.n, 0, "connections of untargeted cgroups");
		ASSERT_EQ(rec.records, 0, "records");
	}
	h_rec_free(&rec);
	h_xfer_free(&x);
}

static void one_side(void)
{
	struct h_cg srv, cli;
	struct h_xfer x = plain(20501, 5001);
	struct h_rec rec;

	if (!ASSERT_OK(h_cg_make(&srv, "srv"), "cgroup") ||
	    !ASSERT_OK(h_cg_make(&cli, "cli"), "cgroup") ||
	    !ASSERT_OK(h_rec_start(&rec, 1 << 20), "recorder"))
		return;
	if (ASSERT_OK(h_rec_target(&rec, &srv), "target server only") &&
	    ASSERT_OK(h_run_xfer(&x, &srv, NULL, &cli, NULL), "traffic")) {
		h_rec_stop(&rec);
		h_verify_xfer(&rec, &x, false, true);
		ASSERT_EQ(h_find_conns(&rec.conns, PT_ROLE_CLIENT, 0, 0, NULL, 0),
			  0, "client-side connections");
		ASSERT_EQ(rec.conns.n, x.nconns, "connections");
	}
	h_rec_free(&rec);
	h_xfer_free(&x);
}

static void nested(void)
{
	struct h_cg pod, ctr, cli;
	struct h_xfer x = plain(20502, 5002);
	struct h_rec rec;

	/* target a pod cgroup, run the server in a container below it */
	if (!ASSERT_OK(h_cg_make(&pod, "pod"), "cgroup") ||
	    !ASSERT_OK(h_cg_make(&ctr, "pod/ctr"), "cgroup") ||
	    !ASSERT_OK(h_cg_make(&cli, "cli"), "cgroup") ||
	    !ASSERT_OK(h_rec_start(&rec, 1 << 20), "recorder"))
		return;
	if (ASSERT_OK(h_rec_target(&rec, &pod), "target pod cgroup") &&
	    ASSERT_OK(h_run_xfer(&x, &ctr, NULL, &cli, NULL), "traffic")) {
		h_rec_stop(&rec);
		h_verify_xfer(&rec, &x, false, true);
		ASSERT_EQ(rec.conns.n, x.nconns, "connections");
		if (rec.conns.n)
			ASSERT_EQ(rec.conns.v[0]->open.cgroup_id, ctr.id,
				  "cgroup id is the container's");
	}
	h_rec_free(&rec);
	h_xfer_free(&x);
}

static void add_remove(void)
{
	struct h_cg srv, cli;
	struct h_xfer before = plain(20503, 5003), during = plain(20504, 5004),
		      after = plain(20505, 5005);
	struct h_rec rec;

	if (!ASSERT_OK(h_cg_make(&srv, "srv"), "cgroup") ||
	    !ASSERT_OK(h_cg_make(&cli, "cli"), "cgroup") ||
	    !ASSERT_OK(h_rec_start(&rec, 4 << 20), "recorder"))
		return;
	/* Nothing targeted, then the server, then nothing again. */
	ASSERT_OK(h_run_xfer(&before, &srv, NULL, &cli, NULL), "traffic before");
	ASSERT_OK(h_rec_target(&rec, &srv), "add target");
	ASSERT_EQ(pt_loader_attach_count(rec.l), 1, "attached cgroups");
	ASSERT_OK(h_run_xfer(&during, &srv, NULL, &cli, NULL), "traffic during");
	ASSERT_OK(h_rec_untarget(&rec, &srv), "remove target");
	ASSERT_EQ(pt_loader_attach_count(rec.l), 0, "attached cgroups");
	ASSERT_OK(h_run_xfer(&after, &srv, NULL, &cli, NULL), "traffic after");
	h_rec_stop(&rec);
	ASSERT_EQ(count_port(&rec, before.port), 0, "captured before adding");
	ASSERT_EQ(count_port(&rec, during.port), during.nconns,
		  "captured while targeted");
	ASSERT_EQ(count_port(&rec, after.port), 0, "captured after removing");
	h_verify_xfer(&rec, &during, false, true);
	h_rec_free(&rec);
	h_xfer_free(&before);
	h_xfer_free(&during);
	h_xfer_free(&after);
}

/* ---- a connection older than the recording ---- */

#define PRE_PORT 20506
#define PART1 50000
#define PART2 80001
#define RESP 123457

struct pre {
	int ready[2], go[2];
	uint16_t *cli_port;
};

static void pattern(uint8_t *p, size_t n, unsigned int salt)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 131 + salt) ^ (i >> 9));
}

static int pre_server(void *arg)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(PRE_PORT) };
	struct pre *p = arg;
	uint8_t *buf = malloc(PART1 + PART2 + 1), *want = malloc(RESP);
	int lfd, fd, one = 1;
	size_t got = 0;
	ssize_t r;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (void *)&a, sizeof(a)) || listen(lfd, 8) ||
	    write(p->ready[1], "r", 1) != 1)
		return 1;
	fd = accept(lfd, NULL, NULL);
	while ((r = read(fd, buf + got, PART1 + PART2 + 1 - got)) > 0)
		got += r;
	if (got != PART1 + PART2)
		return 2;
	pattern(want, RESP, 3);
	if (write(fd, want, RESP) != RESP)
		return 3;
	close(fd);
	return 0;
}

static int pre_client(void *arg)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(PRE_PORT) }, l;
	struct pre *p = arg;
	uint8_t *b1 = malloc(PART1), *b2 = malloc(PART2), *resp = malloc(RESP + 1);
	socklen_t ll = sizeof(l);
	size_t got = 0;
	ssize_t r;
	char c;
	int fd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (void *)&a, sizeof(a)))
		return 1;
	getsockname(fd, (void *)&l, &ll);
	*p->cli_port = ntohs(l.sin_port);
	pattern(b1, PART1, 1);
	pattern(b2, PART2, 2);
	if (write(fd, b1, PART1) != PART1)
		return 2;
	if (write(p->ready[1], "c", 1) != 1 || read(p->go[0], &c, 1) != 1)
		return 3;
	if (write(fd, b2, PART2) != PART2 || shutdown(fd, SHUT_WR))
		return 4;
	while ((r = read(fd, resp + got, RESP + 1 - got)) > 0)
		got += r;
	return got == RESP ? 0 : 5;
}

static void preexisting(void)
{
	struct pt_conn *cc[4], *sc[4];
	uint8_t *part2 = malloc(PART2), *resp = malloc(RESP);
	struct h_cg srv, cli;
	struct pre p = {};
	struct h_rec rec;
	pid_t sp, cp;
	char c;

	pattern(part2, PART2, 2);
	pattern(resp, RESP, 3);
	p.cli_port = mmap(NULL, sizeof(uint16_t), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!ASSERT_OK(h_cg_make(&srv, "srv"), "cgroup") ||
	    !ASSERT_OK(h_cg_make(&cli, "cli"), "cgroup") ||
	    !ASSERT_OK(pipe(p.ready), "pipe") || !ASSERT_OK(pipe(p.go), "pipe"))
		goto out;
	sp = h_spawn(&srv, NULL, pre_server, &p);
	if (!ASSERT_EQ(read(p.ready[0], &c, 1), 1, "server ready"))
		goto out;
	cp = h_spawn(&cli, NULL, pre_client, &p);
	if (!ASSERT_EQ(read(p.ready[0], &c, 1), 1, "first part sent"))
		goto out;
	usleep(200000);	/* the server has read it */
	if (!ASSERT_OK(h_rec_start(&rec, 8 << 20), "recorder"))
		goto out;
	if (ASSERT_OK(h_rec_target(&rec, &srv), "target") &&
	    ASSERT_OK(h_rec_target(&rec, &cli), "target") &&
	    ASSERT_EQ(write(p.go[1], "g", 1), 1, "go")) {
		ASSERT_EQ(h_wait(cp, 30000), 0, "client");
		ASSERT_EQ(h_wait(sp, 30000), 0, "server");
		h_rec_stop(&rec);
		if (ASSERT_EQ(h_find_conns(&rec.conns, PT_ROLE_CLIENT, *p.cli_port,
					   PRE_PORT, cc, 4), 1, "client conn") &&
		    ASSERT_EQ(h_find_conns(&rec.conns, PT_ROLE_SERVER, PRE_PORT,
					   *p.cli_port, sc, 4), 1, "server conn")) {
			ASSERT_TRUE(cc[0]->open.h.flags & PT_F_PREEXISTING,
				    "flagged pre-existing");
			ASSERT_TRUE(cc[0]->open.h.flags & PT_F_ROLE_GUESSED,
				    "role guessed");
			h_check_stream(cc[0], PT_DIR_TX, part2, PART2,
				       "client tx from the next byte");
			h_check_stream(cc[0], PT_DIR_RX, resp, RESP, "client rx");
			h_check_stream(sc[0], PT_DIR_RX, part2, PART2,
				       "server rx from the next byte");
			h_check_stream(sc[0], PT_DIR_TX, resp, RESP, "server tx");
		}
	}
	h_rec_free(&rec);
out:
	free(part2);
	free(resp);
	munmap(p.cli_port, sizeof(uint16_t));
}

/* ---- a pid namespace as the target ---- */

static void add_pidns(struct h_xfer *x, void *ctx)
{
	struct h_rec *rec = ctx;

	ASSERT_OK(pt_loader_add_pidns(rec->l, *x->srv_pidns, 9),
		  "target the server's pid namespace");
}

static void pidns(void)
{
	struct h_cg both;
	struct h_xfer x = plain(20507, 5007);
	struct h_rec rec;

	if (!ASSERT_OK(h_cg_make(&both, "both"), "cgroup") ||
	    !ASSERT_OK(h_rec_start(&rec, 4 << 20), "recorder"))
		return;
	if (!pt_loader_task_helpers(rec.l)) {
		test__skip("kernel lacks task helpers in cgroup programs");
		h_rec_free(&rec);
		return;
	}
	/*
	 * Client and server share one untargeted cgroup; only the server
	 * is in the targeted pid namespace. Programs go on the root cgroup
	 * before the server's sockets exist (a placeholder namespace).
	 */
	ASSERT_OK(pt_loader_add_pidns(rec.l, 1, 9), "placeholder target");
	x.srv_new_pidns = true;
	x.on_srv_ready = add_pidns;
	x.ctx = &rec;
	if (ASSERT_OK(h_run_xfer(&x, &both, NULL, &both, NULL), "traffic")) {
		h_rec_stop(&rec);
		h_verify_xfer(&rec, &x, false, true);
		ASSERT_EQ(h_find_conns(&rec.conns, PT_ROLE_CLIENT, 0, x.port,
				       NULL, 0), 0, "client side not captured");
		if (rec.conns.n)
			ASSERT_EQ(rec.conns.v[0]->open.session_id, 9, "session");
	}
	h_rec_free(&rec);
	h_xfer_free(&x);
}

/*
 * The usual case: the server has been listening since before the
 * recording; targeting its pid namespace must still catch every new
 * connection from its first byte (the loader marks the old listener).
 */
static void start_and_target(struct h_xfer *x, void *ctx)
{
	struct h_rec *rec = ctx;

	if (!ASSERT_OK(h_rec_start(rec, 4 << 20), "recorder"))
		return;
	if (!pt_loader_task_helpers(rec->l))	/* refused, clearly */
		ASSERT_EQ(pt_loader_add_pidns(rec->l, *x->srv_pidns, 9),
			  -EOPNOTSUPP, "no pid namespace targets without task helpers");
	else
		ASSERT_OK(pt_loader_add_pidns(rec->l, *x->srv_pidns, 9),
			  "target the server's pid namespace");
}

static void pidns_old_listener(void)
{
	struct h_cg both;
	struct h_xfer x = plain(20508, 5008);
	struct h_rec rec = {};

	if (!ASSERT_OK(h_cg_make(&both, "both"), "cgroup"))
		return;
	x.srv_new_pidns = true;
	x.on_srv_ready = start_and_target;
	x.ctx = &rec;
	if (ASSERT_OK(h_run_xfer(&x, &both, NULL, &both, NULL), "traffic") &&
	    rec.l) {
		if (!pt_loader_task_helpers(rec.l)) {
			test__skip("kernel lacks task helpers in cgroup programs");
		} else {
			h_rec_stop(&rec);
			h_verify_xfer(&rec, &x, false, true);
			ASSERT_EQ(rec.conns.n, x.nconns, "only the server side");
		}
	}
	if (rec.l)
		h_rec_free(&rec);
	h_xfer_free(&x);
}

void test_targeting(void)
{
	if (test__start_subtest("untargeted_not_captured"))
		untargeted();
	if (test__start_subtest("one_side_only"))
		one_side();
	if (test__start_subtest("nested_cgroup"))
		nested();
	if (test__start_subtest("add_remove_live"))
		add_remove();
	if (test__start_subtest("preexisting"))
		preexisting();
	if (test__start_subtest("pidns"))
		pidns();
	if (test__start_subtest("pidns_old_listener"))
		pidns_old_listener();
}
