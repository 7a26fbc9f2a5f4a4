// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Replay's comparison (what differs, what is noise), the mock's choice of
 * a recorded answer, and the mirror's reading of a record stream, on
 * inputs built here.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include "base/common.h"
#include "export/export.h"
#include "replay/diff.h"
#include "replay/keploy_in.h"
#include "replay/mirror.h"
#include "replay/mock.h"
#include "test_progs.h"
#include "capbuild.h"

void test_noisy_values(void)
{
	static const char *const noisy[] = {
		"2026-12-01T18:22:47.349718Z", "Tue, 01 Dec 2026 18:22:47 GMT",
		"844aeaba-4494-4395-94bb-8f9406e499f3", "req-844aeaba-4494-4395-94bb-8f9406e499f3",
		"1796149367", "1796149367349", "1796149367.25", "18:22:47",
		"2024-01-05", "2026-12-01 18:22:47+01:00", "Tuesday, 01-Dec-26 18:22:47 GMT",
		"Tue Dec  1 18:22:47 2026",
	};
	static const char *const plain[] = {
		"hello", "12345", "item-2", "1.5", "20", "9999999999999",
		"844aeaba-4494-4395-94bb", "2024-13", "", "order 2024-01-01 shipped",
		"build 10:20:30 ok",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(noisy); i++)
		ASSERT_TRUE(pt_noisy_value(noisy[i], strlen(noisy[i])), noisy[i]);
	for (i = 0; i < ARRAY_SIZE(plain); i++)
		ASSERT_FALSE(pt_noisy_value(plain[i], strlen(plain[i])), plain[i]);
}

void test_path_match(void)
{
	ASSERT_TRUE(pt_path_match("$.items[*].id", "$.items[3].id"), "[*] is any index");
	ASSERT_TRUE(pt_path_match("$.a", "$.a.b[2]"), "a path covers what is inside");
	ASSERT_TRUE(pt_path_match("$.*.ts", "$.x.ts"), "* is any key");
	ASSERT_FALSE(pt_path_match("$.a", "$.ab"), "a key is not a prefix of another");
	ASSERT_FALSE(pt_path_match("$.items[*].id", "$.items.id"), "[*] needs an index");
	ASSERT_FALSE(pt_path_match("$.a.b", "$.a"), "longer than the path");
	ASSERT_TRUE(pt_path_match("$.*.ts", "$[\"a b\"].ts"), "* is a key written in brackets too");
}

/* The differences of two JSON bodies, as "where=want>got;..." */
static char *diff_str(struct pt_noise *nz, const char *want, const char *got,
		      struct pt_diffs *d)
{
	struct pt_resp w = { 200, NULL, 0, (const uint8_t *)want, strlen(want) };
	struct pt_resp g = { 200, NULL, 0, (const uint8_t *)got, strlen(got) };
	char *s = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&s, &len);

	memset(d, 0, sizeof(*d));
	pt_resp_diff(nz, &w, &g, NULL, 0, d);
	for (i = 0; i < d->n; i++)
		fprintf(f, "%s=%s>%s;", d->v[i].where, d->v[i].want, d->v[i].got);
	fclose(f);
	return s;
}

