// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Replay with libcurl: one easy handle per captured connection, so its
 * requests go out in order on one kept-alive connection (curl reuses it
 * when the server allows); a pool of threads for --concurrency. libcurl
 * frames each request anew (Content-Length) and undoes chunking of the
 * responses; content codings are undone here, the same way for the
 * recorded response and the new one.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "base/common.h"
#include "replay/replay.h"

/* Never sent as recorded: hop-by-hop fields (RFC 9110 7.6.1) and the
 * framing libcurl sets itself. */
static const char *const not_forwarded[] = {
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
	"Transfer-Encoding", "Upgrade", "Content-Length", "Expect", NULL,
};

int pt_filter_add(struct pt_replay_opts *o, const char *arg)
{
	static const char *const keys[] = {
		[PT_F_METHOD] = "method", [PT_F_PATH] = "path",
		[PT_F_HOST] = "host", [PT_F_HEADER] = "header",
		[PT_F_PORT] = "port",
	};
	const char *eq = strchr(arg, '=');
	struct pt_filter f = {};
	char *vals, *tok, *save;
	size_t i;

	for (i = 0; eq && i < ARRAY_SIZE(keys); i++)
		if (strlen(keys[i]) == (size_t)(eq - arg) &&
		    !strncasecmp(arg, keys[i], eq - arg))
			break;
	if (!eq || i == ARRAY_SIZE(keys) || !eq[1]) {
		pt_err("--filter %s: want method=, path=, host=, header= or port= and values (comma-separated)",
		       arg);
		return -EINVAL;
	}
	f.key = i;
	vals = pt_xstrdup(eq + 1);
	for (tok = strtok_r(vals, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		f.vals = pt_xrealloc(f.vals, f.nvals + 1, sizeof(*f.vals));
		f.vals[f.nvals++] = pt_xstrdup(tok);
	}
	free(vals);
	if (!f.nvals) {
		pt_err("--filter %s: no values", arg);
		return -EINVAL;
	}
	for (i = 0; f.key == PT_F_PORT && i < f.nvals; i++) {
		uint64_t port;

		if (pt_parse_u64(f.vals[i], 1, 65535, &port)) {
			pt_err("--filter %s: %s is not a port (1 to 65535)", arg,
			       f.vals[i]);
			for (i = 0; i < f.nvals; i++)
				free(f.vals[i]);
			free(f.vals);
			return -EINVAL;
		}
	}
	o->filters = pt_xrealloc(o->filters, o->nfilters + 1, sizeof(*o->filters));
	o->filters[o->nfilters++] = f;
	return 0;
}

int pt_replay_to(struct pt_replay_opts *o, const char *to)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	char *query = NULL, *frag = NULL, *user = NULL;
	CURLU *u = curl_url();
	int err = -EINVAL;
	size_t n;

	if (!u)
		pt_oom();
	if (curl_url_set(u, CURLUPART_URL, to, 0) ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0)) {
		pt_err("--to %s: not a URL (want http://HOST:PORT or https://HOST:PORT, a path prefix allowed)",
		       to);
		goto out;
	}
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	if (strcmp(scheme, "http") && strcmp(scheme, "https")) {
		pt_err("--to %s: want an http:// or https:// URL", to);
		goto out;
	}
	if (query || frag || user || strpbrk(to, " \t\r\n")) {
		pt_err("--to %s: only scheme, host, port and a path prefix: no query, fragment, user or spaces",
		       to);
		goto out;
	}
	o->to = to;
	if (asprintf(&o->to_base, "%s://%s%s%s:%s", scheme,
		     strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
		     port) < 0)
		pt_oom();
	n = strlen(path);
	while (n && path[n - 1] == '/')
		n--;
	o->to_prefix = strndup(path, n);
	if (!o->to_prefix)
		pt_oom();
	err = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_free(frag);
	curl_free(user);
	curl_url_cleanup(u);
	return err;
}

