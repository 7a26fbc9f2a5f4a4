// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* podtap read: what a capture file holds, per connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "capfile/capfile.h"
#include "cmd/cmds.h"
#include "base/common.h"
#include "stream/conns.h"
#include "export/export.h"
#include "base/jsonw.h"
#include "capture/tgnames.h"

static const char *proto_name(uint8_t p)
{
	static const char *const n[] = { "unknown", "http1", "http2", "tls" };

	return p < ARRAY_SIZE(n) ? n[p] : "unknown";
}

/* What starts each line of payload: it can never look like podtap's own. */
#define PAYLOAD_INDENT	"      | "

/*
 * Printable text as is, the rest as \xNN, a backslash as \\; with
 * indent, every line of it starts with indent (and a newline is put
 * before what follows it).
 */
static void put_text_ind(FILE *f, const uint8_t *p, uint64_t n,
			 const char *indent)
{
	uint64_t i;

	if (indent && n)
		fputs(indent, f);
	for (i = 0; i < n; i++) {
		if (p[i] == '\n') {
			fputc('\n', f);
			if (indent && i + 1 < n)
				fputs(indent, f);
		} else if (p[i] == '\\')
			fputs("\\\\", f);
		else if (p[i] == '\t' || (p[i] >= 0x20 && p[i] < 0x7f))
			fputc(p[i], f);
		else if (p[i] == '\r')
			fputs("\\r", f);
		else
			fprintf(f, "\\x%02x", p[i]);
	}
	if (indent && n && p[n - 1] != '\n')
		fputc('\n', f);
}

static void put_text(FILE *f, const uint8_t *p, uint64_t n)
{
	put_text_ind(f, p, n, NULL);
}

static void put_str(FILE *f, const char *s)
{
	put_text(f, (const uint8_t *)s, strlen(s));
}

/*
 * A direction's bytes as text, gaps as a marked line: a piece of them,
 * *mid saying whether the text stopped inside a line (the next piece goes
 * on there; the last ends it).
 */
static void dump_piece_text(FILE *f, bool *mid, const struct pt_assembled *a)
{
	size_t g = 0;
	uint64_t i = 0, k, end;
	const uint8_t *p;

	while (i < a->len) {
		if (g < a->ngaps && a->gaps[g].start == i) {
			if (*mid)
				fputc('\n', f);
			*mid = false;
			fprintf(f, "[... %llu bytes not captured (%s) ...]\n",
				(unsigned long long)(a->gaps[g].end - i),
				pt_loss_reason_name(a->gaps[g].reason));
			i = a->gaps[g].end;
			g++;
			continue;
		}
		end = g < a->ngaps ? a->gaps[g].start : a->len;
		/* a line at a time: the indent before its first byte */
		for (p = a->buf; i < end; i = k) {
			const uint8_t *nl = memchr(p + i, '\n', end - i);

			k = nl ? (uint64_t)(nl - p) + 1 : end;
			if (!*mid)
				fputs(PAYLOAD_INDENT, f);
			put_text(f, p + i, k - i);
			*mid = p[k - 1] != '\n';
		}
	}
}

/* A whole stream. */
static void dump_text(FILE *f, const struct pt_assembled *a)
{
	bool mid = false;

	dump_piece_text(f, &mid, a);
	if (mid)
		fputc('\n', f);
}

static void fmt_size(char *buf, size_t n, uint64_t v)
{
	if (v < 10000)
		snprintf(buf, n, "%llu B", (unsigned long long)v);
	else if (v < 10000 * 1024)
		snprintf(buf, n, "%.1f KiB", v / 1024.0);
	else
		snprintf(buf, n, "%.1f MiB", v / 1048576.0);
}

static void print_msg_full(FILE *f, const struct pt_http_msg *m)
{
	struct pt_body b;
	size_t i;

	if (m->request) {
		fputs("    > ", f);
		put_str(f, m->method);
		fputc(' ', f);
		put_str(f, m->target);
		fprintf(f, " HTTP/%u.%u\n", m->major, m->minor);
	} else {
		fprintf(f, "    < HTTP/%u.%u %d ", m->major, m->minor,
			m->status);
		put_str(f, m->reason);
		fputc('\n', f);
	}
	for (i = 0; i < m->nfields; i++) {
		fprintf(f, "    %c %s: ", m->request ? '>' : '<',
			m->fields[i].name);
		put_text(f, (const uint8_t *)m->fields[i].value,
			 strlen(m->fields[i].value));
		fputc('\n', f);
	}
	pt_body_get(m, &b);
	if (b.decoded)
		fprintf(f, "    [body: %zu bytes, %zu after %s decoding]\n",
			m->body_len, b.n, pt_http_field(m, "Content-Encoding"));
	else if (b.err[0])
		fprintf(f, "    [body: %s]\n", b.err);
	put_text_ind(f, b.p, b.n, PAYLOAD_INDENT);
	for (i = 0; i < m->ntrailers; i++) {
		fprintf(f, "    %c (trailer) %s: ", m->request ? '>' : '<',
			m->trailers[i].name);
		put_str(f, m->trailers[i].value);
		fputc('\n', f);
	}
	pt_body_free(&b);
}