void test_resp_diff(void)
{
	struct pt_noise nz = {};
	struct pt_diffs d;
	char *s;

	s = diff_str(&nz, "{\"a\":1,\"b\":[1,2],\"c\":\"x\"}",
		     "{ \"c\" : \"x\", \"b\" : [1, 2], \"a\" : 1.0 }", &d);
	ASSERT_STREQ(s, "", "the same JSON, spaced and ordered otherwise");
	free(s);
	pt_diffs_free(&d);

	s = diff_str(&nz, "{\"price\":20,\"tags\":[\"a\",\"b\"],\"gone\":true}",
		     "{\"price\":25,\"tags\":[\"a\"],\"new\":null}", &d);
	ASSERT_STREQ(s, "body $.price=20>25;body $.tags[1]=\"b\">(absent);"
		     "body $.gone=true>(absent);body $.new=(absent)>null;",
		     "changed, shortened, removed and added fields");
	free(s);
	pt_diffs_free(&d);

	s = diff_str(&nz, "{\"at\":\"2026-12-01T10:00:00Z\",\"id\":\"844aeaba-4494-4395-94bb-8f9406e499f3\",\"ms\":1796149367349}",
		     "{\"at\":\"2026-12-01T10:00:05Z\",\"id\":\"00000000-4494-4395-94bb-8f9406e499f3\",\"ms\":1796149367999}", &d);
	ASSERT_STREQ(s, "", "times, UUIDs and epochs are noise");
	ASSERT_EQ(d.noise_auto, 3, "counted as found");
	free(s);
	pt_diffs_free(&d);

	nz.no_auto = true;
	s = diff_str(&nz, "{\"at\":\"2026-12-01T10:00:00Z\"}", "{\"at\":\"2026-12-01T10:00:05Z\"}", &d);
	ASSERT_STREQ(s, "body $.at=\"2026-12-01T10:00:00Z\">\"2026-12-01T10:00:05Z\";",
		     "--no-auto-noise compares them");
	free(s);
	pt_diffs_free(&d);
	nz.no_auto = false;

	ASSERT_OK(pt_noise_add(&nz, "body.items[*].stock"), "a path rule");
	ASSERT_OK(pt_noise_add(&nz, "header.X-Build"), "a header rule");
	ASSERT_OK(pt_noise_add_regex(&nz, "build [0-9]+"), "a regex");
	ASSERT_TRUE(pt_noise_add(&nz, "cookie.x") == -EINVAL, "a rule of no kind");
	ASSERT_TRUE(pt_noise_add_regex(&nz, "x*") == -EINVAL, "a regex that matches nothing at all");
	s = diff_str(&nz, "{\"items\":[{\"id\":1,\"stock\":3},{\"id\":2,\"stock\":0}],\"v\":\"build 41\"}",
		     "{\"items\":[{\"id\":1,\"stock\":9},{\"id\":3,\"stock\":1}],\"v\":\"build 42\"}", &d);
	ASSERT_STREQ(s, "body $.items[1].id=2>3;", "rules take what they name only");
	ASSERT_EQ(d.noise_rule, 3, "counted as rules");
	free(s);
	pt_diffs_free(&d);

	s = diff_str(&nz, "{\"id\":9007199254740993,\"x\":1.0}", "{\"id\":9007199254740992,\"x\":1}", &d);
	ASSERT_STREQ(s, "body $.id=9007199254740993>9007199254740992;",
		     "integers by their digits, fractions by value");
	free(s);
	pt_diffs_free(&d);

	s = diff_str(&nz, "plain text one", "plain text two", &d);
	ASSERT_STREQ(s, "body=at byte 11: plain text one>at byte 11: plain text two;", "text: where it differs");
	free(s);
	pt_diffs_free(&d);

	{
		struct pt_http_field wf[] = { { "Content-Type", "application/json" },
					      { "Date", "Tue, 01 Dec 2026 18:22:47 GMT" },
					      { "X-Build", "7" }, { "Vary", "a" },
					      { "vary", "b" } };
		struct pt_http_field gf[] = { { "content-type", "text/html" },
					      { "Date", "Tue, 01 Dec 2026 19:00:00 GMT" },
					      { "X-Build", "8" }, { "Vary", "a, b" },
					      { "X-New", "1" } };
		struct pt_resp w = { 200, wf, ARRAY_SIZE(wf), NULL, 0 };
		struct pt_resp g = { 404, gf, ARRAY_SIZE(gf), NULL, 0 };

		memset(&d, 0, sizeof(d));
		pt_resp_diff(&nz, &w, &g, NULL, 0, &d);
		ASSERT_EQ(d.n, 3, "status, Content-Type, X-New");
		if (d.n == 3) {
			ASSERT_STREQ(d.v[0].where, "status", "status first");
			ASSERT_STREQ(d.v[1].where, "header Content-Type", "a changed field");
			ASSERT_STREQ(d.v[2].where, "header X-New", "a new field");
		}
		pt_diffs_free(&d);
		{
			char *learned[] = { "status", "header X-New" };

			memset(&d, 0, sizeof(d));
			pt_resp_diff(&nz, &w, &g, learned, 2, &d);
			ASSERT_EQ(d.n, 1, "what two runs disagreed on is noise");
			ASSERT_EQ(d.noise_learned, 2, "counted as learned");
			pt_diffs_free(&d);
		}
	}
	pt_noise_free(&nz);
}

