/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Output paths, opened so that a mistake cannot hurt the machine. podtap
 * runs as root, so "-w /dev/null" must never rename over or unlink the
 * device node, and a run that fails before it writes anything must leave
 * an existing file as it was.
 *
 *  "-"               standard output; refused for binary output when it
 *                    is a terminal.
 *  not a regular     (a device, a FIFO, a socket, /dev/stdout to a pipe)
 *  file              opened and written in place: never truncated,
 *                    renamed over or unlinked.
 *  a regular file,   PT_OUT_ATOMIC: written under a temporary name beside
 *  or a new one      it (a symlink is followed to the real file) and
 *                    renamed over it by pt_out_commit, so readers see the
 *                    old file or the whole new one.
 *                    PT_OUT_INPLACE: opened without truncating and locked
 *                    (an fcntl write lock, whose holder pt_out_open names);
 *                    pt_out_begin truncates it (and makes it 0600) once
 *                    there is something to write, so it reads while
 *                    written.
 *
 * Files podtap creates are mode 0600: captures and exports hold whatever
 * went over the wire, credentials included.
 */
#ifndef __PODTAP_OUTFILE_H
#define __PODTAP_OUTFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

enum {
	PT_OUT_ATOMIC	= 1 << 0,	/* temporary file, renamed at commit */
	PT_OUT_INPLACE	= 1 << 1,	/* locked, truncated at begin */
	PT_OUT_BINARY	= 1 << 2,	/* never to a terminal */
};

struct pt_out {
	FILE *f;
	const char *name;	/* as the user gave it, for messages */
	char path[PATH_MAX];	/* the file written at commit (regular) */
	char tmp[PATH_MAX + 32]; /* PT_OUT_ATOMIC's temporary file, or "" */
	unsigned flags;
	bool is_stdout;
	bool regular;		/* a regular file: may be truncated, renamed */
	bool created;		/* PT_OUT_INPLACE made it: gone on abort */
	bool begun;		/* pt_out_begin ran: kept on abort */
};

/* Opens o->f; on error says why in one line, prefixed by what (e.g.
 * "-w"), and returns -errno. */
int pt_out_open(struct pt_out *o, const char *path, unsigned flags,
		const char *what);
/* PT_OUT_INPLACE: truncate now (a regular file). Others: nothing. */
int pt_out_begin(struct pt_out *o);
/*
 * Flush, close, and for PT_OUT_ATOMIC rename into place. Every error of
 * the writes before it is caught here (ferror), as is that of the final
 * flush and close. Says nothing; returns -errno.
 */
int pt_out_commit(struct pt_out *o);
/* Close without committing: PT_OUT_ATOMIC's temporary file goes, a file
 * PT_OUT_INPLACE created goes unless begun; nothing else is removed. */
void pt_out_abort(struct pt_out *o);

/* A new regular file at path, mode 0600, O_EXCL (keploy's YAML files). */
FILE *pt_out_create_excl(const char *path);

/*
 * Ctrl-C, SIGTERM, SIGHUP (or another signal that would end the process:
 * SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM) while an export writes: from here
 * on the calling thread (call it before making others) leaves them to a
 * thread that removes every PT_OUT_ATOMIC temporary file and the
 * directory given to pt_out_pending_dir, says so, and exits 128 + the
 * signal. A file grown past `ulimit -f` is a write error (EFBIG), not
 * SIGXFSZ.
 */
int pt_out_guard_signals(void);
/* A directory tree being written, removed if interrupted; NULL: none. */
void pt_out_pending_dir(const char *dir);
/* Rename the pending directory to final and forget it, as one step. */
int pt_out_commit_dir(const char *final);
/* Remove a directory and what is in it, a few levels deep. */
void pt_rm_tree(const char *dir);

#endif
