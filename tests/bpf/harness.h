/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The pieces every BPF test uses: "pods" made of cgroups and network
 * namespaces, real processes placed in them, real TCP traffic between them
 * through every syscall family, the real loader recording it, and the
 * byte-for-byte comparison of what was captured with what was sent.
 */
#ifndef __PT_HARNESS_H
#define __PT_HARNESS_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "base/common.h"
#include "stream/conns.h"
#include "capture/loader.h"

/* Whole run: NULL when tests can run, else why all are skipped. */
const char *h_env_setup(void);
void h_env_teardown(void);
/* After each test: children killed, cgroups and namespaces removed. */
void h_test_cleanup(void);

struct h_cg {
	char path[PATH_MAX];
	uint64_t id;
};
/* A cgroup v2 child of this run's top cgroup. */
int h_cg_make(struct h_cg *cg, const char *name);

/* Two network namespaces joined by a veth pair. */
struct h_netpair {
	char srv_ns[32], cli_ns[32];
	const char *srv_ip4, *cli_ip4, *srv_ip6, *cli_ip6;
};
int h_netpair_make(struct h_netpair *np);

/* Run fn(arg) in a child placed in cg (NULL: stay) and netns (NULL: stay). */
pid_t h_spawn(const struct h_cg *cg, const char *netns, int (*fn)(void *),
	      void *arg);
/* Exit status of the child (0: success), or -1 if it had to be killed. */
int h_wait(pid_t pid, int timeout_ms);

/* The recorder: the real loader, consumed by a thread into pt_conns. */
struct h_rec {
	struct pt_loader *l;
	struct pt_conns conns;
	pthread_t thr;
	bool running;
	volatile int stop;
	volatile int paused;	/* stop consuming (ring fills up) */
	uint64_t records;
};
int h_rec_start(struct h_rec *r, size_t ring_bytes);
int h_rec_target(struct h_rec *r, const struct h_cg *cg);
int h_rec_untarget(struct h_rec *r, const struct h_cg *cg);
/* Wait until the kernel is quiet, drain everything, stop the thread. */
void h_rec_stop(struct h_rec *r);
void h_rec_free(struct h_rec *r);

enum h_method {
	M_RW,		/* write / read */
	M_VEC,		/* writev / readv, 7 uneven iovecs */
	M_SEND,		/* send / recv */
	M_SENDTO,	/* sendto / recvfrom */
	M_MSG,		/* sendmsg / recvmsg, 16 iovecs */
	M_MMSG,		/* sendmmsg / recvmmsg, up to 4 messages */
	M_SENDFILE,	/* sendfile from a memfd / splice into a pipe */
	M_SPLICE,	/* splice from a pipe / splice into a pipe */
	M__COUNT,
};
extern const char *const h_method_names[M__COUNT];

enum h_mode {
	X_KEEPALIVE,	/* rounds of request/response, then the client closes */
	X_HALFCLOSE,	/* request, client SHUT_WR, response, server closes */
};

struct h_xfer {
	int family;		/* AF_INET or AF_INET6 */
	const char *srv_bind;	/* address the server binds ("::" dual-stack) */
	const char *dst;	/* address the client connects to */
	uint16_t port;
	int snd, rcv;		/* enum h_method, both peers */
	size_t req_len, resp_len;
	int rounds;		/* X_KEEPALIVE */
	int mode;		/* enum h_mode */
	int nconns;
	bool concurrent;	/* all connections open at once */
	uint16_t bind_port;	/* client binds this local port (reuse test) */
	uint32_t seed;
	/* server in a new pid namespace; ready() runs once it listens */
	bool srv_new_pidns;
	void (*on_srv_ready)(struct h_xfer *x, void *ctx);
	void *ctx;
	/* filled in by h_run_xfer */
	uint32_t *srv_pidns;	/* inode of the server's pid namespace */
	uint16_t *cli_ports;	/* per connection */
	pid_t srv_pid, cli_pid;
};

/* Server in (srv_cg, srv_ns), client in (cli_cg, cli_ns); 0 if both passed. */
int h_run_xfer(struct h_xfer *x, const struct h_cg *srv_cg, const char *srv_ns,
	       const struct h_cg *cli_cg, const char *cli_ns);
void h_xfer_free(struct h_xfer *x);
/* The bytes one direction of connection k carries: dir 0 request, 1 response. */
uint8_t *h_expected(const struct h_xfer *x, int k, int dir, size_t *len);

/* What the TLS tests' peers serve for /n/K: "K:" over and over, cut at K. */
void h_tls_body(uint8_t *b, long k);
bool h_is_tls_body(const uint8_t *b, size_t n, long k);
/*
 * Connection c's TLS plaintext as HTTP/1 exchanges, each whole and what
 * those peers answer: GET /n/K its body, POST /echo the request's body
 * back (echo_len bytes, unless 0). Adds its exchanges to *exchanges;
 * returns how many things are wrong.
 */
size_t h_tls_http_bad(const struct pt_conn *c, size_t echo_len,
		      size_t *exchanges);

/* Connections matching role and ports (0: any), in creation order. */
size_t h_find_conns(struct pt_conns *c, int role, uint16_t lport,
		    uint16_t rport, struct pt_conn **out, size_t max);
/*
 * Asserts, for every connection of x and each captured side, that both
 * directions are exactly what was sent, with no gaps; returns failures.
 */
int h_verify_xfer(struct h_rec *r, const struct h_xfer *x, bool cli_side,
		  bool srv_side);
/*
 * The common case: record with both cgroups targeted, run x, verify both
 * sides of every connection. Returns failures.
 */
int h_record_xfer(struct h_xfer *x, const struct h_cg *srv, const char *srv_ns,
		  const struct h_cg *cli, const char *cli_ns);
/*
 * The same, run again (on the next port, from a new recorder) when the
 * peers themselves fail, up to tries times in all: the 200 connections
 * at once of test_concurrent have hung in two runs of the 6.1 guest
 * under TCG (two sessions apart), the client blocked, the bytes never
 * wrong.
 */
int h_record_xfer_tries(struct h_xfer *x, const struct h_cg *srv,
			const char *srv_ns, const struct h_cg *cli,
			const char *cli_ns, int tries);
/* Asserts one captured direction equals exp exactly. */
bool h_check_stream(const struct pt_conn *c, int dir, const uint8_t *exp,
		    size_t len, const char *what);

#endif
