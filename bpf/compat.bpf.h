/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every kernel-compatibility choice of the BPF side lives here, each with
 * the kernel change that forced it. Oldest kernel aimed at: 5.8 (ring buffer).
 */
#ifndef __PODTAP_COMPAT_BPF_H
#define __PODTAP_COMPAT_BPF_H

#include <bpf/bpf_core_read.h>

/*
 * Helpers that tell which task runs a cgroup_skb / cgroup_sock program
 * (bpf_get_current_pid_tgid, bpf_get_current_comm, bpf_get_current_task,
 * bpf_get_current_cgroup_id) are accepted there only since they joined
 * bpf_base_func_proto for CAP_PERFMON loaders (6.10 era; on 6.1 a
 * cgroup_skb program calling bpf_get_current_cgroup_id is rejected with
 * "unknown func"). The loader probes for them and sets this before load;
 * when false the verifier prunes the calls and attribution is left to
 * what the socket itself tells.
 */
const volatile bool have_task_helpers = false;

/*
 * struct bpf_sock::dst_port became a 16-bit __be16 in 5.18 (the
 * "bpf: Make dst_port field in struct bpf_sock 16-bit wide" series);
 * before it, narrow loads behaved differently across kernels. podtap takes
 * ports and addresses from the packet headers instead and never reads
 * dst_port.
 */

/*
 * Sequence numbers for connections that already existed when recording
 * began come from bpf_tcp_sock() (5.1, "bpf: Add struct bpf_tcp_sock
 * and BPF_FUNC_tcp_sock"): rcv_nxt and snd_nxt give
 * the next stream byte in each direction at first sight.
 */

/*
 * Is the program running in the context of a task that is using the
 * socket, so that the current task may be taken as its owner? Exactly when
 * the socket is owned by user (lock_sock()): sendmsg and friends, and the
 * backlog and deferred work that release_sock() runs in the same task.
 * Softirq and timer work on a socket (ACK clocking, retransmits, loopback
 * delivery) only runs while nobody owns it, whichever task it interrupted.
 * The owner flag is read through bpf_skc_to_tcp_sock()'s BTF pointer
 * (5.9, "bpf: Add bpf_skc_to_tcp_sock() helper"); the loader includes it
 * in have_task_helpers.
 */
static __always_inline bool in_owner_context(struct bpf_sock *sk)
{
	struct tcp_sock *tp;

	if (!have_task_helpers)
		return false;
	tp = bpf_skc_to_tcp_sock(sk);
	return tp && tp->inet_conn.icsk_inet.sk.sk_lock.owned;
}

/*
 * The pid namespace a task lives in: the one of its pid at the deepest
 * level, task->thread_pid->numbers[level].ns (not nsproxy's
 * pid_ns_for_children, which unshare(CLONE_NEWPID) changes).
 */
static __always_inline __u32 current_pidns_inum(void)
{
	struct task_struct *task;
	struct pid_namespace *ns;
	struct upid up = {};
	struct pid *pid;
	unsigned int level;

	if (!have_task_helpers)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	pid = BPF_CORE_READ(task, thread_pid);
	level = BPF_CORE_READ(pid, level);
	if (bpf_core_read(&up, sizeof(up), &pid->numbers[level & 31]))
		return 0;
	ns = up.ns;
	return BPF_CORE_READ(ns, ns.inum);
}

#endif /* __PODTAP_COMPAT_BPF_H */
