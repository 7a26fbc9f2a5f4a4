/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The capture file, and the framing the collector protocol shares with it:
 * a 64-byte header, then append-only blocks. docs/capture-format.md.
 */
#ifndef __PODTAP_CAPFILE_H
#define __PODTAP_CAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "podtap.h"

#define PT_FILE_MAGIC		"PODTAPC"	/* 8 bytes with the NUL */
#define PT_FILE_VERSION		1
#define PT_BLOCK_MAGIC		0x4b425450u	/* "PTBK" little-endian */
#define PT_BLOCK_MAX_RAW	(16u << 20)	/* records per block, bytes */
/* Largest stream offset a record may name (2^48: 256 TiB). */
#define PT_STREAM_MAX		(1ull << 48)

enum pt_block_type {
	PT_BLOCK_RECORDS	= 1,	/* records, back to back */
	PT_BLOCK_END		= 2,	/* clean end: struct pt_block_end */
};

enum pt_block_encoding {
	PT_ENC_NONE		= 0,
	PT_ENC_ZLIB		= 1,	/* zlib stream (RFC 1950): read, no longer written */
	PT_ENC_ZSTD		= 2,	/* one zstd frame (RFC 8878), level 1 */
};

struct pt_file_hdr {
	char     magic[8];	/* "PODTAPC\0" */
	uint16_t version;	/* PT_FILE_VERSION */
	uint16_t hdr_size;	/* sizeof(struct pt_file_hdr) */
	uint32_t flags;		/* none defined: readers ignore unknown bits */
	uint64_t start_real_ns;	/* CLOCK_REALTIME when recording began */
	uint64_t mono_to_real_ns; /* add to a record's ts_ns for wall time */
	char     host[32];	/* node name, NUL-padded */
};

struct pt_block_hdr {
	uint32_t magic;		/* PT_BLOCK_MAGIC */
	uint16_t type;		/* enum pt_block_type */
	uint16_t encoding;	/* enum pt_block_encoding */
	uint32_t raw_len;	/* bytes of records once decoded */
	uint32_t stored_len;	/* bytes that follow this header */
	uint32_t nrec;		/* records in the block */
	uint32_t crc;		/* CRC-32 of the 20 bytes above, then payload */
};

struct pt_block_end {
	uint64_t records;	/* records in the whole file */
	uint64_t blocks;	/* record blocks in the whole file */
};

/* Writer. */
struct pt_capw;
/* A new file at path, mode 0600 (truncated if it is there). */
int pt_capw_open(struct pt_capw **out, const char *path, const char *host);
/* Into f, which stays the caller's: close and abort flush it only. */
int pt_capw_open_file(struct pt_capw **out, FILE *f, const char *host);
/* Append one record (copied; a DATA record's padding is zeroed). */
int pt_capw_add(struct pt_capw *w, const struct pt_rec_hdr *rec, size_t size);
/* Write buffered records as one block, so readers see them. */
int pt_capw_flush(struct pt_capw *w);
/* Bytes written to the file, and records waiting to be (raw). */
uint64_t pt_capw_size(const struct pt_capw *w);
/* Flush, write the END block, close (the file, if pt_capw_open opened it). */
int pt_capw_close(struct pt_capw *w);
/* Close without the END block (the file reads as unfinished). */
void pt_capw_abort(struct pt_capw *w);

/* Reader. */
struct pt_capr_info {
	struct pt_file_hdr hdr;
	uint64_t records;
	uint64_t blocks;
	bool clean_end;		/* END block seen */
	uint64_t end_offset;	/* file offset after the last good block */
	char error[256];	/* set when the file is damaged */
};

typedef int (*pt_capr_fn)(void *ctx, const struct pt_rec_hdr *rec);

/*
 * Read a whole capture from a stream, calling fn for every record of every
 * complete block. Returns 0 for an intact file (with or without END), or
 * -EBADMSG with info->error naming the byte offset of the damage; the
 * records before it were delivered. A non-zero return from fn stops it.
 */
int pt_capr_read(FILE *f, pt_capr_fn fn, void *ctx, struct pt_capr_info *info);
/* The same over a buffer in memory (fuzzing, tests). */
int pt_capr_read_mem(const void *buf, size_t len, pt_capr_fn fn, void *ctx,
		     struct pt_capr_info *info);
/* Smallest valid size for each record type, 0 for unknown types. */
size_t pt_rec_min_size(uint16_t type);

#endif
