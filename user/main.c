// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdio.h>
#include <string.h>
#include "cmds.h"
#include "common.h"

static void usage(FILE *f)
{
	fprintf(f,
"Usage: podtap COMMAND [OPTIONS]\n"
"\n"
"podtap records what processes (Kubernetes pods) say over TCP, from eBPF,\n"
"with no sidecar and no restart.\n"
"\n"
"Commands:\n"
"  record    capture the TCP payload of target cgroups / processes to a file\n"
"  read      show the connections, exchanges and bytes in a capture file\n"
"  export    write a capture as Keploy tests and mocks, pcapng, HAR or JSON lines\n"
"  status    show the recorders running: programs, attach points, targets, counters\n"
"  agent     the per-node recorder of a cluster: RecordingSessions to segments\n"
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
	if (!strcmp(argv[1], "record"))
		return cmd_record(argc - 1, argv + 1);
	if (!strcmp(argv[1], "read"))
		return cmd_read(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "agent"))
		return cmd_agent(argc - 1, argv + 1);
	if (!strcmp(argv[1], "export"))
		return cmd_export(argc - 1, argv + 1);
	pt_err("unknown command '%s' (try 'podtap --help')", argv[1]);
	return 2;
}
