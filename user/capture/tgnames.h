/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What a recorder's targets are, for `podtap status`: the maps hold ids
 * only (cgroup id -> session id); a recorder also writes, for its own pid,
 * /run/podtap/PID.targets naming each target and its session (which pod
 * and container, for the agent). Removed on exit; files of dead pids are
 * ignored and cleared by the next recorder.
 */
#ifndef __PODTAP_TGNAMES_H
#define __PODTAP_TGNAMES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define PT_TGNAMES_DIR	"/run/podtap"

struct pt_tgname {
	int kind;		/* enum pt_target_kind */
	uint64_t id;
	uint32_t session;
	const char *session_name;
	const char *what;	/* "shop/api-1/app", a cgroup path, ... */
};

/* Replace this process's file (written whole, then renamed). */
int pt_tgnames_write(const struct pt_tgname *v, int n);
/* Both files of this process. */
void pt_tgnames_remove(void);
/* The names pid gave target (kind, id); -ENOENT if none. */
int pt_tgnames_find(pid_t pid, int kind, uint64_t id, char *session,
		    size_t sn, char *what, size_t wn);

/*
 * The target processes' TLS libraries (capture/tls.c), likewise in
 * /run/podtap/PID.tls, at most PT_TGNAMES_TLS_MAX of them.
 */
#define PT_TGNAMES_TLS_MAX	512
struct pt_tls_proc_rec;
int pt_tgnames_write_tls(const struct pt_tls_proc_rec *const *v, size_t n,
			 size_t total);
void pt_tgnames_remove_tls(void);
/* Those of recorder pid, into v (up to max); how many, or -errno; and
 * *total, how many there were, those the file leaves out too. */
int pt_tgnames_tls(pid_t pid, struct pt_tls_proc_rec *v, size_t max,
		   size_t *total);
/* One as a line ("pid 12 (nginx) uses PATH (VERSION): hooked"), names
 * made printable, no newline; and as a JSON object. */
void pt_tls_proc_text(FILE *f, const struct pt_tls_proc_rec *r);
void pt_tls_proc_json(FILE *f, const struct pt_tls_proc_rec *r);

#endif
