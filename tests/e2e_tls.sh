#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# TLS plaintext end to end: a python3 HTTPS server (OpenSSL's _ex calls),
# nginx with TLS (a 3 MiB file) and a server with OpenSSL linked in
# statically (tests/peers/tls_static.c) in target cgroups, curl
# (SSL_read/SSL_write) and python3 clients, one of
# them in the target cgroup too, keep-alive with bodies from 1 byte to
# 1 MiB, a client started after recording began, 50 parallel connections,
# openssl s_server and s_client, s_server -www (the SSL BIO), a library
# hooked mid-session; the same
# requests over HTTPS and plain HTTP must export the same exchanges.
# The plaintext podtap recorded must be what was sent, both directions, on
# the right connection (its 4-tuple), exported with no ciphertext; with
# --no-tls it stays ciphertext; nothing is left attached.
# Needs root; prints "e2e_tls: N passed, M failed" at the end.
set -u
cd "$(dirname "$0")/.."
PODTAP=$PWD/podtap
PORT=18501
NGINX_PORT=18502
NGINX_TLS=18503
STATIC_PORT=18504
SCLI_PORT=18505
LATE_PORT=18507
HTTP_PORT=18508
METRICS_PORT=18509
WWW_PORT=18510
BORING_PORT=18519
WHEEL_PORT=18520
MNT_PORT=18521
EXEC_PORT=18522
BORING_LIB=/usr/lib/x86_64-linux-gnu/android	# Debian's android-libboringssl
PY=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then
	echo "e2e_tls: SKIP: needs root"
	echo "e2e_tls: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
for t in openssl curl gcc $PY; do
	command -v $t >/dev/null || { echo "e2e_tls: missing $t (make deps)"; exit 1; }
done
[ -e $BORING_LIB/libssl.so ] || { echo "e2e_tls: missing android-libboringssl-dev (make deps)"; exit 1; }
. tests/lib.sh
CG2=$(cg2_root)
TMP=$(mktemp -d /tmp/podtap-tls.XXXXXX)
CG=$CG2/podtap-tls-$$
CGC=$CG2/podtap-tls-client-$$
CGN=$CG2/podtap-tls-nginx-$$
SRV= HTTP_SRV= REC_PID= NGINX_PID= STATIC_PID= STRIPPED_PID= BORING_PID= WHEEL_PID= MNT_PID= S_SERVER=

