// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * --redact NAME for the exports of HTTP messages: header fields, JSON
 * body fields (at any depth), form fields and query parameters of that
 * name get the value "[REDACTED]", in the capture as loaded, before any
 * exporter sees it. And the scan that tells a user which credentials an
 * export holds.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "base/common.h"
#include "base/jread.h"
#include "export/export.h"

#define REDACTED	"[REDACTED]"

/* Field names that carry credentials, whatever the export: said, not
 * changed, unless --redact names them. */
static const char *const credential_fields[] = {
	"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
	"X-Api-Key", "X-Auth-Token", "X-Amz-Security-Token", NULL,
};

static bool named(char *const *names, size_t n, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strlen(names[i]) == len && !strncasecmp(names[i], s, len))
			return true;
	return false;
}

/* A new buffer: b with [at, at + len) replaced by rep. */
static void splice(char **b, size_t *n, size_t at, size_t len, const char *rep)
{
	size_t rl = strlen(rep);
	char *o = pt_xcalloc(1, *n - len + rl + 1);

	memcpy(o, *b, at);
	memcpy(o + at, rep, rl);
	memcpy(o + at + rl, *b + at + len, *n - at - len);
	free(*b);
	*b = o;
	*n = *n - len + rl;
}

/* JSON: values of members so named, in one pass. Returns how many. */
static size_t redact_json(char **b, size_t *n, char *const *names, size_t nn)
{
	static const char rep[] = "\"" REDACTED "\"";
	struct span { size_t at, len; } *v = NULL;
	size_t count = 0, k, out_n, from = 0;
	struct pt_jr j;
	char *o;
	int i;

	if (pt_jr_parse(&j, *b, *n))
		return 0;
	for (i = 0; i + 1 < j.n; i++) {
		int kl, vl;
		const char *key = pt_jr_raw(&j, i, &kl), *val;
		size_t at, len;

		/* a key: a string token with one child, its value */
		if (pt_jr_type(&j, i) != PT_J_STRING || pt_jr_size(&j, i) != 1 ||
		    !named(names, nn, key, kl))
			continue;
		val = pt_jr_raw(&j, i + 1, &vl);
		at = val - *b;
		len = vl;
		if (pt_jr_type(&j, i + 1) == PT_J_STRING) {
			at--;
			len += 2;
		}
		/* whatever the value holds goes with it */
		i = pt_jr_next(&j, i + 1) - 1;
		if (len == sizeof(rep) - 1 && !memcmp(*b + at, rep, len))
			continue;
		v = pt_xrealloc(v, count + 1, sizeof(*v));
		v[count++] = (struct span){ at, len };
	}
	pt_jr_free(&j);
	if (!count)
		return 0;
	out_n = *n;
	for (k = 0; k < count; k++)
		out_n = out_n - v[k].len + sizeof(rep) - 1;
	o = pt_xcalloc(1, out_n + 1);
	for (k = 0, out_n = 0; k < count; k++) {
		memcpy(o + out_n, *b + from, v[k].at - from);
		out_n += v[k].at - from;
		memcpy(o + out_n, rep, sizeof(rep) - 1);
		out_n += sizeof(rep) - 1;
		from = v[k].at + v[k].len;
	}
	memcpy(o + out_n, *b + from, *n - from);
	out_n += *n - from;
	free(v);
	free(*b);
	*b = o;
	*n = out_n;
	return count;
}

/* a=1&b=2: values of parameters so named. */
static size_t redact_form(char **b, size_t *n, size_t from,
			  char *const *names, size_t nn)
{
	size_t at = from, count = 0;

	while (at < *n) {
		size_t end = at, eq;

		while (end < *n && (*b)[end] != '&' && (*b)[end] != '#')
			end++;
		for (eq = at; eq < end && (*b)[eq] != '='; eq++)
			;
		if (eq < end && named(names, nn, *b + at, eq - at) &&
		    (end - eq - 1 != strlen(REDACTED) ||
		     memcmp(*b + eq + 1, REDACTED, end - eq - 1))) {
			splice(b, n, eq + 1, end - eq - 1, REDACTED);
			end = eq + 1 + strlen(REDACTED);
			count++;
		}
		if (end < *n && (*b)[end] == '#')
			break;
		at = end + 1;
	}
	return count;
}

