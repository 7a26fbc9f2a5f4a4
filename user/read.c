// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* podtap read: what a capture file holds, per connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "capfile.h"
#include "cmds.h"
#include "common.h"
#include "conns.h"

static const char *role_name(uint8_t r)
{
	return r == PT_ROLE_CLIENT ? "client" :
	       r == PT_ROLE_SERVER ? "server" : "unknown";
}

static const char *proto_name(uint8_t p)
{
	static const char *const n[] = { "unknown", "http1", "http2", "tls" };

	return p < ARRAY_SIZE(n) ? n[p] : "unknown";
}

static const char *reason_name(uint8_t r)
{
	static const char *const n[] = { "unreported", "ringbuf_full",
					  "too_big", "load_failed" };

	return r < ARRAY_SIZE(n) ? n[r] : "unknown";
}

static void fmt_ep(char *buf, size_t n, uint16_t family, const uint8_t *a,
		   uint16_t port)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	inet_ntop(family == 10 ? AF_INET6 : AF_INET, a, ip, sizeof(ip));
	snprintf(buf, n, family == 10 ? "[%s]:%u" : "%s:%u", ip, port);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void base64(FILE *f, const uint8_t *p, uint64_t n)
{
	static const char t[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint64_t i;

	fputc('"', f);
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = p[i] << 16 | p[i + 1] << 8 | p[i + 2];

		fputc(t[v >> 18], f);
		fputc(t[(v >> 12) & 63], f);
		fputc(t[(v >> 6) & 63], f);
		fputc(t[v & 63], f);
	}
	if (n - i == 1) {
		fputc(t[p[i] >> 2], f);
		fputc(t[(p[i] & 3) << 4], f);
		fputs("==", f);
	} else if (n - i == 2) {
		fputc(t[p[i] >> 2], f);
		fputc(t[((p[i] & 3) << 4) | (p[i + 1] >> 4)], f);
		fputc(t[(p[i + 1] & 15) << 2], f);
		fputc('=', f);
	}
	fputc('"', f);
}

/* Printable text as is, the rest as \xNN; gaps as a marked line. */
static void dump_text(FILE *f, const struct pt_assembled *a)
{
	size_t g = 0;
	uint64_t i = 0;

	while (i < a->len) {
		if (g < a->ngaps && a->gaps[g].start == i) {
			fprintf(f, "\n[... %llu bytes not captured (%s) ...]\n",
				(unsigned long long)(a->gaps[g].end - i),
				reason_name(a->gaps[g].reason));
			i = a->gaps[g].end;
			g++;
			continue;
		}
		if (a->buf[i] == '\n' || a->buf[i] == '\t' ||
		    (a->buf[i] >= 0x20 && a->buf[i] < 0x7f))
			fputc(a->buf[i], f);
		else if (a->buf[i] == '\r')
			fputs("\\r", f);
		else
			fprintf(f, "\\x%02x", a->buf[i]);
		i++;
	}
}

static void assemble(const struct pt_conn *c, int d, struct pt_assembled *a)
{
	if (pt_stream_assemble(c, d, a))
		pt_err("connection %llx: its %s stream (%llu bytes) is too large to assemble in memory; shown empty",
		       (unsigned long long)c->id, d == PT_DIR_TX ? "tx" : "rx",
		       (unsigned long long)pt_stream_end(c, d));
}

