// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pcapng (draft-ietf-opsawg-pcapng) rebuilt from the streams: one Ethernet
 * interface, per connection a handshake (unless it predates the capture),
 * data segments where bytes were captured, nothing where they were not,
 * FIN or RST at the end. Sequence and acknowledgment numbers follow the
 * stream offsets, so Wireshark's "Follow TCP Stream" gives back the bytes.
 *
 * Written as the capture is read (export/stream.c's raw sink): each piece
 * of a connection's streams becomes packets that wait in a heap by time,
 * holding the piece's bytes, until no record still to come can bring an
 * earlier one.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "base/common.h"
#include "export/export.h"

#define SEG_MAX		32768	/* payload per rebuilt segment */

enum { P_DATA, P_SYN, P_SYNACK, P_ACK, P_FIN, P_RST };

/* A connection while packets of it wait to be written. */
struct wconn {
	struct wconn *prev, *next;	/* every one, to free them all */
	uint64_t id, order;
	struct pt_tuple t;
	int req_dir;
	char *comment;		/* for its first packet written */
	uint64_t sent[2];	/* highest stream offset written + 1, by dir */
	bool fin[2];		/* a FIN written */
	bool fin_queued[2];
	bool dead;		/* past --max-stream: the rest is left out */
	size_t refs;		/* packets waiting, and 1 while it is live */
};

/* The bytes of one piece of a stream, while packets point into them. */
struct blob {
	uint8_t *buf;
	uint64_t held;		/* what it takes: its bytes not in gaps */
	size_t refs;
};

struct pkt {
	uint64_t ts, seq;
	struct wconn *wc;
	struct blob *b;		/* the payload's, for data */
	uint64_t off;		/* stream offset of the first byte */
	uint32_t len;
	uint8_t dir;		/* sender: enum pt_dir */
	uint8_t kind;
	uint8_t gap_reason;
	uint64_t gap_before;	/* bytes not captured just before off */
	const uint8_t *data;
};

struct writer {
	FILE *f;
	struct pt_export_counts *cnt;
	struct pkt *heap;	/* by time */
	size_t n, cap;
	struct wconn *conns;
	uint64_t seq, norder, held, last_ts;
	size_t out_of_order;
	bool headed;
	int err;		/* the first write that failed */
	uint8_t *pkt, *blk;
};

/* A connection with no OPEN: no addresses, no packets. */
static struct wconn no_open;

static bool pkt_before(const struct pkt *x, const struct pkt *y)
{
	/* at the same instant: handshake, data, then FIN and RST */
	static const uint8_t rank[] = { [P_SYN] = 0, [P_SYNACK] = 1,
					[P_ACK] = 2, [P_DATA] = 3,
					[P_FIN] = 4, [P_RST] = 5 };

	if (x->ts != y->ts)
		return x->ts < y->ts;
	if (x->wc != y->wc)
		return x->wc->order < y->wc->order;
	if (x->kind != y->kind)
		return rank[x->kind] < rank[y->kind];
	if (x->dir != y->dir)
		return x->dir < y->dir;
	if (x->off != y->off)
		return x->off < y->off;
	return x->seq < y->seq;
}

static struct pkt *pkt_push(struct writer *w, struct wconn *wc, uint64_t ts,
			    int kind, int dir, uint64_t off)
{
	struct pkt k = { .ts = ts, .seq = w->seq++, .wc = wc, .kind = kind,
			 .dir = dir, .off = off };
	size_t i;

	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 1024;
		w->heap = pt_xrealloc(w->heap, w->cap, sizeof(*w->heap));
	}
	i = w->n++;
	while (i && pkt_before(&k, &w->heap[(i - 1) / 2])) {
		w->heap[i] = w->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->heap[i] = k;
	wc->refs++;
	return &w->heap[i];
}

static void pkt_pop(struct writer *w, struct pkt *out)
{
	struct pkt last;
	size_t i = 0, k;

	*out = w->heap[0];
	last = w->heap[--w->n];
	for (;;) {
		k = 2 * i + 1;
		if (k >= w->n)
			break;
		if (k + 1 < w->n && pkt_before(&w->heap[k + 1], &w->heap[k]))
			k++;
		if (!pkt_before(&w->heap[k], &last))
			break;
		w->heap[i] = w->heap[k];
		i = k;
	}
	if (w->n)
		w->heap[i] = last;
}

static void conn_put(struct writer *w, struct wconn *wc)
{
	if (--wc->refs)
		return;
	if (wc->prev)
		wc->prev->next = wc->next;
	else
		w->conns = wc->next;
	if (wc->next)
		wc->next->prev = wc->prev;
	w->held -= sizeof(*wc);
	free(wc->comment);
	free(wc);
}

/* A packet written (or thrown away): let go of what it held. */
static void pkt_done(struct writer *w, struct pkt *k)
{
	if (k->b && !--k->b->refs) {
		w->held -= k->b->held + sizeof(*k->b);
		free(k->b->buf);
		free(k->b);
	}
	conn_put(w, k->wc);
}

/* Data segments of xc->a[dir], the bytes from xc->base[dir] on: one or
 * more per mark, none over a gap. */
static void data_pkts(struct writer *w, struct wconn *wc,
		      struct pt_xconn *xc, int dir)
{
	struct pt_assembled *a = &xc->a[dir];
	uint64_t base = xc->base[dir];
	struct blob *b = NULL;
	size_t m, g = 0;

	for (m = 0; m < a->nmarks; m++) {
		uint64_t off = a->marks[m].off;
		uint64_t end = m + 1 < a->nmarks ? a->marks[m + 1].off : a->len;
		uint64_t gap = 0;
		uint8_t reason = 0;

		/* a mark's bytes run to the next mark or the next gap */
		while (g < a->ngaps && a->gaps[g].end <= off) {
			gap = a->gaps[g].end - a->gaps[g].start;
			reason = a->gaps[g].reason;
			g++;
		}
		if (g < a->ngaps && a->gaps[g].start < end &&
		    a->gaps[g].start >= off)
			end = a->gaps[g].start;
		while (off < end) {
			uint64_t n = end - off > SEG_MAX ? SEG_MAX : end - off;
			struct pkt *k;

			if (!b) {
				/* the packets keep the piece's bytes */
				b = pt_xcalloc(1, sizeof(*b));
				b->buf = a->buf;
				b->held = pt_assembled_held(a);
				a->buf = NULL;
				w->held += b->held + sizeof(*b);
			}
			k = pkt_push(w, wc, a->marks[m].ts, P_DATA, dir,
				     base + off);
			k->len = n;
			k->data = b->buf + off;
			k->b = b;
			k->gap_before = gap;
			k->gap_reason = reason;
			b->refs++;
			gap = 0;
			off += n;
		}
	}
}

static void conn_comment(char *buf, size_t n, const struct pt_capture *cap,
			 const struct pt_xconn *xc);

static struct wconn *conn_new(struct writer *w, const struct pt_capture *cap,
			      const struct pt_xconn *xc)
{
	const struct pt_conn *c = xc->conn;
	struct wconn *wc = pt_xcalloc(1, sizeof(*wc));
	char comment[512];
	int d;

	wc->id = c->id;
	wc->order = w->norder++;
	wc->t = c->open.t;
	wc->req_dir = xc->req_dir;
	conn_comment(comment, sizeof(comment), cap, xc);
	wc->comment = pt_xstrdup(comment);
	wc->refs = 1;
	wc->next = w->conns;
	if (w->conns)
		w->conns->prev = wc;
	w->conns = wc;
	w->held += sizeof(*wc);
	w->cnt->items++;
	if (!(c->open.h.flags & PT_F_PREEXISTING)) {
		static const uint8_t kinds[3] = { P_SYN, P_SYNACK, P_ACK };
		uint64_t t0 = c->first_ts;

		for (d = 0; d < 3; d++)
			pkt_push(w, wc, t0 > 3 ? t0 - 3 + d : t0, kinds[d],
				 d == 1 ? !wc->req_dir : wc->req_dir, 0);
	}
	return wc;
}

/* The next piece of a connection: its packets, queued by time. */
static int pcapng_bytes(void *ctx, const struct pt_capture *cap,
			struct pt_xconn *xc, void **state, bool final)
{
	const struct pt_conn *c = xc->conn;
	struct writer *w = ctx;
	struct wconn *wc = *state;
	int d;

	if (!wc) {
		wc = c->has_open ? conn_new(w, cap, xc) : &no_open;
		*state = wc;
	}
	if (wc == &no_open) {
		if (final)
			*state = NULL;
		return 0;
	}
	if (!xc->assembled && !wc->dead) {
		/* its packets so far are written; it is counted left out */
		wc->dead = true;
		w->cnt->items--;
	}
	for (d = 0; d < 2 && !wc->dead; d++) {
		uint64_t end = xc->base[d] + xc->a[d].len;

		data_pkts(w, wc, xc, d);
		/* a FIN once the bytes before it are all here */
		if (!wc->fin_queued[d] &&
		    (final ? pt_conn_ended(c, d) : xc->ended[d])) {
			pkt_push(w, wc, c->has_close ? c->close.h.ts_ns :
				 c->last_ts, P_FIN, d, end);
			wc->fin_queued[d] = true;
		}
	}
	if (final && !wc->dead && c->has_close && (c->close_flags & PT_F_RST))
		/* after a FIN of ours, a reset's sequence is one past it */
		pkt_push(w, wc, c->close.h.ts_ns, P_RST, PT_DIR_TX,
			 xc->base[PT_DIR_TX] + xc->a[PT_DIR_TX].len +
			 !!c->s[PT_DIR_TX].fin);
	if (final) {
		conn_put(w, wc);
		*state = NULL;
	}
	return 0;
}

/* pcapng writing */
static void put_opt(uint8_t **w, uint16_t code, const void *val, size_t len)
{
	uint16_t h[2] = { code, len };

	memcpy(*w, h, 4);
	memcpy(*w + 4, val, len);
	memset(*w + 4 + len, 0, (4 - len % 4) % 4);
	*w += 4 + ((len + 3) & ~3u);
}

static int put_block(FILE *f, uint32_t type, const uint8_t *body, size_t len)
{
	uint32_t total = 12 + len;

	if (fwrite(&type, 4, 1, f) != 1 || fwrite(&total, 4, 1, f) != 1 ||
	    fwrite(body, 1, len, f) != len || fwrite(&total, 4, 1, f) != 1)
		return errno ? -errno : -EIO;
	return 0;
}

static uint16_t csum_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

static uint32_t csum_add(uint32_t s, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += p[i] << 8 | p[i + 1];
	if (n & 1)
		s += p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

static uint32_t isn(uint64_t id, int dir)
{
	uint64_t x = id * 0x9e3779b97f4a7c15ull + dir + 1;

	x ^= x >> 31;
	return (uint32_t)(x * 0xbf58476d1ce4e5b9ull >> 32);
}

/* Build one packet at buf; returns its length. */
static size_t build(uint8_t *buf, const struct pkt *k)
{
	const struct wconn *st = k->wc;
	const struct pt_tuple *t = &st->t;
	bool v6 = t->family == AF_INET6, tx = k->dir == PT_DIR_TX;
	const uint8_t *src = tx ? t->laddr : t->raddr;
	const uint8_t *dst = tx ? t->raddr : t->laddr;
	uint16_t sport = tx ? t->lport : t->rport;
	uint16_t dport = tx ? t->rport : t->lport;
	size_t l3 = v6 ? 40 : 20, plen = k->kind == P_DATA ? k->len : 0;
	uint8_t *ip = buf + 14, *tcp = ip + l3;
	uint32_t seq, ack, s;
	uint8_t flags = 0x10;	/* ACK */
	bool client = k->dir == st->req_dir;

	/* Ethernet: locally administered addresses, client :01 server :02 */
	memcpy(buf, (uint8_t[6]){ 2, 0, 0, 0, 0, client ? 2 : 1 }, 6);
	memcpy(buf + 6, (uint8_t[6]){ 2, 0, 0, 0, 0, client ? 1 : 2 }, 6);
	buf[12] = v6 ? 0x86 : 0x08;
	buf[13] = v6 ? 0xdd : 0x00;

	seq = isn(st->id, k->dir) + 1 + (uint32_t)k->off;
	ack = isn(st->id, !k->dir) + 1 + (uint32_t)st->sent[!k->dir] +
	      st->fin[!k->dir];
	switch (k->kind) {
	case P_SYN:
		flags = 0x02;
		seq--;
		ack = 0;
		break;
	case P_SYNACK:
		flags = 0x12;
		seq--;
		break;
	case P_FIN:
		flags = 0x11;
		break;
	case P_RST:
		flags = 0x14;
		break;
	case P_DATA:
		flags = 0x18;	/* PSH ACK */
		break;
	}
	if (k->kind == P_DATA)
		memcpy(tcp + 20, k->data, plen);
	memset(tcp, 0, 20);
	*(uint16_t *)tcp = htons(sport);
	*(uint16_t *)(tcp + 2) = htons(dport);
	*(uint32_t *)(tcp + 4) = htonl(seq);
	*(uint32_t *)(tcp + 8) = htonl(ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	*(uint16_t *)(tcp + 14) = htons(65535);

	memset(ip, 0, l3);
	if (v6) {
		ip[0] = 0x60;
		*(uint16_t *)(ip + 4) = htons(20 + plen);
		ip[6] = IPPROTO_TCP;
		ip[7] = 64;
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
		s = csum_add(0, ip + 8, 32);
	} else {
		ip[0] = 0x45;
		*(uint16_t *)(ip + 2) = htons(20 + 20 + plen);
		*(uint16_t *)(ip + 6) = htons(0x4000);	/* DF */
		ip[8] = 64;
		ip[9] = IPPROTO_TCP;
		memcpy(ip + 12, src, 4);
		memcpy(ip + 16, dst, 4);
		*(uint16_t *)(ip + 10) = htons(csum_fold(csum_add(0, ip, 20)));
		s = csum_add(0, ip + 12, 8);
	}
	s += IPPROTO_TCP + 20 + plen;
	s = csum_add(s, tcp, 20 + plen);
	*(uint16_t *)(tcp + 16) = htons(csum_fold(s));
	return 14 + l3 + 20 + plen;
}

static const char *target_name(const struct pt_capture *cap,
			       const struct pt_conn_open *o)
{
	size_t i;

	for (i = 0; i < cap->conns.ntargets; i++)
		if (cap->conns.targets[i].kind == PT_TARGET_CGROUP &&
		    cap->conns.targets[i].id == o->cgroup_id)
			return cap->conns.targets[i].name;
	for (i = 0; i < cap->conns.ntargets; i++)
		if (cap->conns.targets[i].session_id == o->session_id)
			return cap->conns.targets[i].name;
	return "";
}

static void conn_comment(char *buf, size_t n, const struct pt_capture *cap,
			 const struct pt_xconn *xc)
{
	const struct pt_conn_open *o = &xc->conn->open;
	const char *tn = target_name(cap, o);

	snprintf(buf, n, "podtap conn %llu: %s side, pid %u tid %u (%s), cgroup %llu, session %u%s%s%s%s%s",
		 (unsigned long long)xc->conn->id, pt_role_name(o->role),
		 o->tgid, o->pid, o->comm[0] ? o->comm : "?",
		 (unsigned long long)o->cgroup_id, o->session_id,
		 *tn ? ", target " : "", tn,
		 o->h.flags & PT_F_PREEXISTING ?
		 ", older than the capture: no handshake seen" : "",
		 xc->proto == PT_XP_TLS ? ", TLS ciphertext (not decrypted)" :
		 xc->tls ? ", TLS: the plaintext from the library calls as TCP payload (the ciphertext is left out)" : "",
		 xc->proto == PT_XP_HTTP2 ? ", HTTP/2" : "");
}

static int write_pkt(FILE *f, const struct pt_capture *cap,
		     const struct pkt *k, uint8_t *pkt, uint8_t *blk)
{
	struct wconn *st = k->wc;
	uint64_t ns = pt_wall_ns(cap, k->ts);
	uint32_t hdr[5], len = build(pkt, k);
	char comment[640] = "";
	uint8_t *w = blk;

	if (st->comment) {
		snprintf(comment, sizeof(comment), "%s", st->comment);
		free(st->comment);
		st->comment = NULL;
	}
	if (k->gap_before) {
		size_t l = strlen(comment);

		snprintf(comment + l, sizeof(comment) - l,
			 "%spodtap: %llu bytes before this segment were not captured (%s)",
			 l ? "; " : "", (unsigned long long)k->gap_before,
			 pt_loss_reason_name(k->gap_reason));
	}
	hdr[0] = 0;		/* interface */
	hdr[1] = ns >> 32;
	hdr[2] = (uint32_t)ns;
	hdr[3] = hdr[4] = len;
	memcpy(w, hdr, sizeof(hdr));
	w += sizeof(hdr);
	memcpy(w, pkt, len);
	memset(w + len, 0, (4 - len % 4) % 4);
	w += (len + 3) & ~3u;
	if (comment[0])
		put_opt(&w, 1, comment, strlen(comment));
	if (w != blk + sizeof(hdr) + ((len + 3) & ~3u))
		put_opt(&w, 0, NULL, 0);
	if (k->kind == P_DATA && k->off + k->len > st->sent[k->dir])
		st->sent[k->dir] = k->off + k->len;
	if (k->kind == P_FIN)
		st->fin[k->dir] = true;
	return put_block(f, 6, blk, w - blk);
}

static int write_headers(FILE *f, const struct pt_capture *cap)
{
	uint8_t b[512], *w = b;
	uint32_t v32 = 0x1a2b3c4d;
	uint16_t v16[2] = { 1, 0 };
	int64_t sect = -1;
	char desc[128];
	uint8_t tsresol = 9;
	int err;

	memcpy(w, &v32, 4);
	memcpy(w + 4, v16, 4);
	memcpy(w + 8, &sect, 8);
	w += 16;
	put_opt(&w, 4, "podtap " PT_VERSION, strlen("podtap " PT_VERSION));
	put_opt(&w, 0, NULL, 0);
	err = put_block(f, 0x0a0d0d0a, b, w - b);
	if (err)
		return err;
	w = b;
	v16[0] = 1;		/* LINKTYPE_ETHERNET */
	v16[1] = 0;
	memcpy(w, v16, 4);
	v32 = 0;		/* no snap length */
	memcpy(w + 4, &v32, 4);
	w += 8;
	put_opt(&w, 2, "podtap", 6);
	snprintf(desc, sizeof(desc), "TCP streams recorded by podtap on %s, rebuilt as packets",
		 cap->info.hdr.host);
	put_opt(&w, 3, desc, strlen(desc));
	put_opt(&w, 9, &tsresol, 1);
	put_opt(&w, 0, NULL, 0);
	return put_block(f, 1, b, w - b);
}

/* Write what nothing still to come can precede. */
static int pcapng_flush(void *ctx, const struct pt_capture *cap,
			uint64_t before)
{
	struct writer *w = ctx;
	struct pkt k;
	int err = 0;

	if (!w->n)
		return 0;
	if (w->err)
		return w->err;
	if (!w->headed) {
		w->headed = true;
		err = write_headers(w->f, cap);
	}
	while (!err && w->n && w->heap[0].ts < before) {
		pkt_pop(w, &k);
		if (k.ts < w->last_ts)
			w->out_of_order++;
		else
			w->last_ts = k.ts;
		err = write_pkt(w->f, cap, &k, w->pkt, w->blk);
		pkt_done(w, &k);
	}
	if (err && !w->err)
		w->err = err;
	return err;
}

static uint64_t pcapng_held(void *ctx)
{
	const struct writer *w = ctx;

	return w->held + w->cap * sizeof(*w->heap);
}

static void pcapng_begin(struct pt_xsink *sink, FILE *f,
			 struct pt_export_counts *cnt)
{
	struct writer *w = pt_xcalloc(1, sizeof(*w));

	w->f = f;
	w->cnt = cnt;
	w->pkt = pt_xcalloc(1, 14 + 40 + 20 + SEG_MAX);
	w->blk = pt_xcalloc(1, 20 + 14 + 40 + 20 + SEG_MAX + 4 + 1024);
	sink->bctx = w;
	sink->bytes = pcapng_bytes;
	sink->flush = pcapng_flush;
	sink->held = pcapng_held;
}

static int pcapng_end(struct pt_xsink *sink, const struct pt_capture *cap,
		      bool abort)
{
	struct writer *w = sink->bctx;
	struct pkt k;
	int err = w->err;

	if (!abort && !err) {
		err = pcapng_flush(w, cap, UINT64_MAX);
		if (!err && !w->headed)
			err = write_headers(w->f, cap);
		if (!err && w->out_of_order)
			pt_info("%zu packet%s written out of order: their records came more than 1 s after later ones",
				w->out_of_order, w->out_of_order == 1 ? "" : "s");
	}
	while (w->n) {
		pkt_pop(w, &k);
		pkt_done(w, &k);
	}
	while (w->conns) {
		/* live ones, when reading stopped part way */
		w->conns->refs = 1;
		conn_put(w, w->conns);
	}
	free(w->heap);
	free(w->blk);
	free(w->pkt);
	free(w);
	sink->bctx = NULL;
	return err;
}

const struct pt_exporter pt_exporter_pcapng = {
	.name = "pcapng",
	.raw_begin = pcapng_begin,
	.raw_end = pcapng_end,
	.binary = true,
	.holds = PT_HOLDS_OPENED,
	.item = "connection", .items = "connections",
	.help = "Ethernet/IP/TCP packets rebuilt from the streams, with process\n"
		"and pod attribution in comments, for Wireshark and tshark",
};
