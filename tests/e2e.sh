#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# End to end: the podtap binary recording real peers (nginx serving and
# taking uploads, curl as the client), checked against the bytes that
# really went over the wire; then every kind of bad input, and that a
# failed run leaves nothing attached. Needs root; prints a TAP-like line
# per check and "e2e: N passed, M failed" at the end.
set -u
cd "$(dirname "$0")/.."
PODTAP=$PWD/podtap
PORT=18481

if [ "$(id -u)" != 0 ]; then
	echo "e2e: SKIP: needs root"
	echo "e2e: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
for t in nginx curl python3 setpriv bpftool; do
	command -v $t >/dev/null || { echo "e2e: missing $t (make deps)"; exit 1; }
done

. tests/lib.sh
CG2=$(cg2_root)
TMP=$(mktemp -d /tmp/podtap-e2e.XXXXXX)
CG=$CG2/podtap-e2e-$$
NGINX_PID=

cleanup() {
	[ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
	rmdir "$CG" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

# ---- a real server in its own cgroup ----
mkdir -p "$TMP/www"
head -c 1048576 /dev/urandom > "$TMP/www/big.bin"
printf 'hello from nginx\n' > "$TMP/www/small.txt"
head -c 2000000 /dev/urandom > "$TMP/upload.bin"
start_nginx "$TMP" $PORT "$CG" "dav_methods PUT;" || exit 1

# ---- record curl against nginx ----
check "record starts on a cgroup" start_record --cgroup "$CG" -w "$TMP/cap.ptcap"
curl -s -o "$TMP/got-big" "http://127.0.0.1:$PORT/big.bin"
curl -s -o /dev/null -T "$TMP/upload.bin" "http://127.0.0.1:$PORT/up.bin"
# two requests on one keep-alive connection
curl -s -o /dev/null -o /dev/null "http://127.0.0.1:$PORT/small.txt" "http://127.0.0.1:$PORT/small.txt"
sleep 0.3
kill -INT $REC_PID
wait $REC_PID
check "record exits 0 on Ctrl-C" [ $? = 0 ]
check "curl got the file" cmp -s "$TMP/got-big" "$TMP/www/big.bin"
check "nginx stored the upload" cmp -s "$TMP/www/up.bin" "$TMP/upload.bin"

"$PODTAP" read --json --dump "$TMP/cap.ptcap" > "$TMP/cap.json"
check "read --json exits 0" [ $? = 0 ]
worker=$(pgrep -P "$NGINX_PID" | head -1)
check "captured bytes equal what crossed the wire" python3 - "$TMP" "$worker" <<'EOF2'
import base64, json, sys
tmp, worker = sys.argv[1], int(sys.argv[2])
conns = [json.loads(l) for l in open(tmp + "/cap.json")]
big = open(tmp + "/www/big.bin", "rb").read()
up = open(tmp + "/upload.bin", "rb").read()
ok = True
def fail(msg):
    global ok
    print("  " + msg)
    ok = False
if len(conns) != 3:
    fail("expected 3 connections, got %d" % len(conns))
for c in conns:
    if c["role"] != "server" or c["state"] != "closed":
        fail("conn %s: role %s state %s" % (c["conn_id"], c["role"], c["state"]))
    if c["gaps"]["rx"] or c["gaps"]["tx"]:
        fail("conn %s has gaps" % c["conn_id"])
    if c["comm"] != "nginx" or c["pid"] != worker:
        fail("conn %s: process %s/%d, worker is %d" % (c["conn_id"], c["comm"], c["pid"], worker))
rx = [base64.b64decode(c["payload"]["rx"]) for c in conns]
tx = [base64.b64decode(c["payload"]["tx"]) for c in conns]
# GET big.bin: the response is headers + exactly the file
get = [t for r, t in zip(rx, tx) if r.startswith(b"GET /big.bin ")]
if len(get) != 1 or not get[0].startswith(b"HTTP/1.1 200 OK\r\n") or \
   not get[0].endswith(b"\r\n\r\n" + big):
    fail("GET /big.bin response is not headers + the file")
# PUT: the request is headers + exactly the upload
put = [r for r in rx if r.startswith(b"PUT /up.bin ")]
if len(put) != 1 or not put[0].endswith(b"\r\n\r\n" + up):
    fail("PUT request body is not the uploaded file")
# keep-alive: two requests, two responses on one connection
ka = [(r, t) for r, t in zip(rx, tx) if r.count(b"GET /small.txt ") == 2]
if len(ka) != 1 or ka[0][1].count(b"hello from nginx\n") != 2:
    fail("keep-alive connection does not hold both exchanges")
sys.exit(0 if ok else 1)
EOF2
"$PODTAP" read "$TMP/cap.ptcap" > "$TMP/cap.txt"
check "read shows the connections" grep -q 'server .*127.0.0.1:18481.*nginx' "$TMP/cap.txt"
check "read --dump shows the payload" sh -c "'$PODTAP' read --dump '$TMP/cap.ptcap' | grep -q 'hello from nginx'"

# ---- limits and other targets ----
t0=$(date +%s)
"$PODTAP" record -q --cgroup "$CG" --duration 1s -w "$TMP/d.ptcap"
rc=$?
check "--duration stops by itself" [ $rc = 0 ] && [ $(( $(date +%s) - t0 )) -le 4 ]
check "a --duration capture is complete" sh -c "'$PODTAP' read '$TMP/d.ptcap' | head -1 | grep -vq 'not finished'"

check "record with --max-bytes starts" \
	start_record --cgroup "$CG" --max-bytes 100Ki -w "$TMP/m.ptcap"
curl -s -o /dev/null "http://127.0.0.1:$PORT/big.bin"
for _ in $(seq 50); do kill -0 $REC_PID 2>/dev/null || break; sleep 0.1; done
check "--max-bytes stops by itself" sh -c "! kill -0 $REC_PID 2>/dev/null"
wait $REC_PID 2>/dev/null

check "record --pid of the nginx master" start_record --pid "$NGINX_PID" -w "$TMP/p.ptcap"
curl -s -o /dev/null "http://127.0.0.1:$PORT/small.txt"
sleep 0.2
kill -INT $REC_PID
wait $REC_PID
check "--pid capture holds the request" sh -c "'$PODTAP' read --dump '$TMP/p.ptcap' | grep -q 'GET /small.txt'"

# ---- bad input: one line, non-zero exit, no file left ----
true & dead=$!; wait $dead
check "unknown cgroup" one_line_error "no such cgroup" "$PODTAP" record -c /no/such/cgroup -w "$TMP/x1.ptcap"
check "  ... leaves no file" [ ! -e "$TMP/x1.ptcap" ]
check "dead pid" one_line_error "no such process" "$PODTAP" record --pid $dead -w "$TMP/x2.ptcap"
check "dead pidns pid" one_line_error "no such process" "$PODTAP" record --pidns $dead -w "$TMP/x2.ptcap"
check "not a pid" one_line_error "not a process id" "$PODTAP" record --pid abc
check "unwritable output" one_line_error "No such file or directory" "$PODTAP" record -c "$CG" -w /no/such/dir/x.ptcap
check "bad duration" one_line_error "not a duration" "$PODTAP" record -c "$CG" --duration soon
check "bad size" one_line_error "not a size" "$PODTAP" record -c "$CG" --max-bytes lots
check "no target" one_line_error "no target" "$PODTAP" record
check "unknown option" one_line_error "unknown option" "$PODTAP" record --frobnicate
check "unknown command" one_line_error "unknown command" "$PODTAP" frobnicate
check "no BPF permission" one_line_error "Operation not permitted" \
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
	"$PODTAP" record -c "$CG" -w "$TMP/x3.ptcap"
check "  ... leaves no file" [ ! -e "$TMP/x3.ptcap" ]
head -c 1000 "$TMP/cap.ptcap" > "$TMP/trunc.ptcap"
check "truncated capture names the offset" one_line_error "byte offset" "$PODTAP" read "$TMP/trunc.ptcap"
check "not a capture" one_line_error "not a podtap capture" "$PODTAP" read /etc/hostname
check "missing capture" one_line_error "No such file" "$PODTAP" read "$TMP/none.ptcap"
check "help" sh -c "'$PODTAP' record --help | grep -q -- --cgroup && '$PODTAP' read --help | grep -q -- --dump"

# ---- nothing left behind ----
check "no podtap program left loaded" no_podtap_progs
check "nothing left attached to cgroups" sh -c "! bpftool cgroup tree '$CG2' 2>/dev/null | grep -q podtap_"
check "nothing pinned" [ ! -e /sys/fs/bpf/podtap ]

echo "e2e: $pass passed, $fail failed"
[ $fail = 0 ]
