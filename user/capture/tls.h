/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The targets' TLS libraries, hooked for plaintext (capture/tls.c). */
#ifndef __PODTAP_TLS_H
#define __PODTAP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pt_loader;
struct pt_tls;

struct pt_rec_hdr;
struct pt_tls_proc_rec;

struct pt_tls_stats {
	/* as of the last scan, each (process, library) once */
	uint64_t procs;		/* target processes with a TLS library */
	uint64_t hooked_procs;	/* of which plaintext is captured */
	uint64_t libs, libs_hooked;	/* library files found, hooked */
	uint64_t probes;	/* uprobes attached */
	uint64_t stepped;	/* of which on instructions the kernel
				 * single-steps rather than emulates */
	bool session;		/* libraries hooked with session uprobes */
	bool per_process;	/* --tls-probes process */
};

/* Nothing (*out NULL) when the loader has no TLS programs. */
int pt_tls_open(struct pt_tls **out, struct pt_loader *l);
/*
 * Look at the targets' processes not seen before: hook each TLS library
 * file not hooked yet, and say per process what it uses (unless quiet).
 */
void pt_tls_scan(struct pt_tls *t, struct pt_loader *l, bool quiet);
void pt_tls_stats(const struct pt_tls *t, struct pt_tls_stats *s);
/*
 * Where each process's PT_REC_TLS_PROC goes, when the scan first finds
 * it (the recording's sink); set before the first scan.
 */
typedef int (*pt_tls_emit_fn)(void *ctx, const struct pt_rec_hdr *h,
			      size_t size);
void pt_tls_set_emit(struct pt_tls *t, pt_tls_emit_fn fn, void *ctx);
/* Entry i of the processes the last scan found (NULL past the end); the
 * scan's thread only, valid until its next scan. */
const struct pt_tls_proc_rec *pt_tls_proc(const struct pt_tls *t, size_t i);
/* Unhook: no plaintext records after this. */
void pt_tls_detach(struct pt_tls *t);
void pt_tls_close(struct pt_tls *t);

#endif
