#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A small service for the export tests, run in the target cgroup.

GET  /hello      JSON, Content-Length
POST /echo       the request body back, chunked
GET  /proxy      calls UPSTREAM (HTTP) and returns its body: an outbound mock
GET  /raw        talks to ECHO over plain TCP (text, then binary): a Generic mock

Usage: app.py PORT UPSTREAM_PORT ECHO_PORT
"""
import http.client
import http.server
import json
import socket
import sys

PORT, UPSTREAM, ECHO = (int(a) for a in sys.argv[1:4])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/hello":
            self.send_body(200, "application/json", json.dumps({"hello": "world"}).encode())
        elif path == "/proxy":
            c = http.client.HTTPConnection("127.0.0.1", UPSTREAM)
            c.request("GET", "/data.txt", headers={"X-From": "app"})
            r = c.getresponse()
            body = r.read()
            c.close()
            self.send_body(r.status, "text/plain", body)
        elif path == "/raw":
            s = socket.create_connection(("127.0.0.1", ECHO))
            got = b""
            for msg in (b"PING\r\n", b"\x00\xff\x10binary\x80"):
                s.sendall(msg)
                want = len(got) + len(msg) + 1
                while len(got) < want:
                    got += s.recv(4096)
            s.close()
            self.send_body(200, "application/octet-stream", got)
        else:
            self.send_body(404, "text/plain", b"not here\n")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(body), 1000):
            part = body[i:i + 1000]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
