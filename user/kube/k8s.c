// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kube-apiserver client: credentials, requests, list + watch loops. */
#include <curl/curl.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>
#include "base/common.h"
#include "base/jread.h"
#include "kube/k8s.h"

#define SA_DIR	"/var/run/secrets/kubernetes.io/serviceaccount"

/* ---- kubeconfig ---- */

static yaml_node_t *ymap_get(yaml_document_t *d, yaml_node_t *m,
			     const char *key)
{
	yaml_node_pair_t *p;

	if (!m || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);

		if (k && k->type == YAML_SCALAR_NODE &&
		    !strcmp((char *)k->data.scalar.value, key))
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

static const char *yscalar(yaml_document_t *d, yaml_node_t *m, const char *key)
{
	yaml_node_t *n = ymap_get(d, m, key);

	return n && n->type == YAML_SCALAR_NODE ?
		(const char *)n->data.scalar.value : NULL;
}

/* The "what" member of the entry of list `list` whose name is name. */
static yaml_node_t *ynamed(yaml_document_t *d, yaml_node_t *root,
			   const char *list, const char *name, const char *what)
{
	yaml_node_t *l = ymap_get(d, root, list);
	yaml_node_item_t *it;

	if (!l || l->type != YAML_SEQUENCE_NODE || !name)
		return NULL;
	for (it = l->data.sequence.items.start; it < l->data.sequence.items.top;
	     it++) {
		yaml_node_t *e = yaml_document_get_node(d, *it);
		const char *n = yscalar(d, e, "name");

		if (n && !strcmp(n, name))
			return ymap_get(d, e, what);
	}
	return NULL;
}

/* A file named in a kubeconfig is relative to the kubeconfig's folder. */
static char *kc_path(const char *kubeconfig, const char *p)
{
	char dir[PATH_MAX], *out;

	if (!p || p[0] == '/')
		return p ? pt_xstrdup(p) : NULL;
	snprintf(dir, sizeof(dir), "%s", kubeconfig);
	if (asprintf(&out, "%s/%s", dirname(dir), p) < 0)
		pt_oom();
	return out;
}

static int kc_data(struct pt_kube *k, yaml_document_t *d, yaml_node_t *m,
		   const char *key, void **out, size_t *len)
{
	const char *v = yscalar(d, m, key);

	if (!v)
		return 0;
	if (pt_base64_decode(v, out, len)) {
		pt_err("%s: %s is not base64", k->source, key);
		return -EINVAL;
	}
	return 0;
}

static int kubeconfig_load(struct pt_kube *k, const char *path)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root, *ctx, *cl, *user;
	const struct { char **p; const char *what; } files[] = {
		{ &k->ca_file, "certificate-authority" },
		{ &k->cert_file, "client-certificate" },
		{ &k->key_file, "client-key" },
		{ &k->token_file, "tokenFile" },
	};
	const char *cur, *v;
	size_t i;
	FILE *f;
	int err = -EINVAL;

	f = fopen(path, "r");
	if (!f) {
		err = -errno;
		pt_err("--kubeconfig %s: %s", path, strerror(errno));
		return err;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		pt_err("--kubeconfig %s: not YAML (line %zu: %s)", path,
		       parser.problem_mark.line + 1,
		       parser.problem ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		fclose(f);
		return -EINVAL;
	}
	root = yaml_document_get_root_node(&doc);
	cur = yscalar(&doc, root, "current-context");
	ctx = ynamed(&doc, root, "contexts", cur, "context");
	if (!ctx) {
		pt_err("--kubeconfig %s: %s", path, cur ?
		       "current-context names no context" :
		       "no current-context");
		goto out;
	}
	cl = ynamed(&doc, root, "clusters", yscalar(&doc, ctx, "cluster"),
		    "cluster");
	user = ynamed(&doc, root, "users", yscalar(&doc, ctx, "user"), "user");
	v = yscalar(&doc, cl, "server");
	if (!v || (strncmp(v, "https://", 8) && strncmp(v, "http://", 7))) {
		pt_err("--kubeconfig %s: context %s has no http(s) server",
		       path, cur);
		goto out;
	}
	k->server = pt_xstrdup(v);
	while (k->server[0] && k->server[strlen(k->server) - 1] == '/')
		k->server[strlen(k->server) - 1] = 0;
	k->ca_file = kc_path(path, yscalar(&doc, cl, "certificate-authority"));
	v = yscalar(&doc, cl, "insecure-skip-tls-verify");
	k->insecure = v && !strcmp(v, "true");
	if ((v = yscalar(&doc, user, "token")))
		k->token = pt_xstrdup(v);
	k->token_file = kc_path(path, yscalar(&doc, user, "tokenFile"));
	k->cert_file = kc_path(path, yscalar(&doc, user, "client-certificate"));
	k->key_file = kc_path(path, yscalar(&doc, user, "client-key"));
	if (ymap_get(&doc, user, "exec") || ymap_get(&doc, user, "auth-provider")) {
		pt_err("--kubeconfig %s: user %s uses an exec or auth-provider plugin, which podtap does not run; give it a token or a client certificate",
		       path, yscalar(&doc, ctx, "user"));
		goto out;
	}
	if (kc_data(k, &doc, cl, "certificate-authority-data", &k->ca, &k->ca_len) ||
	    kc_data(k, &doc, user, "client-certificate-data", &k->cert, &k->cert_len) ||
	    kc_data(k, &doc, user, "client-key-data", &k->key, &k->key_len))
		goto out;
	/* named once here, not at every failed request */
	for (i = 0; i < ARRAY_SIZE(files); i++)
		if (*files[i].p && access(*files[i].p, R_OK)) {
			pt_err("--kubeconfig %s: %s %s: %s", path, files[i].what,
			       *files[i].p, strerror(errno));
			goto out;
		}
	err = 0;
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	return err;
}

static int in_cluster(struct pt_kube *k)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");

	if (!host || !port) {
		pt_err("not in a pod (KUBERNETES_SERVICE_HOST/PORT unset): give --kubeconfig FILE");
		return -ENOENT;
	}
	if (access(SA_DIR "/token", R_OK)) {
		pt_err("%s/token: %s; give --kubeconfig FILE", SA_DIR,
		       strerror(errno));
		return -ENOENT;
	}
	if (asprintf(&k->server, strchr(host, ':') ? "https://[%s]:%s" :
		     "https://%s:%s", host, port) < 0)
		pt_oom();
	k->token_file = pt_xstrdup(SA_DIR "/token");
	k->ca_file = pt_xstrdup(SA_DIR "/ca.crt");
	return 0;
}

