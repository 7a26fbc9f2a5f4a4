// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loading a capture for export; JSON lines and HAR 1.2. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include "base/common.h"
#include "export/export.h"
#include "base/jsonw.h"

/*
 * Reading one file of several. A connection id (socket cookie) is unique
 * while the node runs, but a recorder that restarts sees the connections
 * it finds open anew: a new OPEN, with offsets from 0 again. Such a later
 * incarnation gets an id of its own, for the records of that file.
 */
struct loading {
	struct pt_conns *conns;
	struct pt_capture *cap;
	const struct pt_capr_info *info;	/* of the file being read */
	const struct pt_load_hooks *hooks;	/* NULL: the whole capture */
	int file;
	struct { uint64_t from, to; } *remap;
	size_t nremap;
	uint8_t *buf;
	size_t bufsz;
};

static int take(struct loading *ld, const struct pt_rec_hdr *h)
{
	int err;

	if (!ld->hooks)
		return pt_conns_add(ld->conns, h);
	if (!ld->cap->files)
		ld->cap->info.hdr = ld->info->hdr;	/* times, host */
	ld->hooks->pre(ld->hooks->ctx, h);
	err = pt_conns_add(ld->conns, h);
	if (err)
		return err;
	return ld->hooks->post(ld->hooks->ctx, h);
}

static int collect(void *ctx, const struct pt_rec_hdr *h)
{
	struct loading *ld = ctx;
	struct pt_conn *c;
	size_t i;

	if (h->type == PT_REC_CONN_OPEN && ld->file > 0 &&
	    (c = pt_conns_find(ld->conns, h->conn_id)) && c->has_open &&
	    c->open.h.ts_ns != h->ts_ns) {
		ld->remap = pt_xrealloc(ld->remap, ld->nremap + 1,
					sizeof(*ld->remap));
		ld->remap[ld->nremap].from = h->conn_id;
		/* bit 62: never a cookie, and not PT_PSEUDO_CONN's bit 63 */
		ld->remap[ld->nremap].to = h->conn_id ^ (1ull << 62) ^
					   ((uint64_t)ld->file << 40);
		ld->nremap++;
	}
	for (i = ld->nremap; h->conn_id && i > 0; i--)
		if (ld->remap[i - 1].from == h->conn_id) {
			struct pt_rec_hdr *copy;

			if (h->size > ld->bufsz) {
				ld->bufsz = h->size;
				ld->buf = pt_xrealloc(ld->buf, ld->bufsz, 1);
			}
			memcpy(ld->buf, h, h->size);
			copy = (struct pt_rec_hdr *)ld->buf;
			copy->conn_id = ld->remap[i - 1].to;
			return take(ld, copy);
		}
	return take(ld, h);
}

