#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The replay tests' client: rclient.py APP_PORT NGINX_PORT OUTDIR.

Connections one after another, each keep-alive with its requests in
order, built byte by byte here; every connection's bytes as sent go to
OUTDIR/sent-N.bin (N from 1) and the responses' bodies to
OUTDIR/body-N-K.bin, so that mirrors and mocks can be checked against
what really went over the wire. APP_PORT is tests/peers/jsonsvc.py,
NGINX_PORT an nginx serving index.html and small.txt.
"""
import http.client
import os
import socket
import sys

from httpstream import Shared


def request(method, path, host, body=b"", extra=()):
    h = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host,
         "User-Agent: rclient"]
    h += list(extra)
    if body or method in ("POST", "PUT"):
        h.append("Content-Length: %d" % len(body))
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


def conversation(port, reqs, n, out):
    """One connection: send each request, read its response whole."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = b""
    f = s.makefile("rb")
    for k, (method, raw) in enumerate(reqs, 1):
        s.sendall(raw)
        sent += raw
        r = http.client.HTTPResponse(Shared(f), method=method)
        r.begin()
        body = r.read()
        with open(os.path.join(out, "body-%d-%d.bin" % (n, k)), "wb") as b:
            b.write(body)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
    with open(os.path.join(out, "sent-%d.bin" % n), "wb") as b:
        b.write(sent)


def main():
    app, nginx, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    ah, nh = "127.0.0.1:%d" % app, "127.0.0.1:%d" % nginx
    convs = [
        (app, [("GET", request("GET", "/items/1", ah)),
               ("GET", request("GET", "/items/2", ah)),
               ("GET", request("GET", "/health", ah)),
               ("GET", request("GET", "/gone", ah))]),
        (app, [("GET", request("GET", "/items", ah,
                               extra=["Accept-Encoding: gzip"]))]),
        (app, [("GET", request("GET", "/stream", ah))]),
        (app, [("HEAD", request("HEAD", "/items/3", ah)),
               ("GET", request("GET", "/bin", ah))]),
        (app, [("POST", request("POST", "/items", ah, b'{"name": "new"}',
                                ["Content-Type: application/json"]))]),
        (nginx, [("GET", request("GET", "/index.html", nh)),
                 ("GET", request("GET", "/small.txt", nh)),
                 ("GET", request("GET", "/missing", nh))]),
    ]
    for n, (port, reqs) in enumerate(convs, 1):
        conversation(port, reqs, n, out)


main()
