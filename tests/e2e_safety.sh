#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Safe by default: what a mistake on the command line must never do (write
# over a device, clobber or leave behind a file, record the whole host,
# hide a write error or a left-out connection), one vocabulary across
# commands, the HTTP/1 framing corners played over real sockets, and the
# kernel's --port/--host filters. Devices are made with mknod in a
# temporary directory: the machine's /dev/null and /dev/full are never
# used as outputs. Needs root; "e2e_safety: N passed, M failed" at the end.
set -u
cd "$(dirname "$0")/.."
PODTAP=$PWD/podtap
PY=python3
PA=18581	# the target's server, 127.0.0.1 and 127.0.0.2
PB=18582	# a second port of the same server
PM=18583	# a server that moves into the target after it listens
PT=18584	# TLS
PX=18585	# a port held busy, for failures after the output is open

if [ "$(id -u)" != 0 ]; then
	echo "e2e_safety: SKIP: needs root"
	echo "e2e_safety: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
for t in curl python3 openssl bpftool; do
	command -v $t >/dev/null || { echo "e2e_safety: missing $t (make deps)"; exit 1; }
done

. tests/lib.sh
CG2=$(cg2_root)
TMP=$(mktemp -d /tmp/podtap-safety.XXXXXX)
CG=$CG2/podtap-safety-$$
CGA=$CG2/podtap-safety-$$-before
PIDS=

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rmdir "$CG" "$CGA" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

wait_port() { # addr port
	for _ in $(seq 100); do
		(echo > /dev/tcp/$1/$2) 2>/dev/null && return 0
		sleep 0.05
	done
	echo "nothing listens on $1:$2" >&2
	return 1
}