static void print_conn_text(FILE *f, const struct pt_conn *c, bool dump)
{
	const struct pt_conn_open *o = &c->open;
	char l[64], r[64];
	struct pt_assembled a[2];
	int d;

	for (d = 0; d < 2; d++)
		assemble(c, d, &a[d]);
	fmt_ep(l, sizeof(l), o->t.family, o->t.laddr, o->t.lport);
	fmt_ep(r, sizeof(r), o->t.family, o->t.raddr, o->t.rport);
	fprintf(f, "%-8llx %-7s %-22s %-22s %7u %-15s %-6s tx %-10llu rx %-10llu gaps %zu/%zu%s%s\n",
		(unsigned long long)c->id,
		c->has_open ? role_name(o->role) : "?", l, r, o->tgid,
		o->comm[0] ? o->comm : "-", proto_name(o->proto),
		(unsigned long long)a[PT_DIR_TX].len,
		(unsigned long long)a[PT_DIR_RX].len, a[PT_DIR_TX].ngaps,
		a[PT_DIR_RX].ngaps,
		c->has_close ? (c->close_flags & PT_F_RST ? " reset" : " closed")
			     : " open",
		o->h.flags & PT_F_PREEXISTING ? " preexisting" : "");
	for (d = 0; dump && d < 2; d++) {
		/* the side that spoke first first: a server's request is rx */
		int first = o->role == PT_ROLE_SERVER ? PT_DIR_RX : PT_DIR_TX;
		int dir = d == 0 ? first : !first;

		fprintf(f, "--- %llx %s %llu bytes ---\n",
			(unsigned long long)c->id, dir == PT_DIR_TX ? "tx" : "rx",
			(unsigned long long)a[dir].len);
		dump_text(f, &a[dir]);
		fputs("\n", f);
	}
	pt_assembled_free(&a[0]);
	pt_assembled_free(&a[1]);
}

static void print_conn_json(FILE *f, const struct pt_conn *c, bool dump)
{
	const struct pt_conn_open *o = &c->open;
	static const char *const dn[2] = { "rx", "tx" };
	struct pt_assembled a[2];
	char l[64], r[64];
	size_t i;
	int d;

	for (d = 0; d < 2; d++)
		assemble(c, d, &a[d]);
	fmt_ep(l, sizeof(l), o->t.family, o->t.laddr, o->t.lport);
	fmt_ep(r, sizeof(r), o->t.family, o->t.raddr, o->t.rport);
	fprintf(f, "{\"conn_id\":%llu,\"role\":\"%s\",\"role_guessed\":%s,\"local\":\"%s\",\"remote\":\"%s\",\"pid\":%u,\"tgid\":%u,\"comm\":",
		(unsigned long long)c->id, role_name(o->role),
		o->h.flags & PT_F_ROLE_GUESSED ? "true" : "false", l, r,
		o->pid, o->tgid);
	json_str(f, o->comm);
	fprintf(f, ",\"cgroup_id\":%llu,\"session\":%u,\"proto\":\"%s\",\"preexisting\":%s,\"v4mapped\":%s,\"state\":\"%s\",\"start_ns\":%llu,\"end_ns\":%llu",
		(unsigned long long)o->cgroup_id, o->session_id,
		proto_name(o->proto),
		o->h.flags & PT_F_PREEXISTING ? "true" : "false",
		o->h.flags & PT_F_V4MAPPED ? "true" : "false",
		!c->has_close ? "open" :
		c->close_flags & PT_F_RST ? "reset" : "closed",
		(unsigned long long)c->first_ts,
		(unsigned long long)c->last_ts);
	fputs(",\"bytes\":{", f);
	for (d = 0; d < 2; d++)
		fprintf(f, "%s\"%s\":%llu", d ? "," : "", dn[d],
			(unsigned long long)a[d].len);
	fputs("},\"gaps\":{", f);
	for (d = 0; d < 2; d++) {
		fprintf(f, "%s\"%s\":[", d ? "," : "", dn[d]);
		for (i = 0; i < a[d].ngaps; i++)
			fprintf(f, "%s{\"start\":%llu,\"end\":%llu,\"reason\":\"%s\"}",
				i ? "," : "",
				(unsigned long long)a[d].gaps[i].start,
				(unsigned long long)a[d].gaps[i].end,
				reason_name(a[d].gaps[i].reason));
		fputc(']', f);
	}
	fputc('}', f);
	if (dump) {
		fputs(",\"payload\":{", f);
		for (d = 0; d < 2; d++) {
			fprintf(f, "%s\"%s\":", d ? "," : "", dn[d]);
			base64(f, a[d].buf, a[d].len);
		}
		fputc('}', f);
	}
	fputs("}\n", f);
	pt_assembled_free(&a[0]);
	pt_assembled_free(&a[1]);
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

static int collect(void *ctx, const struct pt_rec_hdr *h)
{
	return pt_conns_add(ctx, h);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: podtap read [OPTIONS] FILE\n"
"\n"
"Show the connections in a capture file written by `podtap record`: id,\n"
"role, local and remote address, process, protocol guess, bytes each way,\n"
"gaps (bytes not captured) and state. A file still being written, or left\n"
"by a recorder that crashed, reads up to its last complete block.\n"
"\n"
"Options:\n"
"  -d, --dump       also print each direction's bytes (text; \\xNN escapes)\n"
"  -j, --json       one JSON object per connection (payload base64 with --dump)\n"
"  -C, --conn ID    only the connection with this id (hex, as listed)\n"
"  -h, --help       this text\n");
}

