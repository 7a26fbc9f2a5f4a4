// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Target names for `podtap status`, one small file per recorder. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/common.h"
#include "capture/tgnames.h"

/* Names go in tab-separated fields: no tabs or newlines in them. */
static void put_field(FILE *f, const char *s)
{
	for (; s && *s; s++)
		fputc(*s == '\t' || *s == '\n' ? ' ' : *s, f);
}

/* Files of recorders that are gone (killed before they could clean up). */
static void clear_stale(void)
{
	DIR *d = opendir(PT_TGNAMES_DIR);
	struct dirent *de;
	char p[300];

	while (d && (de = readdir(d))) {
		int pid = atoi(de->d_name);

		if (pid > 0 && kill(pid, 0) && errno == ESRCH) {
			snprintf(p, sizeof(p), PT_TGNAMES_DIR "/%s", de->d_name);
			unlink(p);
		}
	}
	if (d)
		closedir(d);
}

int pt_tgnames_write(const struct pt_tgname *v, int n)
{
	static bool cleared;
	char path[64], tmp[80];
	FILE *f;
	int i;

	if (mkdir(PT_TGNAMES_DIR, 0755) && errno != EEXIST)
		return -errno;
	if (!cleared) {
		clear_stale();
		cleared = true;
	}
	snprintf(path, sizeof(path), PT_TGNAMES_DIR "/%d.targets", (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	for (i = 0; i < n; i++) {
		fprintf(f, "%d\t%llu\t%u\t", v[i].kind,
			(unsigned long long)v[i].id, v[i].session);
		put_field(f, v[i].session_name);
		fputc('\t', f);
		put_field(f, v[i].what);
		fputc('\n', f);
	}
	if (fclose(f) || rename(tmp, path)) {
		int err = -errno;

		unlink(tmp);
		return err;
	}
	return 0;
}

void pt_tgnames_remove(void)
{
	char path[64];

	snprintf(path, sizeof(path), PT_TGNAMES_DIR "/%d.targets", (int)getpid());
	unlink(path);
}

int pt_tgnames_find(pid_t pid, int kind, uint64_t id, char *session,
		    size_t sn, char *what, size_t wn)
{
	char path[64], line[1024];
	int err = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), PT_TGNAMES_DIR "/%d.targets", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *rest = line, *fld[5];
		int n;

		line[strcspn(line, "\n")] = 0;
		/* strsep keeps empty fields where strtok would skip them */
		for (n = 0; n < 5 && rest; n++)
			fld[n] = strsep(&rest, "\t");
		if (n < 5 || atoi(fld[0]) != kind ||
		    strtoull(fld[1], NULL, 10) != id)
			continue;
		snprintf(session, sn, "%s", fld[3]);
		snprintf(what, wn, "%s", fld[4]);
		err = 0;
		break;
	}
	if (f)
		fclose(f);
	return err;
}