stop_record() {
	kill -INT $REC_PID
	wait $REC_PID
}
# seen_closes N: wait (10 s at most) until the recorder's programs have
# seen N connections close, so that what a test sent is all in the ring
# when it stops the recorder (a fixed sleep is too short on a loaded host)
seen_closes() {
	local n
	for _ in $(seq 200); do
		n=$("$PODTAP" status --json 2>/dev/null | $PY -c '
import json, sys
for r in json.load(sys.stdin)["recorders"]:
    if int(sys.argv[1]) in r["pids"]:
        print(r["counters"]["closes"])' $REC_PID)
		[ "${n:-0}" -ge "$1" ] && return 0
		sleep 0.05
	done
	echo "  (the recorder saw ${n:-no} closes, not $1)"
}

mknod "$TMP/null" c 1 3 && mknod "$TMP/full" c 1 7 && chmod 666 "$TMP/null" "$TMP/full" ||
	{ echo "e2e_safety: mknod failed"; exit 1; }
is_dev() { [ -c "$1" ] && [ ! -f "$1" ]; }

mkdir -p "$CG" "$CGA"
(echo $BASHPID > "$CG/cgroup.procs" && exec $PY tests/peers/fixed.py 127.0.0.1 $PA 127.0.0.2 $PA 127.0.0.1 $PB) &
PIDS="$PIDS $!"
$PY -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', $PX)); s.listen(); time.sleep(3600)" &
PIDS="$PIDS $!"
wait_port 127.0.0.1 $PA && wait_port 127.0.0.2 $PA && wait_port 127.0.0.1 $PB && wait_port 127.0.0.1 $PX || exit 1

# ---- outputs that are devices: written in place, never replaced ----
check "record -w a device: fails later (port busy)" \
	one_line_error "Address already in use" "$PODTAP" record -c "$CG" -w "$TMP/null" --metrics 127.0.0.1:$PX
check "  ... the device is still a device" is_dev "$TMP/null"
"$PODTAP" record -q -c "$CG" -w "$TMP/null" -d 0.3s 2>/dev/null
check "record -w a device records" [ $? = 0 ]
check "  ... the device is still a device" is_dev "$TMP/null"
check "record -w a full device: the write error" \
	one_line_error "No space left on device" "$PODTAP" record -c "$CG" -w "$TMP/full" -d 0.3s
check "  ... the device is still a device" is_dev "$TMP/full"

# ---- an existing file survives a run that never started ----
echo precious > "$TMP/keep.ptcap"
check "record over an existing file: fails before recording" \
	one_line_error "Address already in use" "$PODTAP" record -c "$CG" -w "$TMP/keep.ptcap" --metrics 127.0.0.1:$PX
check "  ... the file is untouched" [ "$(cat "$TMP/keep.ptcap")" = precious ]
check "a new file is not left behind" \
	sh -c "! '$PODTAP' record -c '$CG' -w '$TMP/new.ptcap' --metrics 127.0.0.1:$PX 2>/dev/null && [ ! -e '$TMP/new.ptcap' ]"

# ---- --ready-file is checked before anything is truncated ----
cp "$TMP/keep.ptcap" "$TMP/keep2.ptcap"
: > "$TMP/stale-ready"
check "a stale --ready-file is refused at once" \
	one_line_error "exists already" "$PODTAP" record -c "$CG" -w "$TMP/keep2.ptcap" --ready-file "$TMP/stale-ready"
check "  ... and the capture file is untouched" [ "$(cat "$TMP/keep2.ptcap")" = precious ]
check "a --ready-file in a missing directory is refused at once" \
	one_line_error "No such file" "$PODTAP" record -c "$CG" -w "$TMP/keep2.ptcap" --ready-file "$TMP/no/dir/r"

# ---- a FIFO: no reader is an error, not a hang; a reader gone is a write error ----
mkfifo "$TMP/fifo"
check "-w a FIFO nobody reads: one line, at once" \
	timeout 10 sh -c "! '$PODTAP' record -c '$CG' -w '$TMP/fifo' -d 1s 2> '$TMP/fifo.err' && grep -q 'no process reads' '$TMP/fifo.err' && [ \$(wc -l < '$TMP/fifo.err') = 1 ]"
(
	"$PODTAP" record -q -c "$CG" -w - --ready-file "$TMP/pipe-ready" -d 10s 2> "$TMP/pipe.err" | head -c 300 > /dev/null
	echo "${PIPESTATUS[0]}" > "$TMP/pipe.rc"
) &
for _ in $(seq 100); do [ -e "$TMP/pipe-ready" ] && break; sleep 0.05; done
for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$PA/fill-the-pipe"; done
for _ in $(seq 100); do [ -s "$TMP/pipe.rc" ] && break; sleep 0.1; done
check "-w - whose reader goes away: exit 1, one line, not a silent SIGPIPE" \
	sh -c "[ \"\$(cat '$TMP/pipe.rc')\" = 1 ] && grep -q 'Broken pipe' '$TMP/pipe.err'"
check "  ... and its --ready-file is removed" [ ! -e "$TMP/pipe-ready" ]

# ---- one capture to use below: curl on both addresses and ports ----
check "record --ready-file starts" start_record -q -c "$CG" -w "$TMP/cap.ptcap" --ready-file "$TMP/ready"
check "  ... the ready file holds podtap's pid" [ "$(cat "$TMP/ready" 2>/dev/null)" = "$REC_PID" ]
check "  ... -q still prints the recording line" grep -q '^podtap: recording 1 target' "$TMP/rec.err"
check "  ... a second recorder on the same file is refused, naming the first" \
	one_line_error "another process (pid $REC_PID) is writing it" "$PODTAP" record -c "$CG" -w "$TMP/cap.ptcap"
curl -s -o /dev/null "http://127.0.0.1:$PA/a-first"
curl -s -o /dev/null "http://127.0.0.2:$PA/b-second-addr"
curl -s -o /dev/null "http://127.0.0.1:$PB/c-second-port"
printf 'GET /x HTTP/1.1\r\nHost: a\r\nX-Path: C:\\temp\r\n\r\n' | $PY tests/peers/client_raw.py 127.0.0.1 $PA
seen_closes 4
stop_record
check "record exits 0" [ $? = 0 ]
check "  ... the ready file is gone" [ ! -e "$TMP/ready" ]
check "the capture is mode 0600" [ "$(stat -c %a "$TMP/cap.ptcap")" = 600 ]
chmod 644 "$TMP/keep.ptcap"
"$PODTAP" record -q -c "$CG" -w "$TMP/keep.ptcap" -d 0.2s 2>/dev/null
check "an existing capture overwritten becomes mode 0600" [ "$(stat -c %a "$TMP/keep.ptcap")" = 600 ]

# ---- one vocabulary ----
"$PODTAP" read --json "$TMP/cap.ptcap" > "$TMP/cap.json"
id=$($PY -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][0]["conn_id"])' "$TMP/cap.json")
srv=$(pgrep -f "fixed.py 127.0.0.1 $PA" | head -1)
check "read --json: pid is the process, tid the thread" $PY - "$TMP/cap.json" "$srv" <<'EOF'
import json, sys
c = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(not c or not all(x["pid"] == int(sys.argv[2]) and x["tid"] > 0 for x in c))
EOF
check "read -C takes the decimal id read --json gives" sh -c "'$PODTAP' read -C $id '$TMP/cap.ptcap' | grep -q '^$id '"
check "read -C: an unknown id is an error" one_line_error "no such connection" "$PODTAP" read -C 999999999999 "$TMP/cap.ptcap"
check "read -C: a hex id is refused" one_line_error "not a connection id" "$PODTAP" read -C 0x1f "$TMP/cap.ptcap"
"$PODTAP" read -x "$TMP/cap.ptcap" > "$TMP/cap.txt"
check "read: a labelled header, with MISSING bytes and STATE" grep -q '^ID .*TX .*RX .*MISSING .*STATE' "$TMP/cap.txt"
check "read -x: a backslash is escaped" grep -qF 'X-Path: C:\\temp' "$TMP/cap.txt"
check "read -x: bodies are indented" grep -q '^      | ok$' "$TMP/cap.txt"
"$PODTAP" export -f jsonl -o "$TMP/cap.jsonl" "$TMP/cap.ptcap" 2>/dev/null
check "jsonl: the same ids and pid" $PY - "$TMP/cap.jsonl" "$id" "$srv" <<'EOF'
import json, sys
x = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(not any(e["conn_id"] == int(sys.argv[2]) for e in x) or
         not all(e["pid"] == int(sys.argv[3]) for e in x))