int pt_set_header_add(struct pt_replay_opts *o, const char *arg)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	const char *colon = strchr(arg, ':'), *v;
	char shown[256];
	size_t i;

	pt_printable(arg, shown, sizeof(shown));
	if (!colon || colon == arg || strspn(arg, tchar) != (size_t)(colon - arg)) {
		pt_err("--set-header %s: want 'NAME: VALUE' (NAME a field name, no spaces)",
		       shown);
		return -EINVAL;
	}
	for (v = colon + 1; *v; v++)
		if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f) {
			pt_err("--set-header %s: control characters in the value", shown);
			return -EINVAL;
		}
	for (i = 0; not_forwarded[i]; i++)
		if (strlen(not_forwarded[i]) == (size_t)(colon - arg) &&
		    !strncasecmp(arg, not_forwarded[i], colon - arg)) {
			pt_err("--set-header %s: %s is framing or hop-by-hop, set by replay itself",
			       arg, not_forwarded[i]);
			return -EINVAL;
		}
	o->set_headers = pt_xrealloc(o->set_headers, o->nset_headers + 1,
				     sizeof(*o->set_headers));
	o->set_headers[o->nset_headers++] = pt_xstrdup(arg);
	return 0;
}

void pt_replay_opts_free(struct pt_replay_opts *o)
{
	size_t i, k;

	free(o->to_base);
	free(o->to_prefix);
	for (i = 0; i < o->nfilters; i++) {
		for (k = 0; k < o->filters[i].nvals; k++)
			free(o->filters[i].vals[k]);
		free(o->filters[i].vals);
	}
	free(o->filters);
	for (i = 0; i < o->nset_headers; i++)
		free(o->set_headers[i]);
	free(o->set_headers);
	pt_noise_free(&o->noise);
}

/* ---- the plan ---- */

static bool is_read_method(const char *m)
{
	return !strcmp(m, "GET") || !strcmp(m, "HEAD");
}

static bool one_matches(const struct pt_filter *f, const struct pt_xconn *xc,
			const struct pt_exchange *x)
{
	size_t i;

	for (i = 0; i < f->nvals; i++) {
		const char *v = f->vals[i], *h, *colon, *query;
		char *path;
		bool m = false;

		switch (f->key) {
		case PT_F_METHOD:
			m = !strcasecmp(x->req.method, v);
			break;
		case PT_F_PATH:
			pt_target_split(x->req.target, NULL, &path, &query);
			m = !fnmatch(v, path, 0);
			free(path);
			break;
		case PT_F_HOST:
			h = pt_http_field(&x->req, "Host");
			m = h && !fnmatch(v, h, FNM_CASEFOLD);
			break;
		case PT_F_HEADER:
			/* Name, or Name:glob of its value */
			colon = strchr(v, ':');
			if (!colon) {
				m = pt_http_field(&x->req, v) != NULL;
			} else {
				char *name = strndup(v, colon - v);

				h = name ? pt_http_field(&x->req, name) : NULL;
				m = h && !fnmatch(colon + 1 + (colon[1] == ' '),
						  h, 0);
				free(name);
			}
			break;
		case PT_F_PORT:
			/* the server's port: the local end of an inbound one */
			m = xc->conn->has_open &&
			    (unsigned)atoi(v) == (xc->inbound ?
						  xc->conn->open.t.lport :
						  xc->conn->open.t.rport);
			break;
		}
		if (m)
			return true;
	}
	return false;
}

/* Why a request is not sent, or NULL; *filtered when the user asked. */
static const char *why_not(const struct pt_replay_opts *o,
			   const struct pt_xconn *xc,
			   const struct pt_exchange *x, bool *filtered)
{
	size_t i;

	*filtered = false;
	if (x->kind != PT_X_HTTP)
		return "not HTTP: bytes after an upgrade or a tunnel";
	if (!x->has_req || !x->req.complete)
		return "incomplete capture: the request is not all there";
	if (x->ambiguous)
		return "framing ambiguous: servers may read it differently";
	if (!strcasecmp(x->req.method, "CONNECT") ||
	    pt_http_field(&x->req, "Upgrade") ||
	    (x->has_resp && x->resp.status == 101))
		return "upgrade or tunnel: not replayed";
	if (!x->has_resp || !x->resp.complete || x->incomplete)
		return "incomplete capture: no whole response to compare with";
	for (i = 0; i < o->nfilters; i++)
		if (!one_matches(&o->filters[i], xc, x)) {
			*filtered = true;
			return "left out by --filter";
		}
	if (!o->allow_writes && !is_read_method(x->req.method)) {
		*filtered = true;
		return "a write: only GET and HEAD without --allow-writes";
	}
	return NULL;
}

