/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Comparing a response with the recorded one: status, header fields and
 * body (JSON field by field, text byte by byte, binary by hash), with
 * what is expected to differ between two runs of the same build (noise)
 * set apart and counted rather than reported.
 */
#ifndef __PODTAP_DIFF_H
#define __PODTAP_DIFF_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "proto/http1.h"

/* A response as compared: its body with Content-Encoding undone. */
struct pt_resp {
	int status;
	const struct pt_http_field *fields;
	size_t nfields;
	const uint8_t *body;
	size_t body_len;
};

/* One difference: where ("status", "header Content-Type", "body $.a[0]",
 * "body"), what was recorded and what came back, printable and short. */
struct pt_diff {
	char *where;
	char *want;
	char *got;
};

struct pt_diffs {
	struct pt_diff *v;
	size_t n;
	size_t noise_auto;	/* time-like or UUID-like values that differed */
	size_t noise_rule;	/* differences a --noise rule named */
	size_t noise_learned;	/* differences two runs of one build had too */
};

/* What is not compared. Rules: "header.NAME", "body.PATH" (a JSON path:
 * $.a.b[0], with * for any key and [*] for any index; a path covers what
 * is inside it), and regular expressions masked out of bodies and header
 * values before comparing. learned: exact `where`s found by two runs. */
struct pt_noise {
	bool no_auto;		/* --no-auto-noise */
	char **headers;		/* header names, on top of the default list */
	size_t nheaders;
	char **paths;		/* JSON paths, "$..." */
	size_t npaths;
	regex_t *re;
	size_t nre;
	/* a Keploy test's own noise keys ("header.Date", "body.a.b": a body
	 * key names a field wherever its dotted path, array indices left
	 * out, holds it, as Keploy's matcher does); not owned */
	char *const *kkeys;
	size_t nkkeys;
};

/* Add a --noise RULE or --noise-regex RE; -EINVAL after saying why. */
int pt_noise_add(struct pt_noise *nz, const char *rule);
int pt_noise_add_regex(struct pt_noise *nz, const char *re);
void pt_noise_free(struct pt_noise *nz);
/* The header fields never compared (Date, ...), for --help. */
extern const char *const pt_noise_default_headers[];

/*
 * Compare got with want into *out (appended to); learned, if not NULL,
 * is a list of `where`s to take as noise. Returns the number of
 * differences added.
 */
size_t pt_resp_diff(const struct pt_noise *nz, const struct pt_resp *want,
		    const struct pt_resp *got, char *const *learned,
		    size_t nlearned, struct pt_diffs *out);
void pt_diffs_free(struct pt_diffs *d);

/* Does JSON path rule match path (or a path inside it)? */
bool pt_path_match(const char *rule, const char *path);

#endif