EOF
"$PODTAP" export -f har -o "$TMP/cap.har" "$TMP/cap.ptcap" 2>/dev/null
check "har: the connection is the same decimal id" grep -q "\"connection\":\"$id\"" "$TMP/cap.har"
check "exports are mode 0600" [ "$(stat -c %a "$TMP/cap.har")" = 600 ]
"$PODTAP" export -f keploy -o "$TMP/k" "$TMP/cap.ptcap" 2>/dev/null
check "keploy files are mode 0600" sh -c "[ \$(stat -c %a '$TMP/k/keploy/test-set-0/mocks.yaml') = 600 ] && [ \$(stat -c %a '$TMP/k/keploy/test-set-0/tests/test-1.yaml') = 600 ]"

# to its end, however long loading takes on a busy machine
timeout 30 "$PODTAP" record -q -c "$CG" -w - -d 0.5s 2>/dev/null > "$TMP/stdout.ptcap"
check "record -w - writes the capture to standard output" sh -c "'$PODTAP' read - < '$TMP/stdout.ptcap' | grep -q '^# -: host'"
check "export reads - from standard input" sh -c "'$PODTAP' export -f jsonl - < '$TMP/cap.ptcap' 2>/dev/null | grep -q a-first"
check "pcapng is not written to a terminal" $PY - "$PODTAP" "$TMP/cap.ptcap" <<'EOF'
import os, pty, subprocess, sys
m, s = pty.openpty()
p = subprocess.run([sys.argv[1], "export", "-f", "pcapng", sys.argv[2]], stdout=s, stderr=subprocess.PIPE)
sys.exit(not (p.returncode != 0 and b"terminal" in p.stderr))
EOF
check "a stream over --max-stream is left out: said, exit 1" \
	sh -c "! '$PODTAP' export -f jsonl --max-stream 10 -o '$TMP/big.jsonl' '$TMP/cap.ptcap' 2> '$TMP/big.err' && grep -q 'too large to assemble' '$TMP/big.err'"
check "  ... --allow-partial accepts it" \
	sh -c "'$PODTAP' export -f jsonl --max-stream 10 --allow-partial -o '$TMP/big.jsonl' '$TMP/cap.ptcap' 2>/dev/null"
check "  ... read says it too" sh -c "'$PODTAP' read --max-stream 10 '$TMP/cap.ptcap' | grep -q 'too large to assemble'"
check "export to a full device: the write error" \
	one_line_error "No space left on device" "$PODTAP" export -f jsonl -o "$TMP/full" "$TMP/cap.ptcap"
