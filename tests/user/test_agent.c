// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's reading of the cluster: JSON as the API server sends it,
 * RecordingSession specs, pods, label selectors (the rules of
 * metav1.LabelSelector), durations and quantities as Kubernetes writes
 * them, and where each runtime's cgroup of a container lies.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kube/objects.h"
#include "capfile/capfile.h"
#include "base/common.h"
#include "stream/conns.h"
#include "export/export.h"
#include "base/jread.h"
#include "test_progs.h"

void test_agent_jread(void)
{
	const char *s = "{\"a\":{\"b\":[1,{\"c\":\"x\\\"y\\u00e9\\ud83d\\ude00\"},3]},"
			"\"n\":\"42\",\"m\":17,\"e\":{}}";
	struct pt_jr j;
	int arr, el, k, n = 0;
	uint64_t v;
	char *str;

	if (!ASSERT_OK(pt_jr_parse(&j, s, strlen(s)), "parse"))
		return;
	arr = pt_jr_path(&j, 0, "a.b");
	ASSERT_EQ(pt_jr_type(&j, arr), PT_J_ARRAY, "a.b is an array");
	pt_jr_for_each(&j, arr, el, k)
		n++;
	ASSERT_EQ(n, 3, "three elements");
	str = pt_jr_str(&j, pt_jr_get(&j, pt_jr_next(&j, arr + 1), "c"));
	ASSERT_TRUE(str && !strcmp(str, "x\"y\xc3\xa9\xf0\x9f\x98\x80"),
		    "escapes, \\u and a surrogate pair unescaped");
	free(str);
	ASSERT_OK(pt_jr_u64(&j, pt_jr_get(&j, 0, "n"), &v), "number in a string");
	ASSERT_EQ(v, 42, "n");
	ASSERT_OK(pt_jr_u64(&j, pt_jr_get(&j, 0, "m"), &v), "number");
	ASSERT_EQ(v, 17, "m");
	ASSERT_EQ(pt_jr_get(&j, 0, "e") > 0, 1, "empty object found");
	ASSERT_EQ(pt_jr_next(&j, pt_jr_get(&j, 0, "e")), j.n, "last value ends the tokens");
	ASSERT_EQ(pt_jr_path(&j, 0, "a.x"), -1, "missing key");
	ASSERT_EQ(pt_jr_path(&j, 0, "n.x"), -1, "key of a string");
	pt_jr_free(&j);
	ASSERT_EQ(pt_jr_parse(&j, "{\"a\":1", 6), -EINVAL, "cut short");
	ASSERT_EQ(pt_jr_parse(&j, "{\"a\":1}x", 8), -EINVAL, "trailing bytes");
	ASSERT_EQ(pt_jr_parse(&j, "{a:1}", 5), -EINVAL, "unquoted key");
}

void test_agent_units(void)
{
	uint64_t v;

	ASSERT_OK(pt_parse_duration("1h30m", &v), "1h30m");
	ASSERT_EQ(v, 5400000000000ull, "1h30m in ns");
	ASSERT_OK(pt_parse_duration("250ms", &v), "250ms");
	ASSERT_EQ(v, 250000000ull, "250ms in ns");
	ASSERT_OK(pt_parse_duration("1.5s", &v), "1.5s");
	ASSERT_EQ(v, 1500000000ull, "1.5s in ns");
	ASSERT_OK(pt_parse_duration("0", &v), "0");
	ASSERT_OK(pt_parse_duration("15", &v), "a bare number");
	ASSERT_EQ(v, 15000000000ull, "a bare number is seconds");
	ASSERT_OK(pt_parse_duration("1h0.5m10us", &v), "1h0.5m10us");
	ASSERT_EQ(v, 3630000010000ull, "1h0.5m10us in ns");
	ASSERT_EQ(pt_parse_duration("1s5", &v), -EINVAL, "a number after the last unit");
	ASSERT_EQ(pt_parse_duration("99999999999h", &v), -ERANGE, "too long");
	ASSERT_EQ(pt_parse_duration("-1s", &v), -EINVAL, "negative");
	ASSERT_EQ(pt_parse_duration("1d", &v), -EINVAL, "days are not Go's");
	ASSERT_EQ(pt_parse_duration("", &v), -EINVAL, "empty");
	ASSERT_OK(pt_parse_size("1Gi", &v), "1Gi");
	ASSERT_EQ(v, 1ull << 30, "1Gi");
	ASSERT_OK(pt_parse_size("500M", &v), "500M");
	ASSERT_EQ(v, 500000000ull, "500M is decimal, as in Kubernetes");
	ASSERT_OK(pt_parse_size("64Ki", &v), "64Ki");
	ASSERT_EQ(v, 65536, "64Ki");
	ASSERT_OK(pt_parse_size("100", &v), "100");
	ASSERT_EQ(v, 100, "100");
	ASSERT_EQ(pt_parse_size("1GB", &v), -EINVAL, "1GB");
	ASSERT_EQ(pt_parse_size("Gi", &v), -EINVAL, "no number");
	ASSERT_EQ(pt_parse_size("99999999999Ti", &v), -ERANGE, "overflow");
	ASSERT_OK(pt_parse_size("1.5Gi", &v), "1.5Gi");
	ASSERT_EQ(v, 3ull << 29, "1.5Gi");
	ASSERT_OK(pt_parse_size("0.5k", &v), "0.5k");
	ASSERT_EQ(v, 500, "0.5k");
	ASSERT_OK(pt_parse_size("1.0001", &v), "1.0001");
	ASSERT_EQ(v, 2, "a fraction of a byte rounds up");
	ASSERT_EQ(pt_parse_size("64K", &v), -EINVAL, "K is not a Kubernetes suffix");
	ASSERT_EQ(pt_parse_size("1KiB", &v), -EINVAL, "1KiB");
}

