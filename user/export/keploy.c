// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A Keploy test set (api.keploy.io/v1beta1): inbound HTTP exchanges as
 * tests/test-K.yaml (kind Http), outbound HTTP as kind Http mocks and other
 * outbound protocols as kind Generic mocks in mocks.yaml. The layout and
 * key names follow the files Keploy itself writes (go.keploy.io/server,
 * pkg/models http.go, generic.go, mock.go). Emitted with libyaml, so every
 * string is quoted and escaped by a real YAML emitter.
 *
 * Bodies are written decoded (Content-Encoding undone, Content-Length set
 * to match, Transfer-Encoding left out as Go's header maps do) as Keploy
 * records them; a response framed by chunks or by the close gets the
 * Content-Length Keploy's recorder gives it, since Keploy serves a mock
 * with the length its header names. Bodies that are not UTF-8 are a YAML
 * !!binary body, which is what yaml.v3 writes for such a Go string and
 * reads back into the same bytes. Requests with a query carry url_params
 * (Keploy's matcher wants the same keys as the live request's).
 *
 * Generic mocks: one message per turn (the bytes one side sent before the
 * other answered), which is one read of Keploy's proxy when the client
 * writes each request at once. A connection whose server speaks first (a
 * greeting) cannot be served by Keploy's Generic mocks, which answer only
 * after the client writes: it is left out, and counted.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>
#include "base/common.h"
#include "export/export.h"
#include "base/outfile.h"
#include "base/jsonw.h"
#include "base/jread.h"

/* snprintf into a char array, -ENAMETOOLONG if it does not fit */
#define PATHF(buf, ...)							\
	(snprintf(buf, sizeof(buf), __VA_ARGS__) >= (int)sizeof(buf) ?	\
	 -ENAMETOOLONG : 0)

struct ye {
	yaml_emitter_t e;
	bool failed;
	int write_err;		/* errno of a write that failed */
};

static void note_failure(struct ye *y)
{
	y->failed = true;
	if (y->e.error == YAML_WRITER_ERROR && !y->write_err)
		y->write_err = errno ? errno : EIO;
}

static void emit(struct ye *y, yaml_event_t *ev)
{
	if (!y->failed && !yaml_emitter_emit(&y->e, ev))
		note_failure(y);
}

static void scalar(struct ye *y, const char *s, size_t n,
		   yaml_scalar_style_t style)
{
	yaml_event_t ev;
	char *fixed = NULL;

	if (y->failed)
		return;
	if (!s) {	/* an empty body has no bytes to point at */
		s = "";
		n = 0;
	}
	/* libyaml takes UTF-8 only: stray bytes of names, reasons and
	 * targets become U+FFFD (bodies that are not text go as base64) */
	if (!pt_utf8_valid((const uint8_t *)s, n)) {
		fixed = pt_utf8_fix(s, n, &n);
		if (!fixed) {
			y->failed = true;
			return;
		}
		s = fixed;
	}
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s,
					  n, style == YAML_PLAIN_SCALAR_STYLE,
					  1, style)) {
		y->failed = true;
		free(fixed);
		return;
	}
	free(fixed);
	emit(y, &ev);
}

/* a key, or a value that is a plain token (numbers, times, names) */
static void plain(struct ye *y, const char *s)
{
	scalar(y, s, strlen(s), YAML_PLAIN_SCALAR_STYLE);
}

