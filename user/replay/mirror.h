/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The mirror: every inbound client connection of the target, copied to a
 * local address as it is recorded (or from a capture file). One local
 * connection per captured connection, opened at its first byte; the
 * client's bytes delivered in order (TLS plaintext where the library's was
 * captured); what the local process answers read and thrown away; the
 * client's FIN passed on as a half-close, a reset as a reset. A gap in the
 * capture cuts that mirrored connection. Nothing goes back to the client.
 *
 * It never holds up the capture: records are queued under one lock and
 * written by a thread of its own with non-blocking sockets; each
 * connection's queue and all of them together are bounded, and a local
 * process that does not keep up has that connection cut (its bytes
 * dropped and counted) while the capture goes on.
 */
#ifndef __PODTAP_MIRROR_H
#define __PODTAP_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "podtap.h"

struct pt_mirror_opts {
	const char *to;			/* HOST:PORT */
	uint16_t port;			/* only connections to this server
					 * port of the target; 0: all */
	size_t conn_buf;		/* queued bytes per connection */
	size_t total_buf;		/* queued bytes in all */
	size_t max_conns;		/* mirrored at once */
	uint64_t write_timeout_ns;	/* no progress this long: cut */
	bool wait;			/* from a file: wait for room rather
					 * than cut (never live) */
};

struct pt_mirror_stats {
	uint64_t conns;			/* inbound connections seen */
	uint64_t mirrored;		/* local connections opened */
	uint64_t whole;			/* delivered to their end */
	uint64_t cut_gap;		/* a capture gap */
	uint64_t cut_slow;		/* the local process did not keep up */
	uint64_t cut_error;		/* connect or write failed */
	uint64_t cut_closed;		/* the local process closed (or reset)
					 * before it read everything */
	uint64_t cut_end;		/* the capture ended with the client's
					 * connection open: reset at the end */
	uint64_t older;			/* older than the recording: no
					 * request boundary to start at */
	uint64_t no_plaintext;		/* TLS whose plaintext never came */
	uint64_t over_limit;		/* more than max_conns at once */
	uint64_t own;			/* the mirror's own connections, seen
					 * because the target is what they
					 * reach: never mirrored again */
	uint64_t bytes;			/* delivered */
	uint64_t dropped;		/* queued or arriving, not delivered */
	uint64_t open;			/* connections held now */
};

struct pt_mirror;

/* Resolve and try the address (one line and < 0 when nothing listens
 * there), then start the thread. */
int pt_mirror_start(struct pt_mirror **out, const struct pt_mirror_opts *o);
/* A record, in capture order. Never blocks unless o->wait. */
void pt_mirror_record(struct pt_mirror *m, const struct pt_rec_hdr *h);
/* Deliver what is queued (for up to linger_ns), close everything, stop
 * the thread, and give the counts. */
void pt_mirror_stop(struct pt_mirror *m, uint64_t linger_ns,
		    struct pt_mirror_stats *st);
/* The counts so far (for /metrics and the live line). */
void pt_mirror_stats(struct pt_mirror *m, struct pt_mirror_stats *st);
/* "mirror to HOST:PORT: 3 connections ...", malloc'd, no newline. */
char *pt_mirror_summary(const char *to, const struct pt_mirror_stats *st);

#endif