#define SESSION(spec) "{\"kind\":\"RecordingSession\",\"metadata\":{\"name\":\"s\"," \
	"\"namespace\":\"shop\",\"uid\":\"u1\",\"creationTimestamp\":\"2026-11-23T10:00:00Z\"}," \
	"\"spec\":" spec "}"

static const char *pod_json =
	"{\"kind\":\"Pod\",\"metadata\":{\"name\":\"api-7\",\"namespace\":\"shop\","
	"\"uid\":\"0a1b-2c\",\"labels\":{\"app\":\"api\",\"tier\":\"front\"}},"
	"\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Running\","
	"\"qosClass\":\"Burstable\",\"containerStatuses\":["
	"{\"name\":\"app\",\"containerID\":\"containerd://c0ffee\"},"
	"{\"name\":\"proxy\",\"containerID\":\"cri-o://beef\"},"
	"{\"name\":\"late\"}]}}";

static bool selects(const char *json, const struct pt_pod *p)
{
	struct pt_session_spec s;
	bool r;

	if (pt_session_parse(json, strlen(json), &s))
		return false;
	r = pt_session_selects(&s, p);
	pt_session_free(&s);
	return r;
}

void test_agent_sessions(void)
{
	struct pt_session_spec s;
	struct pt_pod p;
	const char *j;

	if (!ASSERT_OK(pt_pod_parse(pod_json, strlen(pod_json), &p), "pod"))
		return;
	ASSERT_EQ(p.nc, 2, "containers with an id (one has not started)");
	ASSERT_TRUE(!strcmp(p.c[0].id, "c0ffee") && !strcmp(p.c[1].id, "beef"),
		    "runtime prefixes taken off");
	ASSERT_TRUE(!strcmp(p.qos, "burstable"), "qos class");
	ASSERT_TRUE(!strcmp(p.node, "n1"), "node");

	ASSERT_TRUE(selects(SESSION("{\"selector\":{}}"), &p),
		    "an empty selector selects every pod of the namespace");
	ASSERT_TRUE(selects(SESSION("{\"selector\":{\"matchLabels\":{\"app\":\"api\"}}}"), &p),
		    "matchLabels");
	ASSERT_TRUE(!selects(SESSION("{\"selector\":{\"matchLabels\":{\"app\":\"web\"}}}"), &p),
		    "matchLabels, other value");
	ASSERT_TRUE(selects(SESSION("{\"selector\":{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"back\",\"front\"]}]}}"), &p),
		    "In");
	ASSERT_TRUE(!selects(SESSION("{\"selector\":{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"NotIn\",\"values\":[\"front\"]}]}}"), &p),
		    "NotIn");
	ASSERT_TRUE(selects(SESSION("{\"selector\":{\"matchExpressions\":[{\"key\":\"canary\",\"operator\":\"NotIn\",\"values\":[\"yes\"]}]}}"), &p),
		    "NotIn holds when the label is absent");
	ASSERT_TRUE(!selects(SESSION("{\"selector\":{\"matchLabels\":{\"app\":\"api\"},\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"DoesNotExist\"}]}}"), &p),
		    "matchLabels and expressions are ANDed");
	ASSERT_TRUE(selects(SESSION("{\"selector\":{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"Exists\"}]}}"), &p),
		    "Exists");

	j = "{\"metadata\":{\"name\":\"s\",\"namespace\":\"other\",\"uid\":\"u\"},\"spec\":{\"selector\":{}}}";
	ASSERT_TRUE(!selects(j, &p), "another namespace's session");

	j = SESSION("{\"selector\":{\"matchLabels\":{\"app\":\"api\"}},\"containers\":[\"app\"],\"duration\":\"15m\",\"maxBytes\":\"1Gi\"}");
	if (ASSERT_OK(pt_session_parse(j, strlen(j), &s), "full spec")) {
		ASSERT_TRUE(!s.invalid[0], "valid");
		ASSERT_EQ(s.duration_ns, 900000000000ull, "duration");
		ASSERT_EQ(s.max_bytes, 1ull << 30, "maxBytes");
		ASSERT_EQ(s.created_real_ns, 1795428000000000000ull, "creationTimestamp");
		ASSERT_TRUE(pt_session_wants_container(&s, "app"), "container app");
		ASSERT_TRUE(!pt_session_wants_container(&s, "proxy"), "container proxy");
		ASSERT_TRUE(s.tls, "tls: true when absent");
		pt_session_free(&s);
	}
	j = SESSION("{\"selector\":{},\"tls\":false}");
	if (ASSERT_OK(pt_session_parse(j, strlen(j), &s), "tls: false")) {
		ASSERT_TRUE(!s.invalid[0] && !s.tls, "tls: false is read");
		pt_session_free(&s);
	}
	j = SESSION("{\"selector\":{},\"tls\":true}");
	if (ASSERT_OK(pt_session_parse(j, strlen(j), &s), "tls: true")) {
		ASSERT_TRUE(!s.invalid[0] && s.tls, "tls: true is read");
		pt_session_free(&s);
	}
	j = SESSION("{\"selector\":{},\"tls\":\"false\"}");
	if (ASSERT_OK(pt_session_parse(j, strlen(j), &s), "tls as a string")) {
		ASSERT_TRUE(strstr(s.invalid, "spec.tls: want true or false") != NULL,
			    "tls: \"false\" is invalid, says why");
		pt_session_free(&s);
	}
	j = SESSION("{}");
	if (ASSERT_OK(pt_session_parse(j, strlen(j), &s), "no selector")) {
		ASSERT_TRUE(strstr(s.invalid, "selector") != NULL, "no selector: invalid, says why");
		ASSERT_TRUE(!pt_session_selects(&s, &p), "an invalid session selects nothing");
		pt_session_free(&s);
	}
	j = SESSION("{\"selector\":{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}}");
	if (ASSERT_OK(pt_session_parse(j, strlen(j), &s), "In without values")) {
		ASSERT_TRUE(s.invalid[0] != 0, "In without values is invalid");
		pt_session_free(&s);
	}
	j = SESSION("{\"selector\":{},\"duration\":\"soon\"}");
	if (ASSERT_OK(pt_session_parse(j, strlen(j), &s), "bad duration")) {
		ASSERT_TRUE(strstr(s.invalid, "duration") != NULL, "bad duration is invalid");
		pt_session_free(&s);
	}
	ASSERT_EQ(pt_session_parse("{\"spec\":{}}", 11, &s), -EINVAL, "no metadata");
	pt_pod_free(&p);
}

