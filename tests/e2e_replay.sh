#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# The other half, end to end: a python3 JSON service and nginx in a target
# cgroup, recorded while a python3 client talks to them, with the live
# mirror sending every inbound connection to a local receiver; then the
# capture replayed against the same build and a changed one (reports read
# back, JUnit parsed), mirrored again from the file, and its outbound side
# served by `podtap mock` to curl. What the receiver, the mock's clients
# and the replayed service got is compared with what the clients really
# sent and got. Needs root; ends with "e2e_replay: N passed, M failed".
set -u
cd "$(dirname "$0")/.."
PODTAP=$PWD/podtap
PY=/usr/bin/python3
APP=18701 NGX=18702 SINK=18703 CHANGED=18704 SINK2=18705 MOCK=18706
HTTPS=18707 STALL=18708 MOCKS=18709 MANY=18710

if [ "$(id -u)" != 0 ]; then
	echo "e2e_replay: SKIP: needs root"
	echo "e2e_replay: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
for t in nginx curl openssl $PY; do
	command -v $t >/dev/null || { echo "e2e_replay: missing $t (make deps)"; exit 1; }
done

. tests/lib.sh
CG2=$(cg2_root)
TMP=$(mktemp -d /tmp/podtap-replay.XXXXXX)
CG=$CG2/podtap-replay-$$
CGC=$CG2/podtap-replay-changed-$$
NGINX_PID= PIDS= REC_PID= SMALL=

