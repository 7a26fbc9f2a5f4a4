/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Exchanges: a connection's two streams cut into what was asked and what
 * was answered, by the protocol it speaks (proto/proto.h). Requests paired
 * with their responses, as HTTP messages whatever the protocol's framing;
 * anything else as ordered raw turns of each side.
 */
#ifndef __PODTAP_EXCH_H
#define __PODTAP_EXCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "stream/conns.h"
#include "proto/http1.h"

enum pt_xkind {
	PT_X_HTTP = 1,
	PT_X_RAW = 2,
};

/* Bytes [off, end) of one direction, and when they went by. */
struct pt_span {
	int dir;		/* enum pt_dir */
	uint64_t off, end;
	uint64_t ts, ts_end;	/* first and last byte, ts_ns */
};

#define PT_INTERIM_MAX	4

struct pt_proto;

struct pt_exchange {
	const struct pt_proto *proto;	/* what cut it */
	enum pt_xkind kind;
	bool incomplete;	/* cut by a gap or by the end of the capture */
	char note[96];		/* why it is incomplete, "" otherwise */
	/* its framing may be read differently by the server (a static
	 * string saying why), NULL otherwise: left out of tests and mocks */
	const char *ambiguous;
	/* PT_X_HTTP */
	bool has_req, has_resp;
	struct pt_http_msg req, resp;
	struct pt_span req_span, resp_span; /* resp_span covers 1xx too */
	int interim[PT_INTERIM_MAX];	/* 1xx statuses before resp */
	size_t ninterim;
	/* PT_X_RAW: turns in time order, the client's first */
	struct pt_span *turns;
	size_t nturns;
};

/* What a connection speaks, told from its bytes. */
enum pt_xproto {
	PT_XP_NONE = 0,		/* no payload */
	PT_XP_HTTP1,		/* HTTP/1.x: exchanges */
	PT_XP_TLS,		/* TLS records: ciphertext, raw turns */
	PT_XP_HTTP2,		/* the HTTP/2 preface: raw turns for now */
	PT_XP_OTHER,		/* not recognised: raw turns */
};

struct pt_xconn {
	const struct pt_conn *conn;
	struct pt_assembled a[2];
	bool assembled;		/* a[] could be built */
	bool owns_a;		/* a[] is freed with xc (pt_xconn_build) */
	bool tls;		/* a[] is the TLS plaintext (the library's) */
	bool ended[2];		/* the sender of a[d] is done (FIN, close) */
	int req_dir;		/* the client's bytes: PT_DIR_RX on a server */
	bool inbound;		/* server side: exchanges are test cases */
	bool http;		/* at least one HTTP message parsed */
	enum pt_xproto proto;
	char error[200];	/* why HTTP parsing stopped early, or "" */
	struct pt_exchange *x;
	size_t nx;
	/* the protocol cutting it, once known, and its state */
	const struct pt_proto *p;
	void *pstate;
	bool role_known;	/* inbound and req_dir are decided */
	/* Read as a stream with bounded memory (export/stream.c): a[d]
	 * holds the bytes from base[d] on, and spans handed out are
	 * offsets of the whole stream. 0 when read whole. */
	uint64_t base[2];
	bool streamed;		/* exchanges are taken out of x as they settle */
	bool first_checked;	/* the first exchange's TLS check is done */
	/* streamed, when the connection is done: the gaps of all the bytes
	 * it handed on, in stream offsets (read whole, a[d].gaps) */
	const struct pt_range *sgaps[2];
	size_t nsgaps[2];
};

/* Cut a whole connection into exchanges; xc keeps a pointer to conn. */
void pt_xconn_build(const struct pt_conn *conn, struct pt_xconn *xc);
/*
 * The same as bytes arrive: begin, then after the caller has grown a[]
 * (and set ended[]), feed; feed with final once nothing more will come.
 * Exchanges only ever get appended to xc->x. The caller owns a[], and
 * keeps to what a stream is: each feed shows both directions as they
 * stood at one moment (every byte that had arrived by then, in the order
 * it arrived: a reader of several CPUs' records feeds up to a watermark
 * they have all passed), bytes once shown never change or move (settled
 * exchanges point into them), and gaps are known once bytes after them
 * are. Cost: a message still arriving is parsed again from its start at
 * each feed.
 */
void pt_xconn_begin(struct pt_xconn *xc, const struct pt_conn *conn);
void pt_xconn_feed(struct pt_xconn *xc, bool final);
void pt_xconn_free(struct pt_xconn *xc);
/* Streamed: stop waiting to be sure of the protocol (an HTTP request
 * line may come after other bytes) and take what the bytes so far say. */
void pt_xconn_decide(struct pt_xconn *xc);
/* What xc speaks as far as it was cut (final: xc->proto). */
enum pt_xproto pt_xconn_label(const struct pt_xconn *xc);
/* The sender of direction dir is done: a FIN, or a close not a reset. */
bool pt_conn_ended(const struct pt_conn *c, int dir);
/* "http1", "tls", "http2", "other", "none"; and in words, for summaries. */
const char *pt_xproto_name(enum pt_xproto p);
const char *pt_xproto_words(enum pt_xproto p);

/* For protocols: a new exchange at the end of xc->x; mark one cut short
 * (the first reason stays); free what one holds. */
struct pt_exchange *pt_x_new(struct pt_xconn *xc, enum pt_xkind kind);
void pt_x_incomplete(struct pt_exchange *x, const char *why);
void pt_x_release(struct pt_exchange *x);
/* From the request's first byte to the response's last: 0 where the
 * stamps say otherwise (TLS plaintext of a write is stamped when the call
 * returns, which for a large request can be after its early answer). */
static inline uint64_t pt_x_latency_ns(const struct pt_exchange *x)
{
	return x->resp_span.ts_end > x->req_span.ts ?
	       x->resp_span.ts_end - x->req_span.ts : 0;
}
void pt_span_set(struct pt_span *s, const struct pt_assembled *a, int dir,
		 uint64_t off, uint64_t end);

/* Captured runs and gaps of an assembled stream. */
/* Where the captured run containing off ends: the next gap, or the end. */
uint64_t pt_run_end(const struct pt_assembled *a, uint64_t off);
/* Is off in a gap? Then *end is where the gap ends. */
bool pt_in_gap(const struct pt_assembled *a, uint64_t off, uint64_t *end);

/* The bytes of a span. */
static inline const uint8_t *pt_span_bytes(const struct pt_xconn *xc,
					   const struct pt_span *s)
{
	return xc->a[s->dir].buf + (s->off - xc->base[s->dir]);
}

#endif
