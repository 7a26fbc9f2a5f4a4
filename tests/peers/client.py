#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The export tests' client: sends requests whose bytes it builds itself,
keeps what it sent and what came back, and writes that as JSON (the truth
the exports are compared with).

Connections: keep-alive with gzip and HEAD, three pipelined requests in one
write, a 10 MiB chunked upload after 100-continue, and the app's endpoints.
Every request has a unique ?n= so exports can be matched to it.

Usage: client.py NGINX_PORT APP_PORT OUT.json
"""
import base64
import http.client
import json
import os
import socket
import sys

from httpstream import Shared

NGINX, APP = int(sys.argv[1]), int(sys.argv[2])
truth = []


def request(method, port, target, headers=(), close=False, body=b""):
    h = [("Host", "127.0.0.1:%d" % port), ("User-Agent", "podtap-test")]
    h += list(headers)
    if body and not any(k.lower() == "transfer-encoding" for k, _ in h):
        h.append(("Content-Length", str(len(body))))
    if close:
        h.append(("Connection", "close"))
    head = "%s %s HTTP/1.1\r\n" % (method, target)
    head += "".join("%s: %s\r\n" % kv for kv in h) + "\r\n"
    return {"method": method, "port": port, "target": target, "headers": h,
            "head": head.encode(), "body": body}


def response(rfile, req):
    r = http.client.HTTPResponse(Shared(rfile), method=req["method"])
    r.begin()
    body = r.read()
    return {"status": r.status, "reason": r.reason,
            "version": r.version, "headers": r.getheaders(), "body": body}


def record(req, resp, conn):
    truth.append({
        "conn_port": conn, "method": req["method"], "port": req["port"],
        "target": req["target"], "req_headers": req["headers"],
        "req_body": base64.b64encode(req["body"]).decode(),
        "status": resp["status"], "reason": resp["reason"],
        "resp_headers": resp["headers"],
        "resp_body": base64.b64encode(resp["body"]).decode()})


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    return s, s.makefile("rb"), s.getsockname()[1]


def keep_alive(port, reqs):
    s, f, me = connect(port)
    for q in reqs:
        s.sendall(q["head"] + q["body"])
        record(q, response(f, q), me)
    s.close()


def pipelined(port, reqs):
    s, f, me = connect(port)
    s.sendall(b"".join(q["head"] + q["body"] for q in reqs))
    for q in reqs:
        record(q, response(f, q), me)
    s.close()


def chunked_upload(port, target, data):
    """100-continue, then the body in chunks of varied sizes with extensions."""
    q = request("PUT", port, target, [("Transfer-Encoding", "chunked"),
                                      ("Expect", "100-continue")], close=True)
    s, f, me = connect(port)
    s.sendall(q["head"])
    line = f.readline()
    assert line.startswith(b"HTTP/1.1 100"), line
    while f.readline() not in (b"\r\n", b"\n", b""):
        pass
    sizes = [1, 4095, 65536, 100000, 7]
    i = k = 0
    while i < len(data):
        n = min(sizes[k % len(sizes)], len(data) - i)
        ext = ";k=%d" % k if k % 3 == 0 else ""
        s.sendall(b"%x%s\r\n" % (n, ext.encode()) + data[i:i + n] + b"\r\n")
        i += n
        k += 1
    s.sendall(b"0\r\nX-Checksum: none\r\n\r\n")
    q["body"] = data
    record(q, response(f, q), me)
    s.close()


n = iter(range(1, 1000))
keep_alive(NGINX, [
    request("GET", NGINX, "/small.txt?n=%d" % next(n)),
    request("GET", NGINX, "/text.txt?n=%d" % next(n), [("Accept-Encoding", "gzip")]),
    request("HEAD", NGINX, "/small.txt?n=%d" % next(n), close=True)])
pipelined(NGINX, [
    request("GET", NGINX, "/small.txt?n=%d" % next(n)),
    request("GET", NGINX, "/text.txt?n=%d" % next(n), [("Accept-Encoding", "gzip")]),
    request("GET", NGINX, "/missing?n=%d" % next(n), close=True)])
chunked_upload(NGINX, "/upload.bin?n=%d" % next(n), os.urandom(10 << 20))
keep_alive(APP, [
    request("GET", APP, "/hello?n=%d" % next(n)),
    request("POST", APP, "/echo?n=%d" % next(n), [("Content-Type", "application/json")],
            body=json.dumps({"text": "é" * 2000}).encode()),
    request("GET", APP, "/proxy?n=%d" % next(n)),
    request("GET", APP, "/raw?n=%d" % next(n), close=True)])
json.dump(truth, open(sys.argv[3], "w"))
