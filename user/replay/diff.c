// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Response comparison with noise: see diff.h. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "base/common.h"
#include "base/jread.h"
#include "export/export.h"
#include "replay/diff.h"

/* Fields that differ between any two runs, or that say how the bytes were
 * framed rather than what they mean (the body is compared instead). */
const char *const pt_noise_default_headers[] = {
	"Date", "Age", "Expires", "Last-Modified", "ETag", "Connection",
	"Keep-Alive", "Transfer-Encoding", "Content-Length", "Proxy-Connection",
	"Via", NULL,
};

#define SNIP_MAX	120

int pt_noise_add(struct pt_noise *nz, const char *rule)
{
	if (!strncasecmp(rule, "header.", 7) && rule[7]) {
		nz->headers = pt_xrealloc(nz->headers, nz->nheaders + 1,
					  sizeof(*nz->headers));
		nz->headers[nz->nheaders++] = pt_xstrdup(rule + 7);
		return 0;
	}
	if (!strncmp(rule, "body", 4) &&
	    (rule[4] == '.' || rule[4] == '[' || rule[4] == 0)) {
		const char *p = rule[4] == '.' ? rule + 5 : rule[4] ? rule + 4 : "$";
		char *path;

		if (*p == '$')
			path = pt_xstrdup(p);
		else if (asprintf(&path, "$%s%s", *p == '[' ? "" : ".", p) < 0)
			pt_oom();
		nz->paths = pt_xrealloc(nz->paths, nz->npaths + 1,
					sizeof(*nz->paths));
		nz->paths[nz->npaths++] = path;
		return 0;
	}
	pt_err("--noise %s: want header.NAME or body.PATH (a JSON path such as body.items[*].id)",
	       rule);
	return -EINVAL;
}

int pt_noise_add_regex(struct pt_noise *nz, const char *re)
{
	char msg[128];
	int err;

	nz->re = pt_xrealloc(nz->re, nz->nre + 1, sizeof(*nz->re));
	err = regcomp(&nz->re[nz->nre], re, REG_EXTENDED);
	if (err) {
		regerror(err, &nz->re[nz->nre], msg, sizeof(msg));
		pt_err("--noise-regex %s: %s", re, msg);
		return -EINVAL;
	}
	/* one that matches nothing at all would mask between every byte */
	if (!regexec(&nz->re[nz->nre], "", 0, NULL, 0)) {
		regfree(&nz->re[nz->nre]);
		pt_err("--noise-regex '%s': matches the empty string; give one that matches what varies",
		       re);
		return -EINVAL;
	}
	nz->nre++;
	return 0;
}

void pt_noise_free(struct pt_noise *nz)
{
	size_t i;

	for (i = 0; i < nz->nheaders; i++)
		free(nz->headers[i]);
	for (i = 0; i < nz->npaths; i++)
		free(nz->paths[i]);
	for (i = 0; i < nz->nre; i++)
		regfree(&nz->re[i]);
	free(nz->headers);
	free(nz->paths);
	free(nz->re);
	memset(nz, 0, sizeof(*nz));
}

void pt_diffs_free(struct pt_diffs *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		free(d->v[i].where);
		free(d->v[i].want);
		free(d->v[i].got);
	}
	free(d->v);
	memset(d, 0, sizeof(*d));
}

/* Bytes as short printable text: \xNN for the rest, "..." when cut. */
static char *snip(const void *p, size_t n)
{
	const unsigned char *s = p;
	char *out = pt_xcalloc(1, SNIP_MAX * 4 + 8), *o = out;
	size_t i;

	for (i = 0; i < n && o - out < SNIP_MAX; i++) {
		if (s[i] == '\n')
			o += sprintf(o, "\\n");
		else if (s[i] == '\r')
			o += sprintf(o, "\\r");
		else if (s[i] < 0x20 || s[i] == 0x7f)
			o += sprintf(o, "\\x%02x", s[i]);
		else
			*o++ = (char)s[i];
	}
	if (i < n)
		strcpy(o, "...");
	return out;
}

