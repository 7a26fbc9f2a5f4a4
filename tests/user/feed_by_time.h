/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A connection fed to the protocols as a live stream would be: after each
 * moment a record arrived, each direction holds the bytes that had arrived
 * by then (up to the first byte that had not), with the gaps known by
 * then; then once more, final. Its exchanges must be those of the same
 * connection read whole (pt_xconn_build): feed_by_time_check says where
 * they differ, NULL if they do not. For the unit tests and the fuzzer.
 */
#ifndef __PT_FEED_BY_TIME_H
#define __PT_FEED_BY_TIME_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto/exch.h"

static int fbt_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Each view's bytes are a copy of exactly its length, so that a read past
 * what was there shows (address sanitizer); the copies stay until the end,
 * since settled exchanges point into them. Up to a bound, then shared.
 */
struct fbt_copies {
	void **v;
	size_t n, bytes;
};

static const uint8_t *fbt_copy(struct fbt_copies *c, const uint8_t *p,
			       uint64_t len)
{
	uint8_t *b;

	if (c->bytes + len > (16u << 20))
		return p;
	b = malloc(len ? len : 1);
	memcpy(b, p, len);
	c->v = realloc(c->v, (c->n + 1) * sizeof(*c->v));
	c->v[c->n++] = b;
	c->bytes += len;
	return b;
}

/* Direction d of the whole stream w as it stood at time t, in v. */
static void fbt_view(const struct pt_assembled *w, uint64_t t,
		     struct pt_assembled *v, struct pt_range *gaps,
		     struct fbt_copies *c)
{
	uint64_t len = w->len;
	size_t i;

	for (i = 0; i < w->nmarks; i++)
		if (w->marks[i].ts > t && w->marks[i].off < len)
			len = w->marks[i].off;
	/* a gap at the end is known once bytes after it came */
	if (len == w->len) {
		*v = *w;
		return;
	}
	memset(v, 0, sizeof(*v));
	v->buf = (uint8_t *)fbt_copy(c, w->buf, len);
	v->len = len;
	v->marks = w->marks;
	while (v->nmarks < w->nmarks && w->marks[v->nmarks].off < len)
		v->nmarks++;
	v->gaps = gaps;
	for (i = 0; i < w->ngaps && w->gaps[i].start < len; i++) {
		gaps[i] = w->gaps[i];
		if (gaps[i].end > len)
			gaps[i].end = len;
	}
	v->ngaps = i;
}

static bool fbt_span_eq(const struct pt_span *a, const struct pt_span *b)
{
	return a->dir == b->dir && a->off == b->off && a->end == b->end &&
	       a->ts == b->ts && a->ts_end == b->ts_end;
}

static bool fbt_str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool fbt_msg_eq(const struct pt_http_msg *a, const struct pt_http_msg *b)
{
	return fbt_str_eq(a->method, b->method) &&
	       fbt_str_eq(a->target, b->target) && a->status == b->status &&
	       a->len == b->len && a->complete == b->complete &&
	       a->nfields == b->nfields && a->body_len == b->body_len &&
	       (!a->body_len || !memcmp(a->body, b->body, a->body_len)) &&
	       a->framing == b->framing && a->ambiguous == b->ambiguous;
}

static const char *fbt_x_diff(const struct pt_exchange *a,
			      const struct pt_exchange *b)
{
	size_t i;

	if (a->kind != b->kind || a->proto != b->proto)
		return "kind or protocol";
	if (a->incomplete != b->incomplete || strcmp(a->note, b->note))
		return "incomplete or its note";
	if (a->ambiguous != b->ambiguous)
		return "ambiguous";
	if (a->has_req != b->has_req || a->has_resp != b->has_resp)
		return "which messages it has";
	if (a->has_req && (!fbt_msg_eq(&a->req, &b->req) ||
			   !fbt_span_eq(&a->req_span, &b->req_span)))
		return "request";
	if (a->has_resp && (!fbt_msg_eq(&a->resp, &b->resp) ||
			    !fbt_span_eq(&a->resp_span, &b->resp_span)))
		return "response";
	if (a->ninterim != b->ninterim ||
	    memcmp(a->interim, b->interim, sizeof(a->interim)))
		return "interim responses";
	if (a->nturns != b->nturns)
		return "number of turns";
	for (i = 0; i < a->nturns; i++)
		if (!fbt_span_eq(&a->turns[i], &b->turns[i]))
			return "a turn";
	return NULL;
}

/*
 * Where feeding conn by time differs from reading it whole (into why);
 * *early: how many exchanges were added before the final feed.
 */
static const char *feed_by_time_check(const struct pt_conn *conn, char *why,
				      size_t n, size_t *early)
{
	struct pt_xconn whole, live;
	struct pt_assembled *w = whole.a;
	struct fbt_copies copies = { 0 };
	struct pt_range *gaps[2];
	uint64_t *ts;
	size_t nts = 0, i, k;
	const char *d = NULL;
	int dir;

	*early = 0;
	pt_xconn_build(conn, &whole);
	if (!whole.assembled) {
		pt_xconn_free(&whole);
		return NULL;
	}
	ts = malloc((w[0].nmarks + w[1].nmarks + 1) * sizeof(*ts));
	for (dir = 0; dir < 2; dir++) {
		gaps[dir] = malloc((w[dir].ngaps + 1) * sizeof(**gaps));
		for (i = 0; i < w[dir].nmarks; i++)
			ts[nts++] = w[dir].marks[i].ts;
	}
	qsort(ts, nts, sizeof(*ts), fbt_cmp_u64);
	pt_xconn_begin(&live, conn);
	for (i = 0; i <= nts; i++) {
		bool final = i == nts;

		if (!final && i + 1 < nts && ts[i + 1] == ts[i])
			continue;
		for (dir = 0; dir < 2; dir++) {
			if (final)
				live.a[dir] = w[dir];
			else
				fbt_view(&w[dir], ts[i], &live.a[dir], gaps[dir],
					 &copies);
			live.ended[dir] = whole.ended[dir] &&
					  live.a[dir].len == w[dir].len;
		}
		k = live.nx;
		if (final)
			*early = k;
		pt_xconn_feed(&live, final);
#ifdef FBT_TRACE
		FBT_TRACE(&live, final ? 0 : ts[i]);
#endif
		if (live.nx < k) {
			d = "an exchange already added went away";
			break;
		}
	}
	if (!d && live.nx != whole.nx)
		d = "number of exchanges";
	for (i = 0; !d && i < whole.nx; i++)
		if ((d = fbt_x_diff(&live.x[i], &whole.x[i])))
			break;
	if (!d && (live.http != whole.http || live.proto != whole.proto ||
		   live.inbound != whole.inbound || strcmp(live.error, whole.error)))
		d = "the connection's protocol, role or error";
	if (d)
		snprintf(why, n, "exchange %zu of %zu: %s", i, whole.nx, d);
	/* live.a[] points into whole's streams: not freed with live */
	memset(live.a, 0, sizeof(live.a));
	pt_xconn_free(&live);
	pt_xconn_free(&whole);
	free(gaps[0]);
	free(gaps[1]);
	free(ts);
	for (i = 0; i < copies.n; i++)
		free(copies.v[i]);
	free(copies.v);
	return d ? why : NULL;
}

#endif