static void print_exchange(FILE *f, const struct pt_xconn *xc,
			   const struct pt_exchange *x, size_t k, bool full)
{
	char q[32], r[32];
	size_t i;

	fprintf(f, "  #%-3zu ", k + 1);
	if (x->kind == PT_X_HTTP) {
		fmt_size(q, sizeof(q), x->req.body_len);
		fmt_size(r, sizeof(r), x->resp.body_len);
		if (x->has_req) {
			char *url = pt_x_url(xc, x);

			put_text(f, (const uint8_t *)x->req.method,
				 strlen(x->req.method));
			fputc(' ', f);
			put_text(f, (const uint8_t *)url,
				 strlen(url) > 300 ? 300 : strlen(url));
			free(url);
		} else
			fputs("(no request)", f);
		for (i = 0; i < x->ninterim; i++)
			fprintf(f, " -> %d", x->interim[i]);
		if (x->has_resp) {
			fprintf(f, " -> %d ", x->resp.status);
			put_str(f, x->resp.reason);
		} else {
			fputs(" -> (no response)", f);
		}
		if (x->has_req && x->has_resp)
			fprintf(f, "  %.3f ms", pt_x_latency_ns(x) / 1e6);
		fprintf(f, "  req body %s  resp body %s", q, r);
	} else {
		uint64_t n[2] = {};

		for (i = 0; i < x->nturns; i++)
			n[pt_x_from_client(xc, x->turns[i].dir)] +=
				x->turns[i].end - x->turns[i].off;
		fmt_size(q, sizeof(q), n[1]);
		fmt_size(r, sizeof(r), n[0]);
		fprintf(f, "%s: client %s, server %s in %zu turn%s",
			xc->proto == PT_XP_TLS ? "TLS ciphertext (not decrypted)" :
			xc->proto == PT_XP_HTTP2 ? "HTTP/2 (not parsed), raw" :
			"raw, protocol unknown", q, r, x->nturns,
			x->nturns == 1 ? "" : "s");
	}
	if (x->incomplete)
		fprintf(f, "  [incomplete: %s]", x->note);
	if (x->ambiguous)
		fprintf(f, "  [ambiguous: %s]", x->ambiguous);
	fputc('\n', f);
	if (!full)
		return;
	if (x->kind == PT_X_HTTP) {
		if (x->has_req)
			print_msg_full(f, &x->req);
		if (x->has_resp)
			print_msg_full(f, &x->resp);
		return;
	}
	for (i = 0; i < x->nturns; i++) {
		fprintf(f, "    %c %llu bytes\n",
			pt_x_from_client(xc, x->turns[i].dir) ? '>' : '<',
			(unsigned long long)(x->turns[i].end - x->turns[i].off));
		put_text_ind(f, pt_span_bytes(xc, &x->turns[i]),
			     x->turns[i].end - x->turns[i].off, PAYLOAD_INDENT);
	}
}

/* The gaps of a connection's two directions, as a whole read or a stream
 * tells them. */
struct gaps {
	const struct pt_range *v[2];
	size_t n[2];
};

static void gaps_of(const struct pt_xconn *xc, struct gaps *g)
{
	int d;

	for (d = 0; d < 2; d++) {
		g->v[d] = xc->streamed ? xc->sgaps[d] : xc->a[d].gaps;
		g->n[d] = xc->streamed ? xc->nsgaps[d] : xc->a[d].ngaps;
	}
}

/* A connection's line, and why parsing stopped; c holds what the records
 * say of it (the first pass's, when streamed). */
static void conn_head_text(FILE *f, const struct pt_xconn *xc,
			   const struct pt_conn *c, const struct gaps *g)
{
	const struct pt_conn_open *o = &c->open;
	char l[64], r[64], comm[sizeof(o->comm)], miss[48] = "0";
	uint64_t missing = 0;
	size_t k, ngaps = 0;
	int d;

	/* a process names itself: nothing but printable ASCII to a tty */
	for (k = 0; k + 1 < sizeof(comm) && o->comm[k]; k++)
		comm[k] = o->comm[k] >= 0x20 && o->comm[k] < 0x7f ?
			  o->comm[k] : '?';
	comm[k] = 0;
	pt_fmt_ep(l, sizeof(l), &o->t, true);
	pt_fmt_ep(r, sizeof(r), &o->t, false);
	for (d = 0; xc->assembled && d < 2; d++)
		for (k = 0; k < g->n[d]; k++) {
			missing += g->v[d][k].end - g->v[d][k].start;
			ngaps++;
		}
	if (ngaps)
		snprintf(miss, sizeof(miss), "%llu (%zu gap%s)",
			 (unsigned long long)missing, ngaps,
			 ngaps == 1 ? "" : "s");
	fprintf(f, "%-10llu %-7s %-22s %-22s %7u %-15s %-6s %10llu %10llu %-14s %s%s\n",
		(unsigned long long)c->id,
		c->has_open ? pt_role_name(o->role) : "?", l, r, o->tgid,
		comm[0] ? comm : "-", !xc->assembled ? proto_name(o->proto) :
		xc->tls ? (xc->proto == PT_XP_HTTP1 ? "tls:http1" : "tls:other") :
		pt_xproto_name(xc->proto),
		(unsigned long long)pt_stream_end(c, PT_DIR_TX),
		(unsigned long long)pt_stream_end(c, PT_DIR_RX), miss,
		c->has_close ? (c->close_flags & PT_F_RST ? "reset" : "closed")
			     : "open",
		o->h.flags & PT_F_PREEXISTING ? " preexisting" : "");
	if (xc->error[0])
		fprintf(f, "  ! %s%s\n", xc->error, xc->assembled ?
			"; the rest is shown as raw turns" : "");
}

