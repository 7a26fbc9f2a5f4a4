// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Target names for `podtap status`, one small file per recorder. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/common.h"
#include "base/jsonw.h"
#include "capture/tgnames.h"
#include "podtap.h"

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

/* This process's file of kind ext, begun as ext.tmp beside it. */
static FILE *begin(const char *ext, char *path, size_t pn, char *tmp,
		   size_t tn)
{
	static bool cleared;

	if (mkdir(PT_TGNAMES_DIR, 0755) && errno != EEXIST)
		return NULL;
	if (!cleared) {
		clear_stale();
		cleared = true;
	}
	snprintf(path, pn, PT_TGNAMES_DIR "/%d.%s", (int)getpid(), ext);
	snprintf(tmp, tn, "%s.tmp", path);
	return fopen(tmp, "we");
}

/* Written whole, then in place of the old one. */
static int commit(FILE *f, const char *path, const char *tmp)
{
	if (fclose(f) || rename(tmp, path)) {
		int err = -errno;

		unlink(tmp);
		return err;
	}
	return 0;
}

int pt_tgnames_write(const struct pt_tgname *v, int n)
{
	char path[64], tmp[80];
	FILE *f = begin("targets", path, sizeof(path), tmp, sizeof(tmp));
	int i;

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
	return commit(f, path, tmp);
}

void pt_tgnames_remove_tls(void)
{
	char path[64];

	snprintf(path, sizeof(path), PT_TGNAMES_DIR "/%d.tls", (int)getpid());
	unlink(path);
}

void pt_tgnames_remove(void)
{
	char path[64];

	snprintf(path, sizeof(path), PT_TGNAMES_DIR "/%d.targets", (int)getpid());
	unlink(path);
	pt_tgnames_remove_tls();
}

int pt_tgnames_write_tls(const struct pt_tls_proc_rec *const *v, size_t n,
			 size_t total)
{
	char path[64], tmp[80];
	FILE *f = begin("tls", path, sizeof(path), tmp, sizeof(tmp));
	size_t i;

	if (!f)
		return -errno;
	fprintf(f, "#\t%zu\n", total);
	for (i = 0; i < n; i++) {
		fprintf(f, "%u\t%u\t%llu\t%u\t%u\t", v[i]->tgid,
			v[i]->session_id, (unsigned long long)v[i]->target_id,
			v[i]->lib, v[i]->hook);
		put_field(f, v[i]->comm);
		fputc('\t', f);
		put_field(f, v[i]->version);
		fputc('\t', f);
		put_field(f, v[i]->path);
		fputc('\t', f);
		put_field(f, v[i]->why);
		fputc('\n', f);
	}
	return commit(f, path, tmp);
}

int pt_tgnames_tls(pid_t pid, struct pt_tls_proc_rec *v, size_t max,
		   size_t *total)
{
	char path[64], line[1024];
	size_t n = 0;
	FILE *f;

	*total = 0;
	snprintf(path, sizeof(path), PT_TGNAMES_DIR "/%d.tls", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (n < max && fgets(line, sizeof(line), f)) {
		struct pt_tls_proc_rec *r = &v[n];
		char *rest = line, *fld[9];
		int k;

		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "#\t", 2)) {
			*total = strtoul(line + 2, NULL, 10);
			continue;
		}
		for (k = 0; k < 9 && rest; k++)
			fld[k] = strsep(&rest, "\t");
		if (k < 9)
			continue;
		memset(r, 0, sizeof(*r));
		r->tgid = (uint32_t)strtoul(fld[0], NULL, 10);
		r->session_id = (uint32_t)strtoul(fld[1], NULL, 10);
		r->target_id = strtoull(fld[2], NULL, 10);
		r->lib = (uint16_t)atoi(fld[3]);
		r->hook = (uint16_t)atoi(fld[4]);
		snprintf(r->comm, sizeof(r->comm), "%s", fld[5]);
		snprintf(r->version, sizeof(r->version), "%s", fld[6]);
		snprintf(r->path, sizeof(r->path), "%s", fld[7]);
		snprintf(r->why, sizeof(r->why), "%s", fld[8]);
		n++;
	}
	fclose(f);
	if (*total < n)
		*total = n;
	return (int)n;
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

void pt_tls_proc_text(FILE *f, const struct pt_tls_proc_rec *r)
{
	char b[PATH_MAX], c[64], v[128];

	fprintf(f, "pid %u (%s) ", r->tgid, pt_printable(r->comm, c, sizeof(c)));
	pt_printable(r->version, v, sizeof(v));
	if (r->lib == PT_TLS_LIB_GO)
		fprintf(f, "runs %s, built with %s", pt_printable(r->path, b, sizeof(b)),
			v[0] ? v : "an unknown Go version");
	else
		fprintf(f, "%s %s%s (%s)",
			r->lib == PT_TLS_LIB_STATIC ? "runs" : "uses",
			pt_printable(r->path, b, sizeof(b)),
			r->lib == PT_TLS_LIB_STATIC ? ", which has OpenSSL linked in" : "",
			v[0] ? v : "version unknown");
	if (r->hook == PT_TLS_HOOKED)
		fputs(": hooked", f);
	else if (r->hook == PT_TLS_HOOKED_PSEUDO)
		fputs(": hooked, plaintext on pseudo-connections (no *net.TCPConn in it)", f);
	else
		fprintf(f, ": not hooked (%s): its TLS stays ciphertext",
			pt_printable(r->why, b, sizeof(b)));
}

void pt_tls_proc_json(FILE *f, const struct pt_tls_proc_rec *r)
{
	static const char *const lib[] = { "", "shared", "static", "go" };
	static const char *const hook[] = { "", "socket", "pseudo", "none" };

	fprintf(f, "{\"pid\":%u,\"comm\":", r->tgid);
	pt_json_str(f, r->comm);
	fprintf(f, ",\"session\":%u,\"target_id\":%llu,\"library\":\"%s\",\"path\":",
		r->session_id, (unsigned long long)r->target_id,
		r->lib < ARRAY_SIZE(lib) ? lib[r->lib] : "");
	pt_json_str(f, r->path);
	fputs(",\"version\":", f);
	pt_json_str(f, r->version);
	fprintf(f, ",\"hooked\":%s,\"plaintext\":\"%s\"",
		r->hook == PT_TLS_HOOKED || r->hook == PT_TLS_HOOKED_PSEUDO ?
		"true" : "false", r->hook < ARRAY_SIZE(hook) ? hook[r->hook] : "");
	if (r->hook == PT_TLS_NOT_HOOKED) {
		fputs(",\"reason\":", f);
		pt_json_str(f, r->why);
	}
	fputc('}', f);
}
