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
#include <stddef.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "base/common.h"
#include "replay/replay.h"
#include "replay/spool.h"

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


static const char *conn_skip(const struct pt_xconn *xc)
{
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
		return NULL;
	}
}

static char *case_name(const struct pt_exchange *x)
{
	char *s;

	if (asprintf(&s, "%s %s", x->req.method, x->req.target) < 0)
		pt_oom();
	return s;
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

/* A filter on what requests say leaves out a connection that has none
 * to say it. */
static bool request_filters(const struct pt_replay_opts *o)
{
	size_t i;

	for (i = 0; i < o->nfilters; i++)
		if (o->filters[i].key != PT_F_PORT)
			return true;
	return false;
}

/* ---- the spool, and the threads that send from it ---- */


/* A captured connection as the replay knows it. */
struct rconn {
	uint64_t id;
	struct rconn *hnext;		/* in sp->tab */
	struct rconn *qnext;		/* in the queue of connections to send,
					 * or of second runs */
	uint64_t first, head, tail;	/* its requests in the spool */
	size_t seq;			/* cases so far */
	size_t raw_before;		/* not HTTP, before its first HTTP one */
	char *const *kkeys;		/* a Keploy test's noise keys */
	size_t nkkeys;
	char ep[64];			/* the client's end */
	bool decided, dead;		/* its fate as a whole: left out */
	bool http;			/* an HTTP exchange seen */
	bool queued;			/* a request planned: in the queue */
	bool in_tab, ended;		/* the reader still has it, or is done */
	bool finished;			/* the sender is done with it */
	bool planned;			/* a request is to go out on it */
	bool sent;			/* a request went out on it */
	uint64_t first_ns;		/* when its first run began */
};

/* --learn-noise: a connection's second run begins this long after its
 * first did, at least, so that times to the second differ between them */
#define LEARN_GAP_NS	1000000000ull

struct pt_rspool {
	struct pt_replay *rp;
	pthread_mutex_t mu;
	pthread_cond_t work;		/* senders: a request, an end */
	pthread_cond_t room;		/* the reader: requests went out */
	struct pt_rfile f;
	struct rconn **tab;		/* by id, the reader's */
	size_t tabsz;
	struct rconn *qhead, *qtail;	/* connections not yet taken */
	struct rconn *lhead, *ltail;	/* second runs, in order of the first */
	uint64_t *res;			/* each case's result in the spool */
	size_t cap;
	uint64_t ahead;			/* request bytes waiting */
	uint64_t last_ts, at;		/* the schedule */
	pthread_t *t;
	int nthreads, waiting;		/* senders, those waiting to be fed */
	bool done;			/* the reader is done */
	volatile int err;		/* the spool failed: an errno */
	volatile int *stop;
	uint64_t t0;			/* CLOCK_MONOTONIC ns at the start */
	char *host;			/* authority of --to, for --rewrite-host */
};

/* The queues of connections: first runs, second runs. Under mu. */
static void enqueue(struct rconn **head, struct rconn **tail,
		    struct rconn *cn)
{
	cn->qnext = NULL;
	if (*tail)
		(*tail)->qnext = cn;
	else
		*head = cn;
	*tail = cn;
}

static struct rconn *dequeue(struct rconn **head, struct rconn **tail)
{
	struct rconn *cn = *head;

	*head = cn->qnext;
	if (!*head)
		*tail = NULL;
	cn->qnext = NULL;
	return cn;
}

static bool halted(const struct pt_rspool *r)
{
	return *r->stop || r->err;
}

/* ---- sending ---- */

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

static struct curl_slist *headers_of(const struct pt_rspool *r,
				     const struct pt_http_msg *req)
{
	const struct pt_replay_opts *o = r->rp->o;
	struct curl_slist *l = NULL, *t;
	size_t i;
	char *s;

	for (i = 0; i < req->nfields; i++) {
		const struct pt_http_field *f = &req->fields[i];

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
	if (!pt_http_field(req, "Accept") && !set_by_user(o, "Accept"))
		l = curl_slist_append(l, "Accept:");
	if (!pt_http_field(req, "Content-Type") &&
	    !set_by_user(o, "Content-Type"))
		l = curl_slist_append(l, "Content-Type:");
	l = curl_slist_append(l, "Expect:");
	if (r->host && !set_by_user(o, "Host")) {
		if (asprintf(&s, "Host: %s", r->host) < 0)
			pt_oom();
		l = curl_slist_append(l, s);
		free(s);
	} else if (!r->host && !pt_http_field(req, "Host") &&
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
	return halted(arg);
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

static void send_one(struct pt_rspool *r, CURL *h, struct pt_rcase *c, int pass)
{
	const struct pt_replay_opts *o = r->rp->o;
	const struct pt_http_msg *req = &c->req;
	struct pt_rresult *res = &c->r[pass];
	struct curl_slist *hdrs = headers_of(r, req);
	char *target = target_of(o->to_prefix, req->target);
	char errbuf[CURL_ERROR_SIZE];
	uint64_t t;
	long code = 0;
	CURLcode rc;

	curl_easy_setopt(h, CURLOPT_URL, o->to_base);
	curl_easy_setopt(h, CURLOPT_REQUEST_TARGET, target);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, req->minor == 0 ?
			 CURL_HTTP_VERSION_1_0 : CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_NOBODY, (long)!strcmp(req->method, "HEAD"));
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, !strcmp(req->method, "HEAD") ?
			 NULL : req->method);
	if (req->body_len || !is_read_method(req->method)) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req->body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body_len ?
				 (const char *)req->body : "");
	} else if (strcmp(req->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
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
				 halted(r) ? "interrupted" : errbuf[0] ? errbuf :
				 curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		res->status = (int)code;
	}
	curl_slist_free_all(hdrs);
	free(target);
}

static void wait_until(const struct pt_rspool *r, uint64_t at)
{
	while (!halted(r)) {
		uint64_t now = pt_now_mono_ns() - r->t0;
		struct timespec ts;

		if (now >= at)
			return;
		at - now > 100000000 ? (ts = (struct timespec){ 0, 100000000 }) :
			(ts = (struct timespec){ 0, (long)(at - now) });
		nanosleep(&ts, NULL);
	}
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

/* Judge c: what came back against what was recorded. */
static void judge(const struct pt_replay_opts *o, struct pt_rcase *c,
		  char *const *kkeys, size_t nkkeys)
{
	struct pt_noise nz = o->noise;
	struct pt_resp want, got;
	struct pt_body fw, fg;

	if (!c->r[0].done)
		return;		/* interrupted before it */
	if (c->r[0].err[0]) {
		c->state = PT_R_ERROR;
		return;
	}
	if (o->learn_noise)
		learn(c);
	decoded(c->resp.fields, c->resp.nfields, c->resp.body,
		c->resp.body_len, c->resp.status, &want, &fw);
	result_resp(&c->r[0], &got, &fg);
	nz.kkeys = kkeys;
	nz.nkkeys = nkkeys;
	pt_resp_diff(&nz, &want, &got, c->learned, c->nlearned, &c->diffs);
	pt_body_free(&fw);
	pt_body_free(&fg);
	c->state = c->diffs.n ? PT_R_FAIL : PT_R_PASS;
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


/* ---- planning, as the capture is read ---- */

/* A spool error: said once; everything stops. Under mu. */
static void spool_failed(struct pt_rspool *sp, int err)
{
	if (!err || sp->err)
		return;
	pt_err("replay: the file in %s that keeps requests and results: %s (set TMPDIR)",
	       sp->f.dir, strerror(err));
	sp->err = err;
	pthread_cond_broadcast(&sp->work);
	pthread_cond_broadcast(&sp->room);
}

/* Wait on cv at most 100 ms (Ctrl-C is only a flag). Under mu. */
static void wait_a_little(struct pt_rspool *sp, pthread_cond_t *cv)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 100000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(cv, &sp->mu, &ts);
}

/* A sender waits for the reader. Under mu. */
static void wait_fed(struct pt_rspool *sp)
{
	sp->waiting++;
	pthread_cond_signal(&sp->room);
	wait_a_little(sp, &sp->work);
	sp->waiting--;
}

static struct rconn **slot(struct pt_rspool *sp, uint64_t id)
{
	struct rconn **p = &sp->tab[(id * 0x9e3779b97f4a7c15ull) >> 48 &
				    (sp->tabsz - 1)];

	while (*p && (*p)->id != id)
		p = &(*p)->hnext;
	return p;
}

static struct rconn *conn_of(struct pt_rspool *sp, const struct pt_xconn *xc)
{
	struct rconn **p = slot(sp, xc->conn->id), *cn;

	if (*p)
		return *p;
	cn = pt_xcalloc(1, sizeof(*cn));
	cn->id = xc->conn->id;
	cn->in_tab = true;
	pt_fmt_ep(cn->ep, sizeof(cn->ep), &xc->conn->open.t, false);
	*p = cn;
	return cn;
}

/* A case's result (the first, or a later one) goes into the spool. Under
 * mu. */
static void put_result(struct pt_rspool *sp, size_t idx,
		       const struct pt_rcase *c)
{
	struct pt_rbuf b = {};
	uint64_t off;

	pt_rbuf_case(&b, c);
	if (b.n > UINT32_MAX) {
		/* diffs are short: this is not a result */
		pt_rbuf_free(&b);
		spool_failed(sp, EFBIG);
		return;
	}
	off = pt_rfile_reserve(&sp->f, b.n);
	spool_failed(sp, pt_rfile_put(&sp->f, off, NULL, &b));
	sp->res[idx] = off;
	pt_rbuf_free(&b);
}

/* A new case, numbered in the order planned. Under mu. */
static size_t new_case(struct pt_rspool *sp)
{
	struct pt_replay *rp = sp->rp;

	if (rp->n == sp->cap) {
		sp->cap = sp->cap ? sp->cap * 2 : 1024;
		sp->res = pt_xrealloc(sp->res, sp->cap, sizeof(*sp->res));
	}
	sp->res[rp->n] = 0;
	return rp->n++;
}

static void count_plan(struct pt_replay *rp, enum pt_rstate s)
{
	rp->planned += s == PT_R_PLANNED;
	rp->skipped += s == PT_R_SKIPPED;
	rp->filtered += s == PT_R_FILTERED;
}

/* The connection as a whole is left out, and why. Under mu. */
static void skip_conn(struct pt_rspool *sp, struct rconn *cn,
		      const char *why, enum pt_rstate s)
{
	struct pt_rcase c = { .conn_id = cn->id, .why = (char *)why,
			      .state = s, .recorded_status = -1 };
	size_t idx = new_case(sp);

	if (asprintf(&c.name, "connection from %s", cn->ep) < 0)
		pt_oom();
	count_plan(sp->rp, s);
	put_result(sp, idx, &c);
	free(c.name);
}

/* Its fate as a whole, told by its first exchange. Under mu. */
static void decide_conn(struct pt_rspool *sp, struct rconn *cn,
			const struct pt_xconn *xc)
{
	const struct pt_replay_opts *o = sp->rp->o;
	const char *why = conn_skip(xc);

	cn->decided = true;
	if (port_filtered(o, xc)) {
		skip_conn(sp, cn, "left out by --filter", PT_R_FILTERED);
		cn->dead = true;
	} else if (why) {
		skip_conn(sp, cn, why, request_filters(o) ? PT_R_FILTERED :
			  PT_R_SKIPPED);
		cn->dead = true;
	}
}

/* When a planned request goes out, from the run's start: as recorded
 * (--speed), evenly (--rate) or at once. Under mu. */
static uint64_t schedule(struct pt_rspool *sp, uint64_t ts)
{
	const struct pt_replay_opts *o = sp->rp->o;
	size_t k = sp->rp->planned;

	if (o->rate > 0) {
		sp->at = (uint64_t)(k * 1e9 / o->rate);
	} else if (o->speed > 0 && k) {
		uint64_t gap = ts > sp->last_ts ? ts - sp->last_ts : 0;

		if (o->max_gap_ns && gap > o->max_gap_ns)
			gap = o->max_gap_ns;
		sp->at += (uint64_t)(gap / o->speed);
	}
	sp->last_ts = ts;
	return sp->at;
}

/* A planned request, with its recorded response, to the spool and its
 * connection's list; the connection is queued to be sent. Under mu. */
static void spool_request(struct pt_rspool *sp, struct rconn *cn, size_t idx,
			  const struct pt_rcase *c, const struct pt_exchange *x)
{
	struct pt_rbuf b = {};
	uint64_t off, len;
	int err;

	pt_rbuf_u64(&b, idx);
	pt_rbuf_case(&b, c);
	pt_rbuf_msg(&b, &x->req);
	pt_rbuf_msg(&b, &x->resp);
	if (b.n > UINT32_MAX) {
		pt_rbuf_free(&b);
		spool_failed(sp, EFBIG);
		return;
	}
	len = sizeof(struct pt_rhdr) + b.n;
	off = pt_rfile_reserve(&sp->f, b.n);
	err = pt_rfile_put(&sp->f, off, NULL, &b);
	if (!err && cn->tail)
		err = pt_rfile_set(&sp->f, cn->tail,
				   offsetof(struct pt_rhdr, next), off);
	pt_rbuf_free(&b);
	if (err) {
		spool_failed(sp, err);
		return;
	}
	if (!cn->first)
		cn->first = off;
	if (!cn->head)
		cn->head = off;
	cn->tail = off;
	sp->ahead += len;
	if (!cn->queued) {
		cn->queued = true;
		enqueue(&sp->qhead, &sp->qtail, cn);
	}
	pthread_cond_broadcast(&sp->work);
}

/* One exchange of cn becomes a case. Under mu. */
static void plan_x(struct pt_rspool *sp, struct rconn *cn,
		   const struct pt_xconn *xc, const struct pt_exchange *x)
{
	const struct pt_replay_opts *o = sp->rp->o;
	struct pt_rcase c = { .conn_id = cn->id, .seq = ++cn->seq,
			      .recorded_status = -1 };
	size_t idx = new_case(sp);
	bool filtered;

	c.name = x->kind == PT_X_HTTP && x->has_req ? case_name(x) :
		 pt_xstrdup("(raw bytes)");
	c.why = (char *)why_not(o, xc, x, &filtered);
	c.state = !c.why ? PT_R_PLANNED : filtered ? PT_R_FILTERED :
		  PT_R_SKIPPED;
	if (x->kind == PT_X_HTTP && x->has_resp)
		c.recorded_status = x->resp.status;
	if (c.state == PT_R_PLANNED) {
		c.at_ns = schedule(sp, x->req_span.ts);
		sp->rp->nconns += !cn->planned;
		cn->planned = true;
	}
	count_plan(sp->rp, c.state);
	put_result(sp, idx, &c);
	if (c.state == PT_R_PLANNED && !o->dry_run)
		spool_request(sp, cn, idx, &c, x);
	free(c.name);
}

int pt_replay_x(struct pt_replay *rp, const struct pt_xconn *xc,
		const struct pt_exchange *x, char *const *kkeys, size_t nkkeys)
{
	struct pt_rspool *sp = rp->sp;
	struct rconn *cn;
	size_t i;

	if (!xc->inbound)
		return halted(sp);
	pthread_mutex_lock(&sp->mu);
	cn = conn_of(sp, xc);
	cn->kkeys = kkeys;
	cn->nkkeys = nkkeys;
	if (!cn->decided)
		decide_conn(sp, cn, xc);
	if (cn->dead || (x->kind != PT_X_HTTP && !x->nturns))
		goto out;
	if (x->kind != PT_X_HTTP && !cn->http) {
		/* said as a whole if no HTTP comes after */
		cn->raw_before++;
		goto out;
	}
	if (x->kind == PT_X_HTTP && !cn->http) {
		struct pt_exchange raw = { .kind = PT_X_RAW, .nturns = 1 };

		cn->http = true;
		for (i = 0; i < cn->raw_before; i++)
			plan_x(sp, cn, xc, &raw);
	}
	plan_x(sp, cn, xc, x);
	/* not too far ahead of the senders, unless they all wait for it */
	while (sp->ahead > PT_REPLAY_AHEAD && sp->waiting < sp->nthreads &&
	       !halted(sp))
		wait_a_little(sp, &sp->room);
out:
	pthread_mutex_unlock(&sp->mu);
	return halted(sp);
}

static void conn_free(struct rconn *cn)
{
	free(cn);
}

void pt_replay_conn_done(struct pt_replay *rp, const struct pt_xconn *xc)
{
	struct pt_rspool *sp = rp->sp;
	const struct pt_replay_opts *o = rp->o;
	struct rconn **p, *cn;

	pthread_mutex_lock(&sp->mu);
	p = slot(sp, xc->conn->id);
	cn = *p;
	if (!cn && xc->inbound && (!xc->assembled || xc->proto != PT_XP_NONE))
		cn = conn_of(sp, xc), p = slot(sp, xc->conn->id);
	if (!cn)
		goto out;
	if (!cn->decided)
		decide_conn(sp, cn, xc);
	if (!cn->dead && !xc->assembled)
		skip_conn(sp, cn, cn->http ?
			  "too large to assemble (--max-stream): the rest of it is left out" :
			  "too large to assemble (--max-stream)", PT_R_SKIPPED);
	else if (!cn->dead && !cn->http && cn->raw_before)
		skip_conn(sp, cn, "no HTTP request from its start: picked up mid-stream",
			  request_filters(o) ? PT_R_FILTERED : PT_R_SKIPPED);
	*p = cn->hnext;
	cn->in_tab = false;
	cn->ended = true;
	if (!cn->queued || cn->finished)
		conn_free(cn);
	pthread_cond_broadcast(&sp->work);
out:
	pthread_mutex_unlock(&sp->mu);
}

/* The request at off back from the spool: c ready to send; *next, the
 * connection's next; *r0, its first run's response. 0, or an errno. */
static int get_request(struct pt_rspool *sp, uint64_t off, struct pt_rcase *c,
		       size_t *idx, struct pt_rhdr *h)
{
	struct pt_rbuf b = {};
	int err = pt_rfile_get(&sp->f, off, h, &b);

	if (!err) {
		*idx = pt_rbuf_get_u64(&b);
		pt_rbuf_get_case(&b, c);
		pt_rbuf_get_msg(&b, &c->req, true);
		pt_rbuf_get_msg(&b, &c->resp, false);
		if (b.bad || *idx >= sp->rp->n)
			err = EIO;
	}
	pt_rbuf_free(&b);
	return err;
}

static void case_free(struct pt_rcase *c)
{
	size_t k;

	free(c->name);
	free(c->why);
	pt_http_msg_free(&c->req);
	pt_http_msg_free(&c->resp);
	result_free(&c->r[0]);
	result_free(&c->r[1]);
	pt_diffs_free(&c->diffs);
	for (k = 0; k < c->nlearned; k++)
		free(c->learned[k]);
	free(c->learned);
	memset(c, 0, sizeof(*c));
}

/* c is judged: counted, and its result replaces the planned one. Under
 * mu. */
static void count_judged(struct pt_rspool *sp, size_t idx,
			 const struct pt_rcase *c)
{
	struct pt_replay *rp = sp->rp;

	if (c->state == PT_R_PLANNED)
		return;		/* interrupted before it went out */
	rp->pass += c->state == PT_R_PASS;
	rp->fail += c->state == PT_R_FAIL;
	rp->errors += c->state == PT_R_ERROR;
	rp->noise_auto += c->diffs.noise_auto;
	rp->noise_rule += c->diffs.noise_rule;
	rp->noise_learned += c->diffs.noise_learned;
	put_result(sp, idx, c);
}

static CURL *handle(const struct pt_rspool *sp)
{
	const struct pt_replay_opts *o = sp->rp->o;
	CURL *h = curl_easy_init();

	if (!h)
		pt_oom();
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(o->timeout_ns / 1000000));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, sp);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (o->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return h;
}

/* The first run of cn: its requests as the reader plans them, each judged
 * as its response comes (with --learn-noise kept for the second run). */
static void first_run(struct pt_rspool *sp, struct rconn *cn, CURL **h)
{
	const struct pt_replay_opts *o = sp->rp->o;

	for (;;) {
		struct pt_rcase c = {};
		struct pt_rhdr hd;
		struct pt_rbuf b = {};
		uint64_t off;
		size_t idx;
		int err;

		pthread_mutex_lock(&sp->mu);
		while (!cn->head && !cn->ended && !halted(sp))
			wait_fed(sp);
		if (!cn->head || halted(sp)) {
			pthread_mutex_unlock(&sp->mu);
			return;
		}
		off = cn->head;
		err = get_request(sp, off, &c, &idx, &hd);
		if (err) {
			spool_failed(sp, err);
			pthread_mutex_unlock(&sp->mu);
			case_free(&c);
			return;
		}
		cn->head = hd.next;
		sp->ahead -= sizeof(hd) + hd.len;
		pthread_cond_signal(&sp->room);
		pthread_mutex_unlock(&sp->mu);

		if (!*h)
			*h = handle(sp);
		wait_until(sp, c.at_ns);
		if (!halted(sp)) {
			send_one(sp, *h, &c, 0);
			cn->sent = true;
		}
		if (!o->learn_noise && c.r[0].done)
			judge(o, &c, cn->kkeys, cn->nkkeys);
		pthread_mutex_lock(&sp->mu);
		if (!o->learn_noise) {
			count_judged(sp, idx, &c);
		} else if (c.r[0].done) {
			pt_rbuf_result(&b, &c.r[0]);
			if (b.n > UINT32_MAX) {
				spool_failed(sp, EFBIG);
			} else {
				uint64_t r0 = pt_rfile_reserve(&sp->f, b.n);

				err = pt_rfile_put(&sp->f, r0, NULL, &b);
				spool_failed(sp, err ? err :
					     pt_rfile_set(&sp->f, off,
							  offsetof(struct pt_rhdr, r0),
							  r0));
			}
		}
		pthread_mutex_unlock(&sp->mu);
		pt_rbuf_free(&b);
		case_free(&c);
	}
}

/* --learn-noise: cn's requests again, once the first run of all of them
 * is in; each judged against both. Once halted (Ctrl-C), nothing more is
 * sent, and what the first run got is judged alone. */
static void second_run(struct pt_rspool *sp, struct rconn *cn, CURL *h)
{
	const struct pt_replay_opts *o = sp->rp->o;
	uint64_t off = cn->first;

	while (off && !sp->err) {
		struct pt_rcase c = {};
		struct pt_rhdr hd;
		struct pt_rbuf b = {};
		size_t idx;
		int err;

		pthread_mutex_lock(&sp->mu);
		err = get_request(sp, off, &c, &idx, &hd);
		if (!err && hd.r0) {
			err = pt_rfile_get(&sp->f, hd.r0, NULL, &b);
			if (!err) {
				result_free(&c.r[0]);	/* the planned one's */
				pt_rbuf_get_result(&b, &c.r[0]);
				err = b.bad ? EIO : 0;
			}
		}
		spool_failed(sp, err);
		pthread_mutex_unlock(&sp->mu);
		pt_rbuf_free(&b);
		if (!err && hd.r0) {
			if (h && !halted(sp) && !c.r[0].err[0])
				send_one(sp, h, &c, 1);
			/* a second run cut short by Ctrl-C teaches nothing,
			 * and the first is judged all the same */
			judge(o, &c, cn->kkeys, cn->nkkeys);
			pthread_mutex_lock(&sp->mu);
			count_judged(sp, idx, &c);
			pthread_mutex_unlock(&sp->mu);
		}
		case_free(&c);
		off = err ? 0 : hd.next;
	}
}

/* cn's first run (with --learn-noise, it then queues its second behind
 * the first runs of others until LEARN_GAP_NS have passed; at once,
 * sending nothing, once halted), or, second, that second run. */
static void replay_conn(struct pt_rspool *sp, struct rconn *cn, bool second)
{
	CURL *h = NULL;

	if (!second) {
		cn->first_ns = pt_now_mono_ns();
		first_run(sp, cn, &h);
		if (h)
			curl_easy_cleanup(h);
		h = NULL;
		if (sp->rp->o->learn_noise) {
			pthread_mutex_lock(&sp->mu);
			enqueue(&sp->lhead, &sp->ltail, cn);
			pthread_cond_broadcast(&sp->work);
			pthread_mutex_unlock(&sp->mu);
			return;
		}
	} else {
		if (!halted(sp))
			h = handle(sp);
		second_run(sp, cn, h);
		if (h)
			curl_easy_cleanup(h);
	}
	pthread_mutex_lock(&sp->mu);
	sp->rp->conns_sent += cn->sent;
	cn->finished = true;
	if (!cn->in_tab)
		conn_free(cn);
	pthread_mutex_unlock(&sp->mu);
}

static void *worker(void *arg)
{
	struct pt_rspool *sp = arg;

	pthread_mutex_lock(&sp->mu);
	for (;;) {
		struct rconn *cn;
		bool due;

		for (;;) {
			/* a second run that is due (or, halted, any: it
			 * judges what the first got), else a first run */
			due = sp->lhead && (halted(sp) ||
					    pt_now_mono_ns() >=
					    sp->lhead->first_ns + LEARN_GAP_NS);
			if (due || (sp->qhead && !halted(sp)))
				break;
			if (!sp->lhead && (sp->done || halted(sp)))
				break;
			wait_fed(sp);
		}
		if (due)
			cn = dequeue(&sp->lhead, &sp->ltail);
		else if (sp->qhead && !halted(sp))
			cn = dequeue(&sp->qhead, &sp->qtail);
		else
			break;
		pthread_mutex_unlock(&sp->mu);
		replay_conn(sp, cn, due);
		pthread_mutex_lock(&sp->mu);
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

int pt_replay_begin(struct pt_replay *rp, const struct pt_replay_opts *o,
		    volatile int *stop)
{
	struct pt_rspool *sp = pt_xcalloc(1, sizeof(*sp));
	int i, err;

	memset(rp, 0, sizeof(*rp));
	rp->o = o;
	rp->sp = sp;
	sp->rp = rp;
	sp->stop = stop;
	sp->f.fd = -1;
	pthread_mutex_init(&sp->mu, NULL);
	pthread_cond_init(&sp->work, NULL);
	pthread_cond_init(&sp->room, NULL);
	sp->tabsz = 1 << 16;
	sp->tab = pt_xcalloc(sp->tabsz, sizeof(*sp->tab));
	err = pt_rfile_open(&sp->f, "replay", "the requests and results");
	if (err)
		return err;
	if (o->rewrite_host)
		sp->host = pt_xstrdup(o->to_base + (o->to_base[4] == 's' ? 8 : 7));
	sp->t0 = pt_now_mono_ns();
	if (o->dry_run)
		return 0;
	sp->t = pt_xcalloc(o->concurrency + 1, sizeof(*sp->t));
	for (i = 0; i < o->concurrency; i++) {
		err = pthread_create(&sp->t[i], NULL, worker, sp);
		if (err) {
			pt_err("replay: cannot start a thread: %s", strerror(err));
			break;
		}
		sp->nthreads++;
	}
	if (!sp->nthreads) {
		pt_replay_end(rp);
		return -err;
	}
	return 0;
}

void pt_replay_end(struct pt_replay *rp)
{
	struct pt_rspool *sp = rp->sp;
	int i;

	pthread_mutex_lock(&sp->mu);
	sp->done = true;
	pthread_cond_broadcast(&sp->work);
	pthread_mutex_unlock(&sp->mu);
	for (i = 0; i < sp->nthreads; i++)
		pthread_join(sp->t[i], NULL);
	sp->nthreads = 0;
	rp->interrupted = *sp->stop != 0;
	rp->spooled = sp->f.end;
	rp->secs = (pt_now_mono_ns() - sp->t0) / 1e9;
}

void pt_replay_case(const struct pt_replay *rp, size_t i, struct pt_rcase *c)
{
	struct pt_rspool *sp = rp->sp;
	struct pt_rbuf b = {};
	int err = pt_rfile_get(&sp->f, sp->res[i], NULL, &b);

	if (!err) {
		pt_rbuf_get_case(&b, c);
		err = b.bad ? EIO : 0;
	}
	pt_rbuf_free(&b);
	if (err) {
		/* said once; the report is not written whole */
		pthread_mutex_lock(&sp->mu);
		spool_failed(sp, err);
		pthread_mutex_unlock(&sp->mu);
	}
}

void pt_rcase_free(struct pt_rcase *c)
{
	case_free(c);
}

int pt_replay_error(const struct pt_replay *rp)
{
	return rp->sp ? rp->sp->err : 0;
}

void pt_replay_free(struct pt_replay *rp)
{
	struct pt_rspool *sp = rp->sp;
	struct rconn *cn, *next;
	size_t i;

	if (!sp)
		return;
	/* what no sender took, then what the reader still had */
	for (cn = sp->qhead; cn; cn = next) {
		next = cn->qnext;
		if (!cn->in_tab)
			conn_free(cn);
	}
	for (i = 0; i < sp->tabsz; i++)
		for (cn = sp->tab[i]; cn; cn = next) {
			next = cn->hnext;
			conn_free(cn);
		}
	free(sp->tab);
	free(sp->res);
	free(sp->t);
	free(sp->host);
	pt_rfile_close(&sp->f);
	pthread_mutex_destroy(&sp->mu);
	pthread_cond_destroy(&sp->work);
	pthread_cond_destroy(&sp->room);
	free(sp);
	memset(rp, 0, sizeof(*rp));
}
