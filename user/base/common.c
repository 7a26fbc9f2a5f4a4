// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include "base/common.h"
#include "base/jsonw.h"

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

int pt_opt_other(const char *cmd, int opt, const char *arg, const char *word)
{
	if (opt == 'v') {
		pt_verbose = true;
		return 0;
	}
	if (opt != 'L') {
		pt_bad_option(cmd, opt, word);
		return -EINVAL;
	}
	if (pt_set_log_format(arg)) {
		pt_err("--log-format %s: want text or json", arg);
		return -EINVAL;
	}
	return 0;
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

/*
 * A decimal number with an optional fraction ("1", "1.5", ".5") times
 * mul, rounded up to a whole unit; s moves past it. -ERANGE past 2^64.
 */
static int scaled_decimal(const char **s, uint64_t mul, uint64_t *out,
			  const char **unit_at)
{
	const char *p = *s;
	uint64_t whole = 0, frac = 0, den = 1;
	bool digits = false, big = false;

	if (*p == '+')	/* a sign, as Go and Kubernetes allow */
		p++;
	for (; *p >= '0' && *p <= '9'; p++, digits = true) {
		uint64_t d = (uint64_t)(*p - '0');

		if (big || whole > (UINT64_MAX - d) / 10)
			big = true;
		else
			whole = whole * 10 + d;
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, digits = true)
			if (den <= UINT64_MAX / 10 / 10) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				den *= 10;
			}
	}
	if (!digits)
		return -EINVAL;
	*unit_at = p;
	*s = p;
	if (big || (mul && whole > UINT64_MAX / mul))
		return -ERANGE;
	*out = whole * mul;
	if (frac) {
		/* frac/den * mul, rounded up: exact for the units here */
		unsigned __int128 f = (unsigned __int128)frac * mul;
		uint64_t add = (uint64_t)((f + den - 1) / den);

		if (*out > UINT64_MAX - add)
			return -ERANGE;
		*out += add;
	}
	return 0;
}

int pt_parse_duration(const char *s, uint64_t *ns)
{
	static const struct { const char *u; uint64_t mul; } units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 },
		{ "ms", 1000000 }, { "s", 1000000000ull },
		{ "m", 60000000000ull }, { "h", 3600000000000ull },
	};
	uint64_t total = 0, v;
	const char *unit;
	int err;

	if (!s || !*s)
		return -EINVAL;
	/* a bare number is seconds; "0" is zero, as in Go */
	if (strspn(s + (*s == '+'), "0123456789.") == strlen(s + (*s == '+')))
		return scaled_decimal(&s, 1000000000ull, ns, &unit);
	while (*s) {
		size_t i, best = 0, bestlen = 0;
		const char *p = s;

		/* the value first, to find its unit; then scaled by it */
		err = scaled_decimal(&p, 1, &v, &unit);
		if (err == -EINVAL)
			return err;
		for (i = 0; i < ARRAY_SIZE(units); i++) {
			size_t n = strlen(units[i].u);

			/* the longest unit that matches: "ms" before "m" */
			if (!strncmp(unit, units[i].u, n) && n > bestlen) {
				best = i;
				bestlen = n;
			}
		}
		if (!bestlen)
			return -EINVAL;
		err = scaled_decimal(&s, units[best].mul, &v, &unit);
		if (err)
			return err;
		s += bestlen;
		if (total > UINT64_MAX - v)
			return -ERANGE;
		total += v;
	}
	*ns = total;
	return 0;
}

