// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Output paths that a mistake cannot turn against the machine: outfile.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/common.h"
#include "base/outfile.h"

/*
 * What an interrupted run must remove: temporary files and one tree. The
 * lock is held while they are made, renamed or removed, so the signal
 * thread never sees one half made.
 */
static pthread_mutex_t pending_mu = PTHREAD_MUTEX_INITIALIZER;
static char pending[4][PATH_MAX + 32];
static char pending_tree[PATH_MAX];
static bool pending_inplace;	/* stdout, a device or a FIFO being written */

static void pending_set(const char *path, bool on)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(pending); i++)
		if (on ? !pending[i][0] : !strcmp(pending[i], path)) {
			if (on)
				snprintf(pending[i], sizeof(pending[i]), "%s", path);
			else
				pending[i][0] = 0;
			return;
		}
}

static int fail(const struct pt_out *o, const char *what, int err)
{
	pt_err("%s %s: %s", what, o->name, strerror(-err));
	return err;
}

/* A write lock on the whole file, or who holds one. */
static int lock_file(struct pt_out *o, int fd, const char *what)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (!fcntl(fd, F_SETLK, &fl))
		return 0;
	if (errno != EAGAIN && errno != EACCES)
		return fail(o, what, -errno);
	fl.l_type = F_WRLCK;
	if (!fcntl(fd, F_GETLK, &fl) && fl.l_type != F_UNLCK)
		pt_err("%s %s: another process (pid %d) is writing it; give another file",
		       what, o->name, (int)fl.l_pid);
	else
		pt_err("%s %s: another process is writing it; give another file",
		       what, o->name);
	return -EBUSY;
}

/* o->f over fd, which is closed (and a file made here removed) if not. */
static int set_file(struct pt_out *o, int fd, const char *what)
{
	int err;

	o->f = fdopen(fd, "wb");
	if (o->f)
		return 0;
	err = -errno;
	close(fd);
	if (o->created)
		unlink(o->path);
	pthread_mutex_lock(&pending_mu);
	if (o->tmp[0]) {
		unlink(o->tmp);
		pending_set(o->tmp, false);
	}
	pthread_mutex_unlock(&pending_mu);
	o->created = false;
	o->tmp[0] = 0;
	return fail(o, what, err);
}

