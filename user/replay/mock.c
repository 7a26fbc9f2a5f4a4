// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Choosing a recorded answer for a request: see mock.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "base/common.h"
#include "replay/diff.h"
#include "replay/mock.h"
#include "replay/spool.h"

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
	return !strcmp(a->method, b->method) && !strcmp(a->path, b->path) &&
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

#define BUCKETS		4096

/* Requests that can match one another have the same method and path:
 * groups by those, the first of each group standing for it. */
static size_t bucket_of(const char *method, const char *path)
{
	uint32_t h = 2166136261u;
	const char *s;

	for (s = method; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (s = path; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % BUCKETS;
}

static int spool_failed(const struct pt_mocks *m, int err)
{
	pt_err("mock: the file in %s that keeps the recorded answers: %s (set TMPDIR)",
	       m->f.dir, strerror(err));
	return -err;
}

int pt_mocks_begin(struct pt_mocks *m)
{
	size_t i;

	memset(m, 0, sizeof(*m));
	m->f.fd = -1;
	pthread_mutex_init(&m->mu, NULL);
	m->bucket = pt_xcalloc(BUCKETS, sizeof(*m->bucket));
	for (i = 0; i < BUCKETS; i++)
		m->bucket[i] = SIZE_MAX;
	return pt_rfile_open(&m->f, "mock", "the recorded answers");
}

/* A group for the mock just added at idx: an identical request's, or a
 * new one. */
static void group(struct pt_mocks *m, size_t idx)
{
	struct pt_mock *mk = &m->v[idx];
	size_t b = bucket_of(mk->method, mk->path), k;

	for (k = m->bucket[b]; k != SIZE_MAX; k = m->v[k].chain)
		if (same_request(&m->v[k], mk))
			break;
	mk->next = mk->chain = SIZE_MAX;
	if (k != SIZE_MAX) {
		mk->group = m->v[k].group;
		m->v[m->last[mk->group]].next = idx;
		m->last[mk->group] = idx;
		return;
	}
	mk->group = m->ngroups++;
	m->first = pt_xrealloc(m->first, m->ngroups, sizeof(*m->first));
	m->last = pt_xrealloc(m->last, m->ngroups, sizeof(*m->last));
	m->first[mk->group] = m->last[mk->group] = idx;
	mk->chain = m->bucket[b];
	m->bucket[b] = idx;
}

int pt_mocks_add(struct pt_mocks *m, const struct pt_xconn *xc,
		 const struct pt_exchange *x)
{
	struct pt_http_msg head;
	struct pt_rbuf b = {};
	struct pt_mock *mk;
	const char *query, *h;
	int err;

	if (xc->inbound || x->kind != PT_X_HTTP)
		return 0;
	if (!usable(x)) {
		m->skipped++;
		return 0;
	}
	/* the status and fields as a record, the body raw after it, so
	 * that it can be sent from the file */
	head = x->resp;
	head.body = NULL;
	head.body_len = 0;
	pt_rbuf_msg(&b, &head);
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->v = pt_xrealloc(m->v, m->cap, sizeof(*m->v));
	}
	mk = &m->v[m->n];
	memset(mk, 0, sizeof(*mk));
	mk->resp = pt_rfile_reserve(&m->f, b.n);
	err = b.n > UINT32_MAX ? EFBIG : pt_rfile_put(&m->f, mk->resp, NULL, &b);
	pt_rbuf_free(&b);
	mk->body_len = x->resp.body_len;
	mk->body_off = pt_rfile_reserve_raw(&m->f, mk->body_len);
	if (!err)
		err = pt_rfile_put_raw(&m->f, mk->body_off, x->resp.body,
				       mk->body_len);
	if (err)
		return spool_failed(m, err);
	mk->method = pt_xstrdup(x->req.method);
	mk->target = pt_xstrdup(x->req.target);
	pt_target_split(x->req.target, &mk->host, &mk->path, &query);
	h = pt_http_field(&x->req, "Host");
	if (h) {
		free(mk->host);
		mk->host = pt_xstrdup(h);
	}
	pt_query_parse(query, &mk->q, &mk->nq);
	pt_body_get(&x->req, &mk->body);
	if (!mk->body.alloc && mk->body.n) {
		/* it pointed into the exchange, which is not kept; a NUL
		 * after it, as after a decoded one, for the JSON parser */
		mk->body.alloc = pt_xcalloc(mk->body.n + 1, 1);
		memcpy(mk->body.alloc, mk->body.p, mk->body.n);
		mk->body.p = mk->body.alloc;
	}
	group(m, m->n++);
	return 0;
}

void pt_mocks_end(struct pt_mocks *m)
{
	size_t g;

	m->cursor = pt_xcalloc(m->ngroups + 1, sizeof(*m->cursor));
	m->spent = pt_xcalloc(m->ngroups + 1, sizeof(*m->spent));
	for (g = 0; g < m->ngroups; g++)
		m->cursor[g] = m->first[g];
}

int pt_mocks_load(struct pt_mocks *m, const struct pt_capture *cap)
{
	struct pt_xref *xs;
	size_t nx, i;
	int err = pt_mocks_begin(m);

	if (err)
		return err;
	xs = pt_x_sorted(cap, &nx);
	for (i = 0; i < nx && !err; i++)
		err = pt_mocks_add(m, xs[i].xc, xs[i].x);
	free(xs);
	pt_mocks_end(m);
	return err;
}

int pt_mock_answer(struct pt_mocks *m, const struct pt_mock *mk,
		   struct pt_http_msg *resp, bool body)
{
	struct pt_rbuf b = {};
	int err = pt_rfile_get(&m->f, mk->resp, NULL, &b);

	if (!err) {
		pt_rbuf_get_msg(&b, resp, false);
		if (b.bad) {
			pt_http_msg_free(resp);
			err = EIO;
		}
	}
	pt_rbuf_free(&b);
	if (!err && body && mk->body_len) {
		resp->body_alloc = pt_xcalloc(mk->body_len + 1, 1);
		resp->body = resp->body_alloc;
		resp->body_len = mk->body_len;
		err = pt_rfile_get_raw(&m->f, mk->body_off, resp->body_alloc,
				       mk->body_len);
		if (err)
			pt_http_msg_free(resp);
	}
	return err;
}

void pt_mocks_free(struct pt_mocks *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->v[i].method);
		free(m->v[i].target);
		free(m->v[i].host);
		free(m->v[i].path);
		pt_query_free(m->v[i].q, m->v[i].nq);
		pt_body_free(&m->v[i].body);
	}
	free(m->v);
	free(m->first);
	free(m->last);
	free(m->cursor);
	free(m->spent);
	if (m->bucket)
		pt_rfile_close(&m->f);
	free(m->bucket);
	pthread_mutex_destroy(&m->mu);
	memset(m, 0, sizeof(*m));
}

