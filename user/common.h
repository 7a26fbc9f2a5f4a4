/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __PODTAP_COMMON_H
#define __PODTAP_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

uint64_t pt_now_mono_ns(void);
uint64_t pt_now_real_ns(void);

/* Parse "10", "10s", "250ms", "2m", "1h" into nanoseconds. */
int pt_parse_duration(const char *s, uint64_t *ns);
/* Parse "100", "64K", "10M", "1G" (powers of 1024) into bytes. */
int pt_parse_size(const char *s, uint64_t *bytes);
/* --ring-size (4K to 1G) and --poll (1ms to 1s) of the recorders; one
 * line and -EINVAL when out of range. */
int pt_opt_ring_size(const char *arg, uint64_t *bytes);
int pt_opt_poll(const char *arg, uint64_t *ns);
/* Parse a whole decimal number in [min, max]. */
int pt_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

void *pt_xcalloc(size_t n, size_t size);
char *pt_xstrdup(const char *s);
/* "out of memory" and exit(1). */
void pt_oom(void) __attribute__((noreturn));
void *pt_xrealloc(void *p, size_t n, size_t size);

#include <pthread.h>
/* Wait on cv (mu not held) up to ms, or until *stop is set and cv signalled. */
void pt_nap(pthread_mutex_t *mu, pthread_cond_t *cv, const bool *stop,
	    unsigned ms);

#endif
