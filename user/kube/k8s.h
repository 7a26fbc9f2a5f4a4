/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A small kube-apiserver client: credentials from a kubeconfig or the pod's
 * service account, plain requests, and list + watch loops that keep a
 * caller's view of a collection current (resourceVersion, bookmarks, relist
 * on 410 Gone), each in a thread of its own.
 */
#ifndef __PODTAP_K8S_H
#define __PODTAP_K8S_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pt_kube {
	char *server;		/* scheme://host:port, no trailing slash */
	char *token;		/* bearer token */
	char *token_file;	/* read at each request: such tokens rotate */
	char *ca_file;
	char *cert_file, *key_file;
	void *ca, *cert, *key;	/* PEM from *-data fields */
	size_t ca_len, cert_len, key_len;
	bool insecure;		/* insecure-skip-tls-verify */
	char *source;		/* where it came from, for messages */
};

/*
 * From a kubeconfig file (its current context), or with path NULL from
 * the service account of the pod we run in. One line and <0 on error.
 */
int pt_kube_config(struct pt_kube *k, const char *path);
void pt_kube_free(struct pt_kube *k);

/*
 * One request; the response body in *resp (NUL-terminated, caller frees),
 * the HTTP status in *code. <0 only when no HTTP answer came (then *resp
 * holds curl's reason).
 */
int pt_kube_call(const struct pt_kube *k, const char *method, const char *path,
		 const char *ctype, const char *body, char **resp, long *code);

/* What a watch loop hands over. */
enum pt_kev_type {
	PT_KEV_ADDED,
	PT_KEV_MODIFIED,
	PT_KEV_DELETED,
	PT_KEV_SYNC_BEGIN,	/* a full list follows as ADDED events... */
	PT_KEV_SYNC_END,	/* ...and what it did not name is gone */
};

struct pt_kev {
	struct pt_kev *next;
	int source;		/* pt_kwatch_cfg.source */
	enum pt_kev_type type;
	char *obj;		/* the object's JSON, NUL-terminated */
	size_t len;
};

struct pt_kqueue {
	pthread_mutex_t mu;
	struct pt_kev *head, **tail;
};

void pt_kqueue_init(struct pt_kqueue *q);
/* All events queued so far, oldest first; NULL if none. */
struct pt_kev *pt_kqueue_take(struct pt_kqueue *q);
void pt_kev_free(struct pt_kev *e);

struct pt_kwatch_cfg {
	const char *what;	/* for messages: "pods" */
	const char *path;	/* collection: /api/v1/pods */
	const char *field_selector; /* or NULL */
	int source;		/* copied into each event */
	unsigned timeout_s;	/* per watch request (default 300) */
};

struct pt_kwatch_stats {
	uint64_t lists;		/* full lists done */
	uint64_t watches;	/* watch requests started */
	uint64_t expired;	/* 410 Gone: relisted */
	uint64_t errors;	/* failed requests */
	uint64_t events;	/* ADDED/MODIFIED/DELETED handed over */
	bool synced;		/* a list has completed */
};

struct pt_kwatch;

int pt_kwatch_start(struct pt_kwatch **out, const struct pt_kube *k,
		    const struct pt_kwatch_cfg *c, struct pt_kqueue *q);
void pt_kwatch_stop(struct pt_kwatch *w);
void pt_kwatch_stats(struct pt_kwatch *w, struct pt_kwatch_stats *s);

#endif