static void add(struct pt_diffs *d, char *where, char *want, char *got)
{
	d->v = pt_xrealloc(d->v, d->n + 1, sizeof(*d->v));
	d->v[d->n++] = (struct pt_diff){ where, want, got };
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		pt_oom();
	va_end(ap);
	return s;
}

/* s with every match of nz's regular expressions replaced by one NUL
 * byte; NULL if there are none. */
static char *masked(const struct pt_noise *nz, const void *p, size_t n,
		    size_t *outlen)
{
	char *s, *o, *out;
	size_t i;

	if (!nz->nre || memchr(p, 0, n))
		return NULL;
	s = pt_xcalloc(1, n + 1);
	memcpy(s, p, n);
	for (i = 0; i < nz->nre; i++) {
		regmatch_t m;
		char *at = s;

		/* a match becomes one byte; an empty one (refused by
		 * pt_noise_add_regex, but never trusted) keeps the byte it
		 * stepped over: at most two bytes out for each in */
		out = o = pt_xcalloc(2, strlen(s) + 1);
		while (*at && !regexec(&nz->re[i], at, 1, &m, at == s ? 0 : REG_NOTBOL)) {
			memcpy(o, at, m.rm_so);
			o += m.rm_so;
			*o++ = '\x01';
			if (m.rm_eo > m.rm_so) {
				at += m.rm_eo;
			} else {
				at += m.rm_so;
				if (*at)
					*o++ = *at++;
			}
		}
		strcpy(o, at);
		free(s);
		s = out;
	}
	*outlen = strlen(s);
	return s;
}

static bool masked_equal(const struct pt_noise *nz, const void *a, size_t an,
			 const void *b, size_t bn)
{
	size_t ma, mb;
	char *x = masked(nz, a, an, &ma), *y = masked(nz, b, bn, &mb);
	bool eq = x && y && ma == mb && !memcmp(x, y, ma);

	free(x);
	free(y);
	return eq;
}

static bool is_learned(char *const *learned, size_t n, const char *where)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(learned[i], where))
			return true;
	return false;
}

/* Is a differing value noise? Counts it where it belongs if so. */
static bool noise(const struct pt_noise *nz, char *const *learned,
		  size_t nlearned, const char *where, const char *a, size_t an,
		  const char *b, size_t bn, struct pt_diffs *d)
{
	if (is_learned(learned, nlearned, where)) {
		d->noise_learned++;
		return true;
	}
	if (masked_equal(nz, a, an, b, bn)) {
		d->noise_rule++;
		return true;
	}
	if (!nz->no_auto && pt_noisy_value(a, an) && pt_noisy_value(b, bn)) {
		d->noise_auto++;
		return true;
	}
	return false;
}

/* ---- header fields ---- */

static bool header_skipped(const struct pt_noise *nz, const char *name)
{
	size_t i;

	for (i = 0; pt_noise_default_headers[i]; i++)
		if (!strcasecmp(pt_noise_default_headers[i], name))
			return true;
	for (i = 0; i < nz->nheaders; i++)
		if (!strcasecmp(nz->headers[i], name))
			return true;
	for (i = 0; i < nz->nkkeys; i++) {
		const char *k = nz->kkeys[i], *last = strrchr(k, '.');

		if (!strncasecmp(k, "header.", 7) && !strcasecmp(last + 1, name))
			return true;
	}
	return false;
}

/* "$.items[2][\"a b\"].id" as Keploy names it: "items.a b.id", lowercase */
static char *keploy_path(const char *path)
{
	char *out = pt_xcalloc(1, strlen(path) + 1), *o = out;
	const char *p = path + (path[0] == '$');

	while (*p) {
		if (*p == '[' && p[1] == '"') {
			const char *end = strstr(p + 2, "\"]");

			if (!end)
				break;
			if (o > out)
				*o++ = '.';
			for (p += 2; p < end; p++)
				*o++ = (char)tolower((unsigned char)*p);
			p += 2;
		} else if (*p == '[') {
			p = strchr(p, ']');
			if (!p)
				break;
			p++;
		} else if (*p == '.') {
			if (o > out)
				*o++ = '.';
			p++;
		} else {
			*o++ = (char)tolower((unsigned char)*p++);
		}
	}
	*o = 0;
	return out;
}