check "  ... the device is still a device" is_dev "$TMP/full"
for f in pcapng har; do
	check "export -f $f to a full device fails" sh -c "! '$PODTAP' export -f $f -o '$TMP/full' '$TMP/cap.ptcap' 2>/dev/null"
done
"$PODTAP" export -f jsonl -o "$TMP/null" "$TMP/cap.ptcap" 2>/dev/null
check "export to a device writes in place" is_dev "$TMP/null"
check "--log-format json after the command" sh -c "'$PODTAP' read --log-format json /no/such 2>&1 | grep -q '^{\"time\"'"
check "-v and --log-format before the command" sh -c "'$PODTAP' -v --log-format=json read /no/such 2>&1 | grep -q '\"level\"'"

# ---- an export interrupted leaves nothing partial ----
head -c $((8 << 20)) /dev/urandom > "$TMP/8m.bin"
check "record a large capture" start_record -c "$CG" -w "$TMP/large.ptcap"
for _ in 1 2 3 4; do
	(cat "$TMP/8m.bin"; printf '\r\n\r\n') | $PY tests/peers/client_raw.py 127.0.0.1 $PA
done
sleep 0.3
stop_record
mkdir -p "$TMP/int"
for t in 0.02 0.05 0.1 0.2 0.4; do
	for f in jsonl pcapng keploy; do
		timeout -s INT $t "$PODTAP" export -f $f -o "$TMP/int/$f.out" "$TMP/large.ptcap" 2>/dev/null
	done
done 2>/dev/null
check "exports interrupted at 20 to 400 ms leave no temporary file or partial set" \
	sh -c "! find '$TMP/int' -name '.*' | grep -q -e '\.tmp\.' -e partial"
check "keploy -o - is refused (it writes a directory)" one_line_error "writes a directory" "$PODTAP" export -f keploy -o - "$TMP/cap.ptcap"
cp "$TMP/cap.ptcap" "$TMP/self.ptcap"
ln -f "$TMP/self.ptcap" "$TMP/self-link.ptcap"
sum=$(sha256sum < "$TMP/self.ptcap")
check "export over the capture it reads (a hard link to it) is refused" \
	one_line_error "a capture being read" "$PODTAP" export -f pcapng -o "$TMP/self-link.ptcap" "$TMP/self.ptcap"
check "  ... so is standard output appending to it" \
	sh -c "! '$PODTAP' export -f jsonl '$TMP/self.ptcap' >> '$TMP/self.ptcap' 2>/dev/null"
check "  ... and the capture is as it was" [ "$(sha256sum < "$TMP/self.ptcap")" = "$sum" ]
( ulimit -f 64; exec "$PODTAP" export -f jsonl -o "$TMP/fsz.jsonl" "$TMP/large.ptcap" ) 2> "$TMP/fsz.err"
check "a file past ulimit -f: a write error, no temporary file left" \
	sh -c "grep -q 'File too large' '$TMP/fsz.err' && ! ls -a '$TMP' | grep -q 'fsz.jsonl.tmp'"

# ---- sizes and durations: the Kubernetes and Go forms ----
check "--max-bytes 64K: K is not a Kubernetes suffix" one_line_error "not a size" "$PODTAP" record -c "$CG" --max-bytes 64K
check "--max-bytes too large says so" one_line_error "too large" "$PODTAP" record -c "$CG" --max-bytes 99999999Ei
check "--ring-size 3Mi is said rounded to 4Mi" sh -c "'$PODTAP' record -c '$CG' --ring-size 3Mi -w '$TMP/x.ptcap' --metrics 127.0.0.1:$PX 2>&1 | grep -q 'rounded up to 4Mi'"
t0=$(date +%s%N)
"$PODTAP" record -q -c "$CG" -w "$TMP/d.ptcap" --duration 1.5s --max-bytes 1.5Gi 2>/dev/null
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "--duration 1.5s and --max-bytes 1.5Gi are taken (${ms} ms)" [ $rc = 0 ] && [ $ms -ge 1500 ]
check "--duration 1h30m is a duration" sh -c "'$PODTAP' record -c '$CG' --duration 1h30m -w '$TMP/x.ptcap' --metrics 127.0.0.1:$PX 2>&1 | grep -q 'Address already in use'"

