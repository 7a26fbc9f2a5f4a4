#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# An HTTPS server (HTTP/1.1, keep-alive) for the TLS tests: GET /n/K answers
# body(K), POST /echo answers the request body back. Python's ssl module:
# OpenSSL's SSL_read_ex and SSL_write_ex.
# Usage: tls_server.py PORT CERT KEY   (CERT "-": plain HTTP, to compare with)
import http.server
import ssl
import sys


def body(k):
    """K bytes, different for each K, so that a mix-up shows."""
    return (("%d:" % k) * (k // 2 + 2)).encode()[:k]


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, b):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        self.reply(body(int(self.path.rsplit("/", 1)[1])))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.reply(self.rfile.read(n))


if __name__ == "__main__":
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
    if sys.argv[2] != "-":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()