/* One more file of the capture; < 0 after one line if it cannot be used. */
static int load_one(struct pt_capture *cap, const char *path,
		    const struct pt_load_hooks *hooks)
{
	struct pt_capr_info info = {};
	struct loading ld = { .conns = &cap->conns, .cap = cap, .info = &info,
			      .hooks = hooks, .file = cap->files };
	struct stat st;
	int err;
	FILE *f;

	if (!strcmp(path, "-") && cap->stdin_used) {
		pt_err("-: standard input is given twice");
		return -EINVAL;
	}
	f = strcmp(path, "-") ? fopen(path, "rbe") : stdin;
	if (!f) {
		err = -errno;
		pt_err("%s: %s", path, strerror(-err));
		return err;
	}
	if (!fstat(fileno(f), &st) && S_ISDIR(st.st_mode)) {
		pt_err("%s: %s", path, strerror(EISDIR));
		if (f != stdin)
			fclose(f);
		return -EISDIR;
	}
	cap->stdin_used |= f == stdin;
	if (f == stdin && isatty(STDIN_FILENO)) {
		pt_err("-: standard input is a terminal; pipe a capture into it or give a file");
		return -ENOTTY;
	}
	err = pt_capr_read(f, collect, &ld, &info);
	if (f != stdin)
		fclose(f);
	free(ld.remap);
	free(ld.buf);
	if (hooks && hooks->failed(hooks->ctx))
		return -ECANCELED;	/* the reader said why */
	if (err && !info.end_offset) {
		pt_err("%s: %s", path, err == -EBADMSG ? info.error :
		       strerror(-err));
		return err;
	}
	if (!cap->files) {
		cap->info = info;
	} else {
		if (strncmp(info.hdr.host, cap->info.hdr.host,
			    sizeof(info.hdr.host))) {
			pt_err("%s: recorded on %.32s, not %.32s like %s: read captures of different hosts one by one",
			       path, info.hdr.host, cap->info.hdr.host,
			       cap->path);
			return -EXDEV;
		}
		cap->info.records += info.records;
		cap->info.blocks += info.blocks;
		cap->info.clean_end &= info.clean_end;
	}
	if (err && !cap->read_err) {
		/* the first damage is the one reported */
		cap->read_err = err;
		cap->path = path;
		snprintf(cap->info.error, sizeof(cap->info.error), "%s",
			 info.error);
		cap->info.end_offset = info.end_offset;
	}
	cap->files++;
	return 0;
}

static int stop_here(void *ctx, const struct pt_rec_hdr *h)
{
	return 1;
}

/* Are a and b the same file, "-" being standard input? */
static bool same_input(const char *a, const char *b)
{
	struct stat x, y;

	if (!strcmp(a, "-") && !strcmp(b, "-"))
		return false;	/* said by the reader */
	return !(strcmp(a, "-") ? stat(a, &x) : fstat(0, &x)) &&
	       !(strcmp(b, "-") ? stat(b, &y) : fstat(0, &y)) &&
	       S_ISREG(x.st_mode) && x.st_dev == y.st_dev &&
	       x.st_ino == y.st_ino;
}

/*
 * Before any record is taken: no file given twice, and every regular file
 * a capture (its header read) of the first one's host, so that a bad
 * later argument stops a stream before anything is written. A pipe is
 * read once: it is checked as it comes.
 */
static int check_paths(const char *const *paths, int n)
{
	struct pt_capr_info info, first = {};
	const char *fpath = NULL;
	struct stat st;
	int j, k, err;
	FILE *f;

	for (k = 0; k < n; k++) {
		/* one file twice (or through a link) would double its records */
		for (j = 0; j < k; j++)
			if (same_input(paths[j], paths[k])) {
				pt_err("%s: the same file as %s, given twice",
				       paths[k], paths[j]);
				return -EINVAL;
			}
		if (!strcmp(paths[k], "-") || stat(paths[k], &st) ||
		    !S_ISREG(st.st_mode) || !(f = fopen(paths[k], "rbe")))
			continue;	/* said when it is read */
		err = pt_capr_read(f, stop_here, NULL, &info);
		fclose(f);
		if (err && !info.end_offset) {
			pt_err("%s: %s", paths[k], err == -EBADMSG ?
			       info.error : strerror(-err));
			return err;
		}
		if (!fpath) {
			first = info;
			fpath = paths[k];
		} else if (strncmp(info.hdr.host, first.hdr.host,
				   sizeof(info.hdr.host))) {
			pt_err("%s: recorded on %.32s, not %.32s like %s: read captures of different hosts one by one",
			       paths[k], info.hdr.host, first.hdr.host, fpath);
			return -EXDEV;
		}
	}
	return 0;
}

int pt_capture_load_hooked(struct pt_capture *cap, const char *const *paths,
			   int n, const struct pt_load_hooks *hooks)
{
	int k, err;

	memset(cap, 0, sizeof(*cap));
	cap->path = paths[0];
	err = check_paths(paths, n);
	if (err)
		return err;
	pt_conns_init(&cap->conns);
	for (k = 0; k < n; k++) {
		err = load_one(cap, paths[k], hooks);
		if (err) {
			pt_conns_free(&cap->conns);
			return err;
		}
	}
	return 0;
}

