// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* podtap replay: send a capture's inbound HTTP requests again, compare. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "cmd/cmds.h"
#include "base/common.h"
#include "base/outfile.h"
#include "export/export.h"
#include "replay/replay.h"

static volatile int stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
"Usage: podtap replay --to URL [OPTIONS] FILE...|KEPLOY-TEST-SET\n"
"\n"
"Send the inbound HTTP/1 requests of a capture (what clients asked the\n"
"recorded target), or the tests of a Keploy test set directory (its\n"
"noise included), to a running service, and compare every response with\n"
"the recorded one: status, header fields, and the body (JSON field by\n"
"field, other text byte by byte, binary by hash; gzip, deflate and\n"
"chunking undone on both sides). Each captured connection is replayed on\n"
"a connection of its own, its requests in order; connections in the order\n"
"they started, several at once. Requests are framed anew: hop-by-hop\n"
"fields (Connection, Transfer-Encoding, Expect, ...) are not forwarded.\n"
"The recorded Host field is sent unless --rewrite-host.\n"
"\n"
"Only GET and HEAD are sent unless --allow-writes: other methods change\n"
"the service's state. A request that cannot be replayed (an incomplete\n"
"capture, TLS still ciphertext, an upgrade, HTTP/2) is skipped and listed.\n"
"\n"
"Noise, values expected to differ between two runs, is not reported:\n"
"values that read as a time, a recent epoch or a UUID (unless\n"
"--no-auto-noise), what --noise and --noise-regex name, the header fields");
	for (i = 0; pt_noise_default_headers[i]; i++)
		fprintf(f, "%s%s", i % 6 ? " " : "\n", pt_noise_default_headers[i]);
	fprintf(f,
",\nand with --learn-noise what differs between two replays of the same\n"
"build (each connection's requests are sent again once its first run is\n"
"over, and a second after it began at the earliest).\n"
"\n"
"The capture is read as a stream: requests go out as they are read, and\n"
"wait in a file in $TMPDIR (default /tmp, deleted at once) until their\n"
"connection's turn; memory holds the connections under way. Reports list\n"
"the cases in the order their requests were recorded.\n"
"\n"
"Options:\n"
"      --to URL            http://HOST:PORT or https://...; a path there is\n"
"                          put before each recorded path\n"
"      --speed N           keep the recorded timing, N times faster (1: as\n"
"                          recorded); gaps longer than --max-gap are cut\n"
"      --max-gap DURATION  with --speed (default 1s)\n"
"      --rate R            R requests per second, evenly\n"
"                          (neither: as fast as the service answers)\n"
"  -j, --concurrency N     connections replayed at once (default 8; fewer,\n"
"                          said, if open files are too few)\n"
"      --filter KEY=V,...  send only requests matching: method=GET,HEAD\n"
"                          path=/api/* (a glob) host=GLOB header=NAME or\n"
"                          header=NAME:GLOB port=N (the server's); repeat\n"
"                          for more, all must match\n"
"      --allow-writes      send POST, PUT, DELETE, PATCH... too\n"
"      --rewrite-host      send the host of --to as Host\n"
"  -H, --set-header 'NAME: VALUE'  add or replace a field in every request\n"
"                          (a fresh token: -H 'Authorization: Bearer ...');\n"
"                          'NAME:' removes it; framing fields are refused\n"
"      --timeout DURATION  for each request (default 30s)\n"
"  -k, --insecure          do not verify an https:// service's certificate\n"
"      --noise RULE        not compared: header.NAME, or body.PATH (a JSON\n"
"                          path, body.items[*].id; * is any key); repeat\n"
"      --noise-regex RE    matches (POSIX extended) masked out of header\n"
"                          values, text bodies and JSON values before\n"
"                          comparing\n"
"      --no-auto-noise     compare time-, epoch- and UUID-like values too\n"
"      --learn-noise       send each connection's requests twice; what the\n"
"                          two runs disagree on is noise\n"
"      --report FORMAT     text (default), json or junit\n"
"  -o, --out FILE          the report there (default: standard output); a\n"
"                          regular file is replaced only when complete\n"
"      --dry-run           list what would be sent and skipped, send nothing\n"
"      --max-stream SIZE   as for read and export\n"
"      --max-held SIZE     as for read and export (default 1Gi)\n"
"  -h, --help              this text\n"
"\n"
"One summary line goes to standard error. Exit status: 0 when every\n"
"request sent got the recorded response; 1 when one differed, failed, or\n"
"was skipped without a filter asking (writes left out by the GET/HEAD rule\n"
"count as asked), nothing was left to send, or the capture is damaged; 2\n"
"for bad options, an unreadable capture or report file (checked before\n"
"anything is sent); 130 when interrupted. docs/replay.md has the details.\n");
}

