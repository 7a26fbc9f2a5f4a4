/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Capture files built record by record, for the unit tests: OPEN, DATA
 * and TLS_DATA records as the programs write them.
 */
#ifndef __PT_CAPBUILD_H
#define __PT_CAPBUILD_H

#include <stdlib.h>
#include <string.h>
#include "capfile/capfile.h"

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

static inline void add_open(struct pt_capw *w, uint64_t id, int role, uint16_t lport,
		     uint16_t rport)
{
	struct pt_conn_open o = {};

	o.h.type = PT_REC_CONN_OPEN;
	o.h.size = sizeof(o);
	o.h.ts_ns = 1000 * id;
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

#endif