cleanup() {
	[ -n "$REC_PID" ] && kill -INT $REC_PID 2>/dev/null && wait $REC_PID 2>/dev/null
	[ -n "$SRV" ] && kill $SRV $HTTP_SRV 2>/dev/null && wait $SRV $HTTP_SRV 2>/dev/null
	[ -n "$S_SERVER" ] && kill $S_SERVER 2>/dev/null && wait $S_SERVER 2>/dev/null
	[ -n "$STATIC_PID" ] && kill $STATIC_PID $STRIPPED_PID 2>/dev/null && wait $STATIC_PID $STRIPPED_PID 2>/dev/null
	[ -n "$BORING_PID" ] && kill $BORING_PID 2>/dev/null && wait $BORING_PID 2>/dev/null
	[ -n "$WHEEL_PID" ] && kill $WHEEL_PID 2>/dev/null && wait $WHEEL_PID 2>/dev/null
	[ -n "$MNT_PID" ] && kill $MNT_PID 2>/dev/null && wait $MNT_PID 2>/dev/null
	[ -n "$NGINX_PID" ] && kill $NGINX_PID 2>/dev/null && wait $NGINX_PID 2>/dev/null
	rmdir "$CG" "$CGC" "$CGN" 2>/dev/null
	[ -n "${KEEP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT


self_signed "$TMP"
mkdir -p "$CG" "$CGC"
(echo $BASHPID > "$CG/cgroup.procs" &&
	exec $PY tests/peers/tls_server.py $PORT "$TMP/cert.pem" "$TMP/key.pem") &
SRV=$!
wait_port $PORT || { echo "the TLS server did not start"; exit 1; }
# the same server over plain HTTP: what export gives must be the same
(echo $BASHPID > "$CG/cgroup.procs" && exec $PY tests/peers/tls_server.py $HTTP_PORT - -) &
HTTP_SRV=$!
wait_port $HTTP_PORT || { echo "the HTTP server did not start"; exit 1; }
# nginx with TLS too (SSL_read/SSL_write from its event loop)
mkdir -p "$TMP/nginx/www"
chmod 711 "$TMP"	# nginx's workers pass through to their root
head -c $((3 << 20)) /dev/urandom > "$TMP/nginx/www/big.bin"
head -c $((1 << 20)) /dev/urandom > "$TMP/nginx/www/cmp.bin"
start_nginx "$TMP/nginx" $NGINX_PORT "$CGN" \
	"listen 127.0.0.1:$NGINX_TLS ssl; ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;" ||
	exit 1
# OpenSSL linked into the executable: its own SSL_read and SSL_write
gcc -O2 -Wall -o "$TMP/tls_static" tests/peers/tls_static.c \
	-Wl,-Bstatic -lssl -lcrypto -Wl,-Bdynamic -lpthread
check "a server with OpenSSL linked in statically builds" [ $? = 0 ]
check "it has no libssl.so to load" sh -c "! ldd '$TMP/tls_static' | grep -q libssl"
(echo $BASHPID > "$CG/cgroup.procs" &&
	exec "$TMP/tls_static" $STATIC_PORT "$TMP/cert.pem" "$TMP/key.pem") &
STATIC_PID=$!
wait_port $STATIC_PORT || { echo "the static TLS server did not start"; exit 1; }
# ... and a stripped copy: found, said, not hooked
cp "$TMP/tls_static" "$TMP/tls_stripped" && strip "$TMP/tls_stripped"
(echo $BASHPID > "$CG/cgroup.procs" &&
	exec "$TMP/tls_stripped" $((STATIC_PORT + 2)) "$TMP/cert.pem" "$TMP/key.pem") &
STRIPPED_PID=$!
wait_port $((STATIC_PORT + 2)) || { echo "the stripped TLS server did not start"; exit 1; }
# the same server on BoringSSL: its libssl.so.0, SSL_read and SSL_write
# and no _ex forms, found by the file's name like OpenSSL's
gcc -O2 -Wall -I/usr/include/android -o "$TMP/tls_boring" tests/peers/tls_static.c \
	-L$BORING_LIB -Wl,-rpath,$BORING_LIB -lssl -lcrypto -lpthread
check "a server on BoringSSL builds and loads its libssl.so.0" \
	sh -c "ldd '$TMP/tls_boring' | grep -q '$BORING_LIB/libssl.so.0'"
(echo $BASHPID > "$CG/cgroup.procs" &&
	exec "$TMP/tls_boring" $BORING_PORT "$TMP/cert.pem" "$TMP/key.pem") &
BORING_PID=$!
wait_port $BORING_PORT || { echo "the BoringSSL server did not start"; exit 1; }
# OpenSSL as Python wheels bundle it (auditwheel renames it
# libssl-HASH.so.3): the only libssl the server maps
mkdir -p "$TMP/wheel"
cp "$(ldconfig -p | awk '/libssl.so.3 .*x86-64/ { print $NF; exit }')" "$TMP/wheel/libssl-1a2b3c4d.so.3"
(echo $BASHPID > "$CG/cgroup.procs" && LD_PRELOAD="$TMP/wheel/libssl-1a2b3c4d.so.3" \
	exec $PY tests/peers/tls_server.py $WHEEL_PORT "$TMP/cert.pem" "$TMP/key.pem") &
WHEEL_PID=$!
wait_port $WHEEL_PORT || { echo "the server with a wheel's libssl did not start"; exit 1; }
# a container's own libssl: a copy on a tmpfs mounted in a mount
# namespace of the server's own, at a path that does not exist outside
mkdir -p "$TMP/mnt"
(echo $BASHPID > "$CG/cgroup.procs" && exec unshare --mount --propagation private \
	sh -c "mount -t tmpfs podtap-tls '$TMP/mnt' && cp '$TMP/wheel/libssl-1a2b3c4d.so.3' '$TMP/mnt/libssl.so.3' &&
		LD_PRELOAD='$TMP/mnt/libssl.so.3' exec $PY tests/peers/tls_server.py $MNT_PORT '$TMP/cert.pem' '$TMP/key.pem'") &
MNT_PID=$!
wait_port $MNT_PORT || { echo "the server in a mount namespace of its own did not start"; exit 1; }
check "its libssl is not there outside its mount namespace" \
	sh -c "[ ! -e '$TMP/mnt/libssl.so.3' ] && grep -q ' $TMP/mnt/libssl.so.3\$' /proc/$MNT_PID/maps"

# ---- record the server's cgroup and a client cgroup ----
start_record --cgroup "$CG" --cgroup "$CGC" --cgroup "$CGN" --ring-size 64Mi \
	--metrics 127.0.0.1:$METRICS_PORT -w "$TMP/cap.ptcap"
check "record started" [ $? = 0 ]
# every probe on Debian's OpenSSL (libssl, and linked in) is on an
# instruction the kernel emulates: single-stepping one costs some 30 times more
curl -s http://127.0.0.1:$METRICS_PORT/metrics > "$TMP/metrics.txt"
check "TLS probes: all on emulated instructions" \
	sh -c "grep -qE '^podtap_tls_probes\{instruction=\"emulated\"\} [1-9]' '$TMP/metrics.txt' &&
		grep -qx 'podtap_tls_probes{instruction=\"single_stepped\"} 0' '$TMP/metrics.txt'"
check "record says the server's libssl is hooked" \
	grep -q "TLS: pid $SRV (python3) uses .*libssl.so.3 (OpenSSL 3\.[^)]*): its SSL_read and SSL_write calls are hooked" "$TMP/rec.err"
check "record says the static server's own OpenSSL is hooked" \
	grep -q "TLS: pid $STATIC_PID (tls_static) runs $TMP/tls_static, which has OpenSSL linked in ([^)]*): its SSL_read and SSL_write calls are hooked" "$TMP/rec.err"
check "record says why the stripped copy is not hooked" \
	grep -q "TLS: pid $STRIPPED_PID (tls_stripped) runs $TMP/tls_stripped, which has OpenSSL linked in ([^)]*): not hooked (stripped: no SSL_read or SSL_write symbol to hook): its TLS stays ciphertext" "$TMP/rec.err"
check "record says BoringSSL's libssl is hooked" \
	grep -q "TLS: pid $BORING_PID (tls_boring) uses $BORING_LIB/libssl.so.0 (BoringSSL): its SSL_read and SSL_write calls are hooked" "$TMP/rec.err"
check "record says the wheel's libssl is hooked" \
	grep -q "TLS: pid $WHEEL_PID (python3) uses $TMP/wheel/libssl-1a2b3c4d.so.3 (OpenSSL 3\.[^)]*): its SSL_read and SSL_write calls are hooked" "$TMP/rec.err"
check "record hooks the libssl of a process in another mount namespace" \
	grep -q "TLS: pid $MNT_PID (python3) uses $TMP/mnt/libssl.so.3 (OpenSSL 3\.[^)]*): its SSL_read and SSL_write calls are hooked" "$TMP/rec.err"
# podtap status: each target process's library, version, hooked or why not
"$PODTAP" status > "$TMP/status.txt" 2>&1
"$PODTAP" status --json > "$TMP/status.json" 2>&1
check "status: the server's libssl and its version, hooked" \
	grep -q "^    pid $SRV (python3) uses /.*libssl.so.3 (OpenSSL 3\.[^)]*): hooked$" "$TMP/status.txt"
check "status: the stripped server, not hooked, and why" \
	grep -q "^    pid $STRIPPED_PID (tls_stripped) runs $TMP/tls_stripped, which has OpenSSL linked in ([^)]*): not hooked (stripped: no SSL_read or SSL_write symbol to hook)" "$TMP/status.txt"
check "status --json: tls_processes of this recorder" $PY - "$TMP/status.json" $REC_PID $SRV $STATIC_PID $STRIPPED_PID <<'PY'
import json, sys
rec, srv, static, stripped = (int(a) for a in sys.argv[2:6])
me = [r for r in json.load(open(sys.argv[1]))["recorders"] if rec in r["pids"]]
ps = {p["pid"]: p for p in me[0]["tls_processes"]} if me else {}
ok = (ps.get(srv, {}).get("library") == "shared" and ps[srv]["hooked"] and
      ps[srv]["plaintext"] == "socket" and ps[srv]["version"].startswith("OpenSSL 3.") and
      ps.get(static, {}).get("library") == "static" and ps[static]["hooked"] and
      ps.get(stripped, {}).get("hooked") is False and
      ps[stripped]["plaintext"] == "none" and "stripped" in ps[stripped]["reason"] and
      me[0]["tls_processes_not_listed"] == 0)
sys.exit(0 if ok else 1)
PY

# curl outside the targets: the server side is captured
curl -sk --http1.1 -o "$TMP/nginx-big.out" "https://127.0.0.1:$NGINX_TLS/big.bin"
check "curl got nginx's 3 MiB over TLS" cmp -s "$TMP/nginx-big.out" "$TMP/nginx/www/big.bin"
for n in 1 100 16384 70000; do
	curl -sk --http1.1 -o "$TMP/curl-$n.out" "https://127.0.0.1:$PORT/n/$n"
done
# the same requests over HTTPS and over plain HTTP, to python3 and nginx
head -c 200000 /dev/urandom > "$TMP/cmp-post.bin"
for url in https://127.0.0.1:$PORT http://127.0.0.1:$HTTP_PORT; do
	for n in 7001 7100 23000; do
		curl -sk --http1.1 -o /dev/null "$url/n/$n"
	done
	curl -sk --http1.1 -o /dev/null --data-binary @"$TMP/cmp-post.bin" "$url/echo"
done
for url in https://127.0.0.1:$NGINX_TLS http://127.0.0.1:$NGINX_PORT; do
	curl -sk --http1.1 -o /dev/null "$url/cmp.bin"
done
curl -sk --http1.1 -o "$TMP/static.out" "https://127.0.0.1:$STATIC_PORT/n/50000"
for n in 1 100 16384 70000; do
	curl -sk --http1.1 -o "$TMP/boring-$n.out" "https://127.0.0.1:$BORING_PORT/n/$n"
done
curl -sk --http1.1 -o /dev/null "https://127.0.0.1:$WHEEL_PORT/n/4321"
curl -sk --http1.1 -o /dev/null "https://127.0.0.1:$MNT_PORT/n/5555"
check "curl got the BoringSSL server's 70000 bytes" sh -c "[ \$(stat -c %s '$TMP/boring-70000.out') = 70000 ]"
check "curl got the static server's 50000 bytes" sh -c "[ \$(stat -c %s '$TMP/static.out') = 50000 ]"
# openssl s_server and s_client, both targets: the tools' own SSL_read
# and SSL_write, a line each way
mkfifo "$TMP/s_in"
(echo $BASHPID > "$CG/cgroup.procs" &&
	exec openssl s_server -quiet -accept 127.0.0.1:$SCLI_PORT \
		-cert "$TMP/cert.pem" -key "$TMP/key.pem" < "$TMP/s_in" > "$TMP/s_server.out" 2>&1) &
S_SERVER=$!
(sleep 1.5; echo "reply from s_server"; sleep 3) > "$TMP/s_in" &
wait_listen $SCLI_PORT
(echo $BASHPID > "$CGC/cgroup.procs" &&
	(echo "line from s_client"; sleep 2.5) | exec timeout 10 openssl s_client -quiet \
		-connect 127.0.0.1:$SCLI_PORT > "$TMP/s_client.out" 2> /dev/null)
kill $S_SERVER 2>/dev/null
wait $S_SERVER 2>/dev/null
check "openssl s_client and s_server spoke" \
	sh -c "grep -q 'reply from s_server' '$TMP/s_client.out' && grep -q 'line from s_client' '$TMP/s_server.out'"
# openssl s_server -www reads and writes through the SSL BIO, which calls
# OpenSSL's inner read and write functions, not SSL_read or SSL_write
(echo $BASHPID > "$CG/cgroup.procs" &&
	exec openssl s_server -www -quiet -accept 127.0.0.1:$WWW_PORT \
		-cert "$TMP/cert.pem" -key "$TMP/key.pem" > /dev/null 2>&1) &
WWW_PID=$!
wait_listen $WWW_PORT
sleep 2.5	# the next scan says it
check "status lists s_server -www while it runs" \
	sh -c "'$PODTAP' status | grep -q '^    pid $WWW_PID (openssl) uses .*: hooked$'"
curl -sk --http1.1 -o "$TMP/www.out" "https://127.0.0.1:$WWW_PORT/"
kill $WWW_PID 2>/dev/null
wait $WWW_PID 2>/dev/null
check "openssl s_server -www answered" grep -q "Ciphers supported" "$TMP/www.out"
# a python3 client in the client cgroup, started after recording began:
# keep-alive, sizes to 1 MiB, a POST echoed, each connection's 4-tuple
(echo $BASHPID > "$CGC/cgroup.procs" && exec $PY - $PORT "$TMP/truth.json" <<'PY'
import http.client, json, ssl, sys
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, "tests/peers")
from tls_server import body
port, out = int(sys.argv[1]), sys.argv[2]
ctx = ssl._create_unverified_context()
truth = {"keepalive": None, "parallel": []}

def conn():
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    c.connect()
    return c, "%s:%d" % c.sock.getsockname()

c, local = conn()
sizes = [1, 2, 100, 4096, 16384, 16385, 65536, 1 << 20]
for k in sizes:
    c.request("GET", "/n/%d" % k)
    r = c.getresponse().read()
    assert r == body(k), k
post = bytes(range(256)) * 300
c.request("POST", "/echo", body=post)
assert c.getresponse().read() == post
c.close()
truth["keepalive"] = {"local": local, "sizes": sizes, "post": len(post)}

def one(i):
    c, local = conn()
    c.request("GET", "/n/%d" % (1000 + i))
    assert c.getresponse().read() == body(1000 + i)
    c.close()
    return {"local": local, "n": 1000 + i}

with ThreadPoolExecutor(50) as ex:
    truth["parallel"] = list(ex.map(one, range(50)))
json.dump(truth, open(out, "w"))
PY
)
check "the python3 client ran" [ -s "$TMP/truth.json" ]
# a copy of libssl from another path (another file: hooked by the next
# scan, within 2 s), in a client started after recording began
mkdir -p "$TMP/lib"
cp "$(ldconfig -p | awk '/libssl.so.3 .*x86-64/ { print $NF; exit }')" "$TMP/lib/"
(echo $BASHPID > "$CGC/cgroup.procs" && LD_LIBRARY_PATH="$TMP/lib" exec $PY - $PORT "$TMP/copy.txt" <<'PY'
import http.client, ssl, sys, time
time.sleep(5)  # the next scan (every 2 s) hooks the copy
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]),
                                context=ssl._create_unverified_context())
