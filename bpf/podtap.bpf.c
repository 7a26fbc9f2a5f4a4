// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * podtap capture programs.
 *
 * The data plane reads TCP payload where it crosses the cgroup boundary:
 * cgroup_skb egress/ingress see every segment of the sockets of the cgroups
 * they are attached to (the targets' cgroups, or the root when a pid
 * namespace is targeted), and nothing else on the node. The TCP sequence
 * number of a segment gives the byte offset within its direction's stream,
 * so every application I/O path (read/write, *msg, *mmsg, sendfile, splice)
 * is captured by the same code, byte for byte.
 *
 * sockops learns where each stream starts (the first byte after the SYN)
 * and when the connection ends; cgroup/sock_create remembers who created a
 * socket and in which pid namespace.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "podtap.h"
#include "compat.bpf.h"

#define AF_INET		2
#define AF_INET6	10
#define IPPROTO_HOPOPTS	0
#define IPPROTO_TCP	6
#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD

#define TCP_FLAG_FIN	0x01
#define TCP_FLAG_SYN	0x02
#define TCP_FLAG_RST	0x04

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Bumped by userspace whenever the target maps change. */
volatile __u64 targets_gen = 1;
/* Entries in target_namespace_pids, kept by userspace. */
volatile __u32 pidns_targets = 0;
/* Entries in filter_ports and filter_hosts, set before load. */
const volatile __u32 filter_nports = 0;
const volatile __u32 filter_nhosts = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);	/* resized by the loader */
} podtap_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PT_MAX_TARGETS);
	__type(key, __u64);		/* cgroup v2 id */
	__type(value, __u32);		/* session id */
} target_cgroup_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PT_MAX_TARGETS);
	__type(key, __u32);		/* pid namespace inode */
	__type(value, __u32);		/* session id */
} target_namespace_pids SEC(".maps");

/* A connection is kept if either end's port (and address) is listed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PT_MAX_FILTERS);
	__type(key, __u16);		/* port, host byte order */
	__type(value, __u8);
} filter_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PT_MAX_FILTERS);
	__type(key, struct pt_host_key);
	__type(value, __u8);
} filter_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pt_counters);
} podtap_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pt_loss_key);
	__type(value, struct pt_loss_val);
} conn_losses SEC(".maps");

/*
 * BPF_F_CLONE: an accepted socket starts with a copy of its listener's
 * state, so it inherits the creator and pid namespace of the listener.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct pt_conn_state);
} conn_state SEC(".maps");

static __always_inline struct pt_counters *counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&podtap_counters, &zero);
}

static __always_inline void fill_hdr(struct pt_rec_hdr *h, __u16 type,
				     __u16 flags, __u32 size, __u64 conn_id)
{
	h->type = type;
	h->flags = flags;
	h->size = size;
	h->ts_ns = bpf_ktime_get_ns();
	h->conn_id = conn_id;
}

/* Report a lost range; a small record often fits where data did not. */
static __always_inline int emit_loss(__u64 conn_id, __u32 dir,
				     struct pt_loss_val *v)
{
	struct pt_loss *r;

