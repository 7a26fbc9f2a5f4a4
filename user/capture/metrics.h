/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * /metrics (Prometheus text format 0.0.4), /healthz and /readyz over HTTP,
 * served by libmicrohttpd from its own thread.
 */
#ifndef __PODTAP_METRICS_H
#define __PODTAP_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct pt_metrics_cfg {
	const char *addr;	/* "HOST:PORT", "[V6]:PORT" or ":PORT" (all) */
	/* Called from the server's thread for each scrape. */
	void (*write)(void *ctx, FILE *f);
	bool (*healthy)(void *ctx);
	bool (*ready)(void *ctx);
	void *ctx;
};

struct pt_metrics;

/* Listen and serve; one line on stderr and <0 when it cannot. */
int pt_metrics_start(struct pt_metrics **out, const struct pt_metrics_cfg *c);
void pt_metrics_stop(struct pt_metrics *m);

/* Text format helpers: # HELP and # TYPE, then samples. */
void pt_prom_head(FILE *f, const char *name, const char *type,
		  const char *help);
void pt_prom_u64(FILE *f, const char *name, const char *labels, uint64_t v);
void pt_prom_f64(FILE *f, const char *name, const char *labels, double v);
/* A metric with one unlabelled sample: HELP, TYPE and the sample. */
void pt_prom_one(FILE *f, const char *name, const char *type,
		 const char *help, uint64_t v);

struct pt_loader;
/*
 * What every recorder serves about its BPF side: kernel counters, losses
 * by reason, ring buffer fill, per-program runs and time.
 */
void pt_loader_metrics(struct pt_loader *l, FILE *f);

#endif
