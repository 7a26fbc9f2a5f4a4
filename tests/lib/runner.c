// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The one test runner, in the shape of the kernel's test_progs: every
 * `void test_NAME(void)` of a test folder is found by the Makefile
 * (tests.inc), run in order, with subtests, skips and a summary line
 * tests/run.sh counts. Linked into build/test_progs (tests/bpf, which
 * sets up the kernel side in its env hooks) and build/test_user
 * (tests/user, which needs none). PROG names the binary in the summary.
 */
#include <getopt.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>
#include "test_progs.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

#define DEFINE_TEST(name) void test_##name(void);
#include "tests.inc"
#undef DEFINE_TEST

struct test_def {
	const char *name;
	void (*fn)(void);
};

static const struct test_def tests[] = {
#define DEFINE_TEST(name) { #name, test_##name },
#include "tests.inc"
#undef DEFINE_TEST
};

/* A folder's set-up before its first test, clean-up after each, and
 * teardown; a folder that needs none links these. */
__attribute__((weak)) const char *h_env_setup(void) { return NULL; }
__attribute__((weak)) void h_test_cleanup(void) {}
__attribute__((weak)) void h_env_teardown(void) {}

static struct {
	const char *filter;
	bool verbose;
	int test_num;
	const char *test_name;
	/* current test */
	bool test_failed, test_skipped;
	int sub_num;
	char sub_name[128];
	bool sub_open, sub_failed, sub_skipped;
	/* totals, counting each subtest (or test without subtests) once */
	int passed, failed, skipped;
} env;

bool test__verbose(void)
{
	return env.verbose;
}

static bool selected(const char *test, const char *sub)
{
	char full[256];

	if (!env.filter)
		return true;
	if (!sub)	/* a test runs if any of its subtests may match */
		return !fnmatch(env.filter, test, 0) ||
		       !strncmp(env.filter, test, strlen(test));
	snprintf(full, sizeof(full), "%s/%s", test, sub);
	return !fnmatch(env.filter, test, 0) || !fnmatch(env.filter, full, 0);
}

static void end_subtest(void)
{
	if (!env.sub_open)
		return;
	fprintf(stdout, "#%d/%d %s/%s:%s\n", env.test_num, env.sub_num,
		env.test_name, env.sub_name,
		env.sub_failed ? "FAIL" : env.sub_skipped ? "SKIP" : "OK");
	if (env.sub_failed)
		env.failed++;
	else if (env.sub_skipped)
		env.skipped++;
	else
		env.passed++;
	fflush(stdout);
	env.sub_open = false;
}

bool test__start_subtest(const char *name)
{
	end_subtest();
	env.sub_num++;
	if (!selected(env.test_name, name))
		return false;
	snprintf(env.sub_name, sizeof(env.sub_name), "%s", name);
	env.sub_open = true;
	env.sub_failed = env.sub_skipped = false;
	return true;
}

void test__fail(void)
{
	if (env.sub_open)
		env.sub_failed = true;
	env.test_failed = true;
}

void test__skip(const char *fmt, ...)
{
	va_list ap;

	fprintf(stdout, "#%d %s%s%s: SKIP: ", env.test_num, env.test_name,
		env.sub_open ? "/" : "", env.sub_open ? env.sub_name : "");
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	if (env.sub_open)
		env.sub_skipped = true;
	else
		env.test_skipped = true;
}

static void usage(void)
{
	printf("Usage: " PROG " [-v] [-l] [-t PATTERN]\n"
	       "  -t PATTERN  run tests (or test/subtest) matching a glob\n"
	       "  -l          list the tests\n"
	       "  -v          print every assertion\n");
}

int main(int argc, char **argv)
{
	size_t i;
	int opt;
	bool ran_sub;
	const char *why;

	while ((opt = getopt(argc, argv, "t:lvh")) != -1) {
		switch (opt) {
		case 't':
			env.filter = optarg;
			break;
		case 'l':
			for (i = 0; i < ARRAY_SIZE(tests); i++)
				printf("%s\n", tests[i].name);
			return 0;
		case 'v':
			env.verbose = true;
			break;
		default:
			usage();
			return opt == 'h' ? 0 : 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	why = h_env_setup();
	for (i = 0; i < ARRAY_SIZE(tests); i++) {
		if (!selected(tests[i].name, NULL))
			continue;
		env.test_num = (int)i + 1;
		env.test_name = tests[i].name;
		env.test_failed = env.test_skipped = false;
		env.sub_num = 0;
		if (why) {
			test__skip("%s", why);
			env.skipped++;
			continue;
		}
		tests[i].fn();
		ran_sub = env.sub_num > 0;
		end_subtest();
		h_test_cleanup();
		if (!ran_sub) {
			fprintf(stdout, "#%d %s:%s\n", env.test_num,
				env.test_name, env.test_failed ? "FAIL" :
				env.test_skipped ? "SKIP" : "OK");
			if (env.test_failed)
				env.failed++;
			else if (env.test_skipped)
				env.skipped++;
			else
				env.passed++;
		}
	}
	h_env_teardown();
	printf("Summary: %d PASSED, %d SKIPPED, %d FAILED\n", env.passed,
	       env.skipped, env.failed);
	printf(PROG ": %d passed, %d failed, %d skipped\n", env.passed,
	       env.failed, env.skipped);
	return env.failed ? 1 : 0;
}
