#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Self-test of the test peers kube_standin.py and collector.py, with curl
# and python3. Prints "ok - ..." or "FAIL - ..." per check and then
# "standin: N passed, M failed"; exits non-zero when a check failed.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
TOKEN=s3cret
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

pass=0
fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
notok() { echo "FAIL - $1"; fail=$((fail + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d"; fi; }
# same WHAT WANT GOT
same() {
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (want '$2', got '$3')"; fi
}

# wait_port FILE: the port a peer wrote to FILE, once it is there.
wait_port() {
	local _
	for _ in $(seq 100); do
		[ -s "$1" ] && { cat "$1"; return 0; }
		sleep 0.05
	done
	return 1
}

python3 "$HERE/kube_standin.py" --port 0 --portfile "$T/kube.port" \
	--token "$TOKEN" --bookmark-interval 0.3 &
KUBE_PID=$!
PIDS+=("$KUBE_PID")
python3 "$HERE/collector.py" --port 0 --portfile "$T/coll.port" \
	--dir "$T/segments" --fail-first 1 &
COLL_PID=$!
PIDS+=("$COLL_PID")
K=http://127.0.0.1:$(wait_port "$T/kube.port") || { echo "standin: no port"; exit 1; }
C=http://127.0.0.1:$(wait_port "$T/coll.port") || { echo "standin: no port"; exit 1; }
PODS=/api/v1/namespaces/default/pods
RS=/apis/podtap.dev/v1alpha1/namespaces/default/recordingsessions

# req METHOD PATH [CONTENT_TYPE BODY]: a stand-in request with the token;
# sets CODE and BODY.
req() {
	local args=(-s -o "$T/body" -w '%{http_code}' -X "$1"
		-H "Authorization: Bearer $TOKEN")
	[ $# -ge 4 ] && args+=(-H "Content-Type: $3" --data-binary "$4")
	CODE=$(curl "${args[@]}" "$K$2")
	BODY=$(cat "$T/body")
}
# js EXPR: EXPR evaluated on BODY parsed as JSON (as d); a tuple is
# printed space-separated.
js() {
	python3 -c '
import json, sys
d = json.loads(sys.argv[2])
r = eval(sys.argv[1])
print(" ".join(map(str, r)) if isinstance(r, tuple) else r)' "$1" "$BODY" 2>/dev/null
}
# events FILE: a watch's output as "TYPE name-or-code" lines.
events() {
	python3 - "$1" << 'EOF'
import json, sys
for line in open(sys.argv[1]):
    if line.strip():
        e = json.loads(line)
        meta = e["object"].get("metadata", {})
        print(e["type"], meta.get("name") or e["object"].get("code") or "-")
EOF
}
# watch_bg OUT PATH_AND_QUERY: a watch in the background, output to OUT.
watch_bg() {
	curl -sN --max-time 6 -H "Authorization: Bearer $TOKEN" "$K$2" > "$1" &
}
pod() { # pod NAME NODE [LABELS_JSON]
	local labels=${3-}
	printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s","labels":%s},"spec":{"nodeName":"%s"}}' \
		"$1" "${labels:-"{}"}" "$2"
}

# --- create, get, list ---------------------------------------------------
req POST "$PODS" application/json "$(pod web-1 node-a '{"app":"web"}')"
same "create pod answers 201" 201 "$CODE"
same "created pod has uid, rv and kind" "True True Pod" \
	"$(js 'len(d["metadata"]["uid"]) == 36, d["metadata"]["resourceVersion"].isdigit(), d["kind"]')"
req POST "$RS" application/json '{"apiVersion":"podtap.dev/v1alpha1","kind":"RecordingSession","metadata":{"name":"s1"},"spec":{"selector":{"app":"web"}},"status":{"ignored":true}}'
same "create session answers 201" 201 "$CODE"
same "a session's status is not set on create" None "$(js 'd.get("status")')"
req POST "$PODS" application/json "$(pod web-1 node-a)"
same "create of an existing name is 409 AlreadyExists" "409 AlreadyExists" \
	"$CODE $(js 'd["reason"]')"
req GET "$PODS/nope"
same "get of a missing pod is a 404 Status" "404 Status NotFound" \
	"$CODE $(js 'd["kind"], d["reason"]')"

for p in web-2:node-b db-1:node-a db-2:node-b; do
	req POST "$PODS" application/json "$(pod "${p%%:*}" "${p#*:}" '{"app":"x"}')"
done
req GET "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a"
same "list with fieldSelector spec.nodeName=node-a" "PodList db-1 web-1" \
	"$(js '" ".join([d["kind"]] + [i["metadata"]["name"] for i in d["items"]])')"
req GET "/api/v1/pods?fieldSelector=spec.nodeName!%3Dnode-a,metadata.namespace%3Ddefault"
same "list with != and two fieldSelector terms" "db-2 web-2" \
	"$(js '" ".join(i["metadata"]["name"] for i in d["items"])')"
req GET "/api/v1/pods?fieldSelector=spec.bogus%3Dx"
same "unknown fieldSelector field is 400 BadRequest" "400 BadRequest" \
	"$CODE $(js 'd["reason"]')"
req GET "$PODS?labelSelector=app%3Dweb"
same "list with labelSelector app=web" "web-1" \
	"$(js '" ".join(i["metadata"]["name"] for i in d["items"])')"
req GET "$PODS?labelSelector=app"
same "labelSelector existence" 4 "$(js 'len(d["items"])')"

# --- pagination --------------------------------------------------------------
req GET "$PODS?limit=3"
page1=$(js '" ".join(i["metadata"]["name"] for i in d["items"])')
cont=$(js 'd["metadata"].get("continue", "")')
list_rv=$(js 'd["metadata"]["resourceVersion"]')
same "first page has 3 sorted items" "db-1 db-2 web-1" "$page1"
check "first page has a continue token" test -n "$cont"
req POST "$PODS" application/json "$(pod zz-late node-a)"
req GET "$PODS?limit=3&continue=$cont"
same "second page: the rest, from the first page's snapshot" "web-2 $list_rv" \
	"$(js '" ".join(i["metadata"]["name"] for i in d["items"]) + " " + d["metadata"]["resourceVersion"]')"
same "last page has no continue" "" "$(js 'd["metadata"].get("continue", "")')"
req DELETE "$PODS/zz-late"

# --- watch: ADDED, MODIFIED, DELETED, BOOKMARK --------------------------------
req GET "$PODS"
rv0=$(js 'd["metadata"]["resourceVersion"]')
watch_bg "$T/w1" "$PODS?watch=1&resourceVersion=$rv0&allowWatchBookmarks=true&timeoutSeconds=3"
W1=$!
watch_bg "$T/w2" "/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dnode-a&timeoutSeconds=3"
W2=$!
sleep 0.3
req POST "$PODS" application/json "$(pod w-1 node-a)"
req PATCH "$PODS/w-1" application/merge-patch+json '{"metadata":{"labels":{"x":"y"}}}'
same "merge patch answers 200 with the label" "200 y" "$CODE $(js 'd["metadata"]["labels"]["x"]')"
req PATCH "$PODS/w-1" application/merge-patch+json '{"metadata":{"labels":{"x":"y"}}}'
same "a patch that changes nothing keeps the resourceVersion" \
	"$(js 'd["metadata"]["resourceVersion"]')" "$(req GET "$PODS/w-1"; js 'd["metadata"]["resourceVersion"]')"
# web-1 moves from node-a to node-b: node-a's watch sees it DELETED
req PATCH "$PODS/web-1" application/merge-patch+json '{"spec":{"nodeName":"node-b"}}'
same "patching spec bumps generation" 2 "$(js 'd["metadata"]["generation"]')"
req DELETE "$PODS/w-1"
same "delete answers 200 with the object" "200 w-1" "$CODE $(js 'd["metadata"]["name"]')"
req DELETE "$PODS/w-1"
same "delete of a missing pod is 404" 404 "$CODE"
wait "$W1"
same "watch ends cleanly at timeoutSeconds" 0 $?
wait "$W2"
ev1=$(events "$T/w1" | grep -v BOOKMARK | tr '\n' ',')
same "watch from an RV sees ADDED, MODIFIED, DELETED in order" \
	"ADDED w-1,MODIFIED w-1,MODIFIED web-1,DELETED w-1," "$ev1"
check "watch sends BOOKMARKs while idle" grep -q '"type":"BOOKMARK"' "$T/w1"
check "bookmarks carry the current resourceVersion" python3 -c '
import json, sys
rvs = [int(json.loads(l)["object"]["metadata"]["resourceVersion"]) for l in open(sys.argv[1])]
sys.exit(rvs != sorted(rvs))' "$T/w1"
ev2=$(events "$T/w2" | tr '\n' ',')
same "node-a watch: initial ADDED, then a pod leaving node-a is DELETED" \
	"ADDED db-1,ADDED web-1,ADDED w-1,MODIFIED w-1,DELETED web-1,DELETED w-1," "$ev2"
check "a DELETED for a pod that left carries the old node and the new RV" python3 -c '
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
d = [e for e in ev if e["type"] == "DELETED" and e["object"]["metadata"]["name"] == "web-1"][0]["object"]
m = [e for e in ev if e["type"] == "MODIFIED"][-1]["object"]
sys.exit(not (d["spec"]["nodeName"] == "node-a" and int(d["metadata"]["resourceVersion"]) > int(m["metadata"]["resourceVersion"])))' "$T/w2"

# --- compaction: 410 Expired as an ERROR event --------------------------------
req GET "$PODS"
old_rv=$(js 'd["metadata"]["resourceVersion"]')
req POST "$PODS" application/json "$(pod after-rv node-a)"
curl -s -XPOST "$K/standin/compact" > /dev/null
curl -sN --max-time 3 -H "Authorization: Bearer $TOKEN" \
	"$K$PODS?watch=1&resourceVersion=$old_rv" > "$T/w3"
same "watch from before compaction ends after one ERROR 410 Expired" \
	"ERROR 410 Expired" \
	"$(python3 -c 'import json, sys; e = [json.loads(l) for l in open(sys.argv[1])]; print(len(e) == 1 and e[0]["type"], e[0]["object"]["code"], e[0]["object"]["reason"])' "$T/w3")"
req GET "$PODS"
watch_bg "$T/w4" "$PODS?watch=1&resourceVersion=$(js 'd["metadata"]["resourceVersion"]')"
W4=$!
sleep 0.3
curl -s -XPOST "$K/standin/close-watches" > /dev/null
wait "$W4"
same "close-watches ends an open watch cleanly" 0 $?

# --- status: server-side apply -------------------------------------------------
apply() { # apply MANAGER BODY [QUERY_EXTRA]
	req PATCH "$RS/s1/status?fieldManager=$1${3:-}" application/apply-patch+yaml "$2"
}
ssa() { # ssa NODE...: an apply body with a perNode entry for each NODE
	local n entries=
	for n in "$@"; do
		entries+="${entries:+,}{\"node\":\"$n\",\"state\":\"Recording\",\"bytes\":1}"
	done
	printf '{"apiVersion":"podtap.dev/v1alpha1","kind":"RecordingSession","metadata":{"name":"s1"},"status":{"perNode":[%s]}}' "$entries"
}
req GET "$RS"
rv5=$(js 'd["metadata"]["resourceVersion"]')
apply agent-b "$(ssa b)"
same "apply by agent-b answers 200" 200 "$CODE"
apply agent-a "$(ssa a)"
same "applies from two managers keep both entries, sorted" "a b" \
	"$(js '" ".join(e["node"] for e in d["status"]["perNode"])')"
apply agent-a '{"apiVersion":"podtap.dev/v1alpha1","kind":"RecordingSession","metadata":{"name":"s1"},"status":{"perNode":[{"node":"a","state":"Stopped"}]}}'
same "a re-apply replaces the manager's entry" "Stopped None" \
	"$(js 'd["status"]["perNode"][0]["state"], d["status"]["perNode"][0].get("bytes")')"
apply agent-a '{"apiVersion":"podtap.dev/v1alpha1","kind":"RecordingSession","metadata":{"name":"s1"},"spec":{"changed":1},"status":{"perNode":[]}}'
same "a re-apply without its entry removes it, leaves the other's" "b" \
	"$(js '" ".join(e["node"] for e in d["status"]["perNode"])')"
same "spec in a status apply is ignored" "None" "$(js 'd["spec"].get("changed")')"
b2=$(ssa b)
b2=${b2/'"bytes":1'/'"bytes":2'}
apply agent-a "$b2"
same "applying another manager's entry differently is 409 Conflict" \
	"409 Conflict" "$CODE $(js 'd["reason"]')"
apply agent-a "$b2" "&force=true"
same "force=true takes it over" "200 2" "$CODE $(js 'd["status"]["perNode"][0]["bytes"]')"
apply agent-b "$(ssa)"
same "so the former owner's omission leaves it" "b" \
	"$(js '" ".join(e["node"] for e in d["status"]["perNode"])')"
apply agent-b "$(ssa c)"
apply agent-c "$(ssa c)"
apply agent-b "$(ssa)"
same "an entry applied alike by two managers is shared: one leaving keeps it" \
	"b c" "$(js '" ".join(e["node"] for e in d["status"]["perNode"])')"
req PATCH "$RS/s1/status" application/apply-patch+yaml "$(ssa a)"
same "apply without fieldManager is 400 BadRequest" "400 BadRequest" \
	"$CODE $(js 'd["reason"]')"
apply agent-a 'status: {perNode: []}'
same "a YAML (not JSON) apply body is 415" 415 "$CODE"
cond() { # cond MANAGER TYPE: an apply of one condition
	apply "$1" "{\"apiVersion\":\"podtap.dev/v1alpha1\",\"kind\":\"RecordingSession\",\"status\":{\"conditions\":[{\"type\":\"$2\",\"status\":\"True\"}]}}"
}
cond ctl Ready
cond other Degraded
same "conditions are a list-map by type too (as deploy/crd.yaml says)" \
	"Degraded Ready b c" \
	"$(js '" ".join([c["type"] for c in d["status"]["conditions"]] + [e["node"] for e in d["status"]["perNode"]])')"
req PATCH "$RS/s1/status" application/merge-patch+json '{"status":{"phase":"Running"},"spec":{"x":1}}'
same "merge patch on /status changes status only" "Running None" \
	"$(js 'd["status"]["phase"], d["spec"].get("x")')"
req PATCH "$RS/s1" application/merge-patch+json '{"status":{"phase":"Lost"}}'
same "merge patch on the session itself leaves status alone" "Running" \
	"$(js 'd["status"]["phase"]')"
curl -sN --max-time 3 -H "Authorization: Bearer $TOKEN" \
	"$K$RS?watch=1&resourceVersion=$rv5&timeoutSeconds=0.5" > "$T/w5"
same "a session watch from before replays each change once" "MODIFIED,MODIFIED,MODIFIED,MODIFIED,MODIFIED,MODIFIED,MODIFIED,MODIFIED,MODIFIED," \
	"$(events "$T/w5" | cut -d' ' -f1 | tr '\n' ',')"

# --- replace, conflicts, auth, controls --------------------------------------
req GET "$PODS/db-1"
stale=$BODY
req PUT "$PODS/db-1" application/json "${stale/'"node-a"'/'"node-c"'}"
same "PUT with the current resourceVersion answers 200" "200 node-c" \
	"$CODE $(js 'd["spec"]["nodeName"]')"
req PUT "$PODS/db-1" application/json "$stale"
same "PUT with a stale resourceVersion is 409 Conflict" "409 Conflict" \
	"$CODE $(js 'd["reason"]')"
same "a bad token is 401 Unauthorized" "401 Unauthorized" "$(curl -s -o "$T/body" \
	-w '%{http_code}' -H 'Authorization: Bearer wrong' "$K$PODS") $(BODY=$(cat "$T/body"); js 'd["reason"]')"
same "no token is 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$K$PODS")"
req GET /api/v1/namespaces/default/services
same "an unknown resource is 404" 404 "$CODE"
same "healthz" ok "$(curl -s "$K/standin/healthz")"
BODY=$(curl -s "$K/standin/requests")
same "the request log has the watches and the apply's fieldManager" "True True" \
	"$(js 'any(r["watch"] for r in d), any(r["query"].get("fieldManager") == "agent-a" and r["contentType"] == "application/apply-patch+yaml" for r in d)')"

# --- watches under concurrent writers -------------------------------------------
check "4 watches see 80 concurrent writes each once, in RV order" python3 - "$K" "$TOKEN" << 'EOF'
import http.client, json, sys, threading
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1]); auth = {"Authorization": "Bearer " + sys.argv[2]}
def conn(): return http.client.HTTPConnection(u.hostname, u.port, timeout=10)
c = conn(); c.request("GET", "/api/v1/namespaces/stress/pods", headers=auth)
rv = json.load(c.getresponse())["metadata"]["resourceVersion"]
seen = [[] for _ in range(4)]
def watch(i):
    c = conn()
    c.request("GET", f"/api/v1/namespaces/stress/pods?watch=1&resourceVersion={rv}&timeoutSeconds=3", headers=auth)
    r = c.getresponse()
    for line in r:
        e = json.loads(line)
        seen[i].append((int(e["object"]["metadata"]["resourceVersion"]), e["object"]["metadata"]["name"]))
        if len(seen[i]) == 80:
            break
def write(w):
    c = conn()
    for n in range(20):
        body = json.dumps({"metadata": {"name": f"p-{w}-{n}"}})
        c.request("POST", "/api/v1/namespaces/stress/pods", body, {**auth, "Content-Type": "application/json"})
        r = c.getresponse(); r.read(); assert r.status == 201
ws = [threading.Thread(target=watch, args=(i,)) for i in range(4)]
ps = [threading.Thread(target=write, args=(w,)) for w in range(4)]
for t in ws + ps: t.start()
for t in ws + ps: t.join()
want = sorted(seen[0])
ok = all(s == want and len(s) == 80 and len(set(s)) == 80 for s in seen)
ok = ok and [r for r, _ in want] == list(range(int(rv) + 1, int(rv) + 81))
sys.exit(0 if ok else 1)
EOF

# --- collector ---------------------------------------------------------------
head -c 300000 /dev/urandom > "$T/seg.bin"
up() { # up PATH [curl args...]: POST seg.bin to the collector; prints the status
	local p=$1; shift
	curl -s -o /dev/null -w '%{http_code}' --path-as-is -H 'Content-Type: application/octet-stream' \
		--data-binary @"$T/seg.bin" "$@" "$C/v1/segments/$p"
}
same "collector: --fail-first answers 503 first" 503 \
	"$(up default/s1/seg-0001.pcapng -H 'X-Podtap-Node: node-a')"
check "collector: nothing stored after a 503" test ! -e "$T/segments/default/s1/seg-0001.pcapng"
same "collector: the retry answers 201" 201 \
	"$(up default/s1/seg-0001.pcapng -H 'X-Podtap-Node: node-a')"
check "collector: the body is stored byte-exact" cmp -s "$T/seg.bin" "$T/segments/default/s1/seg-0001.pcapng"
same "collector: a chunked upload answers 201" 201 \
	"$(up default/s1/seg-0002.pcapng -H 'X-Podtap-Node: node-a' -H 'Transfer-Encoding: chunked')"
check "collector: the chunked body is stored byte-exact" cmp -s "$T/seg.bin" "$T/segments/default/s1/seg-0002.pcapng"
same "collector: no X-Podtap-Node is 400" 400 "$(up default/s1/seg-0003.pcapng)"
same "collector: a .. component is 400" 400 "$(up default/../seg-0003.pcapng -H 'X-Podtap-Node: a')"
same "collector: an encoded / in a component is 400" 400 "$(up default/s1/a%2Fb -H 'X-Podtap-Node: a')"
same "collector: GET /v1/segments lists paths and sizes" \
	"default/s1/seg-0001.pcapng:300000 default/s1/seg-0002.pcapng:300000" \
	"$(BODY=$(curl -s "$C/v1/segments"); js '" ".join("%s:%d" % (e["path"], e["size"]) for e in d)')"

# --- clean exit on SIGTERM ---------------------------------------------------
kill -TERM "$KUBE_PID" "$COLL_PID"
wait "$KUBE_PID"
same "stand-in exits 0 on SIGTERM" 0 $?
wait "$COLL_PID"
same "collector exits 0 on SIGTERM" 0 $?
PIDS=()

echo "standin: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
