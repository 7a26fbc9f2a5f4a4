// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * HTTP/1.x framing from the rules of RFC 9112 (section numbers in the
 * comments), Content-Encoding, and exchanges cut from connections built
 * out of DATA records.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "base/common.h"
#include "stream/conns.h"
#include "proto/exch.h"
#include "proto/http1.h"
#include "base/jsonw.h"
#include "proto/proto.h"
#include "feed_by_time.h"
#include "test_progs.h"

static char err[256];

static int parse(const char *s, bool request, const char *method, bool eof,
		 struct pt_http_msg *m)
{
	return pt_http_parse((const uint8_t *)s, strlen(s), request, method,
			     eof, m, err, sizeof(err));
}

static bool body_is(const struct pt_http_msg *m, const char *want)
{
	return m->body_len == strlen(want) &&
	       !memcmp(m->body, want, m->body_len);
}

void test_http_start_lines(void)
{
	struct pt_http_msg m;

	/* 3: request-line; 2.2: empty lines before it are ignored */
	ASSERT_OK(parse("\r\n\r\nGET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n", true,
			NULL, false, &m), "leading CRLFs");
	ASSERT_TRUE(m.complete && !strcmp(m.method, "GET") &&
		    !strcmp(m.target, "/a?b=c") && m.minor == 1, "request line");
	ASSERT_EQ(m.framing, PT_FRAME_NONE, "no body on a GET without length");
	pt_http_msg_free(&m);
	/* 2.2: a bare LF ends a line too */
	ASSERT_OK(parse("GET / HTTP/1.0\nHost: x\n\n", true, NULL, false, &m),
		  "bare LF");
	ASSERT_TRUE(m.complete && m.minor == 0, "HTTP/1.0 with LF lines");
	pt_http_msg_free(&m);
	/* 4: status-line; the reason may be empty and its SP left out */
	ASSERT_OK(parse("HTTP/1.1 204\r\n\r\n", false, "GET", false, &m),
		  "no reason phrase");
	ASSERT_TRUE(m.complete && m.status == 204 && !strcmp(m.reason, ""),
		    "status 204");
	pt_http_msg_free(&m);
	ASSERT_OK(parse("HTTP/1.1 404 Not Found Here\r\nContent-Length: 0\r\n\r\n",
			false, "GET", false, &m), "reason with spaces");
	ASSERT_TRUE(!strcmp(m.reason, "Not Found Here"), "reason kept");
	pt_http_msg_free(&m);
	/* not HTTP/1.x: HTTP/2's preface, junk, a missing target */
	ASSERT_EQ(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", true, NULL, false,
			&m), -1, "h2 preface refused");
	ASSERT_EQ(parse("GET /\r\n\r\n", true, NULL, false, &m), -1,
		  "HTTP/0.9 refused");
	ASSERT_EQ(parse("G@T / HTTP/1.1\r\n\r\n", true, NULL, false, &m), -1,
		  "method not a token");
	ASSERT_EQ(parse("HTTP/1.1 2x0 OK\r\n\r\n", false, NULL, false, &m), -1,
		  "status not 3 digits");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", true, NULL,
			false, &m), -1, "bare CR");
	ASSERT_TRUE(strstr(err, "CR") != NULL, "error names the bare CR");
}

void test_http_fields(void)
{
	struct pt_http_msg m;
	char big[PT_HTTP_HEAD_MAX + 100], *p;
	int i;

	/* 5: case-insensitive names, OWS trimmed, duplicates kept in order */
	ASSERT_OK(parse("GET / HTTP/1.1\r\nhOsT:  a.b \t\r\nX-A: 1\r\nx-a: 2\r\n"
			"Empty:\r\n\r\n", true, NULL, false, &m), "fields");
	ASSERT_TRUE(!strcmp(pt_http_field(&m, "Host"), "a.b"), "OWS trimmed");
	ASSERT_EQ(m.nfields, 4, "duplicates kept");
	ASSERT_TRUE(!strcmp(m.fields[2].value, "2") &&
		    !strcmp(m.fields[2].name, "x-a"), "order and case kept");
	ASSERT_TRUE(!strcmp(pt_http_field(&m, "empty"), ""), "empty value");
	pt_http_msg_free(&m);
	/* 5.2: obs-fold becomes one SP */
	ASSERT_OK(parse("GET / HTTP/1.1\r\nX-Long: one\r\n  two\r\n\tthree\r\n\r\n",
			true, NULL, false, &m), "obs-fold");
	ASSERT_TRUE(!strcmp(pt_http_field(&m, "X-Long"), "one two three"),
		    "folded value");
	pt_http_msg_free(&m);
	/* 5.1: no whitespace between the name and the colon */
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost : x\r\n\r\n", true, NULL, false,
			&m), -1, "space before colon refused");
	/* 2.2: a line with leading whitespace before the first field is
	 * consumed unprocessed, and the message marked ambiguous */
	ASSERT_OK(parse("GET / HTTP/1.1\r\n folded-first\r\n\r\n", true, NULL,
			false, &m), "whitespace before the first field");
	ASSERT_TRUE(m.ambiguous && !m.nfields, "consumed, and ambiguous");
	pt_http_msg_free(&m);
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n", true, NULL, false,
			&m), -1, "line without colon refused");
	/* limits: head size and field count */
	p = big + sprintf(big, "GET / HTTP/1.1\r\nX: ");
	memset(p, 'a', big + sizeof(big) - p - 1);
	big[sizeof(big) - 1] = 0;
	ASSERT_EQ(parse(big, true, NULL, false, &m), -1, "oversized head");
	ASSERT_TRUE(strstr(err, "larger") != NULL, "error names the size");
	p = big + sprintf(big, "GET / HTTP/1.1\r\n");
	for (i = 0; i <= PT_HTTP_FIELDS_MAX; i++)
		p += sprintf(p, "F%d: v\r\n", i);
	strcpy(p, "\r\n");
	ASSERT_EQ(parse(big, true, NULL, false, &m), -1, "too many fields");
}