static const char *conn_skip(const struct pt_xconn *xc, bool *filtered)
{
	size_t i;

	*filtered = false;
	if (!xc->assembled)
		return "too large to assemble (--max-stream)";
	switch (xc->proto) {
	case PT_XP_TLS:
		return "TLS ciphertext: the plaintext was not captured";
	case PT_XP_HTTP2:
		return "HTTP/2: not replayed yet";
	case PT_XP_OTHER:
		return "not HTTP/1";
	default:
		break;
	}
	for (i = 0; i < xc->nx; i++)
		if (xc->x[i].kind == PT_X_HTTP)
			return NULL;
	return xc->nx ? "no HTTP request from its start: picked up mid-stream" :
			NULL;
}

static struct pt_rcase *new_case(struct pt_replay *rp)
{
	rp->c = pt_xrealloc(rp->c, rp->n + 1, sizeof(*rp->c));
	memset(&rp->c[rp->n], 0, sizeof(rp->c[0]));
	return &rp->c[rp->n++];
}

static char *case_name(const struct pt_exchange *x)
{
	char *s;

	if (asprintf(&s, "%s %s", x->req.method, x->req.target) < 0)
		pt_oom();
	return s;
}

static int cmp_at(const void *a, const void *b)
{
	const struct pt_rcase *x = *(struct pt_rcase *const *)a;
	const struct pt_rcase *y = *(struct pt_rcase *const *)b;

	return x->x->req_span.ts < y->x->req_span.ts ? -1 :
	       x->x->req_span.ts > y->x->req_span.ts;
}

/* Send times: as recorded (speed), evenly (rate) or at once. */
static void schedule(struct pt_replay *rp)
{
	const struct pt_replay_opts *o = rp->o;
	struct pt_rcase **v = pt_xcalloc(rp->n + 1, sizeof(*v));
	size_t i, k = 0;
	uint64_t at = 0;

	for (i = 0; i < rp->n; i++)
		if (rp->c[i].state == PT_R_PLANNED)
			v[k++] = &rp->c[i];
	qsort(v, k, sizeof(*v), cmp_at);
	for (i = 0; i < k; i++) {
		if (o->rate > 0) {
			v[i]->at_ns = (uint64_t)(i * 1e9 / o->rate);
		} else if (o->speed > 0 && i) {
			uint64_t gap = v[i]->x->req_span.ts - v[i - 1]->x->req_span.ts;

			if (o->max_gap_ns && gap > o->max_gap_ns)
				gap = o->max_gap_ns;
			at += (uint64_t)(gap / o->speed);
			v[i]->at_ns = at;
		}
	}
	free(v);
}

static int cmp_start(const void *a, const void *b)
{
	const struct pt_xconn *x = *(const struct pt_xconn *const *)a;
	const struct pt_xconn *y = *(const struct pt_xconn *const *)b;

	return x->conn->first_ts < y->conn->first_ts ? -1 :
	       x->conn->first_ts > y->conn->first_ts;
}

/* One connection that has nothing to send, and why. */
static void skip_conn(struct pt_replay *rp, const struct pt_xconn *xc,
		      const char *why)
{
	struct pt_rcase *c = new_case(rp);
	char ep[64];

	pt_fmt_ep(ep, sizeof(ep), &xc->conn->open.t, false);
	c->xc = xc;
	c->conn_id = xc->conn->id;
	if (asprintf(&c->name, "connection from %s", ep) < 0)
		pt_oom();
	c->why = why;
	c->state = PT_R_SKIPPED;
}

/* Does a port= filter leave the whole connection out? */
static bool port_filtered(const struct pt_replay_opts *o,
			  const struct pt_xconn *xc)
{
	size_t i;

	for (i = 0; i < o->nfilters; i++)
		if (o->filters[i].key == PT_F_PORT &&
		    !one_matches(&o->filters[i], xc, NULL))
			return true;
	return false;
}