# ---- no accidental host-wide capture ----
check "--cgroup '' is an error" one_line_error "an empty path" "$PODTAP" record --cgroup ''
check "--cgroup / needs --all-host" one_line_error "the whole host" "$PODTAP" record --cgroup /
check "--pidns of the host needs --all-host" one_line_error "the whole host" "$PODTAP" record --pidns $$
(echo $BASHPID > "$CG2/cgroup.procs"; exec sleep 30) &
rootpid=$!
PIDS="$PIDS $rootpid"
sleep 0.1
check "--pid of a process in the root cgroup needs --all-host" one_line_error "the whole host" "$PODTAP" record --pid $rootpid
check "--pid '' is an error" one_line_error "empty" "$PODTAP" record --pid ''

# ---- a process that moved into the target after it opened its sockets ----
(echo $BASHPID > "$CGA/cgroup.procs" && exec $PY tests/peers/fixed.py 127.0.0.1 $PM) &
MPID=$!
PIDS="$PIDS $MPID"
wait_port 127.0.0.1 $PM || exit 1
echo $MPID > "$CG/cgroup.procs"
check "record a target a process moved into" start_record -c "$CG" -w "$TMP/moved.ptcap"
check "  ... says its sockets were made in another cgroup" grep -q "made in another cgroup before they moved in" "$TMP/rec.err"
curl -s -o /dev/null "http://127.0.0.1:$PM/moved-in"
sleep 0.3
stop_record
check "  ... and captures them" sh -c "'$PODTAP' read '$TMP/moved.ptcap' | grep -q 'GET http://127.0.0.1:$PM/moved-in'"

# ---- --port and --host, in the kernel, whole connections ----
check "record --port $PB" start_record -c "$CG" --port $PB -w "$TMP/port.ptcap"
curl -s -o /dev/null "http://127.0.0.1:$PA/not-this-port"
curl -s -o /dev/null "http://127.0.0.1:$PB/this-port"
sleep 0.3
stop_record
"$PODTAP" read "$TMP/port.ptcap" > "$TMP/port.txt"
check "  ... only that port" sh -c "grep -q this-port '$TMP/port.txt' && ! grep -q not-this-port '$TMP/port.txt'"
check "record --host 127.0.0.2 --port $PA" start_record -c "$CG" --host 127.0.0.2 --port $PA -w "$TMP/host.ptcap"
curl -s -o /dev/null "http://127.0.0.1:$PA/not-this-host"
curl -s -o /dev/null "http://127.0.0.2:$PA/this-host"
curl -s -o /dev/null "http://127.0.0.1:$PB/not-this-port"
sleep 0.3
stop_record
"$PODTAP" read "$TMP/host.ptcap" > "$TMP/host.txt"
check "  ... only that address and port" sh -c "grep -q this-host '$TMP/host.txt' && ! grep -q not-this '$TMP/host.txt'"
check "--port 0 is refused" one_line_error "not a port" "$PODTAP" record -c "$CG" --port 0
check "--host by name is refused" one_line_error "names are not resolved" "$PODTAP" record -c "$CG" --host localhost

# ---- HTTP/1 framing corners, over real sockets ----
check "record the odd requests" start_record -c "$CG" -w "$TMP/odd.ptcap"
send() { printf "$1" | $PY tests/peers/client_raw.py 127.0.0.1 $PA; }
send 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nContent-Length: 5\r\n\r\n'
send 'GET /blank-after HTTP/1.1\r\nHost: a\r\n\r\n\r\n\r\n'
send 'M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\n\r\n'
send 'GET /bare-lf HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n'
send 'GET /ws-first HTTP/1.1\r\n X-Folded: x\r\nHost: a\r\n\r\n'
send 'POST /empty-te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 2\r\n\r\nhi'
sleep 0.3
stop_record
"$PODTAP" read --json "$TMP/odd.ptcap" > "$TMP/odd.json"
check "HTTP/1 corners: as a strict recipient reads them" $PY - "$TMP/odd.json" <<'EOF'
import json, sys
conns = [json.loads(l) for l in open(sys.argv[1])]
ok = True
def fail(m):
    global ok
    print("  " + m)
    ok = False
def http(c):
    return [x for x in c["exchanges"] if x["kind"] == "http"]
by = {}
for c in conns:
    h = http(c)
    if h:
        by[h[0]["request"]["method"] + " " + h[0]["url"].split("/", 3)[-1]] = (c, h)
def get(prefix):
    for k, v in by.items():
        if k.startswith(prefix):
            return v
    fail("no exchange for " + prefix + " in " + repr(list(by)))
    return None, []
