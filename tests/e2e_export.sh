#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Exports end to end: real servers in a target cgroup (nginx, and a python3
# service that calls out over HTTP and plain TCP), real clients outside it
# (python3 building its own requests: keep-alive, pipelined, a 10 MiB
# chunked upload after 100-continue, gzip; and curl). tshark captures the
# same traffic on lo while podtap records. Then every export is checked
# against what the clients sent and got (tests/export_check.py), and the
# pcapng against tshark's own capture, stream by stream, byte for byte.
# Needs root; prints "e2e_export: N passed, M failed" at the end.
set -u
cd "$(dirname "$0")/.."
PODTAP=$PWD/podtap
NGINX_PORT=18491
APP_PORT=18492
UP_PORT=18493
ECHO_PORT=18494
PY=/usr/bin/python3	# Debian's, with python3-yaml

if [ "$(id -u)" != 0 ]; then
	echo "e2e_export: SKIP: needs root"
	echo "e2e_export: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
for t in nginx curl tshark $PY; do
	command -v $t >/dev/null || { echo "e2e_export: missing $t (make deps)"; exit 1; }
done
$PY -c 'import yaml' 2>/dev/null || { echo "e2e_export: missing python3-yaml (make deps)"; exit 1; }

. tests/lib.sh
CG2=$(cg2_root)
TMP=$(mktemp -d /tmp/podtap-export.XXXXXX)
CG=$CG2/podtap-export-$$
NGINX_PID= PIDS=