int cmd_read(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dump", no_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "conn", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	bool dump = false, json = false, only = false;
	struct pt_capr_info info;
	struct pt_conns conns;
	unsigned long long want = 0;
	char *end;
	size_t i;
	int opt, err;
	FILE *f;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":djC:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dump = true;
			break;
		case 'j':
			json = true;
			break;
		case 'C':
			errno = 0;
			want = strtoull(optarg, &end, 16);
			if (errno || !*optarg || *end) {
				pt_err("--conn %s: not a connection id (hex)", optarg);
				return 1;
			}
			only = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			pt_err("read: %s '%s' (see 'podtap read --help')",
			       opt == ':' ? "missing value for" :
			       "unknown option", argv[optind - 1]);
			return 1;
		}
	}
	if (optind != argc - 1) {
		pt_err("read: give exactly one capture file (see --help)");
		return 1;
	}
	f = fopen(argv[optind], "rbe");
	if (!f) {
		pt_err("%s: %s", argv[optind], strerror(errno));
		return 1;
	}
	pt_conns_init(&conns);
	err = pt_capr_read(f, collect, &conns, &info);
	fclose(f);
	if (err && !info.end_offset) {
		/* not even a header: nothing to show */
		pt_err("%s: %s", argv[optind], err == -EBADMSG ? info.error :
		       strerror(-err));
		pt_conns_free(&conns);
		return 1;
	}
	if (!json) {
		printf("# %s: host %s, %llu records in %llu blocks%s\n",
		       argv[optind], info.hdr.host,
		       (unsigned long long)info.records,
		       (unsigned long long)info.blocks,
		       info.clean_end ? "" : err ? "" :
		       " (not finished: still being written, or the recorder stopped abruptly)");
		for (i = 0; i < conns.ntargets; i++)
			printf("# target %s: %s (id %llu, session %u)\n",
			       conns.targets[i].kind == PT_TARGET_PIDNS ?
			       "pidns" : "cgroup", conns.targets[i].name,
			       (unsigned long long)conns.targets[i].id,
			       conns.targets[i].session_id);
		if (conns.has_stats)
			print_stats(&conns.stats);
		printf("%-8s %-7s %-22s %-22s %7s %-15s %-6s\n", "ID", "ROLE",
		       "LOCAL", "REMOTE", "PID", "COMM", "PROTO");
	}
	for (i = 0; i < conns.n; i++) {
		if (only && conns.v[i]->id != want)
			continue;
		if (json)
			print_conn_json(stdout, conns.v[i], dump);
		else
			print_conn_text(stdout, conns.v[i], dump);
	}
	pt_conns_free(&conns);
	if (fflush(stdout)) {
		pt_err("writing output: %s", strerror(errno));
		return 1;
	}
	if (err) {
		if (err == -EBADMSG)
			pt_err("%s: %s; the connections above are what precedes it", argv[optind],
			       info.error);
		else
			pt_err("%s: %s", argv[optind], strerror(-err));
		return 1;
	}
	return 0;
}