static int opt_double(const char *opt, const char *arg, double lo,
		      double *v)
{
	char *end;

	*v = strtod(arg, &end);
	if (end == arg || *end || !(*v > 0)) {
		pt_err("%s %s: want a positive number", opt, arg);
		return -1;
	}
	if (*v < lo || *v > 1e9) {
		pt_err("%s %s: want a number from %g to 1e9", opt, arg, lo);
		return -1;
	}
	return 0;
}

/* Is the report's path one of the inputs? (-o pod.ptcap pod.ptcap) */
static bool is_input(const char *out, char **in, int n)
{
	int i;

	for (i = 0; out && strcmp(out, "-") && i < n; i++)
		if (pt_same_file(out, in[i]))
			return true;
	return false;
}

static int feed_x(void *ctx, const struct pt_capture *cap,
		  const struct pt_xconn *xc, struct pt_exchange *x)
{
	return pt_replay_x(ctx, xc, x, NULL, 0) ? -EINTR : 0;
}

static void feed_conn(void *ctx, const struct pt_capture *cap,
		      const struct pt_xconn *xc)
{
	pt_replay_conn_done(ctx, xc);
}

static int by_start(const void *a, const void *b)
{
	const struct pt_xconn *x = *(const struct pt_xconn *const *)a;
	const struct pt_xconn *y = *(const struct pt_xconn *const *)b;

	return x->conn->first_ts < y->conn->first_ts ? -1 :
	       x->conn->first_ts > y->conn->first_ts;
}

/* A Keploy test set, read whole (it is small): its connections in the
 * order they started, each test with its noise keys. */
static void feed_kset(struct pt_replay *rp, const struct pt_kset *k)
{
	const struct pt_capture *cap = &k->cap;
	const struct pt_xconn **v = pt_xcalloc(cap->conns.n + 1, sizeof(*v));
	size_t i, j, n = 0;

	for (i = 0; i < cap->conns.n; i++)
		v[n++] = &cap->xc[i];
	qsort(v, n, sizeof(*v), by_start);
	for (i = 0; i < n; i++) {
		size_t ci = v[i] - cap->xc;
		bool stopped = false;

		for (j = 0; j < v[i]->nx && !stopped; j++)
			stopped = pt_replay_x(rp, v[i], &v[i]->x[j],
					      k->noise[ci], k->nnoise[ci]);
		pt_replay_conn_done(rp, v[i]);
		if (stopped) {
			rp->unread = j < v[i]->nx || i + 1 < n;
			break;
		}
	}
	free(v);
}

static int write_report(struct pt_out *o, const struct pt_replay *rp,
			const char *fmt, const char *out)
{
	int err;

	if (!strcmp(fmt, "json"))
		pt_replay_report_json(o->f, rp);
	else if (!strcmp(fmt, "junit"))
		pt_replay_report_junit(o->f, rp);
	else
		pt_replay_report_text(o->f, rp);
	err = pt_out_commit(o);
	if (err) {
		pt_err("writing the report to %s: %s", out ? out : "standard output",
		       strerror(-err));
		return -1;
	}
	return 0;
}

