// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Capture segments on disk, and their upload to a collector. */
#include <curl/curl.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "base/common.h"
#include "agent/spool.h"

struct seg {
	char *path;		/* closed: ".ptcap" */
	uint64_t size;
	bool busy;		/* being uploaded */
};

struct pt_spool {
	char *dir, *node, *collector;
	uint64_t max_bytes;
	unsigned seq;		/* capture loop only */
	pthread_mutex_t mu;	/* the fields below */
	pthread_cond_t cv;
	struct seg *q;		/* closed segments, oldest first */
	size_t nq;
	bool stop;
	struct pt_spool_stats st;
	pthread_t thr;
	bool thr_started;
};

static int mkdirs(const char *path)
{
	char buf[PATH_MAX], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && !strcmp(s + a - b, suf);
}

/* Queue a closed segment; the caller holds mu. */
static void enqueue(struct pt_spool *sp, const char *path, uint64_t size)
{
	sp->q = pt_xrealloc(sp->q, sp->nq + 1, sizeof(*sp->q));
	sp->q[sp->nq].path = pt_xstrdup(path);
	sp->q[sp->nq].size = size;
	sp->q[sp->nq].busy = false;
	sp->nq++;
}

static void dequeue(struct pt_spool *sp, size_t i)
{
	free(sp->q[i].path);
	memmove(&sp->q[i], &sp->q[i + 1], (sp->nq - i - 1) * sizeof(*sp->q));
	sp->nq--;
}

/* nftw has no context pointer: one walk at a time. */
static pthread_mutex_t walk_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char **paths;
	size_t n;
	uint64_t bytes, files;
} walk;

static int walk_collect(const char *path, const struct stat *st, int flag,
			struct FTW *f)
{
	if (flag != FTW_F)
		return 0;
	if (has_suffix(path, ".ptcap") || has_suffix(path, ".ptcap.part")) {
		walk.paths = pt_xrealloc(walk.paths, walk.n + 1,
					 sizeof(*walk.paths));
		walk.paths[walk.n++] = pt_xstrdup(path);
		walk.bytes += (uint64_t)st->st_size;
		walk.files++;
	}
	return 0;
}

static int cmp_base(const void *a, const void *b)
{
	const char *x = strrchr(*(char *const *)a, '/');
	const char *y = strrchr(*(char *const *)b, '/');

	return strcmp(x, y);
}

/* Segments of an earlier run: close what was open, queue all, oldest first. */
static void recover(struct pt_spool *sp)
{
	struct stat st;
	size_t i;

	pthread_mutex_lock(&walk_mu);
	memset(&walk, 0, sizeof(walk));
	nftw(sp->dir, walk_collect, 16, FTW_PHYS);
	qsort(walk.paths, walk.n, sizeof(*walk.paths), cmp_base);
	for (i = 0; i < walk.n; i++) {
		char *p = walk.paths[i];

		if (has_suffix(p, ".part")) {
			char done[PATH_MAX];

			snprintf(done, sizeof(done), "%.*s", (int)(strlen(p) - 5), p);
			if (rename(p, done))
				continue;
			pt_info("spool: %s was left open by an earlier run; kept as it is (readable up to its last whole block)",
				done);
			free(p);
			p = walk.paths[i] = pt_xstrdup(done);
		}
		if (!stat(p, &st))
			enqueue(sp, p, (uint64_t)st.st_size);
		free(p);
	}
	free(walk.paths);
	memset(&walk, 0, sizeof(walk));
	pthread_mutex_unlock(&walk_mu);
}

/* ---- upload ---- */

static void nap(struct pt_spool *sp, unsigned ms)
{
	pt_nap(&sp->mu, &sp->cv, &sp->stop, ms);
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
	return s * n;
}

static int upload_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c,
			   curl_off_t d)
{
	struct pt_spool *sp = ud;
	bool s;

	pthread_mutex_lock(&sp->mu);
	s = sp->stop;
	pthread_mutex_unlock(&sp->mu);
	return s;
}

