// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * TLS plaintext from the library calls: uprobes on SSL_write, SSL_read
 * and their _ex forms (OpenSSL 1.1.1 and 3.x, BoringSSL), entry and
 * return, or, where a pair wraps one inner function with the _ex form's
 * arguments (OpenSSL's ssl_write_internal, found by user/capture/elfbin.c),
 * on that function with the _ex programs. The probes sit on instructions
 * the kernel emulates where the code allows: one it single-steps costs
 * some 30 times more. The entry remembers the call per thread
 * (tls_calls); the return copies what the library took or gave from the
 * caller's buffer into TLS_DATA records, at the plaintext offset of that
 * (process, SSL*) (tls_conns). Uprobes are per library file, so every
 * process mapping it traps here: the first thing each program does is the
 * target check.
 *
 * Which socket an SSL* uses is learnt by skb.bpf.c: a thread that is in
 * an SSL call or handshake (hooked for this alone) when it sends on a
 * socket is using that socket. Until then plaintext goes to a
 * pseudo-connection, and a TLS_ASSOC record joins it to the socket later.
 *
 * Go's crypto/tls is hooked in the executable: (*Conn).Write and
 * (*Conn).Read at entry and at each of their RET instructions (a Go
 * program's stacks move, which uretprobes do not survive). Go passes
 * arguments and results in registers (ABIInternal, 1.17+) and keeps the
 * goroutine in r14; a call is remembered per goroutine. The socket is read
 * from the Conn itself: its net.Conn, the descriptor, the kernel's file.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "podtap.h"
#include "maps.bpf.h"
#include "compat.bpf.h"
#include "emit.bpf.h"

#ifndef AF_INET
#define AF_INET		2
#endif

/*
 * Chunks of one call: a write hands its whole buffer over at once (Python
 * writes a 1 MiB body in one SSL_write_ex), so up to 32 MiB per call, the
 * rest reported lost. With bpf_loop (5.17) the verifier looks at one
 * chunk, not at each.
 */
#define TLS_MAX_CHUNKS	1024

/* The session of the target the current task is in; 0 if none. */
static __always_inline __u32 target_session(void)
{
	__u32 *sess, ns;
	int level;

	if (pidns_targets) {
		ns = task_pidns_inum((struct task_struct *)
				     bpf_get_current_task());
		sess = bpf_map_lookup_elem(&target_pidns, &ns);
		if (sess)
			return *sess;
	}
	for (level = 0; level < PT_MAX_CGROUP_LEVEL; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id)
			break;
		sess = bpf_map_lookup_elem(&target_cgroups, &id);
		if (sess)
			return *sess;
	}
	return 0;
}

/*
 * ... whose plaintext is wanted: a session may say no (tls: false in its
 * RecordingSession), which the agent writes into tls_off.
 */
static __always_inline __u32 current_session(void)
{
	__u32 sess = target_session();

	if (sess && bpf_map_lookup_elem(&tls_off, &sess))
		return 0;
	return sess;
}

/*
 * One TLS_DATA record of up to PT_CHUNK_MAX bytes from the caller's
 * buffer, in size classes as DATA. Global: verified once.
 * len_dir: bits 0-23 length, bit 24 direction, bit 26 unassociated (and
 * then the record says the caller's session).
 */
__noinline int pt_emit_plain(__u64 conn_id, __u64 off, __u64 ubuf,
			     __u32 len_dir, __u32 session)
{
	__u32 len = len_dir & 0xffffff;
	__u32 dir = (len_dir >> 24) & 1;
	__u16 flags = (len_dir & (1 << 26)) ? PT_F_UNASSOC : 0;
	struct pt_counters *c;
	struct pt_data *r;

	if (!len)
		return 0;

#define PLAIN_CLASS(N)							\
	if (len <= N) {							\
		r = bpf_ringbuf_reserve(&podtap_events,			\
					sizeof(*r) + N, 0);		\
		if (!r)							\
			goto lost;					\
		if (bpf_probe_read_user(r->payload, size_in(len, N),	\
					(const void *)ubuf)) {		\
			bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);	\
			note_loss(conn_id, PT_DIR_TLS + dir, off, len,	\
				  PT_LOSS_LOAD);			\
			goto count_lost;				\
		}							\
		goto fill;						\
	}

	PLAIN_CLASS(128)
	PLAIN_CLASS(512)
	PLAIN_CLASS(2048)
	PLAIN_CLASS(8192)
	PLAIN_CLASS(PT_CHUNK_MAX)
#undef PLAIN_CLASS
	return -1;

fill:
	fill_data(r, PT_REC_TLS_DATA, flags, conn_id, off, len, dir);
	if (flags)
		r->session = session;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	c = counters();
	if (c) {
		c->events++;
		c->tls_records++;
		c->tls_bytes += len;
		if (flags)
			c->tls_unassoc++;
	}
	return 0;
lost:
	note_loss(conn_id, PT_DIR_TLS + dir, off, len, PT_LOSS_RINGBUF_FULL);
count_lost:
	c = counters();
	if (c)
		c->tls_lost += len;
	return -1;
}