/* "a,b" and "a, b" are one list (RFC 9110 5.3): commas followed by one
 * space, whatever was there */
static char *list_norm(char *s)
{
	char *o = s, *p = s;

	while (*p) {
		*o++ = *p;
		if (*p++ == ',') {
			while (*p == ' ' || *p == '\t')
				p++;
			*o++ = ' ';
		}
	}
	*o = 0;
	return s;
}

/* Every value of a field name, joined with ", " as RFC 9110 allows. */
static char *joined(const struct pt_resp *r, const char *name)
{
	char *s = NULL, *t;
	size_t i;

	for (i = 0; i < r->nfields; i++) {
		if (strcasecmp(r->fields[i].name, name))
			continue;
		if (!s) {
			s = pt_xstrdup(r->fields[i].value);
			continue;
		}
		t = xprintf("%s, %s", s, r->fields[i].value);
		free(s);
		s = t;
	}
	return s ? list_norm(s) : NULL;
}

/* Is field i the first of its name in r? */
static bool first_of_name(const struct pt_resp *r, size_t i)
{
	size_t k;

	for (k = 0; k < i; k++)
		if (!strcasecmp(r->fields[k].name, r->fields[i].name))
			return false;
	return true;
}

static void diff_headers(const struct pt_noise *nz, const struct pt_resp *want,
			 const struct pt_resp *got, char *const *learned,
			 size_t nl, struct pt_diffs *d)
{
	size_t i;

	for (i = 0; i < want->nfields; i++) {
		const char *name = want->fields[i].name;
		char *w, *g, *where;

		if (!first_of_name(want, i) || header_skipped(nz, name))
			continue;
		w = joined(want, name);
		g = joined(got, name);
		where = xprintf("header %s", name);
		if (!g) {
			if (is_learned(learned, nl, where)) {
				d->noise_learned++;
				free(where);
			} else {
				add(d, where, snip(w, strlen(w)),
				    pt_xstrdup("(absent)"));
				where = NULL;
			}
		} else if (strcmp(w, g) &&
			   !noise(nz, learned, nl, where, w, strlen(w), g,
				  strlen(g), d)) {
			add(d, where, snip(w, strlen(w)), snip(g, strlen(g)));
			where = NULL;
		}
		free(where);
		free(w);
		free(g);
	}
	for (i = 0; i < got->nfields; i++) {
		const char *name = got->fields[i].name;
		char *w, *g, *where;

		if (!first_of_name(got, i) || header_skipped(nz, name))
			continue;
		w = joined(want, name);
		if (w) {
			free(w);
			continue;
		}
		where = xprintf("header %s", name);
		if (is_learned(learned, nl, where)) {
			d->noise_learned++;
			free(where);
			continue;
		}
		g = joined(got, name);
		add(d, where, pt_xstrdup("(absent)"), snip(g, strlen(g)));
		free(g);
	}
}

/* ---- JSON bodies ---- */

struct jcmp {
	const struct pt_noise *nz;
	char *const *learned;
	size_t nl;
	struct pt_diffs *d;
	const struct pt_jr *w, *g;
	int depth;
};

/* Deeper than this, a subtree is compared as text: one difference at
 * its path, and no recursion that a hostile body could take down. */
#define JSON_DEPTH_MAX	64

static bool ident_key(const char *k)
{
	if (!*k || !(isalpha((unsigned char)*k) || *k == '_'))
		return false;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_' && *k != '-')
			return false;
	return true;
}

static char *child_key(const char *path, const char *key)
{
	return ident_key(key) ? xprintf("%s.%s", path, key) :
				xprintf("%s[\"%s\"]", path, key);
}

