// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static const char *mime_of(const struct pt_http_msg *m)
{
	const char *ct = pt_http_field(m, "Content-Type");

	return ct ? ct : "";
}

/* ,"text":..., as base64 with ,"<enc_key>":"base64" when not UTF-8 */
static void har_text(FILE *f, const struct pt_body *b, const char *enc_key)
{
	fputs(",\"text\":", f);
	if (pt_utf8_valid(b->p, b->n)) {
		pt_json_strn(f, b->p, b->n);
	} else {
		pt_json_base64(f, b->p, b->n);
		fprintf(f, ",\"%s\":\"base64\"", enc_key);
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
	fprintf(f, ",\"httpVersion\":\"HTTP/%u.%u\",\"cookies\":[],",
		q->major, q->minor);
	har_headers(f, q);
	har_query(f, q->target);
	if (q->body_len) {
		pt_body_get(q, &b);
		fputs(",\"postData\":{\"mimeType\":", f);
		pt_json_str(f, mime_of(q));
		har_text(f, &b, "_encoding");
		fputc('}', f);
		pt_body_free(&b);
	}
	fprintf(f, ",\"headersSize\":%zu,\"bodySize\":%zu},", q->head_len,
		q->body_len);

	if (x->has_resp) {
		fprintf(f, "\"response\":{\"status\":%d,\"statusText\":",
			r->status);
		pt_json_str(f, r->reason ? r->reason : "");
		fprintf(f, ",\"httpVersion\":\"HTTP/%u.%u\",\"cookies\":[],",
			r->major, r->minor);
		har_headers(f, r);
		pt_body_get(r, &b);
		fprintf(f, ",\"content\":{\"size\":%zu,\"compression\":%lld,\"mimeType\":",
			b.n, (long long)b.n - (long long)r->body_len);
		pt_json_str(f, mime_of(r));
		har_text(f, &b, "encoding");
		fputs("},\"redirectURL\":", f);
		pt_json_str(f, pt_http_field(r, "Location") ?
			    pt_http_field(r, "Location") : "");
		fprintf(f, ",\"headersSize\":%zu,\"bodySize\":%zu},",
			r->head_len, r->body_len);
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

static int export_har(const struct pt_capture *cap, FILE *f,
		  struct pt_export_counts *cnt)
{
	struct pt_xref *v;
	bool first = true;
	size_t i, n;

	fputs("{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"podtap\",\"version\":\"" PT_VERSION "\"},",
	      f);
	fputs("\"comment\":", f);
	pt_json_str(f, cap->info.hdr.host);
	fputs(",\"pages\":[],\"entries\":[\n", f);
	v = pt_x_sorted(cap, &n);
	for (i = 0; i < n; i++) {
		if (v[i].x->kind != PT_X_HTTP || !v[i].x->has_req)
			continue;
		if (!first)
			fputs(",\n", f);
		first = false;
		har_entry(f, cap, v[i].xc, v[i].x);
		cnt->items++;
	}
	free(v);
	fputs("\n]}}\n", f);
	return 0;
}

const struct pt_exporter pt_exporter_har = {
	.name = "har",
	.to_file = export_har,
	.holds = PT_HOLDS_HTTP1,
	.item = "entry", .items = "entries",
	.help = "HAR 1.2 of every HTTP/1 exchange, inbound and outbound",
};
