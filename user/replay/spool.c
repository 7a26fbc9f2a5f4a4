// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Replay's spool: records of cases and results in an unlinked file. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/common.h"
#include "replay/spool.h"

#define NO_STR		UINT64_MAX

static void put(struct pt_rbuf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = pt_xrealloc(b->p, b->cap, 1);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

void pt_rbuf_u64(struct pt_rbuf *b, uint64_t v)
{
	put(b, &v, sizeof(v));
}

void pt_rbuf_bytes(struct pt_rbuf *b, const void *p, size_t n)
{
	pt_rbuf_u64(b, n);
	if (n)
		put(b, p, n);
}

void pt_rbuf_str(struct pt_rbuf *b, const char *s)
{
	if (!s)
		pt_rbuf_u64(b, NO_STR);
	else
		pt_rbuf_bytes(b, s, strlen(s));
}

uint64_t pt_rbuf_get_u64(struct pt_rbuf *b)
{
	uint64_t v = 0;

	if (b->bad || b->n - b->off < sizeof(v)) {
		b->bad = true;
		return 0;
	}
	memcpy(&v, b->p + b->off, sizeof(v));
	b->off += sizeof(v);
	return v;
}

static uint8_t *get_n(struct pt_rbuf *b, uint64_t n)
{
	uint8_t *p;

	if (b->bad || n > b->n - b->off) {
		b->bad = true;
		return NULL;
	}
	p = pt_xrealloc(NULL, n + 1, 1);
	memcpy(p, b->p + b->off, n);
	p[n] = 0;
	b->off += n;
	return p;
}

char *pt_rbuf_get_str(struct pt_rbuf *b)
{
	uint64_t n = pt_rbuf_get_u64(b);

	return n == NO_STR ? NULL : (char *)get_n(b, n);
}

uint8_t *pt_rbuf_get_bytes(struct pt_rbuf *b, size_t *n)
{
	uint64_t len = pt_rbuf_get_u64(b);

	*n = 0;
	if (!len)
		return NULL;
	if (len == NO_STR) {
		b->bad = true;
		return NULL;
	}
	*n = len;
	return get_n(b, len);
}

void pt_rbuf_free(struct pt_rbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void put_fields(struct pt_rbuf *b, const struct pt_http_field *f,
		       size_t n)
{
	size_t i;

	pt_rbuf_u64(b, n);
	for (i = 0; i < n; i++) {
		pt_rbuf_str(b, f[i].name);
		pt_rbuf_str(b, f[i].value);
	}
}

static struct pt_http_field *get_fields(struct pt_rbuf *b, size_t *n)
{
	uint64_t k = pt_rbuf_get_u64(b), i;
	struct pt_http_field *f;

	*n = 0;
	/* each field takes at least 16 bytes: a bad count reads as bad */
	if (b->bad || k > (b->n - b->off) / 16) {
		b->bad = true;
		return NULL;
	}
	f = pt_xcalloc(k + 1, sizeof(*f));
	for (i = 0; i < k; i++) {
		f[i].name = pt_rbuf_get_str(b);
		f[i].value = pt_rbuf_get_str(b);
		if (!f[i].name)
			f[i].name = pt_xstrdup("");
		if (!f[i].value)
			f[i].value = pt_xstrdup("");
	}
	*n = k;
	return f;
}

void pt_rbuf_msg(struct pt_rbuf *b, const struct pt_http_msg *m)
{
	pt_rbuf_str(b, m->method);
	pt_rbuf_str(b, m->target);
	pt_rbuf_u64(b, (uint64_t)(int64_t)m->status);
	pt_rbuf_u64(b, m->minor);
	put_fields(b, m->fields, m->nfields);
	pt_rbuf_bytes(b, m->body, m->body_len);
}

void pt_rbuf_get_msg(struct pt_rbuf *b, struct pt_http_msg *m, bool request)
{
	memset(m, 0, sizeof(*m));
	m->request = request;
	m->method = pt_rbuf_get_str(b);
	m->target = pt_rbuf_get_str(b);
	m->status = (int)(int64_t)pt_rbuf_get_u64(b);
	m->major = 1;
	m->minor = (uint8_t)pt_rbuf_get_u64(b);
	m->fields = get_fields(b, &m->nfields);
	m->body_alloc = pt_rbuf_get_bytes(b, &m->body_len);
	m->body = m->body_alloc;
	m->complete = true;
	if (request && (!m->method || !m->target)) {
		b->bad = true;
		free(m->method);
		free(m->target);
		m->method = pt_xstrdup("GET");
		m->target = pt_xstrdup("/");
	}
}

void pt_rbuf_result(struct pt_rbuf *b, const struct pt_rresult *r)
{
	pt_rbuf_u64(b, r->done);
	pt_rbuf_u64(b, (uint64_t)(int64_t)r->status);
	pt_rbuf_u64(b, r->ns);
	pt_rbuf_str(b, r->err);
	put_fields(b, r->fields, r->nfields);
	pt_rbuf_bytes(b, r->body, r->body_len);
}

void pt_rbuf_get_result(struct pt_rbuf *b, struct pt_rresult *r)
{
	char *err;

	memset(r, 0, sizeof(*r));
	r->done = pt_rbuf_get_u64(b);
	r->status = (int)(int64_t)pt_rbuf_get_u64(b);
	r->ns = pt_rbuf_get_u64(b);
	err = pt_rbuf_get_str(b);
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
	free(err);
	r->fields = get_fields(b, &r->nfields);
	r->body = pt_rbuf_get_bytes(b, &r->body_len);
}

/* A case's result: what the reports say of it (r[0] without its fields
 * and body). */
void pt_rbuf_case(struct pt_rbuf *b, const struct pt_rcase *c)
{
	struct pt_rresult r0 = c->r[0];
	size_t i;

	r0.fields = NULL;
	r0.nfields = 0;
	r0.body = NULL;
	r0.body_len = 0;
	pt_rbuf_u64(b, c->conn_id);
	pt_rbuf_u64(b, c->seq);
	pt_rbuf_str(b, c->name);
	pt_rbuf_str(b, c->why);
	pt_rbuf_u64(b, c->state);
	pt_rbuf_u64(b, c->at_ns);
	pt_rbuf_u64(b, (uint64_t)(int64_t)c->recorded_status);
	pt_rbuf_result(b, &r0);
	pt_rbuf_u64(b, c->diffs.noise_auto);
	pt_rbuf_u64(b, c->diffs.noise_rule);
	pt_rbuf_u64(b, c->diffs.noise_learned);
	pt_rbuf_u64(b, c->diffs.n);
	for (i = 0; i < c->diffs.n; i++) {
		pt_rbuf_str(b, c->diffs.v[i].where);
		pt_rbuf_str(b, c->diffs.v[i].want);
		pt_rbuf_str(b, c->diffs.v[i].got);
	}
}

void pt_rbuf_get_case(struct pt_rbuf *b, struct pt_rcase *c)
{
	uint64_t n, i;

	memset(c, 0, sizeof(*c));
	c->conn_id = pt_rbuf_get_u64(b);
	c->seq = pt_rbuf_get_u64(b);
	c->name = pt_rbuf_get_str(b);
	c->why = pt_rbuf_get_str(b);
	c->state = pt_rbuf_get_u64(b);
	c->at_ns = pt_rbuf_get_u64(b);
	c->recorded_status = (int)(int64_t)pt_rbuf_get_u64(b);
	pt_rbuf_get_result(b, &c->r[0]);
	c->diffs.noise_auto = pt_rbuf_get_u64(b);
	c->diffs.noise_rule = pt_rbuf_get_u64(b);
	c->diffs.noise_learned = pt_rbuf_get_u64(b);
	n = pt_rbuf_get_u64(b);
	if (b->bad || n > (b->n - b->off) / 24)
		n = 0, b->bad = true;
	c->diffs.v = pt_xcalloc(n + 1, sizeof(*c->diffs.v));
	for (i = 0; i < n; i++) {
		c->diffs.v[i].where = pt_rbuf_get_str(b);
		c->diffs.v[i].want = pt_rbuf_get_str(b);
		c->diffs.v[i].got = pt_rbuf_get_str(b);
		if (!c->diffs.v[i].where || !c->diffs.v[i].want ||
		    !c->diffs.v[i].got) {
			b->bad = true;
			break;
		}
	}
	c->diffs.n = i;
	if (!c->name)
		c->name = pt_xstrdup("?");
}

int pt_rfile_open(struct pt_rfile *f, const char *who, const char *what)
{
	const char *dir = getenv("TMPDIR");
	char path[PATH_MAX];

	f->dir = dir && *dir ? dir : "/tmp";
	if (snprintf(path, sizeof(path), "%s/podtap-%s.XXXXXX", f->dir, who) >=
	    (int)sizeof(path)) {
		pt_err("%s: TMPDIR %s: the name is too long", who, f->dir);
		return -ENAMETOOLONG;
	}
	f->fd = mkostemp(path, O_CLOEXEC);
	if (f->fd < 0) {
		int err = errno;

		pt_err("%s: cannot make a file in %s to keep %s in: %s (set TMPDIR)",
		       who, f->dir, what, strerror(err));
		return -err;
	}
	unlink(path);
	f->end = sizeof(struct pt_rhdr);	/* offset 0 is no record */
	return 0;
}

void pt_rfile_close(struct pt_rfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

uint64_t pt_rfile_reserve(struct pt_rfile *f, size_t len)
{
	uint64_t off = f->end;

	f->end += sizeof(struct pt_rhdr) + len;
	return off;
}

static int pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? errno : EIO;
		p = (const uint8_t *)p + k;
		n -= k;
		off += k;
	}
	return 0;
}

static int pread_all(int fd, void *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t k = pread(fd, p, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? errno : EIO;
		p = (uint8_t *)p + k;
		n -= k;
		off += k;
	}
	return 0;
}

int pt_rfile_put(struct pt_rfile *f, uint64_t off, const struct pt_rhdr *h,
		 const struct pt_rbuf *b)
{
	struct pt_rhdr hd = h ? *h : (struct pt_rhdr){};
	int err;

	hd.len = (uint32_t)b->n;
	err = pwrite_all(f->fd, &hd, sizeof(hd), off);
	return err ? err : pwrite_all(f->fd, b->p, b->n, off + sizeof(hd));
}

int pt_rfile_get(struct pt_rfile *f, uint64_t off, struct pt_rhdr *h,
		 struct pt_rbuf *b)
{
	struct pt_rhdr hd;
	int err = pread_all(f->fd, &hd, sizeof(hd), off);

	if (err)
		return err;
	if (h)
		*h = hd;
	b->p = pt_xrealloc(b->p, hd.len + 1, 1);
	b->cap = hd.len + 1;
	b->n = hd.len;
	b->off = 0;
	b->bad = false;
	return pread_all(f->fd, b->p, hd.len, off + sizeof(hd));
}

uint64_t pt_rfile_reserve_raw(struct pt_rfile *f, uint64_t len)
{
	uint64_t off = f->end;

	f->end += len;
	return off;
}

int pt_rfile_put_raw(struct pt_rfile *f, uint64_t off, const void *p,
		     uint64_t n)
{
	return pwrite_all(f->fd, p, n, off);
}

int pt_rfile_get_raw(struct pt_rfile *f, uint64_t off, void *p, uint64_t n)
{
	return pread_all(f->fd, p, n, off);
}

int pt_rfile_set(struct pt_rfile *f, uint64_t off, size_t field, uint64_t v)
{
	return pwrite_all(f->fd, &v, sizeof(v), off + field);
}