/* Outbound calls of a target, to serve as mocks. */
static int write_mock_capture(const char *path)
{
	static const char *const q[] = {
		"GET /items/1 HTTP/1.1\r\nHost: up\r\n\r\n",
		"GET /items/1 HTTP/1.1\r\nHost: up\r\n\r\n",
		"GET /search?q=a+b&page=2 HTTP/1.1\r\nHost: up\r\n\r\n",
		"POST /orders HTTP/1.1\r\nHost: up\r\nContent-Length: 17\r\n\r\n{\"n\":1,\"who\":\"x\"}",
	};
	static const char *const r[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
		"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond",
		"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\npage 2!",
		"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
	};
	struct pt_capw *w;
	uint64_t qo = 0, ro = 0;
	size_t i;
	int err = pt_capw_open(&w, path, "test-host");

	if (err)
		return err;
	add_open(w, 1, PT_ROLE_CLIENT, 40000, 80);
	for (i = 0; i < ARRAY_SIZE(q); i++) {
		add_data(w, 1, PT_DIR_TX, qo, q[i], 2000 + 200 * i);
		add_data(w, 1, PT_DIR_RX, ro, r[i], 2100 + 200 * i);
		qo += strlen(q[i]);
		ro += strlen(r[i]);
	}
	return pt_capw_close(w);
}

static const char *served(struct pt_mocks *m, const char *method,
			  const char *path, const char *query,
			  const char *body, enum pt_match *how)
{
	struct pt_mreq r = { method, "mock:8080", path, NULL, 0,
			     (const uint8_t *)body, body ? strlen(body) : 0 };
	const struct pt_mock *mk;
	struct pt_http_msg resp;
	static char out[64];

	pt_query_parse(query, &r.q, &r.nq);
	mk = pt_mocks_match(m, &r, how, NULL);
	pt_query_free(r.q, r.nq);
	if (!mk)
		return "(none)";
	if (pt_mock_answer(m, mk, &resp, true))
		return "(not read back)";
	snprintf(out, sizeof(out), "%.*s", (int)resp.body_len,
		 (const char *)resp.body);
	pt_http_msg_free(&resp);
	return out;
}

static int add_x(void *ctx, const struct pt_capture *cap,
		 const struct pt_xconn *xc, struct pt_exchange *x)
{
	return pt_mocks_add(ctx, xc, x);
}

void test_mock_match(void)
{
	char dir[] = "/tmp/podtap-mock.XXXXXX", path[PATH_MAX];
	const char *paths[1] = { path };
	struct pt_capture cap;
	struct pt_mocks m;
	struct pt_xsink sink = { .ctx = &m, .x = add_x };
	enum pt_match how;

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	snprintf(path, sizeof(path), "%s/c.ptcap", dir);
	memset(&cap, 0, sizeof(cap));
	if (!ASSERT_OK(write_mock_capture(path), "capture written") ||
	    !ASSERT_OK(pt_mocks_begin(&m), "the answers' file made") ||
	    !ASSERT_OK(pt_capture_stream(&cap, paths, 1, &sink), "streamed"))
		return;
	pt_mocks_end(&m);
	ASSERT_EQ(m.n, 4, "four mocks");
	ASSERT_EQ(m.ngroups, 3, "the repeated request is one group");

	ASSERT_STREQ(served(&m, "GET", "/items/1", NULL, NULL, &how), "first", "in recorded order");
	ASSERT_EQ(how, PT_M_EXACT, "exact");
	ASSERT_STREQ(served(&m, "GET", "/items/1", NULL, NULL, &how), "second", "then the next");
	ASSERT_STREQ(served(&m, "GET", "/items/1", NULL, NULL, &how), "second", "then the last again");
	ASSERT_EQ(how, PT_M_REUSED, "counted as reused");

	ASSERT_STREQ(served(&m, "GET", "/search", "page=2&q=a%20b", NULL, &how), "page 2!",
		     "query keys in another order, encoded otherwise");
	ASSERT_EQ(how, PT_M_EXACT, "still exact");
	ASSERT_STREQ(served(&m, "GET", "/search", "q=zzz&page=2", NULL, &how), "page 2!",
		     "another value: the closest");
	ASSERT_EQ(how, PT_M_CLOSEST, "counted as closest");

	ASSERT_STREQ(served(&m, "POST", "/orders", NULL, "{ \"who\": \"x\", \"n\": 1 }", &how), "ok",
		     "a JSON body spaced and ordered otherwise");
	ASSERT_EQ(how, PT_M_EXACT, "exact");
	ASSERT_STREQ(served(&m, "GET", "/orders", NULL, NULL, &how), "(none)", "another method");
	ASSERT_EQ(how, PT_M_MISS, "a miss");
	ASSERT_STREQ(served(&m, "GET", "/nothing", NULL, NULL, &how), "(none)", "another path");
	ASSERT_TRUE(m.exact == 4 && m.reused == 1 && m.closest == 1 && m.missed == 2,
		    "what was served, counted");
	pt_mocks_free(&m);
	pt_capture_free(&cap);
	unlink(path);
	rmdir(dir);
}

