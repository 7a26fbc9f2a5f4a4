// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* podtap export: a capture file as Keploy tests, pcapng, HAR or JSON lines. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cmd/cmds.h"
#include "base/common.h"
#include "proto/exch.h"
#include "export/export.h"
#include "base/outfile.h"

/* "keploy, pcapng, har or jsonl" */
static const char *format_list(char *buf, size_t n)
{
	size_t i, at = 0;

	buf[0] = 0;
	for (i = 0; pt_exporters[i] && at < n; i++)
		at += snprintf(buf + at, n - at, "%s%s", i == 0 ? "" :
			       pt_exporters[i + 1] ? ", " : " or ",
			       pt_exporters[i]->name);
	return buf;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
"Usage: podtap export --format FORMAT [--out PATH] [--allow-partial] FILE...\n"
"\n"
"Turn a capture file written by `podtap record` into what other tools read.\n"
"Connections are cut into exchanges: HTTP/1.x requests paired with their\n"
"responses (inbound on connections a target accepted: test cases; outbound\n"
"on connections it made: mocks), other protocols as raw turns of each side.\n"
"Bytes that were not captured stay missing; an exchange that runs into them\n"
"is marked incomplete. Several files are read as one capture, in the order\n"
"given (the segments `podtap agent` wrote for one session on one node);\n"
"FILE - is standard input.\n"
"\n"
"Every export ends with a line saying what it wrote and what it left out\n"
"and why. It exits 1 when it left out HTTP traffic the format is for (TLS\n"
"ciphertext or HTTP/2 where HTTP/1 is needed), or a connection too large\n"
"to assemble, unless --allow-partial. Connections of other protocols that\n"
"a format cannot hold (HAR, Keploy tests) and exchanges left out as\n"
"incomplete or ambiguous are counted in that line, not an error.\n"
"\n"
"Formats:\n");
	for (i = 0; pt_exporters[i]; i++) {
		const char *h = pt_exporters[i]->help, *nl;

		fprintf(f, "  %-8s ", pt_exporters[i]->name);
		/* continuation lines indented under the first */
		while ((nl = strchr(h, '\n'))) {
			fprintf(f, "%.*s\n           ", (int)(nl - h), h);
			h = nl + 1;
		}
		fprintf(f, "%s\n", h);
	}
	fprintf(f,
"\n"
"Options:\n"
"  -f, --format FORMAT   one of the formats above\n"
"  -o, --out PATH        where to write (pcapng, har, jsonl: a file, or - for\n"
"                        standard output, the default; pcapng is not written\n"
"                        to a terminal). A regular file is written under a\n"
"                        temporary name beside it and renamed over it when\n"
"                        complete; a device or FIFO is written in place.\n"
"                        Files are created mode 0600: they hold what went\n"
"                        over the wire, credentials included.\n"
"      --allow-partial   exit 0 even when connections were left out\n"
"      --redact NAME     write \"[REDACTED]\" for the value of every header\n"
"                        field, JSON body field (any depth), form field and\n"
"                        query parameter named NAME (any case; repeat for\n"
"                        more), e.g. --redact Authorization --redact password.\n"
"                        Not for pcapng, which holds the bytes as they were.\n"
"                        The closing line says which credentials (Authorization,\n"
"                        Cookie, API key fields) are still in what was written\n"
"      --max-stream SIZE assemble each direction of a connection in memory\n"
"                        up to SIZE (default and most: 16Gi); a longer one is\n"
"                        left out, and said. Since exports assemble only\n"
"                        what is in flight, this leaves out the bytes of a\n"
"                        connection holding more than SIZE at once\n"
"      --max-held SIZE   every format is written as the capture is read, in\n"
"                        order of time, holding only what is in\n"
"                        flight: bytes of exchanges still open and exchanges\n"
"                        waiting for an earlier one (pcapng: packets waiting\n"
"                        for an earlier one). Past SIZE (default 1Gi) the\n"
"                        open exchange holding the rest up is cut short\n"
"                        (marked incomplete, and said) and its connection\n"
"                        read on from there (pcapng: bytes still awaited are\n"
"                        taken as not captured); the last second of records\n"
"                        is always held, whatever SIZE\n"
"  -h, --help            this text\n");
}

/* Connections the format cannot hold, by why. */
struct left_out {
	size_t by_proto[PT_XP_OTHER + 1];
	size_t too_big, no_open;
	size_t ciphertext;	/* TLS not decrypted, kept as raw turns */
};

