/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * podtap record ABI: every struct shared by the BPF programs, the loader,
 * the capture file and the tools that read it. Fixed-width types, explicit
 * padding, 8-byte aligned sizes. A record in the ring buffer is written to
 * the capture file unchanged.
 */
#ifndef __PODTAP_H
#define __PODTAP_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define PT_COMM_LEN		16
/* Largest payload one DATA record carries; bigger segments are chunked. */
#define PT_CHUNK_MAX		32768
/* Chunks per skb: 16 x 32 KiB covers BIG TCP's 512 KiB super-packets. */
#define PT_MAX_CHUNKS		16
/* Deepest cgroup nesting searched for a targeted ancestor. */
#define PT_MAX_CGROUP_LEVEL	16
#define PT_MAX_TARGETS		4096

enum pt_rec_type {
	PT_REC_CONN_OPEN	= 1,	/* first sight of a targeted connection */
	PT_REC_DATA		= 2,	/* payload bytes of one direction */
	PT_REC_CONN_CLOSE	= 3,	/* connection closed, byte totals */
	PT_REC_LOSS		= 4,	/* a byte range that was not captured */
	PT_REC_ATTR		= 5,	/* better process attribution was learnt */
	PT_REC_TLS_DATA		= 6,	/* plaintext of a TLS library call */
	PT_REC_TLS_ASSOC	= 7,	/* plaintext of a pseudo-connection is
					 * this connection's */
	/* written by userspace only */
	PT_REC_TARGET		= 16,	/* a target added to the recording */
	PT_REC_STATS		= 17,	/* counter totals at the end */
	PT_REC_TLS_PROC		= 18,	/* a target process's TLS library */
};

enum pt_dir {
	PT_DIR_RX		= 0,	/* bytes the target received */
	PT_DIR_TX		= 1,	/* bytes the target sent */
};
/* LOSS dir PT_DIR_TLS + d: plaintext of direction d was lost */
#define PT_DIR_TLS		2

enum pt_role {
	PT_ROLE_UNKNOWN		= 0,
	PT_ROLE_CLIENT		= 1,	/* connected (active open) */
	PT_ROLE_SERVER		= 2,	/* accepted (passive open) */
};

/* pt_rec_hdr.flags */
#define PT_F_FIN		0x0001	/* DATA: the direction ended (FIN) here */
#define PT_F_PREEXISTING	0x0004	/* OPEN: connection older than capture */
#define PT_F_ROLE_GUESSED	0x0008	/* OPEN: role inferred from ports */
#define PT_F_V4MAPPED		0x0010	/* OPEN: IPv6 socket, IPv4 traffic */
#define PT_F_RST		0x0020	/* CLOSE: ended by a reset */
#define PT_F_TASK_ATTR		0x0080	/* OPEN/ATTR: pid seen in task context */
#define PT_F_UNASSOC		0x0200	/* TLS_DATA: socket not known yet:
					 * conn_id is a pseudo-connection */

/*
 * A pseudo-connection: plaintext whose socket is not known yet. Socket
 * cookies never have this bit; a TLS_ASSOC record later names the real
 * connection.
 */
#define PT_PSEUDO_CONN		(1ull << 63)

enum pt_proto_guess {
	PT_PROTO_UNKNOWN	= 0,
	PT_PROTO_HTTP1		= 1,
	PT_PROTO_HTTP2		= 2,
	PT_PROTO_TLS		= 3,
};

enum pt_loss_reason {
	PT_LOSS_RINGBUF_FULL	= 1,	/* bpf_ringbuf_reserve failed */
	PT_LOSS_TOO_BIG		= 2,	/* segment above PT_MAX_CHUNKS chunks */
	PT_LOSS_LOAD		= 3,	/* bpf_skb_load_bytes failed */
	PT_LOSS_MAX		= 4,
};

