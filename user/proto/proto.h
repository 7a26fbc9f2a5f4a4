/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Protocols: what cuts a connection's two streams into exchanges. Each is
 * one struct pt_proto in the table of proto/protos.c, in the order they
 * are asked; the last (raw turns) takes any connection. A protocol is
 * asked whether a connection speaks it from its first bytes, then fed the
 * streams as they grow: it adds to xc->x the exchanges no later byte can
 * change, and the rest when told the streams are final. The same calls
 * serve a whole capture read at once (pt_xconn_build) and a stream fed as
 * records arrive (pt_xconn_begin, pt_xconn_feed).
 */
#ifndef __PODTAP_PROTO_H
#define __PODTAP_PROTO_H

#include <stdbool.h>
#include "proto/exch.h"

enum pt_detect {
	PT_DETECT_NO,		/* not this protocol */
	PT_DETECT_WAIT,		/* cannot tell yet: ask again with more bytes */
	PT_DETECT_YES,
};

struct pt_proto {
	const char *name;	/* "http1", "raw" */
	enum pt_xproto label;	/* what a connection it cuts speaks */
	/*
	 * Does xc speak it? xc->req_dir is the client's direction. Never
	 * PT_DETECT_WAIT when final (no more bytes will come).
	 */
	enum pt_detect (*detect)(const struct pt_xconn *xc, bool final);
	/*
	 * The streams grew (or are final): append the exchanges that are
	 * now settled to xc->x; all of them when final. State between calls
	 * goes in xc->pstate.
	 */
	void (*feed)(struct pt_xconn *xc, bool final);
	/* Free xc->pstate. */
	void (*release)(struct pt_xconn *xc);
	/*
	 * Read as a stream with bounded memory: where each side's bytes
	 * still to be read start (those before belong to exchanges already
	 * added), and the streams now start by[d] bytes later (no further
	 * than settled said): offsets in the state move down.
	 */
	void (*settled)(const struct pt_xconn *xc, uint64_t pos[2]);
	void (*rebase)(struct pt_xconn *xc, const uint64_t by[2]);
};

/* In the order they are asked; NULL-terminated. */
extern const struct pt_proto *const pt_protos[];
extern const struct pt_proto pt_proto_http1, pt_proto_tls, pt_proto_http2,
			     pt_proto_raw;

/*
 * Raw turns, for a protocol that hands over the rest of a connection
 * (after a tunnel, or bytes it cannot parse): from pos[] on, each side's
 * captured runs in time order, a new exchange at each client turn after
 * the server spoke.
 */
struct pt_raw_state {
	uint64_t pos[2];
};
void pt_raw_feed(struct pt_xconn *xc, struct pt_raw_state *rs, bool final);
void pt_raw_settled(const struct pt_xconn *xc, uint64_t pos[2]);
void pt_raw_rebase(struct pt_xconn *xc, const uint64_t by[2]);

#endif