int pt_kube_config(struct pt_kube *k, const char *path)
{
	int err;

	memset(k, 0, sizeof(*k));
	k->source = pt_xstrdup(path ? path : "in-cluster service account");
	err = path ? kubeconfig_load(k, path) : in_cluster(k);
	if (err)
		pt_kube_free(k);
	return err;
}

void pt_kube_free(struct pt_kube *k)
{
	free(k->server);
	free(k->token);
	free(k->token_file);
	free(k->ca_file);
	free(k->cert_file);
	free(k->key_file);
	free(k->ca);
	free(k->cert);
	free(k->key);
	free(k->source);
	memset(k, 0, sizeof(*k));
}

/* ---- requests ---- */

static char *read_token(const struct pt_kube *k)
{
	char buf[16384];
	size_t n;
	FILE *f;

	if (!k->token_file)
		return k->token ? pt_xstrdup(k->token) : NULL;
	f = fopen(k->token_file, "r");
	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = 0;
	return pt_xstrdup(buf);
}

static CURL *kube_handle(const struct pt_kube *k, const char *path,
			 struct curl_slist **hdrs)
{
	CURL *c = curl_easy_init();
	char *url, *tok, *auth;

	if (!c)
		pt_oom();
	if (asprintf(&url, "%s%s", k->server, path) < 0)
		pt_oom();
	curl_easy_setopt(c, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "podtap/" PT_VERSION);
	if (k->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (k->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, k->ca_file);
	if (k->ca) {
		struct curl_blob b = { k->ca, k->ca_len, CURL_BLOB_COPY };

		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
	}
	if (k->cert_file)
		curl_easy_setopt(c, CURLOPT_SSLCERT, k->cert_file);
	if (k->key_file)
		curl_easy_setopt(c, CURLOPT_SSLKEY, k->key_file);
	if (k->cert) {
		struct curl_blob b = { k->cert, k->cert_len, CURL_BLOB_COPY };

		curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &b);
	}
	if (k->key) {
		struct curl_blob b = { k->key, k->key_len, CURL_BLOB_COPY };

		curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &b);
	}
	*hdrs = curl_slist_append(NULL, "Accept: application/json");
	tok = read_token(k);
	if (tok) {
		if (asprintf(&auth, "Authorization: Bearer %s", tok) < 0)
			pt_oom();
		*hdrs = curl_slist_append(*hdrs, auth);
		free(auth);
		free(tok);
	}
	return c;
}

