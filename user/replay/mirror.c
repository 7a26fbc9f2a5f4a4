// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The mirror: see mirror.h. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <linux/tcp.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include "base/common.h"
#include "replay/mirror.h"

#define NBUCKETS	4096
/* Bytes held out of order while an earlier record is on its way. */
#define OOO_MAX		(1u << 20)
/* After the half-close, how long the local process has to finish. */
#define LINGER_NS	2000000000ULL

struct chunk {
	struct chunk *next;
	uint64_t off;
	size_t len;
	uint8_t b[];
};

enum fstate { F_WAIT, F_CONNECTING, F_OPEN, F_DONE };

struct flow {
	struct flow *hnext;		/* hash chain */
	struct flow *dnext;		/* dirty list */
	bool dirty;
	uint64_t id;
	enum fstate st;
	int fd;
	bool decided, tls;		/* TLS: the plaintext is mirrored */
	uint64_t next;			/* next stream offset to queue */
	struct chunk *ooo;		/* later bytes, by offset */
	size_t ooo_bytes;
	uint8_t *q;			/* queued for the local process */
	size_t qoff, qlen, qcap;
	bool fin, closed, rst;		/* after the queue: half-close, close */
	uint64_t fin_off;		/* the FIN's offset: half-close there */
	uint64_t close_ns;		/* when the CLOSE record came */
	bool shut;			/* SHUT_WR done */
	uint64_t progress_ns;		/* last write that moved, or start */
	uint64_t shut_ns;
	uint16_t lport;			/* of fd, marked in own[] */
	bool started;			/* counted as mirrored */
	bool peer_closed;		/* the local process closed its end */
	bool at_end;			/* the capture ended before its CLOSE */
	bool client_rst;		/* the client reset its connection */
	bool gapped;			/* a capture gap: what came before it is
					 * delivered, then a reset */
	uint64_t sent;			/* bytes written to fd */
	bool acked;			/* every byte sent so far is acked */
	uint64_t drain_ns;		/* since when a reset waits for the
					 * local process to read */
};

struct pt_mirror {
	struct pt_mirror_opts o;
	struct sockaddr_storage addr;
	socklen_t alen;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t room;
	int ep, ev;
	bool stopping;
	uint64_t linger_until;
	struct flow *tab[NBUCKETS];
	struct flow *dirty, **dirty_tail;	/* in the order they got work */
	uint16_t to_port;		/* of o->to, host order */
	/* local ports of the mirror's own connections: when the target is
	 * what they reach, they are recorded too, and must not be mirrored
	 * again (one request would loop without end) */
	uint64_t *own_until;		/* by local port: until when (ns) */
	size_t nflows, queued;
	struct pt_mirror_stats st;
};

/* Can we connect there now? (2 s at most) */
static int try_connect(const struct pt_mirror *m)
{
	int fd = socket(m->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct pollfd p;
	int err = 0;
	socklen_t el = sizeof(err);

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&m->addr, m->alen) && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	p = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&p, 1, 2000) != 1) {
		close(fd);
		return -ETIMEDOUT;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	close(fd);
	return -err;
}

static struct flow **slot(struct pt_mirror *m, uint64_t id)
{
	struct flow **f = &m->tab[(id * 0x9e3779b97f4a7c15ULL) >> 52];

	while (*f && (*f)->id != id)
		f = &(*f)->hnext;
	return f;
}

static void mark(struct pt_mirror *m, struct flow *f)
{
	if (f->dirty)
		return;
	f->dirty = true;
	f->dnext = NULL;
	if (!m->dirty)
		m->dirty_tail = &m->dirty;
	*m->dirty_tail = f;
	m->dirty_tail = &f->dnext;
}

static void drop_queue(struct pt_mirror *m, struct flow *f)
{
	struct chunk *c;

	m->st.dropped += f->qlen - f->qoff;
	m->queued -= f->qlen - f->qoff;
	f->qoff = f->qlen = 0;
	while ((c = f->ooo)) {
		f->ooo = c->next;
		m->st.dropped += c->len;
		free(c);
	}
	f->ooo_bytes = 0;
	pthread_cond_broadcast(&m->room);
}