static void set_field(struct pt_http_msg *m, const char *name, const char *v)
{
	size_t i;

	for (i = 0; i < m->nfields; i++)
		if (!strcasecmp(m->fields[i].name, name)) {
			free(m->fields[i].value);
			m->fields[i].value = pt_xstrdup(v);
		}
}

static void drop_field(struct pt_http_msg *m, const char *name)
{
	size_t i, k;

	for (i = k = 0; i < m->nfields; i++) {
		if (!strcasecmp(m->fields[i].name, name)) {
			free(m->fields[i].name);
			free(m->fields[i].value);
			continue;
		}
		m->fields[k++] = m->fields[i];
	}
	m->nfields = k;
}

/* The body: JSON or a form, its coding undone if it must change. */
static size_t redact_body(struct pt_http_msg *m, char *const *names, size_t nn)
{
	const char *ct = pt_http_field(m, "Content-Type");
	struct pt_body b;
	size_t count, n;
	char *buf, len[24];
	bool form = ct && !strncasecmp(ct, "application/x-www-form-urlencoded", 33);

	if (!m->body_len)
		return 0;
	pt_body_get(m, &b);
	n = b.n;
	buf = pt_xcalloc(1, n + 1);
	memcpy(buf, b.p, n);
	count = form ? redact_form(&buf, &n, 0, names, nn) :
		       redact_json(&buf, &n, names, nn);
	if (!count) {
		free(buf);
		pt_body_free(&b);
		return 0;
	}
	/* the message now holds the changed body, uncoded */
	free(m->body_alloc);
	m->body_alloc = (uint8_t *)buf;
	m->body = m->body_alloc;
	m->body_len = n;
	if (b.decoded)
		drop_field(m, "Content-Encoding");
	snprintf(len, sizeof(len), "%zu", n);
	set_field(m, "Content-Length", len);
	pt_body_free(&b);
	return count;
}

static size_t redact_msg(struct pt_http_msg *m, char *const *names, size_t nn)
{
	size_t i, count = 0;

	for (i = 0; i < m->nfields; i++)
		if (named(names, nn, m->fields[i].name, strlen(m->fields[i].name)) &&
		    strcmp(m->fields[i].value, REDACTED)) {
			free(m->fields[i].value);
			m->fields[i].value = pt_xstrdup(REDACTED);
			count++;
		}
	if (m->request && m->target && strchr(m->target, '?')) {
		size_t n = strlen(m->target);

		count += redact_form(&m->target, &n, strchr(m->target, '?') + 1 -
				     m->target, names, nn);
	}
	return count + redact_body(m, names, nn);
}

size_t pt_redact_x(struct pt_exchange *x, char *const *names, size_t n)
{
	size_t count = 0;

	if (!n || x->kind != PT_X_HTTP)
		return 0;
	if (x->has_req)
		count += redact_msg(&x->req, names, n);
	if (x->has_resp)
		count += redact_msg(&x->resp, names, n);
	return count;
}

/* Does m carry one of the credential fields with a value left in it? */
static void creds_of(const struct pt_http_msg *m, bool *seen)
{
	size_t i, k;

	for (i = 0; i < m->nfields; i++)
		for (k = 0; credential_fields[k]; k++)
			if (!strcasecmp(m->fields[i].name, credential_fields[k]) &&
			    strcmp(m->fields[i].value, REDACTED))
				seen[k] = true;
}

void pt_creds_add(struct pt_creds *c, const struct pt_exchange *x)
{
	bool here[ARRAY_SIZE(credential_fields)] = {}, any = false;
	size_t f;

	if (x->kind != PT_X_HTTP)
		return;
	if (x->has_req)
		creds_of(&x->req, here);
	if (x->has_resp)
		creds_of(&x->resp, here);
	for (f = 0; credential_fields[f]; f++) {
		any |= here[f];
		c->seen |= (uint32_t)here[f] << f;
	}
	c->n += any;
}

size_t pt_creds_names(const struct pt_creds *c, char *names, size_t len)
{
	size_t k, at = 0;

	names[0] = 0;
	for (k = 0; credential_fields[k] && at < len; k++)
		if (c->seen & (1u << k))
			at += snprintf(names + at, len - at, "%s%s", at ? ", " : "",
				       credential_fields[k]);
	return c->n;
}
