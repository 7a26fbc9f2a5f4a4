// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdio.h>
#include <string.h>
#include "cmd/cmds.h"
#include "base/common.h"

/* The commands, in the order --help lists them: one entry each. */
static const struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} cmds[] = {
	{ "record", cmd_record,
	  "capture the TCP payload of target cgroups / processes to a file" },
	{ "read", cmd_read,
	  "show the connections, exchanges and bytes in a capture file" },
	{ "export", cmd_export,
	  "write a capture as Keploy tests and mocks, pcapng, HAR or JSON lines" },
	{ "replay", cmd_replay,
	  "send a capture's inbound HTTP requests to a service, diff the answers" },
	{ "mock", cmd_mock,
	  "answer HTTP requests with a capture's recorded outbound responses" },
	{ "mirror", cmd_mirror,
	  "copy a capture's inbound connections to a local process" },
	{ "status", cmd_status,
	  "show the recorders running: programs, attach points, targets, counters" },
	{ "agent", cmd_agent,
	  "the per-node recorder of a cluster: RecordingSessions to segments" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
"Usage: podtap COMMAND [OPTIONS]\n"
"\n"
"podtap records what processes (Kubernetes pods) say over TCP, from eBPF,\n"
"with no sidecar and no restart.\n"
"\n"
"Commands:\n");
	for (i = 0; i < ARRAY_SIZE(cmds); i++)
		fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f,
"\n"
"Global options, before the command (or after it, as any command's own):\n"
"  --log-format FMT   text (default) or json: log lines as JSON objects\n"
"  -v, --verbose      debug output\n"
"\n"
"Run 'podtap COMMAND --help' for the options of a command; 'podtap --version'\n"
"prints the version.\n");
}

int main(int argc, char **argv)
{
	size_t i;

	/* global options before the command apply to every command */
	while (argc > 1 && argv[1][0] == '-') {
		const char *fmt = NULL;

		if (!strcmp(argv[1], "--log-format")) {
			if (argc < 3) {
				pt_err("--log-format: want text or json");
				return 2;
			}
			fmt = argv[2];
		} else if (!strncmp(argv[1], "--log-format=", 13)) {
			fmt = argv[1] + 13;
		} else if (!strcmp(argv[1], "-v") ||
			   !strcmp(argv[1], "--verbose")) {
			pt_verbose = true;
			argc--;
			argv++;
			continue;
		} else {
			break;
		}
		if (pt_set_log_format(fmt)) {
			pt_err("--log-format %s: want text or json", fmt);
			return 2;
		}
		argc -= fmt == argv[2] ? 2 : 1;
		argv += fmt == argv[2] ? 2 : 1;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("podtap %s\n", PT_VERSION);
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(cmds); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	pt_err("unknown command '%s' (try 'podtap --help')", argv[1]);
	return 2;
}