c.request("GET", "/n/4242")
open(sys.argv[2], "w").write("%s:%d" % c.sock.getsockname() if c.sock else "")
c.getresponse().read()
maps = open("/proc/self/maps").read()
open(sys.argv[2], "a").write("\n" + ("copy" if sys.argv[2].rsplit("/", 1)[0] + "/lib/" in maps else "system"))
PY
)
check "the client used the copy of libssl" grep -q copy "$TMP/copy.txt"
check "record says it hooked the copy" grep -q "uses $TMP/lib/libssl.so.3 (OpenSSL 3\.[^)]*): its SSL_read" "$TMP/rec.err"
# another copy, new to podtap, in a client that sends 32 KiB at once and
# the rest once podtap has hooked the copy (its next scan): plaintext of
# a session it joined late is not presented as whole. A scan that came
# before the first 32 KiB (its plaintext then has them) spoils an
# attempt: two attempts, each with its own copy.
for attempt in 1 2; do
	mkdir -p "$TMP/late$attempt"
	cp "$TMP/lib/libssl.so.3" "$TMP/late$attempt/"
	$PY - $LATE_PORT "$TMP/cert.pem" "$TMP/key.pem" <<'PY' &
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
ls = socket.create_server(("127.0.0.1", int(sys.argv[1])))
c = ctx.wrap_socket(ls.accept()[0], server_side=True)
while c.recv(65536):
    pass
