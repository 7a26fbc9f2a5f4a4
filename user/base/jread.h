/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Reading JSON (Kubernetes API objects) with jsmn's tokens: a parsed
 * document is a flat token array; a value is named by its token index.
 */
#ifndef __PODTAP_JREAD_H
#define __PODTAP_JREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pt_jr {
	const char *s;		/* the text, not copied: keep it alive */
	size_t len;
	struct pt_jtok *t;
	int n;
};

enum pt_jtype { PT_J_OTHER, PT_J_OBJECT, PT_J_ARRAY, PT_J_STRING, PT_J_PRIM };

/* Parse s[0..len); -EINVAL if it is not one well-formed JSON value. */
int pt_jr_parse(struct pt_jr *j, const char *s, size_t len);
void pt_jr_free(struct pt_jr *j);

enum pt_jtype pt_jr_type(const struct pt_jr *j, int i);
/* Members of an object, elements of an array. */
int pt_jr_size(const struct pt_jr *j, int i);
/* The token after value i and everything inside it. */
int pt_jr_next(const struct pt_jr *j, int i);
/* Member key of object i, or -1. */
int pt_jr_get(const struct pt_jr *j, int i, const char *key);
/* Follow "a.b.c" from object i, or -1. */
int pt_jr_path(const struct pt_jr *j, int i, const char *path);
/* A string value, unescaped, malloc'd; NULL if i is not a string. */
char *pt_jr_str(const struct pt_jr *j, int i);
/* Is i the string s? */
bool pt_jr_streq(const struct pt_jr *j, int i, const char *s);
/* The raw text of value i (for numbers and booleans), and its length. */
const char *pt_jr_raw(const struct pt_jr *j, int i, int *len);
/* A whole number or a string holding one; -EINVAL otherwise. */
int pt_jr_u64(const struct pt_jr *j, int i, uint64_t *v);

/* Iterate over the elements of array (or values of object) i. */
#define pt_jr_for_each(j, arr, el, k)					\
	for ((k) = 0, (el) = (arr) + 1 + (pt_jr_type(j, arr) == PT_J_OBJECT); \
	     (arr) >= 0 && (k) < pt_jr_size(j, arr);			\
	     (k)++, (el) = pt_jr_next(j, (el)) +			\
			   (pt_jr_type(j, arr) == PT_J_OBJECT))

#endif