/* A connection counts as mirrored from its first byte (or its cut), and
 * then ends in exactly one of whole, or cut by one reason. */
static void start(struct pt_mirror *m, struct flow *f)
{
	if (!f->started) {
		f->started = true;
		m->st.mirrored++;
	}
}

/* Cut a flow: a reset towards the local process, its bytes dropped. */
static void cut(struct pt_mirror *m, struct flow *f, uint64_t *counter)
{
	if (f->st == F_DONE || f->rst)
		return;
	start(m, f);
	(*counter)++;
	drop_queue(m, f);
	f->rst = true;
	f->closed = true;
	mark(m, f);
}

/* A capture gap: what came before it still goes, then a reset. */
static void gap(struct pt_mirror *m, struct flow *f)
{
	struct chunk *c;

	if (f->st == F_DONE || f->rst || f->gapped)
		return;
	start(m, f);
	m->st.cut_gap++;
	f->gapped = true;
	f->closed = true;
	while ((c = f->ooo)) {
		f->ooo = c->next;
		m->st.dropped += c->len;
		free(c);
	}
	f->ooo_bytes = 0;
	mark(m, f);
}

static void enqueue(struct pt_mirror *m, struct flow *f, const uint8_t *p,
		    size_t n)
{
	if (!n)
		return;
	if (f->qlen - f->qoff + n > m->o.conn_buf ||
	    m->queued + n > m->o.total_buf) {
		m->st.dropped += n;
		cut(m, f, &m->st.cut_slow);
		return;
	}
	if (f->qoff == f->qlen) {
		/* the write deadline runs from when bytes wait */
		f->qoff = f->qlen = 0;
		f->progress_ns = pt_now_mono_ns();
	}
	if (f->qlen + n > f->qcap) {
		/* slide down what is left before growing */
		if (f->qoff) {
			memmove(f->q, f->q + f->qoff, f->qlen - f->qoff);
			f->qlen -= f->qoff;
			f->qoff = 0;
		}
		if (f->qlen + n > f->qcap) {
			f->qcap = (f->qlen + n) * 2;
			f->q = pt_xrealloc(f->q, f->qcap, 1);
		}
	}
	memcpy(f->q + f->qlen, p, n);
	f->qlen += n;
	m->queued += n;
	f->acked = false;
	start(m, f);
	mark(m, f);
}

/* Bytes [off, off + n) of the client's stream: queued when they are next,
 * held when later, skipped where already had. */
static void bytes_at(struct pt_mirror *m, struct flow *f, uint64_t off,
		     const uint8_t *p, size_t n)
{
	struct chunk **pp, *c;

	if (off + n <= f->next)
		return;
	if (off < f->next) {
		p += f->next - off;
		n -= f->next - off;
		off = f->next;
	}
	if (off > f->next) {
		if (f->ooo_bytes + n > OOO_MAX) {
			m->st.dropped += n;
			gap(m, f);
			return;
		}
		c = pt_xcalloc(1, sizeof(*c) + n);
		c->off = off;
		c->len = n;
		memcpy(c->b, p, n);
		for (pp = &f->ooo; *pp && (*pp)->off < off; pp = &(*pp)->next)
			;
		c->next = *pp;
		*pp = c;
		f->ooo_bytes += n;
		return;
	}
	enqueue(m, f, p, n);
	f->next += n;
	/* what was waiting for these */
	while ((c = f->ooo) && c->off <= f->next && f->st != F_DONE && !f->rst) {
		f->ooo = c->next;
		f->ooo_bytes -= c->len;
		if (c->off + c->len > f->next) {
			size_t skip = f->next - c->off;

			enqueue(m, f, c->b + skip, c->len - skip);
			f->next = c->off + c->len;
		}
		free(c);
	}
}

