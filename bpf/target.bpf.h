/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Who is captured: a socket's session from its cgroups or pid namespace,
 * the --port/--host filters, and the process a socket belongs to.
 */
#ifndef __PT_TARGET_BPF_H
#define __PT_TARGET_BPF_H

static __always_inline __u32 resolve_session(struct bpf_sock *sk,
					     struct pt_conn_state *st)
{
	__u32 *sess;
	int level;

	if (st->pidns) {
		sess = bpf_map_lookup_elem(&target_pidns, &st->pidns);
		if (sess)
			return *sess;
	}
	/* a socket made elsewhere, whose owner moved into a target */
	if (st->owner_cg) {
		sess = bpf_map_lookup_elem(&target_cgroups, &st->owner_cg);
		if (sess)
			return *sess;
	}
	for (level = 0; level < PT_MAX_CGROUP_LEVEL; level++) {
		__u64 id = bpf_sk_ancestor_cgroup_id(sk, level);

		if (!id)
			break;
		sess = bpf_map_lookup_elem(&target_cgroups, &id);
		if (sess)
			return *sess;
	}
	return 0;
}

/* A context field read as itself, never as an offset chosen at run time
 * (which the verifier refuses for ctx pointers). */
#define CTX_READ(dst, src)	do { dst = (src); asm volatile("" : "+r"(dst)); } while (0)

static __always_inline bool host_listed(struct pt_host_key *k, const __u32 *a,
					bool v4)
{
	int i;

	for (i = 0; i < 4; i++)
		((__u32 *)k->addr)[i] = v4 && i ? 0 : a[v4 ? 3 : i];
	return bpf_map_lookup_elem(&filter_hosts, k);
}

/*
 * --port/--host, once per connection when sockops sees it established
 * (the loader decides for sockets older than the recording): whole
 * connections or nothing. Not in the packet path, whose verification
 * this lookup would make too costly.
 */
static __always_inline bool ops_wanted(struct bpf_sock_ops *ops)
{
	struct pt_host_key k = {};
	__u32 lp, rp, fam, l[4], r[4];
	bool v4;

	CTX_READ(lp, ops->local_port);
	CTX_READ(rp, ops->remote_port);
	rp = bpf_ntohl(rp);
	if (filter_nports) {
		__u16 l16 = (__u16)lp, r16 = (__u16)rp;

		if (!bpf_map_lookup_elem(&filter_ports, &l16) &&
		    !bpf_map_lookup_elem(&filter_ports, &r16))
			return false;
	}
	if (!filter_nhosts)
		return true;
	CTX_READ(fam, ops->family);
	if (fam == AF_INET) {
		l[0] = l[1] = l[2] = r[0] = r[1] = r[2] = 0;
		CTX_READ(l[3], ops->local_ip4);
		CTX_READ(r[3], ops->remote_ip4);
		v4 = true;
	} else {
		CTX_READ(l[0], ops->local_ip6[0]);
		CTX_READ(l[1], ops->local_ip6[1]);
		CTX_READ(l[2], ops->local_ip6[2]);
		CTX_READ(l[3], ops->local_ip6[3]);
		CTX_READ(r[0], ops->remote_ip6[0]);
		CTX_READ(r[1], ops->remote_ip6[1]);
		CTX_READ(r[2], ops->remote_ip6[2]);
		CTX_READ(r[3], ops->remote_ip6[3]);
		/* an IPv6 socket carrying IPv4 shows IPv4 on the wire */
		v4 = !l[0] && !l[1] && l[2] == bpf_htonl(0xffff);
	}
	k.family = v4 ? AF_INET : AF_INET6;
	return host_listed(&k, l, v4) || host_listed(&k, r, v4);
}

/*
 * Learn the owning process where the kernel runs in its context: sends
 * from a syscall, not from a softirq (ACK clocking, timers, loopback).
 */
static __always_inline void refresh_attr(struct bpf_sock *sk,
					 struct pt_conn_state *st, __u64 conn_id)
{
	struct pt_attr *r;

	if (st->task_attr || !in_owner_context(sk))
		return;
	current_task_ids(&st->pid, &st->tgid, st->comm, sizeof(st->comm),
			 NULL);
	st->task_attr = 1;
	if (!st->opened)
		return;
	r = bpf_ringbuf_reserve(&podtap_events, sizeof(*r), 0);
	if (!r)
		return;
	fill_hdr(&r->h, PT_REC_ATTR, PT_F_TASK_ATTR, sizeof(*r), conn_id);
	r->pid = st->pid;
	r->tgid = st->tgid;
	__builtin_memcpy(r->comm, st->comm, PT_COMM_LEN);
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

/*
 * Learn a socket's pid namespace from the task that sends on it, for
 * sockets neither sock_create nor the loader marked (in practice: handed
 * over between processes). Only while a pid namespace is a target.
 */
static __always_inline bool learn_pidns(struct bpf_sock *sk,
					struct pt_conn_state *st, int dir)
{
	if (!pidns_targets || st->pidns_known || dir != PT_DIR_TX ||
	    !in_owner_context(sk))
		return false;
	st->pidns = task_pidns_inum((struct task_struct *)
				    bpf_get_current_task());
	st->pidns_known = 1;
	st->gen = 0;	/* resolve again */
	return true;
}

#endif /* __PT_TARGET_BPF_H */