int pt_capture_load_many(struct pt_capture *cap, const char *const *paths,
			 int n, bool exchanges)
{
	size_t i;
	int err;

	err = pt_capture_load_hooked(cap, paths, n, NULL);
	if (err || !exchanges)
		return err;
	cap->xc = pt_xcalloc(cap->conns.n + 1, sizeof(*cap->xc));
	for (i = 0; i < cap->conns.n; i++) {
		pt_xconn_build(cap->conns.v[i], &cap->xc[i]);
		/* the assembled streams hold the bytes from here on */
		pt_conn_drop_chunks(cap->conns.v[i]);
	}
	return 0;
}

int pt_opt_max_stream(const char *arg)
{
	return pt_opt_size("--max-stream", arg, 1, PT_ASSEMBLE_MAX,
			   &pt_assemble_max);
}

void pt_capture_free(struct pt_capture *cap)
{
	size_t i;

	for (i = 0; cap->xc && i < cap->conns.n; i++)
		pt_xconn_free(&cap->xc[i]);
	free(cap->xc);
	pt_conns_free(&cap->conns);
	memset(cap, 0, sizeof(*cap));
}

void pt_capture_warn(const struct pt_capture *cap)
{
	if (cap->read_err == -EBADMSG)
		pt_err("%s: %s; what precedes it was used", cap->path,
		       cap->info.error);
	else if (cap->read_err)
		pt_err("%s: %s", cap->path, strerror(-cap->read_err));
}

uint64_t pt_wall_ns(const struct pt_capture *cap, uint64_t ts)
{
	return ts + cap->info.hdr.mono_to_real_ns;
}

void pt_fmt_ep(char *buf, size_t n, const struct pt_tuple *t, bool local)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	bool v6 = t->family == AF_INET6;

	inet_ntop(v6 ? AF_INET6 : AF_INET, local ? t->laddr : t->raddr, ip,
		  sizeof(ip));
	snprintf(buf, n, v6 ? "[%s]:%u" : "%s:%u", ip,
		 local ? t->lport : t->rport);
}

const char *pt_role_name(uint8_t r)
{
	return r == PT_ROLE_CLIENT ? "client" :
	       r == PT_ROLE_SERVER ? "server" : "unknown";
}

const char *pt_loss_reason_name(uint8_t r)
{
	static const char *const n[] = { "unreported", "ringbuf_full",
					  "too_big", "load_failed" };

	return r < ARRAY_SIZE(n) ? n[r] : "unknown";
}

char *pt_x_url(const struct pt_xconn *xc, const struct pt_exchange *x)
{
	const char *host = pt_http_field(&x->req, "Host");
	const char *target = x->req.target && *x->req.target ?
			     x->req.target : "/";
	char ep[64], *url;
	int n;

	if (!strncasecmp(target, "http://", 7) ||
	    !strncasecmp(target, "https://", 8))
		return pt_xstrdup(target);
	if (!host || !*host) {
		/* the server end: local on a server connection */
		pt_fmt_ep(ep, sizeof(ep), &xc->conn->open.t, xc->inbound);
		host = ep;
	}
	/* authority-form (CONNECT) or '*' name the host alone */
	n = asprintf(&url, "%s://%s%s", xc->tls ? "https" : "http", host,
		     target[0] == '/' ? target : "");
	if (n < 0)
		pt_oom();
	return url;
}

void pt_body_get(const struct pt_http_msg *m, struct pt_body *b)
{
	memset(b, 0, sizeof(*b));
	b->p = m->body;
	b->n = m->body_len;
	if (pt_http_decode_body(m, &b->alloc, &b->n, b->err,
				sizeof(b->err)) == 1) {
		b->p = b->alloc;
		b->decoded = true;
	} else {
		b->n = m->body_len;
	}
}