/* Is connection xc one the format leaves out? Counted in lo; 1 if it is
 * HTTP the user asked for (an error without --allow-partial). */
static size_t left_out_one(const struct pt_exporter *fmt,
			   const struct pt_xconn *xc, struct left_out *lo)
{
	enum pt_xproto p = xc->proto;

	if (!xc->assembled) {
		lo->too_big++;
		return 1;
	}
	if (fmt->holds == PT_HOLDS_OPENED && !xc->conn->has_open) {
		lo->no_open++;
		return 1;
	}
	if (fmt->holds == PT_HOLDS_ALL || fmt->holds == PT_HOLDS_OPENED ||
	    p == PT_XP_NONE || p == PT_XP_HTTP1) {
		lo->ciphertext += p == PT_XP_TLS;
		return 0;
	}
	/* keploy: tests are HTTP; a mock of ciphertext never matches */
	if (fmt->holds == PT_HOLDS_KEPLOY && !xc->inbound && p != PT_XP_TLS)
		return 0;
	lo->by_proto[p]++;
	/* HTTPS and HTTP/2 are HTTP the user asked for; a protocol not
	 * HTTP at all is said, not an error */
	return p != PT_XP_OTHER;
}

/* "wrote 3 entries to x.har; left out: 2 connections of TLS ciphertext" */
static void summary(const struct pt_exporter *fmt, const char *where,
		    const struct pt_export_counts *c, const struct left_out *lo,
		    size_t nleft)
{
	char buf[1024];
	size_t k, len = 0;
	int p;

#define ADD(...) (len += (size_t)snprintf(buf + len, len < sizeof(buf) ? \
				sizeof(buf) - len : 0, __VA_ARGS__))
	if (fmt->dir_open)
		ADD("wrote %s: %zu test%s, %zu mock%s", where, c->tests,
		    c->tests == 1 ? "" : "s", c->mocks, c->mocks == 1 ? "" : "s");
	else
		ADD("wrote %zu %s to %s", c->items,
		    c->items == 1 ? fmt->item : fmt->items, where);
	k = 0;
	for (p = 0; p <= PT_XP_OTHER; p++)
		if (lo->by_proto[p])
			ADD("%s%zu connection%s of %s", k++ ? ", " : "; left out: ",
			    lo->by_proto[p], lo->by_proto[p] == 1 ? "" : "s",
			    pt_xproto_words(p));
	if (k && fmt->holds == PT_HOLDS_HTTP1)
		ADD(" (%s holds HTTP/1 only)", fmt->name);
	else if (k && fmt->holds == PT_HOLDS_KEPLOY)
		ADD(" (Keploy tests are HTTP/1; ciphertext makes no mock)");
	if (lo->too_big)
		ADD("%s%zu connection%s too large to assemble (--max-stream)",
		    k++ ? ", " : "; left out: ", lo->too_big,
		    lo->too_big == 1 ? "" : "s");
	if (lo->no_open)
		ADD("%s%zu connection%s with no addresses (no OPEN record)",
		    k++ ? ", " : "; left out: ", lo->no_open,
		    lo->no_open == 1 ? "" : "s");
	if (c->partial)
		ADD("%s%zu incomplete exchange%s", k++ ? ", " : "; left out: ",
		    c->partial, c->partial == 1 ? "" : "s");
	if (c->ambiguous)
		ADD("%s%zu exchange%s of ambiguous framing", k++ ? ", " : "; left out: ",
		    c->ambiguous, c->ambiguous == 1 ? "" : "s");
	if (c->server_first)
		ADD("%s%zu connection%s whose server speaks first (Keploy's Generic mocks answer only after the client writes)",
		    k++ ? ", " : "; left out: ", c->server_first,
		    c->server_first == 1 ? "" : "s");
	if (lo->ciphertext)
		ADD("; %zu connection%s of TLS ciphertext, written as it was on the wire (not decrypted)",
		    lo->ciphertext, lo->ciphertext == 1 ? "" : "s");
#undef ADD
	pt_info("%s", buf);
}