PY
	LATE_SRV=$!
	wait_listen $LATE_PORT
	(echo $BASHPID > "$CGC/cgroup.procs" && LD_LIBRARY_PATH="$TMP/late$attempt" \
		exec $PY - $LATE_PORT "$TMP/late$attempt" <<'PY'
import os, socket, ssl, sys, time
d = sys.argv[2]
s = ssl._create_unverified_context().wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
for i in range(32):
    s.sendall(b"%04d " % i + b"x" * 1019)
open(d + "/local", "w").write("%s:%d" % s.getsockname())
while not os.path.exists(d + "/go"):
    time.sleep(0.02)
for i in range(32, 40):
    s.sendall(b"%04d " % i + b"x" * 1019)
# the end as a FIN after the data, and the server's close read (with
# the session tickets it sent): a close with unread data is a reset,
# which can cut what the server had still to read
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
s.close()
PY
	) &
	LATE_CLI=$!
	for _ in $(seq 100); do [ -s "$TMP/late$attempt/local" ] && break; sleep 0.02; done
	for _ in $(seq 100); do grep -q "uses $TMP/late$attempt/" "$TMP/rec.err" && break; sleep 0.05; done
	touch "$TMP/late$attempt/go"
	wait $LATE_CLI $LATE_SRV 2>/dev/null
done
check "the clients of the late copies ran" [ -s "$TMP/late1/local" -a -s "$TMP/late2/local" ]
check "status no longer lists s_server -www, gone since" \
	sh -c "'$PODTAP' status > '$TMP/status2.txt' && grep -q '^    pid $SRV ' '$TMP/status2.txt' && ! grep -q '^    pid $WWW_PID ' '$TMP/status2.txt'"
sleep 0.5
kill -INT $REC_PID
wait $REC_PID
check "record exits 0" [ $? = 0 ]
check "record removed its status file" [ ! -e /run/podtap/$REC_PID.tls ]
REC_PID=
check "curl got its bodies" sh -c "[ \$(stat -c %s '$TMP/curl-70000.out') = 70000 ]"