static void on_open(struct pt_mirror *m, const struct pt_conn_open *o)
{
	struct flow **s, *f;

	if (o->role != PT_ROLE_SERVER)
		return;
	if (m->o.port && o->t.lport != m->o.port)
		return;
	/* (a copy's OPEN may come after the copy closed: ports are
	 * remembered a while after) */
	if (o->t.lport == m->to_port && m->own_until[o->t.rport] > pt_now_mono_ns()) {
		if (!m->st.own++)
			pt_info("mirror: %s is a port of a target: the mirror's own copies are recorded too, and not mirrored again",
				m->o.to);
		return;
	}
	m->st.conns++;
	if (o->h.flags & PT_F_PREEXISTING) {
		m->st.older++;
		return;
	}
	s = slot(m, o->h.conn_id);
	if (*s)
		return;
	if (m->nflows >= m->o.max_conns) {
		m->st.over_limit++;
		return;
	}
	f = pt_xcalloc(1, sizeof(*f));
	f->id = o->h.conn_id;
	f->fd = -1;
	*s = f;
	m->nflows++;
}

static void on_data(struct pt_mirror *m, const struct pt_data *d, bool tls)
{
	struct flow *f = *slot(m, d->h.conn_id);

	if (!f || d->dir != PT_DIR_RX)
		return;
	if (f->st == F_DONE || f->rst || f->gapped) {
		/* a cut connection's later bytes: dropped too */
		if (f->started && tls == f->tls)
			m->st.dropped += d->cap_len;
		return;
	}
	if (!f->decided && !tls && d->cap_len && d->offset == 0) {
		/* a TLS record header: the plaintext, if any, is the stream */
		f->decided = true;
		f->tls = d->cap_len >= 3 && d->payload[0] == 0x16 &&
			 d->payload[1] == 0x03 && d->payload[2] <= 0x04;
		if (f->tls)
			f->next = 0;
	}
	if (tls && !f->tls) {
		/* plaintext before the first ciphertext byte was seen */
		f->decided = f->tls = true;
		f->next = 0;
	}
	if (tls != f->tls)
		return;
	if (d->cap_len < d->len) {
		m->st.dropped += d->len;
		gap(m, f);
		return;
	}
	bytes_at(m, f, d->offset, d->payload, d->cap_len);
	if ((d->h.flags & PT_F_FIN) && !tls) {
		/* the client is done once every byte before it is here */
		f->fin = true;
		f->fin_off = d->offset + d->len;
		mark(m, f);
	}
}

static void on_loss(struct pt_mirror *m, const struct pt_loss *l)
{
	struct flow *f = *slot(m, l->h.conn_id);
	bool tls = l->dir >= PT_DIR_TLS;

	if (!f || f->st == F_DONE || (l->dir & 1) != PT_DIR_RX)
		return;
	if (f->decided && tls != f->tls)
		return;
	if (l->offset + l->len > f->next)
		gap(m, f);
}

static void on_close(struct pt_mirror *m, const struct pt_rec_hdr *h)
{
	struct flow *f = *slot(m, h->conn_id);

	if (!f)
		return;
	f->closed = true;
	f->close_ns = pt_now_mono_ns();
	/* the client reset it: passed on once its bytes are */
	f->client_rst |= (h->flags & PT_F_RST) != 0;
	/* bytes still held out of order: a moment for the rest (records of
	 * several CPUs), then the sweep cuts it */
	mark(m, f);
}