/* a string value: always quoted, so "13" stays a string */
static void str(struct ye *y, const char *s, size_t n)
{
	scalar(y, s, n, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

static void kv(struct ye *y, const char *k, const char *v)
{
	plain(y, k);
	str(y, v, strlen(v));
}

static void kplain(struct ye *y, const char *k, const char *v)
{
	plain(y, k);
	plain(y, v);
}

static void knum(struct ye *y, const char *k, long long v)
{
	char b[32];

	snprintf(b, sizeof(b), "%lld", v);
	kplain(y, k, b);
}

static void map_start(struct ye *y, bool flow)
{
	yaml_event_t ev;

	yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, flow ?
		YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
	emit(y, &ev);
}

static void seq_start(struct ye *y, bool flow)
{
	yaml_event_t ev;

	yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, flow ?
		YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
	emit(y, &ev);
}

/* the end of a mapping or a sequence */
static void end(struct ye *y, bool map)
{
	yaml_event_t ev;

	if (map)
		yaml_mapping_end_event_initialize(&ev);
	else
		yaml_sequence_end_event_initialize(&ev);
	emit(y, &ev);
}

#define map_end(y)	end(y, true)
#define seq_end(y)	end(y, false)

static void doc_start(struct ye *y)
{
	yaml_event_t ev;

	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	emit(y, &ev);
}

static void doc_end(struct ye *y)
{
	yaml_event_t ev;

	yaml_document_end_event_initialize(&ev, 1);
	emit(y, &ev);
}

static int ye_open(struct ye *y, FILE *f)
{
	yaml_event_t ev;

	memset(y, 0, sizeof(*y));
	if (!yaml_emitter_initialize(&y->e))
		return -ENOMEM;
	yaml_emitter_set_output_file(&y->e, f);
	yaml_emitter_set_unicode(&y->e, 1);
	yaml_emitter_set_width(&y->e, -1);
	yaml_emitter_set_indent(&y->e, 4);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	emit(y, &ev);
	return 0;
}

/* What libyaml said when an emitter failed; ye_close returns -EPROTO. */
static char yaml_problem[160];

static int ye_close(struct ye *y)
{
	yaml_event_t ev;
	bool failed;

	yaml_stream_end_event_initialize(&ev);
	emit(y, &ev);
	if (!y->failed && !yaml_emitter_flush(&y->e))
		note_failure(y);
	failed = y->failed;
	/* a write that failed (a full disk) says why */
	if (failed && y->write_err) {
		yaml_emitter_delete(&y->e);
		return -y->write_err;
	}
	if (failed && !yaml_problem[0])
		snprintf(yaml_problem, sizeof(yaml_problem), "YAML: %s",
			 y->e.problem ? y->e.problem :
			 "an event could not be built");
	yaml_emitter_delete(&y->e);
	return failed ? -EPROTO : 0;
}

static void ktime(struct ye *y, const char *k, const struct pt_capture *cap,
		  uint64_t ts)
{
	char t[48];

	pt_fmt_time(t, sizeof(t), pt_wall_ns(cap, ts), 9);
	kplain(y, k, t);
}

/* Go's textproto.CanonicalMIMEHeaderKey, which Keploy's maps are keyed by */
static void canonical(char *dst, const char *src, size_t n)
{
	bool up = true;
	size_t i;

	for (i = 0; src[i] && i + 1 < n; i++) {
		char c = src[i];

		dst[i] = up ? (c >= 'a' && c <= 'z' ? c - 32 : c) :
			      (c >= 'A' && c <= 'Z' ? c + 32 : c);
		up = c == '-';
	}
	dst[i] = 0;
}

/* Fields as a map: one key per name, repeated values joined with ",". */
static void headers(struct ye *y, const struct pt_http_msg *m,
		    const struct pt_body *b)
{
	bool length = false;

	char (*names)[128] = pt_xcalloc(m->nfields + 1, sizeof(*names));
	size_t i, j, n = 0;

	plain(y, "header");
	map_start(y, m->nfields == 0);
	for (i = 0; i < m->nfields; i++)
		canonical(names[i], m->fields[i].name, sizeof(names[i]));
	for (i = 0; i < m->nfields; i++) {
		char *v = NULL;
		size_t vl = 0;

		for (j = 0; j < i; j++)
			if (!strcmp(names[j], names[i]))
				break;
		if (j < i)
			continue;	/* joined at its first occurrence */
		/* the body is written de-chunked: Go's maps never hold TE */
		if (!strcmp(names[i], "Transfer-Encoding"))
			continue;
		for (j = i; j < m->nfields; j++) {
			const char *s = m->fields[j].value;
			char len[24];

			if (strcmp(names[j], names[i]))
				continue;
			if (b->decoded && !strcmp(names[i], "Content-Length")) {
				snprintf(len, sizeof(len), "%zu", b->n);
				s = len;
			}
			length |= !strcmp(names[i], "Content-Length");
			/* Cookie lines are one cookie list (RFC 6265 5.4) */
			bool cookie = !strcmp(names[i], "Cookie");

			if (cookie && !*s)
				continue;
			v = pt_xrealloc(v, vl + strlen(s) + 3, 1);
			vl += sprintf(v + vl, "%s%s", !vl ? "" : cookie ? "; " : ",", s);
		}
		kv(y, names[i], v ? v : "");
		free(v);
		n++;
	}
	/* a response framed by chunks or by the close: Keploy serves the
	 * length a mock's header names, as its recorder writes it */
	if (!m->request && !length && (m->framing == PT_FRAME_CHUNKED ||
				       m->framing == PT_FRAME_CLOSE)) {
		char len[24];

		snprintf(len, sizeof(len), "%zu", b->n);
		kv(y, "Content-Length", len);
	}
	map_end(y);
	free(names);
}

/* Keploy's url_params: each query key once, its values joined with ", "
 * as Go's url.Values are by Keploy's recorder. Left out when empty. */
static void url_params(struct ye *y, const char *target)
{
	const char *q = strchr(target, '?');
	struct pt_qparam *v = NULL;
	size_t n = 0, i, k;
	char *frag = NULL;

	if (!q)
		return;
	frag = pt_xstrdup(q + 1);
	frag[strcspn(frag, "#")] = 0;
	pt_query_parse(frag, &v, &n);
	free(frag);
	if (!n)
		return;
	plain(y, "url_params");
	map_start(y, false);
	for (i = 0; i < n; i++) {
		char *all = NULL;
		size_t len = 0;

		for (k = 0; k < i && strcmp(v[k].key, v[i].key); k++)
			;
		if (k < i)
			continue;
		for (k = i; k < n; k++) {
			if (strcmp(v[k].key, v[i].key))
				continue;
			all = pt_xrealloc(all, len + strlen(v[k].val) + 3, 1);
			len += sprintf(all + len, "%s%s", len ? ", " : "", v[k].val);
		}
		kv(y, v[i].key, all ? all : "");
		free(all);
	}
	map_end(y);
	pt_query_free(v, n);
}

/* base64 of p, through a memory stream: the JSON writer's quotes
 * stripped (malloc'd) */
static char *base64(const uint8_t *p, size_t n, size_t *len)
{
	char *s = NULL;
	size_t sl = 0;
	FILE *m = open_memstream(&s, &sl);

	if (!m)
		pt_oom();
	pt_json_base64(m, p, n);
	fclose(m);
	memmove(s, s + 1, sl - 2);
	s[sl - 2] = 0;
	*len = sl - 2;
	return s;
}

static void body(struct ye *y, const struct pt_body *b)
{
	yaml_event_t ev;
	size_t len;
	char *s;

	plain(y, "body");
	if (pt_utf8_valid(b->p, b->n)) {
		str(y, (const char *)b->p, b->n);
		return;
	}
	s = base64(b->p, b->n, &len);
	if (!y->failed &&
	    !yaml_scalar_event_initialize(&ev, NULL,
					  (yaml_char_t *)"tag:yaml.org,2002:binary",
					  (yaml_char_t *)s, len, 0, 0,
					  YAML_PLAIN_SCALAR_STYLE))
		y->failed = true;
	else
		emit(y, &ev);
	free(s);
}

static void http_req(struct ye *y, const struct pt_capture *cap,
		     const struct pt_xconn *xc, const struct pt_exchange *x)
{
	char *url = pt_x_url(xc, x);
	struct pt_body b;

	pt_body_get(&x->req, &b);
	plain(y, "req");
	map_start(y, false);
	kv(y, "method", x->req.method);
	knum(y, "proto_major", x->req.major);
	knum(y, "proto_minor", x->req.minor);
	kv(y, "url", url);
	url_params(y, x->req.target);
	headers(y, &x->req, &b);
	body(y, &b);
	ktime(y, "timestamp", cap, x->req_span.ts);
	map_end(y);
	pt_body_free(&b);
	free(url);
}

static void http_resp(struct ye *y, const struct pt_capture *cap,
		      const struct pt_exchange *x)
{
	struct pt_body b;

	pt_body_get(&x->resp, &b);
	plain(y, "resp");
	map_start(y, false);
	knum(y, "status_code", x->resp.status);
	headers(y, &x->resp, &b);
	body(y, &b);
	kv(y, "status_message", x->resp.reason);
	knum(y, "proto_major", x->resp.major);
	knum(y, "proto_minor", x->resp.minor);
	ktime(y, "timestamp", cap, x->resp_span.ts_end);
	map_end(y);
	pt_body_free(&b);
}

/* Keploy's noise, the fields that change run to run: every header and
 * JSON body field whose value reads as a time or a recent epoch. Body
 * fields are named as Keploy's matcher walks them: keys joined by dots,
 * array elements under their array's key. */
struct noisy_keys {
	char **v;
	size_t n;
};

static void noisy_add(struct noisy_keys *k, char *key)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		if (!strcmp(k->v[i], key)) {
			free(key);
			return;
		}
	k->v = pt_xrealloc(k->v, k->n + 1, sizeof(*k->v));
	k->v[k->n++] = key;
}

static void json_noise(const struct pt_jr *j, int i, const char *path,
		       struct noisy_keys *k, int depth)
{
	enum pt_jtype t = pt_jr_type(j, i);
	int n, m, cur;

	if (t == PT_J_OBJECT && depth < 32) {
		n = pt_jr_size(j, i);
		for (m = 0, cur = i + 1; m < n; m++) {
			char *key = pt_jr_str(j, cur), *p;

			if (asprintf(&p, "%s.%s", path, key ? key : "") < 0)
				pt_oom();
			json_noise(j, cur + 1, p, k, depth + 1);
			free(p);
			free(key);
			cur = pt_jr_next(j, cur + 1);
		}
	} else if (t == PT_J_ARRAY && depth < 32) {
		n = pt_jr_size(j, i);
		for (m = 0, cur = i + 1; m < n; m++) {
			json_noise(j, cur, path, k, depth + 1);
			cur = pt_jr_next(j, cur);
		}
	} else if (t == PT_J_STRING || t == PT_J_PRIM) {
		int len;
		const char *r = pt_jr_raw(j, i, &len);
		char *sv = t == PT_J_STRING ? pt_jr_str(j, i) : NULL;
		bool tv = sv ? pt_time_value(sv, strlen(sv)) :
			       pt_time_value(r, len);

		free(sv);
		if (tv && strchr(path, '.'))
			noisy_add(k, pt_xstrdup(path));
	}
}

static void noise(struct ye *y, const struct pt_exchange *x)
{
	struct noisy_keys k = {};
	struct pt_body b;
	struct pt_jr j;
	size_t i;

	for (i = 0; i < x->resp.nfields; i++) {
		const char *v = x->resp.fields[i].value;
		char canon[128], *key;

		if (!pt_time_value(v, strlen(v)))
			continue;
		canonical(canon, x->resp.fields[i].name, sizeof(canon));
		if (asprintf(&key, "header.%s", canon) < 0)
			pt_oom();
		noisy_add(&k, key);
	}
	pt_body_get(&x->resp, &b);
	if (b.n && !pt_jr_parse(&j, (const char *)b.p, b.n)) {
		json_noise(&j, 0, "body", &k, 0);
		pt_jr_free(&j);
	}
	pt_body_free(&b);
	plain(y, "assertions");
	map_start(y, false);
	plain(y, "noise");
	map_start(y, k.n == 0);
	for (i = 0; i < k.n; i++) {
		plain(y, k.v[i]);
		seq_start(y, true);
		seq_end(y);
		free(k.v[i]);
	}
	free(k.v);
	map_end(y);
	map_end(y);
}

static void attribution(struct ye *y, const struct pt_xconn *xc,
			const char *extra_k, const char *extra_v)
{
	const struct pt_conn_open *o = &xc->conn->open;
	char b[32];

	plain(y, "metadata");
	map_start(y, false);
	if (extra_k)
		kv(y, extra_k, extra_v);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)xc->conn->id);
	kv(y, "connID", b);
	snprintf(b, sizeof(b), "%u", o->tgid);
	kv(y, "podtap.pid", b);
	kv(y, "podtap.comm", o->comm);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)o->cgroup_id);
	kv(y, "podtap.cgroup_id", b);
	map_end(y);
}