int pt_parse_size(const char *s, uint64_t *bytes)
{
	static const struct { const char *sfx; uint64_t mul; } sfx[] = {
		{ "", 1 }, { "k", 1000 }, { "M", 1000000 },
		{ "G", 1000000000ull }, { "T", 1000000000000ull },
		{ "P", 1000000000000000ull }, { "E", 1000000000000000000ull },
		{ "Ki", 1ull << 10 }, { "Mi", 1ull << 20 }, { "Gi", 1ull << 30 },
		{ "Ti", 1ull << 40 }, { "Pi", 1ull << 50 }, { "Ei", 1ull << 60 },
	};
	const char *p = s, *unit;
	uint64_t v;
	size_t i;
	int err;

	if (!s || !*s)
		return -EINVAL;
	err = scaled_decimal(&p, 1, &v, &unit);
	if (err == -EINVAL)
		return err;
	for (i = 0; i < ARRAY_SIZE(sfx); i++)
		if (!strcmp(unit, sfx[i].sfx))
			return scaled_decimal(&s, sfx[i].mul, bytes, &unit);
	/* a decimal exponent, "1e3", "1.5E6" (but "1E" is exa) */
	if ((unit[0] == 'e' || unit[0] == 'E') &&
	    unit[1 + (unit[1] == '+')] &&
	    strspn(unit + 1 + (unit[1] == '+'), "0123456789") ==
	    strlen(unit + 1 + (unit[1] == '+'))) {
		uint64_t mul = 1;
		unsigned long x = strtoul(unit + 1, NULL, 10);

		if (x > 19)
			return -ERANGE;
		while (x--)
			mul *= 10;
		return scaled_decimal(&s, mul, bytes, &unit);
	}
	return -EINVAL;
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

const char *pt_printable(const char *s, char *buf, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	for (; n && *p && i + 1 < n; p++) {
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			buf[i++] = '?';	/* C1, as UTF-8 */
			p++;
		} else if (p[0] == 0xe2 && p[1] && p[2] &&
			   ((p[1] == 0x80 && ((p[2] >= 0xa8 && p[2] <= 0xae) ||
					      p[2] == 0x8e || p[2] == 0x8f)) ||
			    (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9))) {
			/* line separators, bidi marks, overrides, isolates */
			buf[i++] = '?';
			p += 2;
		} else {
			buf[i++] = *p < 0x20 || *p == 0x7f ? '?' : (char)*p;
		}
	}
	if (n)
		buf[i] = 0;
	return buf;
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

/* bytes as a quantity: 1Gi, 4Ki, or a plain number of bytes */
static const char *fmt_bytes(uint64_t v, char *buf, size_t n)
{
	static const char *const sfx[] = { "Ei", "Pi", "Ti", "Gi", "Mi", "Ki" };
	int i;

	for (i = 0; i < 6 && v; i++) {
		unsigned shift = (unsigned)(60 - 10 * i);

		if (!(v & ((1ull << shift) - 1))) {
			snprintf(buf, n, "%llu%s", (unsigned long long)(v >> shift),
				 sfx[i]);
			return buf;
		}
	}
	snprintf(buf, n, "%llu byte%s", (unsigned long long)v, v == 1 ? "" : "s");
	return buf;
}

int pt_opt_size(const char *opt, const char *arg, uint64_t min,
		uint64_t max, uint64_t *bytes)
{
	char b[32];
	int err = pt_parse_size(arg, bytes);

	if (err == -EINVAL) {
		pt_err("%s %s: not a size (a number of bytes, or with k, M, G (powers of 1000) or Ki, Mi, Gi (of 1024): 64Ki, 100M, 1Gi)",
		       opt, arg);
		return err;
	}
	if (err || *bytes > max) {
		if (max == UINT64_MAX)
			pt_err("%s %s: too large (more than 2^64 bytes)", opt, arg);
		else
			pt_err("%s %s: too large (at most %s)", opt, arg,
			       fmt_bytes(max, b, sizeof(b)));
		return -ERANGE;
	}
	if (*bytes < min) {
		pt_err("%s %s: too small (at least %s)", opt, arg,
		       fmt_bytes(min, b, sizeof(b)));
		return -ERANGE;
	}
	return 0;
}

/* A duration as Go writes one, in the largest unit that divides it. */
static const char *fmt_ns(uint64_t ns, char *buf, size_t n)
{
	static const struct { const char *u; uint64_t ns; } u[] = {
		{ "h", 3600000000000ull }, { "m", 60000000000ull },
		{ "s", 1000000000ull }, { "ms", 1000000 }, { "us", 1000 },
		{ "ns", 1 },
	};
	size_t i;

	for (i = 0; i + 1 < ARRAY_SIZE(u) && (!ns || ns % u[i].ns); i++)
		;
	snprintf(buf, n, "%llu%s", (unsigned long long)(ns / u[i].ns), u[i].u);
	return buf;
}

int pt_opt_duration(const char *opt, const char *arg, uint64_t min,
		    uint64_t max, uint64_t *ns)
{
	char b[32];
	int err = pt_parse_duration(arg, ns);

	if (err == -EINVAL) {
		pt_err("%s %s: not a duration (Go's form: 30s, 1.5s, 250ms, 1h30m; a bare number is seconds)",
		       opt, arg);
		return err;
	}
	if (err || *ns > max) {
		if (max == UINT64_MAX)
			pt_err("%s %s: too long (more than 2^64 ns, 584 years)",
			       opt, arg);
		else
			pt_err("%s %s: too long (at most %s)", opt, arg,
			       fmt_ns(max, b, sizeof(b)));
		return -ERANGE;
	}
	if (*ns < min) {
		pt_err("%s %s: too short (at least %s)", opt, arg,
		       fmt_ns(min, b, sizeof(b)));
		return -ERANGE;
	}
	return 0;
}

int pt_opt_ring_size(const char *arg, uint64_t *bytes)
{
	uint64_t sz = (uint64_t)sysconf(_SC_PAGESIZE);
	int err = pt_opt_size("--ring-size", arg, 4096, 1ull << 30, bytes);

	if (err)
		return err;
	/* the kernel's ring is a power of two pages */
	while (sz < *bytes)
		sz <<= 1;
	if (sz != *bytes)
		pt_err("note: --ring-size %s is rounded up to %llu%s (a power of two)",
		       arg, (unsigned long long)(sz >= (1u << 20) ?
		       sz >> 20 : sz >> 10), sz >= (1u << 20) ? "Mi" : "Ki");
	*bytes = sz;
	return 0;
}

int pt_opt_poll(const char *arg, uint64_t *ns)
{
	return pt_opt_duration("--poll", arg, 1000000, 1000000000ull, ns);
}

int pt_opt_tls_probes(const char *arg, bool *per_process)
{
	if (!strcmp(arg, "file") || !strcmp(arg, "process")) {
		*per_process = arg[0] == 'p';
		return 0;
	}
	pt_err("--tls-probes %s: want file or process", arg);
	return -EINVAL;
}

/* "HOST:PORT", "[V6]:PORT", ":PORT" into a socket address. */
int pt_parse_listen_addr(const char *addr, struct sockaddr_storage *ss,
			 bool *v6)
{
	return pt_parse_addr(addr, true, ss, NULL, v6);
}

int pt_parse_addr(const char *addr, bool passive, struct sockaddr_storage *ss,
		  socklen_t *len, bool *v6)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV |
					      (passive ? AI_PASSIVE : 0) };
	struct addrinfo *res;
	char host[256];
	const char *colon, *h;
	uint64_t port;
	size_t hl;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		h = addr + 1;
		hl = end - h;
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		h = addr;
		hl = colon - addr;
	}
	if (hl >= sizeof(host) || pt_parse_u64(colon + 1, 1, 65535, &port) ||
	    (!hl && !passive))
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	if (getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res))
		return -EADDRNOTAVAIL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	if (len)
		*len = res->ai_addrlen;
	if (v6)
		*v6 = res->ai_family == AF_INET6;
	/* ":PORT": every address, IPv4 and IPv6 */
	if (!hl) {
		struct sockaddr_in6 *s6 = (void *)ss;

		memset(ss, 0, sizeof(*ss));
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		s6->sin6_addr = in6addr_any;
		if (len)
			*len = sizeof(*s6);
		if (v6)
			*v6 = true;
	}
	freeaddrinfo(res);
	return 0;
}

bool pt_same_file(const char *a, const char *b)
{
	struct stat x, y;

	return !stat(a, &x) && !stat(b, &y) && x.st_dev == y.st_dev &&
	       x.st_ino == y.st_ino;
}

int pt_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int pt_base64_decode(const char *s, void **out, size_t *outlen)
{
	size_t n = strlen(s), o = 0;
	uint8_t *buf = pt_xcalloc(1, n * 3 / 4 + 3);
	uint32_t acc = 0;
	int bits = 0, v;

	for (; *s; s++) {
		if (*s == '=' || *s == '\n' || *s == '\r' || *s == ' ')
			continue;
		v = b64val((unsigned char)*s);
		if (v < 0) {
			free(buf);
			return -EINVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
		}
	}
	*out = buf;
	*outlen = o;
	return 0;
}

unsigned long long pt_nofile_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? 0 : rl.rlim_cur;
}

int pt_ferror(FILE *f)
{
	if (!ferror(f))
		return 0;
	errno = 0;
	fflush(f);
	return errno ? -errno : -EIO;
}