/* Does rule match a prefix of path ending at a step boundary? */
bool pt_path_match(const char *rule, const char *path)
{
	while (*rule) {
		/* ".*" takes a key written either way: .a or ["a b"] */
		if (rule[0] == '.' && rule[1] == '*' && !strncmp(path, "[\"", 2))
			rule++;
		if (!strncmp(rule, "[*]", 3)) {
			if (*path != '[')
				return false;
			path = strchr(path, ']');
			if (!path)
				return false;
			path++;
			rule += 3;
		} else if (*rule == '*') {
			if (!strncmp(path, "[\"", 2)) {
				/* a key that is not an identifier */
				const char *end = strstr(path + 2, "\"]");

				if (!end)
					return false;
				path = end + 2;
			} else {
				while (*path && *path != '.' && *path != '[')
					path++;
			}
			rule++;
		} else if (*rule++ != *path++) {
			return false;
		}
	}
	return !*path || *path == '.' || *path == '[';
}

static bool path_ruled(const struct jcmp *c, const char *path)
{
	size_t i;
	char *kp = NULL;
	bool hit = false;

	for (i = 0; i < c->nz->npaths; i++)
		if (pt_path_match(c->nz->paths[i], path))
			return true;
	for (i = 0; i < c->nz->nkkeys && !hit; i++) {
		const char *k = c->nz->kkeys[i];
		char *kl;

		if (strncasecmp(k, "body.", 5) || !k[5])
			continue;
		if (!kp)
			kp = keploy_path(path);
		kl = pt_xstrdup(k + 5);
		for (char *q = kl; *q; q++)
			*q = (char)tolower((unsigned char)*q);
		hit = strstr(kp, kl) != NULL;
		free(kl);
	}
	free(kp);
	return hit;
}

/* Where two values' texts first differ, to show that part of long ones. */
static size_t first_diff(const struct pt_jr *a, int ai, const struct pt_jr *b,
			 int bi)
{
	int al, bl, i;
	const char *x = pt_jr_raw(a, ai, &al), *y = pt_jr_raw(b, bi, &bl);

	for (i = 0; i < al && i < bl && x[i] == y[i]; i++)
		;
	return (size_t)i;
}

/* value i's text from char at on, as "...TEXT (from char N)" */
static char *jval_at(const struct pt_jr *j, int i, size_t at)
{
	int len;
	const char *r = pt_jr_raw(j, i, &len);
	char *s, *q;

	if ((int)at > len)
		at = len;
	s = snip(r + at, len - at);
	q = xprintf("...%s (from char %zu)", s, at);
	free(s);
	return q;
}

/* A JSON value as short text, strings in their quotes. */
static char *jval(const struct pt_jr *j, int i)
{
	int len;
	const char *r = pt_jr_raw(j, i, &len);
	char *s, *q;

	if (pt_jr_type(j, i) != PT_J_STRING)
		return snip(r, len);
	s = snip(r, len);
	q = xprintf("\"%s\"", s);
	free(s);
	return q;
}

static void jdiff(struct jcmp *c, const char *path, int wi, int gi)
{
	char *where = xprintf("body %s", path);

	size_t at = wi >= 0 && gi >= 0 ? first_diff(c->w, wi, c->g, gi) : 0;

	if (is_learned(c->learned, c->nl, where)) {
		c->d->noise_learned++;
	} else if (path_ruled(c, path)) {
		c->d->noise_rule++;
	} else if (at > SNIP_MAX / 2) {
		/* long values alike for a while: show where they part */
		add(c->d, where, jval_at(c->w, wi, at - 20), jval_at(c->g, gi, at - 20));
		return;
	} else {
		add(c->d, where, wi >= 0 ? jval(c->w, wi) : pt_xstrdup("(absent)"),
		    gi >= 0 ? jval(c->g, gi) : pt_xstrdup("(absent)"));
		return;
	}
	free(where);
}

/* The member of object oi named key (unescaped), or -1. */
static int member(const struct pt_jr *j, int oi, const char *key)
{
	int k, cur = oi + 1, n = pt_jr_size(j, oi);

	for (k = 0; k < n; k++) {
		char *s = pt_jr_str(j, cur);
		bool eq = s && !strcmp(s, key);

		free(s);
		if (eq)
			return cur + 1;
		cur = pt_jr_next(j, cur + 1);
	}
	return -1;
}

/* Integers by their digits (64-bit ids lose nothing), fractions as
 * doubles: 1.0 is 1. */
