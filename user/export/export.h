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
	/* read as a stream (pt_capture_stream) */
	uint64_t peak_held;	/* most bytes held at once */
	size_t cut_short;	/* exchanges cut at --max-held */
	size_t late_records;	/* data after its connection was done */
	size_t out_of_order;	/* exchanges whose records came too late */
	bool raw;		/* streamed as bytes, not exchanges */
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

/* For a reader that takes the records as they come: around each record
 * given to cap->conns, pre and post (non-zero from post stops reading);
 * failed says that it stopped (it has said why). */
struct pt_load_hooks {
	void *ctx;
	void (*pre)(void *ctx, const struct pt_rec_hdr *h);
	int (*post)(void *ctx, const struct pt_rec_hdr *h);
	bool (*failed)(void *ctx);
};
int pt_capture_load_hooked(struct pt_capture *cap, const char *const *paths,
			   int n, const struct pt_load_hooks *hooks);

/*
 * Read capture files as a stream (export/stream.c): every exchange is
 * handed to x in order by start, once nothing earlier can still come,
 * and conn is told of each connection once it is done (xc as it ended,
 * without exchanges). Memory holds what is in flight: connections'
 * bytes not yet in a settled exchange, and exchanges waiting for an
 * earlier one to settle; past pt_held_max, the exchange holding the rest
 * up is cut short and said so (what the last second of records brought
 * is held whatever the bound). cap keeps the connections without their
 * bytes, and what the files say besides (targets, TLS, counters).
 * Returns 0, or < 0 after one line (or the sink's error).
 */
struct pt_xsink {
	void *ctx;
	int (*x)(void *ctx, const struct pt_capture *cap,
		 const struct pt_xconn *xc, struct pt_exchange *x);
	void (*conn)(void *ctx, const struct pt_capture *cap,
		     const struct pt_xconn *xc);
	/*
	 * Or, with bytes set, the bytes themselves and no exchanges (x is
	 * not called): each connection's streams in pieces as they come,
	 * xc->a[d] holding its direction's bytes from xc->base[d] on (the
	 * sink may take a[d].buf, leaving NULL), once its role and protocol
	 * are decided; final: the last piece, the connection is done (FIN
	 * and close are known). *state is the sink's for the connection,
	 * NULL at first, kept between calls; at final the sink frees it.
	 * xc->assembled false: the connection went past --max-stream, and
	 * what follows of it is left out. flush (optional): no byte earlier
	 * than before can still come (UINT64_MAX at the end). held
	 * (optional): what the sink keeps, counted with the rest against
	 * pt_held_max.
	 */
	void *bctx;
	int (*bytes)(void *bctx, const struct pt_capture *cap,
		     struct pt_xconn *xc, void **state, bool final);
	int (*flush)(void *bctx, const struct pt_capture *cap, uint64_t before);
	uint64_t (*held)(void *bctx);
};
#define PT_HELD_MAX		(1ull << 30)
extern uint64_t pt_held_max;
/* A connection holding this many bytes is cut into what has settled
 * (lowered by tests). */
extern uint64_t pt_stream_step;
/* Records between looks at the connections (lowered by tests). */
extern size_t pt_stream_every;
int pt_capture_stream(struct pt_capture *cap, const char *const *paths,
		      int n, const struct pt_xsink *sink);
/* What a stream has to say at its end: exchanges cut short, records
 * that came too late, the most it held. */
void pt_stream_notes(const struct pt_capture *cap);
/* --max-held SIZE: sets pt_held_max. */
int pt_opt_max_held(const char *arg);
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
/* When an exchange began: its first byte's ts_ns. */
uint64_t pt_x_start(const struct pt_exchange *x);

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
 * value "[REDACTED]" in every HTTP message of x; a body that changes is
 * left uncoded (no Content-Encoding) with its Content-Length. Returns the
 * values replaced.
 */
size_t pt_redact_x(struct pt_exchange *x, char *const *names, size_t n);
/* Exchanges that still carry credentials (Authorization, Cookie, API key
 * fields), an exchange at a time; pt_creds_names puts their field names,
 * comma-separated, into names and returns how many exchanges. */
struct pt_creds {
	size_t n;		/* exchanges with credentials */
	uint32_t seen;		/* which fields, a bit each */
};
void pt_creds_add(struct pt_creds *c, const struct pt_exchange *x);
size_t pt_creds_names(const struct pt_creds *c, char *names, size_t len);

/* Which connections a format can represent (the rest are counted). */
enum pt_holds {
	PT_HOLDS_ALL,		/* every connection, any protocol */
	PT_HOLDS_OPENED,	/* every one with an OPEN: packets need addresses */
	PT_HOLDS_HTTP1,		/* HTTP/1 exchanges only */
	PT_HOLDS_KEPLOY,	/* inbound HTTP/1; outbound HTTP/1 and raw */
};

/*
 * An output format: one file (export/NAME.c) defining one of these, and
 * one entry in pt_exporters[] (export/exporters.c). Every format is
 * written as the capture is read, with memory bounded by what is in
 * flight, in one of three ways.
 */
struct pt_exporter {
	const char *name;	/* --format NAME */
	/*
	 * To a FILE, exchange by exchange: head once the first file's
	 * header is read, each exchange in order by start, tail after the
	 * last. Each returns 0 or < 0 (an errno).
	 */
	int (*head)(const struct pt_capture *, FILE *);
	int (*one)(const struct pt_capture *, FILE *, const struct pt_xconn *,
		   const struct pt_exchange *, struct pt_export_counts *);
	int (*tail)(const struct pt_capture *, FILE *,
		    struct pt_export_counts *);
	/*
	 * Or streamed as bytes: raw_begin sets the sink's bytes, flush, held
	 * and bctx to write to f; raw_end writes what is left (unless abort:
	 * the output is thrown away) and frees it all. 0 or < 0 (an errno).
	 */
	void (*raw_begin)(struct pt_xsink *, FILE *, struct pt_export_counts *);
	int (*raw_end)(struct pt_xsink *, const struct pt_capture *, bool abort);
	/*
	 * Or a directory, exchange by exchange: dir_open makes a writer
	 * under a path, dir_one takes each exchange in order by start,
	 * dir_close puts what was written in place (or, abort, throws it
	 * away) and frees the writer. 0, or < 0 (an errno) after one line
	 * (dir_one's is said by dir_close).
	 */
	int (*dir_open)(const char *path, void **w);
	int (*dir_one)(void *w, const struct pt_capture *,
		       const struct pt_xconn *, const struct pt_exchange *,
		       struct pt_export_counts *);
	int (*dir_close)(void *w, struct pt_export_counts *, bool abort);
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