void test_http_body_length(void)
{
	struct pt_http_msg m;

	/* 6.3 rule 6: Content-Length */
	ASSERT_OK(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET",
			true, NULL, false, &m), "content-length");
	ASSERT_TRUE(m.complete && body_is(&m, "hello"), "body of 5");
	ASSERT_EQ(m.len, strlen("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
		  "stops at the body's end");
	pt_http_msg_free(&m);
	ASSERT_OK(parse("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
			true, NULL, false, &m), "identical list");
	ASSERT_TRUE(m.complete && body_is(&m, "hello"), "list of one value");
	pt_http_msg_free(&m);
	ASSERT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
			true, NULL, false, &m), -1, "differing lengths refused");
	ASSERT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", true,
			NULL, false, &m), -1, "negative length refused");
	ASSERT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
			true, NULL, false, &m), -1, "huge length refused");
	/* not enough bytes yet: incomplete, never an error */
	ASSERT_OK(parse("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhel", true,
			NULL, false, &m), "short body");
	ASSERT_TRUE(!m.complete && body_is(&m, "hel"), "partial body kept");
	pt_http_msg_free(&m);
	/* 6.3 rules 1-2: no body after HEAD, for 1xx, 204, 304 */
	ASSERT_OK(parse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false,
			"HEAD", false, &m), "HEAD response");
	ASSERT_TRUE(m.complete && m.body_len == 0 && m.framing == PT_FRAME_NONE,
		    "HEAD: no body despite its length");
	pt_http_msg_free(&m);
	ASSERT_OK(parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
			false, "GET", false, &m), "304");
	ASSERT_TRUE(m.complete && m.body_len == 0, "304 has no body");
	pt_http_msg_free(&m);
	ASSERT_OK(parse("HTTP/1.1 100 Continue\r\n\r\n", false, "PUT", false, &m),
		  "100");
	ASSERT_TRUE(m.complete && m.framing == PT_FRAME_NONE, "1xx no body");
	pt_http_msg_free(&m);
	/* 6.3 rule 2: CONNECT 2xx and 101 are tunnels */
	ASSERT_OK(parse("HTTP/1.1 200 Connection established\r\n\r\n", false,
			"CONNECT", false, &m), "CONNECT 200");
	ASSERT_EQ(m.framing, PT_FRAME_TUNNEL, "CONNECT tunnel");
	pt_http_msg_free(&m);
	ASSERT_OK(parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
			false, "GET", false, &m), "101");
	ASSERT_EQ(m.framing, PT_FRAME_TUNNEL, "101 tunnel");
	pt_http_msg_free(&m);
	/* 6.3 rule 8: a response without length ends at close */
	ASSERT_OK(parse("HTTP/1.0 200 OK\r\n\r\nuntil close", false, "GET",
			false, &m), "close-delimited, open");
	ASSERT_TRUE(!m.complete && m.framing == PT_FRAME_CLOSE,
		    "incomplete while open");
	pt_http_msg_free(&m);
	ASSERT_OK(parse("HTTP/1.0 200 OK\r\n\r\nuntil close", false, "GET",
			true, &m), "close-delimited, closed");
	ASSERT_TRUE(m.complete && body_is(&m, "until close"), "complete at EOF");
	pt_http_msg_free(&m);
}

void test_http_chunked(void)
{
	static const char *req =
		"POST /up HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n"
		"Content-Length: 3\r\n\r\n"
		"5;name=val;q=\"a;b\"\r\nhello\r\n"
		"6 ; ext\r\n world\r\n"
		"0\r\nX-Trailer: t1\r\nX-Sum: 42\r\n\r\nNEXT";
	struct pt_http_msg m;
	size_t i, whole = strlen(req) - 4;

	/* 7.1 with extensions and trailers; 6.3 rule 3: TE beats CL */
	ASSERT_OK(parse(req, true, NULL, false, &m), "chunked");
	ASSERT_TRUE(m.complete && m.framing == PT_FRAME_CHUNKED, "chunked framing");
	ASSERT_TRUE(body_is(&m, "hello world"), "de-chunked body");
	ASSERT_EQ(m.ntrailers, 2, "trailers");
	ASSERT_TRUE(!strcmp(m.trailers[1].value, "42"), "trailer value");
	ASSERT_EQ(m.len, whole, "ends after the trailer section");
	pt_http_msg_free(&m);
	/* every prefix: incomplete, never an error, never more than given */
	for (i = 0; i < whole; i++) {
		int r = pt_http_parse((const uint8_t *)req, i, true, NULL, false,
				      &m, err, sizeof(err));

		if (!ASSERT_OK(r, "prefix parses") ||
		    !ASSERT_TRUE(!m.complete && m.len == i, "prefix incomplete")) {
			fprintf(stderr, "  at prefix %zu: %s\n", i, err);
			pt_http_msg_free(&m);
			break;
		}
		pt_http_msg_free(&m);
	}
	ASSERT_EQ(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			"fffffffffffffffff\r\n", true, NULL, false, &m), -1,
		  "chunk size overflow refused");
	ASSERT_EQ(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			"3x\r\nabc\r\n0\r\n\r\n", true, NULL, false, &m), -1,
		  "junk after chunk size refused");
	ASSERT_EQ(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			"3\r\nabcd\r\n0\r\n\r\n", true, NULL, false, &m), -1,
		  "chunk longer than its size refused");
	/* 6.3 rule 4: a request TE not ending in chunked is an error... */
	ASSERT_EQ(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
			true, NULL, false, &m), -1, "request TE without chunked");
	/* ...and a response's body then runs to the close */
	ASSERT_OK(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz",
			false, "GET", true, &m), "response TE without chunked");
	ASSERT_EQ(m.framing, PT_FRAME_CLOSE, "close-delimited");
	pt_http_msg_free(&m);
}

static size_t deflate_buf(const char *s, size_t n, int wbits, uint8_t *out,
			  size_t cap)
{
	z_stream z = {};

	deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY);
	z.next_in = (uint8_t *)s;
	z.avail_in = n;
	z.next_out = out;
	z.avail_out = cap;
	deflate(&z, Z_FINISH);
	deflateEnd(&z);
	return z.total_out;
}

