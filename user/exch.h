/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Exchanges: a connection's two streams cut into what was asked and what
 * was answered. HTTP/1.x requests paired with their responses; anything
 * else as ordered raw turns of each side.
 */
#ifndef __PODTAP_EXCH_H
#define __PODTAP_EXCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "conns.h"
#include "http1.h"

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

struct pt_exchange {
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
	int req_dir;		/* the client's bytes: PT_DIR_RX on a server */
	bool inbound;		/* server side: exchanges are test cases */
	bool http;		/* at least one HTTP message parsed */
	enum pt_xproto proto;
	char error[200];	/* why HTTP parsing stopped early, or "" */
	struct pt_exchange *x;
	size_t nx;
};

/* Cut a connection into exchanges; xc keeps a pointer to conn. */
void pt_xconn_build(const struct pt_conn *conn, struct pt_xconn *xc);
void pt_xconn_free(struct pt_xconn *xc);
/* "http1", "tls", "http2", "other", "none"; and in words, for summaries. */
const char *pt_xproto_name(enum pt_xproto p);
const char *pt_xproto_words(enum pt_xproto p);

/* The bytes of a span. */
static inline const uint8_t *pt_span_bytes(const struct pt_xconn *xc,
					   const struct pt_span *s)
{
	return xc->a[s->dir].buf + s->off;
}

#endif
