#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Go crypto/tls plaintext end to end. A Go HTTPS server (tests/peers/gotls,
# standard library only) built three ways, plain, stripped (-s -w) and
# PIE, each in a target cgroup; the same program as a client in a target
# cgroup (keep-alive 1 B to 1 MiB, a POST, 50 parallel connections), curl
# and a python3 client whose connection was opened before recording
# began. The plaintext must be what was sent, both directions, on the
# connection whose 4-tuple the client saw, with no ciphertext exported (a
# Conn over a wrapper of its net.Conn: on a pseudo-connection, never on
# another's);
# the exchanges must be those of the same client against the same server
# over plain HTTP. The servers stay alive; nothing is left attached.
# Needs root and golang-go; prints "e2e_gotls: N passed, M failed".
set -u
cd "$(dirname "$0")/.."
PODTAP=$PWD/podtap
PLAIN_PORT=18511
STRIP_PORT=18512
PIE_PORT=18513
HTTP_PORT=18514
PY=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then
	echo "e2e_gotls: SKIP: needs root"
	echo "e2e_gotls: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
for t in go openssl curl readelf $PY; do
	command -v $t >/dev/null || { echo "e2e_gotls: missing $t (make deps)"; exit 1; }
done
. tests/lib.sh
CG2=$(cg2_root)
TMP=$(mktemp -d /tmp/podtap-gotls.XXXXXX)
CG=$CG2/podtap-gotls-$$
CGC=$CG2/podtap-gotls-client-$$
REC_PID= SRVS= OLD_PID=

