/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every kernel-compatibility choice of the BPF side lives here, each with
 * the kernel change that forced it. Oldest kernel aimed at: 5.8 (ring buffer).
 */
#ifndef __PODTAP_COMPAT_BPF_H
#define __PODTAP_COMPAT_BPF_H

#include <bpf/bpf_core_read.h>

/*
 * Which task runs a program, feature by feature, as the loader probed it
 * (libbpf_probe_bpf_helper) before load; where a flag is false the
 * verifier prunes the calls it guards.
 *
 * The task-identity helpers differ by program type and kernel. Measured
 * under qemu: 6.1 refuses bpf_get_current_pid_tgid, _comm and
 * _cgroup_id in cgroup_skb ("unknown func"), 6.12 accepts
 * bpf_get_current_pid_tgid there but refused bpf_get_current_comm in
 * podtap_egress (libbpf's probe of a minimal program says yes), 6.18
 * takes all of them; all three give cgroup_skb bpf_get_current_task,
 * bpf_probe_read_kernel and bpf_skc_to_tcp_sock (CAP_PERFMON's part of
 * bpf_base_func_proto), and cgroup/sock_create every one. So podtap
 * reads pid, tgid and comm out of the task_struct itself (once per
 * socket), and needs only:
 *   skb_task:  cgroup_skb may call bpf_get_current_task,
 *              bpf_probe_read_kernel and bpf_skc_to_tcp_sock
 *   sock_task: cgroup/sock_create may call bpf_get_current_task and
 *              bpf_probe_read_kernel
 * Without them attribution is left to what the socket itself tells and
 * pid namespaces cannot be targets. Both are set by the loader before
 * load; they live with the other shared globals in maps.bpf.h.
 */

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
 * (5.9, "bpf: Add bpf_skc_to_tcp_sock() helper"); part of skb_task.
 */
static __always_inline bool in_owner_context(struct bpf_sock *sk)
{
	struct tcp_sock *tp;

	if (!skb_task)
		return false;
	tp = bpf_skc_to_tcp_sock(sk);
	return tp && tp->inet_conn.icsk_inet.sk.sk_lock.owned;
}

/*
 * The pid namespace a task lives in: the one of its pid at the deepest
 * level, task->thread_pid->numbers[level].ns (not nsproxy's
 * pid_ns_for_children, which unshare(CLONE_NEWPID) changes).
 */
static __always_inline __u32 task_pidns_inum(const struct task_struct *task)
{
	struct pid_namespace *ns;
	struct upid up = {};
	struct pid *pid;
	unsigned int level;

	pid = BPF_CORE_READ(task, thread_pid);
	level = BPF_CORE_READ(pid, level);
	if (bpf_core_read(&up, sizeof(up), &pid->numbers[level & 31]))
		return 0;
	ns = up.ns;
	return BPF_CORE_READ(ns, ns.inum);
}

/*
 * The current task's pid, tgid (as bpf_get_current_pid_tgid() gives them:
 * in the initial pid namespace), comm and pid namespace, read from its
 * task_struct: the one way that works in every program type podtap uses
 * on every kernel it was tested on (see skb_task). Callers check the flag
 * of their program type first.
 */
static __always_inline void current_task_ids(__u32 *pid, __u32 *tgid,
					     char *comm, __u32 comm_len,
					     __u32 *pidns)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	*pid = BPF_CORE_READ(task, pid);
	*tgid = BPF_CORE_READ(task, tgid);
	if (bpf_core_read(comm, comm_len, &task->comm))
		comm[0] = 0;
	if (pidns)
		*pidns = task_pidns_inum(task);
}

#endif /* __PODTAP_COMPAT_BPF_H */
