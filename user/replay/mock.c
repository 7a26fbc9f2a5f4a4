// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Choosing a recorded answer for a request: see mock.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "base/common.h"
#include "replay/diff.h"
#include "replay/mock.h"

/* Parameters of a found in b, each used once; *keys: keys alone. */
static size_t q_common(const struct pt_qparam *a, size_t na,
		       const struct pt_qparam *b, size_t nb, size_t *keys)
{
	bool *used = pt_xcalloc(nb + 1, 1), *kused = pt_xcalloc(nb + 1, 1);
	size_t i, k, both = 0;

	*keys = 0;
	for (i = 0; i < na; i++) {
		for (k = 0; k < nb; k++)
			if (!used[k] && !strcmp(a[i].key, b[k].key) &&
			    !strcmp(a[i].val, b[k].val)) {
				used[k] = true;
				both++;
				break;
			}
		for (k = 0; k < nb; k++)
			if (!kused[k] && !strcmp(a[i].key, b[k].key)) {
				kused[k] = true;
				(*keys)++;
				break;
			}
	}
	free(used);
	free(kused);
	return both;
}

static bool q_equal(const struct pt_qparam *a, size_t na,
		    const struct pt_qparam *b, size_t nb)
{
	size_t keys;

	return na == nb && q_common(a, na, b, nb, &keys) == na;
}

/* How many ways two request bodies differ: 0 when equal (JSON as JSON). */
static size_t body_diffs(const uint8_t *a, size_t na, const uint8_t *b,
			 size_t nb)
{
	struct pt_noise none = { .no_auto = true };
	struct pt_resp x = { .body = a, .body_len = na };
	struct pt_resp y = { .body = b, .body_len = nb };
	struct pt_diffs d = {};
	size_t n;

	if (na == nb && !memcmp(a, b, na))
		return 0;
	n = pt_resp_diff(&none, &x, &y, NULL, 0, &d);
	pt_diffs_free(&d);
	return n;
}

static bool same_request(const struct pt_mock *a, const struct pt_mock *b)
{
	return !strcmp(a->x->req.method, b->x->req.method) &&
	       !strcmp(a->path, b->path) &&
	       !strcasecmp(a->host ? a->host : "", b->host ? b->host : "") &&
	       q_equal(a->q, a->nq, b->q, b->nq) &&
	       !body_diffs(a->body.p, a->body.n, b->body.p, b->body.n);
}

static bool usable(const struct pt_exchange *x)
{
	return x->kind == PT_X_HTTP && x->has_req && x->has_resp &&
	       x->req.complete && x->resp.complete && !x->incomplete &&
	       !x->ambiguous && strcasecmp(x->req.method, "CONNECT") &&
	       x->resp.status != 101;
}

void pt_mocks_load(struct pt_mocks *m, const struct pt_capture *cap)
{
	struct pt_xref *xs;
	size_t nx, i, k;

	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	xs = pt_x_sorted(cap, &nx);
	for (i = 0; i < nx; i++) {
		const struct pt_xconn *xc = xs[i].xc;
		const struct pt_exchange *x = xs[i].x;
		struct pt_mock *mk;
		const char *query, *h;

		if (xc->inbound || x->kind != PT_X_HTTP)
			continue;
		if (!usable(x)) {
			m->skipped++;
			continue;
		}
		m->v = pt_xrealloc(m->v, m->n + 1, sizeof(*m->v));
		mk = &m->v[m->n++];
		memset(mk, 0, sizeof(*mk));
		mk->xc = xc;
		mk->x = x;
		pt_target_split(x->req.target, &mk->host, &mk->path, &query);
		h = pt_http_field(&x->req, "Host");
		if (h) {
			free(mk->host);
			mk->host = pt_xstrdup(h);
		}
		pt_query_parse(query, &mk->q, &mk->nq);
		pt_body_get(&x->req, &mk->body);
		for (k = 0; k < m->n - 1; k++)
			if (same_request(&m->v[k], mk))
				break;
		mk->group = k < m->n - 1 ? m->v[k].group : m->ngroups++;
	}
	free(xs);
	m->cursor = pt_xcalloc(m->ngroups + 1, sizeof(*m->cursor));
}