void pt_mirror_record(struct pt_mirror *m, const struct pt_rec_hdr *h)
{
	uint64_t one = 1;

	pthread_mutex_lock(&m->mu);
	/* from a file: wait for room, in all and on this connection */
	while (m->o.wait && !m->stopping) {
		struct flow *f = *slot(m, h->conn_id);

		if (m->queued <= m->o.total_buf / 2 &&
		    (!f || f->rst || f->st == F_DONE ||
		     f->qlen - f->qoff <= m->o.conn_buf / 2))
			break;
		pthread_cond_wait(&m->room, &m->mu);
	}
	switch (h->type) {
	case PT_REC_CONN_OPEN:
		on_open(m, (const struct pt_conn_open *)h);
		break;
	case PT_REC_DATA:
	case PT_REC_TLS_DATA:
		if (!(h->flags & PT_F_UNASSOC) && h->size >= sizeof(struct pt_data) &&
		    h->size - sizeof(struct pt_data) >=
		    ((const struct pt_data *)h)->cap_len)
			on_data(m, (const struct pt_data *)h,
				h->type == PT_REC_TLS_DATA);
		break;
	case PT_REC_LOSS:
		on_loss(m, (const struct pt_loss *)h);
		break;
	case PT_REC_CONN_CLOSE:
		on_close(m, h);
		break;
	default:
		break;
	}
	bool wake = m->dirty != NULL;

	pthread_mutex_unlock(&m->mu);
	if (wake && write(m->ev, &one, sizeof(one)) < 0)
		; /* the counter is full: the thread is awake anyway */
}

/* ---- the thread: sockets ---- */

/* Bytes written that the local end has not acknowledged, from TCP_INFO's
 * bytes acked (kept by the kernel even after a reset; a FIN's sequence
 * number counts there, and is no data). -1 if unknown. */
