// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Payloads from one byte to 16 MiB, each direction, exact. */
#include <stdio.h>
#include <sys/socket.h>
#include "harness.h"
#include "test_progs.h"

void test_sizes(void)
{
	static const size_t sizes[] = { 1, 100, 1460, 65536, 1 << 20,
					16 << 20 };
	struct h_cg srv, cli;
	char name[64];
	size_t i;

	if (!ASSERT_OK(h_cg_make(&srv, "srv"), "srv cgroup") ||
	    !ASSERT_OK(h_cg_make(&cli, "cli"), "cli cgroup"))
		return;
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		struct h_xfer x = {
			.family = AF_INET,
			.srv_bind = "127.0.0.1",
			.dst = "127.0.0.1",
			.port = 20200 + i,
			.snd = M_RW,
			.rcv = M_RW,
			.req_len = sizes[i],
			/* the answer differs in size from the question */
			.resp_len = sizes[i] + 7,
			.mode = X_HALFCLOSE,
			.nconns = 1,
			.seed = 2000 + i,
		};

		snprintf(name, sizeof(name), "bytes_%zu", sizes[i]);
		if (test__start_subtest(name))
			h_record_xfer(&x, &srv, NULL, &cli, NULL);
	}
}