/* ---- the mirror, fed records by hand, to a socket of the test's ---- */

static void feed_rec(struct pt_mirror *m, uint16_t type, uint16_t flags,
		     uint64_t id, int dir, uint64_t off, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	struct pt_data *d = calloc(1, sizeof(*d) + n + 8);

	d->h.type = type;
	d->h.flags = flags;
	d->h.size = sizeof(*d) + ((n + 7) & ~7u);
	d->h.conn_id = id;
	d->offset = off;
	d->len = d->cap_len = n;
	d->dir = dir;
	memcpy(d->payload, s ? s : "", n);
	pt_mirror_record(m, &d->h);
	free(d);
}

static void feed_open(struct pt_mirror *m, uint64_t id, int role, uint16_t flags)
{
	struct pt_conn_open o = { .h = { .type = PT_REC_CONN_OPEN, .flags = flags,
					 .size = sizeof(o), .conn_id = id },
				  .role = role };

	o.t.lport = 80;
	pt_mirror_record(m, &o.h);
}

static void feed_close(struct pt_mirror *m, uint64_t id)
{
	struct pt_conn_close c = { .h = { .type = PT_REC_CONN_CLOSE,
					  .size = sizeof(c), .conn_id = id } };

	pt_mirror_record(m, &c.h);
}

void test_mirror(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	char to[32];
	struct pt_mirror_opts o = { .to = to, .conn_buf = 1 << 20,
				    .total_buf = 4 << 20, .max_conns = 16,
				    .write_timeout_ns = 5000000000ULL };
	struct pt_loss l = { .h = { .type = PT_REC_LOSS, .size = sizeof(l),
				    .conn_id = 3 },
			     .offset = 3, .len = 10, .lost_bytes = 10 };
	struct pt_mirror_stats st;
	struct pt_mirror *m;
	int lfd, c, found = 0, before_gap = 0, conns = 0;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (!ASSERT_OK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), "bind") ||
	    !ASSERT_OK(listen(lfd, 16), "listen") ||
	    !ASSERT_OK(getsockname(lfd, (struct sockaddr *)&sa, &sl), "port"))
		return;
	snprintf(to, sizeof(to), "127.0.0.1:%u", ntohs(sa.sin_port));
	if (!ASSERT_OK(pt_mirror_start(&m, &o), "started"))
		return;
	/* a server connection whose records came out of order */
	feed_open(m, 1, PT_ROLE_SERVER, 0);
	feed_rec(m, PT_REC_DATA, 0, 1, PT_DIR_RX, 5, "world");
	feed_rec(m, PT_REC_DATA, 0, 1, PT_DIR_TX, 0, "the answer: not mirrored");
	feed_rec(m, PT_REC_DATA, 0, 1, PT_DIR_RX, 0, "hello");
	feed_rec(m, PT_REC_DATA, PT_F_FIN, 1, PT_DIR_RX, 10, "!");
	feed_close(m, 1);
	/* one older than the recording, one with a gap, one a client */
	feed_open(m, 2, PT_ROLE_SERVER, PT_F_PREEXISTING);
	feed_rec(m, PT_REC_DATA, 0, 2, PT_DIR_RX, 100, "mid-stream");
	feed_open(m, 3, PT_ROLE_SERVER, 0);
	feed_rec(m, PT_REC_DATA, 0, 3, PT_DIR_RX, 0, "abc");
	pt_mirror_record(m, &l.h);
	feed_rec(m, PT_REC_DATA, 0, 3, PT_DIR_RX, 13, "zzz");
	feed_close(m, 3);
	feed_open(m, 4, PT_ROLE_CLIENT, 0);
	feed_rec(m, PT_REC_DATA, 0, 4, PT_DIR_TX, 0, "outbound");
	pt_mirror_stop(m, 500000000ULL, &st);
	ASSERT_EQ(st.conns, 3, "inbound connections seen");
	ASSERT_EQ(st.older, 1, "the older one is not mirrored");
	ASSERT_EQ(st.cut_gap, 1, "the gap cut its connection");
	ASSERT_EQ(st.whole, 1, "one delivered whole");
	/* the accepted connections: the probe, then the mirrored ones */
	while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
		char buf[256];
		ssize_t n, got = 0;

		while ((n = read(c, buf + got, sizeof(buf) - 1 - got)) > 0)
			got += n;
		buf[got] = 0;
		found += !strcmp(buf, "hello world!") || !strcmp(buf, "helloworld!");
		before_gap += !strcmp(buf, "abc");
		conns++;
		close(c);
	}
	ASSERT_EQ(found, 1, "the client's bytes, in order, once");
	ASSERT_EQ(before_gap, 1, "what came before the gap, then the cut");
	ASSERT_LE(conns, 3, "no connection for the older one or the client");
	close(lfd);
}