/*
 * A new pseudo-connection id: the top bit set, never a socket cookie
 * (nor bit 62, which readers use for connections seen again); unique as
 * the CPU and that CPU's clock are.
 */
static __always_inline __u64 pseudo_id(void)
{
	return PT_PSEUDO_CONN | ((__u64)(bpf_get_smp_processor_id() & 0x3ff) << 52) |
	       (bpf_ktime_get_ns() & ((1ull << 52) - 1));
}

struct emit_ctx {
	__u64 conn_id, off, buf, len, done;
	__u32 flags, session;
};

/* One chunk of a call's plaintext, for bpf_loop; 1 ends the loop. */
static long emit_chunk(__u32 i, void *vctx)
{
	struct emit_ctx *c = vctx;
	__u64 n;

	if (c->done >= c->len)
		return 1;
	n = c->len - c->done > PT_CHUNK_MAX ? PT_CHUNK_MAX : c->len - c->done;
	pt_emit_plain(c->conn_id, c->off + c->done, c->buf + c->done,
		      (__u32)n | c->flags, c->session);
	c->done += n;
	return 0;
}

/*
 * The plaintext of one call, at the offset of its (process, SSL*).
 * Global: verified once for every return program.
 */
__noinline int pt_emit_tls(__u64 ssl, __u64 buf, __u64 len, __u64 tgid_dir,
			   __u32 session)
{
	struct pt_tls_key key = { .tgid = tgid_dir >> 32, .ssl = ssl };
	struct pt_tls_state *st, init = {};
	int dir = tgid_dir & 1;
	struct emit_ctx ec = {};
	__u64 conn_id, off, done;
	__u32 unassoc;

	st = bpf_map_lookup_elem(&tls_conns, &key);
	/*
	 * With --port/--host, only plaintext whose socket is known and kept:
	 * a pseudo-connection might be one the filters leave out.
	 */
	if ((filter_nports || filter_nhosts) &&
	    (!st || (st->conn_id & PT_PSEUDO_CONN))) {
		struct pt_counters *c = counters();

		if (c)
			c->filtered++;
		if (st)
			st->off[dir] += len;
		return 0;
	}
	if (!st) {
		init.conn_id = pseudo_id();
		bpf_map_update_elem(&tls_conns, &key, &init, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&tls_conns, &key);
		if (!st)
			return 0;
	}
	conn_id = st->conn_id;
	off = st->off[dir];
	st->off[dir] = off + len;
	unassoc = (conn_id & PT_PSEUDO_CONN) ? 1 << 26 : 0;
	ec.conn_id = conn_id;
	ec.off = off;
	ec.buf = buf;
	ec.len = len;
	ec.flags = (dir << 24) | unassoc;
	ec.session = session;
	bpf_loop(TLS_MAX_CHUNKS, emit_chunk, &ec, 0);
	done = ec.done;
	if (done < len) {
		struct pt_counters *c = counters();

		note_loss(conn_id, PT_DIR_TLS + dir, off + done, len - done,
			  PT_LOSS_TOO_BIG);
		if (c)
			c->tls_lost += len - done;
	}
	return 0;
}

/* Whether the call was remembered, for its return to look at. */
static __always_inline bool call_enter(__u64 ssl, __u64 buf, __u64 lenp,
				       __u32 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pt_tls_call c = {};

	if (!tls_on)
		return false;
	c.session = current_session();
	if (!c.session)
		return false;
	c.ssl = ssl;
	c.buf = buf;
	c.lenp = lenp;
	c.kind = kind;
	/* a handshake inside a read or write is that call's */
	return !bpf_map_update_elem(&tls_calls, &id, &c,
				    kind == PT_TLS_HANDSHAKE ? BPF_NOEXIST :
							       BPF_ANY);
}