static void plan_conn(struct pt_replay *rp, const struct pt_xconn *xc)
{
	size_t first = rp->n, seq = 0, k;
	bool filtered;
	const char *why = conn_skip(xc, &filtered);

	if (port_filtered(rp->o, xc)) {
		skip_conn(rp, xc, "left out by --filter");
		rp->c[rp->n - 1].state = PT_R_FILTERED;
		return;
	}
	if (why) {
		skip_conn(rp, xc, why);
		/* a filter on what requests say leaves out a connection
		 * that has none to say it */
		for (k = 0; xc->assembled && k < rp->o->nfilters; k++)
			if (rp->o->filters[k].key != PT_F_PORT) {
				rp->c[rp->n - 1].state = PT_R_FILTERED;
				break;
			}
		return;
	}
	for (k = 0; k < xc->nx; k++) {
		const struct pt_exchange *x = &xc->x[k];
		struct pt_rcase *c;

		if (x->kind != PT_X_HTTP && !x->nturns)
			continue;
		c = new_case(rp);
		c->xc = xc;
		c->x = x;
		c->conn_id = xc->conn->id;
		c->seq = ++seq;
		c->name = x->kind == PT_X_HTTP && x->has_req ?
			  case_name(x) : pt_xstrdup("(raw bytes)");
		c->why = why_not(rp->o, xc, x, &filtered);
		c->state = !c->why ? PT_R_PLANNED :
			   filtered ? PT_R_FILTERED : PT_R_SKIPPED;
		if (rp->o->kset) {
			size_t ci = xc - rp->o->kset->cap.xc;

			c->kkeys = rp->o->kset->noise[ci];
			c->nkkeys = rp->o->kset->nnoise[ci];
		}
	}
	if (rp->n > first) {
		rp->conns = pt_xrealloc(rp->conns, rp->nconns + 1,
					sizeof(*rp->conns));
		rp->conns[rp->nconns++] = (struct pt_rconn){ first,
							     rp->n - first };
	}
}

void pt_replay_plan(struct pt_replay *rp, const struct pt_capture *cap,
		    const struct pt_replay_opts *o)
{
	const struct pt_xconn **v = pt_xcalloc(cap->conns.n + 1, sizeof(*v));
	size_t i, n = 0;

	memset(rp, 0, sizeof(*rp));
	rp->o = o;
	/* inbound connections in the order they started */
	for (i = 0; i < cap->conns.n; i++)
		if (cap->xc[i].inbound && (!cap->xc[i].assembled ||
					   cap->xc[i].proto != PT_XP_NONE))
			v[n++] = &cap->xc[i];
	qsort(v, n, sizeof(*v), cmp_start);
	for (i = 0; i < n; i++)
		plan_conn(rp, v[i]);
	free(v);
	for (i = 0; i < rp->n; i++) {
		rp->planned += rp->c[i].state == PT_R_PLANNED;
		rp->skipped += rp->c[i].state == PT_R_SKIPPED;
		rp->filtered += rp->c[i].state == PT_R_FILTERED;
	}
	schedule(rp);
}

/* ---- sending ---- */

struct run {
	struct pt_replay *rp;
	int pass;		/* 0, or 1 for the second run */
	volatile int *stop;
	pthread_mutex_t mu;
	size_t next;		/* connection to take */
	uint64_t t0;		/* CLOCK_MONOTONIC ns at the start */
	char *host;		/* authority of --to, for --rewrite-host */
};

static bool forwarded(const char *name)
{
	size_t i;

	for (i = 0; not_forwarded[i]; i++)
		if (!strcasecmp(not_forwarded[i], name))
			return false;
	return true;
}

static bool set_by_user(const struct pt_replay_opts *o, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < o->nset_headers; i++)
		if (!strncasecmp(o->set_headers[i], name, n) &&
		    o->set_headers[i][n] == ':')
			return true;
	return false;
}

