// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Socket lifecycle: sockops learns where each stream starts (the first
 * byte after the SYN) and when the connection ends; cgroup/sock_create
 * remembers who created a socket and in which pid namespace.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "podtap.h"
#include "maps.bpf.h"
#include "compat.bpf.h"
#include "parse.bpf.h"
#include "emit.bpf.h"
#include "target.bpf.h"

/* Remember the creator of every TCP socket made under an attach point. */
SEC("cgroup/sock_create")
int podtap_sock_new(struct bpf_sock *sk)
{
	struct pt_conn_state *st;

	if (sk->protocol != IPPROTO_TCP)
		return 1;
	st = bpf_sk_storage_get(&conn_state, sk, 0,
				BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return 1;
	if (sock_task) {
		current_task_ids(&st->pid, &st->tgid, st->comm,
				 sizeof(st->comm), &st->pidns);
		st->task_attr = 1;
		st->pidns_known = 1;
	}
	return 1;
}

/*
 * Where each stream starts, and when a connection ends. sockops runs in
 * softirq for most callbacks: no task context is trusted here.
 */
SEC("sockops")
int podtap_sockops(struct bpf_sock_ops *ops)
{
	struct bpf_sock *sk = ops->sk;
	struct pt_conn_state *st;
	__u32 op = ops->op;

	if (!sk)
		return 1;
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ||
	    op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		st = bpf_sk_storage_get(&conn_state, sk, 0,
					BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return 1;
		/* A clone of the listener keeps only creator and pidns. */
		st->gen = 0;
		st->session = 0;
		st->opened = 0;
		st->closed = 0;
		st->preexisting = 0;
		st->fstate = filter_nports || filter_nhosts ?
			     (ops_wanted(ops) ? 1 : 2) : 0;
		__builtin_memset(st->d, 0, sizeof(st->d));
		if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
			st->role = PT_ROLE_CLIENT;
		} else {
			st->role = PT_ROLE_SERVER;
			st->task_attr = 0;	/* the listener's creator */
		}
		st->d[PT_DIR_TX].base = ops->snd_nxt;
		st->d[PT_DIR_TX].based = 1;
		st->d[PT_DIR_RX].base = ops->rcv_nxt;
		st->d[PT_DIR_RX].based = 1;
		bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags |
					       BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	}
	if (op == BPF_SOCK_OPS_STATE_CB && ops->args[1] == BPF_TCP_CLOSE) {
		__u64 conn_id = bpf_get_socket_cookie(ops);

		st = bpf_sk_storage_get(&conn_state, sk, 0, 0);
		if (!st || !st->session)
			return 1;
		if (st->loss_pending)
			st->loss_pending = flush_losses(conn_id, 2 + PT_DIR_TLS) != 0;
		if (st->opened && !st->closed)
			emit_close(st, conn_id, 0);
	}
	return 1;
}
