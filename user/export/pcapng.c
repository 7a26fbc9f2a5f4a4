// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pcapng (draft-ietf-opsawg-pcapng) rebuilt from the streams: one Ethernet
 * interface, per connection a handshake (unless it predates the capture),
 * data segments where bytes were captured, nothing where they were not,
 * FIN or RST at the end. Sequence and acknowledgment numbers follow the
 * stream offsets, so Wireshark's "Follow TCP Stream" gives back the bytes.
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

struct pkt {
	uint64_t ts;
	uint32_t conn;		/* index in cap->conns.v */
	uint8_t dir;		/* sender: enum pt_dir */
	uint8_t kind;
	uint64_t off;		/* stream offset of the first byte */
	uint32_t len;
	uint64_t gap_before;	/* bytes not captured just before off */
	uint8_t gap_reason;
};

struct pkts {
	struct pkt *v;
	size_t n, cap;
};

static struct pkt *pkt_add(struct pkts *p)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 1024;
		p->v = pt_xrealloc(p->v, p->cap, sizeof(*p->v));
	}
	memset(&p->v[p->n], 0, sizeof(p->v[0]));
	return &p->v[p->n++];
}

static int cmp_pkt(const void *a, const void *b)
{
	/* at the same instant: handshake, data, then FIN and RST */
	static const uint8_t rank[] = { [P_SYN] = 0, [P_SYNACK] = 1,
					[P_ACK] = 2, [P_DATA] = 3,
					[P_FIN] = 4, [P_RST] = 5 };
	const struct pkt *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->conn != y->conn)
		return x->conn < y->conn ? -1 : 1;
	if (x->kind != y->kind)
		return rank[x->kind] < rank[y->kind] ? -1 : 1;
	if (x->dir != y->dir)
		return x->dir < y->dir ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

static void data_pkts(struct pkts *p, const struct pt_xconn *xc, uint32_t ci,
		      int dir)
{
	const struct pt_assembled *a = &xc->a[dir];
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
			struct pkt *k = pkt_add(p);
			uint64_t n = end - off > SEG_MAX ? SEG_MAX : end - off;

			k->ts = a->marks[m].ts;
			k->conn = ci;
			k->dir = dir;
			k->kind = P_DATA;
			k->off = off;
			k->len = n;
			k->gap_before = gap;
			k->gap_reason = reason;
			gap = 0;
			off += n;
		}
	}
}

