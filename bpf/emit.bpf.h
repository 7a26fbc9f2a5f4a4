/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Record emission: headers, LOSS ranges kept per connection until the
 * ring has room, CLOSE, and the per-CPU counters.
 */
#ifndef __PT_EMIT_BPF_H
#define __PT_EMIT_BPF_H

#include "bound.bpf.h"

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

/* The fixed part of a DATA or TLS_DATA record of len payload bytes. */
static __always_inline void fill_data(struct pt_data *r, __u16 type,
				      __u16 flags, __u64 conn_id, __u64 off,
				      __u32 len, __u32 dir)
{
	fill_hdr(&r->h, type, flags, sizeof(*r) + ((len + 7) & ~7U), conn_id);
	r->offset = off;
	r->len = len;
	r->cap_len = len;
	r->dir = dir;
	__builtin_memset(r->pad, 0, sizeof(r->pad));
	r->session = 0;
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
/*
 * ndirs 2: the wire's directions, as the packet path flushes them (more
 * would make its verification too costly); 4: the TLS plaintext's too,
 * when a connection closes.
 */
static __always_inline int flush_losses(__u64 conn_id, int ndirs)
{
	struct pt_loss_key key = { .conn_id = conn_id };
	struct pt_loss_val *v;
	int dir, left = 0;

	for (dir = 0; dir < ndirs; dir++) {
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

static __always_inline void count(__u32 field_off)
{
	struct pt_counters *c = counters();

	if (c)
		(*(__u64 *)((char *)c + field_off))++;
}
#define COUNT(field) count(__builtin_offsetof(struct pt_counters, field))

/*
 * The TLS object (an SSL*, a *tls.Conn) of process tgid speaks over the
 * socket conn_id: its plaintext goes to that connection from now on, and
 * a pseudo-connection it had is joined to it (TLS_ASSOC).
 */
static __always_inline void tls_join(__u32 tgid, __u64 ssl, __u64 conn_id)
{
	struct pt_tls_key key = { .tgid = tgid, .ssl = ssl };
	struct pt_tls_state *st, init = {};
	struct pt_tls_assoc *r;

	st = bpf_map_lookup_elem(&tls_conns, &key);
	if (!st) {
		init.conn_id = conn_id;
		bpf_map_update_elem(&tls_conns, &key, &init, BPF_NOEXIST);
		return;
	}
	if (st->conn_id == conn_id)
		return;
	if (st->conn_id & PT_PSEUDO_CONN) {
		r = bpf_ringbuf_reserve(&podtap_events, sizeof(*r), 0);
		if (!r)
			return;	/* the next call says it again */
		fill_hdr(&r->h, PT_REC_TLS_ASSOC, 0, sizeof(*r), conn_id);
		r->pseudo_id = st->conn_id;
		r->tgid = tgid;
		r->pad = 0;
		r->ssl = ssl;
		bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	} else {
		/* the object speaks over another socket now: a new stream */
		st->off[0] = st->off[1] = 0;
	}
	st->conn_id = conn_id;
}

#endif /* __PT_EMIT_BPF_H */