static __always_inline int call_exit(long ret, bool ex, __u32 kind)
{
	__u64 id = bpf_get_current_pid_tgid(), len;
	struct pt_tls_call *p, c;

	p = bpf_map_lookup_elem(&tls_calls, &id);
	if (!p || p->kind != kind)
		return 0;
	c = *p;
	bpf_map_delete_elem(&tls_calls, &id);
	if (kind == PT_TLS_HANDSHAKE)
		return 0;
	if (ex) {
		/* *written / *readbytes, valid only when the call says 1 */
		if (ret != 1 || bpf_probe_read_user(&len, sizeof(len),
						    (const void *)c.lenp))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		len = ret;
	}
	pt_emit_tls(c.ssl, c.buf, len, (id & ~0xffffffffull) |
		    (kind == PT_TLS_READ ? PT_DIR_RX : PT_DIR_TX), c.session);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(podtap_tls_w, void *ssl, const void *buf, int num)
{
	call_enter((__u64)ssl, (__u64)buf, 0, PT_TLS_WRITE);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(podtap_tls_w_r, int ret)
{
	return call_exit(ret, false, PT_TLS_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(podtap_tls_r, void *ssl, void *buf, int num)
{
	call_enter((__u64)ssl, (__u64)buf, 0, PT_TLS_READ);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(podtap_tls_r_r, int ret)
{
	return call_exit(ret, false, PT_TLS_READ);
}

SEC("uprobe")
int BPF_KPROBE(podtap_tls_wx, void *ssl, const void *buf, size_t num,
	       size_t *written)
{
	call_enter((__u64)ssl, (__u64)buf, (__u64)written, PT_TLS_WRITE);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(podtap_tls_wx_r, int ret)
{
	return call_exit(ret, true, PT_TLS_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(podtap_tls_rx, void *ssl, void *buf, size_t num,
	       size_t *readbytes)
{
	call_enter((__u64)ssl, (__u64)buf, (__u64)readbytes, PT_TLS_READ);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(podtap_tls_rx_r, int ret)
{
	return call_exit(ret, true, PT_TLS_READ);
}

/* SSL_do_handshake, SSL_connect, SSL_accept: only to learn the socket. */
SEC("uprobe")
int BPF_KPROBE(podtap_tls_hs, void *ssl)
{
	call_enter((__u64)ssl, 0, 0, PT_TLS_HANDSHAKE);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(podtap_tls_hs_r, int ret)
{
	return call_exit(ret, false, PT_TLS_HANDSHAKE);
}

/*
 * The same calls through one session uprobe per function (uprobe_multi,
 * 6.13+), for all of a library's functions in one link: the attach cookie
 * says which function (PT_TLS_WRITE, _READ or _HANDSHAKE, with
 * PT_TLS_SESSION_EX for the _ex arguments). The entry asks for the return
 * only when it remembered the call, so a process that is not a target
 * traps once per call, not twice, and the link's probes are let go of
 * together when recording stops.
 */
extern bool bpf_session_is_return(void) __ksym __weak;

SEC("uprobe")
int podtap_tls_s(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 kind = cookie & ~PT_TLS_SESSION_EX;
	bool ex = cookie & PT_TLS_SESSION_EX;

	if (bpf_session_is_return())
		return call_exit(PT_REGS_RC(ctx), ex, kind);
	return !call_enter(PT_REGS_PARM1(ctx),
			   kind == PT_TLS_HANDSHAKE ? 0 : PT_REGS_PARM2(ctx),
			   ex ? PT_REGS_PARM4(ctx) : 0, kind);
}

/* Go crypto/tls: (*Conn).Write and (*Conn).Read, amd64 ABIInternal. */

/* The top of a goroutine's stack: g.stack.hi, the g's second word. */
static __always_inline __u64 go_stack_hi(__u64 g)
{
	__u64 hi = 0;

	bpf_probe_read_user(&hi, sizeof(hi), (void *)(g + 8));
	return hi;
}

static __always_inline int go_enter(struct pt_regs *ctx, __u32 kind)
{
	struct pt_go_key key = {};
	struct pt_tls_call c = {};

	if (!tls_on)
		return 0;
	c.session = current_session();
	if (!c.session)
		return 0;
	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.g = ctx->r14;
	c.ssl = ctx->ax;	/* c *Conn */
	c.buf = ctx->bx;	/* b []byte: pointer, */
	c.lenp = ctx->cx;	/* length */
	c.kind = kind;
	c.sp = ctx->sp;
	c.stack_hi = go_stack_hi(key.g);
	bpf_map_update_elem(&go_calls, &key, &c, BPF_ANY);
	return 0;
}

/* One of --host's addresses? (IPv4: in the first word, the rest 0.) */
static __always_inline bool go_host_listed(__u16 family, const __u32 *a)
{
	struct pt_host_key k = { .family = family };

	if (family == AF_INET)
		__builtin_memcpy(k.addr, a, 4);
	else
		__builtin_memcpy(k.addr, a, 16);
	return bpf_map_lookup_elem(&filter_hosts, &k);
}

/*
 * --port and --host as sockops decides them for a connection (either
 * end), for a socket reached from a Conn rather than from its packets.
 */
static __always_inline bool go_sock_wanted(struct sock *sk)
{
	__u16 lp = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 rp = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u32 l[4] = {}, r[4] = {};

	if (filter_nports && !bpf_map_lookup_elem(&filter_ports, &lp) &&
	    !bpf_map_lookup_elem(&filter_ports, &rp))
		return false;
	if (!filter_nhosts)
		return true;
	if (fam == AF_INET) {
		l[0] = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		r[0] = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&l, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
		BPF_CORE_READ_INTO(&r, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
		if (!l[0] && !l[1] && l[2] == bpf_htonl(0xffff)) {
			/* an IPv6 socket carrying IPv4 shows IPv4 on the wire */
			fam = AF_INET;
			l[0] = l[3];
			r[0] = r[3];
			l[1] = l[2] = l[3] = r[1] = r[2] = r[3] = 0;
		}
	}
	return go_host_listed(fam, l) || go_host_listed(fam, r);
}

#define GO_NOT_TCP	(~0ull)

/*
 * The socket cookie of the TCP socket behind a *tls.Conn: 0 if it has no
 * cookie yet or cannot be read now; GO_NOT_TCP if the Conn is not over
 * one of this process's TCP sockets, or --port/--host leave it out. Each step is checked: the
 * conn interface must hold a *net.TCPConn (its itab's type is the one
 * the binary has for that, found relative to ip, the probed
 * instruction); the descriptor must be a socket of this process that
 * points back at its file, and TCP.
 */
static __always_inline __u64 go_conn_cookie(__u64 conn, __u64 offs, __u64 ip)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 iface[2], type, netfd, fd = 0;
	struct file **fds, *f = NULL;
	struct fdtable *fdt;
	struct socket *so;
	struct sock *sk;

	/* a read that fails (a page not in memory) proves nothing: 0 */
	if (!PT_GO_TYPE(offs) || PT_GO_OFF(offs, 0) < 8 ||
	    bpf_probe_read_user(iface, sizeof(iface),
				(void *)(conn + PT_GO_OFF(offs, 0) - 8)) ||
	    bpf_probe_read_user(&type, sizeof(type), (void *)(iface[0] + 8)))
		return 0;
	if (type != ip + PT_GO_TYPE(offs))
		return GO_NOT_TCP;
	if (bpf_probe_read_user(&netfd, sizeof(netfd),
				(void *)(iface[1] + PT_GO_OFF(offs, 1))) ||
	    bpf_probe_read_user(&fd, sizeof(fd),
				(void *)(netfd + PT_GO_OFF(offs, 2))))
		return 0;
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), fds + fd) || !f)
		return 0;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & 0170000) != 0140000)
		return GO_NOT_TCP;	/* not S_IFSOCK */
	so = BPF_CORE_READ(f, private_data);
	if (!so || BPF_CORE_READ(so, file) != f)
		return GO_NOT_TCP;
	sk = BPF_CORE_READ(so, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != 1 /* SOCK_STREAM */)
		return GO_NOT_TCP;
	/* left out: as a Conn over no socket of ours, never a kept one's */
	if ((filter_nports || filter_nhosts) && !go_sock_wanted(sk))
		return GO_NOT_TCP;
	return BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
}

/*
 * Join a *tls.Conn to its socket, at every call: the Go heap hands a
 * freed Conn's address to the next one, so what was known of an address
 * may be another connection's by now. A Conn over no TCP socket of ours
 * (a wrapper, a Unix socket) at an address a TCP one had starts a new
 * pseudo-connection. A socket has a cookie once podtap's socket programs
 * have seen it, which is before any plaintext of it can be read or
 * written. Global: verified once. 1 if joined.
 */
__noinline int pt_go_join(__u64 conn, __u32 tgid, __u64 offs, __u64 ip)
{
	struct pt_tls_key key = { .tgid = tgid, .ssl = conn };
	__u64 cookie = go_conn_cookie(conn, offs, ip);
	struct pt_tls_state *st, init = {};

	st = bpf_map_lookup_elem(&tls_conns, &key);
	if (cookie == GO_NOT_TCP) {
		if (!st) {
			init.conn_id = pseudo_id();
			init.not_tcp = 1;
			bpf_map_update_elem(&tls_conns, &key, &init, BPF_NOEXIST);
		} else if (!(st->conn_id & PT_PSEUDO_CONN)) {
			st->conn_id = pseudo_id();
			st->off[0] = st->off[1] = 0;
			st->not_tcp = 1;
		} else {
			st->not_tcp = 1;
		}
		return 0;
	}
	if (!cookie)
		return 0;
	/*
	 * A Conn over no TCP socket never comes to be over one: a TCP Conn
	 * at its address is a new one, whose stream starts here; the other's
	 * pseudo-connection is not joined to it.
	 */
	if (st && st->not_tcp) {
		st->conn_id = cookie;
		st->off[0] = st->off[1] = 0;
		st->not_tcp = 0;
		return 1;
	}
	tls_join(tgid, conn, cookie);
	return 1;
}

/*
 * A call that began before the hooks (a server blocked in Read on a
 * connection older than the recording) has no entry to say its Conn and
 * buffer. The ABI gives the caller's frame a spill slot for each
 * register argument, just above the return address, and (*Conn).Read and
 * Write spill theirs at entry: taken from there, if the Conn found leads
 * to a TCP socket of this process, and never to a pseudo-connection.
 */
static __always_inline bool go_spilled(struct pt_regs *ctx, __u32 kind,
				       struct pt_tls_call *c)
{
	__u64 a[3];

	if (!tls_on)
		return false;
	c->session = current_session();
	if (!c->session ||
	    bpf_probe_read_user(a, sizeof(a), (void *)(ctx->sp + 8)))
		return false;
	c->ssl = a[0];
	c->buf = a[1];
	c->lenp = a[2];
	c->kind = kind;
	return pt_go_join(c->ssl, bpf_get_current_pid_tgid() >> 32,
			  bpf_get_attach_cookie(ctx), ctx->ip);
}

static __always_inline int go_exit(struct pt_regs *ctx, __u32 kind)
{
	struct pt_go_key key = {};
	struct pt_tls_call *p, c = {};
	long n = ctx->ax;	/* n int; err is in BX, CX */

	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.g = ctx->r14;
	p = bpf_map_lookup_elem(&go_calls, &key);
	if (p && p->kind == kind) {
		c = *p;
		bpf_map_delete_elem(&go_calls, &key);
		if (n <= 0 || (__u64)n > c.lenp)
			return 0;
		/*
		 * The stack moved during the call (it grew, and was copied
		 * whole): a buffer on it moved as far as its top did.
		 */
		if (ctx->sp != c.sp && c.buf >= c.sp && c.buf < c.stack_hi)
			c.buf += ctx->sp - c.sp;
		pt_go_join(c.ssl, key.tgid, bpf_get_attach_cookie(ctx), ctx->ip);
	} else if (n <= 0 || !go_spilled(ctx, kind, &c) ||
		   (__u64)n > c.lenp) {
		return 0;
	}
	pt_emit_tls(c.ssl, c.buf, n, (__u64)key.tgid << 32 |
		    (kind == PT_TLS_READ ? PT_DIR_RX : PT_DIR_TX), c.session);
	return 0;
}

SEC("uprobe")
int podtap_go_w(struct pt_regs *ctx)
{
	return go_enter(ctx, PT_TLS_WRITE);
}

SEC("uprobe")
int podtap_go_w_ret(struct pt_regs *ctx)
{
	return go_exit(ctx, PT_TLS_WRITE);
}

SEC("uprobe")
int podtap_go_r(struct pt_regs *ctx)
{
	return go_enter(ctx, PT_TLS_READ);
}

SEC("uprobe")
int podtap_go_r_ret(struct pt_regs *ctx)
{
	return go_exit(ctx, PT_TLS_READ);
}
