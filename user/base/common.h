/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __PODTAP_COMMON_H
#define __PODTAP_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define PT_VERSION "0.1.0"

#include <stdarg.h>

extern bool pt_verbose;
/* Log lines as JSON objects ({"time","level","msg"}) instead of text. */
extern bool pt_log_json;

/* One line on stderr: "podtap: ..." or, with pt_log_json, a JSON object. */
void pt_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pt_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Only with -v. */
void pt_dbg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pt_vdbg(const char *fmt, va_list ap);
/* getopt's complaint: opt is ':' for a missing value, else an unknown one. */
void pt_bad_option(const char *cmd, int opt, const char *arg);
/* "text" or "json"; -EINVAL for anything else. */
int pt_set_log_format(const char *s);
/*
 * The end of every command's option switch: the options every command
 * takes, by their getopt value, 'v' (--verbose) and 'L' (--log-format
 * FMT). 0 when opt was one of them; < 0 after one line for a bad value,
 * or for an option cmd does not know (word: as given, argv[optind - 1]).
 */
int pt_opt_other(const char *cmd, int opt, const char *arg, const char *word);

uint64_t pt_now_mono_ns(void);
uint64_t pt_now_real_ns(void);

/*
 * The one vocabulary of sizes and durations, on the command line and in
 * RecordingSessions alike. Durations are Go's ("30s", "1.5s", "250ms",
 * "1h30m"; units ns, us, µs, ms, s, m, h); a bare number is seconds.
 * Sizes are Kubernetes quantities of bytes ("100", "100M", "1.5Gi"):
 * k, M, G, T, P, E are powers of 1000, Ki, Mi, Gi, Ti, Pi, Ei of 1024;
 * a bare number is bytes; a fraction is rounded up to a whole byte.
 * -EINVAL for what is not one, -ERANGE past 2^64.
 */
int pt_parse_duration(const char *s, uint64_t *ns);
int pt_parse_size(const char *s, uint64_t *bytes);
/* An option's size or duration within [min, max]: one line naming opt
 * ("not a size", "too large", ...) and <0 otherwise. */
int pt_opt_size(const char *opt, const char *arg, uint64_t min,
		uint64_t max, uint64_t *bytes);
int pt_opt_duration(const char *opt, const char *arg, uint64_t min,
		    uint64_t max, uint64_t *ns);
/* --ring-size (4Ki to 1Gi) and --poll (1ms to 1s) of the recorders. */
int pt_opt_ring_size(const char *arg, uint64_t *bytes);
int pt_opt_poll(const char *arg, uint64_t *ns);
/* --tls-probes: "file" (false) or "process" (true). */
int pt_opt_tls_probes(const char *arg, bool *per_process);
/* "HOST:PORT", "[V6]:PORT" or ":PORT" (every address, v4 and v6) to
 * listen on; -EINVAL (not one) or -EADDRNOTAVAIL (no such host). */
#include <sys/socket.h>
int pt_parse_listen_addr(const char *addr, struct sockaddr_storage *ss,
			 bool *v6);
/* The same to connect to (passive false: "HOST:PORT" with a host, names
 * resolved); *len and *v6 when not NULL. */
int pt_parse_addr(const char *addr, bool passive, struct sockaddr_storage *ss,
		  socklen_t *len, bool *v6);
/* Base64 (RFC 4648, whitespace and padding skipped) into a malloc'd
 * buffer; -EINVAL for anything else. */
int pt_base64_decode(const char *s, void **out, size_t *outlen);
/* Do two paths name one file (links followed)? */
bool pt_same_file(const char *a, const char *b);
/* A hex digit's value, or -1. */
int pt_hexval(int c);
/* Parse a whole decimal number in [min, max]. */
int pt_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* s for a terminal: control bytes (C0, DEL, C1) and bidi or line
 * separator characters as '?'; buf is returned. */
const char *pt_printable(const char *s, char *buf, size_t n);

void *pt_xcalloc(size_t n, size_t size);
char *pt_xstrdup(const char *s);
/* "out of memory" and exit(1). */
void pt_oom(void) __attribute__((noreturn));
void *pt_xrealloc(void *p, size_t n, size_t size);
/* The soft limit on open files raised to the hard one; the limit now
 * (0 for none). */
unsigned long long pt_nofile_raise(void);
/* 0, or why writing to f failed (-errno): its buffer written once more,
 * since the errno of the write that failed is long gone. */
int pt_ferror(FILE *f);

#include <pthread.h>
/* Wait on cv (mu not held) up to ms, or until *stop is set and cv signalled. */
void pt_nap(pthread_mutex_t *mu, pthread_cond_t *cv, const bool *stop,
	    unsigned ms);

#endif