/* What every export ends with: damage, the summary, credentials. */
static void finish_export(const struct pt_capture *cap,
			  const struct pt_exporter *fmt, const char *out,
			  const struct pt_export_counts *cnt,
			  const struct left_out *lo, size_t nleft, size_t creds,
			  const char *cnames, bool allow_partial, int *rc)
{
	char where[4200];

	pt_capture_warn(cap);
	if (cap->read_err)
		*rc = 1;
	if (*rc)
		return;
	if (fmt->dir_open)
		snprintf(where, sizeof(where), "%s/keploy/test-set-%d",
			 out, cnt->set);
	else
		snprintf(where, sizeof(where), "%s",
			 strcmp(out, "-") ? out : "standard output");
	summary(fmt, where, cnt, lo, nleft);
	if (creds)
		pt_info("credentials in what was written: %zu exchange%s %s (--redact NAME blanks them)",
			creds, creds == 1 ? " carries" : "s carry", cnames);
	if (nleft && !allow_partial) {
		pt_err("export: %zu connection%s left out (see above); --allow-partial accepts that",
		       nleft, nleft == 1 ? "" : "s");
		*rc = 1;
	}
}

/* A streamed format's writer, fed exchange by exchange. */
struct streaming {
	const struct pt_exporter *fmt;
	FILE *f;
	struct pt_export_counts *cnt;
	struct left_out lo;
	size_t nleft;
	struct pt_creds creds;
	char *const *redact;
	size_t nredact, redacted;
	void *dir;		/* a directory format's writer */
	bool headed;
	int werr;		/* writing failed */
};

static int stream_x(void *ctx, const struct pt_capture *cap,
		    const struct pt_xconn *xc, struct pt_exchange *x)
{
	struct streaming *sw = ctx;
	int err;

	if (!sw->headed) {
		sw->headed = true;
		if (sw->fmt->head && (err = sw->fmt->head(cap, sw->f)))
			return sw->werr = err;
	}
	sw->redacted += pt_redact_x(x, sw->redact, sw->nredact);
	err = sw->dir ? sw->fmt->dir_one(sw->dir, cap, xc, x, sw->cnt) :
			sw->fmt->one(cap, sw->f, xc, x, sw->cnt);
	if (err)
		return sw->werr = err;
	pt_creds_add(&sw->creds, x);
	return 0;
}

static void stream_conn(void *ctx, const struct pt_capture *cap,
			const struct pt_xconn *xc)
{
	struct streaming *sw = ctx;

	sw->nleft += left_out_one(sw->fmt, xc, &sw->lo);
}

/*
 * Read and write at once: exchanges go out in order by start as they
 * settle. Returns 0, 1 for a capture that could not be read (said), or
 * < 0 for a write error (not yet said).
 */
static int stream_file(struct pt_capture *cap, const char *const *paths,
		       int n, struct streaming *sw, const char *out)
{
	struct pt_xsink sink = {
		.ctx = sw, .x = stream_x, .conn = stream_conn,
	};
	const struct pt_exporter *fmt = sw->fmt;
	struct pt_out o;
	int err;

	if (pt_out_open(&o, out, PT_OUT_ATOMIC |
			(fmt->binary ? PT_OUT_BINARY : 0), "--out"))
		return 1;
	sw->f = o.f;
	if (fmt->raw_begin)
		fmt->raw_begin(&sink, o.f, sw->cnt);
	err = pt_capture_stream(cap, paths, n, &sink);
	if (fmt->raw_end) {
		/* a write that failed, then or now */
		int e = fmt->raw_end(&sink, cap, err != 0);

		if (e)
			sw->werr = err = e;
	}
	if (err && !sw->werr) {
		pt_out_abort(&o);
		return 1;	/* the capture could not be read: said */
	}
	if (!err && !sw->headed && fmt->head)
		err = fmt->head(cap, o.f);
	if (!err && fmt->tail)
		err = fmt->tail(cap, o.f, sw->cnt);
	if (err)
		pt_out_abort(&o);
	else
		err = pt_out_commit(&o);
	if (err) {
		pt_err("writing %s: %s", o.is_stdout ? "standard output" : out,
		       strerror(-err));
		return 1;
	}
	return 0;
}

/* Is --out (or standard output) a file being read? Writing it would
 * replace the capture with its own export. Said in one line. */
static bool out_is_input(const char *out, const char *const *paths, int n)
{
	struct stat o, st;
	int i;

	if (strcmp(out, "-") ? stat(out, &o) : fstat(STDOUT_FILENO, &o))
		return false;
	if (!S_ISREG(o.st_mode))
		return false;
	for (i = 0; i < n; i++)
		if (strcmp(paths[i], "-") && !stat(paths[i], &st) &&
		    st.st_dev == o.st_dev && st.st_ino == o.st_ino) {
			pt_err("--out %s: is %s, a capture being read; give another path",
			       strcmp(out, "-") ? out : "- (standard output)",
			       paths[i]);
			return true;
		}
	return false;
}