cleanup() {
	for p in $PIDS $NGINX_PID; do kill $p 2>/dev/null; done
	wait 2>/dev/null
	rmdir "$CG" 2>/dev/null
	[ -n "${KEEP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT


# ---- servers: nginx and the app in the target cgroup, peers outside ----
mkdir -p "$TMP/www" "$TMP/up"
printf 'small file\n' > "$TMP/www/small.txt"
$PY -c 'print("gzip me please " * 4000)' > "$TMP/www/text.txt"
printf 'upstream data\n' > "$TMP/up/data.txt"
start_nginx "$TMP" $NGINX_PORT "$CG" \
	"dav_methods PUT; client_max_body_size 20m; gzip on; gzip_types text/plain; gzip_min_length 100;" || exit 1
(echo $BASHPID > "$CG/cgroup.procs" && exec $PY tests/peers/app.py $APP_PORT $UP_PORT $ECHO_PORT) &
PIDS="$PIDS $!"
$PY -m http.server $UP_PORT --bind 127.0.0.1 --directory "$TMP/up" > /dev/null 2>&1 &
PIDS="$PIDS $!"
$PY tests/peers/echo.py $ECHO_PORT &
PIDS="$PIDS $!"
for p in $APP_PORT $UP_PORT $ECHO_PORT; do wait_port $p || exit 1; done

# ---- tshark and podtap, then the traffic ----
ports="tcp port $NGINX_PORT or tcp port $APP_PORT or tcp port $UP_PORT or tcp port $ECHO_PORT"
tshark -q -i lo -B 256 -f "$ports" -w "$TMP/real.pcapng" 2> "$TMP/tshark.err" &
TSHARK=$!
PIDS="$PIDS $TSHARK"
for _ in $(seq 100); do grep -q Capturing "$TMP/tshark.err" && break; sleep 0.05; done
"$PODTAP" record --cgroup "$CG" --ring-size 64Mi -w "$TMP/cap.ptcap" 2> "$TMP/rec.err" &
REC=$!
for _ in $(seq 200); do grep -q recording "$TMP/rec.err" && break; sleep 0.05; done
check "record and tshark started" grep -q recording "$TMP/rec.err"

$PY tests/peers/client.py $NGINX_PORT $APP_PORT "$TMP/truth.json"
check "the python3 client ran" [ $? = 0 ]
curl -s --compressed -o "$TMP/curl-text.out" "http://127.0.0.1:$NGINX_PORT/text.txt?n=100"
curl -s -o "$TMP/curl-hello.out" "http://127.0.0.1:$APP_PORT/hello?n=101"
check "curl ran" cmp -s "$TMP/curl-text.out" "$TMP/www/text.txt"
sleep 0.5
kill -INT $REC
wait $REC
check "record exits 0" [ $? = 0 ]
kill -INT $TSHARK
wait $TSHARK 2>/dev/null
check "nginx stored the 10 MiB upload" [ "$(stat -c %s "$TMP/www/upload.bin")" = $((10 << 20)) ]
check "nothing lost in the recording" \
	sh -c "'$PODTAP' read '$TMP/cap.ptcap' | grep -q '^# kernel: .* 0 events lost'"

# ---- exports ----
"$PODTAP" export -f keploy -o "$TMP/out" "$TMP/cap.ptcap" 2> "$TMP/export.err"
check "export keploy exits 0" [ $? = 0 ]
check "  ... into keploy/test-set-0" [ -d "$TMP/out/keploy/test-set-0/tests" ]
"$PODTAP" export -f keploy -o "$TMP/out" "$TMP/cap.ptcap" 2>/dev/null
check "a second export is test-set-1" [ -f "$TMP/out/keploy/test-set-1/mocks.yaml" ]
check "read streamed says what read whole says" same_read "$TMP/cap.ptcap"
# text waiting for an older connection goes to a file in $TMPDIR; with
# none to be had it stays in memory, said in one line, and read is whole
TMPDIR=/no/such/dir "$PODTAP" read -x "$TMP/cap.ptcap" > "$TMP/nt.out" 2> "$TMP/nt.err"
ntrc=$?
check "read with no TMPDIR to hold what waits: exits 0, one line says so" \
	eval '[ $ntrc = 0 ] && [ "$(wc -l < "$TMP/nt.err")" = 1 ] && grep -q "held in memory instead" "$TMP/nt.err"'
check "  ... and prints what read whole prints" sh -c \
	"PODTAP_READ_WHOLE=1 '$PODTAP' read -x '$TMP/cap.ptcap' | sed '1s|^# [^:]*: host|# F: host|' > '$TMP/nt.whole' &&
	 sed '1s|^# [^:]*: host|# F: host|' '$TMP/nt.out' | cmp -s - '$TMP/nt.whole'"
# standard input from a pipe is kept in a file there to be read twice;
# with no such file to be had, it is read whole, said in one line
cat "$TMP/cap.ptcap" | TMPDIR=/no/such/dir "$PODTAP" read -x - > "$TMP/nt.out" 2> "$TMP/nt.err"
ntrc=$?
check "read - with no TMPDIR: exits 0, one line says it reads whole" \
	eval '[ $ntrc = 0 ] && [ "$(wc -l < "$TMP/nt.err")" = 1 ] && grep -q "it is read whole, in memory" "$TMP/nt.err"'
check "  ... and prints what read whole prints" sh -c \
	"sed '1s|^# [^:]*: host|# F: host|' '$TMP/nt.out' | cmp -s - '$TMP/nt.whole'"
check "read - of an endless pipe that is no capture: one line, at once" \
	sh -c "yes | timeout 20 '$PODTAP' read - > /dev/null 2> '$TMP/yes.err'; [ \$? = 1 ] &&
	       [ \$(wc -l < '$TMP/yes.err') = 1 ] && grep -q 'not a podtap capture' '$TMP/yes.err'"
# --dump streams too: its bytes come in a third pass, their text waits
# in the spool file for the connections before it
"$PODTAP" -v read --dump "$TMP/cap.ptcap" > "$TMP/dump.out" 2> "$TMP/dump.err"
check "read --dump streamed: what read whole prints, its text through the spool" sh -c \
	"PODTAP_READ_WHOLE=1 '$PODTAP' read --dump '$TMP/cap.ptcap' | cmp -s - '$TMP/dump.out' &&
	 grep -q 'debug: [1-9][0-9]* bytes of text waited in a file' '$TMP/dump.err' &&
	 [ \$(grep -c '^--- ' '$TMP/dump.out') -ge 4 ]"
# a pipe cannot be read twice: read whole
mkfifo "$TMP/fifo"
(cat "$TMP/cap.ptcap" > "$TMP/fifo" &)
check "read of a FIFO reads it whole, once" sh -c \
	"timeout 60 '$PODTAP' read -x '$TMP/fifo' | sed '1s|^# [^:]*: host|# F: host|' | cmp -s - '$TMP/nt.whole'"
# the file replaced between the two passes (its second open held back 2 s)
# (strace: make deps installs it)
cp "$TMP/cap.ptcap" "$TMP/victim.ptcap"
strace -o /dev/null -P "$TMP/victim.ptcap" -e trace=openat \
	-e inject=openat:delay_enter=2000000:when=2 \
	"$PODTAP" read "$TMP/victim.ptcap" > "$TMP/victim.out" 2> "$TMP/victim.err" &
vpid=$!
sleep 1
head -c 4096 "$TMP/cap.ptcap" > "$TMP/victim.new" && mv "$TMP/victim.new" "$TMP/victim.ptcap"
wait $vpid
vrc=$?
check "read of a file replaced while it is read: exit 1, one line" \
	eval '[ $vrc = 1 ] && [ "$(wc -l < "$TMP/victim.err")" = 1 ] && grep -q "changed while it was read" "$TMP/victim.err"'
check "export har exits 0" "$PODTAP" export -f har -o "$TMP/out.har" "$TMP/cap.ptcap"
check "export jsonl exits 0" "$PODTAP" export -f jsonl -o "$TMP/out.jsonl" "$TMP/cap.ptcap"
check "export pcapng exits 0" "$PODTAP" export -f pcapng -o "$TMP/out.pcapng" "$TMP/cap.ptcap"
check "no temporary file left" sh -c "! ls -a '$TMP' '$TMP/out/keploy' | grep -q -e '\\.tmp\\.' -e partial"

# Keploy's YAML library (Debian's golang-gopkg-yaml.v3-dev) into structs
# with Keploy's field names, unknown keys refused: what Keploy would read
mkdir -p "$TMP/gocache"
if GOCACHE=$TMP/gocache GO111MODULE=off GOPATH=/usr/share/gocode \
	go build -o "$TMP/keploy_decode" ./tests/peers/keploy_decode 2> "$TMP/go.err"; then
	"$TMP/keploy_decode" "$TMP/out/keploy/test-set-0" > "$TMP/keploy.json" 2> "$TMP/decode.err"
	check "Keploy's yaml.v3 decodes every test and mock into its structs, no unknown key" \
		test $? = 0 || cat "$TMP/decode.err"
else
	notok "the Keploy decoder builds (golang-go, golang-gopkg-yaml.v3-dev: make deps)"
	cat "$TMP/go.err"
fi
$PY tests/export_check.py "$TMP" $NGINX_PORT $APP_PORT $UP_PORT $ECHO_PORT
check "exports equal what the clients sent and got, and Keploy reads what the YAML says" [ $? = 0 ]
"$PODTAP" export -f keploy --redact x-from --redact n -o "$TMP/redacted" "$TMP/cap.ptcap" 2>/dev/null
check "--redact blanks a header field and a query parameter in what is written" $PY -c '
import glob, sys, yaml
d = sys.argv[1] + "/keploy/test-set-0"
mocks = list(yaml.load_all(open(d + "/mocks.yaml"), Loader=yaml.CSafeLoader))
tests = [yaml.load(open(f), Loader=yaml.CSafeLoader) for f in glob.glob(d + "/tests/*.yaml")]
h = [m["spec"]["req"]["header"].get("X-From") for m in mocks if m["kind"] == "Http"]
q = [t["spec"]["req"]["url_params"].get("n") for t in tests if "url_params" in t["spec"]["req"]]
sys.exit(0 if h == ["[REDACTED]"] and q and set(q) == {"[REDACTED]"} and
         all("n=[REDACTED]" in t["spec"]["req"]["url"] for t in tests if "url_params" in t["spec"]["req"]) else 1)' "$TMP/redacted"
check "--redact is refused for pcapng, in one line" \
	one_line_error "holds the bytes" "$PODTAP" export -f pcapng --redact x -o "$TMP/r.pcapng" "$TMP/cap.ptcap"

"$PODTAP" read -x "$TMP/cap.ptcap" > "$TMP/read.txt"
check "read lists the exchanges" grep -q "GET http://127.0.0.1:$APP_PORT/hello?n=8 -> 200 OK" "$TMP/read.txt"
check "read -x shows a gzip body decoded" grep -q 'after gzip decoding' "$TMP/read.txt"
check "read shows raw turns" grep -q 'raw, protocol unknown: client' "$TMP/read.txt"

# ---- bytes not captured: a ring far too small for a 4 MiB upload ----
head -c $((4 << 20)) /dev/urandom > "$TMP/up4.bin"
"$PODTAP" record --cgroup "$CG" --ring-size 64Ki --poll 200ms -w "$TMP/lossy.ptcap" 2> "$TMP/rec.err" &
REC=$!
for _ in $(seq 200); do grep -q recording "$TMP/rec.err" && break; sleep 0.05; done
# One keep-alive connection: the upload overflows the ring; a pause longer
# than --poll lets it drain before the GET, so the GET is whole whatever
# the machine's load, and it follows the gap on the same stream (a gap at
# a stream's very end would show tshark no segment missing).
$PY - "$NGINX_PORT" "$TMP/up4.bin" <<'PY'
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
c.request("PUT", "/up4.bin", body=open(sys.argv[2], "rb").read())
c.getresponse().read()
time.sleep(1)
c.request("GET", "/small.txt")
c.getresponse().read()
c.close()
PY
sleep 0.5
kill -INT $REC
wait $REC
"$PODTAP" read "$TMP/lossy.ptcap" > "$TMP/lossy.txt"
check "the small ring lost bytes" grep -q 'incomplete' "$TMP/lossy.txt"
"$PODTAP" export -f jsonl -o "$TMP/lossy.jsonl" "$TMP/lossy.ptcap"
check "jsonl marks the cut exchange incomplete" $PY -c '
import json, sys
x = [json.loads(l) for l in open(sys.argv[1])]
put = [e for e in x if e.get("request", {}).get("method") == "PUT"]
get = [e for e in x if e.get("request", {}).get("method") == "GET"]
sys.exit(not (put and not put[0]["complete"] and "not captured" in put[0]["note"]
              and get and get[0]["complete"]))' "$TMP/lossy.jsonl"
"$PODTAP" export -f keploy -o "$TMP/lossy" "$TMP/lossy.ptcap" 2> "$TMP/lossy.err"
check "keploy leaves the incomplete exchange out" \
	sh -c "grep -q 'left out' '$TMP/lossy.err' && [ \$(ls '$TMP/lossy/keploy/test-set-0/tests' | wc -l) = 1 ]"
"$PODTAP" export -f pcapng -o "$TMP/lossy.pcapng" "$TMP/lossy.ptcap"
check "pcapng: gaps are missing segments, with a comment" \
	sh -c "tshark -r '$TMP/lossy.pcapng' -Y tcp.analysis.lost_segment 2>/dev/null | grep -q . &&
	       tshark -r '$TMP/lossy.pcapng' -Y 'frame.comment contains \"not captured\"' 2>/dev/null | grep -q ."

# ---- bad input ----
check "no format" one_line_error "give --format" "$PODTAP" export "$TMP/cap.ptcap"
check "unknown format" one_line_error "unknown format" "$PODTAP" export -f xml "$TMP/cap.ptcap"
check "not a capture" one_line_error "not a podtap capture" "$PODTAP" export -f har /etc/hostname
check "unwritable --out" one_line_error "No such file" "$PODTAP" export -f har -o /no/such/dir/x.har "$TMP/cap.ptcap"
check "--max-held below 1 MiB" one_line_error "max-held" "$PODTAP" export -f jsonl --max-held 10 "$TMP/cap.ptcap"
# streamed formats write as they read: a bad second file leaves no output
check "a bad second file: one line, nothing written" sh -c "
	! '$PODTAP' export -f jsonl -o '$TMP/two.jsonl' '$TMP/cap.ptcap' /etc/hostname 2> '$TMP/two.err' &&
	[ \$(wc -l < '$TMP/two.err') = 1 ] && grep -q 'not a podtap capture' '$TMP/two.err' &&
	[ ! -e '$TMP/two.jsonl' ] && [ -z \"\$(ls '$TMP' | grep two.jsonl)\" ]"
for bad in /etc/hostname "$TMP/cap.ptcap"; do
	check "to standard output, a bad second file ($bad) is refused before a byte is written" sh -c "
		! '$PODTAP' export -f jsonl '$TMP/cap.ptcap' '$bad' > '$TMP/two.out' 2> '$TMP/two.err' &&
		[ \$(wc -l < '$TMP/two.err') = 1 ] && [ ! -s '$TMP/two.out' ]"
done
check "export --help" sh -c "'$PODTAP' export --help | grep -q keploy"

echo "e2e_export: $pass passed, $fail failed"
[ $fail = 0 ]
