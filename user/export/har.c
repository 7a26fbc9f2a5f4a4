// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "base/common.h"
#include "base/jsonw.h"
#include "export/export.h"

/* HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/). */
static void har_nv(FILE *f, const char *name, size_t nn, const char *value,
		   size_t vn)
{
	fputs("{\"name\":", f);
	pt_json_strn(f, name, nn);
	fputs(",\"value\":", f);
	pt_json_strn(f, value, vn);
	fputc('}', f);
}

static void har_headers(FILE *f, const struct pt_http_msg *m)
{
	size_t i;

	fputs("\"headers\":[", f);
	for (i = 0; i < m->nfields; i++) {
		if (i)
			fputc(',', f);
		har_nv(f, m->fields[i].name, strlen(m->fields[i].name),
		       m->fields[i].value, strlen(m->fields[i].value));
	}
	fputc(']', f);
}

static void har_query(FILE *f, const char *target)
{
	const char *q = target ? strchr(target, '?') : NULL;
	bool first = true;

	fputs(",\"queryString\":[", f);
	while (q && *q) {
		const char *p = q + 1, *e = strchr(p, '&'), *eq;
		size_t n = e ? (size_t)(e - p) : strlen(p);

		eq = memchr(p, '=', n);
		if (n) {
			if (!first)
				fputc(',', f);
			first = false;
			if (eq)
				har_nv(f, p, eq - p, eq + 1, n - (eq - p) - 1);
			else
				har_nv(f, p, n, "", 0);
		}
		q = e;
	}
	fputc(']', f);
}

/* Cookie: a=1; b=2 as HAR cookies. */
static int har_req_cookies(FILE *f, const char *v, int n)
{
	while (v && *v) {
		size_t len = strcspn(v, ";");
		const char *eq;

		while (len && *v == ' ') {
			v++;
			len--;
		}
		eq = memchr(v, '=', len);
		if (len && eq) {
			if (n++)
				fputc(',', f);
			har_nv(f, v, eq - v, eq + 1, len - (eq + 1 - v));
		}
		v += len;
		v += *v == ';';
	}
	return n;
}

/* Set-Cookie: sid=42; Path=/; HttpOnly as one HAR cookie. */
static void har_set_cookie(FILE *f, const char *v)
{
	size_t len = strcspn(v, ";");
	const char *eq = memchr(v, '=', len), *a;

	fputs("{\"name\":", f);
	pt_json_strn(f, v, eq ? (size_t)(eq - v) : len);
	fputs(",\"value\":", f);
	pt_json_strn(f, eq ? eq + 1 : "", eq ? len - (eq + 1 - v) : 0);
	for (a = v + len; *a == ';';) {
		size_t al;

		a++;
		a += strspn(a, " ");
		al = strcspn(a, ";");
		eq = memchr(a, '=', al);
		if (!eq && al == 8 && !strncasecmp(a, "HttpOnly", 8)) {
			fputs(",\"httpOnly\":true", f);
		} else if (!eq && al == 6 && !strncasecmp(a, "Secure", 6)) {
			fputs(",\"secure\":true", f);
		} else if (eq && (eq - a == 4 || eq - a == 6 || eq - a == 7)) {
			static const char *const keys[] = { "Path", "Domain", "Expires" };
			size_t k;

			for (k = 0; k < 3; k++)
				if (strlen(keys[k]) == (size_t)(eq - a) &&
				    !strncasecmp(a, keys[k], eq - a)) {
					fprintf(f, ",\"%c%s\":", keys[k][0] + 32,
						keys[k] + 1);
					pt_json_strn(f, eq + 1, al - (eq + 1 - a));
				}
		}
		a += al;
	}
	fputc('}', f);
}

static void har_cookies(FILE *f, const struct pt_http_msg *m)
{
	size_t i;
	int n = 0;

	fputs("\"cookies\":[", f);
	for (i = 0; i < m->nfields; i++) {
		if (m->request && !strcasecmp(m->fields[i].name, "Cookie")) {
			n = har_req_cookies(f, m->fields[i].value, n);
		} else if (!m->request &&
			   !strcasecmp(m->fields[i].name, "Set-Cookie")) {
			if (n++)
				fputc(',', f);
			har_set_cookie(f, m->fields[i].value);
		}
	}
	fputs("],", f);
}