"$PODTAP" read "$TMP/cap.ptcap" > "$TMP/read.txt"
check "read streamed says what read whole says (TLS plaintext)" same_read "$TMP/cap.ptcap"
check "read lists the TLS connections as HTTP/1 in plaintext" grep -q 'tls:http1' "$TMP/read.txt"
check "read names each target process's TLS library, hooked or why not" \
	sh -c "grep -q '^# TLS: pid $SRV (python3) uses /.*libssl.so.3 (OpenSSL 3\.[^)]*): hooked$' '$TMP/read.txt' &&
		grep -q '^# TLS: pid $STRIPPED_PID (tls_stripped) runs .*: not hooked (stripped' '$TMP/read.txt'"
"$PODTAP" export -f jsonl -o "$TMP/x.jsonl" "$TMP/cap.ptcap" 2> "$TMP/export.err"
check "export jsonl exits 0" [ $? = 0 ]
"$PODTAP" read --json "$TMP/cap.ptcap" > "$TMP/conns.json"
check "the server in another mount namespace: its exchange in clear" $PY - "$TMP/x.jsonl" $MNT_PORT <<'PY'
import json, sys
sys.path.insert(0, "tests/peers")
from tls_server import body
xs = [x for x in map(json.loads, open(sys.argv[1]))
      if x.get("local", "").endswith(":" + sys.argv[2])]
ok = len(xs) == 1 and xs[0].get("tls") == "plaintext" and xs[0]["complete"] and \
    xs[0]["request"]["target"] == "/n/5555" and \
    xs[0]["response"].get("body", "").encode() == body(5555)
if not ok:
    print("  its exchanges:", json.dumps(xs)[:600])
sys.exit(0 if ok else 1)
PY
check "read --json: the server's connections carry its tls_library" $PY - "$TMP/conns.json" $SRV <<'PY'
import json, sys
cs = [json.loads(l) for l in open(sys.argv[1])]
mine = [c for c in cs if c["pid"] == int(sys.argv[2])]
sys.exit(0 if mine and all(c.get("tls_library", {}).get("hooked") and
                           c["tls_library"]["path"].endswith("libssl.so.3")
                           for c in mine) else 1)
PY

$PY - "$TMP" $PORT $SCLI_PORT $HTTP_PORT $NGINX_TLS $NGINX_PORT $WWW_PORT $LATE_PORT $BORING_PORT $WHEEL_PORT <<'PY'
import base64, json, sys
sys.path.insert(0, "tests/peers")
from tls_server import body
tmp, port, s_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
http_port, nginx_tls, nginx_port, www_port, late_port, boring_port, wheel_port = (int(a) for a in sys.argv[4:11])
truth = json.load(open(tmp + "/truth.json"))
xs = [json.loads(l) for l in open(tmp + "/x.jsonl")]
conns = {}
for l in open(tmp + "/conns.json"):
    c = json.loads(l)
    conns[c["conn_id"]] = c
bad = []

def between(client, server_port):
    """The connections from client to the local server_port, client side
    and server side. Both ends: an ephemeral port is used again, toward
    another server, once its connection has closed."""
    srv = "127.0.0.1:%d" % server_port
    return ([c for c in conns.values() if c["local"] == client and c["remote"] == srv],
            [c for c in conns.values() if c["local"] == srv and c["remote"] == client])

def data(m, key="body"):
    if m.get(key + "_encoding") == "base64":
        return base64.b64decode(m[key])
    return m.get(key, "").encode()

http = [x for x in xs if x.get("kind") == "http"]
raw = [x for x in xs if x.get("kind") != "http"]
for x in raw:
    for t in x.get("turns", []):
        d = base64.b64decode(t["data"]) if t.get("data_encoding") == "base64" else t["data"].encode()
        if d[:1] in (b"\x14", b"\x15", b"\x16", b"\x17") and d[1:2] == b"\x03":
            bad.append("ciphertext exported as a raw turn on conn %s" % x.get("conn_id"))
def check_exchange(x, want_n=None):
    q, r = x.get("request") or {}, x.get("response") or {}
    path = q.get("target", "")
    if path.startswith("/n/"):
        k = int(path[3:])
        if data(r) != body(k):
            bad.append("conn %s %s: response body differs (%d bytes, want %d)"
                       % (x["conn_id"], path, len(data(r)), k))
    elif path == "/echo":
        if data(q) != data(r) or len(data(q)) not in (truth["keepalive"]["post"], 200000):
            bad.append("conn %s: POST /echo differs" % x["conn_id"])
for x in http:
    if x.get("incomplete"):
        bad.append("conn %s: incomplete exchange %s" % (x["conn_id"], x.get("note")))
    check_exchange(x)
# the keep-alive connection, seen from the client (its 4-tuple) and the server
ka = truth["keepalive"]
client_side, server_side = between(ka["local"], port)
if len(client_side) != 1:
    bad.append("keep-alive: %d client-side connections with local %s" % (len(client_side), ka["local"]))
else:
    cid = client_side[0]["conn_id"]
    got = [x["request"]["target"] for x in http if x["conn_id"] == cid]
    want = ["/n/%d" % k for k in ka["sizes"]] + ["/echo"]
    if got != want:
        bad.append("keep-alive client side: %s, want %s" % (got, want))
if len(server_side) != 1:
    bad.append("keep-alive: %d server-side connections" % len(server_side))
else:
    sid = server_side[0]["conn_id"]
    got = [x["request"]["target"] for x in http if x["conn_id"] == sid]
    if got != ["/n/%d" % k for k in ka["sizes"]] + ["/echo"]:
        bad.append("keep-alive server side: %s" % got)
