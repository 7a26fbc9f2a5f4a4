// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The JSON writer, the agent's spool, and every exporter of the table
 * streamed from one capture file written here: what each wrote is read back
 * (JSON parsed, pcapng walked block by block, Keploy YAML looked at).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "agent/spool.h"
#include "base/common.h"
#include "base/jread.h"
#include "base/jsonw.h"
#include "capfile/capfile.h"
#include "export/export.h"
#include "test_progs.h"
#include "capbuild.h"

/* What f() wrote, as a string (caller frees). */
#define CAPTURE_OUT(buf, len, expr) do {				\
	FILE *___f = open_memstream(&(buf), &(len));			\
	expr;								\
	fclose(___f);							\
} while (0)

static char *json_of(const void *p, size_t n)
{
	char *buf = NULL;
	size_t len = 0;

	CAPTURE_OUT(buf, len, pt_json_strn(___f, p, n));
	return buf;
}

void test_jsonw(void)
{
	static const uint8_t bin[] = { 0xff, 0x00, 'a' };
	char *s, *buf = NULL;
	size_t len = 0;
	struct pt_jr j;

	s = json_of("a\"b\\c\n\t\x01\x7f", 9);
	ASSERT_TRUE(!strcmp(s, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\""), s);
	free(s);
	/* bytes that are not UTF-8 are replaced, never passed through */
	s = json_of("x\xc3(\xed\xa0\x80", 6);
	ASSERT_TRUE(!strcmp(s, "\"x\\ufffd(\\ufffd\\ufffd\\ufffd\""), s);
	free(s);
	s = json_of("\xc3\xa9", 2);
	ASSERT_TRUE(!strcmp(s, "\"\xc3\xa9\""), "UTF-8 kept as it is");
	free(s);
	ASSERT_TRUE(pt_utf8_valid((const uint8_t *)"\xe2\x82\xac", 3), "euro sign");
	ASSERT_TRUE(!pt_utf8_valid((const uint8_t *)"\xc0\xaf", 2), "overlong refused");
	ASSERT_TRUE(!pt_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3), "surrogate refused");
	CAPTURE_OUT(buf, len, pt_json_base64(___f, (const uint8_t *)"abcd", 4));
	ASSERT_TRUE(!strcmp(buf, "\"YWJjZA==\""), buf);
	free(buf);
	/* text as text, anything else as base64, and it says which */
	CAPTURE_OUT(buf, len, (fputc('{', ___f), fputs("\"k\":1", ___f),
			       pt_json_bytes(___f, "t", (const uint8_t *)"hi", 2),
			       pt_json_bytes(___f, "b", bin, sizeof(bin)),
			       fputc('}', ___f)));
	if (ASSERT_OK(pt_jr_parse(&j, buf, len), "what it wrote parses")) {
		ASSERT_TRUE(pt_jr_streq(&j, pt_jr_get(&j, 0, "t"), "hi"), "text");
		ASSERT_TRUE(pt_jr_streq(&j, pt_jr_get(&j, 0, "t_encoding"), "utf-8"),
			    "text says utf-8");
		ASSERT_TRUE(pt_jr_streq(&j, pt_jr_get(&j, 0, "b"), "/wBh"), "base64");
		ASSERT_TRUE(pt_jr_streq(&j, pt_jr_get(&j, 0, "b_encoding"), "base64"),
			    "binary says base64");
		pt_jr_free(&j);
	}
	free(buf);
}

static int count_files(const char *dir, const char *suffix)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name), k = strlen(suffix);

		n += l > k && !strcmp(e->d_name + l - k, suffix);
	}
	closedir(d);
	return n;
}

static void write_bytes(const char *path, size_t n)
{
	FILE *f = fopen(path, "w");
	char b[1024] = { 0 };

	while (f && n) {
		size_t k = n < sizeof(b) ? n : sizeof(b);

		fwrite(b, 1, k, f);
		n -= k;
	}
	if (f)
		fclose(f);
}