int cmd_replay(int argc, char **argv)
{
	enum { O_TO = 256, O_SPEED, O_MAXGAP, O_RATE, O_FILTER, O_WRITES,
	       O_REHOST, O_TIMEOUT, O_NOISE, O_NOISE_RE, O_NO_AUTO, O_LEARN,
	       O_REPORT, O_DRY, O_MAXSTREAM, O_MAXHELD };
	static const struct option opts[] = {
		{ "to", required_argument, NULL, O_TO },
		{ "speed", required_argument, NULL, O_SPEED },
		{ "max-gap", required_argument, NULL, O_MAXGAP },
		{ "rate", required_argument, NULL, O_RATE },
		{ "concurrency", required_argument, NULL, 'j' },
		{ "filter", required_argument, NULL, O_FILTER },
		{ "allow-writes", no_argument, NULL, O_WRITES },
		{ "rewrite-host", no_argument, NULL, O_REHOST },
		{ "set-header", required_argument, NULL, 'H' },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "insecure", no_argument, NULL, 'k' },
		{ "noise", required_argument, NULL, O_NOISE },
		{ "noise-regex", required_argument, NULL, O_NOISE_RE },
		{ "no-auto-noise", no_argument, NULL, O_NO_AUTO },
		{ "learn-noise", no_argument, NULL, O_LEARN },
		{ "report", required_argument, NULL, O_REPORT },
		{ "out", required_argument, NULL, 'o' },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "max-stream", required_argument, NULL, O_MAXSTREAM },
		{ "max-held", required_argument, NULL, O_MAXHELD },
		{ "log-format", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct pt_replay_opts o = {
		.concurrency = 8, .max_gap_ns = 1000000000ULL,
		.timeout_ns = 30000000000ULL,
	};
	const char *report = "text", *outp = NULL, *to = NULL;
	struct pt_out of;
	struct pt_kset in;
	struct pt_replay rp;
	char *line;
	uint64_t u;
	int opt, kset, err = 0, rc = 2;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":j:H:ko:vh", opts, NULL)) != -1) {
		switch (opt) {
		case O_TO:
			to = optarg;
			break;
		case O_SPEED:
			if (opt_double("--speed", optarg, 1e-3, &o.speed))
				goto out;
			break;
		case O_RATE:
			if (opt_double("--rate", optarg, 1e-3, &o.rate))
				goto out;
			break;
		case O_MAXGAP:
			if (pt_opt_duration("--max-gap", optarg, 0,
					    3600000000000ULL, &o.max_gap_ns))
				goto out;
			break;
		case O_TIMEOUT:
			if (pt_opt_duration("--timeout", optarg, 1000000,
					    3600000000000ULL, &o.timeout_ns))
				goto out;
			break;
		case 'j':
			if (pt_parse_u64(optarg, 1, 1024, &u)) {
				pt_err("--concurrency %s: want 1 to 1024", optarg);
				goto out;
			}
			o.concurrency = (int)u;
			break;
		case O_FILTER:
			if (pt_filter_add(&o, optarg))
				goto out;
			break;
		case O_WRITES:
			o.allow_writes = true;
			break;
		case O_REHOST:
			o.rewrite_host = true;
			break;
		case 'H':
			if (pt_set_header_add(&o, optarg))
				goto out;
			break;
		case 'k':
			o.insecure = true;
			break;
		case O_NOISE:
			if (pt_noise_add(&o.noise, optarg))
				goto out;
			break;
		case O_NOISE_RE:
			if (pt_noise_add_regex(&o.noise, optarg))
				goto out;
			break;
		case O_NO_AUTO:
			o.noise.no_auto = true;
			break;
		case O_LEARN:
			o.learn_noise = true;
			break;
		case O_REPORT:
			if (strcmp(optarg, "text") && strcmp(optarg, "json") &&
			    strcmp(optarg, "junit")) {
				pt_err("--report %s: want text, json or junit", optarg);
				goto out;
			}
			report = optarg;
			break;
		case 'o':
			outp = optarg;
			break;
		case O_DRY:
			o.dry_run = true;
			break;
		case O_MAXSTREAM:
			if (pt_opt_max_stream(optarg))
				goto out;
			break;
		case O_MAXHELD:
			if (pt_opt_max_held(optarg))
				goto out;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			if (pt_opt_other("replay", opt, optarg, argv[optind - 1]))
				goto out;
			break;
		}
	}
	if (!to && !o.dry_run) {
		pt_err("replay: give --to URL, the service to send the requests to (or --dry-run)");
		goto out;
	}
	if (pt_replay_to(&o, to ? to : "http://localhost"))
		goto out;
	if (o.speed > 0 && o.rate > 0) {
		pt_err("replay: --speed and --rate pace differently; give one");
		goto out;
	}
	if (optind >= argc) {
		pt_err("replay: give a capture file (see --help)");
		goto out;
	}
	if (!o.dry_run) {
		/* a connection, and the socket pair of libcurl's threaded
		 * resolver, each, with room */
		unsigned long long lim = pt_nofile_raise();

		if ((unsigned long long)o.concurrency * 4 + 64 > lim) {
			int j = lim > 68 ? (int)((lim - 64) / 4) : 1;

			pt_info("replay: -j %d needs more open files than the limit (%llu) allows: %d at once",
				o.concurrency, lim, j);
			o.concurrency = j;
		}
	}
	if (is_input(outp, argv + optind, argc - optind)) {
		pt_err("--out %s: that is the capture being replayed; give another file",
		       outp);
		goto out;
	}
	kset = pt_input_kset(&in, (const char *const *)argv + optind,
			     argc - optind);
	if (kset < 0)
		goto out;
	/* the report's file is checked before anything is sent */
	if (pt_out_open(&of, outp ? outp : "-", PT_OUT_ATOMIC, "--out")) {
		pt_kset_free(&in);
		goto out;
	}
	/* a dry run of a large capture takes a while too */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	if (!o.dry_run) {
		signal(SIGPIPE, SIG_IGN);
		curl_global_init(CURL_GLOBAL_DEFAULT);
	}
	if (pt_replay_begin(&rp, &o, &stop)) {
		err = -1;
	} else if (kset) {
		feed_kset(&rp, &in);
	} else {
		struct pt_xsink sink = { .ctx = &rp, .x = feed_x,
					 .conn = feed_conn };

		err = pt_capture_stream(&in.cap, (const char *const *)argv +
					optind, argc - optind, &sink);
		if (err == -EINTR) {
			err = 0;	/* stopped: said below */
			rp.unread = true;
		}
	}
	if (rp.sp)
		pt_replay_end(&rp);
	if (!o.dry_run)
		curl_global_cleanup();
	if (err || pt_replay_error(&rp)) {
		/* said: the capture could not be read, or the spool failed;
		 * no report is written as if it were whole */
		pt_out_abort(&of);
		pt_replay_free(&rp);
		pt_kset_free(&in);
		goto out;
	}
	if (!kset) {
		pt_stream_notes(&in.cap);
		pt_capture_warn(&in.cap);
	}
	rp.damaged = in.cap.read_err ? in.cap.info.error : NULL;
	rc = write_report(&of, &rp, report, outp) ? 2 : 0;
	if (pt_replay_error(&rp))
		rc = 2;		/* a result could not be read back: said */
	line = pt_replay_summary(&rp);
	pt_info("%s", line);
	free(line);
	if (!rc && (rp.fail || rp.errors || rp.skipped || in.cap.read_err))
		rc = 1;
	if (!rc && !rp.planned) {
		pt_err("replay: nothing to send: %s", rp.n ?
		       "every request was left out (see --filter, --allow-writes)" :
		       "the capture holds no inbound HTTP request");
		rc = 1;
	}
	if (rp.interrupted)
		rc = 130;
	pt_replay_free(&rp);
	pt_kset_free(&in);
out:
	pt_replay_opts_free(&o);
	return rc;
}