static void print_conn_text(FILE *f, const struct pt_xconn *xc, bool dump,
			    bool full)
{
	const struct pt_conn *c = xc->conn;
	const struct pt_assembled *a = xc->a;
	struct gaps g;
	size_t k;
	int d;

	gaps_of(xc, &g);
	conn_head_text(f, xc, c, &g);
	for (k = 0; k < xc->nx; k++)
		print_exchange(f, xc, &xc->x[k], k, full);
	for (d = 0; dump && xc->assembled && d < 2; d++) {
		/* the side that spoke first first: a server's request is rx */
		int dir = d == 0 ? xc->req_dir : !xc->req_dir;

		fprintf(f, "--- %llu %s %llu bytes ---\n",
			(unsigned long long)c->id, dir == PT_DIR_TX ? "tx" : "rx",
			(unsigned long long)a[dir].len);
		dump_text(f, &a[dir]);
		fputs("\n", f);
	}
}

/* A connection's JSON object up to its exchanges' array, opened. */
static void conn_head_json(FILE *f, const struct pt_capture *cap,
			   const struct pt_xconn *xc, const struct pt_conn *c,
			   const struct gaps *g)
{
	const struct pt_conn_open *o = &c->open;
	static const char *const dn[2] = { "rx", "tx" };
	const struct pt_tls_proc_rec *tp;
	char l[64], r[64];
	size_t i;
	int d;

	pt_fmt_ep(l, sizeof(l), &o->t, true);
	pt_fmt_ep(r, sizeof(r), &o->t, false);
	fprintf(f, "{\"conn_id\":%llu,\"role\":\"%s\",\"role_guessed\":%s,\"local\":\"%s\",\"remote\":\"%s\",\"pid\":%u,\"tid\":%u,\"comm\":",
		(unsigned long long)c->id, pt_role_name(o->role),
		o->h.flags & PT_F_ROLE_GUESSED ? "true" : "false", l, r,
		o->tgid, o->pid);
	pt_json_str(f, o->comm);
	fprintf(f, ",\"cgroup_id\":%llu,\"session\":%u,\"proto\":\"%s\",\"tls_plaintext\":%s,\"tls_socket_known\":%s,\"preexisting\":%s,\"v4mapped\":%s,\"state\":\"%s\",\"start_ns\":%llu,\"end_ns\":%llu",
		(unsigned long long)o->cgroup_id, o->session_id,
		xc->assembled ? pt_xproto_name(xc->proto) : proto_name(o->proto),
		c->has_tls ? "true" : "false", pt_conn_pseudo(c) ? "false" : "true",
		o->h.flags & PT_F_PREEXISTING ? "true" : "false",
		o->h.flags & PT_F_V4MAPPED ? "true" : "false",
		!c->has_close ? "open" :
		c->close_flags & PT_F_RST ? "reset" : "closed",
		(unsigned long long)c->first_ts,
		(unsigned long long)c->last_ts);
	fputs(",\"bytes\":{", f);
	for (d = 0; d < 2; d++)
		fprintf(f, "%s\"%s\":%llu", d ? "," : "", dn[d],
			(unsigned long long)pt_stream_end(c, d));
	fputs("},\"gaps\":{", f);
	for (d = 0; d < 2; d++) {
		fprintf(f, "%s\"%s\":[", d ? "," : "", dn[d]);
		for (i = 0; xc->assembled && i < g->n[d]; i++)
			fprintf(f, "%s{\"start\":%llu,\"end\":%llu,\"reason\":\"%s\"}",
				i ? "," : "",
				(unsigned long long)g->v[d][i].start,
				(unsigned long long)g->v[d][i].end,
				pt_loss_reason_name(g->v[d][i].reason));
		fputc(']', f);
	}
	fputc('}', f);
	if (xc->error[0]) {
		fputs(",\"error\":", f);
		pt_json_str(f, xc->error);
	}
	/* as of its last record: a process that ran exec says anew */
	tp = pt_conns_tls_proc(&cap->conns, o->tgid, c->last_ts);
	if (tp && o->tgid) {
		fputs(",\"tls_library\":", f);
		pt_tls_proc_json(f, tp);
	}
	fputs(",\"exchanges\":[", f);
}

static void print_conn_json(FILE *f, const struct pt_capture *cap,
			    const struct pt_xconn *xc, bool dump)
{
	static const char *const dn[2] = { "rx", "tx" };
	struct gaps g;
	size_t i;
	int d;

	gaps_of(xc, &g);
	conn_head_json(f, cap, xc, xc->conn, &g);
	for (i = 0; i < xc->nx; i++) {
		if (i)
			fputc(',', f);
		pt_x_json(f, cap, xc, &xc->x[i], false);
	}
	fputc(']', f);
	if (dump && xc->assembled) {
		fputs(",\"payload\":{", f);
		for (d = 0; d < 2; d++) {
			fprintf(f, "%s\"%s\":", d ? "," : "", dn[d]);
			pt_json_base64(f, xc->a[d].buf, xc->a[d].len);
		}
		fputc('}', f);
	}
	fputs("}\n", f);
}