void test_spool(void)
{
	char dir[] = "/tmp/podtap-spool.XXXXXX", part[PATH_MAX], sess[PATH_MAX + 16];
	char cmd[PATH_MAX + 16], left[PATH_MAX + 32];
	struct pt_spool_cfg cfg = { .node = "node-a", .max_bytes = 2500 };
	struct pt_spool_stats st;
	struct pt_spool *sp;
	int i;

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	cfg.dir = dir;
	if (!ASSERT_OK(pt_spool_open(&sp, &cfg), "open"))
		return;
	snprintf(sess, sizeof(sess), "%s/ns1/sess1", dir);
	for (i = 0; i < 4; i++) {
		if (!ASSERT_OK(pt_spool_new_segment(sp, "ns1", "sess1", part,
						    sizeof(part)), "new segment"))
			break;
		ASSERT_TRUE(!strncmp(part, sess, strlen(sess)) &&
			    strstr(part, "/node-a-") &&
			    !strcmp(part + strlen(part) - 11, ".ptcap.part"),
			    part);
		write_bytes(part, 1000);
		ASSERT_OK(pt_spool_commit(sp, part), "commit");
		ASSERT_TRUE(access(part, F_OK) && errno == ENOENT,
			    "the .part is gone once closed");
	}
	/* 4 x 1000 bytes over a 2500 cap: the oldest two went */
	pt_spool_stats(sp, &st);
	ASSERT_EQ(st.dropped, 2, "two dropped to stay under --spool-max");
	ASSERT_EQ(st.segments, 2, "two left");
	ASSERT_EQ(st.bytes, 2000, "their bytes");
	ASSERT_EQ(count_files(sess, ".ptcap"), 2, "two on disk");
	ASSERT_EQ(pt_spool_commit(sp, "/tmp/not-a-part"), -EINVAL,
		  "only a .part is committed");
	pt_spool_close(sp);
	/* a segment an earlier run left open is closed when the spool opens */
	snprintf(left, sizeof(left), "%s/node-a-left-0001.ptcap.part", sess);
	write_bytes(left, 10);
	if (ASSERT_OK(pt_spool_open(&sp, &cfg), "open again")) {
		ASSERT_TRUE(access(left, F_OK) && count_files(sess, ".ptcap") >= 2,
			    "left-over .part closed");
		ASSERT_EQ(count_files(sess, ".part"), 0, "no .part left");
		pt_spool_close(sp);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ASSERT_OK(system(cmd), "cleanup");
}

/* A streamed format's output of the capture at path. */
struct stream_out {
	const struct pt_exporter *e;
	FILE *f;
	struct pt_export_counts *cnt;
	bool headed;
};

static int stream_one(void *ctx, const struct pt_capture *cap,
		      const struct pt_xconn *xc, struct pt_exchange *x)
{
	struct stream_out *so = ctx;

	if (!so->headed && so->e->head && so->e->head(cap, so->f))
		return -EIO;
	so->headed = true;
	return so->e->one(cap, so->f, xc, x, so->cnt);
}

static int stream_fmt(const struct pt_exporter *e, const char *path, FILE *f,
		      struct pt_export_counts *cnt)
{
	struct stream_out so = { .e = e, .f = f, .cnt = cnt };
	struct pt_xsink sink = { .ctx = &so, .x = stream_one };
	const char *paths[1] = { path };
	struct pt_capture cap;
	int err, e2;

	if (e->raw_begin)
		e->raw_begin(&sink, f, cnt);
	err = pt_capture_stream(&cap, paths, 1, &sink);
	if (e->raw_end && (e2 = e->raw_end(&sink, &cap, err != 0)) && !err)
		err = e2;
	if (!err && !so.headed && e->head)
		err = e->head(&cap, f);
	if (!err && e->tail)
		err = e->tail(&cap, f, cnt);
	pt_capture_free(&cap);
	return err;
}

/* ---- every exporter of the table on one capture ---- */

/* An inbound HTTP call, an outbound one, and an outbound raw turn. */
static int write_capture(const char *path)
{
	static const char q[] = "GET /items?id=7 HTTP/1.1\r\nHost: svc\r\n\r\n";
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				"Content-Length: 9\r\n\r\n{\"id\": 7}";
	static const char oq[] = "POST /db HTTP/1.1\r\nHost: db\r\nContent-Length: 2\r\n\r\nhi";
	static const char orr[] = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
	struct pt_capw *w;
	int err = pt_capw_open(&w, path, "test-host");

	if (err)
		return err;
	add_open(w, 1, PT_ROLE_SERVER, 8080, 40000);
	add_data(w, 1, PT_DIR_RX, 0, q, 1100);
	add_data(w, 1, PT_DIR_TX, 0, r, 1200);
	add_open(w, 2, PT_ROLE_CLIENT, 40001, 5432);
	add_data(w, 2, PT_DIR_TX, 0, oq, 2100);
	add_data(w, 2, PT_DIR_RX, 0, orr, 2200);
	add_open(w, 3, PT_ROLE_CLIENT, 40002, 6379);
	add_data(w, 3, PT_DIR_TX, 0, "PING\r\n", 3100);
	add_data(w, 3, PT_DIR_RX, 0, "+PONG\r\n", 3200);
	return pt_capw_close(w);
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long len;

	*n = 0;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = calloc(1, len + 1);
	*n = fread(buf, 1, len, f);
	fclose(f);
	return buf;
}

static void check_jsonl(const char *out, size_t n)
{
	const char *line = out, *nl;
	int lines = 0, http = 0;

	while ((nl = memchr(line, '\n', out + n - line))) {
		struct pt_jr j;

		if (ASSERT_OK(pt_jr_parse(&j, line, nl - line), "jsonl line parses")) {
			http += pt_jr_get(&j, 0, "request") >= 0;
			pt_jr_free(&j);
		}
		lines++;
		line = nl + 1;
	}
	ASSERT_EQ(lines, 3, "jsonl: one line per exchange");
	ASSERT_EQ(http, 2, "jsonl: two of them HTTP");
	ASSERT_TRUE(strstr(out, "/items?id=7") && strstr(out, "PING"),
		    "jsonl: the bytes");
}

static void check_har(const char *out, size_t n)
{
	struct pt_jr j;
	int e;

	if (!ASSERT_OK(pt_jr_parse(&j, out, n), "har parses"))
		return;
	e = pt_jr_path(&j, 0, "log.entries");
	ASSERT_EQ(e >= 0 ? pt_jr_size(&j, e) : -1, 2, "har: the two HTTP exchanges");
	ASSERT_TRUE(pt_jr_streq(&j, pt_jr_path(&j, 0, "log.version"), "1.2"),
		    "har 1.2");
	pt_jr_free(&j);
	ASSERT_TRUE(strstr(out, "\"status\":201") != NULL, "har: the outbound status");
}

/* pcapng: a Section Header first, then whole blocks to the end. */
static void check_pcapng(const uint8_t *p, size_t n)
{
	size_t off = 0, blocks = 0, packets = 0;

	ASSERT_TRUE(n >= 28 && p[0] == 0x0a && p[1] == 0x0d && p[2] == 0x0d &&
		    p[3] == 0x0a, "pcapng: section header block first");
	while (off + 12 <= n) {
		uint32_t type, len, len2;

		memcpy(&type, p + off, 4);
		memcpy(&len, p + off + 4, 4);
		if (len < 12 || len % 4 || off + len > n)
			break;
		memcpy(&len2, p + off + len - 4, 4);
		if (len2 != len)
			break;
		packets += type == 6;	/* Enhanced Packet Block */
		blocks++;
		off += len;
	}
	ASSERT_EQ(off, n, "pcapng: whole blocks to the end");
	/* handshakes, data and closes for three connections */
	ASSERT_TRUE(packets >= 3 * 4, "pcapng: packets for every connection");
	ASSERT_TRUE(blocks > packets, "pcapng: interface and comment blocks too");
}

static void check_keploy(const char *dir)
{
	char p[PATH_MAX + 64], *y;
	size_t n;

	snprintf(p, sizeof(p), "%s/keploy/test-set-0/tests", dir);
	ASSERT_EQ(count_files(p, ".yaml"), 1, "keploy: one test (the inbound call)");
	snprintf(p, sizeof(p), "%s/keploy/test-set-0/tests/test-1.yaml", dir);
	y = slurp(p, &n);
	ASSERT_TRUE(y && strstr(y, "kind: Http") && strstr(y, "/items?id=7") &&
		    strstr(y, "status_code: 200"), "keploy: the test");
	ASSERT_TRUE(y && strstr(y, "url_params:") && strstr(y, "id: \"7\""),
		    "keploy: the query as url_params");
	free(y);
	snprintf(p, sizeof(p), "%s/keploy/test-set-0/mocks.yaml", dir);
	y = slurp(p, &n);
	ASSERT_TRUE(y && strstr(y, "/db") && strstr(y, "kind: Generic"),
		    "keploy: the outbound calls as mocks, HTTP and raw");
	free(y);
}

void test_exporters(void)
{
	char dir[] = "/tmp/podtap-exp.XXXXXX", cap_path[PATH_MAX], out[PATH_MAX];
	char cmd[PATH_MAX + 16];
	size_t i, seen = 0;

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	snprintf(cap_path, sizeof(cap_path), "%s/c.ptcap", dir);
	if (!ASSERT_OK(write_capture(cap_path), "capture written"))
		return;
	for (i = 0; pt_exporters[i]; i++) {
		const struct pt_exporter *e = pt_exporters[i];
		struct pt_export_counts cnt = {};
		char *buf = NULL;
		size_t len = 0;
		int err;

		ASSERT_TRUE(e->name && e->help && e->item && e->items &&
			    !!e->dir_open + !!e->one + !!e->raw_begin == 1 &&
			    !e->raw_begin == !e->raw_end &&
			    !e->dir_open == !e->dir_one &&
			    !e->dir_open == !e->dir_close, e->name);
		if (e->dir_open) {
			snprintf(out, sizeof(out), "%s/%s", dir, e->name);
			mkdir(out, 0700);
			err = export_dir(e, cap_path, out, &cnt);
		} else {
			CAPTURE_OUT(buf, len, err = stream_fmt(e, cap_path, ___f, &cnt));
		}
		if (!ASSERT_OK(err, e->name)) {
			free(buf);
			continue;
		}
		if (!strcmp(e->name, "jsonl")) {
			check_jsonl(buf, len);
			ASSERT_EQ(cnt.items, 3, "jsonl counts");
		} else if (!strcmp(e->name, "har")) {
			check_har(buf, len);
			ASSERT_EQ(cnt.items, 2, "har counts");
		} else if (!strcmp(e->name, "pcapng")) {
			check_pcapng((const uint8_t *)buf, len);
			ASSERT_EQ(cnt.items, 3, "pcapng counts");
		} else if (!strcmp(e->name, "keploy")) {
			check_keploy(out);
			ASSERT_TRUE(cnt.tests == 1 && cnt.mocks == 2, "keploy counts");
		} else {
			ASSERT_TRUE(false, "an exporter this test does not know: add it");
		}
		seen++;
		free(buf);
	}
	ASSERT_EQ(seen, 4, "every format of the table ran");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ASSERT_OK(system(cmd), "cleanup");
}

/* ---- TLS: plaintext beside the ciphertext, a pseudo-connection joined ---- */

static void add_tls(struct pt_capw *w, uint64_t id, int dir, uint64_t off,
		    const char *s, uint64_t ts)
{
	add_rec(w, PT_REC_TLS_DATA, id, dir, off, s, ts);
}

void test_tls_layers(void)
{
	static const char q[] = "GET /secret HTTP/1.1\r\nHost: svc\r\n\r\n";
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	static const char hello[] = "\x16\x03\x01\x01\x05hello";
	char dir[] = "/tmp/podtap-tls.XXXXXX", path[PATH_MAX], cmd[PATH_MAX + 16];
	const uint64_t pseudo = PT_PSEUDO_CONN | 77;
	const char *paths[1] = { path };
	struct pt_tls_assoc a = {};
	struct pt_capture cap;
	struct pt_capw *w;
	struct pt_xconn *xc;

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	snprintf(path, sizeof(path), "%s/t.ptcap", dir);
	if (!ASSERT_OK(pt_capw_open(&w, path, "h"), "open"))
		return;
	add_open(w, 5, PT_ROLE_SERVER, 8443, 40000);
	add_data(w, 5, PT_DIR_RX, 0, hello, 1000);
	/* the request read before the socket was known */
	add_tls(w, pseudo, PT_DIR_RX, 0, q, 1100);
	a.h.type = PT_REC_TLS_ASSOC;
	a.h.size = sizeof(a);
	a.h.ts_ns = 1150;
	a.h.conn_id = 5;
	a.pseudo_id = pseudo;
	pt_capw_add(w, &a.h, sizeof(a));
	add_tls(w, 5, PT_DIR_TX, 0, r, 1200);
	add_data(w, 5, PT_DIR_TX, 0, "\x17\x03\x03\x01\x02xx", 1201);
	ASSERT_OK(pt_capw_close(w), "close");
	if (!ASSERT_OK(pt_capture_load_many(&cap, paths, 1, true), "load"))
		return;
	if (ASSERT_EQ(cap.conns.n, 1, "the pseudo-connection joined its socket's")) {
		xc = &cap.xc[0];
		ASSERT_TRUE(cap.conns.v[0]->has_tls && !pt_conn_pseudo(cap.conns.v[0]),
			    "the connection has plaintext, socket known");
		ASSERT_TRUE(xc->tls && xc->proto == PT_XP_HTTP1, "exchanges from the plaintext");
		if (ASSERT_EQ(xc->nx, 1, "one exchange")) {
			ASSERT_TRUE(!strcmp(xc->x[0].req.target, "/secret") &&
				    xc->x[0].resp.status == 200 &&
				    xc->x[0].resp.body_len == 2, "request and response in clear");
			ASSERT_TRUE(!xc->x[0].incomplete, "complete");
		}
		ASSERT_EQ(pt_stream_end(cap.conns.v[0], PT_DIR_RX), sizeof(hello) - 1,
			  "the ciphertext is kept beside it");
	}
	pt_capture_free(&cap);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ASSERT_OK(system(cmd), "cleanup");
}

/* ---- --redact, and the credentials an export still holds ---- */

void test_redact(void)
{
	static const char q[] = "POST /login?token=abc&keep=1 HTTP/1.1\r\nHost: svc\r\n"
				"Authorization: Bearer s3cret\r\nContent-Type: application/json\r\n"
				"Content-Length: 52\r\n\r\n"
				"{\"user\":{\"name\":\"a\",\"password\":\"p\"},\"Token\":[1,2]}";
	static const char r[] = "HTTP/1.1 200 OK\r\nSet-Cookie: sid=42\r\n"
				"Content-Type: application/x-www-form-urlencoded\r\n"
				"Content-Length: 20\r\n\r\nsession=xyz&ttl=3600";
	char dir[] = "/tmp/podtap-redact.XXXXXX", path[PATH_MAX], names[128];
	char *red[] = { "password", "token", "authorization", "session" };
	struct pt_exchange *x;
	struct pt_capture cap;
	struct pt_creds c = {};

	if (!ASSERT_OK(load_server_pair(dir, path, sizeof(path), q, sizeof(q) - 1,
					r, sizeof(r) - 1, &cap), "a capture"))
		return;
	x = &cap.xc[0].x[0];
	pt_creds_add(&c, x);
	ASSERT_EQ(pt_creds_names(&c, names, sizeof(names)), 1, "one exchange with credentials");
	ASSERT_STREQ(names, "Authorization, Set-Cookie", "which");
	ASSERT_EQ(pt_redact_x(x, red, ARRAY_SIZE(red)), 5,
		  "header, query, two JSON fields, one form field replaced");
	ASSERT_STREQ(x->req.target, "/login?token=[REDACTED]&keep=1", "the query");
	ASSERT_STREQ(pt_http_field(&x->req, "Authorization"), "[REDACTED]", "the header");
	ASSERT_BYTES_EQ(x->req.body, x->req.body_len,
			"{\"user\":{\"name\":\"a\",\"password\":\"[REDACTED]\"},\"Token\":\"[REDACTED]\"}",
			66, "JSON fields at any depth, a whole array");
	ASSERT_STREQ(pt_http_field(&x->req, "Content-Length"), "66", "its length");
	ASSERT_BYTES_EQ(x->resp.body, x->resp.body_len, "session=[REDACTED]&ttl=3600", 27,
			"a form field");
	memset(&c, 0, sizeof(c));
	pt_creds_add(&c, x);
	ASSERT_EQ(pt_creds_names(&c, names, sizeof(names)), 1, "Set-Cookie is still there");
	ASSERT_STREQ(names, "Set-Cookie", "named");
	ASSERT_EQ(pt_redact_x(x, red, ARRAY_SIZE(red)), 0, "a second pass changes nothing");
	pt_capture_free(&cap);
	unlink(path);
	rmdir(dir);
}

/* A server that speaks first: no Generic mock Keploy could serve. */
void test_keploy_server_first(void)
{
	char dir[] = "/tmp/podtap-greet.XXXXXX", path[PATH_MAX], out[PATH_MAX];
	struct pt_export_counts cnt = {};
	struct pt_capw *w;

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	snprintf(path, sizeof(path), "%s/c.ptcap", dir);
	if (!ASSERT_OK(pt_capw_open(&w, path, "test-host"), "open"))
		return;
	add_open(w, 1, PT_ROLE_CLIENT, 40000, 25);
	add_data(w, 1, PT_DIR_RX, 0, "220 mail ready\r\n", 1100);
	add_data(w, 1, PT_DIR_TX, 0, "QUIT\r\n", 1200);
	add_data(w, 1, PT_DIR_RX, 16, "221 bye\r\n", 1300);
	add_open(w, 2, PT_ROLE_CLIENT, 40001, 6379);
	add_data(w, 2, PT_DIR_TX, 0, "PING\r\n", 2100);
	add_data(w, 2, PT_DIR_RX, 0, "+PONG\r\n", 2200);
	if (!ASSERT_OK(pt_capw_close(w), "written"))
		return;
	snprintf(out, sizeof(out), "%s/out", dir);
	mkdir(out, 0700);
	ASSERT_OK(export_dir(&pt_exporter_keploy, path, out, &cnt), "exported");
	ASSERT_EQ(cnt.mocks, 1, "only the client-first connection is a mock");
	ASSERT_EQ(cnt.server_first, 1, "the greeting's connection is counted");
	snprintf(out, sizeof(out), "rm -rf %s", dir);
	ASSERT_OK(system(out), "cleanup");
}

/* The HAR of one inbound exchange, q then r (malloc'd, or NULL). */
static char *har_of(const char *q, size_t qn, const char *r, size_t rn,
		    const char *name)
{
	char dir[64], path[PATH_MAX], *buf = NULL;
	struct pt_export_counts cnt = {};
	struct pt_capture cap;
	size_t len = 0;

	snprintf(dir, sizeof(dir), "/tmp/podtap-%s.XXXXXX", name);
	if (!ASSERT_OK(load_server_pair(dir, path, sizeof(path), q, qn, r, rn,
					&cap), "a capture"))
		return NULL;
	pt_capture_free(&cap);
	CAPTURE_OUT(buf, len, stream_fmt(&pt_exporter_har, path, ___f, &cnt));
	unlink(path);
	rmdir(dir);
	return buf;
}

/* HAR: cookies both ways, a form's params, bodySize as on the wire. */
void test_har_fields(void)
{
	static const char q[] = "POST /f HTTP/1.1\r\nHost: svc\r\nCookie: a=1; b=2\r\n"
				"Content-Type: application/x-www-form-urlencoded\r\n"
				"Content-Length: 17\r\n\r\nx=1&y=hello+world";
	static const char r[] = "HTTP/1.1 200 OK\r\nSet-Cookie: sid=42; Path=/; HttpOnly\r\n"
				"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
	char *buf = har_of(q, sizeof(q) - 1, r, sizeof(r) - 1, "har");

	ASSERT_TRUE(buf && strstr(buf, "\"cookies\":[{\"name\":\"a\",\"value\":\"1\"},{\"name\":\"b\",\"value\":\"2\"}]"),
		    "request cookies");
	ASSERT_TRUE(buf && strstr(buf, "\"cookies\":[{\"name\":\"sid\",\"value\":\"42\",\"path\":\"/\",\"httpOnly\":true}]"),
		    "response cookies");
	ASSERT_TRUE(buf && strstr(buf, "\"params\":[{\"name\":\"x\",\"value\":\"1\"},{\"name\":\"y\",\"value\":\"hello world\"}]"),
		    "form params, decoded");
	ASSERT_TRUE(buf && strstr(buf, "\"content\":{\"size\":5,\"mimeType\""),
		    "content: 5 bytes, no coding");
	ASSERT_TRUE(buf && strstr(buf, "\"bodySize\":15}"), "bodySize: the chunked bytes");
	free(buf);
}

/* A binary request body: base64 with postData.encoding, as content has. */
void test_har_binary_post(void)
{
	static const char q[] = "POST /up HTTP/1.1\r\nHost: svc\r\n"
				"Content-Type: application/octet-stream\r\n"
				"Content-Length: 4\r\n\r\n\xff\x00\xfe\x01";
	static const char r[] = "HTTP/1.1 204 No Content\r\n\r\n";
	char *buf = har_of(q, sizeof(q) - 1, r, sizeof(r) - 1, "harbin");

	ASSERT_TRUE(buf && strstr(buf, "\"postData\":{\"mimeType\":\"application/octet-stream\",\"text\":\"/wD+AQ==\",\"encoding\":\"base64\",\"comment\":"),
		    "the body as base64, said by encoding");
	ASSERT_TRUE(buf && !strstr(buf, "_encoding"), "no private field");
	free(buf);
}

static void add_tls_proc_at(struct pt_capw *w, uint32_t tgid, int hook,
			    const char *path, uint64_t ts)
{
	struct pt_tls_proc_rec r = {};

	r.h.type = PT_REC_TLS_PROC;
	r.h.size = sizeof(r);
	r.h.ts_ns = ts;
	r.tgid = tgid;
	r.session_id = 1;
	r.lib = PT_TLS_LIB_SHARED;
	r.hook = hook;
	if (path)
		snprintf(r.path, sizeof(r.path), "%s", path);
	else	/* no NUL anywhere: a reader must not run past it */
		memset(r.path, 'x', sizeof(r.path));
	memset(r.comm, 'c', sizeof(r.comm));
	memset(r.version, 'v', sizeof(r.version));
	memset(r.why, 'w', sizeof(r.why));
	pt_capw_add(w, &r.h, sizeof(r));
}

static void add_tls_proc(struct pt_capw *w, uint32_t tgid, int hook,
			 const char *path)
{
	add_tls_proc_at(w, tgid, hook, path, 500);
}

/*
 * TLS_PROC records: each (process, session, library) once however many
 * segments repeat it, the hooked one given for a process, strings cut to
 * their fields.
 */
void test_tls_procs(void)
{
	char dir[] = "/tmp/podtap-tlsproc.XXXXXX", path[PATH_MAX];
	const char *paths[1] = { path };
	const struct pt_tls_proc_rec *p;
	struct pt_capture cap;
	struct pt_capw *w;

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "temporary directory"))
		return;
	snprintf(path, sizeof(path), "%s/c.ptcap", dir);
	if (!ASSERT_OK(pt_capw_open(&w, path, "test-host"), "open"))
		goto out;
	add_tls_proc(w, 42, PT_TLS_NOT_HOOKED, "/app/static-ssl");
	add_tls_proc(w, 42, PT_TLS_HOOKED, "/lib/libssl.so.3");
	add_tls_proc(w, 42, PT_TLS_HOOKED, "/lib/libssl.so.3");
	add_tls_proc(w, 43, PT_TLS_HOOKED, NULL);
	add_tls_proc(w, 43, PT_TLS_HOOKED, NULL);
	/* pid 44 runs exec: another library from 2000 on */
	add_tls_proc_at(w, 44, PT_TLS_HOOKED, "/old/libssl.so.3", 500);
	add_tls_proc_at(w, 44, PT_TLS_HOOKED, "/new/libssl.so.3", 2000);
	add_open(w, 1, PT_ROLE_SERVER, 8080, 40000);
	if (!ASSERT_OK(pt_capw_close(w), "close") ||
	    !ASSERT_OK(pt_capture_load_many(&cap, paths, 1, false), "load"))
		goto out;
	ASSERT_EQ(cap.conns.ntls_procs, 5, "each (process, library) once");
	p = pt_conns_tls_proc(&cap.conns, 42, 1000);
	if (ASSERT_PTR(p, "pid 42's"))
		ASSERT_STREQ(p->path, "/lib/libssl.so.3", "the hooked one");
	p = pt_conns_tls_proc(&cap.conns, 43, 1000);
	if (ASSERT_PTR(p, "pid 43's")) {
		ASSERT_EQ(strlen(p->path), sizeof(p->path) - 1, "path cut to its field");
		ASSERT_EQ(strlen(p->comm), sizeof(p->comm) - 1, "comm cut to its field");
		ASSERT_EQ(strlen(p->why), sizeof(p->why) - 1, "why cut to its field");
	}
	ASSERT_TRUE(!pt_conns_tls_proc(&cap.conns, 99, 1000), "none for pid 99");
	p = pt_conns_tls_proc(&cap.conns, 44, 1000);
	ASSERT_TRUE(p && !strcmp(p->path, "/old/libssl.so.3"), "before its exec");
	p = pt_conns_tls_proc(&cap.conns, 44, 3000);
	ASSERT_TRUE(p && !strcmp(p->path, "/new/libssl.so.3"), "after its exec");
	p = pt_conns_tls_proc(&cap.conns, 44, 100);
	ASSERT_TRUE(p && !strcmp(p->path, "/old/libssl.so.3"),
		    "before anything was said: the first said");
	pt_capture_free(&cap);
