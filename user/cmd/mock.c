// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * podtap mock: serve the outbound HTTP exchanges of a capture, so that a
 * service under test gets its dependencies' recorded answers. The HTTP
 * server is libmicrohttpd (as for --metrics), HTTPS through its GnuTLS.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>
#include "cmd/cmds.h"
#include "base/common.h"
#include "base/jsonw.h"
#include "export/export.h"
#include "replay/keploy_in.h"
#include "replay/mock.h"

/* Requests listed at the end: misses, and those given a closest answer. */
#define LISTED_MAX	1000

struct mock_srv {
	struct pt_mocks m;
	pthread_mutex_t mu;
	char **listed;
	size_t nlisted, unlisted;
	size_t read_err;		/* answers that could not be read back */
};

/* A request's body as it arrives. */
struct upload {
	uint8_t *p;
	size_t n, cap;
	bool too_big;
};

/* Ctrl-C, SIGTERM or SIGHUP while the capture is read */
static volatile sig_atomic_t stopped;

static void on_signal(int sig)
{
	stopped = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: podtap mock --listen ADDR [OPTIONS] FILE...|KEPLOY-TEST-SET\n"
"\n"
"Answer HTTP requests with the responses a capture recorded for the\n"
"target's outbound calls (what its dependencies answered), or with a\n"
"Keploy test set's Http mocks, so that the service runs against them\n"
"instead: point its dependency URLs at ADDR.\n"
"\n"
"A request is matched on method, path, query (keys and values, any order)\n"
"and body (JSON as JSON), exact first; a recorded Host equal to the\n"
"request's is preferred. Requests recorded several times are answered in\n"
"recorded order, then with the last answer again (counted as reused). With\n"
"no exact match the closest recorded request of the same method and path\n"
"answers: the most query keys and values in common, the fewest body\n"
"differences. Anything else gets 502 with a JSON body naming what was\n"
"asked and the nearest recorded request. At the end (Ctrl-C, SIGTERM or\n"
"--duration) one line counts what was served; misses and closest answers\n"
"are listed.\n"
"\n"
"The capture is read as a stream: the outbound requests are kept in\n"
"memory to be matched, their recorded answers in a file in $TMPDIR\n"
"(default /tmp, deleted at once), sent from there. A Keploy test set is\n"
"read whole.\n"
"\n"
"Options:\n"
"  -l, --listen ADDR      HOST:PORT, [V6]:PORT or :PORT (every address)\n"
"      --tls-cert FILE    serve HTTPS with this PEM certificate chain...\n"
"      --tls-key FILE     ...and its PEM private key\n"
"      --strict           exit 1 if any request was not matched exactly or\n"
"                         by repetition (a miss or a closest answer)\n"
"      --duration D       stop after D (e.g. 30s); default: until a signal\n"
"      --max-stream SIZE  as for read and export\n"
"      --max-held SIZE    as for read and export (default 1Gi)\n"
"  -h, --help             this text\n"
"\n"
"Exit status: 0, or 1 with --strict after a miss or a closest answer; 2\n"
"for bad options, a capture that cannot be read, or a file in TMPDIR\n"
"that cannot be written or read back; 130 when stopped before serving.\n");
}

static void listed(struct mock_srv *s, const char *what, const char *method,
		   const char *path, const char *query)
{
	char *line;

	pthread_mutex_lock(&s->mu);
	if (s->nlisted < LISTED_MAX) {
		if (asprintf(&line, "%s: %s %s%s%s", what, method, path,
			     *query ? "?" : "", query) < 0)
			pt_oom();
		s->listed = pt_xrealloc(s->listed, s->nlisted + 1,
					sizeof(*s->listed));
		s->listed[s->nlisted++] = line;
	} else {
		s->unlisted++;
	}
	pthread_mutex_unlock(&s->mu);
}

/* Leave the path and query as sent: they are compared with the bytes
 * recorded (queries are decoded by pt_query_parse). */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
	return strlen(s);
}