struct membuf {
	char *p;
	size_t len, cap;
};

static size_t mem_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct membuf *m = ud;
	size_t n = size * nmemb;

	if (m->len + n + 1 > m->cap) {
		m->cap = (m->len + n + 1) * 2;
		m->p = realloc(m->p, m->cap);
		if (!m->p)
			pt_oom();
	}
	memcpy(m->p + m->len, ptr, n);
	m->len += n;
	m->p[m->len] = 0;
	return n;
}

int pt_kube_call(const struct pt_kube *k, const char *method, const char *path,
		 const char *ctype, const char *body, char **resp, long *code)
{
	struct curl_slist *h = NULL;
	struct membuf m = {};
	char ct[128];
	CURL *c = kube_handle(k, path, &h);
	CURLcode rc;

	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
		h = curl_slist_append(h, ct);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
	rc = curl_easy_perform(c);
	*code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		free(m.p);
		*resp = pt_xstrdup(curl_easy_strerror(rc));
		return -EIO;
	}
	*resp = m.p ? m.p : pt_xstrdup("");
	return 0;
}

/* ---- event queue ---- */

void pt_kqueue_init(struct pt_kqueue *q)
{
	pthread_mutex_init(&q->mu, NULL);
	q->head = NULL;
	q->tail = &q->head;
}

static void kqueue_put(struct pt_kqueue *q, int source, enum pt_kev_type t,
		       const char *obj, size_t len)
{
	struct pt_kev *e = pt_xcalloc(1, sizeof(*e));

	e->source = source;
	e->type = t;
	e->obj = pt_xcalloc(1, len + 1);
	memcpy(e->obj, obj ? obj : "", len);
	e->len = len;
	pthread_mutex_lock(&q->mu);
	*q->tail = e;
	q->tail = &e->next;
	pthread_mutex_unlock(&q->mu);
}

struct pt_kev *pt_kqueue_take(struct pt_kqueue *q)
{
	struct pt_kev *e;

	pthread_mutex_lock(&q->mu);
	e = q->head;
	q->head = NULL;
	q->tail = &q->head;
	pthread_mutex_unlock(&q->mu);
	return e;
}

void pt_kev_free(struct pt_kev *e)
{
	while (e) {
		struct pt_kev *n = e->next;

		free(e->obj);
		free(e);
		e = n;
	}
}

/* ---- list + watch ---- */

struct pt_kwatch {
	const struct pt_kube *k;
	struct pt_kwatch_cfg c;
	char *path, *fsel;
	struct pt_kqueue *q;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct pt_kwatch_stats st;	/* under mu */
	char rv[64];			/* thread only */
	bool relist;			/* thread only */
	bool progress;			/* thread only: this watch gave events */
	bool bad;			/* thread only: it ended in an error */
	struct membuf line;		/* thread only: a partial event line */
	unsigned failures;		/* thread only: in a row */
};

static bool stopping(struct pt_kwatch *w)
{
	bool s;

	pthread_mutex_lock(&w->mu);
	s = w->stop;
	pthread_mutex_unlock(&w->mu);
	return s;
}

#define STAT_ADD(w, f, n) do {			\
	pthread_mutex_lock(&(w)->mu);		\
	(w)->st.f += (n);			\
	pthread_mutex_unlock(&(w)->mu);		\
} while (0)

/* Wait up to ms, or until stopped. */
static void nap(struct pt_kwatch *w, unsigned ms)
{
	pt_nap(&w->mu, &w->cv, &w->stop, ms);
}

static void backoff(struct pt_kwatch *w)
{
	unsigned ms = 250u << (w->failures < 7 ? w->failures : 7);

	w->failures++;
	nap(w, ms > 30000 ? 30000 : ms);
}

