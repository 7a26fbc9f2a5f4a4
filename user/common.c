// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common.h"
#include "jsonw.h"

bool pt_verbose;
bool pt_log_json;

/* One log line: "podtap: msg", or a JSON object with time, level, msg. */
static void vlog(const char *level, const char *fmt, va_list ap)
{
	char *msg, t[48];
	size_t n;

	/* whole, however long: libbpf hands over verifier logs as one */
	if (vasprintf(&msg, fmt, ap) < 0)
		return;
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')	/* libbpf's lines end in one */
		msg[--n] = 0;
	if (!pt_log_json) {
		fprintf(stderr, "podtap: %s%s\n",
			strcmp(level, "debug") ? "" : "debug: ", msg);
	} else {
		pt_fmt_time(t, sizeof(t), pt_now_real_ns(), 9);
		fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":",
			t, level);
		pt_json_strn(stderr, msg, n);
		fputs("}\n", stderr);
	}
	free(msg);
}

void pt_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("error", fmt, ap);
	va_end(ap);
}

void pt_bad_option(const char *cmd, int opt, const char *arg)
{
	pt_err("%s: %s '%s' (see 'podtap %s --help')", cmd,
	       opt == ':' ? "missing value for" : "unknown option", arg, cmd);
}

void pt_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("info", fmt, ap);
	va_end(ap);
}

void pt_dbg(const char *fmt, ...)
{
	va_list ap;

	if (!pt_verbose)
		return;
	va_start(ap, fmt);
	vlog("debug", fmt, ap);
	va_end(ap);
}

void pt_vdbg(const char *fmt, va_list ap)
{
	if (pt_verbose)
		vlog("debug", fmt, ap);
}

int pt_set_log_format(const char *s)
{
	if (!strcmp(s, "text"))
		pt_log_json = false;
	else if (!strcmp(s, "json"))
		pt_log_json = true;
	else
		return -EINVAL;
	return 0;
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

void pt_oom(void)
{
	pt_err("out of memory");
	exit(1);
}

void *pt_xrealloc(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		pt_oom();
	p = realloc(p, (n && size) ? n * size : 1);
	if (!p)
		pt_oom();
	return p;
}

char *pt_xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		pt_oom();
	return d;
}

void pt_nap(pthread_mutex_t *mu, pthread_cond_t *cv, const bool *stop,
	    unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(mu);
	if (!*stop)
		pthread_cond_timedwait(cv, mu, &ts);
	pthread_mutex_unlock(mu);
}

int pt_opt_ring_size(const char *arg, uint64_t *bytes)
{
	if (pt_parse_size(arg, bytes) || *bytes < 4096 || *bytes > (1ull << 30)) {
		pt_err("--ring-size %s: want a size from 4K to 1G", arg);
		return -EINVAL;
	}
	return 0;
}

int pt_opt_poll(const char *arg, uint64_t *ns)
{
	if (pt_parse_duration(arg, ns) || !*ns || *ns > 1000000000ull) {
		pt_err("--poll %s: want a duration from 1ms to 1s", arg);
		return -EINVAL;
	}
	return 0;
}
