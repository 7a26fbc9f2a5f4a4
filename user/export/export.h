/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A capture file loaded for reading and export: connections, their
 * exchanges, and what every output format needs from them.
 */
#ifndef __PODTAP_EXPORT_H
#define __PODTAP_EXPORT_H

#include <stdbool.h>
#include <stdio.h>
#include "capfile/capfile.h"
#include "stream/conns.h"
#include "proto/exch.h"

struct pt_capture {
	const char *path;
	struct pt_capr_info info;
	struct pt_conns conns;
	struct pt_xconn *xc;	/* per conns.v[i], when loaded with exchanges */
	int read_err;		/* the file is damaged after info.end_offset */
	int files;		/* files read into it */
	bool stdin_used;	/* "-" was one of them */
};

/*
 * Read capture files as one capture, in the order given (the segments of
 * one session from one node: connections go on across them); with
 * exchanges, cut every connection into them. Returns 0, or < 0 (an errno)
 * after saying why in one line when nothing is readable. A file damaged part way loads
 * up to the damage, with read_err set.
 */
int pt_capture_load_many(struct pt_capture *cap, const char *const *paths,
			 int n, bool exchanges);
void pt_capture_free(struct pt_capture *cap);
/* --max-stream SIZE of read and export: lowers pt_assemble_max. */
int pt_opt_max_stream(const char *arg);
/* Print the one line about a damaged file, if it is. */
void pt_capture_warn(const struct pt_capture *cap);

/* ts_ns (CLOCK_MONOTONIC of the recording host) to wall-clock ns. */
uint64_t pt_wall_ns(const struct pt_capture *cap, uint64_t ts);
/* "1.2.3.4:80" or "[::1]:80": local or remote end of a tuple. */
void pt_fmt_ep(char *buf, size_t n, const struct pt_tuple *t, bool local);
const char *pt_role_name(uint8_t role);
const char *pt_loss_reason_name(uint8_t reason);

/* The request's URL: absolute, from the Host field or the server address. */
char *pt_x_url(const struct pt_xconn *xc, const struct pt_exchange *x);
/* A request target's parts: for absolute-form its authority (malloc'd,
 * if host is not NULL; else *host is NULL), the path (malloc'd, "/" when
 * there is none) and the query after '?' (within t, or NULL). */
void pt_target_split(const char *t, char **host, char **path,
		     const char **query);
/* Side names: the client's and server's bytes of a connection. */
static inline bool pt_x_from_client(const struct pt_xconn *xc, int dir)
{
	return dir == xc->req_dir;
}

/* A message body with its Content-Encoding undone when it can be. */
struct pt_body {
	const uint8_t *p;
	size_t n;
	uint8_t *alloc;
	bool decoded;		/* p is the decoded body */
	char err[128];		/* why it was not decoded, "" if no reason */
};
void pt_body_get(const struct pt_http_msg *m, struct pt_body *b);
void pt_body_free(struct pt_body *b);

/* A query parameter, percent-decoded ('+' as a space). */
struct pt_qparam {
	char *key, *val;
};
/* Split "a=1&b=%20x" into params (appended to *v); q may be NULL. */
void pt_query_parse(const char *q, struct pt_qparam **v, size_t *n);
void pt_query_free(struct pt_qparam *v, size_t n);

/* Does a value read as a time (RFC 3339, an HTTP date, a time of day, a
 * recent epoch in s, ms, us or ns) or hold a UUID? Such values differ
 * between two runs of the same build: Keploy's noise, replay's. */
bool pt_noisy_value(const char *s, size_t n);
/* The same without UUIDs (Keploy's noise: a UUID may be an id that a
 * test should check). */
bool pt_time_value(const char *s, size_t n);

/* One exchange as a JSON object (no newline); with_conn adds attribution. */
void pt_x_json(FILE *f, const struct pt_capture *cap,
	       const struct pt_xconn *xc, const struct pt_exchange *x,
	       bool with_conn);

/* Every exchange of the capture, by the time its first byte was seen. */
struct pt_xref {
	const struct pt_xconn *xc;
	const struct pt_exchange *x;
};
struct pt_xref *pt_x_sorted(const struct pt_capture *cap, size_t *n);

/* What an export wrote and what it left out of what it could hold. */
struct pt_export_counts {
	size_t items;		/* exchanges, entries, connections written */
	size_t tests, mocks;	/* keploy */
	size_t partial;		/* exchanges left out: incomplete */
	size_t ambiguous;	/* exchanges left out: framing ambiguous */
	size_t server_first;	/* keploy: connections whose server spoke
				 * first (Generic mocks cannot serve them) */
	size_t credentials;	/* exchanges written with credentials in
				 * them (Authorization, Cookie, tokens) */
	int set;		/* keploy: N of test-set-N */
};

/*
 * --redact: header fields, JSON body fields (any depth), form fields and
 * query parameters with one of these names (case-insensitive) get the
 * value "[REDACTED]" in every HTTP message of cap; a body that changes is
 * left uncoded (no Content-Encoding) with its Content-Length. Returns the
 * values replaced.
 */
size_t pt_redact(struct pt_capture *cap, char *const *names, size_t n);
/* Exchanges that still carry credentials (Authorization, Cookie, API key
 * fields), and their field names, comma-separated, into names. */
size_t pt_credentials(const struct pt_capture *cap, char *names, size_t len);

/* Which connections a format can represent (the rest are counted). */
enum pt_holds {
	PT_HOLDS_ALL,		/* every connection, any protocol */
	PT_HOLDS_OPENED,	/* every one with an OPEN: packets need addresses */
	PT_HOLDS_HTTP1,		/* HTTP/1 exchanges only */
	PT_HOLDS_KEPLOY,	/* inbound HTTP/1; outbound HTTP/1 and raw */
};

/*
 * An output format: one file (export/NAME.c) defining one of these, and
 * one entry in pt_exporters[] (export/exporters.c). A file format writes
 * to a FILE, a directory format under a path; either fills the counts and
 * returns 0 or < 0 (with one line said).
 */
struct pt_exporter {
	const char *name;	/* --format NAME */
	int (*to_file)(const struct pt_capture *, FILE *,
		       struct pt_export_counts *);
	int (*to_dir)(const struct pt_capture *, const char *,
		      struct pt_export_counts *);
	bool binary;		/* never to a terminal */
	enum pt_holds holds;
	const char *item, *items;	/* what it counts: one, many */
	const char *help;	/* for --help, lines after the first indented */
};

/* NULL-terminated, in the order --help lists them. */
extern const struct pt_exporter *const pt_exporters[];
extern const struct pt_exporter pt_exporter_keploy, pt_exporter_pcapng,
				pt_exporter_har, pt_exporter_jsonl;

#endif