struct qbuild {
	char *s;
	size_t n;
};

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind,
			       const char *key, const char *val)
{
	struct qbuild *q = cls;
	size_t need = strlen(key) + (val ? strlen(val) + 1 : 0) + 2;

	q->s = pt_xrealloc(q->s, q->n + need + 1, 1);
	q->n += sprintf(q->s + q->n, "%s%s%s%s", q->n ? "&" : "", key,
			val ? "=" : "", val ? val : "");
	return MHD_YES;
}

/* A HEAD answer's body: libmicrohttpd never reads it. */
static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* The recorded answer: its body sent from the file it waits in (a
 * descriptor of its own, which libmicrohttpd closes), not from memory. */
static enum MHD_Result answer(struct MHD_Connection *conn,
			      const struct pt_mock *mk,
			      const struct pt_http_msg *r, int fd)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	uint64_t head_len;
	size_t i;
	int bfd;

	/* a HEAD answer says the length its GET would have had: a response
	 * of that size whose body is never asked for */
	if (!strcmp(mk->method, "HEAD") && pt_http_field(r, "Content-Length") &&
	    !pt_parse_u64(pt_http_field(r, "Content-Length"), 0, UINT64_MAX,
			  &head_len)) {
		resp = MHD_create_response_from_callback(head_len, 4096, no_body,
							 NULL, NULL);
	} else if (!mk->body_len) {
		resp = MHD_create_response_from_buffer(0, NULL,
						       MHD_RESPMEM_PERSISTENT);
	} else {
		bfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (bfd < 0)
			return MHD_NO;
		resp = MHD_create_response_from_fd_at_offset64(mk->body_len, bfd,
							       mk->body_off);
		if (!resp)
			close(bfd);
	}
	if (!resp)
		return MHD_NO;
	for (i = 0; i < r->nfields; i++) {
		const char *n = r->fields[i].name;

		/* framing and hop-by-hop fields are the server's own */
		if (!strcasecmp(n, "Content-Length") ||
		    !strcasecmp(n, "Transfer-Encoding") ||
		    !strcasecmp(n, "Connection") || !strcasecmp(n, "Keep-Alive"))
			continue;
		MHD_add_response_header(resp, n, r->fields[i].value);
	}
	ret = MHD_queue_response(conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* podtap's own answer (not a recorded one): JSON */
static enum MHD_Result json_reply(struct MHD_Connection *conn, unsigned int code,
				  char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, mode);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result bad_gateway(struct MHD_Connection *conn,
				   const char *method, const char *path,
				   const char *query, const struct pt_mock *near)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);

	if (!f)
		return MHD_NO;
	fputs("{\"error\":\"podtap mock: no recorded request matches\",\"request\":", f);
	{
		char *req;

		if (asprintf(&req, "%s %s%s%s", method, path, *query ? "?" : "",
			     query) < 0)
			pt_oom();
		pt_json_str(f, req);
		free(req);
	}
	if (near) {
		char *n;

		if (asprintf(&n, "%s %s", near->method, near->target) < 0)
			pt_oom();
		fputs(",\"nearest_recorded\":", f);
		pt_json_str(f, n);
		free(n);
	}
	fputs("}\n", f);
	fclose(f);
	return json_reply(conn, MHD_HTTP_BAD_GATEWAY, body, len,
			  MHD_RESPMEM_MUST_FREE);
}

/* The recorded answer could not be read back from $TMPDIR: said once,
 * and a 500 for each such request. */
static enum MHD_Result cannot_answer(struct mock_srv *s,
				     struct MHD_Connection *conn, int err,
				     enum pt_match how)
{
	static const char b[] = "{\"error\":\"podtap mock: the recorded answer could not be read back\"}\n";

