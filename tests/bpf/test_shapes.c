// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Connection shapes: keep-alive, half-close, a reused fd and port, IPv6,
 * IPv4 on a dual-stack socket, and traffic between network namespaces
 * over a veth pair.
 */
#include <sys/socket.h>
#include "harness.h"
#include "test_progs.h"

void test_shapes(void)
{
	struct h_cg srv, cli;
	struct h_netpair np;
	bool have_np = false;

	if (!ASSERT_OK(h_cg_make(&srv, "srv"), "srv cgroup") ||
	    !ASSERT_OK(h_cg_make(&cli, "cli"), "cli cgroup"))
		return;
	if (test__start_subtest("keepalive")) {
		struct h_xfer x = {
			.family = AF_INET, .srv_bind = "127.0.0.1",
			.dst = "127.0.0.1", .port = 20400, .snd = M_RW,
			.rcv = M_RW, .req_len = 311, .resp_len = 4099,
			.rounds = 100, .nconns = 2, .seed = 4000,
		};

		h_record_xfer(&x, &srv, NULL, &cli, NULL);
	}
	if (test__start_subtest("halfclose")) {
		struct h_xfer x = {
			.family = AF_INET, .srv_bind = "127.0.0.1",
			.dst = "127.0.0.1", .port = 20401, .snd = M_SEND,
			.rcv = M_SEND, .req_len = 200000, .resp_len = 500000,
			.mode = X_HALFCLOSE, .nconns = 3, .seed = 4001,
		};

		h_record_xfer(&x, &srv, NULL, &cli, NULL);
	}
	if (test__start_subtest("fd_port_reuse")) {
		/* Same fd number, same 4-tuple, five connections: five ids. */
		struct h_xfer x = {
			.family = AF_INET, .srv_bind = "127.0.0.1",
			.dst = "127.0.0.1", .port = 20402, .snd = M_RW,
			.rcv = M_RW, .req_len = 1000, .resp_len = 2000,
			.mode = X_HALFCLOSE, .nconns = 5, .bind_port = 20499,
			.seed = 4002,
		};

		h_record_xfer(&x, &srv, NULL, &cli, NULL);
	}
	if (test__start_subtest("ipv6")) {
		struct h_xfer x = {
			.family = AF_INET6, .srv_bind = "::1", .dst = "::1",
			.port = 20403, .snd = M_MSG, .rcv = M_MSG,
			.req_len = 100000, .resp_len = 70000, .rounds = 2,
			.nconns = 3, .seed = 4003,
		};

		h_record_xfer(&x, &srv, NULL, &cli, NULL);
	}
	if (test__start_subtest("v4mapped")) {
		/* server on [::] dual-stack, client over IPv4 */
		struct h_xfer x = {
			.family = AF_INET6, .srv_bind = "::",
			.dst = "::ffff:127.0.0.1", .port = 20404, .snd = M_RW,
			.rcv = M_RW, .req_len = 5000, .resp_len = 6000,
			.nconns = 2, .seed = 4004,
		};

		h_record_xfer(&x, &srv, NULL, &cli, NULL);
	}
	if (test__start_subtest("same_cgroup")) {
		/*
		 * Client and server in one cgroup over loopback: each side's
		 * softirq work runs while the other side's task is current,
		 * and must not be taken for its owner.
		 */
		struct h_xfer x = {
			.family = AF_INET, .srv_bind = "127.0.0.1",
			.dst = "127.0.0.1", .port = 20407, .snd = M_RW,
			.rcv = M_RW, .req_len = 30000, .resp_len = 90000,
			.rounds = 5, .nconns = 4, .seed = 4007,
		};

		h_record_xfer(&x, &srv, NULL, &srv, NULL);
	}
	if (test__start_subtest("veth_ipv4")) {
		if (ASSERT_OK(h_netpair_make(&np), "netns pair")) {
			struct h_xfer x = {
				.family = AF_INET, .srv_bind = np.srv_ip4,
				.dst = np.srv_ip4, .port = 20405, .snd = M_RW,
				.rcv = M_RW, .req_len = 1 << 20,
				.resp_len = 3 << 20, .rounds = 2, .nconns = 2,
				.seed = 4005,
			};

			have_np = true;
			h_record_xfer(&x, &srv, np.srv_ns, &cli, np.cli_ns);
		}
	}
	if (test__start_subtest("veth_ipv6")) {
		if (have_np || ASSERT_OK(h_netpair_make(&np), "netns pair")) {
			struct h_xfer x = {
				.family = AF_INET6, .srv_bind = np.srv_ip6,
				.dst = np.srv_ip6, .port = 20406, .snd = M_VEC,
				.rcv = M_VEC, .req_len = 500000,
				.resp_len = 2 << 20, .nconns = 2, .seed = 4006,
			};

			h_record_xfer(&x, &srv, np.srv_ns, &cli, np.cli_ns);
		}
	}
}