/* The group's next answer in recorded order, or its last one again. */
static struct pt_mock *next_of_group(struct pt_mocks *m, size_t g,
				     bool *past_end)
{
	struct pt_mock *mk = &m->v[m->cursor[g]];

	*past_end = m->spent[g];
	if (mk->next != SIZE_MAX)
		m->cursor[g] = mk->next;
	else
		m->spent[g] = true;
	return mk;
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
	size_t k, g, nearest_len = 0;
	bool past, exact_host = false;

	pthread_mutex_lock(&m->mu);
	/* the first of each group of the same method and path, in
	 * recorded order where it counts (the earliest wins a tie) */
	for (k = m->bucket[bucket_of(r->method, r->path)]; k != SIZE_MAX;
	     k = m->v[k].chain) {
		struct pt_mock *mk = &m->v[k];
		size_t keys, both, bd;
		long score;

		if (strcmp(mk->path, r->path) || strcmp(mk->method, r->method))
			continue;
		both = q_common(r->q, r->nq, mk->q, mk->nq, &keys);
		bd = body_diffs(mk->body.p, mk->body.n, r->body, r->body_len);
		if (both == r->nq && r->nq == mk->nq && !bd) {
			bool host_eq = r->host && mk->host &&
				       !strcasecmp(r->host, mk->host);

			/* the first exact one, or the first whose Host is
			 * the request's */
			if (!exact || (host_eq && !exact_host) ||
			    (host_eq == exact_host && mk < exact)) {
				exact = mk;
				exact_host = host_eq;
			}
			continue;
		}
		/* values in common count twice, keys alone once, what is
		 * on one side only against */
		score = 1000 + 2 * (long)both + (long)(keys - both) -
			(long)(r->nq - keys) - (long)(mk->nq - keys) - (long)bd;
		if (!best || score > best_score ||
		    (score == best_score && mk < best)) {
			best = mk;
			best_score = score;
		}
	}
	/* a miss: the nearest recorded request, for the 502 (a scan, but
	 * only of groups, and only on a miss) */
	for (g = 0; !exact && !best && near && g < m->ngroups; g++) {
		const struct pt_mock *mk = &m->v[m->first[g]];
		size_t len;

		if (!strcmp(mk->path, r->path)) {
			/* the same path, another method */
			if (nearest_len < SIZE_MAX) {
				nearest = mk;
				nearest_len = SIZE_MAX;
			}
			continue;
		}
		len = common_prefix(mk->path, r->path);
		if (!nearest || len > nearest_len) {
			nearest = mk;
			nearest_len = len;
		}
	}
	if (exact) {
		res = next_of_group(m, exact->group, &past);
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