static struct curl_slist *headers_of(const struct run *r,
				     const struct pt_exchange *x)
{
	const struct pt_replay_opts *o = r->rp->o;
	struct curl_slist *l = NULL, *t;
	size_t i;
	char *s;

	for (i = 0; i < x->req.nfields; i++) {
		const struct pt_http_field *f = &x->req.fields[i];

		if (!forwarded(f->name) || set_by_user(o, f->name) ||
		    (r->host && !strcasecmp(f->name, "Host")))
			continue;
		/* "Name;" is how libcurl is told to send an empty value */
		if (asprintf(&s, *f->value ? "%s: %s" : "%s;", f->name,
			     f->value) < 0)
			pt_oom();
		t = curl_slist_append(l, s);
		free(s);
		if (!t)
			pt_oom();
		l = t;
	}
	/* what libcurl would add on its own, unless the request had it */
	if (!pt_http_field(&x->req, "Accept") && !set_by_user(o, "Accept"))
		l = curl_slist_append(l, "Accept:");
	if (!pt_http_field(&x->req, "Content-Type") &&
	    !set_by_user(o, "Content-Type"))
		l = curl_slist_append(l, "Content-Type:");
	l = curl_slist_append(l, "Expect:");
	if (r->host && !set_by_user(o, "Host")) {
		if (asprintf(&s, "Host: %s", r->host) < 0)
			pt_oom();
		l = curl_slist_append(l, s);
		free(s);
	} else if (!r->host && !pt_http_field(&x->req, "Host") &&
		   !set_by_user(o, "Host")) {
		/* sent without one (HTTP/1.0): so it goes again */
		l = curl_slist_append(l, "Host:");
	}
	for (i = 0; i < o->nset_headers; i++)
		l = curl_slist_append(l, o->set_headers[i]);
	if (!l)
		pt_oom();
	return l;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct pt_rresult *res = arg;
	size_t len = size * n, i;
	char *line = strndup(p, len), *colon;

	if (!line)
		return 0;
	line[strcspn(line, "\r\n")] = 0;
	if (!*line) {
		res->in_trailers = true;	/* the end of a head */
	} else if (!strncmp(line, "HTTP/", 5)) {
		/* a new status line (after 1xx): start over */
		for (i = 0; i < res->nfields; i++) {
			free(res->fields[i].name);
			free(res->fields[i].value);
		}
		res->nfields = 0;
		res->in_trailers = false;
	} else if (res->in_trailers) {
		/* trailers of a chunked body: the recording keeps them apart
		 * from the head too */
	} else if ((colon = strchr(line, ':')) && colon != line) {
		char *v = colon + 1;

		*colon = 0;
		v += strspn(v, " \t");
		for (i = strlen(v); i && (v[i - 1] == ' ' || v[i - 1] == '\t'); i--)
			v[i - 1] = 0;
		res->fields = pt_xrealloc(res->fields, res->nfields + 1,
					  sizeof(*res->fields));
		res->fields[res->nfields].name = pt_xstrdup(line);
		res->fields[res->nfields].value = pt_xstrdup(v);
		res->nfields++;
	}
	free(line);
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct pt_rresult *res = arg;
	size_t len = size * n;

	if (res->body_len + len > PT_HTTP_DECODED_MAX) {
		snprintf(res->err, sizeof(res->err),
			 "response body larger than %u MiB", PT_HTTP_DECODED_MAX >> 20);
		return 0;
	}
	res->body = pt_xrealloc(res->body, res->body_len + len + 1, 1);
	memcpy(res->body + res->body_len, p, len);
	res->body_len += len;
	return len;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
		       curl_off_t d)
{
	const struct run *r = arg;

	return *r->stop != 0;
}

/* The request target sent: the recorded one as it was (absolute-form,
 * odd bytes and all), after the --to prefix when it is origin-form. */
static char *target_of(const char *prefix, const char *target)
{
	char *t;

	if (target[0] != '/')
		return pt_xstrdup(target);
	if (asprintf(&t, "%s%s", prefix, target) < 0)
		pt_oom();
	return t;
}

