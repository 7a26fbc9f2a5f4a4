#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# podtap agent end to end: two agents (nodes "node-a" and "node-b" on this
# host) against a stand-in kube-apiserver (tests/peers/kube_standin.py: the
# list/watch/apply protocol as documented; there is no kube-apiserver in
# Debian), pods made of cgroups in the kubelet's layouts (systemd and
# cgroupfs drivers; containerd and CRI-O scopes) running real HTTP servers,
# RecordingSessions created, changed and deleted while curl talks to the
# pods. Checked: only the selected containers of the selected pods of each
# node are captured, byte for byte, into the right session's segments;
# segments reach a collector through failures; each node keeps its own
# status entry; a watch that expires (410) is relisted; duration and
# maxBytes end a session; the spool cap drops the oldest segments; TLS
# plaintext of a pod (python3 ssl) at the collector, including a client's
# read before its socket was known, and ciphertext only with tls: false;
# the example session in deploy/ is usable; /metrics;
# nothing is left behind. Needs root; ends with "e2e_agent: N passed, M failed".
set -u
cd "$(dirname "$0")/.."
PODTAP=$PWD/podtap
PY=/usr/bin/python3
TOKEN=podtap-test-token

if [ "$(id -u)" != 0 ]; then
	echo "e2e_agent: SKIP: needs root"
	echo "e2e_agent: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
. tests/lib.sh
CG2=$(cg2_root)
TMP=$(mktemp -d /tmp/podtap-agent.XXXXXX)
ROOT=$CG2/podtap-agent-$$
SERVERS=() AGENT_A= AGENT_B= STANDIN= COLLECTOR=
progs_before=$(bpftool prog show 2>/dev/null | grep -c ' name podtap_')

