/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Capture files built record by record, for the unit tests: OPEN, DATA
 * and TLS_DATA records as the programs write them.
 */
#ifndef __PT_CAPBUILD_H
#define __PT_CAPBUILD_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "capfile/capfile.h"
#include "export/export.h"

/* A DATA or TLS_DATA record of s (a TLS_DATA of a pseudo-connection is
 * flagged as such). */
static inline void add_rec(struct pt_capw *w, uint16_t type, uint64_t id, int dir,
		    uint64_t off, const char *s, uint64_t ts)
{
	size_t n = strlen(s);
	struct pt_data *d = calloc(1, sizeof(*d) + n + 8);

	d->h.type = type;
	d->h.flags = type == PT_REC_TLS_DATA && (id & PT_PSEUDO_CONN) ?
		     PT_F_UNASSOC : 0;
	d->h.size = sizeof(*d) + ((n + 7) & ~7u);
	d->h.ts_ns = ts;
	d->h.conn_id = id;
	d->offset = off;
	d->len = d->cap_len = n;
	d->dir = dir;
	memcpy(d->payload, s, n);
	pt_capw_add(w, &d->h, d->h.size);
	free(d);
}

static inline void add_data(struct pt_capw *w, uint64_t id, int dir, uint64_t off,
		     const char *s, uint64_t ts)
{
	add_rec(w, PT_REC_DATA, id, dir, off, s, ts);
}

/* An OPEN at ts, as a recorder writes it when the connection begins. */
static inline void add_open_at(struct pt_capw *w, uint64_t id, int role,
			       uint16_t lport, uint16_t rport, uint64_t ts)
{
	struct pt_conn_open o = {};

	o.h.type = PT_REC_CONN_OPEN;
	o.h.size = sizeof(o);
	o.h.ts_ns = ts;
	o.h.conn_id = id;
	o.role = role;
	o.t.family = 2;
	o.t.laddr[0] = o.t.raddr[0] = 127;
	o.t.laddr[3] = 1;
	o.t.raddr[3] = 2;
	o.t.lport = lport;
	o.t.rport = rport;
	o.tgid = o.pid = 42;
	memcpy(o.comm, "app", 4);
	pt_capw_add(w, &o.h, sizeof(o));
}

static inline void add_open(struct pt_capw *w, uint64_t id, int role, uint16_t lport,
		     uint16_t rport)
{
	add_open_at(w, id, role, lport, rport, 1000 * id);
}

/*
 * One inbound connection (a server on 8080) that received q and sent r,
 * qn and rn bytes, written to DIR/c.ptcap in a new temporary dir (its
 * template "/tmp/podtap-NAME.XXXXXX" is filled in) and loaded with its
 * exchanges. 0, or -1 when any step failed.
 */
#include "export/export.h"

static inline int load_server_pair(char *dir, char *path, size_t pathn,
				   const char *q, size_t qn, const char *r,
				   size_t rn, struct pt_capture *cap)
{
	const char *paths[1] = { path };
	const char *s[2] = { q, r };
	size_t n[2] = { qn, rn };
	struct pt_capw *w;
	int k;

	if (!mkdtemp(dir))
		return -1;
	snprintf(path, pathn, "%s/c.ptcap", dir);
	if (pt_capw_open(&w, path, "test-host"))
		return -1;
	add_open(w, 1, PT_ROLE_SERVER, 8080, 40000);
	for (k = 0; k < 2; k++) {
		/* bytes, NULs included */
		struct pt_data *d = calloc(1, sizeof(*d) + n[k] + 8);

		d->h.type = PT_REC_DATA;
		d->h.size = sizeof(*d) + ((n[k] + 7) & ~7u);
		d->h.ts_ns = 1100 + 100 * k;
		d->h.conn_id = 1;
		d->len = d->cap_len = n[k];
		d->dir = k ? PT_DIR_TX : PT_DIR_RX;
		memcpy(d->payload, s[k], n[k]);
		pt_capw_add(w, &d->h, d->h.size);
		free(d);
	}
	if (pt_capw_close(w))
		return -1;
	return pt_capture_load_many(cap, paths, 1, true) ? -1 : 0;
}

/* A directory format (keploy) of the capture at path, under out, as
 * `podtap export` writes it: exchange by exchange as the file is read. */
struct dir_out {
	const struct pt_exporter *e;
	void *w;
	struct pt_export_counts *cnt;
};

static inline int dir_out_one(void *ctx, const struct pt_capture *cap,
			      const struct pt_xconn *xc, struct pt_exchange *x)
{
	struct dir_out *d = ctx;

	return d->e->dir_one(d->w, cap, xc, x, d->cnt);
}

static inline int export_dir(const struct pt_exporter *e, const char *path,
			     const char *out, struct pt_export_counts *cnt)
{
	struct dir_out d = { .e = e, .cnt = cnt };
	const struct pt_xsink sink = { .ctx = &d, .x = dir_out_one };
	const char *paths[1] = { path };
	struct pt_capture cap;
	int err = e->dir_open(out, &d.w);

	if (err)
		return err;
	err = pt_capture_stream(&cap, paths, 1, &sink);
	if (!err)
		pt_capture_free(&cap);
	if (e->dir_close(d.w, cnt, err != 0) && !err)
		err = -EIO;
	return err;
}

#endif
