/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __PODTAP_LOADER_H
#define __PODTAP_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "podtap.h"

struct bpf_object;

struct pt_loader;

/* Called with each record as the BPF side wrote it. */
typedef int (*pt_record_fn)(void *ctx, const struct pt_rec_hdr *rec,
			    size_t size);

/*
 * A --host key for family and address (4 or 16 bytes): an IPv4-mapped
 * IPv6 address is IPv4, as it is on the wire.
 */
void pt_host_key_set(struct pt_host_key *k, int family, const void *addr);

struct pt_loader_opts {
	size_t ring_bytes;	/* ring buffer size, rounded up to 2^n pages */
	/* --port, --host: only the connections with an end listed (both
	 * filters, when both are given); at most PT_MAX_FILTERS each */
	const uint16_t *ports;
	size_t nports;
	const struct pt_host_key *hosts;
	size_t nhosts;
	bool no_tls;		/* --no-tls: no TLS plaintext programs */
	/* --tls-probes process: a library's uprobes for target processes
	 * only (session uprobes with a pid), not for every process mapping
	 * it; refused where the kernel has no session uprobes */
	bool tls_per_process;
	pt_record_fn on_record;
	void *ctx;
};

/* Open, probe the kernel, load. Prints one line and returns <0 on error. */
int pt_loader_open(struct pt_loader **out, const struct pt_loader_opts *o);
void pt_loader_close(struct pt_loader *l);

/*
 * Targets take effect at once, without reloading: the maps change and
 * the programs are attached to (or detached from) the cgroups needed.
 */
int pt_loader_add_cgroup(struct pt_loader *l, const char *abs, uint64_t id,
			 uint32_t session);
int pt_loader_add_pidns(struct pt_loader *l, uint32_t inum, uint32_t session);
int pt_loader_remove_cgroup(struct pt_loader *l, uint64_t id);
/* Whether a session's targets have their TLS plaintext captured (default). */
int pt_loader_session_tls(struct pt_loader *l, uint32_t session, bool on);
/* Does target i (as pt_loader_target numbers them) want TLS plaintext? */
bool pt_loader_target_tls(const struct pt_loader *l, size_t i);
/* Target i's session id. */
uint32_t pt_loader_target_session(const struct pt_loader *l, size_t i);
/* How many cgroups the programs are attached to now. */
size_t pt_loader_attach_count(const struct pt_loader *l);
bool pt_loader_task_helpers(const struct pt_loader *l);
/* The loaded BPF object, for listing its programs. */
const struct bpf_object *pt_loader_object(const struct pt_loader *l);
/* The TLS plaintext programs, when loaded (not --no-tls, kernel able). */
struct bpf_object *pt_loader_tls_object(struct pt_loader *l);
/* BPF_TRACE_UPROBE_MULTI (6.6) and _SESSION (6.13), from the kernel's
 * UAPI, which Debian 12's headers predate. */
#define PT_TRACE_UPROBE_MULTI	48
#define PT_TRACE_UPROBE_SESSION	57
/* Whether libraries are hooked with session uprobes (6.13+), one link
 * per library, rather than an entry and a return uprobe per function. */
bool pt_loader_tls_session(const struct pt_loader *l);
bool pt_loader_tls_per_process(const struct pt_loader *l);
/* The targets, i from 0 while it returns 0: kind, id, cgroup path. */
int pt_loader_target(const struct pt_loader *l, size_t i, int *kind,
		     uint64_t *id, const char **path);

/*
 * Hand the records waiting in the ring to on_record, at most a few
 * thousand per call; returns how many.
 */
int pt_loader_consume(struct pt_loader *l);
/* Detach every program: no new records after this. Maps stay readable. */
void pt_loader_detach(struct pt_loader *l);
/* Counters summed over CPUs. */
int pt_loader_counters(struct pt_loader *l, struct pt_counters *sum);
/*
 * Per-connection losses still held by the BPF side, as PT_REC_LOSS
 * records. Only after pt_loader_detach: the programs update entries in
 * place, so draining while they run could lose an update.
 */
int pt_loader_drain_losses(struct pt_loader *l);

/* Kernel run-time statistics of the programs, while stats are on. */
struct pt_prog_stat {
	char name[32];
	uint32_t id;
	uint64_t run_cnt;
	uint64_t run_time_ns;
};
/* Turn the kernel's BPF run-time statistics on until pt_loader_close. */
int pt_loader_enable_stats(struct pt_loader *l);
int pt_loader_prog_stats(struct pt_loader *l, struct pt_prog_stat *v, int max);
/* Bytes waiting in the ring buffer, and its size. Any thread. */
int pt_loader_ring_fill(struct pt_loader *l, uint64_t *used, uint64_t *size);
/*
 * Pin maps and programs under dir (dir/maps, dir/progs), which must not
 * exist. Unpinned by pt_loader_unpin or pt_loader_close.
 */
int pt_loader_pin(struct pt_loader *l, const char *dir);
void pt_loader_unpin(struct pt_loader *l);

#endif