/* Per-CPU counters: one pt_counters per CPU in podtap_counters[0]. */
struct pt_counters {
	__u64 events;		/* records submitted */
	__u64 bytes;		/* payload bytes submitted */
	__u64 lost_events;	/* records that did not fit, any reason */
	__u64 lost_bytes[PT_LOSS_MAX];	/* payload bytes lost, by reason */
	__u64 conns;		/* connections opened (first sight) */
	__u64 closes;		/* connections closed */
	__u64 no_storage;	/* sk storage could not be allocated */
	__u64 loss_untracked;	/* loss not recorded per connection (map full) */
	__u64 filtered;		/* packets of untargeted sockets passed over */
	__u64 listener_segments; /* segments with payload that reached a
				  * listener (TCP Fast Open): not captured */
	__u64 unparsed;		/* segments of targets whose headers podtap
				 * does not follow (IPv6 extension headers) */
	__u64 out_of_window;	/* segments far outside the TCP window */
	__u64 tls_records;	/* TLS_DATA records submitted */
	__u64 tls_bytes;	/* plaintext bytes submitted */
	__u64 tls_unassoc;	/* TLS_DATA of a pseudo-connection */
	__u64 tls_lost;		/* plaintext bytes lost (any reason) */
};

struct pt_rec_hdr {
	__u16 type;		/* enum pt_rec_type */
	__u16 flags;		/* PT_F_* */
	__u32 size;		/* whole record, header included, 8-aligned */
	__u64 ts_ns;		/* CLOCK_MONOTONIC */
	__u64 conn_id;		/* socket cookie: unique per boot, never reused */
};

struct pt_tuple {
	__u8  laddr[16];	/* local address: IPv4 in the first 4 bytes */
	__u8  raddr[16];	/* remote address */
	__u16 lport;		/* host byte order */
	__u16 rport;		/* host byte order */
	__u16 family;		/* AF_INET or AF_INET6, as on the wire */
	__u16 pad;
};

struct pt_conn_open {
	struct pt_rec_hdr h;
	struct pt_tuple t;
	__u64 cgroup_id;	/* cgroup v2 id of the socket */
	__u32 pid;		/* thread id, 0 if not known */
	__u32 tgid;		/* process id, 0 if not known */
	__u32 session_id;	/* session of the target that matched */
	__u8  role;		/* enum pt_role */
	__u8  proto;		/* enum pt_proto_guess from the first bytes */
	__u16 pad;
	char  comm[PT_COMM_LEN];
};

struct pt_data {
	struct pt_rec_hdr h;
	__u64 offset;		/* byte offset within this direction's stream */
	__u32 len;		/* stream bytes this record covers */
	__u32 cap_len;		/* payload bytes that follow (<= len) */
	__u8  dir;		/* enum pt_dir */
	__u8  pad[3];
	__u32 session;		/* TLS_DATA of a pseudo-connection: the session
				 * of the caller's target (it has no OPEN to
				 * say so); else 0 */
	__u8  payload[];
};

struct pt_conn_close {
	struct pt_rec_hdr h;
	__u64 bytes[2];		/* stream bytes per direction, by PT_DIR_* */
};

struct pt_loss {
	struct pt_rec_hdr h;
	__u64 offset;		/* first byte not captured */
	__u64 len;		/* bytes in the range [offset, offset + len) */
	__u64 lost_bytes;	/* bytes really missing within it */
	__u8  dir;		/* enum pt_dir; + PT_DIR_TLS: of the plaintext */
	__u8  reason;		/* enum pt_loss_reason, the latest one */
	__u8  pad[6];
};

struct pt_attr {
	struct pt_rec_hdr h;
	__u32 pid;
	__u32 tgid;
	char  comm[PT_COMM_LEN];
};

/*
 * TLS_DATA is laid out as DATA: the plaintext stream of one direction of a
 * TLS connection, offsets counted in plaintext bytes from the first the
 * library handed over. TLS_ASSOC joins a pseudo-connection to its socket.
 */
struct pt_tls_assoc {
	struct pt_rec_hdr h;	/* conn_id: the connection (socket cookie) */
	__u64 pseudo_id;	/* the pseudo-connection its plaintext had */
	__u32 tgid;
	__u32 pad;
	__u64 ssl;		/* the library's connection object */
};

/*
 * conn_state (socket storage): what the programs know of a socket. Shared
 * because the loader seeds it for sockets older than the recording.
 */
struct pt_dir_state {
	__u32 base;		/* sequence number of stream offset 0 */
	__u8  based;		/* base is valid */
	__u8  fin;		/* FIN seen */
	__u16 pad;
	__u64 next;		/* highest stream offset seen + 1 */
};