cleanup() {
	[ -n "$REC_PID" ] && kill -INT $REC_PID 2>/dev/null
	for p in $PIDS $NGINX_PID; do kill $p 2>/dev/null; done
	wait 2>/dev/null
	[ -n "$SMALL" ] && umount "$SMALL"
	rmdir "$CG" "$CGC" "$CG2/podtap-replay-local-$$" "$CG2/podtap-replay-mockc-$$" \
		"$CG2/podtap-replay-mockb-$$" 2>/dev/null
	[ -n "${KEEP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

incg() { # CGROUP CMD...: run CMD in CGROUP
	local cg=$1
	shift
	(echo $BASHPID > "$cg/cgroup.procs" && exec "$@")
}
bg() { "$@" & PIDS="$PIDS $!"; }
bg_incg() { # CGROUP CMD...: in the background, in CGROUP
	local cg=$1
	shift
	(echo $BASHPID > "$cg/cgroup.procs" && exec "$@") &
	PIDS="$PIDS $!"
}
stop_rec() {
	kill -INT $REC_PID
	wait $REC_PID
	local rc=$?
	REC_PID=
	return $rc
}
# jq-free JSON checks: jpy FILE 'python expression over j'
jpy() { $PY -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"; }

# ---- the services: the recorded build in the target cgroup ----
mkdir -p "$CG" "$CGC" "$TMP/sink" "$TMP/sink2" "$TMP/sent" "$TMP/stall"
printf '<html>index</html>\n' > "$TMP/www.index"
start_nginx "$TMP" $NGX "$CG" || exit 1
cp "$TMP/www.index" "$TMP/www/index.html"
printf 'small file\n' > "$TMP/www/small.txt"
bg_incg "$CG" $PY tests/peers/jsonsvc.py $APP same
bg_incg "$CGC" $PY tests/peers/jsonsvc.py $CHANGED changed
bg $PY tests/peers/sink.py $SINK "$TMP/sink" answer
bg $PY tests/peers/sink.py $SINK2 "$TMP/sink2"
for p in $APP $CHANGED; do wait_port $p || exit 1; done
for p in $SINK $SINK2; do wait_listen $p || exit 1; done

# ---- record, mirroring live ----
check "record refuses a mirror address where nothing listens, in one line" \
	one_line_error "cannot connect" "$PODTAP" record -c "${CG#$CG2}" -w "$TMP/x.ptcap" \
	--mirror-to 127.0.0.1:1 --duration 1s
check "...and leaves nothing loaded" no_podtap_progs
check "--mirror-port without --mirror-to is one line" \
	one_line_error "without --mirror-to" "$PODTAP" record -c "${CG#$CG2}" --mirror-port 80
start_record -c "${CG#$CG2}" -w "$TMP/c.ptcap" --mirror-to 127.0.0.1:$SINK ||
	{ cat "$TMP/rec.err"; exit 1; }
$PY tests/peers/rclient.py $APP $NGX "$TMP/sent" || echo "client failed"
sleep 0.5
stop_rec
check "record with --mirror-to exits 0" test $? = 0
grep -q "mirror to 127.0.0.1:$SINK: 6 connections mirrored of 6 inbound, 6 delivered whole" "$TMP/rec.err"
check "the mirror says it delivered all 6 inbound connections whole" test $? = 0 ||
	grep mirror "$TMP/rec.err"
mirrored_ok() { # DIR: each connection the client made arrived whole, once, with FIN
	$PY - "$TMP/sent" "$1" << 'PYEOF'
import glob, os, sys
sent = sorted(open(f, "rb").read() for f in glob.glob(sys.argv[1] + "/sent-*.bin"))
got = []
for f in glob.glob(sys.argv[2] + "/conn-*.bin"):
    b = open(f, "rb").read()
    end = open(f[:-4] + ".end").read().strip()
    if b:       # the mirror's first connection is its check, empty
        got.append(b)
        if end != "fin":
            sys.exit("a connection ended with %s" % end)
got.sort()
if got != sent:
    sys.exit("%d connections sent, %d received; same bytes: %s" % (len(sent), len(got), got == sent))
PYEOF
}
check "the receiver got exactly each connection's request bytes, writes included, and FIN" \
	mirrored_ok "$TMP/sink"

# ---- mirrored to a target's own port: its copies are not mirrored again ----
start_record -c "${CG#$CG2}" -w "$TMP/loop.ptcap" --mirror-to 127.0.0.1:$APP ||
	{ cat "$TMP/rec.err"; exit 1; }
curl -s -o /dev/null -o /dev/null "http://127.0.0.1:$APP/items/1" "http://127.0.0.1:$APP/items/2"
curl -s -o /dev/null "http://127.0.0.1:$APP/health"
sleep 2
stop_rec
n=$("$PODTAP" read "$TMP/loop.ptcap" 2>/dev/null | grep -c ' server ')
check "--mirror-to a target's own port: 2 connections and their 2 copies, no more (got $n)" \
	eval '[ "$n" = 4 ] && grep -q "not mirrored again" "$TMP/rec.err"'

# ---- replay against the same build ----
"$PODTAP" replay --to http://127.0.0.1:$APP --filter port=$APP --report json \
	-o "$TMP/same.json" "$TMP/c.ptcap" 2> "$TMP/same.err"
check "replay against the same build exits 0" test $? = 0 || cat "$TMP/same.err"
check "...every GET and HEAD passed, time, epoch and UUID values found as noise" \
	jpy "$TMP/same.json" 'j["summary"]["passed"] == 8 and j["summary"]["failed"] == 0 and j["summary"]["noise"]["found"] > 10 and j["summary"]["connections"] == 4'
check "...and the POST was left out as a write, not skipped" \
	jpy "$TMP/same.json" '[c["name"] for c in j["cases"] if c.get("reason", "").startswith("a write")] == ["POST /items"] and j["summary"]["skipped"] == 0'
"$PODTAP" replay --to http://127.0.0.1:$NGX --filter port=$NGX "$TMP/c.ptcap" > "$TMP/ngx.out" 2>&1
check "replay of nginx against itself: 3 passed, exit 0" grep -q "3 sent on 1 connections.*3 passed, 0 failed" "$TMP/ngx.out"
"$PODTAP" replay --to http://127.0.0.1:$APP --filter port=$APP --no-auto-noise "$TMP/c.ptcap" > "$TMP/noauto.out" 2>&1
check "without noise found automatically the same build differs (exit 1)" test $? = 1
"$PODTAP" replay --to http://127.0.0.1:$APP --filter port=$APP --no-auto-noise --learn-noise \
	--report json -o "$TMP/learn.json" "$TMP/c.ptcap" 2> "$TMP/learn.err"
check "--learn-noise finds the same noise from two runs: exit 0" test $? = 0
check "...counted as learned" jpy "$TMP/learn.json" 'j["summary"]["noise"]["learned"] > 10 and j["summary"]["failed"] == 0'
"$PODTAP" replay --to http://127.0.0.1:$APP --filter port=$APP --allow-writes --report json \
	-o "$TMP/writes.json" "$TMP/c.ptcap" 2>/dev/null
check "--allow-writes sends the POST too, and its answer matches" \
	jpy "$TMP/writes.json" 'j["summary"]["passed"] == 9 and any(c["name"] == "POST /items" and c["result"] == "passed" for c in j["cases"])'

# ---- replay against a changed build, recorded to see its connections ----
start_record -c "${CGC#$CG2}" -w "$TMP/replayed.ptcap" || { cat "$TMP/rec.err"; exit 1; }
"$PODTAP" replay --to http://127.0.0.1:$CHANGED --filter port=$APP --report json \
	-o "$TMP/changed.json" "$TMP/c.ptcap" 2> "$TMP/changed.err"
rc=$?
stop_rec
check "replay against a changed build exits 1" test $rc = 1
check "...and reports every changed field and status, nothing else" jpy "$TMP/changed.json" \
	'sorted((c["name"], d["where"], d["recorded"], d["got"]) for c in j["cases"] for d in c.get("diffs", [])) == sorted([("GET /items/2", "body $.price", "20", "25"), ("GET /health", "body $.status", "\"ok\"", "\"degraded\""), ("GET /health", "body $.version", "(absent)", "2"), ("GET /gone", "status", "404", "500")])'
"$PODTAP" export -f jsonl -o "$TMP/replayed.jsonl" "$TMP/replayed.ptcap" 2>/dev/null
check "the requests of one captured keep-alive connection went on one connection, in order" \
	$PY -c '
import json, sys
ex = [json.loads(l) for l in open(sys.argv[1]) if "\"kind\"" in l]
by = {}
for e in ex:
    by.setdefault(e["conn_id"], []).append(e["request"]["target"])
sys.exit(0 if ["/items/1", "/items/2", "/health", "/gone"] in by.values() and len(by) == 4 else 1)' "$TMP/replayed.jsonl"
"$PODTAP" replay --to http://127.0.0.1:$CHANGED --filter port=$APP --report junit \
	-o "$TMP/changed.xml" "$TMP/c.ptcap" 2>/dev/null
check "the JUnit report parses, with 8 tests and the 3 failures named" $PY -c '
import sys, xml.etree.ElementTree as E
s = E.parse(sys.argv[1]).getroot().find("testsuite")
f = sorted(t.get("name") for t in s.findall("testcase") if t.find("failure") is not None)
sys.exit(0 if s.get("tests") == "8" and s.get("failures") == "3" and f == ["GET /gone", "GET /health", "GET /items/2"] else 1)' "$TMP/changed.xml"
"$PODTAP" replay --to http://127.0.0.1:$CHANGED --filter port=$APP --filter path=/items/1,/items \
	"$TMP/c.ptcap" > "$TMP/filter.out" 2>&1
check "--filter path= sends only those (2 passed, exit 0)" grep -q "2 sent on 2 connections.*2 passed, 0 failed" "$TMP/filter.out"
"$PODTAP" replay --to http://127.0.0.1:$CHANGED --noise body.price --noise body.status \
	--noise body.version --filter port=$APP --filter path=/items/*,/health "$TMP/c.ptcap" > "$TMP/rules.out" 2>&1
check "--noise rules take the changed fields out (exit 0)" test $? = 0 || cat "$TMP/rules.out"
"$PODTAP" replay --to http://127.0.0.1:$CHANGED --max-stream 200 --filter port=$APP "$TMP/c.ptcap" \
	> "$TMP/skip.out" 2>&1
rc=$?
check "a connection that cannot be replayed is listed and fails the run" \
	eval '[ $rc = 1 ] && grep -q "^SKIP .*too large to assemble" "$TMP/skip.out"'
"$PODTAP" replay --dry-run --filter port=$APP "$TMP/c.ptcap" > "$TMP/dry.out" 2>&1
rc=$?
check "--dry-run lists the 8 requests it would send and exits 0" \
	eval '[ $rc = 0 ] && [ "$(grep -c "^SEND" "$TMP/dry.out")" = 8 ]'

# ---- the same from a Keploy test set ----
"$PODTAP" export -f keploy -o "$TMP/k" "$TMP/c.ptcap" 2>/dev/null
"$PODTAP" replay --to http://127.0.0.1:$APP --filter port=$APP "$TMP/k/keploy/test-set-0" \
	> "$TMP/kset.out" 2>&1
rc=$?
check "a Keploy test set replays against the same build: 8 passed, exit 0" \
	eval '[ $rc = 0 ] && grep -q "8 sent on 8 connections.*8 passed, 0 failed" "$TMP/kset.out"' || cat "$TMP/kset.out"
"$PODTAP" replay --to http://127.0.0.1:$CHANGED --filter port=$APP --report json \
	-o "$TMP/kchanged.json" "$TMP/k/keploy/test-set-0" 2>/dev/null
check "...against the changed build, the same 4 differences" jpy "$TMP/kchanged.json" \
	'sorted((c["name"], d["where"]) for c in j["cases"] for d in c.get("diffs", [])) == sorted([("GET /items/2", "body $.price"), ("GET /health", "body $.status"), ("GET /health", "body $.version"), ("GET /gone", "status")])'
"$PODTAP" replay --to http://127.0.0.1:$APP --filter port=$APP --no-auto-noise --report json \
	-o "$TMP/knoise.json" "$TMP/k/keploy/test-set-0" 2>/dev/null
check "...and the set's own noise keys take out its times and epochs (UUIDs are left, as Keploy leaves them)" \
	jpy "$TMP/knoise.json" '{d["where"] for c in j["cases"] for d in c.get("diffs", [])} == {"body $.request_id", "header X-Request-Id"}'

cp -r "$TMP/k/keploy/test-set-0" "$TMP/kbad"
sed -i 's|^\(        url: "http://[^"]*\)"|\1\\r\\nX-Injected: 1"|' "$TMP/kbad/tests/test-1.yaml"
check "a Keploy test whose URL holds CR LF is refused in one line, nothing sent" \
	one_line_error "control characters" "$PODTAP" replay --to http://127.0.0.1:$CHANGED "$TMP/kbad"

# ---- HTTPS ----
self_signed "$TMP"
bg $PY tests/peers/jsonsvc.py $HTTPS same "$TMP/cert.pem" "$TMP/key.pem"
wait_port $HTTPS
"$PODTAP" replay -k --to https://127.0.0.1:$HTTPS --filter port=$APP "$TMP/c.ptcap" > "$TMP/https.out" 2>&1
check "replay to an https:// service (-k): 8 passed" grep -q "8 passed, 0 failed" "$TMP/https.out"
"$PODTAP" replay --to https://127.0.0.1:$HTTPS --filter port=$APP "$TMP/c.ptcap" > "$TMP/https2.out" 2>&1
rc=$?
check "...without -k the self-signed certificate is refused: errors, exit 1" \
	eval '[ $rc = 1 ] && grep -q "ERROR .*self-signed certificate" "$TMP/https2.out"'

# ---- bad input: one line each ----
check "replay --to ftp:// is one line, exit 2" one_line_error "want an http" "$PODTAP" replay --to ftp://x "$TMP/c.ptcap"
check "replay --filter of no kind is one line" one_line_error "--filter" "$PODTAP" replay --to http://x --filter colour=red "$TMP/c.ptcap"
check "replay of a file that is not there is one line" one_line_error "nothing.ptcap" "$PODTAP" replay --to http://x "$TMP/nothing.ptcap"
check "replay --speed with --rate is one line" one_line_error "give one" "$PODTAP" replay --to http://x --speed 2 --rate 5 "$TMP/c.ptcap"
check "replay --set-header with CR LF is one line" one_line_error "control characters" "$PODTAP" replay --to http://x -H $'X-A: b\r\nX-B: c' "$TMP/c.ptcap"
check "replay of a directory that is not a test set is one line" one_line_error "not a Keploy test set" "$PODTAP" replay --to http://x "$TMP/k/keploy"
check "replay of one capture by name and on standard input is one line" one_line_error "given twice" \
	sh -c '"$0" replay --dry-run - "$1" < "$1"' "$PODTAP" "$TMP/c.ptcap"
cp -r "$TMP/k/keploy/test-set-0" "$TMP/kbad" && mkdir "$TMP/kbad/tests/sub.yaml"
check "a Keploy test set with a directory for a test is one line" one_line_error "sub.yaml: not a regular file" \
	"$PODTAP" replay --to http://x "$TMP/kbad"
check "replay --noise-regex that does not compile is one line" one_line_error "noise-regex" "$PODTAP" replay --to http://x --noise-regex '(' "$TMP/c.ptcap"

# ---- mirror from the file ----
"$PODTAP" mirror --from "$TMP/c.ptcap" --to 127.0.0.1:$SINK2 2> "$TMP/mirror.err"
check "mirror --from the capture exits 0" test $? = 0 || cat "$TMP/mirror.err"
sleep 0.3
check "...and the receiver got the same bytes per connection" mirrored_ok "$TMP/sink2"
check "mirror --to where nothing listens is one line" one_line_error "cannot connect" \
	"$PODTAP" mirror --from "$TMP/c.ptcap" --to 127.0.0.1:1
check "mirror --to that is not HOST:PORT is one line" one_line_error "HOST:PORT" \
	"$PODTAP" mirror --from "$TMP/c.ptcap" --to nowhere

# ---- a receiver that stops reading does not hurt the capture ----
bg $PY tests/peers/sink.py $STALL "$TMP/stall" stall
wait_listen $STALL
start_record -c "${CG#$CG2}" -w "$TMP/stall.ptcap" --mirror-to 127.0.0.1:$STALL ||
	{ cat "$TMP/rec.err"; exit 1; }
$PY - $APP << 'PYEOF'
import socket, sys
body = b"x" * (12 << 20)
for _ in range(3):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"POST /items HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    s.recv(100)
    s.close()
PYEOF
sleep 0.5
stop_rec
"$PODTAP" read --json "$TMP/stall.ptcap" > "$TMP/stall.json" 2>/dev/null
check "with a stuck receiver the capture still holds every byte sent (3 x 12 MiB bodies, 0 lost)" \
	$PY -c '
import json, sys
cs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
rx = sorted(c["bytes"]["rx"] for c in cs if c.get("role") == "server")
sys.exit(0 if len(rx) == 3 and all(b > 12 << 20 for b in rx) and all(not c["gaps"]["rx"] and not c["gaps"]["tx"] for c in cs) else 1)' "$TMP/stall.json" ||
	head -c 600 "$TMP/stall.json"
check "...and the mirror says it cut them, bytes dropped" \
	grep -q "mirror to 127.0.0.1:$STALL: .*dropped.*local process too slow" "$TMP/rec.err"

# ---- 10,000 short connections leave no mirror state behind ----
# the local process is a second nginx (out of the targets), fast enough
# that every connection can be mirrored
CGN=$CG2/podtap-replay-local-$$
TARGET_NGINX=$NGINX_PID
mkdir -p "$TMP/local"
NGINX_CONNECTIONS=16384 start_nginx "$TMP/local" $MANY "$CGN" || exit 1
PIDS="$PIDS $NGINX_PID"
NGINX_PID=$TARGET_NGINX
printf 'small file\n' > "$TMP/local/www/small.txt"
start_record -c "${CG#$CG2}" -w "$TMP/many.ptcap" --mirror-to 127.0.0.1:$MANY --metrics 127.0.0.1:18711 ||
	{ cat "$TMP/rec.err"; exit 1; }
# paced to about 1500 a second, so that the local nginx keeps up and
# every connection can be whole
$PY - $NGX << 'PYEOF'
import socket, sys, time
req = b"GET /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
t0 = time.monotonic()
for i in range(10000):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(req)
    while s.recv(4096):
        pass
    s.close()
    ahead = t0 + i / 1500 - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
PYEOF
for _ in $(seq 50); do
	curl -s http://127.0.0.1:18711/metrics > "$TMP/many.prom"
	grep -qx "podtap_mirror_open_connections 0" "$TMP/many.prom" && break
	sleep 0.1
done
stop_rec
check "10,000 short connections: all mirrored, delivered whole" \
	grep -q "10000 connections mirrored of 10000 inbound, 10000 delivered whole" "$TMP/rec.err"
grep mirror "$TMP/rec.err" | grep -v " 10000 delivered whole"
check "...and no mirror state left once they closed" grep -qx "podtap_mirror_open_connections 0" "$TMP/many.prom"
# more connections at once than open files allow: fewer at once, said
(ulimit -n 512 && exec "$PODTAP" replay --to http://127.0.0.1:$NGX -j 1024 "$TMP/many.ptcap") \
	> "$TMP/fd.out" 2> "$TMP/fd.err"
check "replay -j 1024 under a limit of 512 open files: 112 at once, all 10,000 passed" \
	eval 'grep -q "the limit (512) allows: 112 at once" "$TMP/fd.err" &&
		grep -q "10000 sent on 10000 connections.*10000 passed, 0 failed, 0 errors" "$TMP/fd.err"' ||
	cat "$TMP/fd.err"

# ---- a capture bigger than replay's memory: it streams ----
# 4 keep-alive clients, 480 GETs of a 256 KiB file each: 480 MiB of
# payload (a compressible file, so the capture file stays small), over
# 12 s. Reading holds about a second of the recorded traffic (records
# late from another CPU are put in order) and the exchanges under way.
$PY -c '
import random, sys
r = random.Random(7)
open(sys.argv[1], "wb").write(bytes(r.getrandbits(8) for _ in range(4096)) * 64)' "$TMP/www/big.bin"
# big_capture CGROUP FILE: record CGROUP to FILE while 4 curl clients in
# CLIENTS (a cgroup directory) fetch big.bin 480 times each
big_capture() {
	local cpids= i
	start_record -c "${1#$CG2}" -w "$2" || { cat "$TMP/rec.err"; exit 1; }
	for i in 1 2 3 4; do
		incg "$CLIENTS" curl -s --rate 40/s -o /dev/null "http://127.0.0.1:$NGX/big.bin?[1-480]" &
		cpids="$cpids $!"
	done
	wait $cpids
	sleep 0.5
	stop_rec
	grep -q "4 connections, 480.[0-9] MiB of payload, .* 0 lost" "$TMP/rec.err" ||
		{ echo "  the big capture is not what the test needs:"; tail -1 "$TMP/rec.err"; }
}
# small_and_clean: the last maxrss under a third of the payload, and
# nothing left in its TMPDIR
small_and_clean() {
	check "...with a peak RSS under a third of the payload (got $(($(cat "$TMP/big.rss") / 1024)) MiB)" \
		test "$(cat "$TMP/big.rss")" -lt $((480 * 1024 / 3))
	check "...and nothing left in TMPDIR" test -z "$(ls -A "$TMP/spool")"
}
CLIENTS=$CG2 big_capture "$CG" "$TMP/big.ptcap"
# maxrss CMD...: run CMD; its peak RSS (KiB, from wait4) to $TMP/big.rss
maxrss() {
	$PY -c '
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, st, ru = os.wait4(pid, 0)
open(sys.argv[1], "w").write("%d\n" % ru.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(st))' "$TMP/big.rss" "$@"
}
mkdir -p "$TMP/spool"
TMPDIR=$TMP/spool maxrss "$PODTAP" replay --to http://127.0.0.1:$NGX -j 1 "$TMP/big.ptcap" \
	> "$TMP/big.out" 2> "$TMP/big.err"
rc=$?
check "replay of 480 MiB of responses, one connection at a time: 1920 passed, exit 0" \
	eval '[ $rc = 0 ] && grep -q "1920 sent on 4 connections.*1920 passed, 0 failed" "$TMP/big.err"' ||
	cat "$TMP/big.err"
small_and_clean
echo '{"old": "report"}' > "$TMP/big.json"
check "replay with TMPDIR not there is one line, exit 2" one_line_error "cannot make a file in $TMP/nowhere" \
	env TMPDIR=$TMP/nowhere "$PODTAP" replay --to http://127.0.0.1:$NGX -o "$TMP/big.json" "$TMP/big.ptcap"
mkdir -p "$TMP/small"
mount -t tmpfs -o size=1m podtap-test "$TMP/small" && SMALL=$TMP/small
check "replay whose TMPDIR fills is one line, exit 2" one_line_error "No space left" \
	env TMPDIR=$TMP/small "$PODTAP" replay --to http://127.0.0.1:$NGX -j 1 -o "$TMP/big.json" "$TMP/big.ptcap"
check "...and the report file is left as it was" grep -qx '{"old": "report"}' "$TMP/big.json"
umount "$TMP/small" && SMALL=
# Ctrl-C: what went out is reported, and that the capture was not all read
INTERRUPTED='j["summary"]["interrupted"] and not j["summary"]["all_read"] and
	j["summary"]["passed"] >= 50 and
	j["summary"]["passed"] == sum(c["result"] == "passed" for c in j["cases"])'
"$PODTAP" replay --to http://127.0.0.1:$NGX -j 1 --rate 100 --learn-noise --report json \
	-o "$TMP/int.json" "$TMP/big.ptcap" 2> "$TMP/int.err" &
p=$!
sleep 2
kill -INT $p
wait $p
rc=$?
check "--learn-noise stopped by Ctrl-C: exit 130, and what was answered is reported as passed" \
	eval '[ $rc = 130 ] && jpy "$TMP/int.json" "$INTERRUPTED"' || tail -1 "$TMP/int.err"
check "...and the summary line says the rest of the capture was not read" \
	grep -q "interrupted: .* not sent, and the rest of the capture not read" "$TMP/int.err"
"$PODTAP" replay --dry-run "$TMP/big.ptcap" > "$TMP/dint.out" 2> "$TMP/dint.err" &
p=$!
sleep 0.2
kill -INT $p
wait $p
rc=$?
check "a dry run stops on Ctrl-C too: exit 130" \
	eval '[ $rc = 130 ] && grep -q "interrupted before the capture was all read" "$TMP/dint.err"' ||
	cat "$TMP/dint.err"
rm -f "$TMP/big.ptcap"

# ---- mock: the outbound side, recorded from clients in the cgroup ----
CGM=$CG2/podtap-replay-mockc-$$
mkdir -p "$CGM"
start_record -c "${CGM#$CG2}" -w "$TMP/out.ptcap" || { cat "$TMP/rec.err"; exit 1; }
incg "$CGM" curl -s -o "$TMP/r1" -o "$TMP/r2" http://127.0.0.1:$APP/items/1 http://127.0.0.1:$APP/items/1
incg "$CGM" curl -s -o "$TMP/r3" "http://127.0.0.1:$APP/items/2?b=2&a=1"
incg "$CGM" curl -s -o "$TMP/r4" -H 'Content-Type: application/json' -d '{"name":"x","n":1}' http://127.0.0.1:$APP/items
incg "$CGM" curl -s -o "$TMP/r5" --compressed http://127.0.0.1:$APP/items
incg "$CGM" curl -s -I -o "$TMP/rh" http://127.0.0.1:$APP/items/3
sleep 0.5
stop_rec
rmdir "$CGM"
bg "$PODTAP" mock --listen 127.0.0.1:$MOCK --strict "$TMP/out.ptcap" 2> "$TMP/mock.err"
MOCK_PID=$!
wait_port $MOCK
curl -s -o "$TMP/m1" -o "$TMP/m2" -o "$TMP/m3" http://127.0.0.1:$MOCK/items/1 http://127.0.0.1:$MOCK/items/1 http://127.0.0.1:$MOCK/items/1
check "mock: repeated identical requests get the recorded answers in order, then the last again" \
	eval 'cmp -s "$TMP/r1" "$TMP/m1" && cmp -s "$TMP/r2" "$TMP/m2" && cmp -s "$TMP/r2" "$TMP/m3" && ! cmp -s "$TMP/r1" "$TMP/r2"'
curl -s -o "$TMP/m4" "http://127.0.0.1:$MOCK/items/2?a=1&b=2"
check "mock: query keys in another order match" cmp -s "$TMP/r3" "$TMP/m4"
$PY - $MOCK "$TMP/m5" << 'PYEOF'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
c.request("POST", "/items", body=b'{ "n": 1, "name": "x" }', headers={"Content-Type": "application/json"})
open(sys.argv[2], "wb").write(c.getresponse().read())
PYEOF
check "mock: a python3 client's JSON body, ordered otherwise, matches" cmp -s "$TMP/r4" "$TMP/m5"
curl -s --compressed -o "$TMP/m6" http://127.0.0.1:$MOCK/items
check "mock: a gzip answer is served as recorded (curl decodes it)" cmp -s "$TMP/r5" "$TMP/m6"
curl -s -I -o "$TMP/mh" http://127.0.0.1:$MOCK/items/3
check "mock: a HEAD answer has the recorded Content-Length" \
	eval '[ -n "$(grep -i "^content-length: [1-9]" "$TMP/rh")" ] && [ "$(grep -i "^content-length" "$TMP/rh")" = "$(grep -i "^content-length" "$TMP/mh")" ]'
code=$(curl -s -o "$TMP/m7" -w '%{http_code}' http://127.0.0.1:$MOCK/nothing)
check "mock: an unmatched request gets 502 naming what was asked" \
	eval '[ "$code" = 502 ] && grep -q "GET /nothing" "$TMP/m7"'
kill -INT $MOCK_PID
wait $MOCK_PID
rc=$?
check "mock --strict exits 1 after a miss, and lists it" \
	eval '[ $rc = 1 ] && grep -q "unmatched: GET /nothing" "$TMP/mock.err" && grep -q "1 unmatched" "$TMP/mock.err"'
bg "$PODTAP" mock --listen 127.0.0.1:$MOCKS --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" "$TMP/out.ptcap"
MOCK_PID=$!
wait_port $MOCKS
curl -sk -o "$TMP/m8" https://127.0.0.1:$MOCKS/items/1
check "mock --tls-cert/--tls-key serves HTTPS" cmp -s "$TMP/r1" "$TMP/m8"
kill -INT $MOCK_PID
wait $MOCK_PID
check "...and exits 0 on Ctrl-C" test $? = 0
"$PODTAP" export -f keploy -o "$TMP/km" "$TMP/out.ptcap" 2>/dev/null
bg "$PODTAP" mock --listen 127.0.0.1:$MOCK "$TMP/km/keploy/test-set-0" 2> "$TMP/kmock.err"
MOCK_PID=$!
wait_port $MOCK
curl -s -o "$TMP/k1" -o "$TMP/k2" http://127.0.0.1:$MOCK/items/1 http://127.0.0.1:$MOCK/items/1
curl -s --compressed -o "$TMP/k6" http://127.0.0.1:$MOCK/items
check "mock serves a Keploy test set's mocks: in order, a gzip answer coded again" \
	eval 'cmp -s "$TMP/r1" "$TMP/k1" && cmp -s "$TMP/r2" "$TMP/k2" && cmp -s "$TMP/r5" "$TMP/k6"'
kill -INT $MOCK_PID
wait $MOCK_PID
# the same 480 MiB of 256 KiB answers, asked for by clients in a cgroup
# recorded: outbound calls; the mock keeps the requests, not the answers
CGB=$CG2/podtap-replay-mockb-$$
mkdir -p "$CGB"
CLIENTS=$CGB big_capture "$CGB" "$TMP/bigout.ptcap"
rmdir "$CGB"
TMPDIR=$TMP/spool maxrss "$PODTAP" mock --listen 127.0.0.1:$MOCK --duration 4s --strict \
	"$TMP/bigout.ptcap" 2> "$TMP/bigmock.err" &
MOCK_PID=$!
wait_port $MOCK
# 16 clients at once, each a different answer, sent from the file
cpids=
for i in $(seq 16); do
	curl -s -o "$TMP/b$i" "http://127.0.0.1:$MOCK/big.bin?$((i * 29))" &
	cpids="$cpids $!"
done
wait $cpids
wait $MOCK_PID
rc=$?
same=0
for i in $(seq 16); do cmp -s "$TMP/b$i" "$TMP/www/big.bin" && same=$((same + 1)); done
check "mock of 480 MiB of recorded answers serves 16 at once exactly, exit 0 (got $same)" \
	eval '[ $rc = 0 ] && [ $same = 16 ]' || cat "$TMP/bigmock.err"
small_and_clean
"$PODTAP" mock --listen 127.0.0.1:$MOCK "$TMP/bigout.ptcap" 2> "$TMP/mint.err" &
p=$!
sleep 0.3
kill -INT $p
wait $p
rc=$?
check "Ctrl-C while mock reads the capture stops it: exit 130" \
	eval '[ $rc = 130 ] && grep -q "stopped while the capture was read" "$TMP/mint.err"' ||
	cat "$TMP/mint.err"
check "mock with TMPDIR not there is one line, exit 2" one_line_error "cannot make a file in $TMP/nowhere" \
	env TMPDIR=$TMP/nowhere "$PODTAP" mock --listen 127.0.0.1:$MOCK "$TMP/bigout.ptcap"
rm -f "$TMP/bigout.ptcap" "$TMP/www/big.bin"
check "mock of a capture with no outbound HTTP is one line" one_line_error "no complete outbound" \
	"$PODTAP" mock --listen 127.0.0.1:$MOCK "$TMP/stall.ptcap"
check "mock --listen that is not an address is one line" one_line_error "--listen" \
	"$PODTAP" mock --listen nowhere "$TMP/out.ptcap"
check "mock --tls-cert without --tls-key is one line" one_line_error "both" \
	"$PODTAP" mock --listen 127.0.0.1:$MOCK --tls-cert "$TMP/cert.pem" "$TMP/out.ptcap"
check "nothing of podtap is left loaded" no_podtap_progs

echo "e2e_replay: $pass passed, $fail failed"
[ $fail = 0 ]
