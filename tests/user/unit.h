/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Userspace unit tests: no BPF, no root. Same assertion style as tests/bpf. */
#ifndef __PT_UNIT_H
#define __PT_UNIT_H

#include <stdbool.h>
#include <stdio.h>

extern int unit_failed_asserts;

#define CHECK(cond, fmt, ...) ({					\
	bool ___ok = (cond);						\
	if (!___ok) {							\
		unit_failed_asserts++;					\
		fprintf(stderr, "%s:%d: FAIL " fmt "\n", __func__,	\
			__LINE__, ##__VA_ARGS__);			\
	}								\
	___ok;								\
})
#define ASSERT_EQ(a, e, name) ({					\
	long long ___a = (long long)(a), ___e = (long long)(e);	\
	CHECK(___a == ___e, "%s: actual %lld != expected %lld", name,	\
	      ___a, ___e);						\
})
#define ASSERT_TRUE(c, name) CHECK((c), "%s: unexpected false", name)
#define ASSERT_OK(r, name) ASSERT_EQ((r), 0, name)

/* tests/user/test_http.c */
void test_http_start_lines(void);
void test_http_fields(void);
void test_http_body_length(void);
void test_http_chunked(void);
void test_http_content_encoding(void);
void test_http_corners(void);
void test_exchanges_corners(void);
void test_exchanges_pairing(void);
void test_exchanges_gap(void);
void test_exchanges_raw(void);
void test_http_ambiguous(void);
void test_exchanges_blank_tail(void);
void test_exchanges_proto(void);

/* tests/user/test_outfile.c */
void test_outfile(void);

/* tests/user/test_agent.c */
void test_agent_jread(void);
void test_agent_units(void);
void test_agent_sessions(void);
void test_agent_cgroups(void);
void test_agent_segments(void);

#endif