out:
	unlink(path);
	rmdir(dir);
}

/* ---- read as a stream: what reading it whole gives, in bounded memory ---- */

#define MS	1000000ull

static void add_loss_rec(struct pt_capw *w, uint64_t id, int dir, uint64_t off,
			 uint64_t len, uint64_t ts)
{
	struct pt_loss l = {};

	l.h.type = PT_REC_LOSS;
	l.h.size = sizeof(l);
	l.h.ts_ns = ts;
	l.h.conn_id = id;
	l.offset = off;
	l.len = l.lost_bytes = len;
	l.dir = dir;
	l.reason = PT_LOSS_RINGBUF_FULL;
	pt_capw_add(w, &l.h, sizeof(l));
}

static void add_close_rec(struct pt_capw *w, uint64_t id, uint64_t rx,
			  uint64_t tx, uint64_t ts)
{
	struct pt_conn_close c = {};

	c.h.type = PT_REC_CONN_CLOSE;
	c.h.size = sizeof(c);
	c.h.ts_ns = ts;
	c.h.conn_id = id;
	c.bytes[PT_DIR_RX] = rx;
	c.bytes[PT_DIR_TX] = tx;
	pt_capw_add(w, &c.h, sizeof(c));
}

/*
 * ncalls / 100 seconds of records, interleaved as a recorder writes them: a
 * keep-alive server connection (1) answering a call every 10 ms; a client
 * (2) speaking a raw protocol every 100 ms; client connections (10 + k)
 * of a few calls each that close, one with a request's bytes lost
 * (LOSS); with slow, a call (3) at 0.5 s answered only at 9.5 s.
 * Every record has a time of its own.
 */