	/* not served after all */
	pthread_mutex_lock(&s->m.mu);
	s->m.exact -= how == PT_M_EXACT;
	s->m.reused -= how == PT_M_REUSED;
	s->m.closest -= how == PT_M_CLOSEST;
	pthread_mutex_unlock(&s->m.mu);
	pthread_mutex_lock(&s->mu);
	if (!s->read_err++)
		pt_err("mock: reading a recorded answer back from the file in %s: %s",
		       s->m.f.dir, strerror(err));
	pthread_mutex_unlock(&s->mu);
	return json_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, (char *)b,
			  sizeof(b) - 1, MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result too_large(struct MHD_Connection *conn)
{
	static const char b[] = "{\"error\":\"podtap mock: request body over 64 MiB, not matched\"}\n";

	return json_reply(conn, MHD_HTTP_CONTENT_TOO_LARGE, (char *)b,
			  sizeof(b) - 1, MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *data_size, void **con_cls)
{
	struct mock_srv *s = cls;
	struct upload *up = *con_cls;
	struct qbuild q = {};
	struct pt_mreq r = {};
	const struct pt_mock *mk, *near = NULL;
	enum pt_match how;
	enum MHD_Result ret;
	struct pt_http_msg m = {};
	struct pt_http_field ce;
	struct pt_body b;

	if (!up) {
		*con_cls = pt_xcalloc(1, sizeof(*up));
		return MHD_YES;
	}
	if (*data_size) {
		if (up->n + *data_size > PT_HTTP_DECODED_MAX) {
			up->too_big = true;
		} else {
			if (up->n + *data_size + 1 > up->cap) {
				up->cap = 2 * (up->n + *data_size + 1);
				up->p = pt_xrealloc(up->p, up->cap, 1);
			}
			memcpy(up->p + up->n, data, *data_size);
			up->n += *data_size;
			up->p[up->n] = 0;	/* for the JSON parser */
		}
		*data_size = 0;
		return MHD_YES;
	}
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, &q);
	r.method = method;
	r.host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	r.path = url;
	pt_query_parse(q.s, (struct pt_qparam **)&r.q, &r.nq);
	if (up->too_big) {
		/* a miss like any other, said for what it is */
		pthread_mutex_lock(&s->m.mu);
		s->m.missed++;
		pthread_mutex_unlock(&s->m.mu);
		listed(s, "unmatched (body over 64 MiB)", method, url, q.s ? q.s : "");
		ret = too_large(conn);
		pt_query_free((struct pt_qparam *)r.q, r.nq);
		free(q.s);
		return ret;
	}
	/* a compressed request body is matched by what it says */
	ce.name = "Content-Encoding";
	ce.value = (char *)MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						       "Content-Encoding");
	m.fields = ce.value ? &ce : NULL;
	m.nfields = ce.value != NULL;
	m.body = up->p;
	m.body_len = up->n;
	pt_body_get(&m, &b);
	r.body = b.p;
	r.body_len = b.n;
	mk = pt_mocks_match(&s->m, &r, &how, &near);
	pt_dbg("mock: %s %s%s%s: %s", method, url, q.s ? "?" : "",
	       q.s ? q.s : "", !mk ? "no match" : how == PT_M_EXACT ? "exact" :
	       how == PT_M_REUSED ? "reused" : "closest");
	if (mk && how == PT_M_CLOSEST)
		listed(s, "closest", method, url, q.s ? q.s : "");
	if (!mk) {
		listed(s, "unmatched", method, url, q.s ? q.s : "");
		ret = bad_gateway(conn, method, url, q.s ? q.s : "", near);
	} else {
		struct pt_http_msg rec;
		int err = pt_mock_answer(&s->m, mk, &rec, false);

		if (err) {
			ret = cannot_answer(s, conn, err, how);
		} else {
			ret = answer(conn, mk, &rec, s->m.f.fd);
			pt_http_msg_free(&rec);
		}
	}
	pt_body_free(&b);
	pt_query_free((struct pt_qparam *)r.q, r.nq);
	free(q.s);
	return ret;
}

static int add_x(void *ctx, const struct pt_capture *cap,
		 const struct pt_xconn *xc, struct pt_exchange *x)
{
	return stopped ? -EINTR : pt_mocks_add(ctx, xc, x);
}

/* libmicrohttpd's complaints (a client that is not TLS, ...): debug lines */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	pt_vdbg(fmt, ap);
}

static void done(void *cls, struct MHD_Connection *c, void **con_cls,
		 enum MHD_RequestTerminationCode why)
{
	struct upload *up = *con_cls;

