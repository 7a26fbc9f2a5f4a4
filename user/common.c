// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common.h"

bool pt_verbose;

void pt_err(const char *fmt, ...)
{
	va_list ap;

	fputs("podtap: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void pt_dbg(const char *fmt, ...)
{
	va_list ap;

	if (!pt_verbose)
		return;
	fputs("podtap: debug: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

uint64_t pt_now_mono_ns(void)
{
	return now(CLOCK_MONOTONIC);
}

uint64_t pt_now_real_ns(void)
{
	return now(CLOCK_REALTIME);
}

static int parse_scaled(const char *s, const char *const *units,
			const uint64_t *scale, size_t nunits, uint64_t *out)
{
	unsigned long long v;
	char *end;
	size_t i;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	for (i = 0; i < nunits; i++) {
		if (strcmp(end, units[i]) == 0) {
			if (scale[i] && v > UINT64_MAX / scale[i])
				return -ERANGE;
			*out = v * scale[i];
			return 0;
		}
	}
	return -EINVAL;
}

int pt_parse_duration(const char *s, uint64_t *ns)
{
	static const char *const units[] = { "", "s", "ms", "m", "h" };
	static const uint64_t scale[] = { 1000000000ull, 1000000000ull,
					  1000000ull, 60000000000ull,
					  3600000000000ull };

	return parse_scaled(s, units, scale, ARRAY_SIZE(units), ns);
}

int pt_parse_size(const char *s, uint64_t *bytes)
{
	static const char *const units[] = { "", "K", "M", "G", "KiB", "MiB",
					      "GiB" };
	static const uint64_t scale[] = { 1, 1ull << 10, 1ull << 20,
					  1ull << 30, 1ull << 10, 1ull << 20,
					  1ull << 30 };

	return parse_scaled(s, units, scale, ARRAY_SIZE(units), bytes);
}

int pt_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	static const char *const units[] = { "" };
	static const uint64_t scale[] = { 1 };
	uint64_t v;
	int err;

	err = parse_scaled(s, units, scale, 1, &v);
	if (err)
		return err;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

void *pt_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p) {
		pt_err("out of memory");
		exit(1);
	}
	return p;
}

void *pt_xrealloc(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		pt_err("out of memory");
		exit(1);
	}
	p = realloc(p, (n && size) ? n * size : 1);
	if (!p) {
		pt_err("out of memory");
		exit(1);
	}
	return p;
}