/* POST one segment; 0 when the collector took it. */
static int upload(struct pt_spool *sp, const char *path, char *why, size_t n)
{
	const char *rel = path + strlen(sp->dir) + 1;	/* ns/session/file */
	struct curl_slist *h = NULL;
	char *url, *hdr, *esc, *seg, *tok, *save = NULL, *copy;
	long code = 0;
	struct stat st;
	CURLcode rc;
	CURL *c;
	FILE *f;

	f = fopen(path, "rb");
	if (!f || fstat(fileno(f), &st)) {
		snprintf(why, n, "%s: %s", path, strerror(errno));
		if (f)
			fclose(f);
		return -errno;
	}
	c = curl_easy_init();
	if (!c)
		pt_oom();
	/* each path component escaped on its own */
	copy = pt_xstrdup(rel);
	if (asprintf(&url, "%s/v1/segments", sp->collector) < 0)
		pt_oom();
	for (tok = strtok_r(copy, "/", &save); tok;
	     tok = strtok_r(NULL, "/", &save)) {
		esc = curl_easy_escape(c, tok, 0);
		if (!esc || asprintf(&seg, "%s/%s", url, esc) < 0)
			pt_oom();
		curl_free(esc);
		free(url);
		url = seg;
	}
	free(copy);
	if (asprintf(&hdr, "X-Podtap-Node: %s", sp->node) < 0)
		pt_oom();
	h = curl_slist_append(h, hdr);
	h = curl_slist_append(h, "Content-Type: application/vnd.podtap.capture");
	h = curl_slist_append(h, "Expect:");
	free(hdr);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_READDATA, f);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, upload_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, sp);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "podtap/" PT_VERSION);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	fclose(f);
	if (rc != CURLE_OK)
		snprintf(why, n, "%s: %s", url, curl_easy_strerror(rc));
	else if (code < 200 || code > 299)
		snprintf(why, n, "%s: HTTP %ld", url, code);
	free(url);
	if (rc == CURLE_OK && code >= 200 && code <= 299)
		return 0;
	/* refused for what it is, not for now: the others go first */
	if (rc == CURLE_OK && code >= 400 && code <= 499 && code != 408 &&
	    code != 429)
		return -EPERM;
	return -EIO;
}

