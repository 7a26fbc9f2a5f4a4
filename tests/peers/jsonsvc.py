#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A small JSON service for the replay tests: jsonsvc.py PORT [VARIANT [CERT KEY]].

HTTP/1.1 with keep-alive (http.server). Every answer carries values that
differ from run to run (a time, an epoch, a UUID, a request id header), as
real services' do. VARIANT "changed" is the "new build": /items/2 answers
another price, /health another status and a new field, and /gone 500
instead of 404 (VARIANT "same" is the recorded build). With CERT and KEY it
serves HTTPS. Routes:
  GET  /items            a list; gzip when asked (Accept-Encoding: gzip)
  GET  /items/N          one item
  HEAD /items/N          its headers only
  GET  /stream           chunked JSON
  GET  /health           {"status": ...}
  GET  /gone             404 (500 when changed)
  GET  /bin              binary bytes
  POST /items            echoes the JSON body with an id (a write)
"""
import gzip
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
CHANGED = len(sys.argv) > 2 and sys.argv[2] == "changed"
ITEMS = [{"id": i, "name": "item-%d" % i, "price": 10 * i} for i in range(1, 6)]


def now_fields():
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) +
                        ".%06dZ" % (time.time_ns() // 1000 % 1000000),
        "epoch_ms": time.time_ns() // 1000000,
        "request_id": str(uuid.uuid4()),
    }


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, obj, gz=False, head=False, ctype="application/json"):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        if gz:
            body = gzip.compress(body, mtime=0)
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("X-Request-Id", str(uuid.uuid4()))
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def item(self, head=False):
        try:
            n = int(self.path.split("/")[2])
            it = dict(ITEMS[n - 1])
        except (ValueError, IndexError):
            return self.send(404, {"error": "no such item"}, head=head)
        if CHANGED and n == 2:
            it["price"] = 25
        it.update(now_fields())
        self.send(200, it, head=head)

    def do_HEAD(self):
        if self.path.startswith("/items/"):
            return self.item(head=True)
        self.send(404, {"error": "not found"}, head=True)

    def do_GET(self):
        p = self.path.split("?")[0]
        if p == "/items":
            gz = "gzip" in self.headers.get("Accept-Encoding", "")
            return self.send(200, {"items": ITEMS, **now_fields()}, gz=gz)
        if p.startswith("/items/"):
            return self.item()
        if p == "/health":
            h = {"status": "degraded" if CHANGED else "ok", **now_fields()}
            if CHANGED:
                h["version"] = 2
            return self.send(200, h)
        if p == "/gone":
            return self.send(500 if CHANGED else 404, {"error": "gone"})
        if p == "/bin":
            return self.send(200, bytes(range(256)) * 4,
                             ctype="application/octet-stream")
        if p == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = json.dumps({"chunks": [1, 2, 3], **now_fields()}).encode()
            for i in range(0, len(body), 16):
                part = body[i:i + 16]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send(404, {"error": "not found"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        try:
            obj = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.send(400, {"error": "bad json"})
        obj["id"] = 99
        self.send(201, obj)


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass    # clients that go away (the mirror tests' do) are no news


srv = Server(("127.0.0.1", PORT), H)
if len(sys.argv) > 4:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