static int write_busy(const char *path, int ncalls, bool slow,
		      uint64_t *payload)
{
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
	uint64_t off[64][2] = {}, t;
	struct pt_capw *w;
	char q[96];
	int i, k, err = pt_capw_open(&w, path, "test-host");

	if (err)
		return err;
	*payload = 0;
#define DATA(id, slot, dir, str, ts) do {				\
	add_data(w, id, dir, off[slot][dir], str, ts);			\
	off[slot][dir] += strlen(str);					\
	*payload += strlen(str);					\
} while (0)
	add_open(w, 1, PT_ROLE_SERVER, 8080, 40000);
	add_open(w, 2, PT_ROLE_CLIENT, 40001, 6379);
	if (slow) {
		add_open(w, 3, PT_ROLE_CLIENT, 40002, 9000);
		DATA(3, 3, PT_DIR_TX, "GET /poll HTTP/1.1\r\nHost: slow\r\n\r\n",
		     500 * MS + 7);
	}
	for (i = 0; i < ncalls; i++) {
		t = (uint64_t)i * 10 * MS + 10;
		snprintf(q, sizeof(q), "GET /item/%d HTTP/1.1\r\nHost: svc\r\n\r\n", i);
		DATA(1, 1, PT_DIR_RX, q, t);
		DATA(1, 1, PT_DIR_TX, r, t + 1 * MS);
		if (i % 10 == 0) {
			DATA(2, 2, PT_DIR_TX, "PING\r\n", t + 2 * MS);
			DATA(2, 2, PT_DIR_RX, "+PONG\r\n", t + 3 * MS);
		}
		if (i % 100 == 50) {
			uint64_t id = 10 + i / 100;
			int slot = 4 + i / 100;

			add_open_at(w, id, PT_ROLE_CLIENT, 41000 + i, 80,
				    t + 4 * MS - 10);
			for (k = 0; k < 3; k++) {
				snprintf(q, sizeof(q), "GET /c/%d HTTP/1.1\r\nHost: up\r\n\r\n", k);
				if (i == 550 && k == 1) {
					/* its bytes lost in the ring */
					add_loss_rec(w, id, PT_DIR_TX,
						     off[slot][PT_DIR_TX],
						     strlen(q), t + 4 * MS + k);
					off[slot][PT_DIR_TX] += strlen(q);
				} else {
					DATA(id, slot, PT_DIR_TX, q, t + 4 * MS + 3 * k);
				}
				DATA(id, slot, PT_DIR_RX, r, t + 5 * MS + 3 * k);
			}
			add_close_rec(w, id, off[slot][PT_DIR_RX],
				      off[slot][PT_DIR_TX], t + 9 * MS);
		}
	}
	if (slow)
		DATA(3, 3, PT_DIR_RX, r, (uint64_t)ncalls * 10 * MS - 500 * MS + 3);
