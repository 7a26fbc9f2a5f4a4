/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A small harness in the shape of the kernel's test_progs: one file per
 * feature with test_<feature>(), subtests, named ASSERT_* that return bool,
 * skips with a reason when a privilege or kernel feature is missing.
 */
#ifndef __PT_TEST_PROGS_H
#define __PT_TEST_PROGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

bool test__start_subtest(const char *name);
void test__fail(void);
void test__skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool test__verbose(void);

#define _CHECK(cond, tag, fmt, ...) ({					\
	bool ___ok = !(cond);						\
	if (!___ok) {							\
		test__fail();						\
		fprintf(stderr, "%s:%d: %s: FAIL " fmt "\n",		\
			__func__, __LINE__, tag, ##__VA_ARGS__);	\
	} else if (test__verbose()) {					\
		fprintf(stderr, "%s:%d: %s: OK\n", __func__, __LINE__,	\
			tag);						\
	}								\
	___ok;								\
})

#define ASSERT_TRUE(actual, name) \
	_CHECK(!(actual), (name), "unexpected false")
#define ASSERT_FALSE(actual, name) \
	_CHECK((actual), (name), "unexpected true")
#define ASSERT_OK(res, name) ({						\
	long long ___r = (res);						\
	_CHECK(___r != 0, (name), "unexpected error %lld (%s)", ___r,	\
	       strerror(___r < 0 ? (int)-___r : (int)___r));		\
})
#define ASSERT_OP(actual, op, expected, name) ({			\
	long long ___a = (long long)(actual);				\
	long long ___e = (long long)(expected);				\
	_CHECK(!(___a op ___e), (name),					\
	       "actual %lld " #op " expected %lld is false", ___a, ___e); \
})
#define ASSERT_EQ(a, e, name) ASSERT_OP(a, ==, e, name)
#define ASSERT_NEQ(a, e, name) ASSERT_OP(a, !=, e, name)
#define ASSERT_GT(a, e, name) ASSERT_OP(a, >, e, name)
#define ASSERT_GE(a, e, name) ASSERT_OP(a, >=, e, name)
#define ASSERT_LE(a, e, name) ASSERT_OP(a, <=, e, name)
#define ASSERT_LT(a, e, name) ASSERT_OP(a, <, e, name)
#define ASSERT_PTR(p, name) _CHECK(!(p), (name), "unexpected NULL")
#define ASSERT_STREQ(actual, expected, name) ({				\
	const char *___s = (actual), *___x = (expected);		\
	_CHECK(!___s || strcmp(___s, ___x), (name),			\
	       "actual \"%s\" != expected \"%s\"", ___s ? ___s : "(null)", \
	       ___x);							\
})
/* Byte-exact: names the first differing offset. */
#define ASSERT_BYTES_EQ(buf, len, exp, elen, name) ({			\
	const uint8_t *___b = (const uint8_t *)(buf);			\
	const uint8_t *___x = (const uint8_t *)(exp);			\
	uint64_t ___l = (len), ___el = (elen), ___i = 0;		\
	while (___i < ___l && ___i < ___el && ___b[___i] == ___x[___i])	\
		___i++;							\
	_CHECK(___l != ___el || ___i != ___l, (name),			\
	       "length %llu vs expected %llu, first difference at byte %llu", \
	       (unsigned long long)___l, (unsigned long long)___el,	\
	       (unsigned long long)___i);				\
})

#endif