static void send_one(struct run *r, CURL *h, struct pt_rcase *c)
{
	const struct pt_replay_opts *o = r->rp->o;
	const struct pt_exchange *x = c->x;
	struct pt_rresult *res = &c->r[r->pass];
	struct curl_slist *hdrs = headers_of(r, x);
	char *target = target_of(o->to_prefix, x->req.target);
	char errbuf[CURL_ERROR_SIZE];
	uint64_t t;
	long code = 0;
	CURLcode rc;

	curl_easy_setopt(h, CURLOPT_URL, o->to_base);
	curl_easy_setopt(h, CURLOPT_REQUEST_TARGET, target);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, x->req.minor == 0 ?
			 CURL_HTTP_VERSION_1_0 : CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_NOBODY, (long)!strcmp(x->req.method, "HEAD"));
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, !strcmp(x->req.method, "HEAD") ?
			 NULL : x->req.method);
	if (x->req.body_len || !is_read_method(x->req.method)) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)x->req.body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->req.body_len ?
				 (const char *)x->req.body : "");
	} else if (strcmp(x->req.method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->req.method);
	}
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, res);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, res);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	errbuf[0] = 0;
	t = pt_now_mono_ns();
	rc = curl_easy_perform(h);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	res->ns = pt_now_mono_ns() - t;
	res->done = true;
	if (rc != CURLE_OK) {
		if (!res->err[0])
			snprintf(res->err, sizeof(res->err), "%s",
				 *r->stop ? "interrupted" : errbuf[0] ? errbuf :
				 curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		res->status = (int)code;
	}
	curl_slist_free_all(hdrs);
	free(target);
}

static void wait_until(const struct run *r, uint64_t at)
{
	while (!*r->stop) {
		uint64_t now = pt_now_mono_ns() - r->t0;
		struct timespec ts;

		if (now >= at)
			return;
		at - now > 100000000 ? (ts = (struct timespec){ 0, 100000000 }) :
			(ts = (struct timespec){ 0, (long)(at - now) });
		nanosleep(&ts, NULL);
	}
}

static void replay_conn(struct run *r, const struct pt_rconn *rc)
{
	const struct pt_replay_opts *o = r->rp->o;
	CURL *h = NULL;
	size_t i;

	for (i = rc->first; i < rc->first + rc->n && !*r->stop; i++) {
		struct pt_rcase *c = &r->rp->c[i];

		if (c->state != PT_R_PLANNED)
			continue;
		if (!h) {
			h = curl_easy_init();
			if (!h)
				pt_oom();
			curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
			curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
					 (long)(o->timeout_ns / 1000000));
			curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
			curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
			curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
			curl_easy_setopt(h, CURLOPT_XFERINFODATA, r);
			curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
			if (o->insecure) {
				curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
				curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
			}
		}
		wait_until(r, c->at_ns);
		if (*r->stop)
			break;
		send_one(r, h, c);
	}
	if (h)
		curl_easy_cleanup(h);
}

static void *worker(void *arg)
{
	struct run *r = arg;

	for (;;) {
		size_t k;

		pthread_mutex_lock(&r->mu);
		k = r->next++;
		pthread_mutex_unlock(&r->mu);
		if (k >= r->rp->nconns || *r->stop)
			return NULL;
		replay_conn(r, &r->rp->conns[k]);
	}
}

static int run_once(struct pt_replay *rp, int pass, volatile int *stop,
		    char *host)
{
	struct run r = { .rp = rp, .pass = pass, .stop = stop, .host = host,
			 .mu = PTHREAD_MUTEX_INITIALIZER };
	size_t i, n = rp->o->concurrency > 0 ? (size_t)rp->o->concurrency : 1;
	pthread_t *t;
	int err;

	if (n > rp->nconns)
		n = rp->nconns;
	t = pt_xcalloc(n + 1, sizeof(*t));
	r.t0 = pt_now_mono_ns();
	for (i = 0; i < n; i++) {
		err = pthread_create(&t[i], NULL, worker, &r);
		if (err) {
			pt_err("replay: cannot start a thread: %s", strerror(err));
			*stop = 1;
			break;
		}
	}
	while (i--)
		pthread_join(t[i], NULL);
	free(t);
	return 0;
}

/* ---- comparing ---- */

/* A response as compared: its body decoded (pt_body_free b after). */
static void decoded(const struct pt_http_field *fields, size_t nfields,
		    const uint8_t *body, size_t len, int status,
		    struct pt_resp *out, struct pt_body *b)
{
	struct pt_http_msg m = {
		.fields = (struct pt_http_field *)fields, .nfields = nfields,
		.body = body, .body_len = len,
	};

	pt_body_get(&m, b);
	*out = (struct pt_resp){ status, fields, nfields, b->p, b->n };
}