struct pt_conn_state {
	__u64 gen;		/* targets_gen the session was resolved at */
	__u32 session;		/* 0: not a target */
	__u32 pidns;		/* owner's pid namespace inode */
	__u32 pid;
	__u32 tgid;
	char  comm[PT_COMM_LEN];
	__u8  role;		/* enum pt_role */
	__u8  opened;		/* OPEN record submitted */
	__u8  closed;		/* CLOSE record submitted */
	__u8  task_attr;	/* pid/comm known from the owning task */
	__u8  preexisting;	/* no sockops callback saw it established */
	__u8  loss_pending;	/* conn_losses may hold ranges of this socket */
	__u8  pidns_known;	/* pidns was read from the owning task */
	__u8  fstate;		/* --port/--host: 0 not decided, 1 kept, 2 not */
	/*
	 * A target cgroup the owner is in although the socket belongs to
	 * another cgroup (made before its process moved): set by the loader.
	 */
	__u64 owner_cg;
	struct pt_dir_state d[2];	/* by enum pt_dir */
	__u8  tls;		/* its first bytes were a TLS record */
	__u8  pad2[7];
};

/* --port and --host: which connections of the targets are captured. */
#define PT_MAX_FILTERS		64

struct pt_host_key {
	__u16 family;		/* AF_INET or AF_INET6, as on the wire */
	__u16 pad;
	__u8  addr[16];		/* IPv4 in the first 4 bytes, the rest 0 */
};

/* TLS library calls: one in flight per thread (tls_calls, by pid_tgid). */
enum pt_tls_kind {
	PT_TLS_READ		= 1,
	PT_TLS_WRITE		= 2,
	PT_TLS_HANDSHAKE	= 3,	/* only to learn the socket */
};

/* A session uprobe's attach cookie: the kind, and this for _ex arguments. */
#define PT_TLS_SESSION_EX	0x100

struct pt_tls_call {
	__u64 ssl;
	__u64 buf;		/* the caller's buffer */
	__u64 lenp;		/* _ex: where the length is returned; Go: the
				 * buffer's length; else 0 */
	__u32 kind;		/* enum pt_tls_kind */
	__u32 session;		/* of the target the caller is in */
	__u64 sp;		/* Go: the stack pointer at entry, */
	__u64 stack_hi;		/* and the top of the goroutine's stack */
};

/*
 * Go crypto/tls calls in flight (go_calls), by process and goroutine (the
 * g pointer): a goroutine moves between threads inside a call.
 */
struct pt_go_key {
	__u32 tgid;
	__u32 pad;
	__u64 g;
};

/*
 * What a Go uprobe's attach cookie tells the programs: where the socket's
 * descriptor is, from the *tls.Conn (offsets of the Go version the binary
 * was built with). Bits 0-7: the data word of tls.Conn's conn interface
 * (its itab is the word before); 8-15: the *netFD in net.TCPConn; 16-23:
 * poll.FD.Sysfd in netFD; 24-63, signed: where the type descriptor of
 * *net.TCPConn is, relative to the probed instruction, or 0 if the binary
 * has none. Only a Conn whose interface holds a *net.TCPConn (its itab's
 * type, at 8) is followed to its socket: any other type's fields are not
 * those.
 */
#define PT_GO_OFF(cookie, n)	(((cookie) >> ((n) * 8)) & 0xff)
#define PT_GO_TYPE(cookie)	((__s64)(cookie) >> 24)

/* tls_conns: per (process, SSL* or *tls.Conn), its connection and offsets. */
struct pt_tls_key {
	__u32 tgid;
	__u32 pad;
	__u64 ssl;
};

struct pt_tls_state {
	__u64 conn_id;		/* socket cookie, or a PT_PSEUDO_CONN id */
	__u64 off[2];		/* next plaintext offset, by enum pt_dir */
	__u32 not_tcp;		/* Go: the Conn was over no TCP socket of ours */
	__u32 pad;
};

/* conn_losses map: per connection and direction, what did not fit. */
struct pt_loss_key {
	__u64 conn_id;
	__u32 dir;
	__u32 pad;
};

struct pt_loss_val {
	__u64 start;		/* lowest lost offset */
	__u64 end;		/* highest lost offset + 1 */
	__u64 bytes;		/* lost bytes */
	__u32 reason;		/* latest enum pt_loss_reason */
	__u32 pad;
};

/* userspace-only records */
enum pt_target_kind {
	PT_TARGET_CGROUP	= 1,
	PT_TARGET_PIDNS		= 2,
};

