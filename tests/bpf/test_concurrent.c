// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* 200 connections open at once, every one captured exactly on both sides. */
#include <sys/socket.h>
#include "harness.h"
#include "test_progs.h"

void test_concurrent(void)
{
	struct h_xfer x = {
		.family = AF_INET,
		.srv_bind = "127.0.0.1",
		.dst = "127.0.0.1",
		.port = 20300,
		.snd = M_SEND,
		.rcv = M_RW,
		.req_len = 4000,
		.resp_len = 9000,
		.nconns = 200,
		.concurrent = true,
		.seed = 3000,
	};
	struct h_cg srv, cli;

	if (!ASSERT_OK(h_cg_make(&srv, "srv"), "srv cgroup") ||
	    !ASSERT_OK(h_cg_make(&cli, "cli"), "cli cgroup"))
		return;
	h_record_xfer_tries(&x, &srv, NULL, &cli, NULL, 2);
}