	r = bpf_ringbuf_reserve(&podtap_events, sizeof(*r), 0);
	if (!r)
		return -1;
	fill_hdr(&r->h, PT_REC_LOSS, 0, sizeof(*r), conn_id);
	r->offset = v->start;
	r->len = v->end - v->start;
	r->lost_bytes = v->bytes;
	r->dir = dir;
	r->reason = v->reason;
	__builtin_memset(r->pad, 0, sizeof(r->pad));
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

/*
 * Lost bytes of a connection and direction collect in conn_losses as one
 * range while they are contiguous. A loss that is not contiguous with it
 * first sends the range on as a LOSS record; only when even that does not
 * fit are the two merged (then lost_bytes < len tells that the range holds
 * captured bytes too). Userspace drains what is left.
 */
static __always_inline void note_loss(__u64 conn_id, __u32 dir, __u64 off,
				      __u64 len, __u32 reason)
{
	struct pt_loss_key key = { .conn_id = conn_id, .dir = dir };
	struct pt_counters *c = counters();
	struct pt_loss_val *v, init = {};

	if (c && reason < PT_LOSS_MAX) {
		c->lost_events++;
		c->lost_bytes[reason] += len;
	}
	v = bpf_map_lookup_elem(&conn_losses, &key);
	if (!v) {
		init.start = off;
		init.end = off + len;
		init.bytes = len;
		init.reason = reason;
		if (!bpf_map_update_elem(&conn_losses, &key, &init, BPF_NOEXIST))
			return;
		/* another CPU inserted it first, or the map is full */
		v = bpf_map_lookup_elem(&conn_losses, &key);
		if (!v) {
			if (c)
				c->loss_untracked++;
			return;
		}
	}
	if (v->end != off && !emit_loss(conn_id, dir, v)) {
		v->start = off;
		v->end = off + len;
		v->bytes = len;
		v->reason = reason;
		return;
	}
	if (off < v->start)
		v->start = off;
	if (off + len > v->end)
		v->end = off + len;
	v->bytes += len;
	v->reason = reason;
}

/* Send pending loss ranges of a connection on, once the ring has room. */
static __always_inline int flush_losses(__u64 conn_id)
{
	struct pt_loss_key key = { .conn_id = conn_id };
	struct pt_loss_val *v;
	int dir, left = 0;

	for (dir = 0; dir < 2; dir++) {
		key.dir = dir;
		v = bpf_map_lookup_elem(&conn_losses, &key);
		if (!v)
			continue;
		if (emit_loss(conn_id, dir, v)) {
			left++;
			continue;
		}
		bpf_map_delete_elem(&conn_losses, &key);
	}
	return left;
}

/*
 * len, known here to be 1..max, bounded again on the register that is
 * passed: the verifier of 6.1 does not carry a bound learned on one copy
 * of a value to another (a spilled one), and refuses a helper's size
 * argument that may be 0 or larger than the buffer.
 */
static __always_inline __u64 size_in(__u64 len, __u64 max)
{
	asm volatile("if %[len] <= %[max] goto +1\n\t"
		     "%[len] = %[max]\n\t"
		     "if %[len] > 0 goto +1\n\t"
		     "%[len] = 1"
		     : [len] "+r"(len)
		     : [max] "r"(max));
	return len;
}

/*
 * One DATA record of up to PT_CHUNK_MAX bytes, reserved in the smallest of
 * a few size classes so that small segments do not waste the ring. A global
 * function: the verifier checks it once, not once per call site.
 * len_dir: bits 0-23 length, bit 24 direction, bit 25 FIN.
 */
__noinline int pt_emit_data(struct __sk_buff *skb, __u64 conn_id,
			    __u64 stream_off, __u32 skb_off, __u32 len_dir)
{
	__u32 len = len_dir & 0xffffff;
	__u32 dir = (len_dir >> 24) & 1;
	__u16 flags = (len_dir & (1 << 25)) ? PT_F_FIN : 0;
	struct pt_counters *c;
	struct pt_data *r;

	if (!skb)
		return -1;

#define EMIT_CLASS(N)							\
	if (len <= N) {							\
		r = bpf_ringbuf_reserve(&podtap_events,			\
					sizeof(*r) + N, 0);		\
		if (!r)							\
			goto lost;					\
		if (len && bpf_skb_load_bytes(skb, skb_off, r->payload,	\
					      size_in(len, N))) {	\
			bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);	\
			note_loss(conn_id, dir, stream_off, len,	\
				  PT_LOSS_LOAD);			\
			return -1;					\
		}							\
		goto fill;						\
	}

	EMIT_CLASS(0)
	EMIT_CLASS(128)
	EMIT_CLASS(512)
	EMIT_CLASS(2048)
	EMIT_CLASS(8192)
	EMIT_CLASS(PT_CHUNK_MAX)
#undef EMIT_CLASS
	return -1;

fill:
	fill_hdr(&r->h, PT_REC_DATA, flags,
		 sizeof(*r) + ((len + 7) & ~7U), conn_id);
	r->offset = stream_off;
	r->len = len;
	r->cap_len = len;
	r->dir = dir;
	__builtin_memset(r->pad, 0, sizeof(r->pad));
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	c = counters();
	if (c) {
		c->events++;
		c->bytes += len;
	}
	return 0;
lost:
	if (len)
		note_loss(conn_id, dir, stream_off, len, PT_LOSS_RINGBUF_FULL);
	else if ((c = counters()))
		c->lost_events++;
	return -1;
}

/* Stream offset of sequence number seq, extended to 64 bits around next. */
static __always_inline __u64 stream_off(struct pt_dir_state *d, __u32 seq)
{
	__u32 at_next = d->base + (__u32)d->next;

	return d->next + (__s64)(__s32)(seq - at_next);
}

static __always_inline __u32 resolve_session(struct bpf_sock *sk,
					     struct pt_conn_state *st)
{
	__u32 *sess;
	int level;

