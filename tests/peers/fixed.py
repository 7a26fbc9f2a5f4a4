#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A server that answers each connection once, whatever it was sent.

Usage: fixed.py ADDR PORT [ADDR PORT ...]

On every address and port given it accepts connections, waits for the end
of a request head (an empty line, CRLF or bare LF), sends one fixed HTTP/1.1
response ("ok"), then reads until the client closes. The requests tests send
it are odd on purpose (smuggling-shaped, CONNECT with a body, M-SEARCH), so
no real HTTP server would answer them all alike.
"""
import socket
import sys
import threading

RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def serve(conn):
    with conn:
        got = b""
        try:
            while b"\r\n\r\n" not in got and b"\n\n" not in got and b"\n\r\n" not in got:
                b = conn.recv(4096)
                if not b:
                    return
                got += b
            conn.sendall(RESP)
            while conn.recv(4096):
                pass
        except OSError:
            pass


def listen(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


args = sys.argv[1:]
for i in range(0, len(args), 2):
    threading.Thread(target=listen, args=(args[i], int(args[i + 1])), daemon=True).start()
threading.Event().wait()