void pt_body_free(struct pt_body *b)
{
	free(b->alloc);
	memset(b, 0, sizeof(*b));
}

static void json_fields(FILE *f, const char *key,
			const struct pt_http_field *v, size_t n)
{
	size_t i;

	fprintf(f, ",\"%s\":[", key);
	for (i = 0; i < n; i++) {
		fputs(i ? ",[" : "[", f);
		pt_json_str(f, v[i].name);
		fputc(',', f);
		pt_json_str(f, v[i].value);
		fputc(']', f);
	}
	fputc(']', f);
}

static void json_time(FILE *f, const char *key, const struct pt_capture *cap,
		      uint64_t ts)
{
	char t[48];

	pt_fmt_time(t, sizeof(t), pt_wall_ns(cap, ts), 9);
	fprintf(f, ",\"%s\":\"%s\"", key, t);
}

static void json_msg(FILE *f, const struct pt_capture *cap,
		     const struct pt_http_msg *m, const struct pt_span *sp)
{
	struct pt_body b;

	if (m->request) {
		fputs("{\"method\":", f);
		pt_json_str(f, m->method ? m->method : "");
		fputs(",\"target\":", f);
		pt_json_str(f, m->target ? m->target : "");
	} else {
		fprintf(f, "{\"status\":%d,\"reason\":", m->status);
		pt_json_str(f, m->reason ? m->reason : "");
	}
	fprintf(f, ",\"version\":\"HTTP/%u.%u\"", m->major, m->minor);
	json_fields(f, "headers", m->fields, m->nfields);
	if (m->ntrailers)
		json_fields(f, "trailers", m->trailers, m->ntrailers);
	json_time(f, "timestamp", cap, sp->ts);
	json_time(f, "end_timestamp", cap, sp->ts_end);
	fprintf(f, ",\"offset\":%llu,\"wire_size\":%llu,\"head_size\":%zu,\"complete\":%s",
		(unsigned long long)sp->off,
		(unsigned long long)(sp->end - sp->off), m->head_len,
		m->complete ? "true" : "false");
	pt_body_get(m, &b);
	fprintf(f, ",\"body_size\":%zu", b.n);
	pt_json_bytes(f, "body", b.p, b.n);
	if (b.decoded) {
		/* the bytes as sent are kept next to the decoded ones */
		fputs(",\"content_encoding\":", f);
		pt_json_str(f, pt_http_field(m, "Content-Encoding"));
		fputs(",\"wire_body\":", f);
		pt_json_base64(f, m->body, m->body_len);
	} else if (b.err[0]) {
		fputs(",\"body_note\":", f);
		pt_json_str(f, b.err);
	}
	pt_body_free(&b);
	fputc('}', f);
}