cleanup() {
	local p
	for p in $AGENT_A $AGENT_B; do
		kill -CONT "$p" 2>/dev/null
		kill -INT "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	for p in "${SERVERS[@]}" $STANDIN $COLLECTOR; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	[ -d "$ROOT" ] && find "$ROOT" -depth -type d -exec rmdir {} + 2>/dev/null
	[ -n "${KEEP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

wait_port() { # FILE: the port a peer wrote
	for _ in $(seq 100); do
		[ -s "$1" ] && { cat "$1"; return 0; }
		sleep 0.05
	done
	return 1
}

# wait_for SECONDS CMD...: until CMD succeeds
wait_for() {
	local t=$1 i
	shift
	for i in $(seq $((t * 10))); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

"$PY" tests/peers/kube_standin.py --port 0 --portfile "$TMP/kube.port" \
	--token "$TOKEN" --bookmark-interval 0.5 2> "$TMP/standin.log" &
STANDIN=$!
"$PY" tests/peers/collector.py --port 0 --portfile "$TMP/coll.port" \
	--dir "$TMP/collected" --fail-first 2 2> "$TMP/collector.log" &
COLLECTOR=$!
API=http://127.0.0.1:$(wait_port "$TMP/kube.port") || { echo "e2e_agent: the stand-in did not start"; exit 1; }
COLL=http://127.0.0.1:$(wait_port "$TMP/coll.port") || { echo "e2e_agent: the collector did not start"; exit 1; }
cat > "$TMP/kubeconfig" << EOF
apiVersion: v1
kind: Config
current-context: test
contexts:
- name: test
  context: {cluster: standin, user: agent}
clusters:
- name: standin
  cluster: {server: "$API"}
users:
- name: agent
  user: {token: $TOKEN}
EOF

kapi() { # METHOD PATH [BODY [CONTENT-TYPE]]
	curl -s -H "Authorization: Bearer $TOKEN" \
		-H "Content-Type: ${4:-application/json}" -X "$1" "$API$2" \
		${3:+--data-binary "$3"}
}
SESS=/apis/podtap.dev/v1alpha1/namespaces/shop/recordingsessions

# mkpod NS NAME NODE QOS LABELS-JSON CONTAINER:ID...: prints the pod's uid
mkpod() {
	local ns=$1 name=$2 node=$3 qos=$4 labels=$5 cs= c
	shift 5
	for c in "$@"; do
		cs="$cs${cs:+,}{\"name\":\"${c%%:*}\",\"containerID\":\"containerd://${c#*:}\",\"ready\":true}"
	done
	kapi POST "/api/v1/namespaces/$ns/pods" "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"$name\",\"labels\":$labels},\"spec\":{\"nodeName\":\"$node\"},\"status\":{\"phase\":\"Running\",\"qosClass\":\"$qos\",\"containerStatuses\":[$cs]}}" |
		"$PY" -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["uid"])'
}

# serve CGROUP PORT: an HTTP server in that cgroup, as a container would be
serve() {
	mkdir -p "$1"
	(echo $BASHPID > "$1/cgroup.procs" &&
	 exec "$PY" -m http.server "$2" --bind 127.0.0.1 --directory "$TMP/www") \
		> /dev/null 2>&1 &
	SERVERS+=($!)
	wait_for 5 curl -s -o /dev/null "http://127.0.0.1:$2/"
}

# field NAME NODE KEY: a field of that node's entry in a session's status
field() {
	kapi GET "$SESS/$1" | "$PY" -c '
import json, sys
o = json.load(sys.stdin)
for e in o.get("status", {}).get("perNode", []):
    if e["node"] == sys.argv[1]:
        print(e.get(sys.argv[2], "")); break
' "$2" "$3"
}
field_is() { [ "$(field "$1" "$2" "$3")" = "$4" ]; }

metric() { # PORT NAME{LABELS}
	curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'
}
metric_ge() { local v; v=$(metric "$1" "$2"); [ -n "$v" ] && [ "${v%.*}" -ge "$3" ]; }

# --- bad input: one line, non-zero, nothing started -----------------------
check "no kubeconfig outside a pod: one line" \
	one_line_error "give --kubeconfig" env -u KUBERNETES_SERVICE_HOST \
	"$PODTAP" agent --node x --spool "$TMP/bad"
check "a kubeconfig that is not there: one line" \
	one_line_error "--kubeconfig $TMP/nope" "$PODTAP" agent --kubeconfig "$TMP/nope" --spool "$TMP/bad"
printf 'apiVersion: v1\ncurrent-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: "https://h:6443"}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\n' > "$TMP/exec.kubeconfig"
check "a kubeconfig with an exec plugin: one line saying so" \
	one_line_error "exec or auth-provider" "$PODTAP" agent --kubeconfig "$TMP/exec.kubeconfig" --spool "$TMP/bad"
check "--collector that is not http(s): one line" \
	one_line_error "--collector ftp://x" "$PODTAP" agent --collector ftp://x
check "--segment-size too small: one line" \
	one_line_error "--segment-size 1" "$PODTAP" agent --segment-size 1
check "--tls-probes that is neither file nor process: one line" \
	one_line_error "--tls-probes all: want file or process" "$PODTAP" agent --tls-probes all

# --- the cluster: pods on two nodes -----------------------------------------
mkdir -p "$TMP/www"
head -c 307200 /dev/urandom > "$TMP/www/blob.bin"
echo small > "$TMP/www/small.txt"
PA=18611 PPROXY=18612 PWEB=18613 PB=18614 POTHER=18615 PECHO=18616
uid=$(mkpod shop api-1 node-a Burstable '{"app":"api"}' app:c0a1 proxy:c0a2)
u_=${uid//-/_}
serve "$ROOT/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$u_.slice/cri-containerd-c0a1.scope" $PA
serve "$ROOT/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$u_.slice/cri-containerd-c0a2.scope" $PPROXY
uid=$(mkpod shop web-1 node-a BestEffort '{"app":"web","tier":"front"}' web:c0b1)
serve "$ROOT/kubepods/besteffort/pod$uid/c0b1" $PWEB
uid=$(mkpod shop api-2 node-b Guaranteed '{"app":"api"}' app:c0c1)
serve "$ROOT/kubepods.slice/kubepods-pod${uid//-/_}.slice/crio-c0c1.scope" $PB
uid=$(mkpod shop cache-1 node-a Burstable '{"app":"cache"}' cache:c0e1)
cg="$ROOT/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid//-/_}.slice/cri-containerd-c0e1.scope"
mkdir -p "$cg"
(echo $BASHPID > "$cg/cgroup.procs" && exec "$PY" tests/peers/echo.py $PECHO) > /dev/null 2>&1 &
SERVERS+=($!)
uid=$(mkpod other api-9 node-a Burstable '{"app":"api"}' app:c0d1)
serve "$ROOT/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid//-/_}.slice/cri-containerd-c0d1.scope" $POTHER

MA=19471 MB=19472
"$PODTAP" agent --node node-a --kubeconfig "$TMP/kubeconfig" --cgroup-root "$ROOT" \
	--spool "$TMP/spool-a" --collector "$COLL" --segment-time 1s \
	--status-interval 1s --metrics 127.0.0.1:$MA 2> "$TMP/agent-a.log" &
AGENT_A=$!
"$PODTAP" agent --node node-b --kubeconfig "$TMP/kubeconfig" --cgroup-root "$ROOT" \
	--spool "$TMP/spool-b" --segment-size 8Ki --spool-max 40Ki \
	--status-interval 1s --metrics 127.0.0.1:$MB 2> "$TMP/agent-b.log" &
AGENT_B=$!
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ]; }
check "both agents ready once their watches have listed (no session yet)" \
	wait_for 20 eval "ready $MA && ready $MB"

kapi POST "$SESS" '{"apiVersion":"podtap.dev/v1alpha1","kind":"RecordingSession","metadata":{"name":"s1"},"spec":{"selector":{"matchLabels":{"app":"api"}},"containers":["app"]}}' > /dev/null
check "s1: node-a reports Recording, 1 pod, 1 target (the app container only)" \
	wait_for 10 eval 'field_is s1 node-a phase Recording && field_is s1 node-a pods 1 && field_is s1 node-a targets 1'
check "s1: node-b keeps its own entry beside it: Recording, 1 target" \
	wait_for 10 eval 'field_is s1 node-b phase Recording && field_is s1 node-b targets 1 && field_is s1 node-a phase Recording'

for i in 1 2 3; do curl -s -o "$TMP/got$i.bin" "http://127.0.0.1:$PA/blob.bin"; done
for i in 1 2; do
	curl -s -o /dev/null "http://127.0.0.1:$PPROXY/small.txt"
	curl -s -o /dev/null "http://127.0.0.1:$POTHER/small.txt"
	curl -s -o /dev/null "http://127.0.0.1:$PB/blob.bin"
done
curl -s -o /dev/null "http://127.0.0.1:$PWEB/small.txt"	# before s2 exists
check "curl got the blob whole (the peers work)" cmp -s "$TMP/got1.bin" "$TMP/www/blob.bin"

kapi POST "$SESS" '{"apiVersion":"podtap.dev/v1alpha1","kind":"RecordingSession","metadata":{"name":"s2"},"spec":{"selector":{"matchExpressions":[{"key":"app","operator":"In","values":["web","db"]}]}}}' > /dev/null
check "s2 (matchExpressions): node-a captures web-1 (cgroupfs layout)" \
	wait_for 10 field_is s2 node-a targets 1
for i in 1 2; do curl -s -o /dev/null "http://127.0.0.1:$PWEB/blob.bin"; done
check "s1 on node-a counts its 3 connections" wait_for 10 field_is s1 node-a connections 3
check "s1 on node-b counts its 2 connections" wait_for 10 field_is s1 node-b connections 2
check "s2 counts 2 connections (not the one before it existed)" wait_for 10 field_is s2 node-a connections 2

"$PODTAP" status > "$TMP/status.txt" 2>&1
check "podtap status names each target's session and pod" \
	eval "grep -qE 'session [0-9]+ +\\(shop/s1\\) shop/api-1/app ' '$TMP/status.txt' && grep -qE '\\(shop/s2\\) shop/web-1/web ' '$TMP/status.txt'"
check "podtap status --json: session_name and what for the agent's targets" \
	eval "'$PODTAP' status --json | '$PY' -c '
import json, sys
seen = {(t[\"session_name\"], t[\"what\"]) for line in sys.stdin for r in [json.loads(line)] for i in (r if isinstance(r, list) else r.get(\"recorders\", [r])) for t in i.get(\"targets\", [])}
sys.exit(0 if (\"shop/s1\", \"shop/api-1/app\") in seen and (\"shop/s2\", \"shop/web-1/web\") in seen else 1)'"

# --- segments at the collector (it refused the first two uploads) ----------
check "node-a's segments reach the collector; its queue drains" \
	wait_for 20 eval "metric_ge $MA podtap_uploaded_segments_total 2 && [ \"\$(metric $MA podtap_upload_queue_segments)\" = 0 ]"
check "the collector's refusals were retried" metric_ge $MA podtap_upload_failures_total 2
check "uploaded segments are removed from the spool" \
	[ -z "$(find "$TMP/spool-a" -name '*.ptcap')" ]

# conns_of DIR: "role lport rport rx-head tx-sha" per connection of the
# segments in DIR, read together
conns_of() {
	local segs
	segs=$(ls "$1"/*.ptcap 2>/dev/null | sort)
	[ -n "$segs" ] || return 0
	# shellcheck disable=SC2086
	"$PODTAP" read --json --dump $segs | "$PY" -c '
import base64, hashlib, json, sys
for line in sys.stdin:
    c = json.loads(line)
    rx = base64.b64decode(c["payload"]["rx"])
    tx = base64.b64decode(c["payload"]["tx"])
    print(c["role"], c["local"].rsplit(":", 1)[1],
          rx[:13].decode("latin-1").replace(" ", "_"),
          hashlib.sha256(tx.split(b"\r\n\r\n", 1)[-1]).hexdigest()[:16], len(tx))
'
}
BLOB_SHA=$(sha256sum "$TMP/www/blob.bin" | cut -c1-16)
conns_of "$TMP/collected/shop/s1" > "$TMP/s1.conns"
check "s1 at the collector: exactly the 3 connections to the app container" \
	[ "$(awk -v p=$PA '$2 == p' "$TMP/s1.conns" | wc -l)" = 3 -a "$(wc -l < "$TMP/s1.conns")" = 3 ]
check "s1: each response body is the blob byte for byte, each request GET /blob.bin" \
	[ "$(awk -v s="$BLOB_SHA" '$1 == "server" && $3 == "GET_/blob.bin" && $4 == s' "$TMP/s1.conns" | wc -l)" = 3 ]
conns_of "$TMP/collected/shop/s2" > "$TMP/s2.conns"
check "s2 at the collector: the 2 connections to web-1 after it began, bodies exact" \
	[ "$(awk -v p=$PWEB -v s="$BLOB_SHA" '$2 == p && $4 == s' "$TMP/s2.conns" | wc -l)" = 2 -a "$(wc -l < "$TMP/s2.conns")" = 2 ]
check "nothing of the proxy container, the other namespace or node-b's pod at node-a's collector" \
	[ -z "$(awk -v a=$PA -v w=$PWEB '$2 != a && $2 != w' "$TMP/s1.conns" "$TMP/s2.conns")" ]

# --- node-b: segments stay in its spool, capped ------------------------------
check "node-b: over --spool-max, the oldest closed segments were dropped" \
	wait_for 10 metric_ge $MB podtap_spool_dropped_segments_total 1
check "node-b: the spool stays within the cap and one open segment" \
	[ "$(metric $MB podtap_spool_bytes)" -le $((40 * 1024 + 8 * 1024 + 40960)) ]
kill -INT $AGENT_B; wait $AGENT_B; rc=$?; AGENT_B=
check "node-b: SIGINT ends the agent with 0" [ $rc = 0 ]
check "node-b: no segment left open (.part) after it stopped" \
	[ -z "$(find "$TMP/spool-b" -name '*.part')" ]
conns_of "$TMP/spool-b/shop/s1" > "$TMP/b.conns"
check "node-b's segments hold only its own pod's connections" \
	[ -s "$TMP/b.conns" -a "$(awk -v p=$PB '$2 != p' "$TMP/b.conns" | wc -l)" = 0 ]
check "node-b's last status says it stopped" \
	wait_for 5 eval 'field s1 node-b message | grep -q "agent stopped"'

# --- changes: labels, a watch that expires, deletion ------------------------
kapi PATCH /api/v1/namespaces/shop/pods/api-1 '{"metadata":{"labels":{"app":"old"}}}' application/merge-patch+json > /dev/null
check "a pod relabelled out of s1 is no longer captured (Pending, 0 targets)" \
	wait_for 10 eval 'field_is s1 node-a targets 0 && field_is s1 node-a phase Pending'
lists=$(metric $MA 'podtap_apiserver_lists_total{resource="pods"}')
# Stopped, the agent cannot watch again before the change and the
# compaction: it comes back with a resourceVersion the server has dropped.
kill -STOP $AGENT_A
curl -s -X POST "$API/standin/close-watches" > /dev/null
kapi PATCH /api/v1/namespaces/shop/pods/api-1 '{"metadata":{"labels":{"app":"api"}}}' application/merge-patch+json > /dev/null
curl -s -X POST "$API/standin/compact" > /dev/null
kill -CONT $AGENT_A
check "a watch resumed from a compacted resourceVersion gets 410 and relists" \
	wait_for 10 eval "metric_ge $MA 'podtap_apiserver_watch_expired_total{resource=\"pods\"}' 1 && metric_ge $MA 'podtap_apiserver_lists_total{resource=\"pods\"}' $((lists + 1))"
check "after the relist the change missed while stopped is there: s1 captures again" \
	wait_for 10 field_is s1 node-a targets 1

kapi DELETE "$SESS/s2" > /dev/null
check "s2 deleted: its target is dropped" \
	wait_for 10 eval "[ \"\$(metric $MA 'podtap_sessions{state=\"known\"}')\" = 1 ]"
check "s2 deleted: no open segment left for it" \
	[ -z "$(find "$TMP/spool-a/shop/s2" -name '*.part' 2>/dev/null)" ]

# --- limits: duration, maxBytes; a spec that cannot be used -----------------
kapi POST "$SESS" '{"apiVersion":"podtap.dev/v1alpha1","kind":"RecordingSession","metadata":{"name":"brief"},"spec":{"selector":{"matchLabels":{"app":"web"}},"duration":"3s"}}' > /dev/null
check "duration 3s: Recording, then Done with 'duration reached'" \
	eval 'wait_for 10 field_is brief node-a phase Recording && wait_for 10 field_is brief node-a phase Done && field_is brief node-a message "duration reached" && field_is brief node-a targets 0'
kapi POST "$SESS" '{"apiVersion":"podtap.dev/v1alpha1","kind":"RecordingSession","metadata":{"name":"capped"},"spec":{"selector":{"matchLabels":{"tier":"front"}},"maxBytes":"20Ki"}}' > /dev/null
wait_for 10 field_is capped node-a targets 1
curl -s -o /dev/null "http://127.0.0.1:$PWEB/blob.bin"
check "maxBytes 20Ki: Done once 20 KiB were captured" \
	eval 'wait_for 10 field_is capped node-a phase Done && field capped node-a message | grep -q maxBytes'
b1=$(field capped node-a bytes)
curl -s -o /dev/null "http://127.0.0.1:$PWEB/blob.bin"
sleep 1.5
check "maxBytes: nothing more is captured after it ($b1 bytes)" \
	[ "$(field capped node-a bytes)" = "$b1" ]
kapi POST "$SESS" '{"apiVersion":"podtap.dev/v1alpha1","kind":"RecordingSession","metadata":{"name":"broken"},"spec":{"selector":{},"duration":"soon"}}' > /dev/null
check "a spec the agent cannot use: Failed, and the message says which field" \
	eval 'wait_for 10 field_is broken node-a phase Failed && field broken node-a message | grep -q "spec.duration"'

# --- a connection open while its container changes session -----------------
mksess() { # NAME SELECTOR-JSON
	kapi POST "$SESS" "{\"apiVersion\":\"podtap.dev/v1alpha1\",\"kind\":\"RecordingSession\",\"metadata\":{\"name\":\"$1\"},\"spec\":{\"selector\":$2}}" > /dev/null
}
mksess t1 '{"matchLabels":{"app":"cache"}}'
wait_for 10 field_is t1 node-a targets 1
cat > "$TMP/echo_client.py" << 'EOF'
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"first"); print(s.recv(100))
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
s.sendall(b"second"); print(s.recv(100))
s.close()
EOF
"$PY" "$TMP/echo_client.py" $PECHO "$TMP/go" > "$TMP/echo-client.out" 2>&1 &
ECHO_CLIENT=$!
wait_for 10 field_is t1 node-a connections 1
kapi DELETE "$SESS/t1" > /dev/null
mksess t2 '{"matchExpressions":[{"key":"app","operator":"Exists"},{"key":"app","operator":"In","values":["cache"]}]}'
wait_for 10 field_is t2 node-a targets 1
touch "$TMP/go"
wait $ECHO_CLIENT
check "a connection open before t2 took its container over is counted in t2" \
	wait_for 10 field_is t2 node-a connections 1
sleep 2.5	# the segment that holds the close is closed and uploaded
check "t2 holds the bytes after the takeover (\"second\" and its echo), marked as older than t2" \
	eval "'$PODTAP' read --json --dump \$(ls '$TMP/collected/shop/t2/'*.ptcap | sort) | '$PY' -c '
import base64, json, sys
c = [json.loads(l) for l in sys.stdin]
rx = base64.b64decode(c[0][\"payload\"][\"rx\"]); tx = base64.b64decode(c[0][\"payload\"][\"tx\"])
sys.exit(0 if len(c) == 1 and c[0][\"preexisting\"] and rx.endswith(b\"second\") and tx.endswith(b\"second+\") else 1)'"

# --- TLS: plaintext from the pod's library calls, unless tls: false ----------
PTLS=18617
self_signed "$TMP"
uid=$(mkpod shop secure-1 node-a Burstable '{"app":"secure"}' app:c0f1)
cg="$ROOT/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid//-/_}.slice/cri-containerd-c0f1.scope"
mkdir -p "$cg"
(echo $BASHPID > "$cg/cgroup.procs" &&
	exec "$PY" tests/peers/tls_server.py $PTLS "$TMP/cert.pem" "$TMP/key.pem") > /dev/null 2>&1 &
TLS_SRV=$!
SERVERS+=($TLS_SRV)
wait_for 5 curl -sk -o /dev/null "https://127.0.0.1:$PTLS/n/1"
# a client in the pod whose TLS connection is older than the session and
# reads first: its plaintext has no socket until it writes (a
# pseudo-connection, routed by its session, then joined)
cat > "$TMP/push.py" << 'EOF'
import os, socket, ssl, sys, time
port, flag, out = int(sys.argv[2]), sys.argv[3], sys.argv[4]
if sys.argv[1] == "server":	# outside the targets: pushes until told
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[5], sys.argv[6])
    ls = socket.create_server(("127.0.0.1", port))
    open(out + ".ready", "w").write("1")
    c = ctx.wrap_socket(ls.accept()[0], server_side=True)
    i = 0
    while not os.path.exists(flag):
        c.sendall(b"push %d\n" % i); i += 1; time.sleep(0.1)
    c.sendall(b"last push\n")
    c.recv(100); c.close()
else:	# the client, in the pod: reads until the last push, then writes
    s = ssl._create_unverified_context().wrap_socket(socket.create_connection(("127.0.0.1", port)))
    open(out + ".local", "w").write("%s:%d" % s.getsockname())
    got = b""
    while not got.endswith(b"last push\n"):
        got += s.recv(100)
    s.sendall(b"bye"); s.close()
    open(out, "wb").write(got)
EOF
PPUSH=18618
"$PY" "$TMP/push.py" server $PPUSH "$TMP/push.stop" "$TMP/push.out" "$TMP/cert.pem" "$TMP/key.pem" &
PUSH_SRV=$!
wait_for 5 test -s "$TMP/push.out.ready"
(echo $BASHPID > "$cg/cgroup.procs" &&
	exec "$PY" "$TMP/push.py" client $PPUSH "$TMP/push.stop" "$TMP/push.out") &
PUSH=$!
wait_for 5 test -s "$TMP/push.out.local"
mksess tls1 '{"matchLabels":{"app":"secure"}}'
check "tls1 (tls absent: on): the pod's libssl is hooked" \
	wait_for 10 grep -q "TLS: pid $TLS_SRV (python3) uses .*libssl.so.3 (OpenSSL 3\.[^)]*): its SSL_read and SSL_write calls are hooked" "$TMP/agent-a.log"
curl -sk --http1.1 -o "$TMP/tls1.out" "https://127.0.0.1:$PTLS/n/5000"
check "tls1: node-a's status entry counts the pod's TLS processes, all hooked" \
	wait_for 10 eval "kapi GET '$SESS/tls1' | '$PY' -c '
import json, sys
for e in json.load(sys.stdin).get(\"status\", {}).get(\"perNode\", []):
    t = e.get(\"tls\", {})
    if e[\"node\"] == \"node-a\" and t.get(\"processes\", 0) >= 2 and t[\"hooked\"] == t[\"processes\"] and \"notHooked\" not in t:
        sys.exit(0)
sys.exit(1)'"
sleep 0.5	# some pushes read with the hooks in place
touch "$TMP/push.stop"
wait $PUSH $PUSH_SRV
check "tls1: the plaintext reaches the collector as an HTTP/1 exchange" \
	wait_for 10 eval "ls '$TMP/collected/shop/tls1/'*.ptcap > /dev/null 2>&1 &&
		'$PODTAP' read \$(ls '$TMP/collected/shop/tls1/'*.ptcap | sort) > '$TMP/tls1.read' &&
		grep -q 'GET https://127.0.0.1:$PTLS/n/5000 -> 200 OK .* resp body 5000 B' '$TMP/tls1.read'"
check "tls1: the segments name the pod's TLS library" \
	grep -q "^# TLS: pid $TLS_SRV (python3) uses .*libssl.so.3 (OpenSSL 3\.[^)]*): hooked$" "$TMP/tls1.read"
# shellcheck disable=SC2046
"$PODTAP" export -f jsonl -o "$TMP/tls1.jsonl" $(ls "$TMP/collected/shop/tls1/"*.ptcap | sort) 2> /dev/null
check "tls1: its response body is what curl got, byte for byte" "$PY" - "$TMP" << 'EOF'
import base64, json, sys
got = open(sys.argv[1] + "/tls1.out", "rb").read()
for l in open(sys.argv[1] + "/tls1.jsonl"):
    x = json.loads(l)
    r = x.get("response") or {}
    b = base64.b64decode(r["body"]) if r.get("body_encoding") == "base64" else r.get("body", "").encode()
    if x.get("request", {}).get("target") == "/n/5000" and b == got and len(got) == 5000:
        sys.exit(0)
sys.exit(1)
EOF
cat > "$TMP/joined.py" << 'EOF'
import glob, json, subprocess, sys
tmp, podtap, server = sys.argv[1], sys.argv[2], "127.0.0.1:" + sys.argv[3]
segs = sorted(glob.glob(tmp + "/collected/shop/tls1/*.ptcap"))
local = open(tmp + "/push.out.local").read()
got = open(tmp + "/push.out", "rb").read()
out = subprocess.run([podtap, "read", "--json"] + segs, capture_output=True, check=True).stdout
for l in out.splitlines():
    c = json.loads(l)
    if c["local"] != local or c["remote"] != server:
        continue
    rx = "".join(t["data"] for x in c["exchanges"] for t in x["turns"] if t["from"] == "server").encode()
    # what was read with the hooks in place: a tail of what the client got
    ok = c.get("tls_socket_known") and rx.endswith(b"last push\n") and got.endswith(rx) and \
        b"push " in rx[:-len(b"last push\n")]
    sys.exit(0 if ok else 1)
sys.exit(1)
EOF
check "tls1: the client that read before it wrote: its plaintext joined to its socket" \
	wait_for 10 "$PY" "$TMP/joined.py" "$TMP" "$PODTAP" $PPUSH
kapi DELETE "$SESS/tls1" > /dev/null
kapi POST "$SESS" '{"apiVersion":"podtap.dev/v1alpha1","kind":"RecordingSession","metadata":{"name":"tls2"},"spec":{"selector":{"matchLabels":{"app":"secure"}},"tls":false}}' > /dev/null
wait_for 10 field_is tls2 node-a targets 1
curl -sk --http1.1 -o /dev/null "https://127.0.0.1:$PTLS/n/6000"
check "tls2 (tls: false): the same pod's TLS is recorded as ciphertext only" \
	wait_for 10 eval "ls '$TMP/collected/shop/tls2/'*.ptcap > /dev/null 2>&1 &&
		'$PODTAP' read \$(ls '$TMP/collected/shop/tls2/'*.ptcap | sort) > '$TMP/tls2.read' &&
		grep -qE ' tls +[0-9]' '$TMP/tls2.read' && ! grep -q 'tls:http1' '$TMP/tls2.read'"
kapi DELETE "$SESS/tls2" > /dev/null

# --- the agent restarts: what it counted goes on -----------------------------
n1=$(field s1 node-a connections)
kill -INT $AGENT_A; wait $AGENT_A; AGENT_A=
"$PODTAP" agent --node node-a --kubeconfig "$TMP/kubeconfig" --cgroup-root "$ROOT" \
	--spool "$TMP/spool-a" --collector "$COLL" --segment-time 1s \
	--status-interval 1s --metrics 127.0.0.1:$MA 2>> "$TMP/agent-a.log" &
AGENT_A=$!
wait_for 20 ready $MA
check "after a restart, a session that reached maxBytes stays Done" \
	wait_for 10 eval 'field_is capped node-a phase Done && field capped node-a message | grep -q maxBytes'
curl -s -o /dev/null "http://127.0.0.1:$PA/small.txt"
check "after a restart, s1's connections count on from $n1" \
	wait_for 10 field_is s1 node-a connections $((n1 + 1))

# --- the example in deploy/ is a session the agent takes as it is -----------
known=$(metric $MA 'podtap_sessions{state="known"}')
kapi POST "$SESS" "$("$PY" -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' deploy/example-session.yaml)" > /dev/null
known_is() { [ "$(metric $MA 'podtap_sessions{state="known"}')" = "$1" ]; }
example_ok() {
	wait_for 10 known_is $((known + 1)) && sleep 1.5 &&
		[ -z "$(field checkout node-a phase)" ] &&
		! grep -q 'shop/checkout:.*spec' "$TMP/agent-a.log"
}
check "deploy/example-session.yaml: known to the agent, its spec usable (no Failed entry: it selects nothing here)" \
	example_ok

# --- /metrics, then stop ------------------------------------------------------

curl -s "http://127.0.0.1:$MA/metrics" > "$TMP/m.txt"
check "/metrics: HELP and TYPE for every metric; sessions, spool, upload queue there" \
	"$PY" - "$TMP/m.txt" << 'EOF'
import re, sys
helps, types, names = set(), set(), set()
for line in open(sys.argv[1]):
    if line.startswith("# HELP "): helps.add(line.split()[2])
    elif line.startswith("# TYPE "): types.add(line.split()[2])
    elif line.strip():
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)\n?', line)
        if not m: sys.exit("not a sample: %r" % line)
        names.add(m.group(1))
missing = names - helps | names - types
if missing: sys.exit("no HELP/TYPE: %s" % missing)
for n in ("podtap_sessions", "podtap_spool_bytes", "podtap_upload_queue_segments",
          "podtap_upload_queue_bytes", "podtap_connections_tracked",
          "podtap_program_runs_total", "podtap_apiserver_lists_total"):
    if n not in names: sys.exit("missing " + n)
EOF
kill -INT $AGENT_A; wait $AGENT_A; rc=$?; AGENT_A=
check "node-a: SIGINT ends the agent with 0" [ $rc = 0 ]
check "node-a: every segment uploaded or kept whole, none open" \
	[ -z "$(find "$TMP/spool-a" -name '*.part')" ]
check "no podtap program left loaded" \
	[ "$(bpftool prog show 2>/dev/null | grep -c ' name podtap_')" = "$progs_before" ]
if [ $fail != 0 ]; then
	echo "--- connections of s1, s2"; cat "$TMP/s1.conns" "$TMP/s2.conns"
	echo "--- agent-a log"; tail -20 "$TMP/agent-a.log"
	echo "--- agent-b log"; tail -20 "$TMP/agent-b.log"
fi
echo "e2e_agent: $pass passed, $fail failed"
[ $fail = 0 ]