static int64_t unacked(const struct flow *f)
{
	struct tcp_info ti = {};
	socklen_t tl = sizeof(ti);

	if (f->fd < 0 || getsockopt(f->fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) ||
	    tl < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		return -1;
	return ti.tcpi_bytes_acked < f->sent ?
	       (int64_t)(f->sent - ti.tcpi_bytes_acked) : 0;
}

static void finish(struct pt_mirror *m, struct flow *f)
{
	int64_t lost;

	if (f->st == F_DONE)
		return;
	/* bytes written but never acknowledged by the local end: not
	 * delivered */
	if ((lost = unacked(f)) > 0) {
		m->st.bytes -= lost;
		m->st.dropped += lost;
		if (!f->gapped)
			cut(m, f, f->peer_closed ? &m->st.cut_closed : &m->st.cut_slow);
	}
	/* the capture ended with the client's connection still open: what
	 * it sent is delivered, and then the copy is reset, not finished */
	if (f->at_end && f->started && !f->rst && !f->gapped)
		cut(m, f, &m->st.cut_end);
	if (f->fd >= 0) {
		if (f->rst || f->client_rst || f->gapped) {
			struct linger lg = { 1, 0 };

			setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(f->fd);	/* leaves the epoll set with it */
		f->fd = -1;
		if (f->lport)
			m->own_until[f->lport] = pt_now_mono_ns() + 30000000000ULL;
	}
	if (!f->rst && !f->gapped && f->started)
		m->st.whole++;
	if (f->tls && !f->next && f->st == F_WAIT && !f->rst)
		m->st.no_plaintext++;
	f->st = F_DONE;
}

static void start_connect(struct pt_mirror *m, struct flow *f)
{
	struct epoll_event e = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP | EPOLLET,
				  .data.ptr = f };

	struct sockaddr_storage me = { .ss_family = m->addr.ss_family };
	socklen_t ml = sizeof(me);

	/* the local port is known before the SYN goes out: the target's
	 * OPEN of this connection can then be told for the mirror's own */
	f->fd = socket(m->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd >= 0 && !bind(f->fd, (struct sockaddr *)&me,
				 m->addr.ss_family == AF_INET6 ?
				 sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) &&
	    !getsockname(f->fd, (struct sockaddr *)&me, &ml)) {
		f->lport = ntohs(me.ss_family == AF_INET6 ?
				 ((struct sockaddr_in6 *)&me)->sin6_port :
				 ((struct sockaddr_in *)&me)->sin_port);
		m->own_until[f->lport] = UINT64_MAX;
	}
	if (f->fd < 0 ||
	    (connect(f->fd, (const struct sockaddr *)&m->addr, m->alen) &&
	     errno != EINPROGRESS) ||
	    epoll_ctl(m->ep, EPOLL_CTL_ADD, f->fd, &e)) {
		pt_dbg("mirror: connect to %s: %s", m->o.to, strerror(errno));
		cut(m, f, &m->st.cut_error);
		finish(m, f);
		return;
	}
	f->st = F_CONNECTING;
	f->progress_ns = pt_now_mono_ns();
}

/* Move what can move now. */
static void pump(struct pt_mirror *m, struct flow *f, uint64_t now)
{
	char sink[16384];
	ssize_t n;

	if (f->st == F_DONE)
		return;
	if (f->st == F_WAIT) {
		if (f->rst || (f->closed && f->qoff == f->qlen)) {
			finish(m, f);	/* nothing ever to send */
			return;
		}
		if (f->qoff == f->qlen)
			return;
		start_connect(m, f);
		return;
	}
	if (f->rst) {
		finish(m, f);
		return;
	}
	if (f->st == F_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);

		if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			cut(m, f, &m->st.cut_error);
			finish(m, f);
			return;
		}
		struct pollfd p = { .fd = f->fd, .events = POLLOUT };

		if (poll(&p, 1, 0) != 1)
			return;
		f->st = F_OPEN;
	}
	/* the local process's answers: read and thrown away, a bounded
	 * amount at a time (the lock is held), the rest at the next turn */
	for (int k = 0; k < 8 && (n = read(f->fd, sink, sizeof(sink))) > 0; k++)
		;
	if (n > 0) {
		mark(m, f);
		n = -1;
		errno = EAGAIN;
	}
	if (n == 0 || (n < 0 && errno == ECONNRESET)) {
		bool all = f->qoff == f->qlen && !f->ooo && !unacked(f);

		f->peer_closed = true;
		/* it took every byte there was and closed (an HTTP server
		 * after "Connection: close"): whole; else what it left is
		 * cut, the local process's doing */
		if ((all && n == 0) ||
		    (f->acked && f->qoff == f->qlen && !f->ooo)) {
			finish(m, f);
			return;
		}
		if (n < 0) {
			cut(m, f, &m->st.cut_closed);
			finish(m, f);
			return;
		}
	}
	if (n == 0 && f->shut) {
		finish(m, f);
		return;
	}
	while (f->qoff < f->qlen) {
		n = send(f->fd, f->q + f->qoff, f->qlen - f->qoff, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			pt_dbg("mirror: write to %s: %s", m->o.to, strerror(errno));
			cut(m, f, errno == EPIPE || errno == ECONNRESET ?
			    &m->st.cut_closed : &m->st.cut_error);
			finish(m, f);
			return;
		}
		f->qoff += n;
		f->sent += n;
		m->queued -= n;
		m->st.bytes += n;
		f->progress_ns = now;
		pthread_cond_broadcast(&m->room);
	}
	if (f->qoff < f->qlen)
		return;
	f->progress_ns = now;
	/* all there: a reset from here on loses nothing */
	f->acked = !unacked(f);
	if (f->at_end || f->gapped || (f->client_rst && f->closed)) {
		/* a reset throws away what the socket still holds: first let
		 * the local process take it (up to the write deadline) */
		if (!f->drain_ns)
			f->drain_ns = now;
		if (unacked(f) > 0 && now - f->drain_ns < m->o.write_timeout_ns)
			return;
		finish(m, f);	/* all delivered: reset (counted when cut) */
		return;
	}
	/* the client's end, once every byte before it is delivered */
	if (f->ooo || (f->fin && !f->closed && f->next < f->fin_off))
		return;
	if ((f->fin || f->closed) && !f->shut) {
		shutdown(f->fd, SHUT_WR);
		f->shut = true;
		f->shut_ns = now;
	}
	if (f->shut && f->closed && now - f->shut_ns > LINGER_NS)
		finish(m, f);
}

