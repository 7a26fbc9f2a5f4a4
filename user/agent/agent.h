/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The per-node agent (agent/agent.c), as `podtap agent` starts it. */
#ifndef __PODTAP_AGENT_H
#define __PODTAP_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include "agent/spool.h"
#include "capture/runtime.h"

struct pt_agent_cfg {
	const char *node;		/* this node's name */
	const char *cg_root;		/* the kubelet's cgroups, resolved */
	const char *kubeconfig;		/* NULL: the pod's service account */
	struct pt_spool_cfg spool;
	uint64_t seg_size, seg_time;	/* a segment closes at either */
	uint64_t status_ns;		/* counters to the status this often */
	struct pt_runtime_cfg rt;	/* ring, poll, metrics, pin */
};

/* Watch, capture, spool and report until a signal; the exit status. */
int pt_agent_run(const struct pt_agent_cfg *c);

#endif
