#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A collector for the tests of podtap's segment upload.

  POST /v1/segments/NAMESPACE/SESSION/FILE   store the body (Content-Length
       or chunked) as DIR/NAMESPACE/SESSION/FILE; needs X-Podtap-Node;
       201 when stored, 400 for a bad path or no X-Podtap-Node, and 503
       for the first N stored-to-be uploads with --fail-first N
  GET  /v1/segments    JSON list of {"path", "size"} of the stored files
  GET  /v1/requests    JSON list of the uploads seen: {"method", "path",
       "node", "status", "size"}, in order
  GET  /healthz        "ok"

A file is written under DIR/.incoming first and renamed into place, so a
stored file is always whole. Storing the same path again replaces it.

Usage: collector.py --port P [--host H] [--portfile FILE] --dir DIR
                    [--fail-first N] [--verbose]
"""
import argparse
import json
import os
import signal
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

PREFIX = "/v1/segments"
INCOMING = ".incoming"      # where uploads are written before the rename
PIECE = 64 * 1024


class BodyError(Exception):
    pass


def body_pieces(rfile, headers):
    """The request body in pieces, by Content-Length or chunked."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        while True:
            line = rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BodyError("bad chunk size") from None
            if size == 0:
                while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass            # trailers
                return
            yield from _exactly(rfile, size)
            rfile.readline(16)      # the CRLF after the chunk
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        raise BodyError("bad Content-Length") from None
    if length < 0:
        raise BodyError("bad Content-Length")
    yield from _exactly(rfile, length)


def _exactly(rfile, n):
    while n > 0:
        data = rfile.read(min(n, PIECE))
        if not data:
            raise BodyError("body cut short")
        n -= len(data)
        yield data


def segment_path(path):
    """[namespace, session, file] from the URL path, or None if bad."""
    if not path.startswith(PREFIX + "/"):
        return None
    parts = [unquote(p) for p in path[len(PREFIX) + 1:].split("/")]
    if len(parts) != 3:
        return None
    for p in parts:
        if p in ("", ".", "..") or "/" in p or "\0" in p:
            return None
    if parts[0] == INCOMING:
        return None
    return parts


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "podtap-test-collector/1"
    # headers and body go out in separate writes: without TCP_NODELAY a
    # keep-alive client waits out its delayed ACK on every answer
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("collector: %s - %s\n"
                             % (self.address_string(), fmt % args))

    def reply(self, code, obj=None, text=None):
        if text is not None:
            data, ctype = text.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(obj).encode() + b"\n", "application/json"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def note(self, path, node, status, size):
        with self.server.lock:
            self.server.log.append({"method": self.command, "path": path,
                                    "node": node, "status": status,
                                    "size": size})

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == PREFIX:
            self.reply(200, self.server.listing())
        elif path == "/v1/requests":
            with self.server.lock:
                log = list(self.server.log)
            self.reply(200, log)
        elif path == "/healthz":
            self.reply(200, text="ok")
        else:
            self.reply(404, {"error": f"no such path {path}"})

    def do_POST(self):
        path = urlsplit(self.path).path
        parts = segment_path(path)
        node = self.headers.get("X-Podtap-Node")
        srv = self.server
        fail = False
        if parts and node:
            with srv.lock:
                fail = srv.failures_left > 0
                if fail:
                    srv.failures_left -= 1
        tmp = None
        size = 0
        try:
            if parts and node and not fail:
                tmp = os.path.join(srv.dir, INCOMING, uuid.uuid4().hex)
                with open(tmp, "wb") as f:
                    for piece in body_pieces(self.rfile, self.headers):
                        f.write(piece)
                        size += len(piece)
                dest = os.path.join(srv.dir, *parts)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(tmp, dest)
                tmp = None
            else:
                for piece in body_pieces(self.rfile, self.headers):
                    size += len(piece)     # drained, not kept
        except BodyError as e:
            self.close_connection = True
            self.note(path, node, 400, size)
            self.reply(400, {"error": str(e)})
            return
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        if not parts:
            status, answer = 400, {"error": "want POST /v1/segments/"
                                   "NAMESPACE/SESSION/FILE, each a plain "
                                   "name"}
        elif not node:
            status, answer = 400, {"error": "no X-Podtap-Node header"}
        elif fail:
            status, answer = 503, {"error": "failing on purpose "
                                   "(--fail-first)"}
        else:
            status, answer = 201, {"path": "/".join(parts), "size": size}
        self.note(path, node, status, size)
        self.reply(status, answer)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def listing(self):
        """Stored files as {"path", "size"}, by path."""
        out = []
        for root, dirs, files in os.walk(self.dir):
            if root == self.dir and INCOMING in dirs:
                dirs.remove(INCOMING)
            for name in files:
                full = os.path.join(root, name)
                out.append({"path": os.path.relpath(full, self.dir),
                            "size": os.path.getsize(full)})
        return sorted(out, key=lambda e: e["path"])


class Stop(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True, help="0 = pick one")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--portfile", help="write the bound port here")
    ap.add_argument("--dir", required=True, help="where to store segments")
    ap.add_argument("--fail-first", type=int, default=0, metavar="N",
                    help="answer 503 to the first N uploads")
    ap.add_argument("--verbose", action="store_true",
                    help="log requests to stderr")
    args = ap.parse_args()

    os.makedirs(os.path.join(args.dir, INCOMING), exist_ok=True)
    httpd = Server((args.host, args.port), Handler)
    httpd.dir = os.path.abspath(args.dir)
    httpd.failures_left = args.fail_first
    httpd.verbose = args.verbose
    httpd.lock = threading.Lock()
    httpd.log = []

    def on_signal(signum, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.portfile:
        tmp = f"{args.portfile}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{httpd.server_address[1]}\n")
        os.replace(tmp, args.portfile)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        httpd.server_close()


if __name__ == "__main__":
    main()
