// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * HTTP/1.x framing after RFC 9112: request and status lines, fields (with
 * obs-fold), message body length (section 6.3), chunked coding (7.1). The
 * parser only reads the bytes it is given and copies what it keeps; every
 * length is checked against what is left before it is used.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include "base/common.h"
#include "proto/http1.h"

struct cursor {
	const uint8_t *p;
	size_t n, pos;
	char *err;
	size_t errlen;
	unsigned crlf, lf;	/* lines of the head ended by CRLF, bare LF */
	const char *ambiguous;	/* why servers may frame it differently */
};

static int bad(struct cursor *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(struct cursor *c, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s at byte %zu", what, c->pos);
	return -1;
}

/* RFC 9110 5.6.2: tchar */
static bool is_tchar(uint8_t ch)
{
	if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z'))
		return true;
	return ch && strchr("!#$%&'*+-.^_`|~", ch);
}

static char *xstrndup(const uint8_t *p, size_t n)
{
	char *s = pt_xcalloc(1, n + 1);

	memcpy(s, p, n);
	return s;
}

/*
 * Find the end of the line at c->pos: *len is the line without its CRLF
 * (or bare LF), *next the position after it. 0 if the line is incomplete
 * within the first max bytes, -1 if it is longer than max or holds a CR
 * not followed by LF.
 */
static int line(struct cursor *c, size_t max, const char *what, size_t *len,
		size_t *next)
{
	size_t i, end = c->n - c->pos < max ? c->n : c->pos + max;

	for (i = c->pos; i < end; i++) {
		if (c->p[i] == '\n') {
			*len = i - c->pos;
			*next = i + 1;
			c->lf++;
			return 1;
		}
		if (c->p[i] == '\r') {
			if (i + 1 >= c->n)
				return 0;
			if (c->p[i + 1] != '\n')
				return bad(c, "CR without LF");
			*len = i - c->pos;
			*next = i + 2;
			c->crlf++;
			return 1;
		}
	}
	if (end - c->pos >= max)
		return bad(c, "%s", what);
	return 0;
}

static int parse_version(const uint8_t *p, size_t n, struct pt_http_msg *m)
{
	if (n != 8 || memcmp(p, "HTTP/", 5) || p[5] < '0' || p[5] > '9' ||
	    p[6] != '.' || p[7] < '0' || p[7] > '9')
		return -1;
	m->major = p[5] - '0';
	m->minor = p[7] - '0';
	return m->major == 1 ? 0 : -1;
}

static int request_line(struct cursor *c, const uint8_t *l, size_t n,
			struct pt_http_msg *m)
{
	size_t i = 0, t0, t1;

	while (i < n && is_tchar(l[i]))
		i++;
	if (!i || i >= n || l[i] != ' ')
		return bad(c, "request line: no method");
	t0 = ++i;
	while (i < n && l[i] > ' ' && l[i] != 0x7f)
		i++;
	t1 = i;
	if (t1 == t0 || i >= n || l[i] != ' ')
		return bad(c, "request line: no target");
	if (parse_version(l + i + 1, n - i - 1, m))
		return bad(c, "request line: not HTTP/1.x");
	m->method = xstrndup(l, t0 - 1);
	m->target = xstrndup(l + t0, t1 - t0);
	return 0;
}

static int status_line(struct cursor *c, const uint8_t *l, size_t n,
		       struct pt_http_msg *m)
{
	size_t i;

	if (n < 12 || parse_version(l, 8, m) || l[8] != ' ')
		return bad(c, "status line: not HTTP/1.x");
	for (i = 9; i < 12; i++)
		if (l[i] < '0' || l[i] > '9')
			return bad(c, "status line: no 3-digit status");
	m->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	if (m->status < 100)
		return bad(c, "status line: status %d", m->status);
	/* the SP before an empty reason is often left out */
	if (n > 12 && l[12] != ' ')
		return bad(c, "status line: no SP after status");
	for (i = 13; i < n; i++)
		if ((l[i] < 0x20 && l[i] != '\t') || l[i] == 0x7f)
			return bad(c, "status line: control byte in reason");
	m->reason = xstrndup(l + (n > 13 ? 13 : n), n > 13 ? n - 13 : 0);
	return 0;
}

static void trim_ows(const uint8_t **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t'))
		(*p)++, (*n)--;
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

static void add_field(struct pt_http_field **v, size_t *nv,
		      const uint8_t *name, size_t nn, const uint8_t *val,
		      size_t vn)
{
	*v = pt_xrealloc(*v, *nv + 1, sizeof(**v));
	(*v)[*nv].name = xstrndup(name, nn);
	(*v)[*nv].value = xstrndup(val, vn);
	(*nv)++;
}

/* obs-fold: the previous value goes on after one SP. */
static void fold(struct pt_http_field *f, const uint8_t *val, size_t vn)
{
	size_t old = strlen(f->value);
	char *s = pt_xcalloc(1, old + 1 + vn + 1);

	memcpy(s, f->value, old);
	s[old] = ' ';
	memcpy(s + old + 1, val, vn);
	if (!old)	/* a value that only begins on the next line */
		memmove(s, s + 1, vn + 1);
	free(f->value);
	f->value = s;
}

/*
 * Fields up to and including the empty line, from c->pos. 1 when the
 * empty line was reached, 0 when the bytes ran out, -1 when malformed.
 */
static int fields(struct cursor *c, size_t limit, struct pt_http_field **v,
		  size_t *nv)
{
	size_t len, next, i;
	int r;

	for (;;) {
		const uint8_t *l, *val;
		size_t vn;

		if (c->pos >= limit)
			return bad(c, "head larger than %d bytes",
				   PT_HTTP_HEAD_MAX);
		r = line(c, limit - c->pos, "head larger than 65536 bytes", &len,
			 &next);
		if (r <= 0)
			return r;
		l = c->p + c->pos;
		if (!len) {
			c->pos = next;
			return 1;
		}
		for (i = 0; i < len; i++)
			if (!l[i] || (l[i] < 0x20 && l[i] != '\t') ||
			    l[i] == 0x7f)
				return bad(c, "control byte in a field");
		if ((l[0] == ' ' || l[0] == '\t') && !*nv) {
			/*
			 * RFC 9112 2.2: such a line is consumed unprocessed
			 * (or the message refused): servers differ, so a
			 * recorder cannot know how this one was framed.
			 */
			c->ambiguous = "whitespace before the first header line";
			c->pos = next;
			continue;
		}
		if (l[0] == ' ' || l[0] == '\t') {
			val = l;
			vn = len;
			trim_ows(&val, &vn);
			fold(&(*v)[*nv - 1], val, vn);
			c->pos = next;
			continue;
		}
		for (i = 0; i < len && is_tchar(l[i]); i++)
			;
		if (!i || i == len || l[i] != ':')
			return bad(c, i < len && (l[i] == ' ' || l[i] == '\t') ?
				   "whitespace before a field's colon" :
				   "field without a name and colon");
		if (*nv >= PT_HTTP_FIELDS_MAX)
			return bad(c, "more than %d fields", PT_HTTP_FIELDS_MAX);
		val = l + i + 1;
		vn = len - i - 1;
		trim_ows(&val, &vn);
		add_field(v, nv, l, i, val, vn);
		c->pos = next;
	}
}

const char *pt_http_field(const struct pt_http_msg *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nfields; i++)
		if (!strcasecmp(m->fields[i].name, name))
			return m->fields[i].value;
	return NULL;
}

/* Calls fn for each list element of every field named name (RFC 9110 5.6.1). */
static bool each_token(const struct pt_http_msg *m, const char *name,
		       bool (*fn)(const char *t, size_t n, void *ctx),
		       void *ctx)
{
	size_t i;

	for (i = 0; i < m->nfields; i++) {
		const char *s = m->fields[i].value;

		if (strcasecmp(m->fields[i].name, name))
			continue;
		while (*s) {
			const char *e = strchr(s, ',');
			const uint8_t *t = (const uint8_t *)s;
			size_t n = e ? (size_t)(e - s) : strlen(s);

			trim_ows(&t, &n);
			if (n && fn((const char *)t, n, ctx))
				return true;
			s = e ? e + 1 : s + strlen(s);
		}
	}
	return false;
}

static bool token_eq(const char *t, size_t n, void *ctx)
{
	const char *want = ctx;

	/* parameters after ';' do not change the token */
	const char *semi = memchr(t, ';', n);

	if (semi)
		n = semi - t;
	while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	return strlen(want) == n && !strncasecmp(t, want, n);
}

bool pt_http_has_token(const struct pt_http_msg *m, const char *name,
		       const char *token)
{
	return each_token(m, name, token_eq, (void *)token);
}

struct last_token {
	const char *t;
	size_t n;
};

static bool keep_last(const char *t, size_t n, void *ctx)
{
	struct last_token *l = ctx;

	l->t = t;
	l->n = n;
	return false;
}

/* Content-Length: digits, or a list of the same digits (RFC 9110 8.6). */
static int content_length(struct cursor *c, const struct pt_http_msg *m,
			  bool *has, uint64_t *len)
{
	size_t i;

	*has = false;
	for (i = 0; i < m->nfields; i++) {
		const char *s = m->fields[i].value;

		if (strcasecmp(m->fields[i].name, "Content-Length"))
			continue;
		while (true) {
			uint64_t v = 0;
			size_t nd = 0, sig = 0;

			while (*s == ' ' || *s == '\t')
				s++;
			while (*s >= '0' && *s <= '9') {
				/* leading zeros are digits too, but no size */
				if (++nd && (v || *s != '0') && ++sig > 18)
					return bad(c, "Content-Length too large");
				v = v * 10 + (*s++ - '0');
			}
			while (*s == ' ' || *s == '\t')
				s++;
			if (!nd || (*s && *s != ','))
				return bad(c, "Content-Length not a number");
			if (*has && v != *len)
				return bad(c, "Content-Length values differ");
			*has = true;
			*len = v;
			if (!*s)
				break;
			s++;
		}
	}
	return 0;
}

/* RFC 9112 6.3: how the body of this message ends. */
static int framing(struct cursor *c, struct pt_http_msg *m,
		   const char *req_method)
{
	struct last_token te = {};
	bool has_cl;
	int r;

	if (!m->request) {
		if ((m->status >= 100 && m->status < 200) ||
		    m->status == 204 || m->status == 304 ||
		    (req_method && !strcmp(req_method, "HEAD"))) {
			m->framing = m->status == 101 ? PT_FRAME_TUNNEL :
				     PT_FRAME_NONE;
			return 0;
		}
		if (req_method && !strcmp(req_method, "CONNECT") &&
		    m->status < 300) {
			m->framing = PT_FRAME_TUNNEL;
			return 0;
		}
	} else if (!strcmp(m->method, "CONNECT")) {
		/* RFC 9110 9.3.6: a CONNECT request has no content */
		m->framing = PT_FRAME_NONE;
		return 0;
	}
	each_token(m, "Transfer-Encoding", keep_last, &te);
	if (pt_http_field(m, "Transfer-Encoding") &&
	    pt_http_field(m, "Content-Length"))
		c->ambiguous = te.t ? "both Transfer-Encoding and Content-Length" :
			       "an empty Transfer-Encoding beside Content-Length";
	/* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has
	 * faulty framing */
	if (te.t && m->major == 1 && m->minor == 0)
		return bad(c, "Transfer-Encoding in an HTTP/1.0 message");
	if (te.t) {
		if (token_eq(te.t, te.n, "chunked")) {
			m->framing = PT_FRAME_CHUNKED;
			return 0;
		}
		if (m->request)
			return bad(c, "request Transfer-Encoding does not end in chunked");
		m->framing = PT_FRAME_CLOSE;
		return 0;
	}
	r = content_length(c, m, &has_cl, &m->content_length);
	if (r)
		return r;
	if (has_cl)
		m->framing = m->content_length ? PT_FRAME_LENGTH : PT_FRAME_NONE;
	else
		m->framing = m->request ? PT_FRAME_NONE : PT_FRAME_CLOSE;
	return 0;
}

static int hexval(uint8_t ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static void body_add(uint8_t **buf, size_t *out, size_t *cap,
		     const uint8_t *p, size_t n)
{
	if (n > *cap - *out) {
		size_t want = *cap ? *cap : 4096;

		while (want - *out < n)
			want *= 2;
		*buf = pt_xrealloc(*buf, want, 1);
		*cap = want;
	}
	memcpy(*buf + *out, p, n);
	*out += n;
}

/*
 * Chunked body from c->pos (RFC 9112 7.1). 1 when the last chunk and the
 * trailer section are in, 0 when the bytes ran out, -1 malformed.
 */
static int chunked(struct cursor *c, struct pt_http_msg *m)
{
	size_t len, next, i, out = 0, cap = 0;
	uint8_t *buf = NULL;
	int r;

	for (;;) {
		uint64_t size = 0;
		size_t nd = 0, sig = 0;
		const uint8_t *l;

		r = line(c, PT_HTTP_CHUNK_LINE_MAX, "chunk size line too long",
			 &len, &next);
		if (r <= 0)
			goto out;
		l = c->p + c->pos;
		for (i = 0; i < len && hexval(l[i]) >= 0; i++) {
			/* leading zeros are allowed and do not count */
			if (++nd && (size || hexval(l[i])) && ++sig > 15) {
				r = bad(c, "chunk size too large");
				goto out;
			}
			size = size << 4 | hexval(l[i]);
		}
		if (!nd) {
			r = bad(c, "chunk without a size");
			goto out;
		}
		/* BWS, then ';' chunk-ext: names, values, quoted strings */
		while (i < len && (l[i] == ' ' || l[i] == '\t'))
			i++;
		if (i < len && l[i] != ';') {
			r = bad(c, "junk after a chunk size");
			goto out;
		}
		for (; i < len; i++)
			if (!l[i] || (l[i] < 0x20 && l[i] != '\t') ||
			    l[i] == 0x7f) {
				r = bad(c, "control byte in a chunk extension");
				goto out;
			}
		c->pos = next;
		if (!size)
			break;
		if (size > c->n - c->pos) {
			body_add(&buf, &out, &cap, c->p + c->pos, c->n - c->pos);
			c->pos = c->n;
			r = 0;
			goto out;
		}
		body_add(&buf, &out, &cap, c->p + c->pos, size);
		c->pos += size;
		r = line(c, 2, "chunk data longer than its size", &len, &next);
		if (r <= 0)
			goto out;
		if (len) {
			r = bad(c, "chunk data longer than its size");
			goto out;
		}
		c->pos = next;
	}
	r = fields(c, c->pos + PT_HTTP_HEAD_MAX, &m->trailers, &m->ntrailers);
out:
	m->body = m->body_alloc = pt_xrealloc(buf, out + 1, 1);
	m->body_len = out;
	return r;
}

static void fields_free(struct pt_http_field *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
}

int pt_http_parse(const uint8_t *p, size_t n, bool request,
		  const char *req_method, bool eof, struct pt_http_msg *m,
		  char *err, size_t errlen)
{
	struct cursor c = { .p = p, .n = n, .err = err, .errlen = errlen };
	size_t len, next, skipped = 0;
	int r;

	memset(m, 0, sizeof(*m));
	m->request = request;
	if (errlen)
		err[0] = 0;
	/* RFC 9112 2.2: a server ignores empty lines before a request */
	for (;;) {
		r = line(&c, PT_HTTP_HEAD_MAX, "start line longer than 65536 bytes",
			 &len, &next);
		if (r < 0)
			return r;
		if (!r)
			goto partial;
		if (len || !request || ++skipped > 4)
			break;
		c.pos = next;
	}
	r = request ? request_line(&c, p + c.pos, len, m) :
		      status_line(&c, p + c.pos, len, m);
	if (r)
		goto fail;
	c.pos = next;
	r = fields(&c, PT_HTTP_HEAD_MAX, &m->fields, &m->nfields);
	if (r < 0)
		goto fail;
	if (!r) {
		/* keep the start line, drop the fields of a head cut short */
		fields_free(m->fields, m->nfields);
		m->fields = NULL;
		m->nfields = 0;
		goto partial;
	}
	m->head_len = c.pos;
	r = framing(&c, m, req_method);
	if (r)
		goto fail;
	if (c.crlf && c.lf)
		c.ambiguous = "a header line ends in a bare LF among CRLF lines";
	m->ambiguous = c.ambiguous;

	switch (m->framing) {
	case PT_FRAME_NONE:
	case PT_FRAME_TUNNEL:
		m->complete = true;
		break;
	case PT_FRAME_LENGTH:
		m->body = p + c.pos;
		if (m->content_length > n - c.pos) {
			m->body_len = n - c.pos;
			c.pos = n;
		} else {
			m->body_len = m->content_length;
			c.pos += m->content_length;
			m->complete = true;
		}
		break;
	case PT_FRAME_CLOSE:
		m->body = p + c.pos;
		m->body_len = n - c.pos;
		c.pos = n;
		m->complete = eof;
		break;
	case PT_FRAME_CHUNKED:
		r = chunked(&c, m);
		if (r < 0)
			goto fail;
		m->complete = r > 0;
		if (!m->complete)
			c.pos = n;
		break;
	}
	m->len = c.pos;
	return 0;
partial:
	/* a start line cut short still gives strings, empty ones */
	if (request && !m->method)
		m->method = xstrndup(p, 0);
	if (request && !m->target)
		m->target = xstrndup(p, 0);
	if (!request && !m->reason)
		m->reason = xstrndup(p, 0);
	m->len = n;
	return 0;
fail:
	pt_http_msg_free(m);
	return -1;
}

void pt_http_msg_free(struct pt_http_msg *m)
{
	free(m->method);
	free(m->target);
	free(m->reason);
	fields_free(m->fields, m->nfields);
	fields_free(m->trailers, m->ntrailers);
	free(m->body_alloc);
	memset(m, 0, sizeof(*m));
}

int pt_http_decode_body(const struct pt_http_msg *m, uint8_t **out,
			size_t *outlen, char *err, size_t errlen)
{
	const char *ce = pt_http_field(m, "Content-Encoding");
	z_stream z = {};
	size_t cap, left, done;
	const uint8_t *in;
	uint8_t *buf;
	int wbits, r;

	*out = NULL;
	*outlen = 0;
	if (!ce || !*ce || !strcasecmp(ce, "identity") || !m->body_len)
		return 0;
	if (!strcasecmp(ce, "gzip") || !strcasecmp(ce, "x-gzip"))
		wbits = 16 + MAX_WBITS;
	else if (!strcasecmp(ce, "deflate"))
		wbits = 32 + MAX_WBITS;	/* zlib header, detected */
	else {
		snprintf(err, errlen, "Content-Encoding %.40s not decoded", ce);
		return -1;
	}
again:
	if (inflateInit2(&z, wbits) != Z_OK) {
		snprintf(err, errlen, "zlib: cannot start inflate");
		return -1;
	}
	cap = m->body_len * 4 + 4096;
	if (cap > PT_HTTP_DECODED_MAX)
		cap = PT_HTTP_DECODED_MAX;
	buf = pt_xcalloc(1, cap);
	in = m->body;
	left = m->body_len;
	z.next_out = buf;
	z.avail_out = cap;
	for (;;) {
		/* zlib counts input in 32 bits: feed a larger body in parts */
		if (!z.avail_in && left) {
			z.next_in = (uint8_t *)in;
			z.avail_in = left > (1u << 30) ? (1u << 30) : left;
			in += z.avail_in;
			left -= z.avail_in;
		}
		r = inflate(&z, Z_NO_FLUSH);
		if (r == Z_STREAM_END) {
			/* RFC 1952: a gzip file may hold several members */
			if (wbits == 16 + MAX_WBITS &&
			    (z.avail_in || left) && inflateReset(&z) == Z_OK) {
				if (!z.avail_in)
					continue;
				if (z.next_in[0] == 0x1f)
					continue;
			}
			break;
		}
		if ((r == Z_OK || r == Z_BUF_ERROR) && !z.avail_out &&
		    cap < PT_HTTP_DECODED_MAX) {
			cap = cap * 2 > PT_HTTP_DECODED_MAX ?
			      PT_HTTP_DECODED_MAX : cap * 2;
			done = z.next_out - buf;
			buf = pt_xrealloc(buf, cap, 1);
			z.next_out = buf + done;
			z.avail_out = cap - done;
			continue;
		}
		if (r == Z_OK && (z.avail_in || left) && z.avail_out)
			continue;
		inflateEnd(&z);
		free(buf);
		/* "deflate" is sometimes raw deflate, without zlib's header */
		if (wbits == 32 + MAX_WBITS && r == Z_DATA_ERROR) {
			memset(&z, 0, sizeof(z));
			wbits = -MAX_WBITS;
			goto again;
		}
		if (!z.avail_out)
			snprintf(err, errlen, "%s body decodes to more than %u bytes",
				 ce, PT_HTTP_DECODED_MAX);
		else if (r == Z_OK || r == Z_BUF_ERROR)
			snprintf(err, errlen, "%s body is cut short", ce);
		else
			snprintf(err, errlen, "%s body does not decode (%s)", ce,
				 z.msg ? z.msg : "zlib error");
		return -1;
	}
	*out = buf;
	/* not total_out: inflateReset() between gzip members clears it */
	*outlen = z.next_out - buf;
	inflateEnd(&z);
	return 1;
}

bool pt_http_looks_like_start(const uint8_t *p, size_t n, bool request)
{
	const uint8_t *nl;
	size_t i, l;

	if (!request)
		return n >= 9 && !memcmp(p, "HTTP/1.", 7) &&
		       (p[7] == '0' || p[7] == '1') && p[8] == ' ';
	/* methods are tokens: M-SEARCH, VERSION-CONTROL, BASELINE_X */
	for (i = 0; i < n && i < 20 && ((p[i] >= 'A' && p[i] <= 'Z') ||
					(i && (p[i] == '-' || p[i] == '_'))); i++)
		;
	if (i < 3 || i + 1 >= n || p[i] != ' ')
		return false;
	/* the line, if it ends here, must end in the version */
	nl = memchr(p, '\n', n < PT_HTTP_HEAD_MAX ? n : PT_HTTP_HEAD_MAX);
	if (!nl)
		return true;
	l = nl - p;
	if (l && p[l - 1] == '\r')
		l--;
	return l > i + 9 && !memcmp(p + l - 9, " HTTP/1.", 8) &&
	       (p[l - 1] == '0' || p[l - 1] == '1');
}