cleanup() {
	[ -n "$REC_PID" ] && kill -INT $REC_PID 2>/dev/null && wait $REC_PID 2>/dev/null
	for p in $SRVS $OLD_PID; do kill $p 2>/dev/null && wait $p 2>/dev/null; done
	rmdir "$CG" "$CGC" 2>/dev/null
	[ -n "${KEEP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT


# ---- the peers, built here with Debian's Go ----
export GOCACHE=$TMP/gocache GOPATH=$TMP/gopath GOFLAGS=-mod=mod CGO_ENABLED=0
(cd tests/peers/gotls &&
	go build -o "$TMP/gotls-plain" . &&
	go build -ldflags='-s -w' -o "$TMP/gotls-stripped" . &&
	go build -buildmode=pie -ldflags='-s -w' -o "$TMP/gotls-pie" .) 2> "$TMP/build.err"
check "go builds the peer plain, stripped and PIE" [ $? = 0 ]
[ -x "$TMP/gotls-pie" ] || { cat "$TMP/build.err"; exit 1; }
check "the stripped builds have no symbol table" \
	sh -c "! readelf -SW '$TMP/gotls-stripped' '$TMP/gotls-pie' | grep -q '\.symtab'"
check "the PIE build is position-independent" \
	sh -c "readelf -h '$TMP/gotls-pie' | grep -q 'DYN (Position-Independent'"
GOVER=$(go env GOVERSION)

self_signed "$TMP"
mkdir -p "$CG" "$CGC"
serve() {	# BINARY PORT CERT
	(echo $BASHPID > "$CG/cgroup.procs" &&
		exec "$TMP/$1" serve $2 "$3" "$TMP/key.pem" 2>> "$TMP/servers.log") &
	SRVS="$SRVS $!"
	wait_port $2 || { echo "$1 did not start on $2"; exit 1; }
}
serve gotls-plain $PLAIN_PORT "$TMP/cert.pem"
PLAIN_PID=$!
serve gotls-stripped $STRIP_PORT "$TMP/cert.pem"
STRIP_PID=$!
serve gotls-pie $PIE_PORT "$TMP/cert.pem"
PIE_PID=$!
serve gotls-plain $HTTP_PORT -

# a connection opened before recording began, used again after
$PY - $STRIP_PORT "$TMP/old" <<'PY' &
import http.client, os, ssl, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPSConnection("127.0.0.1", port,
                                context=ssl._create_unverified_context())
c.request("GET", "/n/31")
c.getresponse().read()
open(out + ".local", "w").write("%s:%d" % c.sock.getsockname())
while not os.path.exists(out + ".go"):
    time.sleep(0.05)
c.request("GET", "/n/32")
r = c.getresponse().read()
open(out + ".done", "w").write("ok" if len(r) == 32 else "short")
PY
OLD_PID=$!
for _ in $(seq 100); do [ -s "$TMP/old.local" ] && break; sleep 0.05; done

# ---- record the servers' cgroup and the client's ----
start_record --cgroup "$CG" --cgroup "$CGC" --ring-size 64Mi -w "$TMP/cap.ptcap"
check "record started" [ $? = 0 ]
for b in plain:$PLAIN_PID stripped:$STRIP_PID pie:$PIE_PID; do
	check "record says the ${b%:*} build's crypto/tls is hooked" \
		grep -q "TLS: pid ${b#*:} (gotls-${b%:*}) runs $TMP/gotls-${b%:*}, built with $GOVER: its crypto/tls Read and Write calls are hooked" "$TMP/rec.err"
done

touch "$TMP/old.go"
wait $OLD_PID
OLD_PID=
check "the connection older than the recording was used again" grep -q ok "$TMP/old.done"
# the Go client in a target cgroup, against the stripped server and
# against the plain HTTP one
(echo $BASHPID > "$CGC/cgroup.procs" &&
	exec "$TMP/gotls-plain" client https://127.0.0.1:$STRIP_PORT "$TMP/truth-tls.json")
check "the Go client over TLS got what the server sent" [ $? = 0 ]
(echo $BASHPID > "$CGC/cgroup.procs" &&
	exec "$TMP/gotls-plain" client http://127.0.0.1:$HTTP_PORT "$TMP/truth-http.json")
check "the Go client over plain HTTP got what the server sent" [ $? = 0 ]
# curl outside the targets, against the PIE server and the plain one
for n in 1 100 16384 70000; do
	curl -sk --http1.1 -o "$TMP/curl-$n.out" "https://127.0.0.1:$PIE_PORT/n/$n"
done
head -c 300000 /dev/urandom > "$TMP/post.bin"
curl -sk --http1.1 --data-binary @"$TMP/post.bin" -o "$TMP/post.out" \
	"https://127.0.0.1:$PLAIN_PORT/echo"
check "curl's POST came back whole" cmp -s "$TMP/post.bin" "$TMP/post.out"
sleep 0.5
kill -INT $REC_PID
wait $REC_PID
check "record exits 0" [ $? = 0 ]
REC_PID=

"$PODTAP" read "$TMP/cap.ptcap" > "$TMP/read.txt"
check "read lists Go's TLS connections as HTTP/1 in plaintext" grep -q 'tls:http1' "$TMP/read.txt"
"$PODTAP" export -f jsonl -o "$TMP/x.jsonl" "$TMP/cap.ptcap" 2> "$TMP/export.err"
check "export jsonl exits 0" [ $? = 0 ]
"$PODTAP" read --json "$TMP/cap.ptcap" > "$TMP/conns.json"

$PY - "$TMP" $STRIP_PORT $HTTP_PORT <<'PY'
import base64, json, sys
tmp, tls_port, http_port = sys.argv[1], sys.argv[2], sys.argv[3]

def body(k):
    return (("%d:" % k) * (k // 2 + 2)).encode()[:k]

xs = [json.loads(l) for l in open(tmp + "/x.jsonl")]
conns = {}
for l in open(tmp + "/conns.json"):
    c = json.loads(l)
    conns[c["conn_id"]] = c
bad = []

def data(m):
    if m.get("body_encoding") == "base64":
        return base64.b64decode(m["body"])
    return m.get("body", "").encode()

http = [x for x in xs if x.get("kind") == "http"]
for x in xs:
    if x.get("kind") == "http":
        continue
    for t in x.get("turns", []):
        d = base64.b64decode(t["data"]) if t.get("data_encoding") == "base64" else t["data"].encode()
        if d[:1] in (b"\x14", b"\x15", b"\x16", b"\x17") and d[1:2] == b"\x03":
            bad.append("ciphertext exported as a raw turn on conn %s" % x.get("conn_id"))
post = open(tmp + "/post.bin", "rb").read()
for x in http:
    q, r = x.get("request") or {}, x.get("response") or {}
    if x.get("incomplete"):
        bad.append("conn %s: incomplete exchange %s" % (x["conn_id"], x.get("note")))
    path = q.get("target", "")
    if path.startswith("/n/") and data(r) != body(int(path[3:])):
        bad.append("conn %s %s: response body differs (%d bytes)" % (x["conn_id"], path, len(data(r))))
    if path == "/echo" and data(q) != data(r):
        bad.append("conn %s: POST /echo differs" % x["conn_id"])

def on(client, server, side):
    """The exchanges of the connections from client to server, as seen
    from side. Both ends: an ephemeral port is used again, toward another
    server, once its connection has closed."""
    a, b = (client, server) if side == "client" else (server, client)
    cs = [c["conn_id"] for c in conns.values()
          if c["local"] == a and c["remote"] == b]
    return cs, [x for x in http if x["conn_id"] in cs]

def shape(ex):
    out = []
    for x in ex:
        q, r = x["request"], x.get("response") or {}
        out.append((q.get("method"), q.get("target"), r.get("status"),
                    data(q), data(r)))
    return out

shapes = {}
for run, port in (("tls", tls_port), ("http", http_port)):
    truth = json.load(open("%s/truth-%s.json" % (tmp, run)))
    srv = "127.0.0.1:" + port
    ka = truth["keepalive"]
    want = ["/n/%d" % k for k in ka["sizes"]] + ["/echo"]
    for side in ("client", "server"):
        cs, ex = on(ka["local"], srv, side)
        got = [x["request"]["target"] for x in ex]
        if len(cs) != 1 or got != want:
            bad.append("%s keep-alive, %s side: %d connections, %s" % (run, side, len(cs), got))
        shapes[run, side] = shape(ex)
    for p in truth["parallel"]:
        for side in ("client", "server"):
            cs, ex = on(p["local"], srv, side)
            got = [x["request"]["target"] for x in ex]
            if got != ["/n/%d" % p["n"]]:
                bad.append("%s parallel %s side of %s: %s" % (run, side, p["local"], got))
    if len(truth["parallel"]) != 50:
        bad.append("%s: %d parallel connections" % (run, len(truth["parallel"])))
for side in ("client", "server"):
    if shapes["tls", side] != shapes["http", side]:
        bad.append("%s side: the exchanges over TLS are not those over plain HTTP" % side)
# the connection opened before recording: its second request, server side
old = open(tmp + "/old.local").read()
cs, ex = on(old, "127.0.0.1:" + tls_port, "server")
if [x["request"]["target"] for x in ex] != ["/n/32"]:
    bad.append("the connection older than the recording: %s" % [x["request"]["target"] for x in ex])
for n in (1, 100, 16384, 70000):
    if not [x for x in http if x["request"].get("target") == "/n/%d" % n]:
        bad.append("curl's /n/%d to the PIE server not captured" % n)
if not [x for x in http if x["request"].get("target") == "/echo" and data(x["request"]) == post]:
    bad.append("curl's 300 kB POST not captured whole")
if any(not c.get("tls_socket_known", True) for c in conns.values()):
    bad.append("plaintext left on a pseudo-connection")
for b in bad[:20]:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
check "plaintext of every exchange equals what was sent, on the right connections, as over HTTP" [ $? = 0 ]

# ---- a Conn over a wrapper of its net.Conn: never another's socket ----
# (a process of the binary already there: the file is hooked from the
# start, and the client, short-lived, from its first call)
(echo $BASHPID > "$CGC/cgroup.procs" &&
	exec "$TMP/gotls-plain" serve $((HTTP_PORT + 1)) - - 2>> "$TMP/servers.log") &
SRVS="$SRVS $!"
wait_port $((HTTP_PORT + 1))
start_record --cgroup "$CGC" -w "$TMP/wrapped.ptcap"
(echo $BASHPID > "$CGC/cgroup.procs" &&
	exec "$TMP/gotls-plain" wrapped https://127.0.0.1:$STRIP_PORT "$TMP/wrapped.json")
check "the Go client with wrapped conns got what was sent" [ $? = 0 ]
# one at a time, plain and wrapped in turn: Conn addresses reused
(echo $BASHPID > "$CGC/cgroup.procs" &&
	exec "$TMP/gotls-plain" reuse https://127.0.0.1:$STRIP_PORT "$TMP/reuse.json")
check "the Go client reusing Conn addresses got what was sent" [ $? = 0 ]
sleep 0.3
kill -INT $REC_PID
wait $REC_PID
REC_PID=
"$PODTAP" read --json "$TMP/wrapped.ptcap" > "$TMP/wrapped-conns.json"
check "wrapped conns, at once and one by one: plaintext only ever on its own connection" \
	$PY - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
truth = json.load(open(tmp + "/wrapped.json")) + json.load(open(tmp + "/reuse.json"))
conns = [json.loads(l) for l in open(tmp + "/wrapped-conns.json")]
bad = []
for t in truth:
    cs = [c for c in conns if c["local"] == t["local"]]
    got = [x["request"]["target"] for c in cs for x in c["exchanges"] if x.get("kind") == "http"]
    want = [] if t["wrapped"] else ["/n/%d" % t["n"]]
    if len(cs) != 1 or got != want:
        bad.append("%s (%s): %s, want %s" % (t["local"], "wrapped" if t["wrapped"] else "plain", got, want))
# what the wrapped ones said is on pseudo-connections, each whole
pseudo = [x["request"]["target"] for c in conns if not c.get("tls_socket_known", True)
          for x in c["exchanges"] if x.get("kind") == "http"]
want = sorted("/n/%d" % t["n"] for t in truth if t["wrapped"])
if sorted(pseudo) != want:
    bad.append("pseudo-connections: %s, want %s" % (sorted(pseudo), want))
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
PY

# ---- --port: the Go plaintext of the connections it keeps, none other ----
start_record --cgroup "$CG" --port $PLAIN_PORT -w "$TMP/port.ptcap"
curl -sk --http1.1 -o /dev/null "https://127.0.0.1:$PLAIN_PORT/n/4321"
curl -sk --http1.1 -o /dev/null "https://127.0.0.1:$STRIP_PORT/n/8765"
sleep 0.3
kill -INT $REC_PID
wait $REC_PID
REC_PID=
"$PODTAP" read --json "$TMP/port.ptcap" > "$TMP/port.json"
check "--port: Go plaintext of the kept connection only" $PY - "$TMP/port.json" $PLAIN_PORT <<'PY'
import json, sys
conns = [json.loads(l) for l in open(sys.argv[1])]
port = sys.argv[2]
targets = [x["request"]["target"] for c in conns for x in c["exchanges"] if x.get("kind") == "http"]
ok = targets == ["/n/4321"] and all(c["local"].endswith(":" + port) for c in conns)
sys.exit(0 if ok else "exchanges %s on %s" % (targets, [c["local"] for c in conns]))
PY

check "the servers are still alive" kill -0 $PLAIN_PID $STRIP_PID $PIE_PID
check "nothing left attached" no_podtap_progs
echo "e2e_gotls: $pass passed, $fail failed"
[ $fail = 0 ]
