/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Packet parsing: IPv4/IPv6 and TCP headers, stream offsets, first bytes. */
#ifndef __PT_PARSE_BPF_H
#define __PT_PARSE_BPF_H

#define AF_INET		2
#define AF_INET6	10
#define IPPROTO_HOPOPTS	0
#define IPPROTO_TCP	6
#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD

#define TCP_FLAG_FIN	0x01
#define TCP_FLAG_SYN	0x02
#define TCP_FLAG_RST	0x04

/* Stream offset of sequence number seq, extended to 64 bits around next. */
static __always_inline __u64 stream_off(struct pt_dir_state *d, __u32 seq)
{
	__u32 at_next = d->base + (__u32)d->next;

	return d->next + (__s64)(__s32)(seq - at_next);
}

struct pkt {
	struct pt_tuple t;	/* local/remote as seen by the socket */
	__u32 seq;
	__u32 data_off;		/* payload offset within the skb */
	__u32 len;		/* payload length */
	__u8  flags;		/* TCP flags */
};

static __always_inline int parse_pkt(struct __sk_buff *skb, int dir,
				     struct pkt *p)
{
	struct tcphdr th;
	__u32 l3len;
	__u8 *la, *ra;

	la = dir == PT_DIR_TX ? p->t.laddr : p->t.raddr;
	ra = dir == PT_DIR_TX ? p->t.raddr : p->t.laddr;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) ||
		    ip.protocol != IPPROTO_TCP)
			return -1;
		l3len = ip.ihl * 4;
		__builtin_memcpy(la, &ip.saddr, 4);
		__builtin_memcpy(ra, &ip.daddr, 4);
		p->t.family = AF_INET;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		__u8 nexthdr, ext[2];

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return -1;
		l3len = sizeof(ip6);
		nexthdr = ip6.nexthdr;
		/*
		 * One hop-by-hop header is followed (IPv6 BIG TCP's jumbo
		 * option); other extension headers are counted as unparsed.
		 */
		if (nexthdr == IPPROTO_HOPOPTS) {
			if (bpf_skb_load_bytes(skb, l3len, ext, sizeof(ext)))
				return -1;
			nexthdr = ext[0];
			l3len += (ext[1] + 1) * 8;
		}
		if (nexthdr != IPPROTO_TCP)
			return -1;
		__builtin_memcpy(la, &ip6.saddr, 16);
		__builtin_memcpy(ra, &ip6.daddr, 16);
		p->t.family = AF_INET6;
	} else {
		return -1;
	}
	if (bpf_skb_load_bytes(skb, l3len, &th, sizeof(th)))
		return -1;
	p->data_off = l3len + th.doff * 4;
	if (p->data_off > skb->len)
		return -1;
	p->len = skb->len - p->data_off;
	p->seq = bpf_ntohl(th.seq);
	p->flags = ((__u8 *)&th)[13];
	if (dir == PT_DIR_TX) {
		p->t.lport = bpf_ntohs(th.source);
		p->t.rport = bpf_ntohs(th.dest);
	} else {
		p->t.lport = bpf_ntohs(th.dest);
		p->t.rport = bpf_ntohs(th.source);
	}
	return 0;
}

static __always_inline __u8 guess_proto(struct __sk_buff *skb, struct pkt *p)
{
	char b[4] = {};

	if (p->len < 4 || bpf_skb_load_bytes(skb, p->data_off, b, 4))
		return PT_PROTO_UNKNOWN;
	/* a TLS record: handshake, alert, change cipher spec, data */
	if (b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03)
		return PT_PROTO_TLS;
	if (b[0] == 'P' && b[1] == 'R' && b[2] == 'I' && b[3] == ' ')
		return PT_PROTO_HTTP2;
	if ((b[0] == 'G' && b[1] == 'E' && b[2] == 'T') ||
	    (b[0] == 'P' && (b[1] == 'O' || b[1] == 'U' || b[1] == 'A')) ||
	    (b[0] == 'H' && b[1] == 'E' && b[2] == 'A') ||
	    (b[0] == 'H' && b[1] == 'T' && b[2] == 'T' && b[3] == 'P') ||
	    (b[0] == 'D' && b[1] == 'E' && b[2] == 'L') ||
	    (b[0] == 'O' && b[1] == 'P' && b[2] == 'T'))
		return PT_PROTO_HTTP1;
	return PT_PROTO_UNKNOWN;
}

#endif /* __PT_PARSE_BPF_H */