	if (up) {
		free(up->p);
		free(up);
		*con_cls = NULL;
	}
}

static char *slurp(const char *opt, const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, n;
	char chunk[4096];

	if (!f) {
		pt_err("%s %s: %s", opt, path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && len < (1 << 20)) {
		buf = pt_xrealloc(buf, len + n + 1, 1);
		memcpy(buf + len, chunk, n);
		len += n;
		buf[len] = 0;
	}
	fclose(f);
	if (!buf || !strstr(buf, "-----BEGIN ")) {
		pt_err("%s %s: not a PEM file", opt, path);
		free(buf);
		return NULL;
	}
	return buf;
}

/* Wait for SIGINT, SIGTERM, SIGHUP or the end of the duration. */
static void serve_until(uint64_t duration_ns)
{
	sigset_t set;
	struct timespec ts = { (time_t)(duration_ns / 1000000000ULL),
			       (long)(duration_ns % 1000000000ULL) };

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (duration_ns)
		while (sigtimedwait(&set, NULL, &ts) < 0 && errno == EINTR)
			;
	else
		while (sigwaitinfo(&set, NULL) < 0 && errno == EINTR)
			;
}

static void report(struct mock_srv *s)
{
	size_t i;

	for (i = 0; i < s->nlisted; i++)
		fprintf(stderr, "  %s\n", s->listed[i]);
	if (s->unlisted)
		fprintf(stderr, "  ... and %zu more\n", s->unlisted);
	pt_info("mock: served %zu requests: %zu exact, %zu reused (recorded answers ran out), %zu closest, %zu unmatched (502, or 413 for a body over 64 MiB)%s",
		s->m.exact + s->m.reused + s->m.closest + s->m.missed +
		s->read_err, s->m.exact, s->m.reused, s->m.closest,
		s->m.missed, s->read_err ? "; some answers could not be read back (500)" : "");
}

int cmd_mock(int argc, char **argv)
{
	enum { O_CERT = 256, O_KEY, O_STRICT, O_DURATION, O_MAXSTREAM,
	       O_MAXHELD };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "tls-cert", required_argument, NULL, O_CERT },
		{ "tls-key", required_argument, NULL, O_KEY },
		{ "strict", no_argument, NULL, O_STRICT },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "max-stream", required_argument, NULL, O_MAXSTREAM },
		{ "max-held", required_argument, NULL, O_MAXHELD },
		{ "log-format", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *listen = NULL, *certf = NULL, *keyf = NULL;
	char *cert = NULL, *key = NULL;
	struct mock_srv s = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct MHD_Daemon *d = NULL;
	struct sockaddr_storage ss;
	struct pt_kset in;
	bool strict = false, v6 = false, loaded = false;
	int kset;
	uint64_t duration = 0;
	unsigned int flags, climit = 896;
	sigset_t set;
	size_t i;
	int opt, rc = 2;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":l:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen = optarg;
			break;
		case O_CERT:
			certf = optarg;
			break;
		case O_KEY:
			keyf = optarg;
			break;
		case O_STRICT:
			strict = true;
			break;
		case O_DURATION:
			if (pt_opt_duration("--duration", optarg, 1000000,
					    UINT64_MAX, &duration))
				return 2;
			break;
		case O_MAXSTREAM:
			if (pt_opt_max_stream(optarg))
				return 2;
			break;
		case O_MAXHELD:
			if (pt_opt_max_held(optarg))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (pt_opt_other("mock", opt, optarg, argv[optind - 1]))
				return 2;
			break;
		}
	}
	if (!listen) {
		pt_err("mock: give --listen ADDR, where to serve (e.g. 127.0.0.1:8080)");
		return 2;
	}
	if (pt_parse_listen_addr(listen, &ss, &v6)) {
		pt_err("--listen %s: not an address to listen on (try 127.0.0.1:8080, :8080 or [::1]:8080)",
		       listen);
		return 2;
	}
	if (!certf != !keyf) {
		pt_err("mock: HTTPS needs both --tls-cert and --tls-key");
		return 2;
	}
	if (optind >= argc) {
		pt_err("mock: give a capture file (see --help)");
		return 2;
	}
	if (certf && (!(cert = slurp("--tls-cert", certf)) ||
		      !(key = slurp("--tls-key", keyf))))
		goto out;
	/* a large capture takes a while to read: a signal stops that too
	 * (and is taken even if the shell had it ignored) */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	kset = pt_input_kset(&in, (const char *const *)argv + optind,
			     argc - optind);
	if (kset < 0)
		goto out;
	loaded = true;
	if (kset) {
		if (pt_mocks_load(&s.m, &in.cap))
			goto out;
	} else {
		struct pt_xsink sink = { .ctx = &s.m, .x = add_x };
		int err = pt_mocks_begin(&s.m);

		if (!err)
			err = pt_capture_stream(&in.cap, (const char *const *)argv +
						optind, argc - optind, &sink);
		if (err == -EINTR && stopped) {
			pt_info("mock: stopped while the capture was read");
			rc = 130;
			goto out;
		}
		if (err)
			goto out;	/* said */
		pt_mocks_end(&s.m);
		pt_stream_notes(&in.cap);
	}
	pt_capture_warn(&in.cap);
	if (!s.m.n) {
		pt_err("mock: the capture has no complete outbound HTTP/1 exchange to serve%s",
		       s.m.skipped ? " (its outbound exchanges are incomplete)" : "");
		goto out;
	}
	/* signals are taken by serve_until, in this thread only */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (stopped) {
		/* came while the set was read, or just after */
		pt_info("mock: stopped before serving");
		rc = 130;
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	/* epoll where there is one (no FD_SETSIZE limit), as many clients
	 * as descriptors allow, and idle ones let go after 30 s so that
	 * they cannot hold every slot */
	{
		unsigned long long lim = pt_nofile_raise();

		if (lim > 256)
			climit = (unsigned int)(lim - 128 < 65536 ?
						lim - 128 : 65536);
	}
	flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
		(v6 ? MHD_USE_DUAL_STACK : 0) | (cert ? MHD_USE_TLS : 0);
	d = cert ? MHD_start_daemon(flags, 0, NULL, NULL, handle, &s,
				    MHD_OPTION_SOCK_ADDR, &ss,
				    MHD_OPTION_THREAD_POOL_SIZE, 4,
				    MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				    MHD_OPTION_CONNECTION_LIMIT, climit,
				    MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
				    MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
				    MHD_OPTION_HTTPS_MEM_CERT, cert,
				    MHD_OPTION_HTTPS_MEM_KEY, key,
				    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				    MHD_OPTION_END) :
		 MHD_start_daemon(flags, 0, NULL, NULL, handle, &s,
				  MHD_OPTION_SOCK_ADDR, &ss,
				  MHD_OPTION_THREAD_POOL_SIZE, 4,
				  MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				  MHD_OPTION_CONNECTION_LIMIT, climit,
				  MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
				  MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				  MHD_OPTION_END);
	if (!d) {
		/* libmicrohttpd says nothing of why; errno may be stale */
		if (cert)
			pt_err("mock: cannot serve HTTPS on %s: the address is in use, or the key is not the certificate's",
			       listen);
		else
			pt_err("mock: cannot serve on %s: %s", listen,
			       strerror(errno ? errno : EADDRINUSE));
		goto out;
	}
	pt_info("mock: serving %zu recorded answers (%zu distinct requests) on %s%s%s",
		s.m.n, s.m.ngroups, cert ? "https://" : "http://", listen,
		s.m.skipped ? "; incomplete outbound exchanges left out" : "");
	serve_until(duration);
	MHD_stop_daemon(d);
	report(&s);
	rc = s.read_err ? 2 : strict && (s.m.missed || s.m.closest) ? 1 : 0;
out:
	if (loaded) {
		pt_mocks_free(&s.m);
		pt_kset_free(&in);
	}
	for (i = 0; i < s.nlisted; i++)
		free(s.listed[i]);
	free(s.listed);
	free(cert);
	free(key);
	return rc;
}
