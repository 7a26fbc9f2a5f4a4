// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include "capture/cgroup.h"

int pt_cgroup2_root(char *buf, size_t size)
{
	char line[4096], mnt[PATH_MAX], fstype[64];
	int found = 0;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint opts... - fstype src opts */
		char *sep = strstr(line, " - ");

		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1 ||
		    strcmp(fstype, "cgroup2"))
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		/* Prefer the conventional place when both exist. */
		if (!found || strcmp(mnt, "/sys/fs/cgroup") == 0) {
			snprintf(buf, size, "%s", mnt);
			found = 1;
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

int pt_cgroup_id(const char *abs, uint64_t *id)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = { .fh.handle_bytes = sizeof(uint64_t) };
	struct statfs sfs;
	int mount_id;

	if (statfs(abs, &sfs))
		return -errno;
	if (sfs.f_type != CGROUP2_SUPER_MAGIC)
		return -ENOTDIR;
	/* The kernfs node id is the cgroup id the BPF helpers return. */
	if (name_to_handle_at(AT_FDCWD, abs, &h.fh, &mount_id, 0))
		return -errno;
	*id = h.id;
	return 0;
}

int pt_cgroup_resolve(const char *arg, char *abs, size_t size, uint64_t *id)
{
	char root[PATH_MAX], tmp[PATH_MAX], *real;
	size_t rl;
	int err, n;

	err = pt_cgroup2_root(root, sizeof(root));
	if (err)
		return err;
	rl = strlen(root);
	if (strncmp(arg, root, rl) == 0 && (arg[rl] == '/' || !arg[rl]))
		n = snprintf(tmp, sizeof(tmp), "%s", arg);
	else
		n = snprintf(tmp, sizeof(tmp), "%s/%s", root,
			     arg[0] == '/' ? arg + 1 : arg);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	real = realpath(tmp, NULL);
	if (!real)
		return -errno;
	if (strncmp(real, root, rl) || (real[rl] != '/' && real[rl])) {
		free(real);
		return -EXDEV;
	}
	snprintf(abs, size, "%s", real);
	free(real);
	return pt_cgroup_id(abs, id);
}

int pt_pid_cgroup(pid_t pid, char *abs, size_t size)
{
	char path[64], line[4096], root[PATH_MAX];
	int err = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* cgroup v2 is the "0::" line. */
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = 0;
		err = pt_cgroup2_root(root, sizeof(root));
		if (!err && snprintf(abs, size, "%s%s", root,
				     strcmp(line + 3, "/") ? line + 3 : "") >=
				    (int)size)
			err = -ENAMETOOLONG;
		break;
	}
	fclose(f);
	return err;
}

int pt_pid_pidns(pid_t pid, uint32_t *inum)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
	if (stat(path, &st))
		return -errno;
	*inum = (uint32_t)st.st_ino;
	return 0;
}

int pt_path_covers(const char *a, const char *b)
{
	size_t la = strlen(a);

	return strncmp(a, b, la) == 0 && (b[la] == '/' || !b[la]);
}
