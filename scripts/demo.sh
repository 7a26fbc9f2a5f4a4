#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# podtap's main job on this host: a small HTTP service runs in a cgroup of
# its own (as a pod's container would), podtap records that cgroup while a
# client talks to it, then shows what it captured.
set -eu
cd "$(dirname "$0")/.."
PORT=${PORT:-18480}
OUT=${OUT:-build/demo.ptcap}

[ "$(id -u)" = 0 ] || { echo "demo: run as root (podtap loads BPF programs)" >&2; exit 1; }
. tests/lib.sh
CG=$(cg2_root)/podtap-demo
mkdir -p "$CG" "$(dirname "$OUT")"
SVC=
REC=
cleanup() {
	if [ -n "$REC" ]; then kill -INT "$REC" 2>/dev/null; wait "$REC" 2>/dev/null || true; fi
	if [ -n "$SVC" ]; then kill "$SVC" 2>/dev/null; wait "$SVC" 2>/dev/null || true; fi
	rmdir "$CG" 2>/dev/null || true
	return 0
}
trap cleanup EXIT

# The demo service: a JSON API, in the cgroup podtap will target.
( echo $BASHPID > "$CG/cgroup.procs"; exec python3 -c '
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply(200, {"greeting": "hello", "path": self.path})
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        order = json.loads(self.rfile.read(n) or b"{}")
        self.reply(201, {"id": 42, "order": order})
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$PORT" ) &
SVC=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done

echo "demo: recording cgroup $CG (the demo service on 127.0.0.1:$PORT)"
./podtap record --cgroup "$CG" -w "$OUT" 2> build/demo.err &
REC=$!
for _ in $(seq 100); do grep -q recording build/demo.err && break; sleep 0.05; done
cat build/demo.err

echo "demo: a client talks to the service"
curl -s "http://127.0.0.1:$PORT/api/greet?name=podtap"; echo
curl -s -H 'Content-Type: application/json' -d '{"item": "tea", "qty": 2}' \
	"http://127.0.0.1:$PORT/api/orders"; echo
curl -s "http://127.0.0.1:$PORT/a" "http://127.0.0.1:$PORT/b" > /dev/null
sleep 0.3
kill -INT "$REC"; wait "$REC"; REC=
tail -n +2 build/demo.err

echo
echo "demo: ./podtap read $OUT"
./podtap read "$OUT"
echo
rm -rf build/demo-keploy
echo "demo: ./podtap export -f keploy -o build/demo-keploy $OUT"
./podtap export -f keploy -o build/demo-keploy "$OUT"
echo "demo: build/demo-keploy/keploy/test-set-0/tests/test-2.yaml:"
cat build/demo-keploy/keploy/test-set-0/tests/test-2.yaml
./podtap export -f pcapng -o build/demo.pcapng "$OUT" &&
	echo "demo: wrote build/demo.pcapng (wireshark build/demo.pcapng)"
