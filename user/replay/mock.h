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
 * Anything else is a miss.
 */
#ifndef __PODTAP_MOCK_H
#define __PODTAP_MOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include "export/export.h"

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
	const struct pt_xconn *xc;
	const struct pt_exchange *x;
	char *host, *path;
	struct pt_qparam *q;
	size_t nq;
	struct pt_body body;		/* the request's, decoded */
	size_t group;			/* mocks with an identical request */
};

struct pt_mocks {
	struct pt_mock *v;		/* in recorded order */
	size_t n;
	size_t *cursor;			/* per group: next to serve */
	size_t ngroups;
	size_t skipped;			/* outbound exchanges not usable */
	pthread_mutex_t mu;
	/* what was served */
	size_t exact, reused, closest, missed;
};

enum pt_match { PT_M_EXACT, PT_M_REUSED, PT_M_CLOSEST, PT_M_MISS };

void pt_mocks_load(struct pt_mocks *m, const struct pt_capture *cap);
/* The mock to answer with (NULL on a miss; then *near, if not NULL, is
 * the nearest recorded request, for the 502's body). Thread-safe. */
const struct pt_mock *pt_mocks_match(struct pt_mocks *m,
				     const struct pt_mreq *r,
				     enum pt_match *how,
				     const struct pt_mock **near);
void pt_mocks_free(struct pt_mocks *m);

#endif