# 50 parallel connections: each request on the connection its client had
for p in truth["parallel"]:
    for side, cs in zip(("client", "server"), between(p["local"], port)):
        got = [x["request"]["target"] for c in cs for x in http if x["conn_id"] == c["conn_id"]]
        if got != ["/n/%d" % p["n"]]:
            bad.append("parallel %s side of %s: %s" % (side, p["local"], got))
# the client with its own copy of libssl: its side in clear too
copy_local = open(tmp + "/copy.txt").read().split("\n")[0]
cs = between(copy_local, port)[0]
got = [x["request"]["target"] for c in cs for x in http if x["conn_id"] == c["conn_id"]]
if got != ["/n/4242"]:
    bad.append("the client with a copy of libssl: %s" % got)
# nginx's 3 MiB file, in clear, byte for byte
big = open(tmp + "/nginx/www/big.bin", "rb").read()
got = [x for x in http if x["request"].get("target") == "/big.bin"]
if len(got) != 1 or data(got[0]["response"]) != big:
    bad.append("nginx over TLS: /big.bin %s" % ("differs" if got else "not captured"))
# over HTTPS as over plain HTTP: the same exchanges, to python3 and nginx
def shape(ex):
    return [(x["request"].get("method"), x["request"].get("target"),
             x["response"].get("status"), data(x["request"]), data(x["response"]),
             [h[0].lower() for h in x["response"].get("headers", [])])
            for x in ex]
cmp_post = open(tmp + "/cmp-post.bin", "rb").read()
def on_port(p, targets):
    return [x for x in http if x.get("local", "").endswith(":%d" % p) and x.get("direction") == "inbound"
            and x["request"].get("target") in targets]
py_t = ("/n/7001", "/n/7100", "/n/23000", "/echo")
for name, a, b, targets in (("python3", port, http_port, py_t),
                            ("nginx", nginx_tls, nginx_port, ("/cmp.bin",))):
    sa, sb = shape(on_port(a, targets)), shape(on_port(b, targets))
    if name == "python3":
        sa = [e for e in sa if e[1] != "/echo" or e[3] == cmp_post]
        sb = [e for e in sb if e[1] != "/echo" or e[3] == cmp_post]
    if not sa or sa != sb:
        bad.append("%s: %d exchanges over HTTPS, %d over HTTP, %s" % (
            name, len(sa), len(sb), "the same" if sa == sb else "not the same"))
# the server with OpenSSL linked in
got = [x for x in http if x["request"].get("target") == "/n/50000"]
if len(got) != 1 or data(got[0]["response"]) != body(50000):
    bad.append("static OpenSSL server: /n/50000 %s" % ("differs" if got else "not captured"))
# the server on BoringSSL: each request in clear (bodies checked above)
got = sorted(x["request"].get("target") for x in http
             if x.get("local", "").endswith(":%d" % boring_port))
if got != sorted("/n/%d" % n for n in (1, 100, 16384, 70000)):
    bad.append("BoringSSL server: %s" % got)
got = [x["request"].get("target") for x in http if x.get("local", "").endswith(":%d" % wheel_port)]
if got != ["/n/4321"]:
    bad.append("the server with a wheel's libssl: %s" % got)
# a client hooked mid-session: not presented as whole
late = None
for attempt in (1, 2):
    local = open("%s/late%d/local" % (tmp, attempt)).read()
    cs = between(local, late_port)[0]
    xs0 = cs[0]["exchanges"][:1] if len(cs) == 1 else []
    text = "".join(t.get("data", "") for x in xs0 for t in x.get("turns", []))
    if xs0 and "0000 " not in text:
        late = xs0[0]
        break
if late is None:
    bad.append("no client of a late copy had its first bytes unhooked")
elif late.get("complete", True) or "hooked after the session began" not in late.get("note", ""):
    bad.append("the client hooked mid-session: %s" % late.get("note"))
# openssl s_server -www (the SSL BIO): its answer in clear, as curl got it
www = open(tmp + "/www.out", "rb").read()
got = [x for x in http if x.get("local", "").endswith(":%d" % www_port)]
if len(got) != 1 or data(got[0]["response"]) != www:
    bad.append("openssl s_server -www: %s" % ("differs" if got else "not captured in clear"))
# openssl s_server and s_client: each line in clear on both sides
for side, key in (("s_server", "local"), ("s_client", "remote")):
    cs = [c for c in conns.values() if c[key].endswith(":%d" % s_port)]
    turns = [t for c in cs for x in c["exchanges"] for t in x.get("turns", [])]
    text = "".join(t["data"] for t in turns if t.get("data_encoding") == "utf-8")
    if len(cs) != 1 or "line from s_client" not in text or "reply from s_server" not in text:
        bad.append("openssl %s side: %d connections, plaintext %r" % (side, len(cs), text[:80]))
# curl's requests, server side
for n in (1, 100, 16384, 70000):
    if not [x for x in http if x["request"].get("target") == "/n/%d" % n]:
        bad.append("curl's /n/%d not captured" % n)
if any(not c.get("tls_socket_known", True) for c in conns.values()):
    bad.append("plaintext left on a pseudo-connection")
for b in bad[:20]:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
check "plaintext of every exchange equals what was sent, on the right connections" [ $? = 0 ]

check "pcapng export says the payload is TLS plaintext" \
	sh -c "'$PODTAP' export -f pcapng -o '$TMP/x.pcapng' '$TMP/cap.ptcap' && strings '$TMP/x.pcapng' | grep -q 'plaintext from the library calls'"
check "nothing left attached" no_podtap_progs