/* A form body's fields, decoded. */
static void har_params(FILE *f, const struct pt_body *b)
{
	struct pt_qparam *v = NULL;
	size_t n = 0, i;
	char *s = pt_xcalloc(1, b->n + 1);

	memcpy(s, b->p, b->n);
	pt_query_parse(s, &v, &n);
	fputs(",\"params\":[", f);
	for (i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		har_nv(f, v[i].key, strlen(v[i].key), v[i].val, strlen(v[i].val));
	}
	fputc(']', f);
	pt_query_free(v, n);
	free(s);
}

/* The body's bytes as they went over the wire: chunk framing and any
 * coding included (HAR's bodySize). */
static size_t wire_body(const struct pt_http_msg *m)
{
	return m->len > m->head_len ? m->len - m->head_len : 0;
}

static const char *mime_of(const struct pt_http_msg *m)
{
	const char *ct = pt_http_field(m, "Content-Type");

	return ct ? ct : "";
}

/* ,"text":..., as base64 with ,"<enc_key>":"base64" when not UTF-8 */
static void har_text(FILE *f, const struct pt_body *b)
{
	fputs(",\"text\":", f);
	if (pt_utf8_valid(b->p, b->n)) {
		pt_json_strn(f, b->p, b->n);
	} else {
		pt_json_base64(f, b->p, b->n);
		fputs(",\"encoding\":\"base64\"", f);
	}
}

static double ms(uint64_t a, uint64_t b)
{
	return b > a ? (b - a) / 1e6 : 0;
}