static bool numbers_equal(const char *a, int an, const char *b, int bn)
{
	char x[64], y[64], *ex, *ey;

	if (strcspn(a, ".eE") >= (size_t)an && strcspn(b, ".eE") >= (size_t)bn) {
		/* -0 is 0; leading zeros are not JSON */
		bool za = an == 2 && !memcmp(a, "-0", 2), zb = bn == 2 && !memcmp(b, "-0", 2);

		return (za ? 1 : an) == (zb ? 1 : bn) &&
		       !memcmp(za ? "0" : a, zb ? "0" : b, za ? 1 : an);
	}
	if (an >= (int)sizeof(x) || bn >= (int)sizeof(y))
		return false;
	memcpy(x, a, an);
	x[an] = 0;
	memcpy(y, b, bn);
	y[bn] = 0;
	double dx = strtod(x, &ex), dy = strtod(y, &ey);

	return !*ex && !*ey && ex != x && ey != y && dx == dy;
}

static void jcompare_inner(struct jcmp *c, const char *path, int wi, int gi,
			   enum pt_jtype tw);

static void jcompare(struct jcmp *c, const char *path, int wi, int gi)
{
	enum pt_jtype tw = pt_jr_type(c->w, wi), tg = pt_jr_type(c->g, gi);

	if (tw != tg) {
		jdiff(c, path, wi, gi);
		return;
	}
	if (c->depth >= JSON_DEPTH_MAX && (tw == PT_J_OBJECT || tw == PT_J_ARRAY)) {
		int wl, gl;
		const char *wr = pt_jr_raw(c->w, wi, &wl);
		const char *gr = pt_jr_raw(c->g, gi, &gl);

		if (wl != gl || memcmp(wr, gr, wl))
			jdiff(c, path, wi, gi);
		return;
	}
	c->depth++;
	jcompare_inner(c, path, wi, gi, tw);
	c->depth--;
}

static void jcompare_inner(struct jcmp *c, const char *path, int wi, int gi,
			   enum pt_jtype tw)
{
	int k, n, cur;

	if (tw == PT_J_OBJECT) {
		n = pt_jr_size(c->w, wi);
		for (k = 0, cur = wi + 1; k < n; k++) {
			char *key = pt_jr_str(c->w, cur);
			char *p = child_key(path, key ? key : "");
			int gm = member(c->g, gi, key ? key : "");

			if (gm < 0)
				jdiff(c, p, cur + 1, -1);
			else
				jcompare(c, p, cur + 1, gm);
			free(p);
			free(key);
			cur = pt_jr_next(c->w, cur + 1);
		}
		n = pt_jr_size(c->g, gi);
		for (k = 0, cur = gi + 1; k < n; k++) {
			char *key = pt_jr_str(c->g, cur);

			if (member(c->w, wi, key ? key : "") < 0) {
				char *p = child_key(path, key ? key : "");

				jdiff(c, p, -1, cur + 1);
				free(p);
			}
			free(key);
			cur = pt_jr_next(c->g, cur + 1);
		}
		return;
	}
	if (tw == PT_J_ARRAY) {
		int nw = pt_jr_size(c->w, wi), ng = pt_jr_size(c->g, gi);
		int ew = wi + 1, eg = gi + 1;

		for (k = 0; k < nw && k < ng; k++) {
			char *p = xprintf("%s[%d]", path, k);

			jcompare(c, p, ew, eg);
			free(p);
			ew = pt_jr_next(c->w, ew);
			eg = pt_jr_next(c->g, eg);
		}
		for (; k < nw || k < ng; k++) {
			char *p = xprintf("%s[%d]", path, k);

			jdiff(c, p, k < nw ? ew : -1, k < ng ? eg : -1);
			free(p);
			if (k < nw)
				ew = pt_jr_next(c->w, ew);
			if (k < ng)
				eg = pt_jr_next(c->g, eg);
		}
		return;
	}
	/* strings and primitives */
	int wl, gl;
	const char *wr = pt_jr_raw(c->w, wi, &wl), *gr = pt_jr_raw(c->g, gi, &gl);