/* s for a POSIX shell, in single quotes unless it is all safe; sep after */
static void shq(FILE *f, const char *s, const char *sep)
{
	if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789_@%+=:,./-") == strlen(s)) {
		fputs(s, f);
		fputs(sep, f);
		return;
	}
	fputc('\'', f);
	for (; *s; s++)
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	fputc('\'', f);
	fputs(sep, f);
}

/* Keploy's curl line: informational, shell-quoted. */
static char *curl_line(const struct pt_xconn *xc, const struct pt_exchange *x)
{
	char *s = NULL, *url, *h;
	size_t sl = 0, i;
	FILE *f = open_memstream(&s, &sl);
	struct pt_body b;

	if (!f)
		return NULL;
	url = pt_x_url(xc, x);
	fputs("curl --request ", f);
	shq(f, x->req.method, " \\\n  --url ");
	shq(f, url, " \\\n");
	free(url);
	for (i = 0; i < x->req.nfields; i++) {
		if (asprintf(&h, "%s: %s", x->req.fields[i].name,
			     x->req.fields[i].value) < 0)
			pt_oom();
		fputs("  --header ", f);
		shq(f, h, " \\\n");
		free(h);
	}
	pt_body_get(&x->req, &b);
	if (b.n && pt_utf8_valid(b.p, b.n) && !memchr(b.p, 0, b.n)) {
		fputs("  --data-binary '", f);
		for (i = 0; i < b.n; i++)
			if (b.p[i] == '\'')
				fputs("'\\''", f);
			else
				fputc(b.p[i], f);
		fputs("'\n", f);
	} else if (b.n) {
		fprintf(f, "  --data-binary @body.bin  # %zu bytes, not text: the !!binary body\n",
			b.n);
	}
	pt_body_free(&b);
	fclose(f);
	return s;
}