static int open_inplace(struct pt_out *o, const char *what)
{
	struct stat st;
	int fd;

	fd = open(o->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		o->created = true;
	else if (errno == EEXIST)
		fd = open(o->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(o, what, -errno);
	if (fstat(fd, &st)) {
		int err = -errno;

		close(fd);
		return fail(o, what, err);
	}
	o->regular = S_ISREG(st.st_mode);
	if (o->regular) {
		int err = lock_file(o, fd, what);

		if (err) {
			close(fd);
			if (o->created)
				unlink(o->path);
			o->created = false;
			return err;
		}
	}
	return set_file(o, fd, what);
}

/* The temporary file beside the real one, which a symlink leads to. */
static int open_atomic(struct pt_out *o, const char *what)
{
	char dir[PATH_MAX], base[PATH_MAX];
	char *real = realpath(o->name, NULL);
	int fd;

	if (real) {
		snprintf(o->path, sizeof(o->path), "%s", real);
		free(real);
	}
	snprintf(dir, sizeof(dir), "%s", o->path);
	snprintf(base, sizeof(base), "%s", o->path);
	if (snprintf(o->tmp, sizeof(o->tmp), "%s/.%s.tmp.%d", dirname(dir),
		     basename(base), (int)getpid()) >= (int)sizeof(o->tmp))
		return fail(o, what, -ENAMETOOLONG);
	pthread_mutex_lock(&pending_mu);
	fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		pending_set(o->tmp, true);
	pthread_mutex_unlock(&pending_mu);
	if (fd < 0) {
		int err = -errno;

		o->tmp[0] = 0;
		return fail(o, what, err);
	}
	o->regular = true;
	return set_file(o, fd, what);
}

/*
 * A device, a FIFO or a socket: written where it is. A FIFO nobody reads
 * would block the open for ever: that is said instead.
 */
static int open_special(struct pt_out *o, bool fifo, const char *what)
{
	int fd = open(o->path, O_WRONLY | O_CLOEXEC | (fifo ? O_NONBLOCK : 0));

	if (fd < 0 && fifo && errno == ENXIO) {
		pt_err("%s %s: a FIFO that no process reads; start its reader first",
		       what, o->name);
		return -ENXIO;
	}
	if (fd < 0)
		return fail(o, what, -errno);
	if (fifo && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)) {
		int err = -errno;

		close(fd);
		return fail(o, what, err);
	}
	if ((o->flags & PT_OUT_BINARY) && isatty(fd)) {
		close(fd);
		pt_err("%s %s: a terminal; give a file", what, o->name);
		return -EINVAL;
	}
	pending_inplace = true;
	return set_file(o, fd, what);
}

int pt_out_open(struct pt_out *o, const char *path, unsigned flags,
		const char *what)
{
	struct stat st, lst;

	memset(o, 0, sizeof(*o));
	o->name = path;
	o->flags = flags;
	if (!path[0]) {
		pt_err("%s: an empty path (give a file, or - for standard output)",
		       what);
		return -EINVAL;
	}
	if (!strcmp(path, "-")) {
		if ((flags & PT_OUT_BINARY) && isatty(STDOUT_FILENO)) {
			pt_err("%s -: standard output is a terminal; redirect it or give a file",
			       what);
			return -EINVAL;
		}
		if (fcntl(STDOUT_FILENO, F_GETFL) < 0) {
			pt_err("%s -: standard output is closed", what);
			return -EBADF;
		}
		o->is_stdout = true;
		o->f = stdout;
		pending_inplace = true;
		return 0;
	}
	if (snprintf(o->path, sizeof(o->path), "%s", path) >=
	    (int)sizeof(o->path))
		return fail(o, what, -ENAMETOOLONG);
	if (stat(path, &st)) {
		if (errno != ENOENT)
			return fail(o, what, -errno);
		if (!lstat(path, &lst)) {
			pt_err("%s %s: a symbolic link to nothing; give the file itself",
			       what, path);
			return -ENOENT;
		}
	} else if (S_ISDIR(st.st_mode)) {
		return fail(o, what, -EISDIR);
	} else if (!S_ISREG(st.st_mode)) {
		return open_special(o, S_ISFIFO(st.st_mode), what);
	}
	return flags & PT_OUT_INPLACE ? open_inplace(o, what) :
					open_atomic(o, what);
}

int pt_out_begin(struct pt_out *o)
{
	o->begun = true;
	if (!(o->flags & PT_OUT_INPLACE) || !o->regular || o->created)
		return 0;
	/* what it will hold is credentials too: as a new file's mode */
	if (ftruncate(fileno(o->f), 0) || fchmod(fileno(o->f), 0600))
		return -errno;
	return 0;
}

int pt_out_commit(struct pt_out *o)
{
	int err = 0;

	if (!o->f)
		return -EBADF;
	if (fflush(o->f) || ferror(o->f))
		err = errno ? -errno : -EIO;
	if (o->is_stdout) {
		o->f = NULL;
		return err;
	}
	if (fclose(o->f) && !err)
		err = -errno;
	o->f = NULL;
	pthread_mutex_lock(&pending_mu);
	if (!err && o->tmp[0] && rename(o->tmp, o->path))
		err = -errno;
	if (err && o->tmp[0])
		unlink(o->tmp);
	if (o->tmp[0])
		pending_set(o->tmp, false);
	pthread_mutex_unlock(&pending_mu);
	o->tmp[0] = 0;
	return err;
}

void pt_out_abort(struct pt_out *o)
{
	struct stat a, b;

	if (o->f && !o->is_stdout) {
		/* a file made here and never begun: the same file still? */
		bool drop = o->created && !o->begun &&
			    !fstat(fileno(o->f), &a) && !stat(o->path, &b) &&
			    a.st_ino == b.st_ino && a.st_dev == b.st_dev &&
			    S_ISREG(b.st_mode);

		if (drop)
			unlink(o->path);
		fclose(o->f);
	}
	o->f = NULL;
	pthread_mutex_lock(&pending_mu);
	if (o->tmp[0]) {
		unlink(o->tmp);
		pending_set(o->tmp, false);
	}
	pthread_mutex_unlock(&pending_mu);
	o->tmp[0] = 0;
}

FILE *pt_out_create_excl(const char *path)
{
	FILE *f;
	int fd;

	/* not while an interrupted run removes its tree */
	pthread_mutex_lock(&pending_mu);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	pthread_mutex_unlock(&pending_mu);

	if (fd < 0)
		return NULL;
	f = fdopen(fd, "wb");
	if (!f) {
		int err = errno;

		close(fd);
		unlink(path);
		errno = err;
	}
	return f;
}

void pt_rm_tree(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >=
		    (int)sizeof(path))
			continue;
		/* never follows a symlink out of the tree */
		if (!lstat(path, &st) && S_ISDIR(st.st_mode))
			pt_rm_tree(path);
		else
			unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

void pt_out_pending_dir(const char *dir)
{
	pthread_mutex_lock(&pending_mu);
	snprintf(pending_tree, sizeof(pending_tree), "%s", dir ? dir : "");
	pthread_mutex_unlock(&pending_mu);
}

int pt_out_commit_dir(const char *final)
{
	int err = 0;

	pthread_mutex_lock(&pending_mu);
	if (rename(pending_tree, final))
		err = -errno;
	else
		pending_tree[0] = 0;
	pthread_mutex_unlock(&pending_mu);
	return err;
}

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	size_t i;
	int sig = 0;

	sigwait(set, &sig);
	/* held until exit: nothing new is made or renamed from here on */
	pthread_mutex_lock(&pending_mu);
	for (i = 0; i < ARRAY_SIZE(pending); i++)
		if (pending[i][0])
			unlink(pending[i]);
	if (pending_tree[0])
		pt_rm_tree(pending_tree);
	if (pending_inplace)
		pt_err("interrupted (%s): what was written in place (standard output, a device or a FIFO) is incomplete",
		       strsignal(sig));
	else
		pt_err("interrupted (%s): nothing partial was left behind",
		       strsignal(sig));
	_exit(128 + sig);
	return NULL;
}

int pt_out_guard_signals(void)
{
	static sigset_t set;
	pthread_t t;
	int err;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGALRM);
	signal(SIGXFSZ, SIG_IGN);
	err = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (!err)
		err = pthread_create(&t, NULL, signal_thread, &set);
	if (!err)
		pthread_detach(t);
	return -err;
}