/* Say it the first time in a row, then only with -v. */
static void complain(struct pt_kwatch *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void complain(struct pt_kwatch *w, const char *fmt, ...)
{
	char *msg;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		pt_oom();
	va_end(ap);
	if (!w->failures)
		pt_err("%s: %s (retrying)", w->c.what, msg);
	else
		pt_dbg("%s: %s", w->c.what, msg);
	free(msg);
	STAT_ADD(w, errors, 1);
}

/* The message of a metav1.Status body, for errors. */
static char *status_msg(const char *body, long code)
{
	struct pt_jr j;
	char *m = NULL, *out;

	if (!pt_jr_parse(&j, body, strlen(body))) {
		m = pt_jr_str(&j, pt_jr_get(&j, 0, "message"));
		pt_jr_free(&j);
	}
	if (asprintf(&out, "HTTP %ld%s%s", code, m ? ": " : "", m ? m : "") < 0)
		pt_oom();
	free(m);
	return out;
}

static char *escape_q(const char *s)
{
	CURL *c = curl_easy_init();
	char *e = c ? curl_easy_escape(c, s, 0) : NULL, *out;

	if (!e)
		pt_oom();
	out = pt_xstrdup(e);
	curl_free(e);
	curl_easy_cleanup(c);
	return out;
}

static int do_list(struct pt_kwatch *w)
{
	char *cont = NULL, *path, *resp, *msg;
	bool first = true;
	long code;
	int err = 0;

	do {
		struct pt_jr j;
		int items, el, k;
		char *next;

		if (asprintf(&path, "%s?limit=500%s%s%s%s", w->path,
			     w->fsel ? "&fieldSelector=" : "",
			     w->fsel ? w->fsel : "", cont ? "&continue=" : "",
			     cont ? cont : "") < 0)
			pt_oom();
		free(cont);
		cont = NULL;
		err = pt_kube_call(w->k, "GET", path, NULL, NULL, &resp, &code);
		free(path);
		if (err || code != 200) {
			msg = err ? pt_xstrdup(resp) : status_msg(resp, code);
			complain(w, "listing: %s", msg);
			free(msg);
			free(resp);
			return -EIO;
		}
		if (pt_jr_parse(&j, resp, strlen(resp))) {
			complain(w, "listing: the answer is not JSON");
			free(resp);
			return -EIO;
		}
		if (first)
			kqueue_put(w->q, w->c.source, PT_KEV_SYNC_BEGIN, NULL, 0);
		first = false;
		items = pt_jr_get(&j, 0, "items");
		pt_jr_for_each(&j, items, el, k) {
			int len;
			const char *raw = pt_jr_raw(&j, el, &len);

			kqueue_put(w->q, w->c.source, PT_KEV_ADDED, raw, len);
		}
		next = pt_jr_str(&j, pt_jr_path(&j, 0, "metadata.continue"));
		if (next && *next)
			cont = escape_q(next);
		free(next);
		next = pt_jr_str(&j, pt_jr_path(&j, 0,
					       "metadata.resourceVersion"));
		snprintf(w->rv, sizeof(w->rv), "%s", next ? next : "");
		free(next);
		pt_jr_free(&j);
		free(resp);
	} while (cont);
	kqueue_put(w->q, w->c.source, PT_KEV_SYNC_END, NULL, 0);
	pthread_mutex_lock(&w->mu);
	w->st.lists++;
	w->st.synced = true;
	pthread_mutex_unlock(&w->mu);
	return 0;
}

/* One line of a watch stream: {"type": ..., "object": {...}}. */
static void watch_line(struct pt_kwatch *w, const char *s, size_t len)
{
	static const struct { const char *name; enum pt_kev_type t; } types[] = {
		{ "ADDED", PT_KEV_ADDED }, { "MODIFIED", PT_KEV_MODIFIED },
		{ "DELETED", PT_KEV_DELETED },
	};
	struct pt_jr j;
	int ty, obj, olen;
	const char *raw;
	char *rv;
	size_t i;

	if (pt_jr_parse(&j, s, len)) {
		complain(w, "watch: an event that is not JSON; relisting");
		w->relist = w->bad = true;
		return;
	}
	ty = pt_jr_get(&j, 0, "type");
	obj = pt_jr_get(&j, 0, "object");
	if (pt_jr_streq(&j, ty, "ERROR")) {
		uint64_t code = 0;

		pt_jr_u64(&j, pt_jr_get(&j, obj, "code"), &code);
		if (code == 410) {
			pt_dbg("%s: watch expired (410 Gone); relisting",
			       w->c.what);
			STAT_ADD(w, expired, 1);
		} else {
			char *m = pt_jr_str(&j, pt_jr_get(&j, obj, "message"));

			complain(w, "watch error %llu: %s; relisting",
				 (unsigned long long)code, m ? m : "");
			free(m);
			w->bad = true;
		}
		w->relist = true;
		goto out;
	}
	w->progress = true;	/* an event or a bookmark */
	rv = pt_jr_str(&j, pt_jr_path(&j, obj, "metadata.resourceVersion"));
	if (rv && *rv)
		snprintf(w->rv, sizeof(w->rv), "%s", rv);
	free(rv);
	raw = pt_jr_raw(&j, obj, &olen);
	for (i = 0; raw && i < ARRAY_SIZE(types); i++)
		if (pt_jr_streq(&j, ty, types[i].name)) {
			kqueue_put(w->q, w->c.source, types[i].t, raw, olen);
			STAT_ADD(w, events, 1);
		}
	/* BOOKMARK: only its resourceVersion matters */
out:
	pt_jr_free(&j);
}

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct pt_kwatch *w = ud;
	size_t n = size * nmemb, start = 0, i;
	char *nl;

	mem_write(ptr, size, nmemb, &w->line);
	while (!w->relist && (nl = memchr(w->line.p + start, '\n',
					  w->line.len - start))) {
		i = (size_t)(nl - w->line.p);
		if (i > start)
			watch_line(w, w->line.p + start, i - start);
		start = i + 1;
	}
	memmove(w->line.p, w->line.p + start, w->line.len - start);
	w->line.len -= start;
	if (w->line.len > (64u << 20)) {
		complain(w, "watch: an event over 64 MiB; relisting");
		w->relist = w->bad = true;
	}
	if (w->relist)
		return 0;	/* ends the request */
	return n;
}

