/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The maps and globals every podtap object shares: one ring buffer, one set
 * of target and filter maps, one socket storage. bpf/maps.bpf.c defines
 * them (PT_MAPS_OWNER); every other object declares them extern, and
 * `bpftool gen object` resolves them to the one definition when it links
 * the objects into build/podtap.bpf.o. Names fit the kernel's 15
 * characters, so bpftool shows and finds them whole.
 */
#ifndef __PT_MAPS_BPF_H
#define __PT_MAPS_BPF_H

#ifdef PT_MAPS_OWNER
#define PT_SHARED
#define PT_INIT(v)	= v
#else
#define PT_SHARED	extern
#define PT_INIT(v)
#endif

/* Bumped by userspace whenever the target maps change. */
/* What the kernel lets the programs do (compat.bpf.h), set before load. */
PT_SHARED const volatile bool skb_task PT_INIT(false);
PT_SHARED const volatile bool sock_task PT_INIT(false);

PT_SHARED volatile __u64 targets_gen PT_INIT(1);
/* Entries in target_pidns, kept by userspace. */
PT_SHARED volatile __u32 pidns_targets PT_INIT(0);
/* Entries in filter_ports and filter_hosts, set before load. */
PT_SHARED const volatile __u32 filter_nports PT_INIT(0);
PT_SHARED const volatile __u32 filter_nhosts PT_INIT(0);

PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);	/* resized by the loader */
} podtap_events SEC(".maps");

PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PT_MAX_TARGETS);
	__type(key, __u64);		/* cgroup v2 id */
	__type(value, __u32);		/* session id */
} target_cgroups SEC(".maps");

PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PT_MAX_TARGETS);
	__type(key, __u32);		/* pid namespace inode */
	__type(value, __u32);		/* session id */
} target_pidns SEC(".maps");

/* A connection is kept if either end's port (and address) is listed. */
PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PT_MAX_FILTERS);
	__type(key, __u16);		/* port, host byte order */
	__type(value, __u8);
} filter_ports SEC(".maps");

PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PT_MAX_FILTERS);
	__type(key, struct pt_host_key);
	__type(value, __u8);
} filter_hosts SEC(".maps");

PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pt_counters);
} podtap_counters SEC(".maps");

PT_SHARED struct {
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
PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct pt_conn_state);
} conn_state SEC(".maps");

/* TLS plaintext (tls.bpf.c): on unless the loader turns it off. */
PT_SHARED const volatile bool tls_on PT_INIT(true);

/*
 * The TLS call each thread is in, by pid_tgid. LRU: a thread that dies
 * inside a call (killed in a blocking SSL_read) leaves its entry behind.
 */
PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pt_tls_call);
} tls_calls SEC(".maps");

/* Sessions that want no TLS plaintext (tls: false), by session id. */
PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} tls_off SEC(".maps");

/* The Go crypto/tls call each goroutine is in. LRU as tls_calls. */
PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pt_go_key);
	__type(value, struct pt_tls_call);
} go_calls SEC(".maps");

/* Each (process, SSL* or *tls.Conn): its connection and plaintext offsets. */
PT_SHARED struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pt_tls_key);
	__type(value, struct pt_tls_state);
} tls_conns SEC(".maps");

#endif /* __PT_MAPS_BPF_H */
