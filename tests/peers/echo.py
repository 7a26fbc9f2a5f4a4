#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A line-less echo server: each read comes back with one byte added ("+").

Usage: echo.py PORT
"""
import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            while True:
                b = self.request.recv(4096)
                if not b:
                    return
                self.request.sendall(b + b"+")
        except ConnectionResetError:
            pass    # a port probe that left before its answer


socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
