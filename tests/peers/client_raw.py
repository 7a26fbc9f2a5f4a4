#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Send standard input's bytes as they are to ADDR PORT, read until the
server answers (or closes), then close. For requests no HTTP client would
send: smuggling-shaped heads, CONNECT with a body, odd methods.

Usage: client_raw.py ADDR PORT < bytes
"""
import socket
import sys

data = sys.stdin.buffer.read()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(data)
got = b""
try:
    while b"ok" not in got:
        b = s.recv(4096)
        if not b:
            break
        got += b
except socket.timeout:
    pass
s.close()