	if (st->pidns) {
		sess = bpf_map_lookup_elem(&target_namespace_pids, &st->pidns);
		if (sess)
			return *sess;
	}
	/* a socket made elsewhere, whose owner moved into a target */
	if (st->owner_cg) {
		sess = bpf_map_lookup_elem(&target_cgroup_ids, &st->owner_cg);
		if (sess)
			return *sess;
	}
	for (level = 0; level < PT_MAX_CGROUP_LEVEL; level++) {
		__u64 id = bpf_sk_ancestor_cgroup_id(sk, level);

		if (!id)
			break;
		sess = bpf_map_lookup_elem(&target_cgroup_ids, &id);
		if (sess)
			return *sess;
	}
	return 0;
}

struct pkt {
	struct pt_tuple t;	/* local/remote as seen by the socket */
	__u32 seq;
	__u32 data_off;		/* payload offset within the skb */
	__u32 len;		/* payload length */
	__u8  flags;		/* TCP flags */
};

static __always_inline int parse_pkt(struct __sk_buff *skb, int dir,
				     struct pkt *p)
{
	struct tcphdr th;
	__u32 l3len;
	__u8 *la, *ra;

	la = dir == PT_DIR_TX ? p->t.laddr : p->t.raddr;
	ra = dir == PT_DIR_TX ? p->t.raddr : p->t.laddr;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) ||
		    ip.protocol != IPPROTO_TCP)
			return -1;
		l3len = ip.ihl * 4;
		__builtin_memcpy(la, &ip.saddr, 4);
		__builtin_memcpy(ra, &ip.daddr, 4);
		p->t.family = AF_INET;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		__u8 nexthdr, ext[2];

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return -1;
		l3len = sizeof(ip6);
		nexthdr = ip6.nexthdr;
		/*
		 * One hop-by-hop header is followed (IPv6 BIG TCP's jumbo
		 * option); other extension headers are counted as unparsed.
		 */
		if (nexthdr == IPPROTO_HOPOPTS) {
			if (bpf_skb_load_bytes(skb, l3len, ext, sizeof(ext)))
				return -1;
			nexthdr = ext[0];
			l3len += (ext[1] + 1) * 8;
		}
		if (nexthdr != IPPROTO_TCP)
			return -1;
		__builtin_memcpy(la, &ip6.saddr, 16);
		__builtin_memcpy(ra, &ip6.daddr, 16);
		p->t.family = AF_INET6;
	} else {
		return -1;
	}
	if (bpf_skb_load_bytes(skb, l3len, &th, sizeof(th)))
		return -1;
	p->data_off = l3len + th.doff * 4;
	if (p->data_off > skb->len)
		return -1;
	p->len = skb->len - p->data_off;
	p->seq = bpf_ntohl(th.seq);
	p->flags = ((__u8 *)&th)[13];
	if (dir == PT_DIR_TX) {
		p->t.lport = bpf_ntohs(th.source);
		p->t.rport = bpf_ntohs(th.dest);
	} else {
		p->t.lport = bpf_ntohs(th.dest);
		p->t.rport = bpf_ntohs(th.source);
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

static __always_inline __u8 guess_proto(struct __sk_buff *skb, struct pkt *p)
{
	char b[4] = {};

	if (p->len < 4 || bpf_skb_load_bytes(skb, p->data_off, b, 4))
		return PT_PROTO_UNKNOWN;
	if (b[0] == 0x16 && b[1] == 0x03)
		return PT_PROTO_TLS;
	if (b[0] == 'P' && b[1] == 'R' && b[2] == 'I' && b[3] == ' ')
		return PT_PROTO_HTTP2;
	if ((b[0] == 'G' && b[1] == 'E' && b[2] == 'T') ||
	    (b[0] == 'P' && (b[1] == 'O' || b[1] == 'U' || b[1] == 'A')) ||
	    (b[0] == 'H' && b[1] == 'E' && b[2] == 'A') ||
	    (b[0] == 'H' && b[1] == 'T' && b[2] == 'T' && b[3] == 'P') ||
	    (b[0] == 'D' && b[1] == 'E' && b[2] == 'L') ||
	    (b[0] == 'O' && b[1] == 'P' && b[2] == 'T'))
		return PT_PROTO_HTTP1;
	return PT_PROTO_UNKNOWN;
}

static __always_inline int emit_open(struct __sk_buff *skb, struct bpf_sock *sk,
				     struct pt_conn_state *st, struct pkt *p,
				     __u64 conn_id)
{
	struct pt_counters *c;
	struct pt_conn_open *r;
	__u16 flags = 0;

	r = bpf_ringbuf_reserve(&podtap_events, sizeof(*r), 0);
	if (!r) {
		if ((c = counters()))
			c->lost_events++;
		return -1;
	}
	if (st->preexisting)
		flags |= PT_F_PREEXISTING;
	if (st->task_attr)
		flags |= PT_F_TASK_ATTR;
	if (sk->family == AF_INET6 && p->t.family == AF_INET)
		flags |= PT_F_V4MAPPED;
	r->role = st->role;
	if (st->role == PT_ROLE_UNKNOWN) {
		/* Pre-existing: the side on the lower port is the server. */
		flags |= PT_F_ROLE_GUESSED;
		r->role = p->t.lport < p->t.rport ? PT_ROLE_SERVER :
						    PT_ROLE_CLIENT;
	}
	fill_hdr(&r->h, PT_REC_CONN_OPEN, flags, sizeof(*r), conn_id);
	r->t = p->t;
	r->cgroup_id = bpf_sk_cgroup_id(sk);
	r->pid = st->pid;
	r->tgid = st->tgid;
	r->session_id = st->session;
	r->proto = guess_proto(skb, p);
	r->pad = 0;
	__builtin_memcpy(r->comm, st->comm, PT_COMM_LEN);
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	if ((c = counters())) {
		c->events++;
		c->conns++;
	}
	return 0;
}

static __always_inline void emit_close(struct pt_conn_state *st, __u64 conn_id,
				       __u16 flags)
{
	struct pt_counters *c = counters();
	struct pt_conn_close *r;

	r = bpf_ringbuf_reserve(&podtap_events, sizeof(*r), 0);
	if (!r) {
		if (c)
			c->lost_events++;
		return;
	}
	fill_hdr(&r->h, PT_REC_CONN_CLOSE, flags, sizeof(*r), conn_id);
	r->bytes[PT_DIR_RX] = st->d[PT_DIR_RX].next;
	r->bytes[PT_DIR_TX] = st->d[PT_DIR_TX].next;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	st->closed = 1;
	if (c) {
		c->events++;
		c->closes++;
	}
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

static __always_inline void count(__u32 field_off)
{
	struct pt_counters *c = counters();

	if (c)
		(*(__u64 *)((char *)c + field_off))++;
}
#define COUNT(field) count(__builtin_offsetof(struct pt_counters, field))

/*
 * The bytes of the segment not to capture again: a retransmit of what the
 * peer acknowledged (tx), what TCP delivered in order already (rx), or what
 * precedes the start of the capture. Returns -1 for a segment TCP itself
 * will refuse (far outside the window).
 */
static __always_inline int clip(struct bpf_sock *sk, struct pt_dir_state *d,
				int dir, struct pkt *p, __u64 off, __u32 *skip)
{
	struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
	__u64 floor;

	*skip = 0;
	if (!tp)
		return 0;
	floor = stream_off(d, dir == PT_DIR_TX ? tp->snd_una : tp->rcv_nxt);
	if (dir == PT_DIR_RX) {
		/* 2^30: the largest window TCP can advertise */
		if ((__s64)(off - floor) > (1 << 30) ||
		    (__s64)(floor - off) > (1 << 30))
			return -1;
		/* RFC 5961: only a reset at exactly rcv_nxt ends the stream */
		if ((p->flags & TCP_FLAG_RST) && p->seq != tp->rcv_nxt)
			p->flags &= ~TCP_FLAG_RST;
	}
	if ((__s64)floor < 0)
		floor = 0;	/* before the capture began */
	if ((__s64)off < (__s64)floor)
		*skip = floor - off > p->len ? p->len : floor - off;
	return 0;
}

static __always_inline void emit_payload(struct __sk_buff *skb,
					 struct pt_conn_state *st, int dir,
					 struct pkt *p, __u64 off, __u32 skip,
					 __u64 conn_id)
{
	__u32 done = 0, n;
	int i;

	for (i = 0; i < PT_MAX_CHUNKS; i++) {
		__u32 left = p->len - skip - done;
		__u32 fin = 0;

		if (skip + done >= p->len)
			break;
		n = left > PT_CHUNK_MAX ? PT_CHUNK_MAX : left;
		if (n == left && (p->flags & TCP_FLAG_FIN))
			fin = 1 << 25;
		if (pt_emit_data(skb, conn_id, off + skip + done,
				 p->data_off + skip + done,
				 n | (dir << 24) | fin))
			st->loss_pending = 1;
		done += n;
	}
	if (skip + done < p->len) {
		note_loss(conn_id, dir, off + skip + done,
			  p->len - skip - done, PT_LOSS_TOO_BIG);
		st->loss_pending = 1;
	}
}

static __always_inline int handle_skb(struct __sk_buff *skb, int dir)
{
	struct bpf_sock *sk = skb->sk;
	struct pt_conn_state *st;
	struct bpf_tcp_sock *tp;
	struct pt_dir_state *d;
	struct pkt p = {};
	__u64 conn_id, off, gen = targets_gen;
	__u32 skip;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return 1;
	if (sk->state == BPF_TCP_LISTEN) {
		/*
		 * The ACK ending a handshake reaches the listener; payload on
		 * it (TCP Fast Open) belongs to a child not yet created.
		 */
		if (!parse_pkt(skb, dir, &p) && p.len)
			COUNT(listener_segments);
		return 1;
	}
	st = bpf_sk_storage_get(&conn_state, sk, 0, 0);
	if (st && st->gen == gen && !st->session && !st->opened &&
	    !learn_pidns(sk, st, dir))
		return 1;	/* known not to be a target */
	if (!st) {
		st = bpf_sk_storage_get(&conn_state, sk, 0,
					BPF_SK_STORAGE_GET_F_CREATE);
		if (!st) {
			COUNT(no_storage);
			return 1;
		}
		st->preexisting = 1;	/* no sockops or sock_create saw it */
		learn_pidns(sk, st, dir);
	}
	if (st->gen != gen) {
		st->session = resolve_session(sk, st);
		st->gen = gen;
	}
	if (!st->session && !st->opened) {
		COUNT(filtered);
		return 1;
	}
	if ((filter_nports || filter_nhosts) && st->fstate == 2) {
		COUNT(filtered);
		return 1;
	}
	if (parse_pkt(skb, dir, &p)) {
		COUNT(unparsed);
		return 1;
	}
	if (p.flags & TCP_FLAG_SYN)
		return 1;

	conn_id = bpf_get_socket_cookie(skb);
	d = &st->d[dir & 1];
	if (!d->based) {
		tp = bpf_tcp_sock(sk);
		if (!tp)
			return 1;
		d->base = dir == PT_DIR_TX ? tp->snd_nxt : tp->rcv_nxt;
		d->based = 1;
	}
	off = stream_off(d, p.seq);
	if (clip(sk, d, dir, &p, off, &skip)) {
		COUNT(out_of_window);
		return 1;
	}
	/* (after a FIN, a bare ACK's sequence number is one past the data) */
	if (p.len && off + p.len > d->next && (__s64)(off + p.len) > 0)
		d->next = off + p.len;
	/*
	 * Captured before but not a target now: offsets are kept going so
	 * that they stay right if it becomes one again.
	 */
	if (!st->session)
		return 1;

	if (dir == PT_DIR_TX)
		refresh_attr(sk, st, conn_id);
	if (!p.len && !(p.flags & (TCP_FLAG_FIN | TCP_FLAG_RST)))
		return 1;	/* a bare ACK */
	/* If OPEN does not fit, the data is noted lost; OPEN comes later. */
	if (!st->opened && !emit_open(skb, sk, st, &p, conn_id))
		st->opened = 1;
	if (st->loss_pending)
		st->loss_pending = flush_losses(conn_id) != 0;

	emit_payload(skb, st, dir, &p, off, skip, conn_id);

	if ((p.flags & TCP_FLAG_FIN) && !d->fin) {
		d->fin = 1;
		if (!p.len || skip == p.len)	/* FIN alone: mark the end */
			pt_emit_data(skb, conn_id, off + p.len, 0,
				     (dir << 24) | (1 << 25));
	}
	if (!st->closed && st->opened &&
	    ((p.flags & TCP_FLAG_RST) || (st->d[0].fin && st->d[1].fin)))
		emit_close(st, conn_id, (p.flags & TCP_FLAG_RST) ? PT_F_RST : 0);
	return 1;
}

SEC("cgroup_skb/ingress")
int podtap_ingress(struct __sk_buff *skb)
{
	return handle_skb(skb, PT_DIR_RX);
}

SEC("cgroup_skb/egress")
int podtap_egress(struct __sk_buff *skb)
{
	return handle_skb(skb, PT_DIR_TX);
}

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
			st->loss_pending = flush_losses(conn_id) != 0;
		if (st->opened && !st->closed)
			emit_close(st, conn_id, 0);
	}
	return 1;
}
