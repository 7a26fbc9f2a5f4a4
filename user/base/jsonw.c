// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/jsonw.h"

/* Length of the UTF-8 sequence at p, 0 if it is not well-formed. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	size_t len, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool pt_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0, l;

	while (i < n) {
		l = utf8_seq(p + i, n - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

char *pt_utf8_fix(const void *s, size_t n, size_t *outn)
{
	const uint8_t *p = s;
	size_t i = 0, o = 0, l;
	char *d;

	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	/* one bad byte (1) becomes U+FFFD (3) at most */
	d = malloc(n * 3 + 1);
	if (!d)
		return NULL;
	while (i < n) {
		l = utf8_seq(p + i, n - i);
		if (!l) {
			memcpy(d + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(d + o, p + i, l);
			o += l;
			i += l;
		}
	}
	d[o] = 0;
	*outn = o;
	return d;
}

/* The code point of a valid 2- or 3-byte sequence (others: 0). */
static unsigned utf8_cp(const uint8_t *p, size_t l)
{
	if (l == 2)
		return (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu);
	if (l == 3)
		return (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu);
	return 0;
}

/*
 * Code points a terminal acts on or that reorder what it shows: C1
 * controls (U+0080..U+009F, CSI among them), line and paragraph
 * separators, and the bidirectional overrides and isolates.
 */
static bool terminal_active(const uint8_t *p, size_t l)
{
	unsigned cp = utf8_cp(p, l);

	return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f;
}

void pt_json_strn(FILE *f, const void *s, size_t n)
{
	const uint8_t *p = s;
	size_t i = 0, l;

	fputc('"', f);
	while (i < n) {
		uint8_t ch = p[i];

		l = utf8_seq(p + i, n - i);
		if (!l) {
			fputs("\\ufffd", f);
			i++;
		} else if (l > 1 && terminal_active(p + i, l)) {
			/* as \u, so that a terminal showing it does not act */
			fprintf(f, "\\u%04x", utf8_cp(p + i, l));
			i += l;
		} else if (l > 1) {
			fwrite(p + i, 1, l, f);
			i += l;
		} else {
			if (ch == '"' || ch == '\\')
				fprintf(f, "\\%c", ch);
			else if (ch == '\n')
				fputs("\\n", f);
			else if (ch == '\r')
				fputs("\\r", f);
			else if (ch == '\t')
				fputs("\\t", f);
			else if (ch < 0x20 || ch == 0x7f)
				fprintf(f, "\\u%04x", ch);
			else
				fputc(ch, f);
			i++;
		}
	}
	fputc('"', f);
}

void pt_json_str(FILE *f, const char *s)
{
	pt_json_strn(f, s, strlen(s));
}

void pt_base64_put(FILE *f, const uint8_t *p, size_t n)
{
	static const char t[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = p[i] << 16 | p[i + 1] << 8 | p[i + 2];

		fputc(t[v >> 18], f);
		fputc(t[(v >> 12) & 63], f);
		fputc(t[(v >> 6) & 63], f);
		fputc(t[v & 63], f);
	}
	if (n - i == 1) {
		fputc(t[p[i] >> 2], f);
		fputc(t[(p[i] & 3) << 4], f);
		fputs("==", f);
	} else if (n - i == 2) {
		fputc(t[p[i] >> 2], f);
		fputc(t[((p[i] & 3) << 4) | (p[i + 1] >> 4)], f);
		fputc(t[(p[i + 1] & 15) << 2], f);
		fputc('=', f);
	}
}

void pt_json_base64(FILE *f, const uint8_t *p, size_t n)
{
	fputc('"', f);
	pt_base64_put(f, p, n);
	fputc('"', f);
}

void pt_json_bytes(FILE *f, const char *key, const uint8_t *p, size_t n)
{
	bool text = pt_utf8_valid(p, n);

	fprintf(f, ",\"%s\":", key);
	if (text)
		pt_json_strn(f, p, n);
	else
		pt_json_base64(f, p, n);
	fprintf(f, ",\"%s_encoding\":\"%s\"", key, text ? "utf-8" : "base64");
}

void pt_fmt_time(char *buf, size_t len, uint64_t real_ns, int digits)
{
	time_t sec = real_ns / 1000000000ull;
	unsigned long frac = real_ns % 1000000000ull;
	struct tm tm;
	size_t n;

	gmtime_r(&sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (digits == 3)
		snprintf(buf + n, len - n, ".%03luZ", frac / 1000000);
	else
		snprintf(buf + n, len - n, ".%09luZ", frac);
}
