// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor of full capture, for the benchmark only (bench/bench.py):
 * every TCP payload of the cgroup it is attached to, copied into a ring
 * buffer in the size classes podtap reserves, and nothing else: no
 * connection state, no socket lookups, no clipping of retransmits, no
 * attribution, no time stamps, no counters but one for what did not
 * fit. What podtap costs above this is podtap's own work; this much any
 * recorder of every byte pays.
 *
 * Two more floors, one per question the benchmark asks of them:
 * floor_pcpu_* copy the same way into a ring of the CPU they run on (is
 * one ring shared by all CPUs what a copy costs?), and floor_pass_* do
 * nothing at all (what a packet program passed over costs, at least).
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "bound.bpf.h"	/* podtap's, bpf/ */

#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD
#define IPPROTO_TCP	6
#define CHUNK_MAX	32768	/* podtap's PT_CHUNK_MAX */
#define MAX_CHUNKS	16	/* and PT_MAX_CHUNKS */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20);	/* podtap record's default ring */
} floor_ring SEC(".maps");

/* One ring per CPU, made and sized by the consumer (bench/floor.c). */
struct floor_cpu_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct floor_cpu_ring);
} floor_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} floor_lost SEC(".maps");

struct floor_rec {
	__u32 len;
	__u32 pad;
	__u8 payload[];
};

/* One chunk of 1..CHUNK_MAX bytes at off, in the smallest class it fits. */
static __always_inline int copy_to(void *ring, struct __sk_buff *skb,
				   __u32 off, __u32 len)
{
	struct floor_rec *r;
	__u32 zero = 0;
	__u64 *lost;

#define CLASS(N)							\
	if (len <= N) {							\
		r = bpf_ringbuf_reserve(ring, sizeof(*r) + N, 0);	\
		if (!r)							\
			goto lost;					\
		if (bpf_skb_load_bytes(skb, off, r->payload,		\
				       size_in(len, N))) {		\
			bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);	\
			goto lost;					\
		}							\
		r->len = len;						\
		r->pad = 0;						\
		bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);		\
		return 0;						\
	}
	CLASS(128)
	CLASS(512)
	CLASS(2048)
	CLASS(8192)
	CLASS(CHUNK_MAX)
#undef CLASS
lost:
	lost = bpf_map_lookup_elem(&floor_lost, &zero);
	if (lost)
		*lost += len;
	return 0;
}

__noinline int floor_copy(struct __sk_buff *skb, __u32 off, __u32 len)
{
	if (!skb)
		return 0;
	return copy_to(&floor_ring, skb, off, len);
}

__noinline int floor_copy_pcpu(struct __sk_buff *skb, __u32 off, __u32 len)
{
	__u32 cpu = bpf_get_smp_processor_id();
	void *ring;

	if (!skb)
		return 0;
	ring = bpf_map_lookup_elem(&floor_rings, &cpu);
	if (!ring)
		return 0;
	return copy_to(ring, skb, off, len);
}

static __always_inline int floor_skb(struct __sk_buff *skb, bool pcpu)
{
	__u32 hl, off, len, done = 0;
	__u8 b;
	int i;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) ||
		    ip.protocol != IPPROTO_TCP)
			return 1;
		hl = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) ||
		    ip6.nexthdr != IPPROTO_TCP)
			return 1;
		hl = sizeof(ip6);
	} else {
		return 1;
	}
	/* the TCP header's length: the high nibble of byte 12 */
	if (bpf_skb_load_bytes(skb, hl + 12, &b, 1))
		return 1;
	/* to the skb's end, as podtap: a GSO packet's IP length says less */
	off = hl + (b >> 4) * 4;
	if (off >= skb->len)
		return 1;
	len = skb->len - off;
	for (i = 0; i < MAX_CHUNKS && done < len; i++) {
		__u32 n = len - done > CHUNK_MAX ? CHUNK_MAX : len - done;

		if (pcpu)
			floor_copy_pcpu(skb, off + done, n);
		else
			floor_copy(skb, off + done, n);
		done += n;
	}
	return 1;
}

SEC("cgroup_skb/ingress")
int floor_ingress(struct __sk_buff *skb)
{
	return floor_skb(skb, false);
}

SEC("cgroup_skb/egress")
int floor_egress(struct __sk_buff *skb)
{
	return floor_skb(skb, false);
}

SEC("cgroup_skb/ingress")
int floor_pcpu_ingress(struct __sk_buff *skb)
{
	return floor_skb(skb, true);
}

SEC("cgroup_skb/egress")
int floor_pcpu_egress(struct __sk_buff *skb)
{
	return floor_skb(skb, true);
}

SEC("cgroup_skb/ingress")
int floor_pass_ingress(struct __sk_buff *skb)
{
	return 1;
}

SEC("cgroup_skb/egress")
int floor_pass_egress(struct __sk_buff *skb)
{
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