static int watch_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c,
			  curl_off_t d)
{
	return stopping(ud);
}

static void do_watch(struct pt_kwatch *w)
{
	struct curl_slist *h = NULL;
	bool healthy;
	uint64_t t0;
	char *path;
	CURL *c;
	CURLcode rc;
	long code = 0;

	if (asprintf(&path, "%s?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%u%s%s",
		     w->path, w->rv, w->c.timeout_s ? w->c.timeout_s : 300,
		     w->fsel ? "&fieldSelector=" : "", w->fsel ? w->fsel : "") < 0)
		pt_oom();
	c = kube_handle(w->k, path, &h);
	free(path);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, watch_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
	/* a stream silent for this long is dead (bookmarks come each minute) */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 150L);
	w->line.len = 0;
	w->progress = w->bad = false;
	t0 = pt_now_mono_ns();
	STAT_ADD(w, watches, 1);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (stopping(w))
		return;
	/* a watch that gave nothing and ended soon was no watch at all */
	healthy = !w->bad && (w->progress || pt_now_mono_ns() - t0 > 5000000000ull);
	if (code == 410) {
		STAT_ADD(w, expired, 1);
		w->relist = true;
	} else if (!w->relist && code != 200) {
		complain(w, "watch: %s", rc != CURLE_OK ?
			 curl_easy_strerror(rc) : "unexpected HTTP status");
		healthy = false;
	} else if (!w->relist && !healthy) {
		complain(w, "watch: the stream ended at once%s%s",
			 rc != CURLE_OK ? ": " : "",
			 rc != CURLE_OK ? curl_easy_strerror(rc) : "");
	}
	if (healthy) {
		w->failures = 0;	/* go on from rv */
		return;
	}
	backoff(w);
	/* past a few failures in a row, start over from a list */
	if (w->failures > 3)
		w->relist = true;
}

static void *kwatch_main(void *arg)
{
	struct pt_kwatch *w = arg;

	w->relist = true;
	while (!stopping(w)) {
		if (w->relist) {
			if (do_list(w)) {
				backoff(w);
				continue;
			}
			/* failures are reset by a watch that works */
			w->relist = false;
		}
		do_watch(w);
	}
	return NULL;
}

int pt_kwatch_start(struct pt_kwatch **out, const struct pt_kube *k,
		    const struct pt_kwatch_cfg *c, struct pt_kqueue *q)
{
	struct pt_kwatch *w = pt_xcalloc(1, sizeof(*w));
	int err;

	w->k = k;
	w->c = *c;
	w->path = pt_xstrdup(c->path);
	w->fsel = c->field_selector ? escape_q(c->field_selector) : NULL;
	w->q = q;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	err = pthread_create(&w->thr, NULL, kwatch_main, w);
	if (err) {
		pt_err("starting the %s watch: %s", c->what, strerror(err));
		free(w->path);
		free(w->fsel);
		free(w);
		return -err;
	}
	*out = w;
	return 0;
}

void pt_kwatch_stop(struct pt_kwatch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thr, NULL);
	free(w->line.p);
	free(w->path);
	free(w->fsel);
	free(w);
}

void pt_kwatch_stats(struct pt_kwatch *w, struct pt_kwatch_stats *s)
{
	if (!w) {
		/* not started yet: a scrape may come first */
		memset(s, 0, sizeof(*s));
		return;
	}
	pthread_mutex_lock(&w->mu);
	*s = w->st;
	pthread_mutex_unlock(&w->mu);
}
