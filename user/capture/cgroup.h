/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __PODTAP_CGROUP_H
#define __PODTAP_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where cgroup v2 is mounted: /sys/fs/cgroup, /sys/fs/cgroup/unified, ... */
int pt_cgroup2_root(char *buf, size_t size);
/*
 * A cgroup given as a path under the cgroup v2 mount, or as a path relative
 * to it ("/kubepods.slice/..." also works): its absolute path and its id.
 */
int pt_cgroup_resolve(const char *arg, char *abs, size_t size, uint64_t *id);
/* The cgroup v2 id of an absolute cgroup directory. */
int pt_cgroup_id(const char *abs, uint64_t *id);
/* The absolute cgroup v2 directory of a process. */
int pt_pid_cgroup(pid_t pid, char *abs, size_t size);
/* The inode of a process's pid namespace. */
int pt_pid_pidns(pid_t pid, uint32_t *inum);
/* Is a the same directory as b, or one of its ancestors? */
int pt_path_covers(const char *a, const char *b);

#endif