c, h = get("CONNECT")
if h and h[0]["request"]["body_size"] != 0:
    fail("CONNECT got a body: %r" % h[0]["request"])
c, h = get("GET blank-after")
if c is not None and (len(h) != 1 or not h[0]["complete"]):
    fail("blank lines after a request: %d exchanges %r" % (len(h), h))
c, h = get("M-SEARCH")
for k in ("GET bare-lf", "GET ws-first", "POST empty-te"):
    c, h = get(k)
    if h and "ambiguous" not in h[0]:
        fail(k + " is not marked ambiguous: %r" % h[0])
for k in ("CONNECT", "GET blank-after", "M-SEARCH"):
    c, h = get(k)
    if h and "ambiguous" in h[0]:
        fail(k + " is marked ambiguous")
sys.exit(0 if ok else 1)
EOF
"$PODTAP" export -f keploy -o "$TMP/odd" "$TMP/odd.ptcap" 2> "$TMP/odd.err"
check "keploy leaves the ambiguous exchanges out, and says so" grep -q '3 exchanges of ambiguous framing' "$TMP/odd.err"
check "  ... their tests are not written" sh -c "! grep -rq -e bare-lf -e ws-first -e empty-te '$TMP/odd/keploy/test-set-0/tests'"
check "read says ambiguous" sh -c "'$PODTAP' read '$TMP/odd.ptcap' | grep -q 'ambiguous: a header line ends in a bare LF'"

# ---- TLS kept as ciphertext (--no-tls; or a library podtap cannot hook):
# said, and not exported quietly ----
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" \
	-days 1 -subj /CN=localhost 2>/dev/null
(echo $BASHPID > "$CG/cgroup.procs" && exec openssl s_server -quiet -accept 127.0.0.1:$PT \
	-cert "$TMP/cert.pem" -key "$TMP/key.pem" -www) > /dev/null 2>&1 &
PIDS="$PIDS $!"
wait_port 127.0.0.1 $PT || exit 1
check "record TLS" start_record -c "$CG" --no-tls -w "$TMP/tls.ptcap"
curl -sk -o /dev/null "https://127.0.0.1:$PT/"
seen_closes 1
stop_record
check "read says TLS ciphertext" sh -c "'$PODTAP' read '$TMP/tls.ptcap' | grep -q 'TLS ciphertext (not decrypted)'"
"$PODTAP" export -f keploy -o "$TMP/tlsk" "$TMP/tls.ptcap" 2> "$TMP/tls.err"
check "keploy of ciphertext exits 1" [ $? = 1 ]
check "  ... and says what it left out and why" grep -q 'left out: 1 connection of TLS ciphertext' "$TMP/tls.err"
check "  ... --allow-partial accepts it" sh -c "'$PODTAP' export -f keploy --allow-partial -o '$TMP/tlsk' '$TMP/tls.ptcap' 2>/dev/null"
check "har of ciphertext exits 1" sh -c "! '$PODTAP' export -f har -o '$TMP/tls.har' '$TMP/tls.ptcap' 2>/dev/null"
check "pcapng holds ciphertext: exit 0, and its comment says so" sh -c "'$PODTAP' export -f pcapng -o '$TMP/tls.pcapng' '$TMP/tls.ptcap' 2>/dev/null && grep -aq 'TLS ciphertext' '$TMP/tls.pcapng'"

# ---- the agent's bad input ----
: > "$TMP/spoolfile"
check "agent --spool that is a file" one_line_error "not a directory" "$PODTAP" agent --spool "$TMP/spoolfile" --kubeconfig /dev/null
check "agent --node ''" one_line_error "an empty name" "$PODTAP" agent --node ''
cat > "$TMP/kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {client-certificate: $TMP/no-cert.pem, client-key: $TMP/no-key.pem}}]
EOF
check "agent: a missing client certificate is named once" \
	one_line_error "client-certificate $TMP/no-cert.pem: No such file" "$PODTAP" agent --kubeconfig "$TMP/kubeconfig" --spool "$TMP/spool"

# ---- nothing left behind ----
check "no podtap program left loaded" no_podtap_progs
check "no temporary file left" sh -c "! ls -aR '$TMP' | grep -q -e '\\.tmp\\.' -e partial"

echo "e2e_safety: $pass passed, $fail failed"
[ $fail = 0 ]
