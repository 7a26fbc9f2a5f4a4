/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* JSON text out: strings, bytes as text or base64, wall-clock times. */
#ifndef __PODTAP_JSONW_H
#define __PODTAP_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Is p[0..n) well-formed UTF-8 (RFC 3629: no overlongs, no surrogates)? */
bool pt_utf8_valid(const uint8_t *p, size_t n);
/* A malloc'd copy of n bytes with invalid UTF-8 replaced by U+FFFD, its
 * length in *outn; NUL-terminated. NULL when out of memory. */
char *pt_utf8_fix(const void *p, size_t n, size_t *outn);
/* A JSON string of n bytes; invalid UTF-8 becomes U+FFFD. */
void pt_json_strn(FILE *f, const void *p, size_t n);
void pt_json_str(FILE *f, const char *s);
/* n bytes in base64 (RFC 4648), padded, no quotes: a stream of them
 * cut at multiples of 3 bytes reads as one. */
void pt_base64_put(FILE *f, const uint8_t *p, size_t n);
/* A JSON string of base64 (RFC 4648). */
void pt_json_base64(FILE *f, const uint8_t *p, size_t n);
/*
 * Bytes as "key":"text","key_encoding":"utf-8" when they are UTF-8 text,
 * else as base64 with "key_encoding":"base64". Starts with a comma.
 */
void pt_json_bytes(FILE *f, const char *key, const uint8_t *p, size_t n);
/* "2026-11-22T04:39:55.123456789Z" (digits: 9 or 3) into buf[40]. */
void pt_fmt_time(char *buf, size_t len, uint64_t real_ns, int digits);

#endif