void pt_x_json(FILE *f, const struct pt_capture *cap,
	       const struct pt_xconn *xc, const struct pt_exchange *x,
	       bool with_conn)
{
	const struct pt_conn_open *o = &xc->conn->open;
	size_t i;

	fprintf(f, "{\"conn_id\":%llu,\"kind\":\"%s\",\"direction\":\"%s\"",
		(unsigned long long)xc->conn->id,
		x->kind == PT_X_HTTP ? "http" : "raw",
		xc->inbound ? "inbound" : "outbound");
	if (with_conn) {
		char l[64], r[64];

		pt_fmt_ep(l, sizeof(l), &o->t, true);
		pt_fmt_ep(r, sizeof(r), &o->t, false);
		fprintf(f, ",\"local\":\"%s\",\"remote\":\"%s\",\"pid\":%u,\"tid\":%u,\"comm\":",
			l, r, o->tgid, o->pid);
		pt_json_str(f, o->comm);
		fprintf(f, ",\"cgroup_id\":%llu,\"session\":%u",
			(unsigned long long)o->cgroup_id, o->session_id);
	}
	/* what the bytes are: a raw turn of TLS records is ciphertext */
	if (x->kind == PT_X_RAW)
		fprintf(f, ",\"protocol\":\"%s\"", xc->proto == PT_XP_TLS ?
			"tls-ciphertext" : pt_xproto_name(xc->proto));
	if (xc->tls)
		fputs(",\"tls\":\"plaintext\"", f);
	fprintf(f, ",\"complete\":%s", x->incomplete ? "false" : "true");
	if (x->incomplete) {
		fputs(",\"note\":", f);
		pt_json_str(f, x->note);
	}
	if (x->ambiguous) {
		fputs(",\"ambiguous\":", f);
		pt_json_str(f, x->ambiguous);
	}
	if (x->kind == PT_X_HTTP) {
		if (x->has_req) {
			char *url = pt_x_url(xc, x);

			fputs(",\"url\":", f);
			pt_json_str(f, url);
			free(url);
		}
		if (x->has_req && x->has_resp)
			fprintf(f, ",\"latency_ns\":%llu",
				(unsigned long long)pt_x_latency_ns(x));
		if (x->has_req) {
			fputs(",\"request\":", f);
			json_msg(f, cap, &x->req, &x->req_span);
		}
		if (x->has_resp) {
			fputs(",\"response\":", f);
			json_msg(f, cap, &x->resp, &x->resp_span);
		}
		if (x->ninterim) {
			fputs(",\"interim\":[", f);
			for (i = 0; i < x->ninterim; i++)
				fprintf(f, "%s%d", i ? "," : "", x->interim[i]);
			fputc(']', f);
		}
	} else {
		fputs(",\"turns\":[", f);
		for (i = 0; i < x->nturns; i++) {
			const struct pt_span *t = &x->turns[i];

			fprintf(f, "%s{\"from\":\"%s\",\"offset\":%llu,\"size\":%llu",
				i ? "," : "",
				pt_x_from_client(xc, t->dir) ? "client" : "server",
				(unsigned long long)t->off,
				(unsigned long long)(t->end - t->off));
			json_time(f, "timestamp", cap, t->ts);
			pt_json_bytes(f, "data", pt_span_bytes(xc, t),
				      t->end - t->off);
			fputc('}', f);
		}
		fputc(']', f);
	}
	fputc('}', f);
}

uint64_t pt_x_start(const struct pt_exchange *x)
{
	if (x->kind == PT_X_RAW)
		return x->nturns ? x->turns[0].ts : 0;
	return x->has_req ? x->req_span.ts : x->resp_span.ts;
}

static int cmp_xref(const void *pa, const void *pb)
{
	const struct pt_xref *a = pa, *b = pb;
	uint64_t ta = pt_x_start(a->x), tb = pt_x_start(b->x);

	if (ta != tb)
		return ta < tb ? -1 : 1;
	/* the same instant: keep capture order */
	return a->x < b->x ? -1 : a->x > b->x;
}

struct pt_xref *pt_x_sorted(const struct pt_capture *cap, size_t *n)
{
	struct pt_xref *v;
	size_t i, k, total = 0;

	for (i = 0; i < cap->conns.n; i++)
		total += cap->xc[i].nx;
	v = pt_xcalloc(total + 1, sizeof(*v));
	for (i = 0, *n = 0; i < cap->conns.n; i++)
		for (k = 0; k < cap->xc[i].nx; k++)
			v[(*n)++] = (struct pt_xref){ &cap->xc[i], &cap->xc[i].x[k] };
	qsort(v, *n, sizeof(*v), cmp_xref);
	return v;
}

static regex_t time_re, uuid_re;
static bool noisy_ok;