static void print_stats(const struct pt_counters *c)
{
	const struct {
		const char *what;
		uint64_t n;
	} odd[] = {
		{ "segments with payload reached a listener (TCP Fast Open)",
		  c->listener_segments },
		{ "segments with headers not followed", c->unparsed },
		{ "segments far outside the window", c->out_of_window },
		{ "sockets without storage", c->no_storage },
		{ "losses not tracked per connection", c->loss_untracked },
	};
	size_t i;

	printf("# kernel: %llu events, %llu bytes, %llu events lost, %llu packets of other sockets passed over\n",
	       (unsigned long long)c->events, (unsigned long long)c->bytes,
	       (unsigned long long)c->lost_events,
	       (unsigned long long)c->filtered);
	for (i = 0; i < ARRAY_SIZE(odd); i++)
		if (odd[i].n)
			printf("# kernel: %llu %s\n", (unsigned long long)odd[i].n,
			       odd[i].what);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: podtap read [OPTIONS] FILE...\n"
"\n"
"Show the connections in a capture file written by `podtap record`: id,\n"
"role, local and remote address, process, protocol guess, bytes each way,\n"
"gaps (bytes not captured) and state; under each, its exchanges: HTTP/1.x\n"
"requests with their responses (method, target, status, latency, body\n"
"sizes), other protocols as raw turns of each side. A file still being\n"
"written, or left by a recorder that crashed, reads up to its last\n"
"complete block. Several files are read as one capture, in the order given:\n"
"the segments `podtap agent` wrote for one session on one node. The\n"
"header names the targets and, for each target process with a TLS\n"
"library, the library (path, version) and whether its calls were hooked,\n"
"or why not (in JSON, as tls_library of that process's connections).\n"
"\n"
"Files are read twice: once for what the records say (the header, every\n"
"connection in order), once for the exchanges, cut as they settle, so\n"
"memory holds what is in flight, not the capture (docs/exports.md); the\n"
"text of connections that wait for an older one to end waits in a file\n"
"in $TMPDIR (default /tmp), deleted as it goes: up to the output's size\n"
"when one connection lasts the whole capture, so point TMPDIR at a disk,\n"
"not a tmpfs, for large ones. With --dump, a third pass hands on each\n"
"direction's bytes as they come, their text waiting the same way. A\n"
"file that changes between passes is an error. Standard input (FILE -)\n"
"is first copied to a file in $TMPDIR, deleted at once, and read from\n"
"there: nothing is printed before it ends.\n"
"\n"
"Options:\n"
"  -x, --full       also print each exchange whole: headers and bodies\n"
"                   (Content-Encoding gzip/deflate decoded)\n"
"  -d, --dump       also print each direction's bytes (text; \\xNN escapes)\n"
"  -j, --json       one JSON object per connection, with its exchanges\n"
"                   (each direction's bytes in base64 with --dump)\n"
"  -C, --conn ID    only the connection with this id (as listed; repeatable)\n"
"      --max-stream SIZE  assemble each direction in memory up to SIZE\n"
"                   (default and most: 16Gi); a longer one is said, not shown\n"
"                   (streamed: a connection holding more than SIZE at once)\n"
"      --max-held SIZE    streamed: hold at most about SIZE in memory\n"
"                   (default 1Gi) besides the last second of records,\n"
"                   which is always held; past it the open exchange\n"
"                   holding the rest up is cut short, marked incomplete\n"
"      --log-format FMT   text (default) or json, for podtap's own lines\n"
"  FILE - is standard input.\n"
"  -h, --help       this text\n");
}

static bool wanted(const unsigned long long *v, size_t n, uint64_t id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] == id)
			return true;
	return false;
}

/*
 * Read as a stream: a first pass takes what the records say without the
 * bytes (the header, every connection in order), the second cuts the
 * exchanges as they settle, and with --dump a third hands on each
 * direction's bytes as they come. A connection's text waits, with those
 * after it, until the connections before it are done: in a spool file,
 * since a connection as old as the capture holds up all the others' text.
 */
struct rpart {
	FILE *f;		/* its latest text, in memory */
	char *buf;
	size_t len;
	struct pt_range *ext;	/* what it has in the spool, in order */
	size_t next, cap;
};

/* A slot's parts: its exchanges, then each direction's bytes (--dump). */
enum { PART_X, PART_DUMP, NPARTS = PART_DUMP + 2 };

struct rslot {
	struct rpart part[NPARTS];	/* PART_DUMP + enum pt_dir */
	size_t nx;
	char *head;		/* done: its connection's line(s) */
	size_t headlen;
	bool done;		/* its exchanges are all there */
	bool dumped;		/* and its bytes, or no --dump */
	bool dump_out;		/* its bytes are left out (--max-stream) */
	int req_dir;
	uint64_t dlen[2];	/* bytes of each direction */
	bool mid[2];		/* text: the dump is inside a line */
	uint8_t carry[2][3];	/* JSON: bytes short of a base64 group */
	uint8_t ncarry[2];
};

/*
 * What waits is spooled to an unlinked file in $TMPDIR, in pieces of
 * about SPOOL_PIECE, so memory holds a piece per open connection and a
 * line per finished one; the space of what has been printed is given
 * back (a hole punched). Where no such file can be made or written, what
 * waits stays in memory from then on (said once).
 */
#define SPOOL_PIECE	(16 << 10)

struct rstream {
	const struct pt_capture *meta;
	struct rslot *slot;	/* by meta->conns.v */
	size_t next;		/* the first not printed yet */
	bool json, full, dump;
	int spool;		/* -1 until made */
	const char *spool_dir;
	bool spool_full;	/* nothing more goes in */
	uint64_t spool_end;
	bool failed;		/* said in a line */
};

/* The first pass keeps no bytes. */
static void meta_pre(void *ctx, const struct pt_rec_hdr *h)
{
}

static int meta_post(void *ctx, const struct pt_rec_hdr *h)
{
	struct pt_conn *c;

	if ((h->type == PT_REC_DATA || h->type == PT_REC_TLS_DATA) &&
	    (c = pt_conns_of(ctx, h->conn_id)))
		pt_conn_drop_chunks(c);
	return 0;
}