/* Flows done: out of the table. Flows stuck: cut. */
static void sweep(struct pt_mirror *m, uint64_t now)
{
	size_t b;

	for (b = 0; b < NBUCKETS; b++) {
		struct flow **pp = &m->tab[b], *f;

		while ((f = *pp)) {
			/* progress_ns may be a moment after now: the capture
			 * thread sets it too */
			if (f->st != F_DONE && f->qoff < f->qlen &&
			    now > f->progress_ns &&
			    now - f->progress_ns > m->o.write_timeout_ns) {
				cut(m, f, &m->st.cut_slow);
				pump(m, f, now);
			} else if (f->st != F_DONE && f->closed && f->ooo &&
				   now > f->close_ns && now - f->close_ns > 1000000000ULL) {
				gap(m, f);	/* the hole never filled */
				pump(m, f, now);
			} else if (f->st != F_DONE && f->closed &&
				   (f->shut || f->drain_ns)) {
				pump(m, f, now);
			}
			if (f->st == F_DONE && !f->dirty) {
				*pp = f->hnext;
				free(f->q);
				free(f);
				m->nflows--;
				continue;
			}
			pp = &f->hnext;
		}
	}
}

static void *mirror_thread(void *arg)
{
	struct pt_mirror *m = arg;
	struct epoll_event ev[64];
	uint64_t last_sweep = 0, junk;
	int i, n;

	for (;;) {
		n = epoll_wait(m->ep, ev, 64, 50);
		pthread_mutex_lock(&m->mu);
		uint64_t now = pt_now_mono_ns();

		for (i = 0; i < n; i++) {
			if (!ev[i].data.ptr) {
				if (read(m->ev, &junk, sizeof(junk)) < 0)
					;
				continue;
			}
			mark(m, ev[i].data.ptr);
		}
		while (m->dirty) {
			struct flow *f = m->dirty;

			m->dirty = f->dnext;
			f->dirty = false;
			pump(m, f, now);
		}
		if (now - last_sweep > 100000000ULL || m->stopping) {
			sweep(m, now);
			last_sweep = now;
		}
		bool done = m->stopping && (!m->nflows || now > m->linger_until);

		pthread_mutex_unlock(&m->mu);
		if (done)
			return NULL;
	}
}

int pt_mirror_start(struct pt_mirror **out, const struct pt_mirror_opts *o)
{
	struct pt_mirror *m = pt_xcalloc(1, sizeof(*m));
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL };
	int err;

	m->o = *o;
	err = pt_parse_addr(o->to, false, &m->addr, &m->alen, NULL);
	m->to_port = ntohs(m->addr.ss_family == AF_INET6 ?
			   ((struct sockaddr_in6 *)&m->addr)->sin6_port :
			   ((struct sockaddr_in *)&m->addr)->sin_port);
	if (err) {
		pt_err("mirror to %s: %s", o->to, err == -EINVAL ?
		       "want HOST:PORT (e.g. localhost:8080 or [::1]:8080)" :
		       "no such host");
		free(m);
		return err;
	}
	/* a local connection each: as many descriptors as allowed, and a
	 * limit that keeps some for the rest of podtap */
	unsigned long long lim = pt_nofile_raise();

	if (lim && lim < m->o.max_conns + 256)
		m->o.max_conns = lim > 512 ? lim - 256 : lim / 2;
	err = try_connect(m);
	if (err) {
		pt_err("mirror to %s: cannot connect: %s (start the local process first)",
		       o->to, strerror(-err));
		free(m);
		return err;
	}
	m->own_until = pt_xcalloc(65536, sizeof(*m->own_until));
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->room, NULL);
	m->ep = epoll_create1(EPOLL_CLOEXEC);
	m->ev = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (m->ep < 0 || m->ev < 0 || epoll_ctl(m->ep, EPOLL_CTL_ADD, m->ev, &e)) {
		err = -errno;
		pt_err("mirror: %s", strerror(errno));
		goto fail;
	}
	err = -pthread_create(&m->thr, NULL, mirror_thread, m);
	if (err) {
		pt_err("mirror: cannot start its thread: %s", strerror(-err));
		goto fail;
	}
	*out = m;
	return 0;