static int write_test(const struct pt_capture *cap, const char *dir, int k,
		      const struct pt_xconn *xc, const struct pt_exchange *x)
{
	char path[4096], name[32], *curl;
	struct ye y;
	FILE *f;
	int err;

	snprintf(name, sizeof(name), "test-%d", k);
	if (PATHF(path, "%s/tests/%s.yaml", dir, name))
		return -ENAMETOOLONG;
	f = pt_out_create_excl(path);
	if (!f)
		return -errno;
	err = ye_open(&y, f);
	if (err) {
		fclose(f);
		return err;
	}
	doc_start(&y);
	map_start(&y, false);
	kplain(&y, "version", "api.keploy.io/v1beta1");
	kplain(&y, "kind", "Http");
	kplain(&y, "name", name);
	plain(&y, "spec");
	map_start(&y, false);
	attribution(&y, xc, NULL, NULL);
	http_req(&y, cap, xc, x);
	http_resp(&y, cap, x);
	plain(&y, "objects");
	seq_start(&y, true);
	seq_end(&y);
	noise(&y, x);
	knum(&y, "created", pt_wall_ns(cap, x->resp_span.ts_end) / 1000000000ull);
	map_end(&y);
	curl = curl_line(xc, x);
	if (curl) {
		plain(&y, "curl");
		scalar(&y, curl, strlen(curl), YAML_LITERAL_SCALAR_STYLE);
		free(curl);
	}
	map_end(&y);
	doc_end(&y);
	err = ye_close(&y);
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

static void mock_head(struct ye *y, const char *kind, int k)
{
	char name[32];

	snprintf(name, sizeof(name), "mock-%d", k);
	doc_start(y);
	map_start(y, false);
	kplain(y, "version", "api.keploy.io/v1beta1");
	kplain(y, "kind", kind);
	kplain(y, "name", name);
	plain(y, "spec");
	map_start(y, false);
}

static void mock_tail(struct ye *y, const struct pt_xconn *xc)
{
	char b[32];

	map_end(y);	/* spec */
	snprintf(b, sizeof(b), "%llu", (unsigned long long)xc->conn->id);
	kv(y, "connectionId", b);
	map_end(y);
	doc_end(y);
}

static void http_mock(struct ye *y, const struct pt_capture *cap,
		      const struct pt_xconn *xc, const struct pt_exchange *x,
		      int k)
{
	mock_head(y, "Http", k);
	plain(y, "metadata");
	map_start(y, false);
	kv(y, "name", "Http");
	kv(y, "operation", x->req.method);
	kv(y, "type", "HTTP_CLIENT");
	{
		char b[32];

		snprintf(b, sizeof(b), "%llu", (unsigned long long)xc->conn->id);
		kv(y, "connID", b);
		snprintf(b, sizeof(b), "%u", xc->conn->open.tgid);
		kv(y, "podtap.pid", b);
		kv(y, "podtap.comm", xc->conn->open.comm);
	}
	map_end(y);
	http_req(y, cap, xc, x);
	http_resp(y, cap, x);
	plain(y, "objects");
	seq_start(y, true);
	seq_end(y);
	knum(y, "created", pt_wall_ns(cap, x->resp_span.ts_end) / 1000000000ull);
	ktime(y, "reqTimestampMock", cap, x->req_span.ts);
	ktime(y, "resTimestampMock", cap, x->resp_span.ts_end);
	mock_tail(y, xc);
}

/* Keploy's generic encoder: ASCII as type string, the rest base64. */
static void message(struct ye *y, const struct pt_xconn *xc,
		    const struct pt_span *t)
{
	const uint8_t *p = pt_span_bytes(xc, t);
	size_t n = t->end - t->off, i;
	bool ascii = true;

	for (i = 0; i < n && ascii; i++)
		ascii = p[i] < 0x80;
	plain(y, "message");
	seq_start(y, false);
	map_start(y, false);
	kplain(y, "type", ascii ? "string" : "binary");
	plain(y, "data");
	if (ascii) {
		str(y, (const char *)p, n);
	} else {
		size_t len;
		char *s = base64(p, n, &len);

		str(y, s, len);
		free(s);
	}
	map_end(y);
	seq_end(y);
}

static void generic_side(struct ye *y, const struct pt_xconn *xc,
			 const struct pt_exchange *x, bool client)
{
	size_t i, n = 0;

	for (i = 0; i < x->nturns; i++)
		n += pt_x_from_client(xc, x->turns[i].dir) == client;
	plain(y, client ? "genericrequests" : "genericresponses");
	seq_start(y, n == 0);
	for (i = 0; i < x->nturns; i++) {
		if (pt_x_from_client(xc, x->turns[i].dir) != client)
			continue;
		map_start(y, false);
		kplain(y, "origin", client ? "client" : "server");
		message(y, xc, &x->turns[i]);
		map_end(y);
	}
	seq_end(y);
}

static void generic_mock(struct ye *y, const struct pt_capture *cap,
			 const struct pt_xconn *xc,
			 const struct pt_exchange *x, int k)
{
	mock_head(y, "Generic", k);
	attribution(y, xc, "type", "config");
	generic_side(y, xc, x, true);
	generic_side(y, xc, x, false);
	ktime(y, "reqtimestampmock", cap, x->turns[0].ts);
	ktime(y, "restimestampmock", cap, x->turns[x->nturns - 1].ts_end);
	mock_tail(y, xc);
}

/* A set being written: aside, renamed into place when whole. */
struct kw {
	char tmp[4096], final[4096], root[4096];
	int n;			/* the N of test-set-N it is to be */
	FILE *f;		/* mocks.yaml */
	struct ye y;
	int err;		/* the first write that failed */
	/* raw connections by id, once their first turn is seen: 1 the
	 * client spoke first, 2 the server did */
	struct kconn {
		uint64_t id;
		uint8_t first;
	} *tab;
	size_t tabsz, ntab;
};

/* Did the server speak before the client on this raw connection? Told
 * by its first exchange with turns (counted once, in c). */
static bool server_first(struct kw *w, const struct pt_xconn *xc,
			 const struct pt_exchange *x,
			 struct pt_export_counts *c)
{
	uint64_t id = xc->conn->id;
	size_t i;

	if (w->ntab * 2 >= w->tabsz) {
		struct kconn *old = w->tab;
		size_t n = w->tabsz;

		w->tabsz = n ? n * 2 : 256;
		w->tab = pt_xcalloc(w->tabsz, sizeof(*w->tab));
		for (i = 0; i < n; i++) {
			size_t h;

			if (!old[i].first)
				continue;
			for (h = old[i].id * 0x9e3779b97f4a7c15ull;
			     w->tab[h & (w->tabsz - 1)].first; h++)
				;
			w->tab[h & (w->tabsz - 1)] = old[i];
		}
		free(old);
	}
	for (i = id * 0x9e3779b97f4a7c15ull; w->tab[i & (w->tabsz - 1)].first; i++)
		if (w->tab[i & (w->tabsz - 1)].id == id)
			return w->tab[i & (w->tabsz - 1)].first == 2;
	if (!x->nturns)
		return false;	/* not told yet */
	w->tab[i & (w->tabsz - 1)].id = id;
	w->tab[i & (w->tabsz - 1)].first =
		pt_x_from_client(xc, x->turns[0].dir) ? 1 : 2;
	w->ntab++;
	if (pt_x_from_client(xc, x->turns[0].dir))
		return false;
	c->server_first++;
	return true;
}

static int keploy_one(void *ctx, const struct pt_capture *cap,
		      const struct pt_xconn *xc, const struct pt_exchange *x,
		      struct pt_export_counts *c)
{
	struct kw *w = ctx;
	bool http = x->kind == PT_X_HTTP;

	/* not replayable at all: counted by connection, not here */
	if ((!http && xc->inbound) || xc->proto == PT_XP_TLS)
		return 0;
	/* a greeting first: Keploy answers only after the client writes,
	 * so no mock of this connection can be served */
	if (!http && server_first(w, xc, x, c))
		return 0;
	/* what the server may have read otherwise is no test */
	if (x->ambiguous) {
		c->ambiguous++;
		return 0;
	}
	/* only what happened whole can be replayed */
	if (x->incomplete || (http && (!x->has_req || !x->has_resp)) ||
	    (!http && !x->nturns)) {
		c->partial++;
		return 0;
	}
	if (http && xc->inbound)
		w->err = write_test(cap, w->tmp, ++c->tests, xc, x);
	else if (http)
		http_mock(&w->y, cap, xc, x, c->mocks++);
	else
		generic_mock(&w->y, cap, xc, x, c->mocks++);
	return w->err;
}

/* Partial sets that exports of this host left when they died: removed.
 * Named PREFIX[HOST.]PID; only a directory, only a dead pid of ours. */
static void remove_stale(const char *dir, const char *prefix, const char *host)
{
	size_t pl = strlen(prefix), hl = strlen(host);
	struct dirent *e;
	char path[4096];
	struct stat st;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		const char *rest = e->d_name + pl, *dot = strrchr(e->d_name, '.');
		long pid;
		char *end;

		if (strncmp(e->d_name, prefix, pl) || !dot)
			continue;
		if (hl && (strncmp(rest, host, hl) || rest[hl] != '.'))
			continue;	/* another host's, on a shared volume */
		if (!hl && !strstr(e->d_name, ".partial."))
			continue;
		pid = strtol(dot + 1, &end, 10);
		if (*end || pid <= 0 || !(kill((pid_t)pid, 0) < 0 && errno == ESRCH))
			continue;
		if (PATHF(path, "%s/%s", dir, e->d_name) ||
		    lstat(path, &st) || !S_ISDIR(st.st_mode))
			continue;
		pt_info("removing %s, left by an export that did not finish", path);
		pt_rm_tree(path);
	}
	closedir(d);
}

