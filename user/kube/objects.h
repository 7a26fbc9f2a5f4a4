/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the agent knows of the cluster: RecordingSessions and the pods of
 * its node, decoded from API objects, and how a pod's container maps to a
 * cgroup v2 directory under the container runtime's layout.
 */
#ifndef __PODTAP_AGENT_K8S_H
#define __PODTAP_AGENT_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pt_kv {
	char *k, *v;
};

enum pt_sel_op { PT_SEL_IN, PT_SEL_NOTIN, PT_SEL_EXISTS, PT_SEL_NOTEXISTS };

struct pt_sel_expr {
	char *key;
	enum pt_sel_op op;
	char **vals;
	int nvals;
};

struct pt_session_spec {
	char *uid, *ns, *name;
	struct pt_kv *match;	/* selector.matchLabels */
	int nmatch;
	struct pt_sel_expr *ex;	/* selector.matchExpressions */
	int nex;
	char **containers;	/* empty: all */
	int ncontainers;
	uint64_t generation;	/* metadata.generation: bumped by spec changes */
	uint64_t created_real_ns;
	uint64_t duration_ns;	/* 0: until deleted */
	uint64_t max_bytes;	/* per node; 0: no limit */
	bool tls;		/* capture TLS plaintext (spec.tls, default true) */
	char invalid[200];	/* why the spec cannot be used, "" if it can */
};

struct pt_container {
	char *name;
	char *id;		/* runtime's id, without "containerd://" */
};

struct pt_pod {
	char *uid, *ns, *name, *node;
	char *qos;		/* "guaranteed", "burstable", "besteffort" */
	struct pt_kv *labels;
	int nlabels;
	struct pt_container *c;	/* containers that have an id (started) */
	int nc;
	bool terminated;	/* phase Succeeded or Failed */
};

/* A node's entry of a session's status.perNode, as it was last written. */
struct pt_node_status {
	uint64_t bytes, lost, conns, segments;
	char phase[16];
	char message[160];
};

/* This node's entry in a RecordingSession's status; -ENOENT if none. */
int pt_session_node_status(const char *json, size_t len, const char *node,
			   struct pt_node_status *ns);

/* Decode an object; one line and <0 when it is not one. */
int pt_session_parse(const char *json, size_t len, struct pt_session_spec *s);
void pt_session_free(struct pt_session_spec *s);
int pt_pod_parse(const char *json, size_t len, struct pt_pod *p);
void pt_pod_free(struct pt_pod *p);
/* metadata.uid of any object, malloc'd, or NULL. */
char *pt_obj_uid(const char *json, size_t len);

/* Does the session select the pod (same namespace, selector matches)? */
bool pt_session_selects(const struct pt_session_spec *s,
			const struct pt_pod *p);
bool pt_session_wants_container(const struct pt_session_spec *s,
				const char *name);

/*
 * The cgroup v2 directory of a pod's container under root, for the
 * kubelet's systemd and cgroupfs drivers and the containerd, CRI-O and
 * docker runtimes. -ENOENT if it is not there (yet).
 */
int pt_container_cgroup(const char *root, const struct pt_pod *p,
			const struct pt_container *c, char *out, size_t n);

#endif