static int mkcg(const char *root, const char *rel)
{
	char p[PATH_MAX], *c;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (c = p + strlen(root) + 1; (c = strchr(c, '/')); c++) {
		*c = 0;
		mkdir(p, 0755);
		*c = '/';
	}
	return mkdir(p, 0755);
}

void test_agent_cgroups(void)
{
	char root[] = "/tmp/podtap-layout.XXXXXX", out[PATH_MAX], cmd[PATH_MAX + 16];
	struct pt_pod p;
	struct pt_container c = { .name = "app", .id = "c0ffee" };
	char uid[] = "0a1b-2c";

	if (!ASSERT_TRUE(mkdtemp(root) != NULL, "mkdtemp"))
		return;
	memset(&p, 0, sizeof(p));
	p.uid = uid;
	p.qos = "burstable";
	ASSERT_EQ(pt_container_cgroup(root, &p, &c, out, sizeof(out)), -ENOENT,
		  "no pod cgroup yet");
	/* systemd driver, containerd */
	mkcg(root, "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b_2c.slice/cri-containerd-c0ffee.scope");
	mkcg(root, "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b_2c.slice/cri-containerd-c0ffee1.scope");
	ASSERT_OK(pt_container_cgroup(root, &p, &c, out, sizeof(out)), "systemd, containerd");
	ASSERT_TRUE(strstr(out, "/cri-containerd-c0ffee.scope") &&
		    !strstr(out, "c0ffee1"), "the container's own scope, not a longer id");
	/* Guaranteed: no QoS level; CRI-O */
	p.qos = "guaranteed";
	c.id = "beef";
	mkcg(root, "kubepods.slice/kubepods-pod0a1b_2c.slice/crio-beef.scope");
	ASSERT_OK(pt_container_cgroup(root, &p, &c, out, sizeof(out)), "systemd, guaranteed, CRI-O");
	ASSERT_TRUE(strstr(out, "kubepods-pod0a1b_2c.slice/crio-beef.scope") != NULL, "path");
	/* cgroupfs driver, BestEffort, docker */
	p.qos = "besteffort";
	c.id = "d0c";
	mkcg(root, "kubepods/besteffort/pod0a1b-2c/d0c");
	ASSERT_OK(pt_container_cgroup(root, &p, &c, out, sizeof(out)), "cgroupfs, besteffort");
	ASSERT_TRUE(strstr(out, "kubepods/besteffort/pod0a1b-2c/d0c") != NULL, "path");
	c.id = "../x";
	ASSERT_EQ(pt_container_cgroup(root, &p, &c, out, sizeof(out)), -EINVAL,
		  "an id with a slash is refused");
	c.id = "..";
	ASSERT_EQ(pt_container_cgroup(root, &p, &c, out, sizeof(out)), -EINVAL,
		  "the id '..' (the pod's parent cgroup) is refused");
	c.id = "d0c";
	p.qos = "../..";
	ASSERT_EQ(pt_container_cgroup(root, &p, &c, out, sizeof(out)), -EINVAL,
		  "an unknown QoS class is refused");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	ASSERT_OK(system(cmd), "cleanup");
}