static void kw_free(struct kw *w)
{
	free(w->tab);
	free(w);
}

/* Where the set goes: PATH/keploy/test-set-N, written aside first. */
static int keploy_open(const char *out, void **wp)
{
	char host[64] = "", path[4096];
	struct kw *w = pt_xcalloc(1, sizeof(*w));
	struct stat st;
	int err;

	*wp = NULL;
	if (PATHF(w->root, "%s/keploy", out)) {
		pt_err("--out: path too long");
		kw_free(w);
		return -ENAMETOOLONG;
	}
	if ((mkdir(out, 0755) && errno != EEXIST) ||
	    (mkdir(w->root, 0755) && errno != EEXIST)) {
		err = -errno;
		pt_err("%s: %s", access(out, F_OK) ? out : w->root,
		       strerror(-err));
		kw_free(w);
		return err;
	}
	for (w->n = 0;; w->n++) {
		if (PATHF(w->final, "%s/test-set-%d", w->root, w->n)) {
			pt_err("--out: path too long");
			kw_free(w);
			return -ENAMETOOLONG;
		}
		if (!lstat(w->final, &st))
			continue;
		if (errno == ENOENT)
			break;
		err = -errno;
		pt_err("%s: %s", w->final, strerror(-err));
		kw_free(w);
		return err;
	}
	/* written aside, outside keploy/ (Keploy takes every directory
	 * there for a test set, even one a crash left half written), and
	 * renamed into place only when whole */
	gethostname(host, sizeof(host) - 1);
	host[strcspn(host, "/.")] = 0;
	remove_stale(out, ".podtap-keploy-partial.", host);
	remove_stale(w->root, ".test-set-", "");
	if (PATHF(w->tmp, "%s/.podtap-keploy-partial.%s.%d", out, host,
		  getpid()) || PATHF(path, "%s/tests", w->tmp)) {
		pt_err("--out: path too long");
		kw_free(w);
		return -ENAMETOOLONG;
	}
	/* removed whole if the export is interrupted */
	pt_out_pending_dir(w->tmp);
	if (mkdir(w->tmp, 0700) || mkdir(path, 0700)) {
		err = -errno;
		pt_err("%s: %s", path, strerror(-err));
		goto fail;
	}
	if (PATHF(path, "%s/mocks.yaml", w->tmp)) {
		err = -ENAMETOOLONG;
		pt_err("--out: path too long");
		goto fail;
	}
	w->f = pt_out_create_excl(path);
	if (!w->f) {
		err = -errno;
		pt_err("%s: %s", path, strerror(-err));
		goto fail;
	}
	err = ye_open(&w->y, w->f);
	if (err) {
		pt_err("YAML: %s", strerror(-err));
		fclose(w->f);
		goto fail;
	}
	*wp = w;
	return 0;
fail:
	pt_rm_tree(w->tmp);
	pt_out_pending_dir(NULL);
	kw_free(w);
	return err;
}