static void noisy_init(void)
{
	/* an ISO 8601 / RFC 3339 date; an HTTP or RFC 850 date; a time of
	 * day; and a UUID */
	/* the whole value: a text that only mentions a date is not one */
	noisy_ok = !regcomp(&time_re,
		"^[0-9]{4}-[01][0-9]-[0-3][0-9]"
		"([T ][0-2][0-9]:[0-5][0-9](:[0-6][0-9]([.,][0-9]+)?)?"
		"(Z|z| ?[+-][0-2][0-9]:?[0-5][0-9]| ?UTC| ?GMT)?)?$|"
		"^([A-Z][a-z]{2,8}, ?)?[0-3]?[0-9][ -][A-Z][a-z]{2}[ -][0-9]{2,4} "
		"[0-2][0-9]:[0-5][0-9](:[0-6][0-9])? ?(GMT|UTC|[+-][0-9]{4}|[A-Z]{3})?$|"
		"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [0-9]{4}$|"
		"^[0-2][0-9]:[0-5][0-9]:[0-6][0-9]([.,][0-9]+)?$",
		REG_EXTENDED | REG_NOSUB) &&
		   !regcomp(&uuid_re,
		"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
		REG_EXTENDED | REG_NOSUB);
}

/* A number that is now, give or take years: seconds, ms, us or ns. */
static bool recent_epoch(const char *s)
{
	char *end;
	size_t digits = strspn(s, "0123456789");
	double v, now = (double)time(NULL);

	if (digits != 10 && digits != 13 && digits != 16 && digits != 19)
		return false;
	v = strtod(s, &end);
	if (*end)
		return false;
	v /= pow(10, digits - 10);
	return v > now - 20 * 365.25 * 86400 && v < now + 5 * 365.25 * 86400;
}

/* Is s[0..n) a time (uuid: or holds a UUID)? */
static bool varies(const char *s, size_t n, bool uuid)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	char buf[512];

	if (!n || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (strlen(buf) != n)
		return false;
	if (recent_epoch(buf))
		return true;
	pthread_once(&once, noisy_init);
	return noisy_ok && (!regexec(&time_re, buf, 0, NULL, 0) ||
			    (uuid && !regexec(&uuid_re, buf, 0, NULL, 0)));
}

bool pt_time_value(const char *s, size_t n)
{
	return varies(s, n, false);
}

bool pt_noisy_value(const char *s, size_t n)
{
	return varies(s, n, true);
}

/* Percent-decoding, '+' as a space (form encoding); bad escapes stay. */
static char *unescape(const char *s, size_t n)
{
	char *out = pt_xcalloc(1, n + 1), *o = out;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && pt_hexval(s[i + 1]) >= 0 &&
		    pt_hexval(s[i + 2]) >= 0) {
			*o++ = (char)(pt_hexval(s[i + 1]) << 4 | pt_hexval(s[i + 2]));
			i += 2;
		} else {
			*o++ = s[i] == '+' ? ' ' : s[i];
		}
	}
	return out;
}

void pt_query_parse(const char *q, struct pt_qparam **v, size_t *n)
{
	while (q && *q) {
		size_t len = strcspn(q, "&");
		const char *eq = memchr(q, '=', len);

		if (len) {
			*v = pt_xrealloc(*v, *n + 1, sizeof(**v));
			(*v)[*n].key = unescape(q, eq ? (size_t)(eq - q) : len);
			(*v)[*n].val = eq ? unescape(eq + 1, len - (eq + 1 - q)) :
					    pt_xstrdup("");
			(*n)++;
		}
		q += len + (q[len] != 0);
	}
}

void pt_query_free(struct pt_qparam *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].val);
	}
	free(v);
}

void pt_target_split(const char *t, char **host, char **path,
		     const char **query)
{
	const char *p = t, *q;

	if (host)
		*host = NULL;
	if (!strncasecmp(p, "http://", 7) || !strncasecmp(p, "https://", 8)) {
		const char *a = p + 8 - (p[4] == ':');

		p = a + strcspn(a, "/?#");
		if (host && !(*host = strndup(a, p - a)))
			pt_oom();
	}
	q = strpbrk(p, "?#");
	*path = p == q || !*p ? pt_xstrdup("/") :
		strndup(p, q ? (size_t)(q - p) : strlen(p));
	if (!*path)
		pt_oom();
	*query = q && *q == '?' ? q + 1 : NULL;
}
