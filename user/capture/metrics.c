// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include "base/common.h"
#include "capture/loader.h"
#include "capture/metrics.h"

struct pt_metrics {
	struct MHD_Daemon *d;
	struct pt_metrics_cfg c;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int code,
			     const char *ctype, char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *conn, unsigned int code,
			    const char *msg)
{
	char *b = strdup(msg);

	return b ? reply(conn, code, "text/plain; charset=utf-8", b,
			 strlen(b)) : MHD_NO;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload_data,
			      size_t *upload_size, void **state)
{
	struct pt_metrics *m = cls;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
			    "only GET and HEAD\n");
	if (!strcmp(url, "/healthz"))
		return m->c.healthy(m->c.ctx) ? text(conn, MHD_HTTP_OK, "ok\n") :
		       text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "the capture loop is stuck\n");
	if (!strcmp(url, "/readyz"))
		return m->c.ready(m->c.ctx) ? text(conn, MHD_HTTP_OK, "ok\n") :
		       text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "not capturing yet\n");
	if (strcmp(url, "/metrics"))
		return text(conn, MHD_HTTP_NOT_FOUND,
			    "not found: try /metrics, /healthz or /readyz\n");
	f = open_memstream(&buf, &len);
	if (!f)
		return MHD_NO;
	m->c.write(m->c.ctx, f);
	if (fclose(f)) {
		free(buf);
		return MHD_NO;
	}
	return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
		     buf, len);
}

int pt_metrics_start(struct pt_metrics **out, const struct pt_metrics_cfg *c)
{
	struct sockaddr_storage ss;
	struct pt_metrics *m;
	/* epoll or poll, never select: with hundreds of targets the
	 * loader's cgroup and link descriptors pass FD_SETSIZE, and a
	 * select server drops every connection whose fd is above it */
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD;
	bool v6 = false;

	if (pt_parse_listen_addr(c->addr, &ss, &v6)) {
		pt_err("--metrics %s: not an address to listen on (try 127.0.0.1:9090, :9090 or [::1]:9090)",
		       c->addr);
		return -EINVAL;
	}
	if (v6)
		flags |= MHD_USE_DUAL_STACK;
	m = pt_xcalloc(1, sizeof(*m));
	m->c = *c;
	m->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, m,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_LIMIT, 16u,
				MHD_OPTION_CONNECTION_TIMEOUT, 10u,
				MHD_OPTION_END);
	if (!m->d) {
		int err = errno ? -errno : -EADDRINUSE;

		pt_err("--metrics %s: cannot listen: %s", c->addr,
		       strerror(-err));
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

void pt_metrics_stop(struct pt_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->d);
	free(m);
}