/* The set in place (or, abort, thrown away); says why when it cannot be. */
static int keploy_close(void *ctx, struct pt_export_counts *c, bool abort)
{
	struct kw *w = ctx;
	int err = ye_close(&w->y);

	if (fclose(w->f) && !err)
		err = -errno;
	if (w->err)
		err = w->err;
	/* another export may have taken test-set-N meanwhile: the next one */
	while (!abort && !err && (err = pt_out_commit_dir(w->final)) &&
	       (err == -ENOTEMPTY || err == -EEXIST) && w->n < 100000) {
		w->n++;
		if (PATHF(w->final, "%s/test-set-%d", w->root, w->n))
			break;
		err = 0;
	}
	if (err || abort) {
		/* a capture that could not be read has been said */
		if (err && (!abort || w->err))
			pt_err("%s: %s", w->final, err == -EPROTO && yaml_problem[0] ?
			       yaml_problem : strerror(-err));
		pt_rm_tree(w->tmp);
		pt_out_pending_dir(NULL);
		kw_free(w);
		return err;
	}
	c->set = w->n;
	c->items = c->tests + c->mocks;
	kw_free(w);
	return 0;
}

const struct pt_exporter pt_exporter_keploy = {
	.name = "keploy",
	.dir_open = keploy_open,
	.dir_one = keploy_one,
	.dir_close = keploy_close,
	.holds = PT_HOLDS_KEPLOY,
	.item = "test or mock", .items = "tests and mocks",
	.help = "a Keploy test set: PATH/keploy/test-set-N/tests/test-K.yaml for\n"
		"inbound HTTP, PATH/keploy/test-set-N/mocks.yaml for outbound HTTP\n"
		"(kind Http) and other protocols (kind Generic). N is the first\n"
		"unused number. PATH is a directory (default: .)",
};