#undef DATA
	return pt_capw_close(w);
}

/* jsonl of the capture read whole, as export wrote it before streaming. */
static char *jsonl_whole(const char *path)
{
	const char *paths[1] = { path };
	struct pt_capture cap;
	struct pt_xref *v;
	char *buf = NULL;
	size_t len = 0, i, n;

	if (pt_capture_load_many(&cap, paths, 1, true))
		return NULL;
	v = pt_x_sorted(&cap, &n);
	CAPTURE_OUT(buf, len, for (i = 0; i < n; i++) {
		pt_x_json(___f, &cap, v[i].xc, v[i].x, true);
		fputc('\n', ___f);
	});
	free(v);
	pt_capture_free(&cap);
	return buf;
}

struct held_sink {
	FILE *f;
	size_t n;
	uint64_t last_ts;
	bool ordered;
};

static int held_one(void *ctx, const struct pt_capture *cap,
		    const struct pt_xconn *xc, struct pt_exchange *x)
{
	struct held_sink *hs = ctx;

	if (pt_x_start(x) < hs->last_ts)
		hs->ordered = false;
	hs->last_ts = pt_x_start(x);
	hs->n++;
	pt_x_json(hs->f, cap, xc, x, true);
	fputc('\n', hs->f);
	return 0;
}

