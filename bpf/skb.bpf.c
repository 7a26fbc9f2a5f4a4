// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The data plane: TCP payload read where it crosses the cgroup boundary.
 * cgroup_skb egress/ingress see every segment of the sockets of the
 * cgroups they are attached to (the targets' cgroups, or the root when a
 * pid namespace is targeted), and nothing else on the node. The TCP
 * sequence number of a segment gives the byte offset within its
 * direction's stream, so every application I/O path (read/write, *msg,
 * *mmsg, sendfile, splice) is captured by the same code, byte for byte.
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
	fill_data(r, PT_REC_DATA, flags, conn_id, stream_off, len, dir);
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
	st->tls = r->proto == PT_PROTO_TLS;
	r->pad = 0;
	__builtin_memcpy(r->comm, st->comm, PT_COMM_LEN);
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	if ((c = counters())) {
		c->events++;
		c->conns++;
	}
	return 0;
}

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

/*
 * Does a TLS record start at off? Global, so that the packet path's
 * verification does not grow by the check.
 */
__noinline int pt_tls_record_at(struct __sk_buff *skb, __u32 off)
{
	__u8 b[2];

	if (!skb || bpf_skb_load_bytes(skb, off, b, sizeof(b)))
		return 0;
	return b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03;
}

/*
 * The socket of the TLS call this thread is in (tls.bpf.c): a thread in
 * SSL_write or a handshake that sends on a socket uses it. Joins a
 * pseudo-connection's plaintext to it (TLS_ASSOC). Global: verified once.
 */
__noinline int pt_tls_learn(__u64 conn_id)
{
	struct task_struct *task;
	struct pt_tls_call *c;
	__u64 id;

	if (!skb_task)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	id = (__u64)BPF_CORE_READ(task, tgid) << 32 | BPF_CORE_READ(task, pid);
	c = bpf_map_lookup_elem(&tls_calls, &id);
	if (!c)
		return 0;
	tls_join(id >> 32, c->ssl, conn_id);
	return 0;
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
	/*
	 * A thread in a TLS call that sends here uses this socket. TLS may
	 * start later than the connection (STARTTLS), or the first segment
	 * seen may be mid-record: a segment that starts a record in the
	 * first 64 KiB says so (later, plain connections pay nothing).
	 */
	if (tls_on && dir == PT_DIR_TX && p.len) {
		if (!st->tls && off < (64 << 10))
			st->tls = pt_tls_record_at(skb, p.data_off) > 0;
		if (st->tls && in_owner_context(sk))
			pt_tls_learn(conn_id);
	}
	if (st->loss_pending)
		st->loss_pending = flush_losses(conn_id, 2) != 0;

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
