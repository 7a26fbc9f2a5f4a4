/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * HTTP/1.0 and 1.1 message framing (RFC 9112) over bytes in memory: one
 * message at a time, from a request or status line to the end of its body.
 */
#ifndef __PODTAP_HTTP1_H
#define __PODTAP_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Start line and fields together; more is malformed. */
#define PT_HTTP_HEAD_MAX	(64 * 1024)
#define PT_HTTP_FIELDS_MAX	256
/* One chunk-size line with its extensions. */
#define PT_HTTP_CHUNK_LINE_MAX	4096
/* Largest body a Content-Encoding is decoded to. */
#define PT_HTTP_DECODED_MAX	(64u << 20)

struct pt_http_field {
	char *name;		/* as sent */
	char *value;		/* OWS trimmed, obs-fold replaced by one SP */
};

enum pt_http_framing {
	PT_FRAME_NONE,		/* no body by rule, or length 0 */
	PT_FRAME_LENGTH,	/* Content-Length */
	PT_FRAME_CHUNKED,	/* Transfer-Encoding: chunked */
	PT_FRAME_CLOSE,		/* until the connection closes */
	PT_FRAME_TUNNEL,	/* 101 / CONNECT 2xx: the rest is not HTTP */
};

struct pt_http_msg {
	bool request;
	char *method;		/* request */
	char *target;		/* request */
	int status;		/* response */
	char *reason;		/* response, may be "" */
	uint8_t major, minor;
	struct pt_http_field *fields;
	size_t nfields;
	struct pt_http_field *trailers;	/* after a chunked body */
	size_t ntrailers;
	enum pt_http_framing framing;
	uint64_t content_length;	/* PT_FRAME_LENGTH */
	size_t head_len;	/* start line, fields and the empty line */
	size_t len;		/* bytes of the message consumed */
	const uint8_t *body;	/* de-chunked, still content-encoded */
	size_t body_len;
	uint8_t *body_alloc;	/* what to free, if body was copied */
	bool complete;		/* head and body all there */
	/* set when servers may frame it differently (smuggling-shaped):
	 * why, a static string; NULL otherwise */
	const char *ambiguous;
};

/*
 * Parse the message that starts at p; n bytes are available and eof says
 * the stream ends there (a close-delimited body is then complete). For a
 * response, req_method is the request's method ("HEAD" and "CONNECT" change
 * the framing), NULL if not known.
 *
 * Returns 0 with *m filled: m->complete, or not when the bytes ran out
 * first (then m->len == n and a head that did not end has no fields;
 * method, target and reason are then "" if the start line was cut).
 * Returns -1 for malformed or oversized input with err saying what and
 * where; *m is then empty.
 */
int pt_http_parse(const uint8_t *p, size_t n, bool request,
		  const char *req_method, bool eof, struct pt_http_msg *m,
		  char *err, size_t errlen);
void pt_http_msg_free(struct pt_http_msg *m);

/* First field with this name (case-insensitive), or NULL. */
const char *pt_http_field(const struct pt_http_msg *m, const char *name);
/* Is token one of the comma-separated elements of a field's values? */
bool pt_http_has_token(const struct pt_http_msg *m, const char *name,
		       const char *token);

/*
 * Undo Content-Encoding gzip / x-gzip / deflate. Returns 1 with a malloc'd
 * *out, 0 when there is nothing to decode (identity or no encoding), -1
 * when it fails or would exceed PT_HTTP_DECODED_MAX (err says which).
 */
int pt_http_decode_body(const struct pt_http_msg *m, uint8_t **out,
			size_t *outlen, char *err, size_t errlen);

/* Does p look like the first bytes of a request or status line? */
bool pt_http_looks_like_start(const uint8_t *p, size_t n, bool request);

#endif
