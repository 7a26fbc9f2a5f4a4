#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The local end of a mirror: sink.py PORT DIR [MODE].

Every connection's bytes go to DIR/conn-N.bin (N from 1, in accept order)
and how it ended to DIR/conn-N.end: "fin" (the peer half-closed) or "rst".
MODE "answer" replies to every read with a line (answers the mirror must
read and throw away); "stall" accepts and never reads (a stuck local
process).
"""
import os
import socket
import sys
import threading

PORT, DIR = int(sys.argv[1]), sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else ""
seq = 0
held = []


def serve(c, n):
    data, end = bytearray(), "fin"
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            data += b
            if MODE == "answer":
                c.sendall(b"ok %d\n" % len(b))
    except ConnectionResetError:
        end = "rst"
    with open(os.path.join(DIR, "conn-%d.bin" % n), "wb") as f:
        f.write(data)
    with open(os.path.join(DIR, "conn-%d.end" % n), "w") as f:
        f.write(end + "\n")
    c.close()


s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if MODE == "stall":
    # a small receive buffer, so that the sender fills it soon
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(("127.0.0.1", PORT))
s.listen(1024)
while True:
    c, _ = s.accept()
    seq += 1
    if MODE == "stall":
        held.append(c)
        continue
    threading.Thread(target=serve, args=(c, seq), daemon=True).start()
