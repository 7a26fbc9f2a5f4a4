#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Operating podtap: /metrics, /healthz and /readyz of `podtap record
# --metrics` scraped and parsed while nginx in a target cgroup serves curl;
# `podtap status` against the known target set; --pin with bpftool; JSON
# logs; and that stopping leaves nothing loaded, pinned or mounted.
# Needs root; prints "e2e_metrics: N passed, M failed" at the end.
set -u
cd "$(dirname "$0")/.."
PODTAP=$PWD/podtap
PORT=18495
MPORT=19095
PY=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then
	echo "e2e_metrics: SKIP: needs root"
	echo "e2e_metrics: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
. tests/lib.sh
CG2=$(cg2_root)
TMP=$(mktemp -d /tmp/podtap-metrics.XXXXXX)
CG=$CG2/podtap-metrics-$$
CGB=$CG2/podtap-metrics-b-$$
CGM=$CG2/podtap-metrics-many-$$
NGINX_PID= REC=
bpffs_before=$(grep -c ' /sys/fs/bpf bpf ' /proc/self/mounts)

cleanup() {
	[ -n "$REC" ] && kill -INT $REC 2>/dev/null && wait $REC 2>/dev/null
	[ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
	rmdir "$CG" "$CGB" 2>/dev/null
	[ -d "$CGM" ] && rmdir "$CGM"/*/ "$CGM" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/www" "$CGB"
printf 'hello\n' > "$TMP/www/a.txt"
start_nginx "$TMP" $PORT "$CG" || exit 1

"$PODTAP" --log-format json record -c "$CG" -c "$CGB" --metrics 127.0.0.1:$MPORT \
	--pin -w "$TMP/cap.ptcap" 2> "$TMP/rec.log" &
REC=$!
for _ in $(seq 100); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$MPORT/readyz)" = 200 ] && break
	sleep 0.05
done
check "/readyz answers 200 once capturing" \
	[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$MPORT/readyz)" = 200 ]
check "/healthz answers 200" [ "$(curl -s http://127.0.0.1:$MPORT/healthz)" = ok ]
check "an unknown path is 404" \
	[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$MPORT/nope)" = 404 ]
check "POST is refused" \
	[ "$(curl -s -o /dev/null -w '%{http_code}' -d x http://127.0.0.1:$MPORT/metrics)" = 405 ]

curl -s http://127.0.0.1:$MPORT/metrics > "$TMP/m1.txt"
for i in $(seq 20); do curl -s -o /dev/null "http://127.0.0.1:$PORT/a.txt"; done
sleep 0.3
curl -s http://127.0.0.1:$MPORT/metrics > "$TMP/m2.txt"
check "/metrics: HELP and TYPE for every metric, counters grow under traffic" \
	$PY - "$TMP/m1.txt" "$TMP/m2.txt" << 'EOF2'
import re, sys

def parse(path):
    helps, types, samples = set(), {}, {}
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line:
            m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', line)
            if not m:
                sys.exit("not a sample line: %r" % line)
            samples[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return helps, types, samples

h1, t1, s1 = parse(sys.argv[1])
h2, t2, s2 = parse(sys.argv[2])
bad = []
for (name, _), _v in s2.items():
    if name not in h2 or name not in t2:
        bad.append("%s has no HELP or TYPE" % name)
for key, v in s1.items():
    if t1.get(key[0]) == "counter" and s2.get(key, -1) < v:
        bad.append("counter %s%s went down" % key)
def grew(name, labels=""):
    if not s2.get((name, labels), 0) > s1.get((name, labels), 0):
        bad.append("%s%s did not grow: %s -> %s" % (name, labels,
                   s1.get((name, labels)), s2.get((name, labels))))
grew("podtap_kernel_events_total")
grew("podtap_kernel_payload_bytes_total")
grew("podtap_records_written_total")
grew("podtap_program_runs_total", '{program="podtap_ingress"}')
grew("podtap_program_runs_total", '{program="podtap_egress"}')
grew("podtap_program_run_seconds_total", '{program="podtap_egress"}')
grew("podtap_kernel_connections_total", '{event="open"}')
if s2.get(("podtap_targets", '{kind="cgroup"}')) != 2:
    bad.append("podtap_targets{kind=cgroup} is not 2")
if not s2.get(("podtap_ringbuf_size_bytes", ""), 0) > 0:
    bad.append("no ring buffer size")
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF2

"$PODTAP" status > "$TMP/status.txt"
check "status exits 0" [ $? = 0 ]
check "status names the recorder's pid" grep -q "podtap recorder pid $REC " "$TMP/status.txt"
check "status counts the traffic (events and connections)" \
	grep -Eq 'counters: [1-9][0-9]* events, [1-9][0-9]* bytes, .* [1-9][0-9]* connections opened' "$TMP/status.txt"
check "status lists both targets with their session and its name" \
	sh -c "grep -q 'session 1 *(podtap record) *$CG\$' '$TMP/status.txt' && grep -q 'session 1 *(podtap record) *$CGB\$' '$TMP/status.txt'"
check "status shows ingress attached to both cgroups" \
	sh -c "grep -q 'on $CG (ingress)' '$TMP/status.txt' && grep -q 'on $CGB (ingress)' '$TMP/status.txt'"
check "status shows run counts (statistics on with --metrics)" \
	grep -Eq 'podtap_egress +id [0-9]+ +[1-9][0-9]* runs' "$TMP/status.txt"
check "status --json: two cgroup targets" sh -c "'$PODTAP' status --json | $PY -c '
import json, sys
r = json.load(sys.stdin)[\"recorders\"]
sys.exit(not (len(r) == 1 and sorted(t[\"path\"] for t in r[0][\"targets\"]) == sorted([\"$CG\", \"$CGB\"])))'"
check "--pin: bpftool reads the pinned target map" \
	sh -c "bpftool map dump pinned /sys/fs/bpf/podtap/maps/target_cgroups | grep -c key | grep -qx 2"
check "--pin: programs pinned" [ -e /sys/fs/bpf/podtap/progs/podtap_ingress ]
# Every bpftool command the README and docs give, as written, against
# this recorder: each must succeed and print something.
grep -ohE '(^ {4}|`)bpftool [^`#]*' README.md docs/*.md | sed -E 's/^ {4}|^`//; s/ +$//' |
	sort -u > "$TMP/bpftool.cmds"
check "the README and docs give bpftool commands" [ -s "$TMP/bpftool.cmds" ]
while IFS= read -r c; do
	check "as documented: $c" sh -c "$c 2>&1 | grep -q . && $c >/dev/null 2>&1"
done < "$TMP/bpftool.cmds"

kill -INT $REC
wait $REC
check "record exits 0" [ $? = 0 ]
REC=
check "log lines are JSON objects with time, level and msg" $PY -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(not lines or not all({"time", "level", "msg"} <= set(l) for l in lines))' "$TMP/rec.log"
check "unpinned on exit" [ ! -e /sys/fs/bpf/podtap ]
check "a bpffs podtap mounted is unmounted" \
	[ "$(grep -c ' /sys/fs/bpf bpf ' /proc/self/mounts)" = "$bpffs_before" ]
check "no podtap program left loaded" no_podtap_progs
check "status with nothing running" sh -c "'$PODTAP' status | grep -q 'no podtap programs'"

# 300 targets: a cgroup and link descriptors each, past a soft limit of
# 1024 open files and past select()'s FD_SETSIZE
many=()
for i in $(seq 300); do
	mkdir -p "$CGM/c$i" && many+=(-c "$CGM/c$i")
done
(ulimit -Sn 1024 && exec "$PODTAP" record "${many[@]}" --metrics 127.0.0.1:$MPORT \
	-w "$TMP/many.ptcap" 2> "$TMP/many.log") &
REC=$!
code=
for _ in $(seq 200); do
	code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$MPORT/readyz)
	[ "$code" = 200 ] && break
	kill -0 $REC 2>/dev/null || break
	sleep 0.05
done
check "300 targets under a soft limit of 1024 files: /readyz answers" [ "$code" = 200 ]
check "  ... and /metrics says 300 cgroups attached" sh -c \
	"curl -s http://127.0.0.1:$MPORT/metrics | grep -qx 'podtap_attached_cgroups 300'"
kill -INT $REC; wait $REC
check "  ... record exits 0" [ $? = 0 ] || cat "$TMP/many.log"
REC=
check "  ... and leaves nothing loaded" no_podtap_progs
rmdir "$CGM"/*/ "$CGM"

check "bad --metrics address" one_line_error "not an address" \
	"$PODTAP" record -c "$CG" --metrics nowhere -w "$TMP/x.ptcap"
check "  ... leaves no file" [ ! -e "$TMP/x.ptcap" ]
(exec $PY -c 'import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", '$MPORT')); s.listen(); time.sleep(10)') &
busy=$!
sleep 0.3
check "--metrics on a busy port" one_line_error "cannot listen" \
	timeout -s INT 5 "$PODTAP" record -c "$CG" --metrics 127.0.0.1:$MPORT -w "$TMP/x.ptcap"
kill $busy; wait $busy 2>/dev/null
check "bad --log-format" one_line_error "want text or json" "$PODTAP" record --log-format xml -c "$CG"
check "nothing left after the failures" eval 'no_podtap_progs && [ ! -e /sys/fs/bpf/podtap ]'

echo "e2e_metrics: $pass passed, $fail failed"
[ $fail = 0 ]