fail:
	if (m->ep >= 0)
		close(m->ep);
	if (m->ev >= 0)
		close(m->ev);
	free(m->own_until);
	free(m);
	return err;
}

void pt_mirror_stats(struct pt_mirror *m, struct pt_mirror_stats *st)
{
	pthread_mutex_lock(&m->mu);
	*st = m->st;
	st->open = m->nflows;
	pthread_mutex_unlock(&m->mu);
}

void pt_mirror_stop(struct pt_mirror *m, uint64_t linger_ns,
		    struct pt_mirror_stats *st)
{
	uint64_t one = 1;
	size_t b;

	pthread_mutex_lock(&m->mu);
	m->stopping = true;
	m->linger_until = pt_now_mono_ns() + linger_ns;
	/* what the capture never closed ends with it */
	for (b = 0; b < NBUCKETS; b++)
		for (struct flow *f = m->tab[b]; f; f = f->hnext) {
			f->at_end |= !f->closed;
			f->closed = true;
			mark(m, f);
		}
	pthread_cond_broadcast(&m->room);
	pthread_mutex_unlock(&m->mu);
	if (write(m->ev, &one, sizeof(one)) < 0)
		;
	pthread_join(m->thr, NULL);
	/* past the linger time: whatever is left is cut */
	for (b = 0; b < NBUCKETS; b++) {
		struct flow *f, *next;

		for (f = m->tab[b]; f; f = next) {
			next = f->hnext;
			if (f->st != F_DONE) {
				if (f->qoff < f->qlen || f->ooo)
					cut(m, f, &m->st.cut_slow);
				finish(m, f);
			}
			free(f->q);
			while (f->ooo) {
				struct chunk *c = f->ooo;

				f->ooo = c->next;
				m->st.dropped += c->len;
				free(c);
			}
			free(f);
		}
	}
	*st = m->st;
	close(m->ep);
	close(m->ev);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->room);
	free(m->own_until);
	free(m);
}

char *pt_mirror_summary(const char *to, const struct pt_mirror_stats *st)
{
	char *line = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&line, &len);

	if (!f)
		pt_oom();
	fprintf(f, "mirror to %s: %llu connections mirrored of %llu inbound, %llu delivered whole, %llu bytes delivered, %llu dropped",
		to, (unsigned long long)st->mirrored, (unsigned long long)st->conns,
		(unsigned long long)st->whole, (unsigned long long)st->bytes,
		(unsigned long long)st->dropped);
	if (st->cut_gap || st->cut_slow || st->cut_error || st->cut_closed ||
	    st->cut_end)
		fprintf(f, "; cut: %llu by capture gaps, %llu local process too slow, %llu closed by the local process, %llu connect or write errors, %llu open when the capture ended",
			(unsigned long long)st->cut_gap,
			(unsigned long long)st->cut_slow,
			(unsigned long long)st->cut_closed,
			(unsigned long long)st->cut_error,
			(unsigned long long)st->cut_end);
	if (st->own)
		fprintf(f, "; %llu of the mirror's own connections seen at the target (%s is one of its ports): not mirrored again",
			(unsigned long long)st->own, to);
	if (st->older)
		fprintf(f, "; %llu older than the recording (not mirrored: no request boundary)",
			(unsigned long long)st->older);
	if (st->no_plaintext)
		fprintf(f, "; %llu TLS without plaintext (not mirrored)",
			(unsigned long long)st->no_plaintext);
	if (st->over_limit)
		fprintf(f, "; %llu over the limit of connections at once",
			(unsigned long long)st->over_limit);
	fclose(f);
	return line;
}