# ---- --no-tls: the same traffic stays ciphertext ----
start_record --cgroup "$CG" --no-tls -w "$TMP/ct.ptcap"
curl -sk --http1.1 -o /dev/null "https://127.0.0.1:$PORT/n/10"
sleep 0.3
kill -INT $REC_PID
wait $REC_PID
REC_PID=
check "--no-tls: no library hooked" sh -c "! grep -q 'TLS: pid' '$TMP/rec.err'"
check "--no-tls: TLS stays ciphertext" sh -c "'$PODTAP' read '$TMP/ct.ptcap' | grep -q ' tls '"
check "  ... read streamed says what read whole says" same_read "$TMP/ct.ptcap"
"$PODTAP" export -f jsonl -o "$TMP/ct.jsonl" "$TMP/ct.ptcap" 2> "$TMP/ct-export.err"
check "--no-tls: jsonl marks the turns as TLS ciphertext, and says so at the end" \
	sh -c "grep -q '\"protocol\":\"tls-ciphertext\"' '$TMP/ct.jsonl' && grep -q '1 connection of TLS ciphertext, written as it was on the wire (not decrypted)' '$TMP/ct-export.err'"

# ---- where the uprobes trap: --tls-probes file (default) and process ----
# An untargeted python3 makes SSL_read_ex calls on the libssl the target
# server maps; the session program's run count (from /metrics) says whether
# they trapped into it. With process only the server's calls do.
tls_runs() {
	curl -s http://127.0.0.1:$METRICS_PORT/metrics |
		awk '/^podtap_program_runs_total.*podtap_tls_s"/ { print $2 }'
}
untargeted_calls() {
	$PY - <<'PY'
import ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
o = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO())
for _ in range(2000):
    try:
        o.read(1)
    except ssl.SSLWantReadError:
        pass