static int decode_with(const char *ce, const uint8_t *body, size_t n,
		       uint8_t **out, size_t *outlen)
{
	struct pt_http_field f = { "Content-Encoding", (char *)ce };
	struct pt_http_msg m = { .fields = &f, .nfields = 1, .body = body,
				 .body_len = n };

	return pt_http_decode_body(&m, out, outlen, err, sizeof(err));
}

void test_http_content_encoding(void)
{
	static const char text[] = "a body that is compressed, a body that is compressed";
	static const int wbits[] = { 16 + MAX_WBITS, MAX_WBITS, -MAX_WBITS };
	static const char *const ce[] = { "gzip", "deflate", "deflate" };
	uint8_t z[256], *out, *bomb_in;
	size_t n, outlen, i;
	char *zeros;

	for (i = 0; i < ARRAY_SIZE(wbits); i++) {
		n = deflate_buf(text, strlen(text), wbits[i], z, sizeof(z));
		ASSERT_EQ(decode_with(ce[i], z, n, &out, &outlen), 1, ce[i]);
		ASSERT_TRUE(outlen == strlen(text) && !memcmp(out, text, outlen),
			    "decoded bytes");
		free(out);
		/* cut short: an error, not a partial body */
		ASSERT_EQ(decode_with(ce[i], z, n - 4, &out, &outlen), -1,
			  "truncated");
	}
	ASSERT_EQ(decode_with("identity", z, 4, &out, &outlen), 0, "identity");
	ASSERT_EQ(decode_with("br", z, 4, &out, &outlen), -1, "br not decoded");
	/* a bomb: bounded at PT_HTTP_DECODED_MAX */
	zeros = calloc(1, PT_HTTP_DECODED_MAX + 1024);
	bomb_in = malloc(PT_HTTP_DECODED_MAX / 100);
	n = deflate_buf(zeros, PT_HTTP_DECODED_MAX + 1024, 16 + MAX_WBITS,
			bomb_in, PT_HTTP_DECODED_MAX / 100);
	ASSERT_EQ(decode_with("gzip", bomb_in, n, &out, &outlen), -1,
		  "bomb refused");
	ASSERT_TRUE(strstr(err, "more than") != NULL, "error names the limit");
	free(zeros);
	free(bomb_in);
}

/* ---- exchanges from DATA records ---- */

static void feed(struct pt_conns *c, uint64_t id, int dir, uint64_t off,
		 const void *p, size_t n, uint64_t ts, uint16_t flags)
{
	struct pt_data *d = calloc(1, sizeof(*d) + n + 8);

	d->h.type = PT_REC_DATA;
	d->h.flags = flags;
	d->h.size = sizeof(*d) + ((n + 7) & ~7u);
	d->h.ts_ns = ts;
	d->h.conn_id = id;
	d->offset = off;
	d->len = n;
	d->cap_len = n;
	d->dir = dir;
	memcpy(d->payload, p, n);
	pt_conns_add(c, &d->h);
	free(d);
}

static void open_conn(struct pt_conns *c, uint64_t id, uint8_t role)
{
	struct pt_conn_open o = {};

	o.h.type = PT_REC_CONN_OPEN;
	o.h.size = sizeof(o);
	o.h.ts_ns = 1;
	o.h.conn_id = id;
	o.role = role;
	o.t.family = 2;
	pt_conns_add(c, &o.h);
}

/* A stream given as parts: each part one record, in order, at ts 10*i. */
static void feed_parts(struct pt_conns *c, uint64_t id, int dir,
		       const char *const *parts, uint64_t ts0)
{
	uint64_t off = 0;
	size_t i;

	for (i = 0; parts[i]; i++) {
		feed(c, id, dir, off, parts[i], strlen(parts[i]), ts0 + 10 * i, 0);
		off += strlen(parts[i]);
	}
}

void test_exchanges_pairing(void)
{
	/* pipelined requests in one read; responses split across many */
	static const char *const q[] = {
		"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: h\r\n\r\n"
		"PUT /3 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
		"body", NULL };
	static const char *const r[] = {
		"HTTP/1.1 200 OK\r\nContent-", "Length: 2\r\n\r\n", "o", "k",
		"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n",
		"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", NULL };
	struct pt_conns c;
	struct pt_xconn xc;

	pt_conns_init(&c);
	open_conn(&c, 7, PT_ROLE_SERVER);
	feed_parts(&c, 7, PT_DIR_RX, q, 100);
	feed_parts(&c, 7, PT_DIR_TX, r, 105);
	pt_xconn_build(pt_conns_find(&c, 7), &xc);
	ASSERT_TRUE(xc.http && xc.inbound && !xc.error[0], "HTTP, inbound");
	if (ASSERT_EQ(xc.nx, 3, "three exchanges")) {
		ASSERT_TRUE(!strcmp(xc.x[0].req.target, "/1") &&
			    body_is(&xc.x[0].resp, "ok"), "first pair");
		ASSERT_TRUE(!strcmp(xc.x[1].req.method, "HEAD") &&
			    xc.x[1].resp.body_len == 0 && xc.x[1].resp.complete,
			    "HEAD response without body");
		ASSERT_TRUE(body_is(&xc.x[2].req, "body") &&
			    xc.x[2].resp.status == 201 &&
			    body_is(&xc.x[2].resp, "hi"), "PUT after 100");
		ASSERT_TRUE(xc.x[2].ninterim == 1 && xc.x[2].interim[0] == 100,
			    "100 Continue kept as interim");
		ASSERT_EQ(xc.x[0].req_span.ts, 100, "request timestamp");
		ASSERT_EQ(xc.x[0].resp_span.ts_end, 135, "response end timestamp");
		ASSERT_TRUE(!xc.x[0].incomplete && !xc.x[2].incomplete,
			    "complete");
	}
	pt_xconn_free(&xc);
	pt_conns_free(&c);
}