static void *uploader(void *arg)
{
	struct pt_spool *sp = arg;
	unsigned failures = 0;
	char why[512];
	int err;

	pthread_mutex_lock(&sp->mu);
	while (!sp->stop) {
		char *path;
		uint64_t size;

		if (!sp->nq) {
			pthread_cond_wait(&sp->cv, &sp->mu);
			continue;
		}
		sp->q[0].busy = true;
		path = pt_xstrdup(sp->q[0].path);
		size = sp->q[0].size;
		pthread_mutex_unlock(&sp->mu);

		err = upload(sp, path, why, sizeof(why));
		if (!err) {
			unlink(path);
			pt_dbg("uploaded %s", path);
			pthread_mutex_lock(&sp->mu);
			sp->st.uploaded++;
			sp->st.uploaded_bytes += size;
			/* still the head: only the capture loop appends */
			dequeue(sp, 0);
			failures = 0;
		} else {
			bool stop;

			pthread_mutex_lock(&sp->mu);
			stop = sp->stop;
			if (!stop)
				sp->st.upload_failures++;
			sp->q[0].busy = false;
			if (err == -EPERM && sp->nq > 1) {
				struct seg head = sp->q[0];

				memmove(&sp->q[0], &sp->q[1],
					(sp->nq - 1) * sizeof(*sp->q));
				sp->q[sp->nq - 1] = head;
			}
			pthread_mutex_unlock(&sp->mu);
			if (!stop) {
				if (!failures)
					pt_err("upload: %s (retrying)", why);
				failures++;
				nap(sp, failures > 6 ? 30000 : 500u << failures);
			}
			pthread_mutex_lock(&sp->mu);
		}
		free(path);
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

/* ---- API ---- */

int pt_spool_open(struct pt_spool **out, const struct pt_spool_cfg *c)
{
	struct pt_spool *sp;
	int err;

	err = mkdirs(c->dir);
	if (err) {
		pt_err("--spool %s: %s", c->dir, strerror(-err));
		return err;
	}
	if (access(c->dir, W_OK)) {
		err = -errno;
		pt_err("--spool %s: %s", c->dir, strerror(errno));
		return err;
	}
	sp = pt_xcalloc(1, sizeof(*sp));
	sp->dir = realpath(c->dir, NULL);
	if (!sp->dir)
		pt_oom();
	sp->node = pt_xstrdup(c->node);
	sp->collector = c->collector ? pt_xstrdup(c->collector) : NULL;
	if (sp->collector)
		while (has_suffix(sp->collector, "/"))
			sp->collector[strlen(sp->collector) - 1] = 0;
	sp->max_bytes = c->max_bytes;
	pthread_mutex_init(&sp->mu, NULL);
	pthread_cond_init(&sp->cv, NULL);
	recover(sp);
	if (sp->collector) {
		err = pthread_create(&sp->thr, NULL, uploader, sp);
		if (err) {
			pt_err("starting the uploader: %s", strerror(err));
			pt_spool_close(sp);
			return -err;
		}
		sp->thr_started = true;
	}
	*out = sp;
	return 0;
}

void pt_spool_close(struct pt_spool *sp)
{
	if (!sp)
		return;
	pthread_mutex_lock(&sp->mu);
	sp->stop = true;
	pthread_cond_broadcast(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	if (sp->thr_started)
		pthread_join(sp->thr, NULL);
	while (sp->nq)
		dequeue(sp, sp->nq - 1);
	free(sp->q);
	free(sp->dir);
	free(sp->node);
	free(sp->collector);
	free(sp);
}

/* Names come from the API server: keep them to one path component. */
static bool safe_name(const char *s)
{
	return *s && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/');
}

int pt_spool_new_segment(struct pt_spool *sp, const char *ns,
			 const char *name, char *path, size_t n)
{
	char dir[PATH_MAX], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int err;

	if (!safe_name(ns) || !safe_name(name))
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%s/%s/%s", sp->dir, ns, name);
	err = mkdirs(dir);
	if (err)
		return err;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if ((size_t)snprintf(path, n, "%s/%s-%s-%04u.ptcap.part", dir, sp->node,
			     stamp, sp->seq++ % 10000) >= n)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Closed segments over max_bytes: remove the oldest not being uploaded,
 * but never the one just closed. Open segments do not count: they are
 * bounded by --segment-size each, and dropping closed data for them
 * would lose what is safe for what is not yet.
 */
static void enforce_max(struct pt_spool *sp)
{
	uint64_t closed = 0;
	size_t i;

	for (i = 0; i < sp->nq; i++)
		closed += sp->q[i].size;
	i = 0;
	while (sp->max_bytes && closed > sp->max_bytes && i + 1 < sp->nq) {
		if (sp->q[i].busy) {
			i++;
			continue;
		}
		pt_err("spool over %llu bytes: dropping %s",
		       (unsigned long long)sp->max_bytes, sp->q[i].path);
		unlink(sp->q[i].path);
		closed -= sp->q[i].size;
		sp->st.dropped++;
		sp->st.dropped_bytes += sp->q[i].size;
		dequeue(sp, i);
	}
}

int pt_spool_commit(struct pt_spool *sp, const char *part)
{
	char done[PATH_MAX];
	struct stat st;
	size_t n = strlen(part);

	if (n < 5 || !has_suffix(part, ".part"))
		return -EINVAL;
	snprintf(done, sizeof(done), "%.*s", (int)(n - 5), part);
	if (rename(part, done) || stat(done, &st))
		return -errno;
	pthread_mutex_lock(&sp->mu);
	enqueue(sp, done, (uint64_t)st.st_size);
	enforce_max(sp);
	pthread_cond_broadcast(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	return 0;
}

void pt_spool_stats(struct pt_spool *sp, struct pt_spool_stats *s)
{
	size_t i;

	pthread_mutex_lock(&walk_mu);
	memset(&walk, 0, sizeof(walk));
	nftw(sp->dir, walk_collect, 16, FTW_PHYS);
	for (i = 0; i < walk.n; i++)
		free(walk.paths[i]);
	free(walk.paths);
	pthread_mutex_lock(&sp->mu);
	*s = sp->st;
	s->bytes = walk.bytes;
	s->segments = walk.files;
	pthread_mutex_unlock(&walk_mu);
	if (sp->collector)
		for (i = 0; i < sp->nq; i++) {
			s->queue_segments++;
			s->queue_bytes += sp->q[i].size;
		}
	pthread_mutex_unlock(&sp->mu);
}