static void conn_pkts(struct pkts *p, const struct pt_capture *cap,
		      uint32_t ci)
{
	const struct pt_xconn *xc = &cap->xc[ci];
	const struct pt_conn *c = xc->conn;
	int cdir = xc->req_dir, d;
	uint64_t t0 = c->first_ts;
	struct pkt *k;

	if (!(c->open.h.flags & PT_F_PREEXISTING)) {
		static const uint8_t kinds[3] = { P_SYN, P_SYNACK, P_ACK };

		for (d = 0; d < 3; d++) {
			k = pkt_add(p);
			k->ts = t0 > 3 ? t0 - 3 + d : t0;
			k->conn = ci;
			k->kind = kinds[d];
			k->dir = d == 1 ? !cdir : cdir;
		}
	}
	for (d = 0; d < 2; d++) {
		data_pkts(p, xc, ci, d);
		if (c->s[d].fin || (c->has_close && !(c->close_flags & PT_F_RST))) {
			k = pkt_add(p);
			k->ts = c->has_close ? c->close.h.ts_ns : c->last_ts;
			k->conn = ci;
			k->dir = d;
			k->kind = P_FIN;
			k->off = xc->a[d].len;
		}
	}
	if (c->has_close && (c->close_flags & PT_F_RST)) {
		k = pkt_add(p);
		k->ts = c->close.h.ts_ns;
		k->conn = ci;
		k->dir = PT_DIR_TX;
		k->kind = P_RST;
		/* after a FIN of ours, a reset's sequence is one past it */
		k->off = xc->a[PT_DIR_TX].len + !!c->s[PT_DIR_TX].fin;
	}
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

struct tcp_state {
	uint64_t sent[2];	/* highest stream offset sent + 1, by dir */
	bool fin[2];
	bool syn;		/* a handshake was written */
	bool commented;
};

/* Build one packet at buf; returns its length. */
static size_t build(uint8_t *buf, const struct pt_capture *cap,
		    const struct pkt *k, const struct tcp_state *st)
{
	const struct pt_xconn *xc = &cap->xc[k->conn];
	const struct pt_tuple *t = &xc->conn->open.t;
	bool v6 = t->family == AF_INET6, tx = k->dir == PT_DIR_TX;
	const uint8_t *src = tx ? t->laddr : t->raddr;
	const uint8_t *dst = tx ? t->raddr : t->laddr;
	uint16_t sport = tx ? t->lport : t->rport;
	uint16_t dport = tx ? t->rport : t->lport;
	size_t l3 = v6 ? 40 : 20, plen = k->kind == P_DATA ? k->len : 0;
	uint8_t *ip = buf + 14, *tcp = ip + l3;
	uint32_t seq, ack, s;
	uint8_t flags = 0x10;	/* ACK */
	bool client = k->dir == xc->req_dir;

	/* Ethernet: locally administered addresses, client :01 server :02 */
	memcpy(buf, (uint8_t[6]){ 2, 0, 0, 0, 0, client ? 2 : 1 }, 6);
	memcpy(buf + 6, (uint8_t[6]){ 2, 0, 0, 0, 0, client ? 1 : 2 }, 6);
	buf[12] = v6 ? 0x86 : 0x08;
	buf[13] = v6 ? 0xdd : 0x00;

	seq = isn(xc->conn->id, k->dir) + 1 + (uint32_t)k->off;
	ack = isn(xc->conn->id, !k->dir) + 1 + (uint32_t)st->sent[!k->dir] +
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
		memcpy(tcp + 20, pt_span_bytes(xc, &(struct pt_span){
			.dir = k->dir, .off = k->off }), plen);
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
	size_t i, len, amb = 0;

	len = (size_t)snprintf(buf, n, "podtap conn %llu: %s side, pid %u tid %u (%s), cgroup %llu, session %u%s%s%s%s%s",
		 (unsigned long long)xc->conn->id, pt_role_name(o->role),
		 o->tgid, o->pid, o->comm[0] ? o->comm : "?",
		 (unsigned long long)o->cgroup_id, o->session_id,
		 *tn ? ", target " : "", tn,
		 o->h.flags & PT_F_PREEXISTING ?
		 ", older than the capture: no handshake seen" : "",
		 xc->proto == PT_XP_TLS ? ", TLS ciphertext (not decrypted)" :
		 xc->tls ? ", TLS: the plaintext from the library calls as TCP payload (the ciphertext is left out)" : "",
		 xc->proto == PT_XP_HTTP2 ? ", HTTP/2" : "");
	for (i = 0; i < xc->nx; i++)
		if (xc->x[i].ambiguous && len < n)
			len += (size_t)snprintf(buf + len, n - len,
				"%s #%zu (%s)", amb++ ? "," :
				"; framing ambiguous in exchange", i + 1,
				xc->x[i].ambiguous);
}

static int write_pkt(FILE *f, const struct pt_capture *cap,
		     const struct pkt *k, struct tcp_state *st, uint8_t *pkt,
		     uint8_t *blk)
{
	const struct pt_xconn *xc = &cap->xc[k->conn];
	uint64_t ns = pt_wall_ns(cap, k->ts);
	uint32_t hdr[5], len = build(pkt, cap, k, st);
	char comment[512] = "";
	uint8_t *w = blk;

	if (!st->commented) {
		conn_comment(comment, sizeof(comment), cap, xc);
		st->commented = true;
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

static int export_pcapng(const struct pt_capture *cap, FILE *f,
		     struct pt_export_counts *cnt)
{
	struct pkts p = {};
	struct tcp_state *st;
	uint8_t *pkt, *blk;
	size_t i;
	int err;

	for (i = 0; i < cap->conns.n; i++)
		if (cap->xc[i].assembled && cap->conns.v[i]->has_open) {
			conn_pkts(&p, cap, i);
			cnt->items++;
		}
	qsort(p.v, p.n, sizeof(*p.v), cmp_pkt);
	st = pt_xcalloc(cap->conns.n + 1, sizeof(*st));
	pkt = pt_xcalloc(1, 14 + 40 + 20 + SEG_MAX);
	blk = pt_xcalloc(1, 20 + 14 + 40 + 20 + SEG_MAX + 4 + 1024);
	err = write_headers(f, cap);
	for (i = 0; !err && i < p.n; i++)
		err = write_pkt(f, cap, &p.v[i], &st[p.v[i].conn], pkt, blk);
	free(blk);
	free(pkt);
	free(st);
	free(p.v);
	return err;
}

const struct pt_exporter pt_exporter_pcapng = {
	.name = "pcapng",
	.to_file = export_pcapng,
	.binary = true,
	.holds = PT_HOLDS_OPENED,
	.item = "connection", .items = "connections",
	.help = "Ethernet/IP/TCP packets rebuilt from the streams, with process\n"
		"and pod attribution in comments, for Wireshark and tshark",
};
