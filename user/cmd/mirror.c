// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* podtap mirror: a capture's inbound connections, sent to a local process. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cmds.h"
#include "base/common.h"
#include "capfile/capfile.h"
#include "replay/mirror.h"

static void usage(FILE *f)
{
	fprintf(f,
"Usage: podtap mirror --from FILE... --to HOST:PORT [--port N]\n"
"\n"
"Copy every inbound client connection of a capture to a local process:\n"
"one connection there for each captured one, the client's bytes delivered\n"
"in order (TLS plaintext where it was captured), FIN as a half-close and\n"
"a reset as a reset. What the local process answers is read and thrown\n"
"away. Every method goes, writes included: it is a copy of the traffic for\n"
"a local build, not a replay with checks (that is `podtap replay`).\n"
"Connections older than the recording (picked up mid-stream, with no\n"
"request boundary to start at) are not mirrored, and a gap in the capture\n"
"cuts that connection; both are counted. To mirror while recording, use\n"
"`podtap record --mirror-to HOST:PORT`.\n"
"\n"
"Options:\n"
"      --from FILE     a capture file (repeat, or list them after the\n"
"                      options: the segments of one session, in order)\n"
"      --to HOST:PORT  where to send; connected to once first, to check\n"
"      --port N        only connections to this server port of the target\n"
"  -h, --help          this text\n"
"\n"
"Ends with one line of counts. Exit status: 0 when every mirrored\n"
"connection was delivered, 1 when one was cut (a capture gap, a local\n"
"process that stopped reading or closed first, an error) or the capture\n"
"is damaged; 2 for bad options or a file that is not a capture.\n");
}

static int feed(void *ctx, const struct pt_rec_hdr *h)
{
	pt_mirror_record(ctx, h);
	return 0;
}

int cmd_mirror(int argc, char **argv)
{
	enum { O_FROM = 256, O_TO, O_PORT };
	static const struct option opts[] = {
		{ "from", required_argument, NULL, O_FROM },
		{ "to", required_argument, NULL, O_TO },
		{ "port", required_argument, NULL, O_PORT },
		{ "log-format", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct pt_mirror_opts mo = {
		.conn_buf = 64u << 20, .total_buf = 256u << 20,
		.max_conns = 4096, .write_timeout_ns = 10000000000ULL,
		.wait = true,
	};
	const char **files = NULL;
	struct pt_mirror_stats st;
	struct pt_mirror *m;
	char *line;
	size_t nfiles = 0, i;
	bool damaged = false;
	uint64_t u;
	int opt, rc = 2;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
		switch (opt) {
		case O_FROM:
			files = pt_xrealloc(files, nfiles + 1, sizeof(*files));
			files[nfiles++] = optarg;
			break;
		case O_TO:
			mo.to = optarg;
			break;
		case O_PORT:
			if (pt_parse_u64(optarg, 1, 65535, &u)) {
				pt_err("--port %s: want a port, 1 to 65535", optarg);
				goto out;
			}
			mo.port = (uint16_t)u;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			if (pt_opt_other("mirror", opt, optarg, argv[optind - 1]))
				goto out;
			break;
		}
	}
	for (; optind < argc; optind++) {
		files = pt_xrealloc(files, nfiles + 1, sizeof(*files));
		files[nfiles++] = argv[optind];
	}
	if (!nfiles) {
		pt_err("mirror: give --from FILE, a capture to mirror (see --help)");
		goto out;
	}
	if (!mo.to) {
		pt_err("mirror: give --to HOST:PORT, the local process to send to");
		goto out;
	}
	for (i = 0; i < nfiles; i++)
		for (size_t k = 0; k < i; k++)
			if (pt_same_file(files[i], files[k])) {
				pt_err("mirror: %s: the same file as %s, given twice",
				       files[i], files[k]);
				goto out;
			}
	signal(SIGPIPE, SIG_IGN);
	if (pt_mirror_start(&m, &mo))
		goto out;
	rc = 0;
	for (i = 0; i < nfiles; i++) {
		struct pt_capr_info info;
		FILE *f = strcmp(files[i], "-") ? fopen(files[i], "r") : stdin;
		int err;

		if (!f) {
			pt_err("mirror: %s: %s", files[i], strerror(errno));
			rc = 2;
			break;
		}
		err = pt_capr_read(f, feed, m, &info);
		if (f != stdin)
			fclose(f);
		if (err == -EBADMSG && !info.records) {
			pt_err("mirror: %s: not a capture file (%s)", files[i],
			       info.error);
			rc = 2;
			break;
		}
		if (err == -EBADMSG) {
			pt_err("mirror: %s: %s; mirrored up to there", files[i],
			       info.error);
			damaged = true;
		} else if (err) {
			pt_err("mirror: %s: %s", files[i], info.error[0] ?
			       info.error : strerror(-err));
			rc = 2;
			break;
		}
	}
	pt_mirror_stop(m, 10000000000ULL, &st);
	line = pt_mirror_summary(mo.to, &st);
	pt_info("%s", line);
	free(line);
	if (!rc && (damaged || st.cut_gap || st.cut_slow || st.cut_error ||
		    st.cut_closed))
		rc = 1;
out:
	free(files);
	return rc;
}
