/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Connections rebuilt from records: each direction's stream reassembled by
 * byte offset, duplicates dropped, gaps kept as gaps.
 */
#ifndef __PODTAP_CONNS_H
#define __PODTAP_CONNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "podtap.h"

struct pt_chunk {
	uint64_t off;
	uint64_t ts;		/* the record's ts_ns */
	uint32_t len;
	uint8_t *data;
};

/* Where the bytes of an assembled stream arrived: from off on, at ts. */
struct pt_mark {
	uint64_t off;
	uint64_t ts;
};

struct pt_range {
	uint64_t start, end;
	uint8_t reason;		/* enum pt_loss_reason; 0: no record said why */
};

struct pt_stream {
	struct pt_chunk *chunks;
	size_t nchunks, cap;
	struct pt_range *losses;	/* from LOSS records */
	size_t nlosses;
	uint64_t seen_end;	/* highest captured offset + 1 */
	uint64_t fin_off;	/* offset of the FIN, if fin */
	bool fin;
	uint64_t captured;	/* bytes in chunks, duplicates included */
};

struct pt_conn {
	uint64_t id;
	bool has_open, has_close;
	struct pt_conn_open open;
	struct pt_conn_close close;
	uint16_t close_flags;
	uint64_t first_ts, last_ts;
	struct pt_stream s[2];	/* by enum pt_dir */
	/* TLS plaintext from the library calls, by enum pt_dir */
	struct pt_stream tls[2];
	bool has_tls;
	/* its process's TLS calls were hooked after it opened (a
	 * PT_TLS_PROC_HOOKED_NOW record of its tgid later than its open) */
	bool tls_hooked_late;
	void *owner;		/* for a reader that streams (export/stream.c) */
};

/* Plaintext whose socket was never learnt (a pseudo-connection)? */
static inline bool pt_conn_pseudo(const struct pt_conn *c)
{
	return c->id & PT_PSEUDO_CONN;
}

struct pt_conns {
	struct pt_conn **v;	/* in order of first record */
	size_t n, cap;
	struct pt_conn **tab;	/* open-addressing index by id */
	size_t tabsz;
	struct pt_target_rec *targets;
	size_t ntargets;
	struct pt_tls_proc_rec *tls_procs;	/* once per process and library */
	size_t ntls_procs;
	struct pt_counters stats;
	bool has_stats;
	/* pseudo-connections joined to their socket's: later records too */
	struct pt_alias {
		uint64_t from, to;
	} *alias;
	size_t nalias;
};

void pt_conns_init(struct pt_conns *c);
void pt_conns_free(struct pt_conns *c);
/* Take one record (any type). Returns 0, or <0 for a record it cannot use. */
int pt_conns_add(struct pt_conns *c, const struct pt_rec_hdr *h);
struct pt_conn *pt_conns_find(struct pt_conns *c, uint64_t id);
/* The connection a record of conn_id id goes to (a pseudo-connection
 * joined to its socket's goes there), NULL if none yet. */
struct pt_conn *pt_conns_of(struct pt_conns *c, uint64_t id);
/*
 * What the recording says of process tgid's TLS library as of time ts:
 * the latest said by then (a process that ran exec, or a pid used again,
 * says anew), a hooked one before one not hooked; else the first said
 * after. NULL if it says nothing.
 */
const struct pt_tls_proc_rec *pt_conns_tls_proc(const struct pt_conns *c,
					       uint32_t tgid, uint64_t ts);

/*
 * One direction's stream from offset 0 to its end (the larger of what was
 * captured, what a FIN, CLOSE or LOSS record says): bytes in *buf, missing
 * ranges as gaps (zero-filled in buf). Caller frees *buf and *gaps.
 */
/* Longest stream pt_stream_assemble builds in memory (-EFBIG beyond);
 * pt_assemble_max starts there and --max-stream lowers it. */
#define PT_ASSEMBLE_MAX		(16ull << 30)
extern uint64_t pt_assemble_max;

struct pt_assembled {
	uint8_t *buf;
	uint64_t len;
	struct pt_range *gaps;
	size_t ngaps;
	struct pt_mark *marks;	/* by offset, one per chunk that added bytes */
	size_t nmarks;
	uint64_t dup_bytes;	/* captured twice */
	uint64_t conflicts;	/* captured twice with different bytes */
};
int pt_stream_assemble(const struct pt_conn *conn, int dir,
		       struct pt_assembled *out);
/* The same of the TLS plaintext layer (tls) or of the bytes on the wire. */
int pt_stream_assemble_layer(const struct pt_conn *conn, int dir, bool tls,
			     struct pt_assembled *out);
/*
 * The same from offset from on, offsets in out counted from there. Live
 * (more records may come): only as far as the bytes go on without a hole
 * that no LOSS record named, with no gap at the end; a hole with bytes
 * stamped before lost_before beyond it is a gap all the same (its bytes
 * would come too late: when the ring was full, the LOSS record may have
 * been lost too).
 */
int pt_stream_assemble_from(const struct pt_conn *conn, int dir, bool tls,
			    uint64_t from, bool live, uint64_t lost_before,
			    struct pt_assembled *out);
/* Free a stream's captured bytes that all lie before off (a chunk that
 * reaches past it stays whole), and the losses before it: bytes freed. */
uint64_t pt_stream_drop_before(struct pt_stream *s, uint64_t off);
void pt_assembled_free(struct pt_assembled *a);
/* What a's bytes take in memory: its gaps are zero pages of a calloc
 * never written (a LOSS of a GiB costs nothing), so not counted. */
static inline uint64_t pt_assembled_held(const struct pt_assembled *a)
{
	uint64_t n = a->len;
	size_t i;

	for (i = 0; i < a->ngaps; i++) {
		uint64_t g = a->gaps[i].end - a->gaps[i].start;

		n = g < n ? n - g : 0;
	}
	return n;
}
/* When the byte at off arrived (ts_ns), 0 if it was not captured. */
uint64_t pt_assembled_ts(const struct pt_assembled *a, uint64_t off);
/* Free the captured bytes kept for assembly (once a stream is assembled). */
void pt_conn_drop_chunks(struct pt_conn *conn);
/* The stream's end as the records tell it. */
uint64_t pt_stream_end(const struct pt_conn *conn, int dir);

#endif
