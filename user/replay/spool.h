/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Replay's spool: an unlinked file in $TMPDIR holding what is planned and
 * not yet sent (a request with its recorded response), what a first run
 * got back (--learn-noise), and every case's result, so that memory does
 * not grow with the capture; mock keeps its recorded answers in one too.
 * Records are written once, at the end, and read back whole by their
 * offset; 0 is no record.
 */
#ifndef __PODTAP_REPLAY_SPOOL_H
#define __PODTAP_REPLAY_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "replay/replay.h"

/* A record being built, or read back. */
struct pt_rbuf {
	uint8_t *p;
	size_t n, cap;
	size_t off;		/* reading: the next byte */
	bool bad;		/* reading: it ended early */
};

void pt_rbuf_u64(struct pt_rbuf *b, uint64_t v);
/* A string, or NULL. */
void pt_rbuf_str(struct pt_rbuf *b, const char *s);
void pt_rbuf_bytes(struct pt_rbuf *b, const void *p, size_t n);
uint64_t pt_rbuf_get_u64(struct pt_rbuf *b);
/* malloc'd, or NULL (as written, or when the record is bad). */
char *pt_rbuf_get_str(struct pt_rbuf *b);
/* malloc'd (n + 1 bytes, a NUL after), or NULL when n is 0. */
uint8_t *pt_rbuf_get_bytes(struct pt_rbuf *b, size_t *n);
void pt_rbuf_free(struct pt_rbuf *b);

/* What a case needs to be sent and judged: a request, and the
 * recorded response (status, fields, body). */
void pt_rbuf_msg(struct pt_rbuf *b, const struct pt_http_msg *m);
void pt_rbuf_get_msg(struct pt_rbuf *b, struct pt_http_msg *m, bool request);
/* A response that came back, and a case's result. */
void pt_rbuf_result(struct pt_rbuf *b, const struct pt_rresult *r);
void pt_rbuf_get_result(struct pt_rbuf *b, struct pt_rresult *r);
void pt_rbuf_case(struct pt_rbuf *b, const struct pt_rcase *c);
void pt_rbuf_get_case(struct pt_rbuf *b, struct pt_rcase *c);

/* Record headers: a request's links its connection's requests. */
struct pt_rhdr {
	uint64_t next;		/* the connection's next request */
	uint64_t r0;		/* --learn-noise: what its first run got */
	uint32_t len;		/* bytes after the header */
	uint32_t pad;
};

struct pt_rfile {
	int fd;
	uint64_t end;		/* where the next record goes */
	const char *dir;
};

/* Make it, for who (a command: "replay") to keep what in (for the
 * error); 0, or < 0 after one line. */
int pt_rfile_open(struct pt_rfile *f, const char *who, const char *what);
void pt_rfile_close(struct pt_rfile *f);
/* Reserve room for a record of len bytes (under the caller's lock). */
uint64_t pt_rfile_reserve(struct pt_rfile *f, size_t len);
/* Write the record (h may be NULL: no header) at off; 0, or an errno. */
int pt_rfile_put(struct pt_rfile *f, uint64_t off, const struct pt_rhdr *h,
		 const struct pt_rbuf *b);
/* Read the record at off back (with its header, if h); 0 or an errno. */
int pt_rfile_get(struct pt_rfile *f, uint64_t off, struct pt_rhdr *h,
		 struct pt_rbuf *b);
/* Bytes as they are, with no header: room for n, then written or read
 * back at off (0 or an errno). */
uint64_t pt_rfile_reserve_raw(struct pt_rfile *f, uint64_t n);
int pt_rfile_put_raw(struct pt_rfile *f, uint64_t off, const void *p,
		     uint64_t n);
int pt_rfile_get_raw(struct pt_rfile *f, uint64_t off, void *p, uint64_t n);
/* Set one link of a header: field is offsetof(struct pt_rhdr, next or
 * r0). 0 or an errno. */
int pt_rfile_set(struct pt_rfile *f, uint64_t off, size_t field, uint64_t v);

#endif