PY
}
probes_mode() {	# MODE: record, the untargeted calls, a curl to the target
	start_record --cgroup "$CG" --tls-probes $1 --metrics 127.0.0.1:$METRICS_PORT \
		-w "$TMP/probes-$1.ptcap"
	r0=$(tls_runs)
	untargeted_calls
	r1=$(tls_runs)
	curl -sk --http1.1 -o /dev/null "https://127.0.0.1:$PORT/n/10"
	sleep 0.3
	r2=$(tls_runs)
	# a target client started now: its request goes before any scan can
	# have hooked it, its answer is read after (process: hooked late)
	(echo $BASHPID > "$CG/cgroup.procs" && exec $PY - $PORT "$TMP/late-$1.port" <<'PY'
import socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
open(sys.argv[2], "w").write(str(s.getsockname()[1]))
s.sendall(b"GET /n/300 HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(3.5)
s.recv(65536)
s.sendall(b"GET /n/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
while s.recv(65536):
    pass
PY
	)
	kill -INT $REC_PID
	wait $REC_PID
	REC_PID=
	"$PODTAP" read "$TMP/probes-$1.ptcap" > "$TMP/probes-$1.txt"
}
if "$PODTAP" record --tls-probes process --cgroup "$CG" --duration 1 -w "$TMP/pp-probe.ptcap" 2> "$TMP/pp-probe.err"; then
	probes_mode file
	check "--tls-probes file: an untargeted process's calls trap into the program" \
		sh -c "[ -n '$r0' ] && [ $((r1 - r0)) -ge 2000 ]"
	probes_mode process
	check "--tls-probes process: they do not" sh -c "[ -n '$r0' ] && [ $((r1 - r0)) -lt 100 ]"
	check "--tls-probes process: the target's calls do, and are in clear" \
		sh -c "[ $((r2 - r1)) -ge 2 ] && grep -q 'tls:http1' '$TMP/probes-process.txt'"
	"$PODTAP" read --json "$TMP/probes-process.ptcap" > "$TMP/probes-process.json"
	# its first answer (to /n/300, sent unhooked) is an answer alone,
	# and /n/200 is paired with its own
	check "--tls-probes process: a client hooked after its request is not presented as whole, nor paired wrong" \
		$PY - "$TMP/probes-process.json" "$(cat "$TMP/late-process.port")" <<'PY'
import json, sys
port = ":" + sys.argv[2]
cs = [c for c in map(json.loads, open(sys.argv[1]))
      if c.get("local", "").endswith(port) and c.get("role") == "client"]
xs = cs[0].get("exchanges", []) if len(cs) == 1 else []
ok = len(xs) == 2 and not xs[0].get("complete", True) and \
    "request" not in xs[0] and xs[0]["response"]["body_size"] == 300 and \
    xs[1].get("complete") and xs[1]["request"]["target"] == "/n/200" and \
    xs[1]["response"]["body_size"] == 200
if not ok:
    print("  the late client's connection:", json.dumps(cs)[:600])
sys.exit(0 if ok else 1)
PY
else
	check "--tls-probes process: refused in one line where the kernel has no session uprobes" \
		grep -q "needs session uprobes, which this kernel does not have" "$TMP/pp-probe.err"
fi
# a target process that runs exec (python3 with ssl imported, then
# openssl s_server -www): told anew under its new comm, its calls in
# clear, with its link kept in process mode
exec_mode() {	# MODE
	(echo $BASHPID > "$CG/cgroup.procs" && exec $PY -c '
import os, sys, time
import ssl
time.sleep(3)
os.execv("/usr/bin/openssl", ["openssl", "s_server", "-www", "-accept", "127.0.0.1:" + sys.argv[1],
                              "-cert", sys.argv[2], "-key", sys.argv[3]])' \
		$EXEC_PORT "$TMP/cert.pem" "$TMP/key.pem" < /dev/null > /dev/null 2>&1) &
	local pid=$!
	for _ in $(seq 100); do grep -q "import ssl" /proc/$pid/cmdline 2>/dev/null && break; sleep 0.02; done
	start_record --cgroup "$CG" --tls-probes $1 -w "$TMP/exec-$1.ptcap"
	wait_listen $EXEC_PORT
	sleep 2.5	# a scan after the exec
	curl -sk --http1.1 -o "$TMP/exec-$1.out" "https://127.0.0.1:$EXEC_PORT/"
	kill -INT $REC_PID
	wait $REC_PID
	REC_PID=
	kill $pid 2>/dev/null
	wait $pid 2>/dev/null
	"$PODTAP" read "$TMP/exec-$1.ptcap" > "$TMP/exec-$1.txt"
	check "--tls-probes $1: a target that ran exec is told under its new comm, its calls in clear" \
		sh -c "grep -q '^podtap: TLS: pid $pid (python3) uses ' '$TMP/rec.err' &&
		       grep -q '^podtap: TLS: pid $pid (openssl) uses ' '$TMP/rec.err' &&
		       grep -q '^# TLS: pid $pid (openssl) uses .*: hooked' '$TMP/exec-$1.txt' &&
		       grep -q ' $pid openssl .* tls:http1 ' '$TMP/exec-$1.txt' &&
		       grep -q '#1   GET https://127.0.0.1:$EXEC_PORT/ -> 200 ok .*resp body [1-9]' '$TMP/exec-$1.txt' &&
		       ! grep -q incomplete '$TMP/exec-$1.txt' && [ -s '$TMP/exec-$1.out' ]"
}
exec_mode file
grep -q "needs session uprobes" "$TMP/pp-probe.err" || exec_mode process
check "--tls-probes process with --no-tls: one line" \
	one_line_error "with --no-tls: there are no TLS probes to place" \
	"$PODTAP" record --no-tls --tls-probes process -c "$CG" -w "$TMP/bad.ptcap"
"$PODTAP" record --tls-probes all -c "$CG" -w "$TMP/bad.ptcap" > "$TMP/bad.out" 2>&1
rc=$?
check "--tls-probes: a bad mode is refused in one line, nothing written" \
	sh -c "[ $rc != 0 ] && [ \$(wc -l < '$TMP/bad.out') = 1 ] && grep -q 'want file or process' '$TMP/bad.out' && [ ! -e '$TMP/bad.ptcap' ]"

# ---- a target that maps copy after copy of libssl: hooked up to a bound ----
# With session uprobes (6.13+) a library is one link and all 30 are hooked;
# with an entry and a return uprobe per function (PODTAP_NO_UPROBE_SESSION=1,
# as on older kernels) each is some 10 links and the bound of 200 is met.
CGM=$CG2/podtap-tls-many-$$
mkdir -p "$CGM" "$TMP/many"
for i in $(seq 30); do cp "$TMP/lib/libssl.so.3" "$TMP/many/libssl.so.$i"; done
(echo $BASHPID > "$CGM/cgroup.procs" && exec $PY - "$TMP/many" <<'PY'
import glob, mmap, os, sys, time
maps = []
for p in sorted(glob.glob(sys.argv[1] + "/libssl.so.*")):
    with open(p, "rb") as f:
        maps.append(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ | mmap.PROT_EXEC))
time.sleep(120)
PY
) &
MANY=$!
for _ in $(seq 100); do [ "$(grep -c "$TMP/many/" /proc/$MANY/maps 2>/dev/null)" -ge 30 ] && break; sleep 0.05; done
many_copies() {	# NAME [ENV=VALUE]: record the 30 copies, read status and metrics
	env ${2:-} "$PODTAP" record --cgroup "$CGM" --metrics 127.0.0.1:$METRICS_PORT \
		-w "$TMP/many.ptcap" 2> "$TMP/rec.err" &
	REC_PID=$!
	for _ in $(seq 200); do grep -q 'recording' "$TMP/rec.err" && break; sleep 0.05; done
	"$PODTAP" status > "$TMP/status-$1.txt" 2>&1
	curl -s http://127.0.0.1:$METRICS_PORT/metrics > "$TMP/metrics-$1.txt"
	kill -INT $REC_PID
	wait $REC_PID
	REC_PID=
	hooked=$(grep -c "many/libssl.so.[0-9]* ([^)]*): hooked\$" "$TMP/status-$1.txt")
	bounded=$(grep -c "many/libssl.so.[0-9]* (version unknown): not hooked (podtap has 200 uprobe links on TLS files, its most" "$TMP/status-$1.txt")
	probes=$(awk '/^podtap_tls_probes/ { n += $2 } END { print n + 0 }' "$TMP/metrics-$1.txt")
	session=$(awk '/^podtap_tls_session_uprobes / { print $2 }' "$TMP/metrics-$1.txt")
}
many_copies session
if [ "$session" = 1 ]; then
	check "30 copies of libssl, session uprobes: all hooked, one link each" \
		sh -c "[ $hooked = 30 ] && [ $bounded = 0 ] && [ $probes -ge 120 ] && [ $probes -le 180 ]"
else
	echo "# this kernel has no session uprobes (6.13+): both runs use perf uprobes"
fi
many_copies perf PODTAP_NO_UPROBE_SESSION=1
check "30 copies of libssl, perf uprobes: hooked up to 200 links, the rest said not hooked and why" \
	sh -c "[ '$session' = 0 ] && [ $hooked -ge 1 ] && [ $bounded -ge 1 ] && [ $((hooked + bounded)) = 30 ] && [ $probes -ge 200 ] && [ $probes -lt 240 ]"
kill $MANY 2>/dev/null
wait $MANY 2>/dev/null
rmdir "$CGM"

check "the servers are still alive" kill -0 $SRV $STATIC_PID $BORING_PID $WHEEL_PID $MNT_PID
echo "e2e_tls: $pass passed, $fail failed"
[ $fail = 0 ]
