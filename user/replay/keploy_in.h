/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A Keploy test set read back as a capture, so that replay and mock take
 * it as they take a recording: each test (tests/test-K.yaml, kind Http) an
 * inbound connection with its one exchange, each Http mock (mocks.yaml) an
 * outbound one. Bodies are as Keploy keeps them (decoded); a !!binary body
 * is its bytes. Other kinds are counted and left out.
 */
#ifndef __PODTAP_KEPLOY_IN_H
#define __PODTAP_KEPLOY_IN_H

#include <stdbool.h>
#include "export/export.h"

struct pt_kset {
	struct pt_capture cap;
	char ***noise;		/* per connection: its test's noise keys */
	size_t *nnoise;
	size_t tests, mocks, other;	/* read, and left out */
};

/* Is path a Keploy test set (a directory with tests/ or mocks.yaml)? */
bool pt_kset_is(const char *path);
/* Read it; 0, or < 0 after one line saying which file and why. */
int pt_kset_load(struct pt_kset *k, const char *dir);
void pt_kset_free(struct pt_kset *k);
/* What replay and mock read: one Keploy test set directory, or capture
 * files (k->noise is then NULL). 0, or < 0 after one line. */
int pt_input_load(struct pt_kset *k, const char *const *paths, int n);
/* The same, loading only a Keploy test set: 1 when it was one (loaded),
 * 0 for capture files (nothing read: the caller streams them), or < 0
 * after one line. */
int pt_input_kset(struct pt_kset *k, const char *const *paths, int n);

#endif
