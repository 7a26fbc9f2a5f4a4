// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Every way an application moves bytes over TCP, on both peers: the
 * capture of each side, each direction, equals what was sent.
 */
#include <sys/socket.h>
#include "harness.h"
#include "test_progs.h"

void test_syscalls(void)
{
	struct h_cg srv, cli;
	int m;

	if (!ASSERT_OK(h_cg_make(&srv, "srv"), "srv cgroup") ||
	    !ASSERT_OK(h_cg_make(&cli, "cli"), "cli cgroup"))
		return;
	for (m = 0; m < M__COUNT; m++) {
		struct h_xfer x = {
			.family = AF_INET,
			.srv_bind = "127.0.0.1",
			.dst = "127.0.0.1",
			.port = 20100 + m,
			.snd = m,
			.rcv = m,
			.req_len = 70001,
			.resp_len = 300007,
			.rounds = 3,
			.nconns = 3,
			.seed = 1000 + m,
		};

		if (test__start_subtest(h_method_names[m]))
			h_record_xfer(&x, &srv, NULL, &cli, NULL);
	}
	if (test__start_subtest("mixed")) {
		/* client writes with sendmmsg, server reads with readv, ... */
		struct h_xfer x = {
			.family = AF_INET, .srv_bind = "127.0.0.1",
			.dst = "127.0.0.1", .port = 20199,
			.snd = M_MMSG, .rcv = M_VEC,
			.req_len = 12345, .resp_len = 54321, .rounds = 4,
			.nconns = 2, .seed = 77,
		};

		h_record_xfer(&x, &srv, NULL, &cli, NULL);
	}
}