void pt_mocks_free(struct pt_mocks *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->v[i].host);
		free(m->v[i].path);
		pt_query_free(m->v[i].q, m->v[i].nq);
		pt_body_free(&m->v[i].body);
	}
	free(m->v);
	free(m->cursor);
	pthread_mutex_destroy(&m->mu);
	memset(m, 0, sizeof(*m));
}

/* The k-th mock of a group in recorded order, or its last one. */
static struct pt_mock *nth_of_group(struct pt_mocks *m, size_t group,
				    size_t k, bool *past_end)
{
	struct pt_mock *last = NULL;
	size_t i, seen = 0;

	for (i = 0; i < m->n; i++) {
		if (m->v[i].group != group)
			continue;
		if (seen++ == k) {
			*past_end = false;
			return &m->v[i];
		}
		last = &m->v[i];
	}
	*past_end = true;
	return last;
}

static size_t common_prefix(const char *a, const char *b)
{
	size_t n = 0;

	while (a[n] && a[n] == b[n])
		n++;
	return n;
}

const struct pt_mock *pt_mocks_match(struct pt_mocks *m,
				     const struct pt_mreq *r,
				     enum pt_match *how,
				     const struct pt_mock **near)
{
	struct pt_mock *exact = NULL, *best = NULL, *res = NULL;
	const struct pt_mock *nearest = NULL;
	long best_score = 0;
	size_t i, nearest_len = 0;
	bool past;

	pthread_mutex_lock(&m->mu);
	for (i = 0; i < m->n; i++) {
		struct pt_mock *mk = &m->v[i];
		size_t keys, both, bd;
		long score;

		if (strcmp(mk->path, r->path)) {
			size_t len = common_prefix(mk->path, r->path);

			if (!nearest || len > nearest_len) {
				nearest = mk;
				nearest_len = len;
			}
			continue;
		}
		if (strcmp(mk->x->req.method, r->method)) {
			if (!nearest || nearest_len < SIZE_MAX) {
				nearest = mk;
				nearest_len = SIZE_MAX;
			}
			continue;
		}
		both = q_common(r->q, r->nq, mk->q, mk->nq, &keys);
		bd = body_diffs(mk->body.p, mk->body.n, r->body, r->body_len);
		if (both == r->nq && r->nq == mk->nq && !bd) {
			bool host_eq = r->host && mk->host &&
				       !strcasecmp(r->host, mk->host);

			/* the first exact one, or the first whose Host is
			 * the request's */
			if (!exact || (host_eq && !(exact->host && r->host &&
					!strcasecmp(exact->host, r->host))))
				exact = mk;
			continue;
		}
		/* values in common count twice, keys alone once, what is
		 * on one side only against */
		score = 1000 + 2 * (long)both + (long)(keys - both) -
			(long)(r->nq - keys) - (long)(mk->nq - keys) - (long)bd;
		if (!best || score > best_score) {
			best = mk;
			best_score = score;
		}
	}
	if (exact) {
		res = nth_of_group(m, exact->group, m->cursor[exact->group], &past);
		if (!past)
			m->cursor[exact->group]++;
		*how = past ? PT_M_REUSED : PT_M_EXACT;
	} else if (best) {
		res = best;
		*how = PT_M_CLOSEST;
	} else {
		*how = PT_M_MISS;
	}
	m->exact += *how == PT_M_EXACT;
	m->reused += *how == PT_M_REUSED;
	m->closest += *how == PT_M_CLOSEST;
	m->missed += *how == PT_M_MISS;
	if (near)
		*near = res ? NULL : nearest;
	pthread_mutex_unlock(&m->mu);
	return res;
}