static void result_resp(const struct pt_rresult *r, struct pt_resp *out,
			struct pt_body *b)
{
	decoded(r->fields, r->nfields, r->body, r->body_len, r->status, out, b);
}

static void learn(struct pt_rcase *c)
{
	struct pt_diffs d = {};
	struct pt_resp a, b;
	struct pt_body fa, fb;
	size_t i;
	struct pt_noise none = { .no_auto = true };

	/* a second run cut short by Ctrl-C teaches nothing */
	if (!c->r[0].done || !c->r[1].done || c->r[0].err[0] || c->r[1].err[0])
		return;
	result_resp(&c->r[0], &a, &fa);
	result_resp(&c->r[1], &b, &fb);
	pt_resp_diff(&none, &a, &b, NULL, 0, &d);
	c->learned = pt_xcalloc(d.n + 1, sizeof(*c->learned));
	for (i = 0; i < d.n; i++)
		c->learned[c->nlearned++] = pt_xstrdup(d.v[i].where);
	pt_diffs_free(&d);
	pt_body_free(&fa);
	pt_body_free(&fb);
}

static void judge(struct pt_replay *rp, struct pt_rcase *c)
{
	const struct pt_exchange *x = c->x;
	struct pt_noise nz = rp->o->noise;
	struct pt_resp want, got;
	struct pt_body fw, fg;

	if (!c->r[0].done)
		return;		/* interrupted before it */
	if (c->r[0].err[0]) {
		c->state = PT_R_ERROR;
		rp->errors++;
		return;
	}
	if (rp->o->learn_noise)
		learn(c);
	decoded(x->resp.fields, x->resp.nfields, x->resp.body,
		x->resp.body_len, x->resp.status, &want, &fw);
	result_resp(&c->r[0], &got, &fg);
	nz.kkeys = c->kkeys;
	nz.nkkeys = c->nkkeys;
	pt_resp_diff(&nz, &want, &got, c->learned, c->nlearned, &c->diffs);
	pt_body_free(&fw);
	pt_body_free(&fg);
	c->state = c->diffs.n ? PT_R_FAIL : PT_R_PASS;
	rp->pass += c->state == PT_R_PASS;
	rp->fail += c->state == PT_R_FAIL;
	rp->noise_auto += c->diffs.noise_auto;
	rp->noise_rule += c->diffs.noise_rule;
	rp->noise_learned += c->diffs.noise_learned;
}

int pt_replay_run(struct pt_replay *rp, volatile int *stop)
{
	const struct pt_replay_opts *o = rp->o;
	uint64_t t0 = pt_now_mono_ns();
	char *host = NULL;
	size_t i;

	if (o->rewrite_host)
		host = pt_xstrdup(o->to_base + (o->to_base[4] == 's' ? 8 : 7));
	run_once(rp, 0, stop, host);
	if (o->learn_noise && !*stop)
		run_once(rp, 1, stop, host);
	free(host);
	rp->interrupted = *stop != 0;
	for (i = 0; i < rp->n; i++)
		if (rp->c[i].state == PT_R_PLANNED)
			judge(rp, &rp->c[i]);
	for (i = 0; i < rp->nconns; i++) {
		size_t k = rp->conns[i].first, end = k + rp->conns[i].n;

		while (k < end && !rp->c[k].r[0].done)
			k++;
		rp->conns_sent += k < end;
	}
	/* sending and comparing */
	rp->secs = (pt_now_mono_ns() - t0) / 1e9;
	return 0;
}

static void result_free(struct pt_rresult *r)
{
	size_t i;

	for (i = 0; i < r->nfields; i++) {
		free(r->fields[i].name);
		free(r->fields[i].value);
	}
	free(r->fields);
	free(r->body);
}

void pt_replay_free(struct pt_replay *rp)
{
	size_t i, k;

	for (i = 0; i < rp->n; i++) {
		struct pt_rcase *c = &rp->c[i];

		free(c->name);
		result_free(&c->r[0]);
		result_free(&c->r[1]);
		pt_diffs_free(&c->diffs);
		for (k = 0; k < c->nlearned; k++)
			free(c->learned[k]);
		free(c->learned);
	}
	free(rp->c);
	free(rp->conns);
	memset(rp, 0, sizeof(*rp));
}
