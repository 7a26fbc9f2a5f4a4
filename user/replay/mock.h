/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Mocks: the outbound HTTP exchanges of a capture (what the target asked
 * its dependencies and what they answered), and the choice of which
 * recorded answer a new request gets.
 *
 * A request matches exactly when its method, path, query (keys and
 * values, in any order) and body (JSON as JSON, else bytes) equal a
 * recorded one's; requests recorded more than once are answered in
 * recorded order, and the last answer again once they run out (counted as
 * reused). A recorded Host equal to the request's is preferred. Otherwise
 * the closest recorded request of the same method and path is chosen:
 * the most query keys and values in common, the fewest body differences.
 * Anything else is a miss. A request is compared with one recorded
 * request of each group of the same method and path, not with all.
 */
#ifndef __PODTAP_MOCK_H
#define __PODTAP_MOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include "export/export.h"
#include "replay/spool.h"

/* The request a mock is asked. */
struct pt_mreq {
	const char *method;
	const char *host;		/* Host field, NULL if none */
	const char *path;		/* percent-encoded, as sent */
	struct pt_qparam *q;
	size_t nq;
	const uint8_t *body;		/* content-encoding undone */
	size_t body_len;
};

struct pt_mock {
	char *method, *target;		/* as recorded */
	char *host, *path;
	struct pt_qparam *q;
	size_t nq;
	struct pt_body body;		/* the request's, decoded, owned */
	size_t group;			/* mocks with an identical request */
	size_t next;			/* the group's next mock, or SIZE_MAX */
	size_t chain;			/* a group's first: the next first in
					 * its hash bucket, or SIZE_MAX */
	uint64_t resp;			/* the recorded response's status and
					 * fields, in the file */
	uint64_t body_off, body_len;	/* its body there, raw */
};

/*
 * The mocks of a capture read as a stream: each outbound exchange's
 * request is kept to be matched, its recorded response goes to an
 * unlinked file in $TMPDIR and is read back when served, so memory holds
 * the outbound requests, not the capture.
 */
struct pt_mocks {
	struct pt_mock *v;		/* in recorded order */
	size_t n, cap;
	size_t *first, *last;		/* per group: its first, last mock */
	size_t *cursor;			/* per group: the next to serve */
	bool *spent;			/* per group: all served once */
	size_t ngroups;
	size_t *bucket;			/* groups by method and path: the
					 * first of each, linked by chain */
	size_t skipped;			/* outbound exchanges not usable */
	struct pt_rfile f;
	pthread_mutex_t mu;
	/* what was served */
	size_t exact, reused, closest, missed;
};

enum pt_match { PT_M_EXACT, PT_M_REUSED, PT_M_CLOSEST, PT_M_MISS };

/* Make the file; 0, or < 0 after one line. */
int pt_mocks_begin(struct pt_mocks *m);
/* An exchange of the capture, in order by start (inbound ones and what
 * cannot be served are passed over); 0, or < 0 after one line. */
int pt_mocks_add(struct pt_mocks *m, const struct pt_xconn *xc,
		 const struct pt_exchange *x);
/* Every exchange has been added. */
void pt_mocks_end(struct pt_mocks *m);
/* A capture read whole (a Keploy test set): begin, add, end. */
int pt_mocks_load(struct pt_mocks *m, const struct pt_capture *cap);
/* The mock to answer with (NULL on a miss; then *near, if not NULL, is
 * the nearest recorded request, for the 502's body). Thread-safe. */
const struct pt_mock *pt_mocks_match(struct pt_mocks *m,
				     const struct pt_mreq *r,
				     enum pt_match *how,
				     const struct pt_mock **near);
/* mk's recorded response read back into *resp (pt_http_msg_free it),
 * its body too if body (else it is sent from the file: m->f.fd at
 * mk->body_off); 0 or an errno. Thread-safe. */
int pt_mock_answer(struct pt_mocks *m, const struct pt_mock *mk,
		   struct pt_http_msg *resp, bool body);
void pt_mocks_free(struct pt_mocks *m);

#endif