/* A Keploy test set, written by the exporter, read back as a capture. */
void test_keploy_roundtrip(void)
{
	static const char q[] = "GET /bin?a=1&b=2 HTTP/1.1\r\nHost: svc:8080\r\n\r\n";
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
				"Date: Tue, 01 Dec 2026 18:22:47 GMT\r\n"
				"Content-Length: 4\r\n\r\n\x00\xff\x80\x01";
	char dir[] = "/tmp/podtap-kin.XXXXXX", path[PATH_MAX], set[PATH_MAX + 32];
	struct pt_export_counts cnt = {};
	struct pt_capture cap;
	struct pt_kset ks;

	if (!ASSERT_OK(load_server_pair(dir, path, sizeof(path), q, sizeof(q) - 1,
					r, sizeof(r) - 1, &cap), "a capture"))
		return;
	pt_capture_free(&cap);
	ASSERT_OK(export_dir(&pt_exporter_keploy, path, dir, &cnt), "exported");
	snprintf(set, sizeof(set), "%s/keploy/test-set-0", dir);
	ASSERT_TRUE(pt_kset_is(set), "a Keploy test set");
	if (!ASSERT_OK(pt_kset_load(&ks, set), "read back"))
		return;
	ASSERT_EQ(ks.tests, 1, "one test");
	if (ASSERT_EQ(ks.cap.conns.n, 1, "one connection")) {
		const struct pt_exchange *x = &ks.cap.xc[0].x[0];

		ASSERT_TRUE(ks.cap.xc[0].inbound, "inbound");
		ASSERT_STREQ(x->req.target, "/bin?a=1&b=2", "the target, from the URL");
		ASSERT_STREQ(pt_http_field(&x->req, "Host"), "svc:8080", "Host");
		ASSERT_EQ(x->resp.status, 200, "status");
		ASSERT_BYTES_EQ(x->resp.body, x->resp.body_len, "\x00\xff\x80\x01", 4,
				"the !!binary body, byte for byte");
		ASSERT_EQ(ks.nnoise[0], 1, "one noise key");
		if (ks.nnoise[0])
			ASSERT_STREQ(ks.noise[0][0], "header.Date", "Date is noise");
		ASSERT_EQ(ks.cap.conns.v[0]->open.t.lport, 8080, "the server port, from the URL");
	}
	pt_kset_free(&ks);
	snprintf(set, sizeof(set), "rm -rf %s", dir);
	ASSERT_OK(system(set), "cleanup");
}