void test_exchanges_gap(void)
{
	static const char r1[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
	static const char r2[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
	static const char q[] = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
	struct pt_conns c;
	struct pt_xconn xc;
	size_t n1 = strlen(r1);

	/* the body of the first response is partly missing */
	pt_conns_init(&c);
	open_conn(&c, 9, PT_ROLE_CLIENT);
	feed(&c, 9, PT_DIR_TX, 0, q, strlen(q), 10, 0);
	feed(&c, 9, PT_DIR_RX, 0, r1, n1 - 6, 20, 0);
	feed(&c, 9, PT_DIR_RX, n1, r2, strlen(r2), 30, PT_F_FIN);
	pt_xconn_build(pt_conns_find(&c, 9), &xc);
	ASSERT_TRUE(!xc.inbound, "client side: outbound");
	if (ASSERT_EQ(xc.nx, 2, "two exchanges")) {
		ASSERT_TRUE(xc.x[0].incomplete && !xc.x[0].resp.complete,
			    "the cut response is incomplete");
		ASSERT_EQ(xc.x[0].resp.body_len, 4, "only what was captured");
		ASSERT_TRUE(!xc.x[1].incomplete && xc.x[1].resp.status == 404 &&
			    !strcmp(xc.x[1].req.target, "/b"),
			    "parsing starts again after the gap");
	}
	pt_xconn_free(&xc);
	pt_conns_free(&c);
}

/* An OPEN of a connection older than the recording (flags), or none. */
static void open_conn_flags(struct pt_conns *c, uint64_t id, uint8_t role,
			    uint16_t flags)
{
	struct pt_conn_open o = {};

	o.h.type = PT_REC_CONN_OPEN;
	o.h.size = sizeof(o);
	o.h.flags = flags;
	o.h.ts_ns = 1;
	o.h.conn_id = id;
	o.role = role;
	o.t.family = 2;
	pt_conns_add(c, &o.h);
}

/*
 * Where a request may be missing (a connection older than the recording,
 * as plaintext of a TLS library hooked mid keep-alive is; bytes not
 * captured in the requests), an answer that showed before the request at
 * hand was sent answers one not captured, not this one. Elsewhere every
 * request was captured, and order pairs them: a large request still being
 * written when another thread read its early answer is stamped later.
 */
void test_exchanges_answer_before_request(void)
{
	static const char r1[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr1";
	static const char r2[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nr2";
	static const char q2[] = "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
	static const char q3[] = "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n";
	size_t n1 = strlen(r1), n2 = strlen(r2), m2 = strlen(q2), m3 = strlen(q3);
	char why[160];
	struct pt_conns c;
	struct pt_xconn xc;
	size_t early;
	const char *d;
	int k;

	for (k = 0; k < 4; k++) {
		/* the client reads r1 at 20, sends /2 at 30 and reads r2 at
		 * 40, sends /3 at 50, reads r1 again at 60; k 1 and 3 the
		 * server side, the directions turned; k 2 and 3 a request
		 * lost before /2 (a gap) in place of an old connection */
		int qd = k & 1 ? PT_DIR_RX : PT_DIR_TX;
		uint64_t q0 = k & 2 ? 30 : 0;

		pt_conns_init(&c);
		open_conn_flags(&c, 5, k & 1 ? PT_ROLE_SERVER : PT_ROLE_CLIENT,
				k & 2 ? 0 : PT_F_PREEXISTING);
		feed(&c, 5, !qd, 0, r1, n1, 20, 0);
		feed(&c, 5, qd, q0, q2, m2, 30, 0);
		feed(&c, 5, !qd, n1, r2, n2, 40, 0);
		feed(&c, 5, qd, q0 + m2, q3, m3, 50, 0);
		feed(&c, 5, !qd, n1 + n2, r1, n1, 60, 0);
		pt_xconn_build(pt_conns_find(&c, 5), &xc);
		if (ASSERT_EQ(xc.nx, 3, "an orphan answer, then two pairs")) {
			ASSERT_TRUE(!xc.x[0].has_req && xc.x[0].incomplete &&
				    body_is(&xc.x[0].resp, "r1"),
				    "the first answer has no request");
			ASSERT_TRUE(!strcmp(xc.x[1].req.target, "/2") &&
				    xc.x[1].resp.status == 404 &&
				    !xc.x[1].incomplete, "/2 gets its own answer");
			ASSERT_TRUE(!strcmp(xc.x[2].req.target, "/3") &&
				    body_is(&xc.x[2].resp, "r1") &&
				    !xc.x[2].incomplete, "/3 too");
		}
		pt_xconn_free(&xc);
		d = feed_by_time_check(pt_conns_find(&c, 5), why, sizeof(why),
				       &early);
		ASSERT_TRUE(!d, d ? d : "read live: the same exchanges");
		pt_conns_free(&c);
	}
	/* a full ring: /b and /c lost, and the answer to /b; the answer to
	 * /c, after that gap, is one alone, and /d gets its own */
	pt_conns_init(&c);
	open_conn_flags(&c, 7, PT_ROLE_CLIENT, 0);
	feed(&c, 7, PT_DIR_TX, 0, q2, m2, 10, 0);
	feed(&c, 7, PT_DIR_RX, 0, r1, n1, 20, 0);
	feed(&c, 7, PT_DIR_RX, 2 * n1, r2, n2, 40, 0);
	feed(&c, 7, PT_DIR_TX, 3 * m2, q3, m3, 50, 0);
	feed(&c, 7, PT_DIR_RX, 2 * n1 + n2, r1, n1, 60, 0);
	pt_xconn_build(pt_conns_find(&c, 7), &xc);
	if (ASSERT_EQ(xc.nx, 3, "lost to a full ring: three exchanges")) {
		ASSERT_TRUE(!strcmp(xc.x[0].req.target, "/2") &&
			    body_is(&xc.x[0].resp, "r1"), "the first pair");
		ASSERT_TRUE(!xc.x[1].has_req && xc.x[1].resp.status == 404,
			    "the answer after the gap has no request");
		ASSERT_TRUE(!strcmp(xc.x[2].req.target, "/3") &&
			    body_is(&xc.x[2].resp, "r1"), "/3 gets its own");
	}
	pt_xconn_free(&xc);
	pt_conns_free(&c);
	/* captured whole: a POST stamped at 50, its early 413 read at 20 */
	pt_conns_init(&c);
	open_conn_flags(&c, 6, PT_ROLE_CLIENT, 0);
	feed(&c, 6, PT_DIR_RX, 0, "HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", 45, 20, 0);
	feed(&c, 6, PT_DIR_TX, 0, "POST /up HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", 42, 50, 0);
	feed(&c, 6, PT_DIR_TX, 42, q3, m3, 60, 0);
	feed(&c, 6, PT_DIR_RX, 45, r1, n1, 70, 0);
	pt_xconn_build(pt_conns_find(&c, 6), &xc);
	if (ASSERT_EQ(xc.nx, 2, "captured whole: two pairs")) {
		ASSERT_TRUE(!strcmp(xc.x[0].req.target, "/up") &&
			    xc.x[0].resp.status == 413, "the POST and its 413");
		ASSERT_TRUE(!strcmp(xc.x[1].req.target, "/3") &&
			    body_is(&xc.x[1].resp, "r1"), "/3 and its answer");
	}
	pt_xconn_free(&xc);
	pt_conns_free(&c);
}

void test_exchanges_raw(void)
{
	static const char q[] = "GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
	static const char r[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
	static const uint8_t ws1[] = { 0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o' };
	static const uint8_t ws2[] = { 0x81, 0x02, 'o', 'k' };
	struct pt_conns c;
	struct pt_xconn xc;

	pt_conns_init(&c);
	/* websocket after a 101: the rest of both streams is raw */
	open_conn(&c, 3, PT_ROLE_SERVER);
	feed(&c, 3, PT_DIR_RX, 0, q, strlen(q), 10, 0);
	feed(&c, 3, PT_DIR_TX, 0, r, strlen(r), 20, 0);
	feed(&c, 3, PT_DIR_RX, strlen(q), ws1, sizeof(ws1), 30, 0);
	feed(&c, 3, PT_DIR_TX, strlen(r), ws2, sizeof(ws2), 40, 0);
	feed(&c, 3, PT_DIR_RX, strlen(q) + sizeof(ws1), ws1, sizeof(ws1), 50, 0);
	pt_xconn_build(pt_conns_find(&c, 3), &xc);
	if (ASSERT_EQ(xc.nx, 3, "upgrade + two raw exchanges")) {
		ASSERT_TRUE(xc.x[0].kind == PT_X_HTTP && xc.x[0].resp.status == 101,
			    "the upgrade exchange");
		ASSERT_TRUE(xc.x[1].kind == PT_X_RAW && xc.x[1].nturns == 2,
			    "client frame, server frame");
		ASSERT_TRUE(xc.x[1].turns[0].end - xc.x[1].turns[0].off ==
			    sizeof(ws1) && !memcmp(pt_span_bytes(&xc, &xc.x[1].turns[0]),
						   ws1, sizeof(ws1)),
			    "raw bytes exact");
		ASSERT_TRUE(xc.x[2].kind == PT_X_RAW && xc.x[2].nturns == 1,
			    "a new exchange when the client speaks again");
	}
	pt_xconn_free(&xc);

	/* not HTTP at all: a server that speaks first, turns in time order */
	open_conn(&c, 4, PT_ROLE_CLIENT);
	feed(&c, 4, PT_DIR_RX, 0, "220 smtp ready\r\n", 16, 10, 0);
	feed(&c, 4, PT_DIR_TX, 0, "HELO x\r\n", 8, 20, 0);
	feed(&c, 4, PT_DIR_RX, 16, "250 ok\r\n", 8, 30, 0);
	pt_xconn_build(pt_conns_find(&c, 4), &xc);
	ASSERT_TRUE(!xc.http && !xc.error[0], "not HTTP, no error");
	if (ASSERT_EQ(xc.nx, 2, "banner, then one exchange")) {
		ASSERT_TRUE(xc.x[0].nturns == 1 && xc.x[0].turns[0].dir == PT_DIR_RX,
			    "server banner first");
		ASSERT_TRUE(xc.x[1].nturns == 2 && xc.x[1].turns[0].dir == PT_DIR_TX,
			    "HELO and its answer");
	}
	pt_xconn_free(&xc);

	/* malformed after a good exchange: the rest falls back to raw */
	open_conn(&c, 5, PT_ROLE_SERVER);
	feed(&c, 5, PT_DIR_RX, 0, "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nBad Field\r\n\r\n",
	     45, 10, 0);
	feed(&c, 5, PT_DIR_TX, 0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	     38, 20, 0);
	pt_xconn_build(pt_conns_find(&c, 5), &xc);
	ASSERT_TRUE(xc.http && strstr(xc.error, "request at offset 18") != NULL,
		    "error names where");
	if (ASSERT_EQ(xc.nx, 2, "one HTTP, one raw"))
		ASSERT_TRUE(xc.x[1].kind == PT_X_RAW &&
			    xc.x[1].turns[0].off == 18, "raw from the bad request");
	pt_xconn_free(&xc);
	pt_conns_free(&c);
}

/* Framing corners found in review, each once wrong. */
void test_http_corners(void)
{
	static const char two[][8] = { "first ", "second" };
	uint8_t z[256], *out;
	size_t n = 0, outlen, i;
	struct pt_http_msg m;
	char *fixed;

	/* a start line cut short still gives strings */
	ASSERT_OK(parse("GE", true, NULL, false, &m), "cut request line");
	ASSERT_TRUE(m.method && m.target && !*m.method && !m.complete,
		    "empty method and target, not NULL");
	pt_http_msg_free(&m);
	ASSERT_OK(parse("HTTP/1.1 2", false, "GET", false, &m), "cut status line");
	ASSERT_TRUE(m.reason && !*m.reason, "empty reason, not NULL");
	pt_http_msg_free(&m);
	/* 7.1: chunk-size = 1*HEXDIG, leading zeros are not a large size */
	ASSERT_OK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			"00000000000000000003\r\nabc\r\n0\r\n\r\n", true, NULL,
			false, &m), "chunk size with leading zeros");
	ASSERT_TRUE(m.complete && body_is(&m, "abc"), "its body");
	pt_http_msg_free(&m);
	/* 8.6: Content-Length = 1*DIGIT, likewise */
	ASSERT_OK(parse("HTTP/1.1 200 OK\r\nContent-Length: 0000000000000000000002\r\n\r\nok",
			false, "GET", false, &m), "Content-Length with leading zeros");
	ASSERT_TRUE(m.complete && body_is(&m, "ok"), "its body");
	pt_http_msg_free(&m);
	/* 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing */
	ASSERT_EQ(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			true, NULL, false, &m), -1, "TE in HTTP/1.0 refused");
	/* a chunked body grows as it goes: many chunks, one body */
	{
		char *big = NULL;
		size_t bl = 0;
		FILE *f = open_memstream(&big, &bl);

		fputs("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", f);
		for (i = 0; i < 5000; i++)
			fputs("3\r\nabc\r\n", f);
		fputs("0\r\n\r\n", f);
		fclose(f);
		ASSERT_OK(parse(big, false, "GET", false, &m), "5000 chunks");
		ASSERT_TRUE(m.complete && m.body_len == 15000 &&
			    !memcmp(m.body + 14997, "abc", 3), "all of them");
		pt_http_msg_free(&m);
		free(big);
	}
	/* RFC 1952 2.2: gzip members one after another are one body */
	for (i = 0; i < 2; i++)
		n += deflate_buf(two[i], strlen(two[i]), 16 + MAX_WBITS, z + n,
				 sizeof(z) - n);
	ASSERT_EQ(decode_with("gzip", z, n, &out, &outlen), 1, "two members");
	ASSERT_TRUE(outlen == 12 && !memcmp(out, "first second", 12),
		    "both members decoded");
	free(out);
	/* YAML and JSON take UTF-8: stray bytes become U+FFFD */
	fixed = pt_utf8_fix("a\xff" "b\xc3\xa9", 5, &n);
	ASSERT_TRUE(fixed && n == 7 && !memcmp(fixed, "a\xef\xbf\xbd" "b\xc3\xa9", 7),
		    "utf8 fix");
	free(fixed);
}

static void close_conn(struct pt_conns *c, uint64_t id, uint16_t flags,
		       uint64_t tx, uint64_t rx)
{
	struct pt_conn_close k = {};

	k.h.type = PT_REC_CONN_CLOSE;
	k.h.size = sizeof(k);
	k.h.ts_ns = 1000;
	k.h.conn_id = id;
	k.h.flags = flags;
	k.bytes[PT_DIR_TX] = tx;
	k.bytes[PT_DIR_RX] = rx;
	pt_conns_add(c, &k.h);
}

/* Exchange corners found in review. */
void test_exchanges_corners(void)
{
	static const char q[] = "GET /a HTTP/1.1\r\n\r\n";
	static const char r_close[] = "HTTP/1.1 200 OK\r\n\r\nuntil close";
	static const char r_bad[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2x0 Bad\r\n\r\n";
	/* the body hides a request line; the known length skips it */
	static const char q2[] = "POST /up HTTP/1.1\r\nContent-Length: 40\r\n\r\n"
				 "xxxxxx\r\nGET /fake HTTP/1.1\r\n\r\nxxxxxxxxxx"
				 "GET /real HTTP/1.1\r\n\r\n";
	static const char r2[] = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
	struct pt_conns c;
	struct pt_xconn xc;
	int rst;

	pt_conns_init(&c);
	/* 6.3 rule 8: a close-delimited body ends at a FIN, not a reset */
	for (rst = 0; rst < 2; rst++) {
		open_conn(&c, 20 + rst, PT_ROLE_CLIENT);
		feed(&c, 20 + rst, PT_DIR_TX, 0, q, strlen(q), 10, 0);
		feed(&c, 20 + rst, PT_DIR_RX, 0, r_close, strlen(r_close), 20, 0);
		close_conn(&c, 20 + rst, rst ? PT_F_RST : 0, strlen(q),
			   strlen(r_close));
		pt_xconn_build(pt_conns_find(&c, 20 + rst), &xc);
		if (ASSERT_EQ(xc.nx, 1, "one exchange"))
			ASSERT_TRUE(xc.x[0].has_resp &&
				    xc.x[0].resp.complete == !rst &&
				    xc.x[0].incomplete == rst,
				    rst ? "reset: body may be cut" :
					  "close: body complete");
		pt_xconn_free(&xc);
	}
	/* a 1xx then a malformed response: no status-0 response */
	open_conn(&c, 22, PT_ROLE_CLIENT);
	feed(&c, 22, PT_DIR_TX, 0, q, strlen(q), 10, 0);
	feed(&c, 22, PT_DIR_RX, 0, r_bad, strlen(r_bad), 20, 0);
	pt_xconn_build(pt_conns_find(&c, 22), &xc);
	if (ASSERT_TRUE(xc.nx >= 1 && xc.x[0].kind == PT_X_HTTP, "an exchange"))
		ASSERT_TRUE(!xc.x[0].has_resp && xc.x[0].incomplete &&
			    xc.x[0].ninterim == 1 && xc.error[0],
			    "interim kept, final missing, error said");
	pt_xconn_free(&xc);
	/* resync after a gap inside a body of known length */
	open_conn(&c, 23, PT_ROLE_SERVER);
	feed(&c, 23, PT_DIR_RX, 0, q2, 42, 10, 0);
	feed(&c, 23, PT_DIR_RX, 43, q2 + 43, strlen(q2) - 43, 20, 0);
	feed(&c, 23, PT_DIR_TX, 0, r2, strlen(r2), 30, 0);
	pt_xconn_build(pt_conns_find(&c, 23), &xc);
	if (ASSERT_EQ(xc.nx, 2, "the cut POST and the real GET")) {
		ASSERT_TRUE(xc.x[0].incomplete, "the cut one is incomplete");
		ASSERT_TRUE(!strcmp(xc.x[1].req.target, "/real") &&
			    !xc.x[1].incomplete, "the next one is found by length");
	}
	pt_xconn_free(&xc);
	/*
	 * The first response lost whole, the second captured after the
	 * second request was sent: it answers the second, not the first.
	 */
	{
		static const char put[] = "PUT /up HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
		static const char get[] = "GET /small HTTP/1.1\r\n\r\n";
		static const char r_put[] = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
		static const char r_get[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";

		open_conn(&c, 24, PT_ROLE_SERVER);
		feed(&c, 24, PT_DIR_RX, 0, put, strlen(put), 10, 0);
		feed(&c, 24, PT_DIR_RX, strlen(put), get, strlen(get), 1000, 0);
		feed(&c, 24, PT_DIR_TX, strlen(r_put), r_get, strlen(r_get),
		     1010, 0);
		pt_xconn_build(pt_conns_find(&c, 24), &xc);
		if (ASSERT_EQ(xc.nx, 2, "the PUT and the GET")) {
			ASSERT_TRUE(!xc.x[0].has_resp && xc.x[0].incomplete,
				    "the PUT's response is not the GET's");
			ASSERT_TRUE(xc.x[1].has_resp && xc.x[1].resp.status == 200 &&
				    !strcmp(xc.x[1].req.target, "/small"),
				    "the GET has its own response");
		}
		pt_xconn_free(&xc);
	}
	pt_conns_free(&c);
}

/*
 * Requests a strict recipient reads one way and some servers another
 * (RFC 9112 2.2, 6.1, 6.3; RFC 9110 9.3.6), found by playing an
 * independent parser's test suite over real sockets.
 */
void test_http_ambiguous(void)
{
	static const struct {
		const char *req;
		const char *why;	/* NULL: not ambiguous */
	} v[] = {
		{ "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", "bare LF" },
		{ "GET / HTTP/1.1\r\n X: folded\r\nHost: a\r\n\r\n", "whitespace" },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding:\r\nContent-Length: 2\r\n\r\nhi",
		  "empty Transfer-Encoding" },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n0\r\n\r\n",
		  "both" },
		{ "GET / HTTP/1.1\nHost: a\n\n", NULL },	/* LF throughout */
		{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL },
	};
	struct pt_http_msg m;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(v); i++) {
		if (!ASSERT_OK(parse(v[i].req, true, NULL, false, &m), v[i].req))
			continue;
		if (v[i].why)
			ASSERT_TRUE(m.ambiguous && strstr(m.ambiguous, v[i].why),
				    v[i].req);
		else
			ASSERT_TRUE(!m.ambiguous, v[i].req);
		ASSERT_TRUE(m.complete, "still framed, as a strict recipient would");
		pt_http_msg_free(&m);
	}
	/* 9.3.6: CONNECT has no content, whatever Content-Length says */
	ASSERT_OK(parse("CONNECT h:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
			true, NULL, false, &m), "CONNECT");
	ASSERT_TRUE(m.complete && m.body_len == 0 && m.len == m.head_len,
		    "CONNECT: no body");
	pt_http_msg_free(&m);
	/* methods are tokens */
	ASSERT_TRUE(pt_http_looks_like_start((const uint8_t *)"M-SEARCH * HTTP/1.1\r\n",
					     21, true), "M-SEARCH starts a request");
	ASSERT_TRUE(!pt_http_looks_like_start((const uint8_t *)"-GET / HTTP/1.1\r\n",
					      17, true), "a method starts with a letter");
}

/* 2.2: empty lines after the last request are no exchange */
void test_exchanges_blank_tail(void)
{
	static const char q[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n\r\n\r\n";
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	struct pt_conns c;
	struct pt_xconn xc;

	pt_conns_init(&c);
	open_conn(&c, 7, PT_ROLE_CLIENT);
	feed(&c, 7, PT_DIR_TX, 0, q, strlen(q), 10, 0);
	feed(&c, 7, PT_DIR_RX, 0, r, strlen(r), 20, 0);
	close_conn(&c, 7, 0, strlen(q), strlen(r));
	pt_xconn_build(pt_conns_find(&c, 7), &xc);
	ASSERT_EQ(xc.nx, 1, "one exchange");
	ASSERT_TRUE(xc.nx && !xc.x[0].incomplete, "complete");
	ASSERT_EQ(xc.proto, PT_XP_HTTP1, "HTTP/1");
	pt_xconn_free(&xc);
	pt_conns_free(&c);
}

/* What a connection speaks, for read and the export summaries. */
void test_exchanges_proto(void)
{
	static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5 };
	static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	struct pt_conns c;
	struct pt_xconn xc;

	pt_conns_init(&c);
	open_conn(&c, 8, PT_ROLE_CLIENT);
	feed(&c, 8, PT_DIR_TX, 0, (const char *)hello, sizeof(hello), 10, 0);
	pt_xconn_build(pt_conns_find(&c, 8), &xc);
	ASSERT_EQ(xc.proto, PT_XP_TLS, "a ClientHello is TLS");
	pt_xconn_free(&xc);
	open_conn(&c, 9, PT_ROLE_CLIENT);
	feed(&c, 9, PT_DIR_TX, 0, h2, strlen(h2), 10, 0);
	pt_xconn_build(pt_conns_find(&c, 9), &xc);
	ASSERT_EQ(xc.proto, PT_XP_HTTP2, "the preface is HTTP/2");
	pt_xconn_free(&xc);
	open_conn(&c, 10, PT_ROLE_CLIENT);
	feed(&c, 10, PT_DIR_TX, 0, "PING\r\n", 6, 10, 0);
	pt_xconn_build(pt_conns_find(&c, 10), &xc);
	ASSERT_EQ(xc.proto, PT_XP_OTHER, "anything else is unknown");
	pt_xconn_free(&xc);
	pt_conns_free(&c);
}

/*
 * The protocol seam fed as a live stream: the same exchanges as read whole
 * (feed_by_time.h), and the settled ones before the end, so that a
 * streaming reader has something to show while the connection goes on.
 */
void test_exchanges_fed_live(void)
{
	static const char *const redis_q[] = { "PING\r\n", "GET k\r\n",
					       "SET k v\r\n", NULL };
	static const char *const redis_r[] = { "+PONG\r\n", "$1\r\nv\r\n",
					       "+OK\r\n", NULL };
	struct pt_conns c;
	static char big[50000];
	char why[160], q[128], r[128];
	size_t early;
	uint64_t qoff = 0, roff = 0;
	const char *d;
	int i;

	pt_conns_init(&c);
	/* keep-alive: five requests, each answered before the next, the
	 * responses in two records each */
	open_conn(&c, 1, PT_ROLE_SERVER);
	for (i = 0; i < 5; i++) {
		int n = snprintf(q, sizeof(q), "GET /%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
		int m = snprintf(r, sizeof(r), "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nr%02d", i);

		feed(&c, 1, PT_DIR_RX, qoff, q, n, 100 + 10 * i, 0);
		feed(&c, 1, PT_DIR_TX, roff, r, m - 2, 103 + 10 * i, 0);
		feed(&c, 1, PT_DIR_TX, roff + m - 2, r + m - 2, 2, 105 + 10 * i, 0);
		qoff += n;
		roff += m;
	}
	d = feed_by_time_check(pt_conns_find(&c, 1), why, sizeof(why), &early);
	ASSERT_TRUE(!d, d ? d : "keep-alive: same exchanges");
	ASSERT_EQ(early, 5, "keep-alive: all five before the end");

	/* a response cut by a gap, then a close-delimited one that the FIN
	 * settles */
	open_conn(&c, 2, PT_ROLE_CLIENT);
	feed(&c, 2, PT_DIR_TX, 0, "GET /a HTTP/1.1\r\n\r\n", 19, 100, 0);
	feed(&c, 2, PT_DIR_RX, 0, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", 41, 110, 0);
	feed(&c, 2, PT_DIR_TX, 19, "GET /b HTTP/1.0\r\n\r\n", 19, 120, 0);
	feed(&c, 2, PT_DIR_RX, 49, "HTTP/1.0 200 OK\r\n\r\nuntil the end", 32, 130,
	     PT_F_FIN);
	d = feed_by_time_check(pt_conns_find(&c, 2), why, sizeof(why), &early);
	ASSERT_TRUE(!d, d ? d : "gap and close: same exchanges");
	ASSERT_EQ(early, 2, "gap and close: both once the FIN is there");

	/* not HTTP: raw turns. Small, only the end tells it is not HTTP */
	open_conn(&c, 3, PT_ROLE_CLIENT);
	feed_parts(&c, 3, PT_DIR_TX, redis_q, 100);
	feed_parts(&c, 3, PT_DIR_RX, redis_r, 105);
	d = feed_by_time_check(pt_conns_find(&c, 3), why, sizeof(why), &early);
	ASSERT_TRUE(!d, d ? d : "raw: same exchanges");
	ASSERT_EQ(early, 0, "raw: under the HTTP probe, nothing before the end");
	/* past it, each turn is settled by what follows it */
	open_conn(&c, 5, PT_ROLE_CLIENT);
	memset(big, 'x', sizeof(big));
	for (i = 0, qoff = roff = 0; i < 4; i++) {
		feed(&c, 5, PT_DIR_TX, qoff, big, sizeof(big), 100 + 10 * i, 0);
		feed(&c, 5, PT_DIR_RX, roff, "ok", 2, 105 + 10 * i, 0);
		qoff += sizeof(big);
		roff += 2;
	}
	d = feed_by_time_check(pt_conns_find(&c, 5), why, sizeof(why), &early);
	ASSERT_TRUE(!d, d ? d : "raw, large: same exchanges");
	ASSERT_EQ(early, 3, "raw, large: all but the last before the end");

	/* an upgrade: HTTP, then raw at the byte the tunnel starts */
	open_conn(&c, 4, PT_ROLE_CLIENT);
	qoff = roff = 0;
	for (i = 0; i < 6; i++) {
		static const char *const part[] = {
			"GET /ws HTTP/1.1\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
			"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
			"Connection: Upgrade\r\n\r\n",
			"ping", "pong", "ping", "pong" };
		size_t n = strlen(part[i]);

		feed(&c, 4, i % 2 ? PT_DIR_RX : PT_DIR_TX, i % 2 ? roff : qoff,
		     part[i], n, 100 + 10 * i, 0);
		*(i % 2 ? &roff : &qoff) += n;
	}
	d = feed_by_time_check(pt_conns_find(&c, 4), why, sizeof(why), &early);
	ASSERT_TRUE(!d, d ? d : "upgrade: same exchanges");
	ASSERT_EQ(early, 2, "upgrade: the 101 and the first turn before the end");
	pt_conns_free(&c);
}

/* The protocol table: every entry whole, names unique, raw last. */
void test_proto_table(void)
{
	size_t i, k, n = 0;

	for (i = 0; pt_protos[i]; i++, n++) {
		ASSERT_TRUE(pt_protos[i]->name && pt_protos[i]->detect &&
			    pt_protos[i]->feed && pt_protos[i]->release,
			    pt_protos[i]->name ? pt_protos[i]->name : "unnamed");
		for (k = 0; k < i; k++)
			ASSERT_TRUE(strcmp(pt_protos[i]->name, pt_protos[k]->name),
				    "names unique");
	}
	ASSERT_TRUE(n >= 2 && pt_protos[n - 1] == &pt_proto_raw,
		    "raw turns take what is left");
	ASSERT_TRUE(pt_protos[0] == &pt_proto_http1, "HTTP/1 asked first");
}
