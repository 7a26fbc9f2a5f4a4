// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* JSON reading on top of jsmn (Debian's libjsmn-dev, a header library). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#define JSMN_STRICT
#include <jsmn.h>
#include "base/common.h"
#include "base/jread.h"

struct pt_jtok {
	jsmntok_t t;
};

int pt_jr_parse(struct pt_jr *j, const char *s, size_t len)
{
	jsmn_parser p;
	int cap = 64, n;

	memset(j, 0, sizeof(*j));
	/* jsmn stops at a NUL: what follows would go unread */
	if (memchr(s, 0, len))
		return -EINVAL;
	for (;;) {
		j->t = pt_xrealloc(j->t, cap, sizeof(*j->t));
		jsmn_init(&p);
		/* struct pt_jtok is exactly a jsmntok_t */
		n = jsmn_parse(&p, s, len, (jsmntok_t *)j->t, cap);
		if (n != JSMN_ERROR_NOMEM)
			break;
		if (cap > (1 << 24))
			break;
		cap *= 4;
	}
	if (n <= 0 || pt_jr_next(&(struct pt_jr){ s, len, j->t, n }, 0) != n) {
		free(j->t);
		j->t = NULL;
		return -EINVAL;
	}
	j->s = s;
	j->len = len;
	j->n = n;
	return 0;
}

void pt_jr_free(struct pt_jr *j)
{
	free(j->t);
	j->t = NULL;
	j->n = 0;
}

enum pt_jtype pt_jr_type(const struct pt_jr *j, int i)
{
	if (i < 0 || i >= j->n)
		return PT_J_OTHER;
	switch (j->t[i].t.type) {
	case JSMN_OBJECT: return PT_J_OBJECT;
	case JSMN_ARRAY: return PT_J_ARRAY;
	case JSMN_STRING: return PT_J_STRING;
	case JSMN_PRIMITIVE: return PT_J_PRIM;
	default: return PT_J_OTHER;
	}
}

int pt_jr_size(const struct pt_jr *j, int i)
{
	return i < 0 || i >= j->n ? 0 : j->t[i].t.size;
}

int pt_jr_next(const struct pt_jr *j, int i)
{
	int left = 1;

	/* each token has t.size children still to walk: an object's are
	 * its keys, and a key's is its value */
	while (left > 0 && i < j->n) {
		left += j->t[i].t.size - 1;
		i++;
	}
	return i;
}

int pt_jr_get(const struct pt_jr *j, int i, const char *key)
{
	int k, n, cur;

	if (pt_jr_type(j, i) != PT_J_OBJECT)
		return -1;
	n = j->t[i].t.size;
	cur = i + 1;
	for (k = 0; k < n && cur < j->n; k++) {
		if (pt_jr_streq(j, cur, key))
			return cur + 1;
		cur = pt_jr_next(j, cur + 1);
	}
	return -1;
}

int pt_jr_path(const struct pt_jr *j, int i, const char *path)
{
	char key[128];
	const char *dot;

	while (i >= 0 && *path) {
		dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);

		if (n >= sizeof(key))
			return -1;
		memcpy(key, path, n);
		key[n] = 0;
		i = pt_jr_get(j, i, key);
		path += n + (dot != NULL);
	}
	return i;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static unsigned hex4(const char *p)
{
	return (unsigned)(pt_hexval(p[0]) << 12 | pt_hexval(p[1]) << 8 |
			  pt_hexval(p[2]) << 4 | pt_hexval(p[3]));
}

char *pt_jr_str(const struct pt_jr *j, int i)
{
	const char *p, *end;
	char *out, *o;

	if (pt_jr_type(j, i) != PT_J_STRING)
		return NULL;
	p = j->s + j->t[i].t.start;
	end = j->s + j->t[i].t.end;
	/* an escape never grows: \uXXXX (6) gives at most 3, pairs 4 of 12 */
	o = out = pt_xcalloc(1, end - p + 1);
	while (p < end) {
		if (*p != '\\') {
			*o++ = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			/* jsmn (strict) checked the four hex digits */
			unsigned cp = hex4(p + 1);

			p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && end - p > 6 &&
			    p[1] == '\\' && p[2] == 'u') {
				unsigned lo = hex4(p + 3);

				if (lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					     (lo - 0xdc00);
					p += 6;
				}
			}
			o += put_utf8(o, cp);
			break;
		}
		default: *o++ = *p; break;	/* " \ / */
		}
		p++;
	}
	*o = 0;
	return out;
}

bool pt_jr_streq(const struct pt_jr *j, int i, const char *s)
{
	size_t n;

	if (pt_jr_type(j, i) != PT_J_STRING)
		return false;
	n = (size_t)(j->t[i].t.end - j->t[i].t.start);
	/* Kubernetes keys and enum values carry no escapes */
	return strlen(s) == n && !memcmp(j->s + j->t[i].t.start, s, n);
}

const char *pt_jr_raw(const struct pt_jr *j, int i, int *len)
{
	if (i < 0 || i >= j->n)
		return NULL;
	*len = j->t[i].t.end - j->t[i].t.start;
	return j->s + j->t[i].t.start;
}

int pt_jr_u64(const struct pt_jr *j, int i, uint64_t *v)
{
	char buf[32];
	int len;
	const char *r = pt_jr_raw(j, i, &len);
	enum pt_jtype ty = pt_jr_type(j, i);

	if (!r || (ty != PT_J_PRIM && ty != PT_J_STRING) ||
	    len <= 0 || len >= (int)sizeof(buf))
		return -EINVAL;
	memcpy(buf, r, len);
	buf[len] = 0;
	return pt_parse_u64(buf, 0, UINT64_MAX, v);
}