/* A segment with an OPEN of conn 7 at open_ts, then len bytes at off. */
static int write_segment(const char *path, const char *host, uint64_t open_ts,
			 uint64_t off, const char *bytes)
{
	struct pt_conn_open o = {};
	uint8_t buf[256];
	struct pt_data *d = (void *)buf;
	struct pt_capw *w;
	size_t len = strlen(bytes);
	int err;

	err = pt_capw_open(&w, path, host);
	if (err)
		return err;
	o.h.type = PT_REC_CONN_OPEN;
	o.h.size = sizeof(o);
	o.h.ts_ns = open_ts;
	o.h.conn_id = 7;
	o.role = PT_ROLE_SERVER;
	memset(d, 0, sizeof(buf));
	d->h.type = PT_REC_DATA;
	d->h.size = sizeof(*d) + ((len + 7) & ~7u);
	d->h.ts_ns = open_ts + off + 1;
	d->h.conn_id = 7;
	d->offset = off;
	d->len = d->cap_len = len;
	d->dir = PT_DIR_RX;
	memcpy(d->payload, bytes, len);
	err = pt_capw_add(w, &o.h, sizeof(o));
	if (!err)
		err = pt_capw_add(w, &d->h, d->h.size);
	if (err) {
		pt_capw_abort(w);
		return err;
	}
	return pt_capw_close(w);
}

static bool stream_is(struct pt_conn *c, const char *want)
{
	struct pt_assembled a;
	bool ok;

	if (pt_stream_assemble(c, PT_DIR_RX, &a))
		return false;
	ok = a.len == strlen(want) && !memcmp(a.buf, want, a.len) && !a.ngaps;
	pt_assembled_free(&a);
	return ok;
}

void test_agent_segments(void)
{
	char dir[] = "/tmp/podtap-segs.XXXXXX", p[4][PATH_MAX], cmd[PATH_MAX + 16];
	const char *paths[3];
	struct pt_capture cap;
	int i;

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	for (i = 0; i < 4; i++) {
		snprintf(p[i], sizeof(p[i]), "%s/%d.ptcap", dir, i);
		if (i < 3)
			paths[i] = p[i];
	}
	/* a connection across a rotation (its OPEN written again), then the
	 * same cookie seen anew by a recorder that restarted */
	ASSERT_OK(write_segment(p[0], "node-a", 100, 0, "abc"), "segment 0");
	ASSERT_OK(write_segment(p[1], "node-a", 100, 3, "def"), "segment 1");
	ASSERT_OK(write_segment(p[2], "node-a", 900, 0, "xyz"), "segment 2");
	ASSERT_OK(write_segment(p[3], "node-b", 100, 6, "ghi"), "other node");
	if (ASSERT_OK(pt_capture_load_many(&cap, paths, 3, false), "load 3")) {
		ASSERT_EQ(cap.conns.n, 2, "two connections: one across the rotation, one after the restart");
		ASSERT_EQ(cap.files, 3, "files read");
		if (cap.conns.n == 2) {
			ASSERT_TRUE(stream_is(cap.conns.v[0], "abcdef"), "rotation: bytes joined");
			ASSERT_TRUE(stream_is(cap.conns.v[1], "xyz"), "restart: a connection of its own");
		}
		pt_capture_free(&cap);
	}
	paths[1] = p[3];
	ASSERT_EQ(pt_capture_load_many(&cap, paths, 2, false), -EXDEV,
		  "segments of two nodes are refused");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ASSERT_OK(system(cmd), "cleanup");
}