void pt_prom_head(FILE *f, const char *name, const char *type,
		  const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void pt_prom_u64(FILE *f, const char *name, const char *labels, uint64_t v)
{
	fprintf(f, "%s%s%s%s %llu\n", name, labels ? "{" : "",
		labels ? labels : "", labels ? "}" : "", (unsigned long long)v);
}

void pt_prom_f64(FILE *f, const char *name, const char *labels, double v)
{
	fprintf(f, "%s%s%s%s %.9g\n", name, labels ? "{" : "",
		labels ? labels : "", labels ? "}" : "", v);
}

void pt_prom_one(FILE *f, const char *name, const char *type,
		 const char *help, uint64_t v)
{
	pt_prom_head(f, name, type, help);
	pt_prom_u64(f, name, NULL, v);
}

void pt_loader_metrics(struct pt_loader *l, FILE *f)
{
	static const char *const reasons[PT_LOSS_MAX] = {
		"unknown", "ringbuf_full", "too_big", "load_failed" };
	struct pt_prog_stat ps[24];
	struct pt_counters c = {};
	uint64_t used, size;
	char lab[96];
	int i, n;

	pt_loader_counters(l, &c);
	pt_prom_head(f, "podtap_build_info", "gauge", "podtap's version.");
	pt_prom_u64(f, "podtap_build_info", "version=\"" PT_VERSION "\"", 1);
	pt_prom_one(f, "podtap_kernel_events_total", "counter",
		    "Records the BPF programs submitted to the ring buffer.",
		    c.events);
	pt_prom_one(f, "podtap_kernel_payload_bytes_total", "counter",
		    "Payload bytes the BPF programs submitted.",
		    c.bytes);
	pt_prom_one(f, "podtap_lost_events_total", "counter",
		    "Records that did not fit, for any reason.",
		    c.lost_events);
	pt_prom_head(f, "podtap_lost_bytes_total", "counter",
		     "Payload bytes not captured, by reason.");
	for (i = 1; i < PT_LOSS_MAX; i++) {
		snprintf(lab, sizeof(lab), "reason=\"%s\"", reasons[i]);
		pt_prom_u64(f, "podtap_lost_bytes_total", lab, c.lost_bytes[i]);
	}
	pt_prom_head(f, "podtap_tls_records_total", "counter",
		     "TLS plaintext records submitted, by whether their socket was known.");
	pt_prom_u64(f, "podtap_tls_records_total", "socket=\"known\"",
		    c.tls_records - c.tls_unassoc);
	pt_prom_u64(f, "podtap_tls_records_total", "socket=\"not_yet\"",
		    c.tls_unassoc);
	pt_prom_one(f, "podtap_tls_plaintext_bytes_total", "counter",
		    "TLS plaintext bytes submitted.", c.tls_bytes);
	pt_prom_one(f, "podtap_tls_lost_bytes_total", "counter",
		    "TLS plaintext bytes not captured.", c.tls_lost);
	pt_prom_head(f, "podtap_kernel_connections_total", "counter",
		     "Connections of targets seen opening or closing.");
	pt_prom_u64(f, "podtap_kernel_connections_total", "event=\"open\"", c.conns);
	pt_prom_u64(f, "podtap_kernel_connections_total", "event=\"close\"", c.closes);
	pt_prom_head(f, "podtap_passed_over_total", "counter",
		     "Packets or sockets the programs did not capture, by why.");
	pt_prom_u64(f, "podtap_passed_over_total", "why=\"not_a_target\"", c.filtered);
	pt_prom_u64(f, "podtap_passed_over_total", "why=\"listener_segment\"", c.listener_segments);
	pt_prom_u64(f, "podtap_passed_over_total", "why=\"unparsed_headers\"", c.unparsed);
	pt_prom_u64(f, "podtap_passed_over_total", "why=\"out_of_window\"", c.out_of_window);
	pt_prom_u64(f, "podtap_passed_over_total", "why=\"no_socket_storage\"", c.no_storage);
	pt_prom_u64(f, "podtap_passed_over_total", "why=\"loss_untracked\"", c.loss_untracked);
	if (!pt_loader_ring_fill(l, &used, &size)) {
		pt_prom_head(f, "podtap_ringbuf_used_bytes", "gauge",
			     "Bytes waiting in the ring buffer.");
		pt_prom_u64(f, "podtap_ringbuf_used_bytes", NULL, used);
		pt_prom_head(f, "podtap_ringbuf_size_bytes", "gauge",
			     "Size of the ring buffer.");
		pt_prom_u64(f, "podtap_ringbuf_size_bytes", NULL, size);
	}
	n = pt_loader_prog_stats(l, ps, ARRAY_SIZE(ps));
	pt_prom_head(f, "podtap_program_runs_total", "counter",
		     "Times each BPF program ran (kernel BPF statistics).");
	for (i = 0; i < n; i++) {
		snprintf(lab, sizeof(lab), "program=\"%.31s\"", ps[i].name);
		pt_prom_u64(f, "podtap_program_runs_total", lab, ps[i].run_cnt);
	}
	pt_prom_head(f, "podtap_program_run_seconds_total", "counter",
		     "Time spent in each BPF program.");
	for (i = 0; i < n; i++) {
		snprintf(lab, sizeof(lab), "program=\"%.31s\"", ps[i].name);
		pt_prom_f64(f, "podtap_program_run_seconds_total", lab,
			    ps[i].run_time_ns / 1e9);
	}
	pt_prom_head(f, "podtap_program_run_ns_average", "gauge",
		     "Average nanoseconds per run of each BPF program.");
	for (i = 0; i < n; i++) {
		snprintf(lab, sizeof(lab), "program=\"%.31s\"", ps[i].name);
		pt_prom_f64(f, "podtap_program_run_ns_average", lab,
			    ps[i].run_cnt ? (double)ps[i].run_time_ns /
					    ps[i].run_cnt : 0);
	}
}
