/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __PODTAP_SOCKCG_H
#define __PODTAP_SOCKCG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pt_sockcg {
	uint64_t ino;		/* the socket's inode (/proc/PID/fd: socket:[ino]) */
	uint64_t cgid;		/* the cgroup v2 id it belongs to */
};

/* Every TCP socket in the network namespace of pid (0: podtap's own),
 * sorted by inode. */
int pt_sock_cgroups(pid_t pid, struct pt_sockcg **v, size_t *n);
/* The cgroup of socket ino, 0 if it is not in v. */
uint64_t pt_sockcg_find(const struct pt_sockcg *v, size_t n, uint64_t ino);

#endif