/* Stream path; its jsonl, how many exchanges, and what cap said. */
static char *jsonl_streamed(const char *path, struct held_sink *hs,
			    struct pt_capture *info)
{
	const struct pt_xsink sink = { .ctx = hs, .x = held_one };
	const char *paths[1] = { path };
	struct pt_capture cap;
	char *buf = NULL;
	size_t len = 0;
	int err;

	memset(hs, 0, sizeof(*hs));
	hs->ordered = true;
	CAPTURE_OUT(buf, len, (hs->f = ___f,
			       err = pt_capture_stream(&cap, paths, 1, &sink)));
	*info = cap;
	pt_capture_free(&cap);
	if (err) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* pcapng of the capture at path, read as a stream; what cap said. */
static char *pcapng_streamed(const char *path, size_t *len,
			     struct pt_capture *info,
			     struct pt_export_counts *cnt)
{
	struct pt_xsink sink = {};
	const char *paths[1] = { path };
	struct pt_capture cap;
	char *buf = NULL;
	int err, e2;

	memset(cnt, 0, sizeof(*cnt));
	CAPTURE_OUT(buf, *len, (pt_exporter_pcapng.raw_begin(&sink, ___f, cnt),
				err = pt_capture_stream(&cap, paths, 1, &sink),
				e2 = pt_exporter_pcapng.raw_end(&sink, &cap, err)));
	*info = cap;
	pt_capture_free(&cap);
	if (err || e2) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Its packets: how many, their payload, whether in order of time. */
static size_t pcapng_walk(const uint8_t *p, size_t n, uint64_t *payload,
			  bool *ordered)
{
	uint64_t last = 0;
	size_t off = 0, packets = 0;

	*payload = 0;
	*ordered = true;
	while (off + 12 <= n) {
		uint32_t type, len, hdr[5];

		memcpy(&type, p + off, 4);
		memcpy(&len, p + off + 4, 4);
		if (len < 12 || off + len > n)
			break;
		if (type == 6 && len >= 8 + sizeof(hdr)) {
			uint64_t ts;

			memcpy(hdr, p + off + 8, sizeof(hdr));
			ts = (uint64_t)hdr[1] << 32 | hdr[2];
			*ordered &= ts >= last;
			last = ts;
			/* Ethernet, IPv4, TCP: 54 bytes of headers */
			*payload += hdr[3] - 54;
			packets++;
		}
		off += len;
	}
	return off == n ? packets : 0;
}

/* pcapng of a write_busy capture of ncalls: the same file however often
 * it is cut, every packet, in order of time; the most it held. */
static uint64_t check_pcapng_streamed(const char *path, int ncalls,
				      uint64_t payload)
{
	uint64_t step = pt_stream_step, got, peak;
	size_t every = pt_stream_every, len[2], packets;
	struct pt_export_counts cnt;
	struct pt_capture info;
	char *often, *seldom;
	bool ordered;

	seldom = pcapng_streamed(path, &len[0], &info, &cnt);
	ASSERT_EQ(cnt.items, 2 + ncalls / 100, "pcapng: every connection");
	/* cut as often as it can: every 16 records, at 256 bytes */
	pt_stream_step = 256;
	pt_stream_every = 16;
	often = pcapng_streamed(path, &len[1], &info, &cnt);
	pt_stream_step = step;
	pt_stream_every = every;
	peak = info.peak_held;
	if (ASSERT_TRUE(seldom && often, "pcapng: both written")) {
		ASSERT_TRUE(len[0] == len[1] && !memcmp(seldom, often, len[0]),
			    "pcapng: the same packets however often it is cut");
		packets = pcapng_walk((const uint8_t *)often, len[1], &got,
				      &ordered);
		/* 1: a handshake and 2 segments a call; 2: a handshake and
		 * 2 segments every 10th; the closing ones: a handshake, 6
		 * segments and 2 FINs, one segment lost in one of them */
		ASSERT_EQ(packets, 3 + 2 * ncalls + 3 + 2 * (ncalls / 10) +
			  11 * (ncalls / 100) - 1, "pcapng: every packet");
		ASSERT_EQ(got, payload, "pcapng: every byte captured, once");
		ASSERT_TRUE(ordered && !info.cut_short,
			    "pcapng: in order of time");
	}
	free(seldom);
	free(often);
	return peak;
}

void test_stream_same_as_whole(void)
{
	char dir[] = "/tmp/podtap-stream.XXXXXX", path[PATH_MAX];
	uint64_t step = pt_stream_step, payload, peak[2], raw_peak[2];
	size_t every = pt_stream_every;
	struct held_sink hs;
	struct pt_capture info;
	char *whole, *streamed;
	int k;

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	snprintf(path, sizeof(path), "%s/c.ptcap", dir);
	for (k = 0; k < 2; k++) {
		/* 10 s, then 30 s of the same */
		if (!ASSERT_OK(write_busy(path, 1000 + 2000 * k, false, &payload),
			       "capture written"))
			break;
		whole = jsonl_whole(path);
		/* cut often: every 16 records, once 256 bytes are held */
		pt_stream_step = 256;
		pt_stream_every = 16;
		streamed = jsonl_streamed(path, &hs, &info);
		pt_stream_step = step;
		pt_stream_every = every;
		ASSERT_TRUE(whole && streamed && strlen(whole) > 100000, "both read");
		ASSERT_TRUE(whole && streamed && !strcmp(whole, streamed),
			    "the same exchanges, in the same order, as read whole");
		ASSERT_EQ(hs.n, (1000 + 2000 * k) * 113 / 100, "every exchange");
		ASSERT_TRUE(hs.ordered && !info.out_of_order, "in order by start");
		ASSERT_TRUE(streamed && strstr(streamed, "\"target\":\"/c/2\"") &&
			    strstr(streamed, "\"target\":\"/item/999\""),
			    "the last calls are there");
		ASSERT_EQ(info.cut_short, 0, "nothing cut short");
		peak[k] = info.peak_held;
		raw_peak[k] = check_pcapng_streamed(path, 1000 + 2000 * k,
						    payload);
		free(whole);
		free(streamed);
		if (k)
			break;
		/* the default steps, which cut these only as they close */
		whole = jsonl_whole(path);
		streamed = jsonl_streamed(path, &hs, &info);
		ASSERT_TRUE(whole && streamed && !strcmp(whole, streamed),
			    "the same with the default steps");
		free(whole);
		free(streamed);
	}
	/* held: what a second of records brings, whatever the length */
	ASSERT_TRUE(peak[0] > 0 && peak[1] < peak[0] + peak[0] / 4,
		    "memory does not grow with the capture");
	ASSERT_TRUE(raw_peak[0] > 0 && raw_peak[1] < raw_peak[0] + raw_peak[0] / 4,
		    "pcapng: memory does not grow with the capture");
	unlink(path);
	rmdir(dir);
}

void test_stream_held_max(void)
{
	char dir[] = "/tmp/podtap-held.XXXXXX", path[PATH_MAX];
	uint64_t step = pt_stream_step, max = pt_held_max, payload, free_peak;
	size_t every = pt_stream_every;
	struct held_sink hs;
	struct pt_capture info;
	char *streamed;

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	snprintf(path, sizeof(path), "%s/c.ptcap", dir);
	if (!ASSERT_OK(write_busy(path, 1000, true, &payload), "capture written"))
		return;
	pt_stream_step = 256;
	pt_stream_every = 16;
	/* the slow call holds 9 s of exchanges behind it */
	streamed = jsonl_streamed(path, &hs, &info);
	free_peak = info.peak_held;
	ASSERT_TRUE(streamed && !info.cut_short && hs.ordered &&
		    strstr(streamed, "\"target\":\"/poll\""),
		    "unbounded: the slow call is whole");
	free(streamed);
	pt_held_max = free_peak / 4;
	streamed = jsonl_streamed(path, &hs, &info);
	pt_stream_step = step;
	pt_stream_every = every;
	pt_held_max = max;
	ASSERT_TRUE(streamed != NULL, "read");
	ASSERT_EQ(info.cut_short, 1, "the call holding the rest up was cut short");
	ASSERT_TRUE(streamed && strstr(streamed, "\"target\":\"/poll\"") &&
		    strstr(streamed, "cut short: more than --max-held"),
		    "and says so");
	ASSERT_TRUE(hs.ordered && !info.out_of_order, "still in order by start");
	ASSERT_TRUE(info.peak_held < free_peak / 2, "held less");
	ASSERT_EQ(hs.n, 1000 * 113 / 100 + 2, "every exchange, the answer too");
	free(streamed);
	unlink(path);
	rmdir(dir);
}

/* A LOSS of 256 MiB takes no memory: with --max-held 64 MiB nothing is
 * cut, so the hole of an older connection, filled late (another CPU's
 * record), is still filled. */
void test_stream_loss_not_held(void)
{
	static const char q[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	char dir[] = "/tmp/podtap-lossheld.XXXXXX", path[PATH_MAX], hole[101];
	uint64_t max = pt_held_max, got, payload;
	size_t every = pt_stream_every, len;
	struct pt_export_counts cnt;
	struct pt_capture info;
	struct pt_capw *w;
	bool ordered;
	char *out;

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	snprintf(path, sizeof(path), "%s/c.ptcap", dir);
	if (!ASSERT_OK(pt_capw_open(&w, path, "test-host"), "open"))
		return;
	memset(hole, 'h', 100);
	hole[100] = 0;
	add_open_at(w, 2, PT_ROLE_CLIENT, 40001, 6379, MS / 2);
	add_data(w, 2, PT_DIR_TX, 100, "PING\r\n", MS / 2 + 1);
	add_open_at(w, 1, PT_ROLE_SERVER, 8080, 40000, 1 * MS);
	add_data(w, 1, PT_DIR_RX, 0, q, 1 * MS + 1);
	add_loss_rec(w, 1, PT_DIR_RX, strlen(q), 256u << 20, 1 * MS + 2);
	add_data(w, 1, PT_DIR_RX, strlen(q) + (256u << 20), q, 2 * MS);
	add_data(w, 1, PT_DIR_TX, 0, r, 3 * MS);
	add_data(w, 1, PT_DIR_TX, strlen(r), r, 1200 * MS);
	/* the bytes before PING, from a CPU whose records came late */
	add_data(w, 2, PT_DIR_TX, 0, hole, 1500 * MS);
	payload = 2 * strlen(r) + 2 * strlen(q) + 6 + 100;
	if (!ASSERT_OK(pt_capw_close(w), "written"))
		return;
	pt_held_max = 64u << 20;
	pt_stream_every = 1;
	out = pcapng_streamed(path, &len, &info, &cnt);
	pt_held_max = max;
	pt_stream_every = every;
	if (ASSERT_TRUE(out != NULL, "written")) {
		ASSERT_EQ(info.cut_short, 0, "nothing cut short");
		ASSERT_TRUE(info.peak_held < (1u << 20), "the loss is not held");
		pcapng_walk((const uint8_t *)out, len, &got, &ordered);
		ASSERT_EQ(got, payload, "the late bytes are there");
		ASSERT_TRUE(ordered, "in order of time");
	}
	free(out);
	unlink(path);
	rmdir(dir);
}

/*
 * A request whose record is missing, with no LOSS record to say so (the
 * ring was full for that too): the bytes after it are known to be all
 * that will come once they have waited a second, so the connection is
 * not held from there to its end, and its exchanges come out as read
 * whole.
 */
void test_stream_unnamed_hole(void)
{
	char dir[] = "/tmp/podtap-hole.XXXXXX", path[PATH_MAX], q[64];
	char *r = malloc(4096 + 64), *whole, *streamed;
	uint64_t off[2] = {}, payload = 0, t;
	size_t every = pt_stream_every;
	struct held_sink hs;
	struct pt_capture info;
	struct pt_capw *w;
	int i, n;

	if (!ASSERT_TRUE(r && mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	n = snprintf(r, 64, "HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n");
	memset(r + n, 'b', 4000);
	r[n + 4000] = 0;
	snprintf(path, sizeof(path), "%s/c.ptcap", dir);
	if (!ASSERT_OK(pt_capw_open(&w, path, "test-host"), "open"))
		return;
	add_open(w, 1, PT_ROLE_SERVER, 8080, 40000);
	/* 2000 calls over 40 s; the records of the 10th request are not
	 * there, nor those of the 20th and the answer before it (so that
	 * the answer's place is not known, nor when the next request came) */
	for (i = 0; i < 2000; i++) {
		t = (uint64_t)i * 20 * MS + 10;
		snprintf(q, sizeof(q), "GET /item/%04d HTTP/1.1\r\nHost: a\r\n\r\n", i);
		if (i != 10 && i != 20)
			add_data(w, 1, PT_DIR_RX, off[0], q, t);
		if (i != 19)
			add_data(w, 1, PT_DIR_TX, off[1], r, t + MS);
		off[0] += strlen(q);
		off[1] += strlen(r);
		payload += strlen(q) + strlen(r);
	}
	if (!ASSERT_OK(pt_capw_close(w), "written"))
		return;
	whole = jsonl_whole(path);
	pt_stream_every = 16;
	streamed = jsonl_streamed(path, &hs, &info);
	pt_stream_every = every;
	ASSERT_TRUE(whole && streamed && !strcmp(whole, streamed),
		    "the same exchanges as read whole");
	ASSERT_TRUE(streamed && strstr(streamed, "\"target\":\"/item/1999\""),
		    "the last call is there");
	ASSERT_TRUE(info.peak_held < payload / 8,
		    "the connection is not held from the hole on");
	free(whole);
	free(streamed);
	free(r);
	unlink(path);
	rmdir(dir);
}
