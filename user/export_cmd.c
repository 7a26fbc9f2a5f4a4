// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* podtap export: a capture file as Keploy tests, pcapng, HAR or JSON lines. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmds.h"
#include "common.h"
#include "export.h"

static void usage(FILE *f)
{
	fprintf(f,
"Usage: podtap export --format FORMAT [--out PATH] FILE...\n"
"\n"
"Turn a capture file written by `podtap record` into what other tools read.\n"
"Connections are cut into exchanges: HTTP/1.x requests paired with their\n"
"responses (inbound on connections a target accepted: test cases; outbound\n"
"on connections it made: mocks), other protocols as raw turns of each side.\n"
"Bytes that were not captured stay missing; an exchange that runs into them\n"
"is marked incomplete. Several files are read as one capture, in the order\n"
"given (the segments `podtap agent` wrote for one session on one node).\n"
"\n"
"Formats:\n"
"  keploy   a Keploy test set: PATH/keploy/test-set-N/tests/test-K.yaml for\n"
"           inbound HTTP, PATH/keploy/test-set-N/mocks.yaml for outbound HTTP\n"
"           (kind Http) and other protocols (kind Generic). N is the first\n"
"           unused number. PATH is a directory (default: .)\n"
"  pcapng   Ethernet/IP/TCP packets rebuilt from the streams, with process\n"
"           and pod attribution in comments, for Wireshark and tshark\n"
"  har      HAR 1.2 of every HTTP exchange, inbound and outbound\n"
"  jsonl    one JSON object per exchange, HTTP and raw\n"
"\n"
"Options:\n"
"  -f, --format FORMAT   one of keploy, pcapng, har, jsonl\n"
"  -o, --out PATH        where to write (pcapng, har, jsonl: a file, or - for\n"
"                        standard output, the default). A file is written\n"
"                        under a temporary name and renamed when complete.\n"
"  -h, --help            this text\n");
}

static int write_file(const struct pt_capture *cap, const char *fmt,
		      const char *out)
{
	char tmp[4096];
	FILE *f;
	int err;

	if (!strcmp(out, "-"))
		f = stdout;
	else {
		if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out, getpid()) >=
		    (int)sizeof(tmp)) {
			pt_err("--out %s: path too long", out);
			return 1;
		}
		f = fopen(tmp, "wbex");
		if (!f) {
			pt_err("%s: %s", out, strerror(errno));
			return 1;
		}
	}
	if (!strcmp(fmt, "pcapng"))
		err = pt_export_pcapng(cap, f);
	else if (!strcmp(fmt, "har"))
		err = pt_export_har(cap, f);
	else
		err = pt_export_jsonl(cap, f);
	if (fflush(f) || ferror(f))
		err = err ? err : -errno;
	if (f == stdout) {
		if (err)
			pt_err("writing %s: %s", fmt, strerror(-err));
		return err ? 1 : 0;
	}
	if (fclose(f) && !err)
		err = -errno;
	if (!err && rename(tmp, out))
		err = -errno;
	if (err) {
		pt_err("%s: %s", out, strerror(-err));
		unlink(tmp);
		return 1;
	}
	return 0;
}

int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char *const formats[] = { "keploy", "pcapng", "har",
					       "jsonl" };
	const char *fmt = NULL, *out = NULL;
	struct pt_capture cap;
	bool known = false;
	size_t i;
	int opt, rc, set;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":f:o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			fmt = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			pt_bad_option("export", opt, argv[optind - 1]);
			return 1;
		}
	}
	if (!fmt) {
		pt_err("export: give --format: keploy, pcapng, har or jsonl");
		return 1;
	}
	for (i = 0; i < ARRAY_SIZE(formats); i++)
		known |= !strcmp(fmt, formats[i]);
	if (!known) {
		pt_err("export: unknown format '%s' (keploy, pcapng, har or jsonl)",
		       fmt);
		return 1;
	}
	if (optind >= argc) {
		pt_err("export: give a capture file, or the segments of one session in order (see --help)");
		return 1;
	}
	if (pt_capture_load_many(&cap, (const char *const *)argv + optind,
				 argc - optind, true))
		return 1;
	if (!strcmp(fmt, "keploy")) {
		rc = pt_export_keploy(&cap, out ? out : ".", &set) ? 1 : 0;
		if (!rc)
			pt_info("wrote %s/keploy/test-set-%d", out ? out : ".",
				set);
	} else {
		rc = write_file(&cap, fmt, out ? out : "-");
	}
	pt_capture_warn(&cap);
	if (cap.read_err)
		rc = 1;
	pt_capture_free(&cap);
	return rc;
}