/* The same into a directory (said when it fails): 0, or 1. */
static int stream_dir(struct pt_capture *cap, const char *const *paths,
		      int n, struct streaming *sw, const char *out)
{
	const struct pt_xsink sink = {
		.ctx = sw, .x = stream_x, .conn = stream_conn,
	};
	int err;

	if (sw->fmt->dir_open(out, &sw->dir))
		return 1;
	err = pt_capture_stream(cap, paths, n, &sink);
	if (sw->fmt->dir_close(sw->dir, sw->cnt, err != 0))
		err = -1;
	sw->dir = NULL;
	return err ? 1 : 0;
}

int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "out", required_argument, NULL, 'o' },
		{ "allow-partial", no_argument, NULL, 'P' },
		{ "redact", required_argument, NULL, 'R' },
		{ "max-stream", required_argument, NULL, 'M' },
		{ "max-held", required_argument, NULL, 'H' },
		{ "log-format", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const struct pt_exporter *fmt = NULL;
	const char *name = NULL, *out = NULL;
	struct pt_export_counts cnt = {};
	struct streaming sw = { .cnt = &cnt };
	struct pt_capture cap;
	bool allow_partial = false;
	char *redact[64], cnames[256];
	size_t i, nredact = 0;
	char names[128];
	int opt, rc;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":f:o:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			name = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'P':
			allow_partial = true;
			break;
		case 'R':
			if (!*optarg || nredact == ARRAY_SIZE(redact)) {
				pt_err("--redact: %s", *optarg ? "at most 64 names" :
				       "an empty name");
				return 1;
			}
			redact[nredact++] = optarg;
			break;
		case 'M':
			if (pt_opt_max_stream(optarg))
				return 1;
			break;
		case 'H':
			if (pt_opt_max_held(optarg))
				return 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (pt_opt_other("export", opt, optarg,
					 argv[optind - 1]))
				return 1;
			break;
		}
	}
	if (!name) {
		pt_err("export: give --format: %s", format_list(names, sizeof(names)));
		return 1;
	}
	for (i = 0; pt_exporters[i]; i++)
		if (!strcmp(name, pt_exporters[i]->name))
			fmt = pt_exporters[i];
	if (!fmt) {
		pt_err("export: unknown format '%s' (%s)", name,
		       format_list(names, sizeof(names)));
		return 1;
	}
	if (optind >= argc) {
		pt_err("export: give a capture file, or the segments of one session in order (see --help)");
		return 1;
	}
	if (nredact && fmt->binary) {
		pt_err("--redact: %s holds the bytes as they went over the wire; redact a text format (keploy, har, jsonl)",
		       fmt->name);
		return 1;
	}
	if (fmt->dir_open && out && !strcmp(out, "-")) {
		pt_err("--out -: %s writes a directory, not a stream; give one",
		       fmt->name);
		return 1;
	}
	/* SIGPIPE would end us silently; a closed pipe is a write error */
	signal(SIGPIPE, SIG_IGN);
	if (pt_out_guard_signals()) {
		pt_err("export: cannot set up signal handling");
		return 1;
	}
	sw.fmt = fmt;
	sw.redact = redact;
	sw.nredact = nredact;
	if (fmt->dir_open) {
		out = out ? out : ".";
		rc = stream_dir(&cap, (const char *const *)argv + optind,
				argc - optind, &sw, out);
	} else {
		out = out ? out : "-";
		if (out_is_input(out, (const char *const *)argv + optind,
				 argc - optind))
			return 1;
		rc = stream_file(&cap, (const char *const *)argv + optind,
				 argc - optind, &sw, out);
	}
	if (rc && !cap.files && !cap.conns.n)
		return 1;	/* nothing was read */
	if (nredact)
		pt_dbg("--redact: %zu values replaced", sw.redacted);
	pt_stream_notes(&cap);
	finish_export(&cap, fmt, out, &cnt, &sw.lo, sw.nleft,
		      pt_creds_names(&sw.creds, cnames, sizeof(cnames)),
		      cnames, allow_partial, &rc);
	pt_capture_free(&cap);
	return rc;
}