static void har_entry(FILE *f, const struct pt_capture *cap,
		      const struct pt_xconn *xc, const struct pt_exchange *x)
{
	const struct pt_http_msg *q = &x->req, *r = &x->resp;
	const struct pt_span *qs = &x->req_span, *rs = &x->resp_span;
	const struct pt_conn_open *o = &xc->conn->open;
	struct pt_body b;
	char t[48], ep[64], *colon, *url = pt_x_url(xc, x);
	/* HAR 1.2: send, wait and receive are never -1; time is their sum */
	double send = ms(qs->ts, qs->ts_end),
	       wait = x->has_resp ? ms(qs->ts_end, rs->ts) : 0,
	       receive = x->has_resp ? ms(rs->ts, rs->ts_end) : 0;

	pt_fmt_time(t, sizeof(t), pt_wall_ns(cap, qs->ts), 3);
	fprintf(f, "{\"startedDateTime\":\"%s\",\"time\":%.3f,", t,
		send + wait + receive);
	fputs("\"request\":{\"method\":", f);
	pt_json_str(f, q->method);
	fputs(",\"url\":", f);
	pt_json_str(f, url);
	fprintf(f, ",\"httpVersion\":\"HTTP/%u.%u\",", q->major, q->minor);
	har_cookies(f, q);
	har_headers(f, q);
	har_query(f, q->target);
	if (q->body_len) {
		pt_body_get(q, &b);
		fputs(",\"postData\":{\"mimeType\":", f);
		pt_json_str(f, mime_of(q));
		if (!strncasecmp(mime_of(q), "application/x-www-form-urlencoded", 33))
			har_params(f, &b);
		/*
		 * HAR 1.2 gives postData no encoding, and no text holds
		 * arbitrary bytes: base64 with the encoding that 1.2 gives
		 * content, as the 1.3 draft adds to postData and as tools
		 * that read HAR (Go's martian, say) take it.
		 */
		har_text(f, &b);
		if (!pt_utf8_valid(b.p, b.n))
			fprintf(f, ",\"comment\":\"%zu bytes that are not text: base64, said by encoding as for content (HAR 1.2 has no field for a binary request body)\"",
				b.n);
		fputc('}', f);
		pt_body_free(&b);
	}
	fprintf(f, ",\"headersSize\":%zu,\"bodySize\":%zu},", q->head_len,
		wire_body(q));

	if (x->has_resp) {
		fprintf(f, "\"response\":{\"status\":%d,\"statusText\":",
			r->status);
		pt_json_str(f, r->reason ? r->reason : "");
		fprintf(f, ",\"httpVersion\":\"HTTP/%u.%u\",", r->major,
			r->minor);
		har_cookies(f, r);
		har_headers(f, r);
		pt_body_get(r, &b);
		/* compression: what the coding saved, when there is one */
		fprintf(f, ",\"content\":{\"size\":%zu,", b.n);
		if (b.decoded)
			fprintf(f, "\"compression\":%lld,",
				(long long)b.n - (long long)wire_body(r));
		fputs("\"mimeType\":", f);
		pt_json_str(f, mime_of(r));
		har_text(f, &b);
		fputs("},\"redirectURL\":", f);
		pt_json_str(f, pt_http_field(r, "Location") ?
			    pt_http_field(r, "Location") : "");
		fprintf(f, ",\"headersSize\":%zu,\"bodySize\":%zu},",
			r->head_len, wire_body(r));
		pt_body_free(&b);
	} else {
		fputs("\"response\":{\"status\":0,\"statusText\":\"\",\"httpVersion\":\"\",\"cookies\":[],\"headers\":[],\"content\":{\"size\":0,\"mimeType\":\"\"},\"redirectURL\":\"\",\"headersSize\":-1,\"bodySize\":-1,\"_error\":\"no response captured\"},",
		      f);
	}
	fprintf(f, "\"cache\":{},\"timings\":{\"blocked\":-1,\"dns\":-1,\"connect\":-1,\"send\":%.3f,\"wait\":%.3f,\"receive\":%.3f,\"ssl\":-1},",
		send, wait, receive);
	/* the server's address, without its port */
	pt_fmt_ep(ep, sizeof(ep), &o->t, xc->inbound);
	colon = strrchr(ep, ':');
	if (colon)
		*colon = 0;
	if (ep[0] == '[') {
		memmove(ep, ep + 1, strlen(ep));
		ep[strlen(ep) - 1] = 0;
	}
	fprintf(f, "\"serverIPAddress\":\"%s\",\"connection\":\"%llu\",", ep,
		(unsigned long long)xc->conn->id);
	fprintf(f, "\"_podtap\":{\"direction\":\"%s\",\"pid\":%u,\"tid\":%u,\"comm\":",
		xc->inbound ? "inbound" : "outbound", o->tgid, o->pid);
	pt_json_str(f, o->comm);
	fprintf(f, ",\"cgroup_id\":%llu,\"complete\":%s",
		(unsigned long long)o->cgroup_id,
		x->incomplete ? "false" : "true");
	if (x->incomplete) {
		fputs(",\"note\":", f);
		pt_json_str(f, x->note);
	}
	if (x->ambiguous) {
		fputs(",\"ambiguous\":", f);
		pt_json_str(f, x->ambiguous);
	}
	fputs("}}", f);
	free(url);
}

static int har_head(const struct pt_capture *cap, FILE *f)
{
	fputs("{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"podtap\",\"version\":\"" PT_VERSION "\"},",
	      f);
	fputs("\"comment\":", f);
	pt_json_str(f, cap->info.hdr.host);
	fputs(",\"pages\":[],\"entries\":[\n", f);
	return pt_ferror(f);
}

static int har_one(const struct pt_capture *cap, FILE *f,
		   const struct pt_xconn *xc, const struct pt_exchange *x,
		   struct pt_export_counts *cnt)
{
	if (x->kind != PT_X_HTTP || !x->has_req)
		return 0;
	if (cnt->items)
		fputs(",\n", f);
	har_entry(f, cap, xc, x);
	cnt->items++;
	return pt_ferror(f);
}

static int har_tail(const struct pt_capture *cap, FILE *f,
		    struct pt_export_counts *cnt)
{
	fputs("\n]}}\n", f);
	return pt_ferror(f);
}

const struct pt_exporter pt_exporter_har = {
	.name = "har",
	.head = har_head,
	.one = har_one,
	.tail = har_tail,
	.holds = PT_HOLDS_HTTP1,
	.item = "entry", .items = "entries",
	.help = "HAR 1.2 of every HTTP/1 exchange, inbound and outbound",
};
