// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Outputs that a mistake cannot turn against the machine (user/base/outfile.c):
 * a FIFO written in place, an existing file untouched by a run that never
 * began, a temporary file renamed only when whole, modes, locks, a full
 * device's error. The devices are made here with mknod (root) and skipped
 * otherwise: the machine's /dev/null and /dev/full are never used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include "base/common.h"
#include "base/outfile.h"
#include "test_progs.h"

static char dir[64];

static const char *at(const char *name)
{
	static char p[2][128];
	static int k;

	k ^= 1;
	snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
	return p[k];
}

static int mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : (int)(st.st_mode & 0777);
}

static bool file_is(const char *path, const char *want)
{
	char buf[64] = "";
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return !strcmp(buf, want);
}

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	fputs(s, f);
	fclose(f);
}

/* Write s if the open worked: a failed assertion never crashes the run. */
static void put(struct pt_out *o, const char *s)
{
	if (o->f)
		fputs(s, o->f);
}

static int count_entries(void)
{
	char cmd[128];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", dir);
	p = popen(cmd, "r");
	if (p && fscanf(p, "%d", &n) != 1)
		n = -1;
	if (p)
		pclose(p);
	return n;
}

void test_outfile(void)
{
	struct pt_out o;
	struct stat st;
	int before;

	snprintf(dir, sizeof(dir), "/tmp/podtap-unit-out.XXXXXX");
	if (!ASSERT_TRUE(mkdtemp(dir), "mkdtemp"))
		return;
	pt_log_json = false;

	/* atomic: the old file stays whole until commit; new mode 0600 */
	write_file(at("a.har"), "old");
	ASSERT_OK(pt_out_open(&o, at("a.har"), PT_OUT_ATOMIC, "-o"), "open atomic");
	put(&o, "new");
	ASSERT_TRUE(file_is(at("a.har"), "old"), "old until commit");
	ASSERT_OK(pt_out_commit(&o), "commit");
	ASSERT_TRUE(file_is(at("a.har"), "new"), "new after commit");
	ASSERT_EQ(mode_of(at("a.har")), 0600, "mode 0600");
	/* atomic abort: nothing left, the old file as it was */
	before = count_entries();
	ASSERT_OK(pt_out_open(&o, at("a.har"), PT_OUT_ATOMIC, "-o"), "open again");
	put(&o, "half");
	pt_out_abort(&o);
	ASSERT_TRUE(file_is(at("a.har"), "new"), "abort keeps the file");
	ASSERT_EQ(count_entries(), before, "no temporary file left");
	/* a symlink is followed: the link stays a link */
	ASSERT_OK(symlink("a.har", at("link.har")), "symlink");
	ASSERT_OK(pt_out_open(&o, at("link.har"), PT_OUT_ATOMIC, "-o"), "open via link");
	put(&o, "via");
	ASSERT_OK(pt_out_commit(&o), "commit via link");
	ASSERT_TRUE(!lstat(at("link.har"), &st) && S_ISLNK(st.st_mode), "still a link");
	ASSERT_TRUE(file_is(at("a.har"), "via"), "the file it names was written");
	ASSERT_OK(symlink("gone", at("nothing-link")), "a dangling link");
	ASSERT_TRUE(pt_out_open(&o, at("nothing-link"), PT_OUT_ATOMIC, "-o") < 0,
		    "a dangling link is refused");
	ASSERT_EQ(pt_out_open(&o, dir, PT_OUT_ATOMIC, "-o"), -EISDIR, "a directory");
	ASSERT_EQ(pt_out_open(&o, "", PT_OUT_ATOMIC, "-o"), -EINVAL, "an empty path");

	/* in place: untouched until begun, removed if made and never begun */
	write_file(at("c.ptcap"), "precious");
	ASSERT_OK(pt_out_open(&o, at("c.ptcap"), PT_OUT_INPLACE, "-w"), "open in place");
	pt_out_abort(&o);
	ASSERT_TRUE(file_is(at("c.ptcap"), "precious"), "an existing file survives a failed start");
	ASSERT_OK(pt_out_open(&o, at("new.ptcap"), PT_OUT_INPLACE, "-w"), "open new");
	ASSERT_EQ(mode_of(at("new.ptcap")), 0600, "a new capture is 0600");
	pt_out_abort(&o);
	ASSERT_TRUE(access(at("new.ptcap"), F_OK), "a new file never begun is gone");
	ASSERT_OK(pt_out_open(&o, at("c.ptcap"), PT_OUT_INPLACE, "-w"), "open to record");
	/* a second writer, in another process, is told who holds it */
	{
		pid_t child = fork();

		if (!child) {
			struct pt_out o2;
			int fd = open("/dev/null", O_WRONLY);	/* read-only use: silence */

			dup2(fd, STDERR_FILENO);
			_exit(pt_out_open(&o2, at("c.ptcap"), PT_OUT_INPLACE, "-w") == -EBUSY ? 0 : 1);
		}
		int ws = 0;

		waitpid(child, &ws, 0);
		ASSERT_TRUE(WIFEXITED(ws) && !WEXITSTATUS(ws), "a second writer gets EBUSY");
	}
	ASSERT_OK(o.f ? pt_out_begin(&o) : -EBADF, "begin");
	put(&o, "rec");
	ASSERT_OK(pt_out_commit(&o), "commit in place");
	ASSERT_TRUE(file_is(at("c.ptcap"), "rec"), "truncated at begin, then written");

	/* a FIFO is written in place, never renamed over */
	ASSERT_OK(mkfifo(at("fifo"), 0600), "mkfifo");
	ASSERT_EQ(pt_out_open(&o, at("fifo"), PT_OUT_ATOMIC, "-o"), -ENXIO,
		  "a FIFO nobody reads is refused, not waited on");
	{
		int rfd = open(at("fifo"), O_RDONLY | O_NONBLOCK);
		char buf[8] = "";

		if (ASSERT_OK(pt_out_open(&o, at("fifo"), PT_OUT_ATOMIC, "-o"),
			      "open a FIFO with a reader")) {
			put(&o, "abc");
			ASSERT_OK(pt_out_commit(&o), "commit a FIFO");
			ASSERT_EQ(read(rfd, buf, sizeof(buf) - 1), 3, "the reader got 3 bytes");
			ASSERT_TRUE(!memcmp(buf, "abc", 3), "the bytes written");
		}
		close(rfd);
		ASSERT_TRUE(!lstat(at("fifo"), &st) && S_ISFIFO(st.st_mode), "still a FIFO");
	}
	/* a full device: the error is caught at commit, the node stays */
	if (!mknod(at("full"), S_IFCHR | 0666, makedev(1, 7))) {
		if (ASSERT_OK(pt_out_open(&o, at("full"), PT_OUT_ATOMIC, "-o"), "open full")) {
			put(&o, "x");
			ASSERT_EQ(pt_out_commit(&o), -ENOSPC, "ENOSPC at commit");
		}
		ASSERT_TRUE(!lstat(at("full"), &st) && S_ISCHR(st.st_mode), "still a device");
		if (ASSERT_OK(pt_out_open(&o, at("full"), PT_OUT_INPLACE, "-w"),
			      "open full in place")) {
			pt_out_begin(&o);
			pt_out_abort(&o);
		}
		ASSERT_TRUE(!lstat(at("full"), &st) && S_ISCHR(st.st_mode), "never removed");
	} else {
		fprintf(stderr, "test_outfile: mknod: %s; device cases skipped\n",
			strerror(errno));
	}
	{
		char cmd[96];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			fprintf(stderr, "test_outfile: %s failed\n", cmd);
	}
}