struct pt_target_rec {
	struct pt_rec_hdr h;	/* conn_id is 0 */
	__u64 id;		/* cgroup id or pid namespace inode */
	__u32 session_id;
	__u16 kind;		/* enum pt_target_kind */
	__u16 pad;
	char  name[256];	/* cgroup path or "pidns of PID" */
};

struct pt_stats_rec {
	struct pt_rec_hdr h;	/* conn_id is 0 */
	struct pt_counters c;	/* summed over CPUs */
};

enum pt_tls_lib {
	PT_TLS_LIB_SHARED	= 1,	/* a libssl the process maps */
	PT_TLS_LIB_STATIC	= 2,	/* OpenSSL linked into its executable */
	PT_TLS_LIB_GO		= 3,	/* Go's crypto/tls in its executable */
};

enum pt_tls_hook {
	PT_TLS_HOOKED		= 1,	/* plaintext, on the socket's connection */
	PT_TLS_HOOKED_PSEUDO	= 2,	/* plaintext, on pseudo-connections
					 * only (no socket to follow) */
	PT_TLS_NOT_HOOKED	= 3,	/* ciphertext only: why says why */
};

/* Once per target process and TLS library, when first seen. */
/*
 * The process's calls are hooked from this record's time on, not before:
 * its library was hooked, or (--tls-probes process) the process itself,
 * when the scan found it. Without it, the library may have been hooked
 * earlier, for another process, and covered this one from its start.
 */
#define PT_TLS_PROC_HOOKED_NOW	1

struct pt_tls_proc_rec {
	struct pt_rec_hdr h;	/* conn_id is 0 */
	__u64 target_id;	/* the target it was found in */
	__u32 session_id;
	__u32 tgid;		/* as the host sees it */
	__u16 lib;		/* enum pt_tls_lib */
	__u16 hook;		/* enum pt_tls_hook */
	__u32 flags;		/* PT_TLS_PROC_* */
	char  comm[16];
	char  version[40];	/* "OpenSSL 3.0.15 3 Sep 2024", "go1.19.8" */
	char  path[256];	/* as the process maps it */
	char  why[152];		/* PT_TLS_NOT_HOOKED: the reason */
};

/*
 * What this header promises, checked where it is compiled (the BPF objects
 * and userspace alike): records are 8-byte multiples that userspace reads
 * in place, and pt_counters is read as an array of __u64 (summed per CPU,
 * listed by offset).
 */
#define PT_ABI_SIZE(type, size)						\
	_Static_assert(sizeof(type) == (size), #type " changed size")
#define PT_ABI_ALIGNED(type)						\
	_Static_assert(sizeof(type) % 8 == 0, #type " not 8-byte aligned")

PT_ABI_SIZE(struct pt_rec_hdr, 24);
PT_ABI_SIZE(struct pt_tuple, 40);
PT_ABI_SIZE(struct pt_conn_open, 104);
PT_ABI_SIZE(struct pt_data, 48);
PT_ABI_SIZE(struct pt_conn_close, 40);
PT_ABI_SIZE(struct pt_loss, 56);
PT_ABI_SIZE(struct pt_attr, 48);
PT_ABI_SIZE(struct pt_target_rec, 296);
PT_ABI_SIZE(struct pt_tls_proc_rec, 512);
PT_ABI_SIZE(struct pt_counters, (15 + PT_LOSS_MAX) * 8);
PT_ABI_SIZE(struct pt_tls_assoc, 48);
PT_ABI_SIZE(struct pt_tls_call, 48);
PT_ABI_SIZE(struct pt_tls_key, 16);
PT_ABI_SIZE(struct pt_go_key, 16);
PT_ABI_SIZE(struct pt_tls_state, 32);
PT_ABI_SIZE(struct pt_conn_state, 96);
PT_ABI_SIZE(struct pt_host_key, 20);
PT_ABI_SIZE(struct pt_loss_key, 16);
PT_ABI_SIZE(struct pt_loss_val, 32);
PT_ABI_ALIGNED(struct pt_stats_rec);
_Static_assert(sizeof(struct pt_counters) % sizeof(__u64) == 0,
	       "pt_counters is read as an array of __u64");
_Static_assert(__builtin_offsetof(struct pt_data, payload) == sizeof(struct pt_data),
	       "DATA payload follows the fixed part");
_Static_assert(PT_CHUNK_MAX % 8 == 0 && PT_CHUNK_MAX < (1 << 24),
	       "DATA length must fit the 24 bits pt_emit_data packs it in");

#endif /* __PODTAP_H */