	if (wl == gl && !memcmp(wr, gr, wl))
		return;
	if (tw == PT_J_PRIM && numbers_equal(wr, wl, gr, gl))
		return;
	if (tw == PT_J_STRING) {
		char *ws = pt_jr_str(c->w, wi), *gs = pt_jr_str(c->g, gi);
		/* the texts differ: equal once unescaped, unless a \u0000
		 * cut one short */
		bool same = !strcmp(ws, gs) && !memmem(wr, wl, "\\u0000", 6) &&
			    !memmem(gr, gl, "\\u0000", 6);
		char *where = xprintf("body %s", path);
		bool nz = !same && !path_ruled(c, path) &&
			  noise(c->nz, c->learned, c->nl, where, ws,
				strlen(ws), gs, strlen(gs), c->d);

		free(where);
		free(ws);
		free(gs);
		if (same || nz)
			return;
	} else if (!path_ruled(c, path)) {
		char *where = xprintf("body %s", path);
		bool nz = noise(c->nz, c->learned, c->nl, where, wr, wl, gr,
				gl, c->d);

		free(where);
		if (nz)
			return;
	}
	jdiff(c, path, wi, gi);
}

/* ---- bodies ---- */

static uint64_t fnv64(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (n--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

static bool texty(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] < 0x20 && p[i] != '\n' && p[i] != '\r' && p[i] != '\t')
			return false;
	return true;
}

static void diff_body(const struct pt_noise *nz, const struct pt_resp *want,
		      const struct pt_resp *got, char *const *learned,
		      size_t nl, struct pt_diffs *d)
{
	struct pt_jr jw, jg;
	size_t i;

	if (want->body_len == got->body_len &&
	    !memcmp(want->body, got->body, want->body_len))
		return;
	if (want->body_len &&
	    !pt_jr_parse(&jw, (const char *)want->body, want->body_len)) {
		if (!pt_jr_parse(&jg, (const char *)got->body, got->body_len)) {
			struct jcmp c = { nz, learned, nl, d, &jw, &jg };

			jcompare(&c, "$", 0, 0);
			pt_jr_free(&jg);
			pt_jr_free(&jw);
			return;
		}
		pt_jr_free(&jw);
	}
	if (is_learned(learned, nl, "body")) {
		d->noise_learned++;
		return;
	}
	if (masked_equal(nz, want->body, want->body_len, got->body,
			 got->body_len)) {
		d->noise_rule++;
		return;
	}
	if (!texty(want->body, want->body_len) ||
	    !texty(got->body, got->body_len)) {
		add(d, pt_xstrdup("body"),
		    xprintf("%zu bytes, fnv1a64 %016llx", want->body_len,
			    (unsigned long long)fnv64(want->body, want->body_len)),
		    xprintf("%zu bytes, fnv1a64 %016llx", got->body_len,
			    (unsigned long long)fnv64(got->body, got->body_len)));
		return;
	}
	for (i = 0; i < want->body_len && i < got->body_len; i++)
		if (want->body[i] != got->body[i])
			break;
	/* from a little before the first byte that differs */
	size_t at = i > 20 ? i - 20 : 0;

	char *w = snip(want->body + at, want->body_len - at);
	char *g = snip(got->body + at, got->body_len - at);

	add(d, pt_xstrdup("body"), xprintf("at byte %zu: %s", i, w),
	    xprintf("at byte %zu: %s", i, g));
	free(w);
	free(g);
}

size_t pt_resp_diff(const struct pt_noise *nz, const struct pt_resp *want,
		    const struct pt_resp *got, char *const *learned,
		    size_t nlearned, struct pt_diffs *out)
{
	size_t before = out->n;

	if (want->status != got->status) {
		if (is_learned(learned, nlearned, "status"))
			out->noise_learned++;
		else
			add(out, pt_xstrdup("status"), xprintf("%d", want->status),
			    xprintf("%d", got->status));
	}
	diff_headers(nz, want, got, learned, nlearned, out);
	diff_body(nz, want, got, learned, nlearned, out);
	return out->n - before;
}
