/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Replay: the inbound HTTP exchanges of a capture sent again to a running
 * service, one connection per captured connection, and every response
 * compared with the recorded one (replay/diff.h).
 */
#ifndef __PODTAP_REPLAY_H
#define __PODTAP_REPLAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "export/export.h"
#include "replay/diff.h"
#include "replay/keploy_in.h"

/* --filter KEY=V1,V2: a request must match every filter, and one of the
 * values of each. */
enum pt_filter_key { PT_F_METHOD, PT_F_PATH, PT_F_HOST, PT_F_HEADER, PT_F_PORT };
struct pt_filter {
	enum pt_filter_key key;
	char **vals;
	size_t nvals;
};

struct pt_replay_opts {
	const char *to;			/* http[s]://host:port[/prefix] */
	char *to_base;			/* http[s]://host:port, of to */
	char *to_prefix;		/* its path, no trailing '/', or "" */
	double speed;			/* > 0: as recorded, N times faster */
	double rate;			/* > 0: requests per second */
	uint64_t max_gap_ns;		/* --speed: longer gaps cut to this */
	uint64_t timeout_ns;		/* per request */
	int concurrency;		/* connections at once */
	bool allow_writes, dry_run, insecure, rewrite_host, learn_noise;
	struct pt_filter *filters;
	size_t nfilters;
	char **set_headers;		/* "Name: value" */
	size_t nset_headers;
	struct pt_noise noise;
};

enum pt_rstate {
	PT_R_PLANNED,
	PT_R_SKIPPED,		/* cannot be replayed: counts as a failure */
	PT_R_FILTERED,		/* left out by a filter or the writes rule */
	PT_R_PASS,
	PT_R_FAIL,		/* the response differs */
	PT_R_ERROR,		/* no response: connection, timeout, ... */
};

/* What came back from one send. */
struct pt_rresult {
	bool done;
	int status;
	struct pt_http_field *fields;
	size_t nfields;
	uint8_t *body;			/* as sent: content-encoded */
	size_t body_len;
	uint64_t ns;			/* request to response */
	bool in_trailers;		/* past the head: fields are trailers */
	char err[256];			/* why there is no response */
};

/*
 * One request of the capture, or one connection that has none to send:
 * while it is sent, with the request and the recorded response read back
 * from the spool; for the reports, its result read back (r[0] without
 * fields or body).
 */
struct pt_rcase {
	uint64_t conn_id;
	size_t seq;			/* its place on the connection, from 1;
					 * 0: a whole connection */
	char *name;			/* "GET /path", or the connection */
	char *why;			/* skipped or filtered: why */
	enum pt_rstate state;
	uint64_t at_ns;			/* when to send, from the run's start */
	int recorded_status;		/* the recorded response's, or -1 */
	struct pt_http_msg req, resp;	/* while it is sent */
	struct pt_rresult r[2];		/* the run, and the second one */
	struct pt_diffs diffs;
	char **learned;			/* where run 2 differed from run 1 */
	size_t nlearned;
};

struct pt_rspool;

/*
 * A replay is fed as the capture is read: pt_replay_x with each exchange
 * of an inbound connection in order by start, pt_replay_conn_done when
 * the connection is over. Requests go to a spool file in $TMPDIR and are
 * sent from there by --concurrency threads, a captured connection on a
 * connection of its own, as soon as they are planned; the reader waits
 * while more than PT_REPLAY_AHEAD bytes of requests wait, unless every
 * thread waits for it. Each case is judged once its response (with
 * --learn-noise, its connection's second run) is in, and only its result
 * is kept, in the spool: memory holds the connections under way, and 8
 * bytes a case.
 */
#define PT_REPLAY_AHEAD		(64u << 20)
struct pt_replay {
	const struct pt_replay_opts *o;
	size_t n;			/* cases, in the order planned */
	size_t nconns;			/* connections with a request to send */
	size_t planned, skipped, filtered, pass, fail, errors;
	size_t conns_sent;		/* connections with a request sent */
	size_t noise_auto, noise_rule, noise_learned;
	double secs;			/* wall time of the run */
	bool interrupted;
	bool unread;			/* ... before the capture was all read */
	const char *damaged;		/* the capture is damaged: where */
	uint64_t spooled;		/* bytes the spool took, at most */
	struct pt_rspool *sp;
};

/* Check --to and split it into to_base and to_prefix; -EINVAL after one
 * line. */
int pt_replay_to(struct pt_replay_opts *o, const char *to);
/* Check and add a --set-header; -EINVAL after one line. */
int pt_set_header_add(struct pt_replay_opts *o, const char *arg);
/* Parse --filter KEY=VALUES; -EINVAL after one line. */
int pt_filter_add(struct pt_replay_opts *o, const char *arg);
void pt_replay_opts_free(struct pt_replay_opts *o);

/* Start a replay: the spool, and the threads that send (none with
 * --dry-run). 0, or < 0 after one line. */
int pt_replay_begin(struct pt_replay *rp, const struct pt_replay_opts *o,
		    volatile int *stop);
/* An exchange of a connection, in order by start; kkeys: a Keploy
 * test's noise keys. Non-zero once the replay is stopped (Ctrl-C). */
int pt_replay_x(struct pt_replay *rp, const struct pt_xconn *xc,
		const struct pt_exchange *x, char *const *kkeys, size_t nkkeys);
/* The connection is over: nothing more of it comes. */
void pt_replay_conn_done(struct pt_replay *rp, const struct pt_xconn *xc);
/* Nothing more comes: wait for what is being sent, count it. */
void pt_replay_end(struct pt_replay *rp);
/* Case i (0 <= i < n) as the reports see it; pt_rcase_free after. */
void pt_replay_case(const struct pt_replay *rp, size_t i, struct pt_rcase *c);
void pt_rcase_free(struct pt_rcase *c);
/* The spool failed (said): an errno, or 0. */
int pt_replay_error(const struct pt_replay *rp);
void pt_replay_free(struct pt_replay *rp);

/* Reports: text for people, JSON, JUnit XML. */
void pt_replay_report_text(FILE *f, const struct pt_replay *rp);
void pt_replay_report_json(FILE *f, const struct pt_replay *rp);
void pt_replay_report_junit(FILE *f, const struct pt_replay *rp);
/* The one summary line, malloc'd, no newline. */
char *pt_replay_summary(const struct pt_replay *rp);

#endif