static bool meta_failed(void *ctx)
{
	return false;
}

/* What the first pass says of c; its slot is m->owner. */
static struct pt_conn *meta_of(struct rstream *rs, const struct pt_conn *c)
{
	return pt_conns_find((struct pt_conns *)&rs->meta->conns, c->id);
}

static const char *tmp_dir(void)
{
	const char *dir = getenv("TMPDIR");

	return dir && *dir ? dir : "/tmp";
}

/* An unlinked file in $TMPDIR, or -1 with errno set. */
static int tmp_file(const char *name)
{
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s.XXXXXX", tmp_dir(), name) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static void spool_give_up(struct rstream *rs, const char *what, int err)
{
	pt_info("cannot %s a file in %s (%s): text waiting for older connections is held in memory instead (set TMPDIR)",
		what, rs->spool_dir, strerror(err));
	/* what is in it already is read back from it */
	rs->spool_full = true;
}

static void spool_open(struct rstream *rs)
{
	rs->spool_dir = tmp_dir();
	rs->spool = tmp_file("podtap-read");
	if (rs->spool < 0)
		spool_give_up(rs, "make", errno);
}

/* The part's text in memory appended to the spool, or kept. */
static void spill(struct rstream *rs, struct rpart *pt)
{
	size_t done = 0;
	ssize_t n;

	if (rs->spool_full || !pt->len)
		return;
	if (rs->spool < 0)
		spool_open(rs);
	if (rs->spool_full)
		return;
	if (pt->f && fflush(pt->f))
		pt_oom();
	while (done < pt->len) {
		n = pwrite(rs->spool, pt->buf + done, pt->len - done,
			   rs->spool_end + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			spool_give_up(rs, "write to", n < 0 ? errno : EIO);
			return;
		}
		done += n;
	}
	if (pt->next == pt->cap) {
		pt->cap = pt->cap ? 2 * pt->cap : 4;
		pt->ext = pt_xrealloc(pt->ext, pt->cap, sizeof(*pt->ext));
	}
	pt->ext[pt->next++] = (struct pt_range){ .start = rs->spool_end,
						 .end = rs->spool_end + done };
	rs->spool_end += done;
	if (pt->f)
		fclose(pt->f);
	pt->f = NULL;
	free(pt->buf);
	pt->buf = NULL;
	pt->len = 0;
}

static void spill_slot(struct rstream *rs, struct rslot *sl)
{
	int k;

	for (k = 0; k < NPARTS; k++)
		spill(rs, &sl->part[k]);
}

/* A part to stdout: its spooled pieces (their space given back), then
 * what is in memory. */
static int part_out(struct rstream *rs, struct rpart *pt)
{
	char buf[64 << 10];
	size_t i;

	for (i = 0; i < pt->next; i++) {
		uint64_t off = pt->ext[i].start, end = pt->ext[i].end;

		while (off < end) {
			size_t want = end - off < sizeof(buf) ? end - off : sizeof(buf);
			ssize_t n = pread(rs->spool, buf, want, off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				pt_err("reading back what waited in %s: %s",
				       rs->spool_dir,
				       n < 0 ? strerror(errno) : "it is shorter");
				rs->failed = true;
				return -1;
			}
			fwrite(buf, 1, n, stdout);
			off += n;
		}
		fallocate(rs->spool, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  pt->ext[i].start, end - pt->ext[i].start);
	}
	if (pt->f && fflush(pt->f))
		pt_oom();
	fwrite(pt->buf, 1, pt->len, stdout);
	return 0;
}

/* The part's text in memory, to append to. */
static FILE *part_file(struct rpart *pt)
{
	if (!pt->f && !(pt->f = open_memstream(&pt->buf, &pt->len)))
		pt_oom();
	return pt->f;
}

static void slot_free(struct rslot *sl)
{
	int k;

	for (k = 0; k < NPARTS; k++) {
		if (sl->part[k].f)
			fclose(sl->part[k].f);
		free(sl->part[k].buf);
		free(sl->part[k].ext);
	}
	free(sl->head);
	memset(sl, 0, sizeof(*sl));
}

static int rs_x(void *ctx, const struct pt_capture *cap,
		const struct pt_xconn *xc, struct pt_exchange *x)
{
	struct rstream *rs = ctx;
	struct pt_conn *m = meta_of(rs, xc->conn);
	struct rslot *sl = m ? m->owner : NULL;
	struct rpart *pt;
	FILE *f;

	if (rs->failed)
		return -1;
	if (!sl || sl->done)
		return 0;
	pt = &sl->part[PART_X];
	f = part_file(pt);
	if (rs->json) {
		if (sl->nx)
			fputc(',', f);
		pt_x_json(f, cap, xc, x, false);
	} else {
		print_exchange(f, xc, x, sl->nx, rs->full);
	}
	sl->nx++;
	if (fflush(f))
		pt_oom();
	if (pt->len >= SPOOL_PIECE)
		spill(rs, pt);
	return 0;
}

/* A slot's bytes after its exchanges, as print_conn_text and
 * print_conn_json give them. */
static int dump_out(struct rstream *rs, struct rslot *sl, uint64_t id)
{
	static const char *const dn[2] = { "rx", "tx" };
	int d, dir;

	if (rs->json) {
		fputs("],\"payload\":{", stdout);
		for (d = 0; d < 2; d++) {
			printf("%s\"%s\":\"", d ? "," : "", dn[d]);
			if (part_out(rs, &sl->part[PART_DUMP + d]))
				return -1;
			fputc('"', stdout);
		}
		fputs("}}\n", stdout);
		return 0;
	}
	for (d = 0; d < 2; d++) {
		dir = d == 0 ? sl->req_dir : !sl->req_dir;
		printf("--- %llu %s %llu bytes ---\n", (unsigned long long)id,
		       dir == PT_DIR_TX ? "tx" : "rx",
		       (unsigned long long)sl->dlen[dir]);
		if (part_out(rs, &sl->part[PART_DUMP + dir]))
			return -1;
		fputs("\n", stdout);
	}
	return 0;
}

/* The finished slots at the front, printed in order. */
static void rs_flush(struct rstream *rs, bool all)
{
	size_t n = rs->meta->conns.n;

	while (!rs->failed && rs->next < n &&
	       (all || (rs->slot[rs->next].done &&
			rs->slot[rs->next].dumped))) {
		size_t i = rs->next++;
		struct rslot *sl = &rs->slot[i];

		if (sl->done && sl->head) {
			fwrite(sl->head, 1, sl->headlen, stdout);
			if (part_out(rs, &sl->part[PART_X]))
				return;
			if (rs->dump && !sl->dump_out) {
				if (dump_out(rs, sl, rs->meta->conns.v[i]->id))
					return;
			} else if (rs->json) {
				fputs("]}\n", stdout);
			}
		}
		slot_free(sl);
	}
}

static void rs_conn(void *ctx, const struct pt_capture *cap,
		    const struct pt_xconn *xc)
{
	struct rstream *rs = ctx;
	struct pt_conn *m = meta_of(rs, xc->conn);
	struct rslot *sl = m ? m->owner : NULL;
	struct gaps g;
	FILE *f;

	if (rs->failed || !sl || sl->done)
		return;
	if (!(f = open_memstream(&sl->head, &sl->headlen)))
		pt_oom();
	gaps_of(xc, &g);
	if (rs->json)
		conn_head_json(f, rs->meta, xc, m, &g);
	else
		conn_head_text(f, xc, m, &g);
	fclose(f);
	sl->done = true;
	/* one behind the front waits with only its line in memory */
	if (sl != &rs->slot[rs->next])
		spill(rs, &sl->part[PART_X]);
	rs_flush(rs, false);
}

/* JSON: a piece in base64, the bytes short of a group carried over. */
static void dump_piece_b64(FILE *f, struct rslot *sl, int d, const uint8_t *p,
			   uint64_t n)
{
	uint8_t *c = sl->carry[d];
	uint64_t whole;

	while (sl->ncarry[d] && sl->ncarry[d] < 3 && n) {
		c[sl->ncarry[d]++] = *p++;
		n--;
	}
	if (sl->ncarry[d] == 3) {
		pt_base64_put(f, c, 3);
		sl->ncarry[d] = 0;
	}
	if (!n)
		return;
	whole = n - n % 3;
	pt_base64_put(f, p, whole);
	memcpy(c, p + whole, n - whole);
	sl->ncarry[d] = n - whole;
}

static int rs_bytes(void *ctx, const struct pt_capture *cap,
		    struct pt_xconn *xc, void **state, bool final)
{
	struct rstream *rs = ctx;
	struct pt_conn *m = meta_of(rs, xc->conn);
	struct rslot *sl = m ? m->owner : NULL;
	struct rpart *pt;
	int d;

	if (rs->failed)
		return -1;
	if (!sl || sl->dumped)
		return 0;
	sl->req_dir = xc->req_dir;
	sl->dump_out |= !xc->assembled;
	for (d = 0; d < 2 && !sl->dump_out; d++) {
		const struct pt_assembled *a = &xc->a[d];

		pt = &sl->part[PART_DUMP + d];
		if (a->len) {
			if (rs->json)
				dump_piece_b64(part_file(pt), sl, d, a->buf,
					       a->len);
			else
				dump_piece_text(part_file(pt), &sl->mid[d], a);
			sl->dlen[d] += a->len;
		}
		if (final && rs->json && sl->ncarry[d])
			pt_base64_put(part_file(pt), sl->carry[d],
				      sl->ncarry[d]);
		else if (final && !rs->json && sl->mid[d])
			fputc('\n', part_file(pt));
		if (pt->f && fflush(pt->f))
			pt_oom();
		if (pt->len >= SPOOL_PIECE)
			spill(rs, pt);
	}
	if (!final)
		return 0;
	sl->dumped = true;
	if (sl != &rs->slot[rs->next])
		spill_slot(rs, sl);
	rs_flush(rs, false);
	return 0;
}

/* Standard input, when a file is read as "-": where it starts. */
static off_t stdin_at = -1;

/* Standard input back at its start, for the next pass. */
static void rewind_stdin(void)
{
	if (stdin_at >= 0 && fseeko(stdin, stdin_at, SEEK_SET))
		pt_dbg("-: cannot go back to its start: %s", strerror(errno));
}

/*
 * So that standard input too is read twice, a pipe is first copied to
 * an unlinked file in $TMPDIR that becomes standard input. 0; -1 when
 * no such file can be made (said: then it is read whole, once); 1 after
 * one line. A terminal is left to say it is one.
 */
static int keep_stdin(void)
{
	char buf[64 << 10], head[sizeof(PT_FILE_MAGIC)];
	size_t nhead = 0;
	struct stat st;
	ssize_t n, w, k;
	int fd;

	if (fstat(STDIN_FILENO, &st) || isatty(STDIN_FILENO))
		return 0;
	if (S_ISREG(st.st_mode)) {
		stdin_at = lseek(STDIN_FILENO, 0, SEEK_CUR);
		return 0;
	}
	fd = tmp_file("podtap-stdin");
	if (fd < 0) {
		pt_info("cannot make a file in %s (%s) to read standard input twice: it is read whole, in memory (set TMPDIR)",
			tmp_dir(), strerror(errno));
		return -1;
	}
	while (fd >= 0) {
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pt_err("-: reading standard input: %s", strerror(errno));
			close(fd);
			return 1;
		}
		if (!n)
			break;
		/* what is no capture is kept only as far as its first bytes,
		 * for the reader to say so (not copied whole: /dev/zero) */
		if (nhead < sizeof(head)) {
			k = (size_t)n < sizeof(head) - nhead ? n : sizeof(head) - nhead;
			memcpy(head + nhead, buf, k);
			nhead += k;
		}
		for (k = 0; k < n; k += w) {
			w = write(fd, buf + k, n - k);
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w <= 0) {
				if (!w)
					errno = ENOSPC;
				close(fd);
				fd = -1;
				break;
			}
		}
		if (nhead == sizeof(head) && memcmp(head, PT_FILE_MAGIC, nhead))
			break;
	}
	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0) {
		pt_err("-: standard input is kept in a file in %s to be read twice: %s (set TMPDIR)",
		       tmp_dir(), strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	close(fd);
	stdin_at = 0;
	rewind_stdin();
	return 0;
}

static int stat_arg(const char *path, struct stat *st)
{
	return strcmp(path, "-") ? stat(path, st) : fstat(STDIN_FILENO, st);
}

/* Whether the files read in the first pass are what a later one read. */
static bool same_files(const struct pt_capture *meta,
		       const struct pt_capture *cap, const char *const *paths,
		       int n, const struct stat *st0)
{
	struct stat st;
	int k;

	for (k = 0; k < n; k++)
		if (stat_arg(paths[k], &st) || st.st_dev != st0[k].st_dev ||
		    st.st_ino != st0[k].st_ino || st.st_size != st0[k].st_size ||
		    st.st_mtim.tv_sec != st0[k].st_mtim.tv_sec ||
		    st.st_mtim.tv_nsec != st0[k].st_mtim.tv_nsec)
			break;
	if (k == n && cap->info.records == meta->info.records &&
	    cap->read_err == meta->read_err)
		return true;
	pt_err("%s changed while it was read: what was printed is not what it holds; read it again",
	       k < n ? paths[k] : n > 1 ? "a file" : paths[0]);
	return false;
}

/* 0, or 1 after one line (the capture could not be read, or changed). */
static int read_streamed(struct pt_capture *meta, const char *const *paths,
			 int n, const struct stat *st0, bool json, bool full,
			 bool dump, const unsigned long long *want,
			 size_t nwant)
{
	struct rstream rs = { .meta = meta, .json = json, .full = full,
			      .dump = dump, .spool = -1 };
	const struct pt_xsink sink = { .ctx = &rs, .x = rs_x, .conn = rs_conn };
	const struct pt_xsink dsink = { .bctx = &rs, .bytes = rs_bytes };
	struct pt_capture cap;
	size_t i;
	int err;

	rs.slot = pt_xcalloc(meta->conns.n + 1, sizeof(*rs.slot));
	for (i = 0; i < meta->conns.n; i++) {
		meta->conns.v[i]->owner = &rs.slot[i];
		/* those not asked for hold up nothing */
		rs.slot[i].done = nwant && !wanted(want, nwant,
						   meta->conns.v[i]->id);
		rs.slot[i].dumped = rs.slot[i].done || !dump;
	}
	rewind_stdin();
	err = pt_capture_stream(&cap, paths, n, &sink);
	if (!err) {
		if (!same_files(meta, &cap, paths, n, st0))
			rs.failed = true;
		pt_stream_notes(&cap);
		pt_capture_free(&cap);
	}
	if (!err && !rs.failed && dump) {
		rewind_stdin();
		err = pt_capture_stream(&cap, paths, n, &dsink);
		if (!err) {
			if (!rs.failed && !same_files(meta, &cap, paths, n, st0))
				rs.failed = true;
			pt_capture_free(&cap);
		}
	}
	if (!err && !rs.failed) {
		/* a connection never handed on whole is left out, as read
		 * whole leaves one out that it cannot assemble */
		for (i = 0; i < meta->conns.n; i++)
			if (!rs.slot[i].dumped)
				rs.slot[i].dump_out = true;
		rs_flush(&rs, true);
	}
	pt_dbg("%llu bytes of text waited in a file",
	       (unsigned long long)rs.spool_end);
	for (i = 0; i < meta->conns.n; i++)
		slot_free(&rs.slot[i]);
	free(rs.slot);
	if (rs.spool >= 0)
		close(rs.spool);
	return err || rs.failed ? 1 : 0;
}

int cmd_read(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dump", no_argument, NULL, 'd' },
		{ "full", no_argument, NULL, 'x' },
		{ "json", no_argument, NULL, 'j' },
		{ "conn", required_argument, NULL, 'C' },
		{ "log-format", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "max-stream", required_argument, NULL, 'M' },
		{ "max-held", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	bool dump = false, json = false, full = false, streamed;
	struct stat *st0 = NULL;	/* each file as the first pass found it */
	struct pt_capture cap;
	struct pt_conns *conns = &cap.conns;
	struct pt_capr_info *info = &cap.info;
	unsigned long long *want = NULL;
	size_t nwant = 0;
	char *end;
	size_t i;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":dxjC:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dump = true;
			break;
		case 'x':
			full = true;
			break;
		case 'j':
			json = true;
			break;
		case 'C':
			errno = 0;
			want = pt_xrealloc(want, nwant + 1, sizeof(*want));
			want[nwant] = strtoull(optarg, &end, 10);
			if (errno || *optarg < '0' || *optarg > '9' || *end) {
				pt_err(errno == ERANGE ?
				       "--conn %s: too large for a connection id" :
				       "--conn %s: not a connection id (a decimal number, as read lists them)",
				       optarg);
				free(want);
				free(st0);
				return 1;
			}
			nwant++;
			break;
		case 'M':
			if (pt_opt_max_stream(optarg))
				return 1;
			break;
		case 'H':
			if (pt_opt_max_held(optarg))
				return 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (pt_opt_other("read", opt, optarg,
					 argv[optind - 1]))
				return 1;
			break;
		}
	}
	if (optind >= argc) {
		pt_err("read: give a capture file, or the segments of one session in order (see --help)");
		free(want);
		free(st0);
		return 1;
	}
	/*
	 * Streamed, in memory bounded by what is in flight: files are read
	 * two or three times, standard input kept in a file to be. Read
	 * whole, as before streaming, with PODTAP_READ_WHOLE=1 (the tests
	 * compare the two), or when an argument is not a regular file.
	 */
	streamed = !getenv("PODTAP_READ_WHOLE");
	st0 = pt_xcalloc(argc - optind, sizeof(*st0));
	for (i = optind; streamed && i < (size_t)argc; i++) {
		if (strcmp(argv[i], "-") || stdin_at >= 0)
			continue;
		opt = keep_stdin();
		if (opt > 0) {
			free(want);
			free(st0);
			return 1;
		}
		streamed = !opt;
	}
	for (i = optind; i < (size_t)argc; i++)
		streamed &= !stat_arg(argv[i], &st0[i - optind]) &&
			    S_ISREG(st0[i - optind].st_mode);
	if (streamed) {
		const struct pt_load_hooks meta_hooks = {
			.ctx = &cap.conns, .pre = meta_pre, .post = meta_post,
			.failed = meta_failed,
		};

		if (pt_capture_load_hooked(&cap, (const char *const *)argv +
					   optind, argc - optind, &meta_hooks)) {
			free(want);
			free(st0);
			return 1;
		}
	} else if (pt_capture_load_many(&cap, (const char *const *)argv + optind,
					argc - optind, false)) {
		free(want);
		free(st0);
		return 1;
	}
	for (i = 0; i < nwant; i++)
		if (!pt_conns_find(conns, want[i])) {
			pt_err("--conn %llu: no such connection in %s", want[i],
			       cap.files > 1 ? "these files" : argv[optind]);
			pt_capture_free(&cap);
			free(want);
			free(st0);
			return 1;
		}
	if (!json) {
		if (cap.files > 1)
			printf("# %d segments, %s to %s\n", cap.files,
			       argv[optind], argv[argc - 1]);
		/* names from the file (host, targets) are escaped as payload */
		printf("# %s: host ", cap.files > 1 ? "together" : argv[optind]);
		put_str(stdout, info->hdr.host);
		printf(", %llu record%s in %llu block%s%s\n",
		       (unsigned long long)info->records,
		       info->records == 1 ? "" : "s",
		       (unsigned long long)info->blocks,
		       info->blocks == 1 ? "" : "s",
		       info->clean_end ? "" : cap.read_err ? "" :
		       " (not finished: still being written, or the recorder stopped abruptly)");
		for (i = 0; i < conns->ntargets; i++) {
			printf("# target %s: ", conns->targets[i].kind ==
			       PT_TARGET_PIDNS ? "pidns" : "cgroup");
			put_str(stdout, conns->targets[i].name);
			printf(" (id %llu, session %u)\n",
			       (unsigned long long)conns->targets[i].id,
			       conns->targets[i].session_id);
		}
		for (i = 0; i < conns->ntls_procs; i++) {
			fputs("# TLS: ", stdout);
			pt_tls_proc_text(stdout, &conns->tls_procs[i]);
			fputc('\n', stdout);
		}
		if (conns->has_stats)
			print_stats(&conns->stats);
		printf("%-10s %-7s %-22s %-22s %7s %-15s %-6s %10s %10s %-14s %s\n",
		       "ID", "ROLE", "LOCAL", "REMOTE", "PID", "COMM", "PROTO",
		       "TX", "RX", "MISSING", "STATE");
	}
	if (streamed && read_streamed(&cap, (const char *const *)argv + optind,
				      argc - optind, st0, json, full, dump,
				      want, nwant)) {
		free(want);
		free(st0);
		fflush(stdout);
		pt_capture_free(&cap);
		return 1;
	}
	for (i = 0; !streamed && i < conns->n; i++) {
		struct pt_xconn xc;

		if (nwant && !wanted(want, nwant, conns->v[i]->id))
			continue;
		pt_xconn_build(conns->v[i], &xc);
		if (json)
			print_conn_json(stdout, &cap, &xc, dump);
		else
			print_conn_text(stdout, &xc, dump, full);
		pt_xconn_free(&xc);
	}
	free(want);
	free(st0);
	if (fflush(stdout)) {
		pt_err("writing output: %s", strerror(errno));
		pt_capture_free(&cap);
		return 1;
	}
	pt_capture_warn(&cap);
	opt = cap.read_err ? 1 : 0;
	pt_capture_free(&cap);
	return opt;
}
