/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The agent's spool: capture segments per session on local disk
 * (DIR/<namespace>/<session>/<node>-<time>-<seq>.ptcap, ".part" while
 * written), capped in size, and uploaded to a collector when one is given.
 */
#ifndef __PODTAP_SPOOL_H
#define __PODTAP_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct pt_spool_cfg {
	const char *dir;
	const char *node;
	const char *collector;	/* base URL, or NULL: segments stay here */
	uint64_t max_bytes;	/* oldest closed segments go beyond this */
};

struct pt_spool_stats {
	uint64_t bytes;		/* on disk, segments being written included */
	uint64_t segments;	/* closed and open */
	uint64_t queue_segments; /* closed, waiting for the collector */
	uint64_t queue_bytes;
	uint64_t uploaded;	/* segments the collector took */
	uint64_t uploaded_bytes;
	uint64_t upload_failures;
	uint64_t dropped;	/* closed segments removed to keep max_bytes */
	uint64_t dropped_bytes;
};

struct pt_spool;

/*
 * Create dir if needed; segments left by an earlier run are closed as
 * they are (readable up to their last whole block) and queued. One line
 * and <0 on error.
 */
int pt_spool_open(struct pt_spool **out, const struct pt_spool_cfg *c);
/* Stop uploading (after the upload under way); the queue stays on disk. */
void pt_spool_close(struct pt_spool *sp);
/* The path (".part") of a new segment of session ns/name. */
int pt_spool_new_segment(struct pt_spool *sp, const char *ns,
			 const char *name, char *path, size_t n);
/* The segment is whole: rename it to ".ptcap" and queue it. */
int pt_spool_commit(struct pt_spool *sp, const char *part);
void pt_spool_stats(struct pt_spool *sp, struct pt_spool_stats *s);

#endif
