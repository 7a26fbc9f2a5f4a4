#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Checks podtap's exports of the traffic tests/e2e_export.sh made against
what its clients sent and received (truth.json), and the pcapng against
tshark's own capture of the same traffic, stream by stream.

Usage: export_check.py TMP NGINX_PORT APP_PORT UPSTREAM_PORT ECHO_PORT

TMP/keploy.json, when there, is the test set as Keploy's own YAML library
read it into structs with Keploy's field names (tests/peers/keploy_decode):
it must say what the YAML says, byte for byte.
"""
import base64
import glob
import gzip
import json
import re
import shlex
import subprocess
import sys
import urllib.parse

import yaml

TMP = sys.argv[1]
NGINX, APP, UP, ECHO = (int(a) for a in sys.argv[2:6])
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def canon(name):
    """Go's CanonicalMIMEHeaderKey, as Keploy keys its header maps."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def header_map(pairs, body_len=None, decoded=False):
    """What Keploy's recorder keeps: Go's header map, Transfer-Encoding
    gone, and in a response the length of the body as written."""
    m = {}
    for k, v in pairs:
        k = canon(k)
        if k == "Transfer-Encoding":
            continue
        if k == "Content-Length" and decoded:
            v = str(body_len)
        m[k] = m[k] + "," + v if k in m else v
    chunked = any(k.lower() == "transfer-encoding" for k, _ in pairs)
    if body_len is not None and chunked and "Content-Length" not in m:
        m["Content-Length"] = str(body_len)
    return m


def url_params(target):
    """Keploy's url_params: each key once, values joined with ", "."""
    q = urllib.parse.urlsplit(target).query
    m = {}
    for k, v in urllib.parse.parse_qsl(q, keep_blank_values=True):
        m[k] = m[k] + ", " + v if k in m else v
    return m


def decoded_body(headers, body):
    enc = [v for k, v in headers if k.lower() == "content-encoding"]
    if enc and enc[0] == "gzip":
        return gzip.decompress(body), True
    return body, False


def yaml_body(msg):
    """A body: text, or a !!binary value (PyYAML gives bytes)."""
    check("body_base64" not in msg, "a body_base64 key, which Keploy does not have")
    b = msg["body"]
    return b if isinstance(b, bytes) else b.encode()


truth = json.load(open(TMP + "/truth.json"))
for t in truth:
    t["url"] = "http://127.0.0.1:%d%s" % (t["port"], t["target"])
    t["req_body"] = base64.b64decode(t["req_body"])
    t["resp_body"] = base64.b64decode(t["resp_body"])

# ---- Keploy tests: one per inbound exchange, field by field ----
tests = {}
for path in glob.glob(TMP + "/out/keploy/test-set-0/tests/test-*.yaml"):
    doc = yaml.load(open(path), Loader=yaml.CSafeLoader)
    check(doc["version"] == "api.keploy.io/v1beta1" and doc["kind"] == "Http"
          and path.endswith("/%s.yaml" % doc["name"]), path + ": header")
    tests[(doc["spec"]["req"]["method"], doc["spec"]["req"]["url"])] = doc
check(len(tests) == len(truth) + 2,
      "%d Keploy tests for %d client requests + 2 by curl" % (len(tests), len(truth)))
for t in truth:
    doc = tests.get((t["method"], t["url"]))
    if not check(doc, "no Keploy test for %s %s" % (t["method"], t["url"])):
        continue
    q, r = doc["spec"]["req"], doc["spec"]["resp"]
    what = "test %s (%s %s): " % (doc["name"], t["method"], t["target"])
    check((q["proto_major"], q["proto_minor"]) == (1, 1), what + "request version")
    check(q["header"] == header_map(t["req_headers"]), what + "request headers %r != %r"
          % (q["header"], header_map(t["req_headers"])))
    check(q.get("url_params", {}) == url_params(t["target"]),
          what + "url_params %r" % q.get("url_params"))
    check(yaml_body(q) == t["req_body"], what + "request body (%d bytes, sent %d)"
          % (len(yaml_body(q)), len(t["req_body"])))
    body, dec = decoded_body(t["resp_headers"], t["resp_body"])
    check(r["status_code"] == t["status"] and r["status_message"] == t["reason"],
          what + "status %s %s" % (r["status_code"], r["status_message"]))
    check(r["header"] == header_map(t["resp_headers"], len(body), dec),
          what + "response headers %r" % r["header"])
    check(yaml_body(r) == body, what + "response body")
    check(q["timestamp"] <= r["timestamp"], what + "timestamps in order")
    check("header.Date" in doc["spec"]["assertions"]["noise"], what + "Date is noise")
    # the curl line, as a shell splits it, names the method and URL
    argv = shlex.split(doc["curl"].replace("\\\n", " "), comments=True)
    check(argv[:5] == ["curl", "--request", t["method"], "--url", q["url"]],
          what + "curl line %r" % argv[:5])
for url, f in (("http://127.0.0.1:%d/text.txt?n=100" % NGINX, "curl-text.out"),
               ("http://127.0.0.1:%d/hello?n=101" % APP, "curl-hello.out")):
    doc = tests.get(("GET", url))
    if check(doc, "no Keploy test for curl's GET " + url):
        check(yaml_body(doc["spec"]["resp"]) == open(TMP + "/" + f, "rb").read(),
              "curl's GET %s: body differs from what curl got" % url)

# ---- mocks: the app's outbound HTTP and TCP calls ----
mocks = list(yaml.load_all(open(TMP + "/out/keploy/test-set-0/mocks.yaml"),
                           Loader=yaml.CSafeLoader))
http_mocks = [m for m in mocks if m["kind"] == "Http"]
generic = [m for m in mocks if m["kind"] == "Generic"]
check([m["name"] for m in mocks] == ["mock-%d" % i for i in range(len(mocks))],
      "mocks named mock-0..N")
if check(len(http_mocks) == 1, "%d Http mocks, want 1" % len(http_mocks)):
    m = http_mocks[0]["spec"]
    check(m["metadata"]["type"] == "HTTP_CLIENT" and m["req"]["method"] == "GET"
          and m["req"]["url"] == "http://127.0.0.1:%d/data.txt" % UP
          and m["req"]["header"].get("X-From") == "app", "Http mock request")
    check(m["resp"]["status_code"] == 200 and yaml_body(m["resp"]) == b"upstream data\n",
          "Http mock response")
    proxy = tests.get(("GET", [t["url"] for t in truth if "/proxy" in t["url"]][0]))
    check(proxy and proxy["spec"]["req"]["timestamp"] <= m["reqTimestampMock"]
          <= m["resTimestampMock"] <= proxy["spec"]["resp"]["timestamp"],
          "the Http mock's times fall within its test's")
want = [(b"PING\r\n", "string"), (b"\x00\xff\x10binary\x80", "binary")]
if check(len(generic) == 2, "%d Generic mocks, want 2" % len(generic)):
    for m, (sent, kind) in zip(generic, want):
        q = m["spec"]["genericrequests"][0]
        r = m["spec"]["genericresponses"][0]
        data = lambda msg: (msg["data"].encode() if msg["type"] == "string"
                            else base64.b64decode(msg["data"]))
        check(q["origin"] == "client" and q["message"][0]["type"] == kind and
              data(q["message"][0]) == sent, "Generic request %r" % q)
        check(r["origin"] == "server" and data(r["message"][0]) == sent + b"+",
              "Generic response %r" % r)

# ---- the same set as Keploy reads it (yaml.v3 into its structs) ----
try:
    decoded = json.load(open(TMP + "/keploy.json"))
except FileNotFoundError:
    decoded = None
if decoded is not None:
    by_file = {}
    for path in glob.glob(TMP + "/out/keploy/test-set-0/tests/test-*.yaml"):
        by_file[path.rsplit("/", 1)[1]] = [yaml.load(open(path), Loader=yaml.CSafeLoader)]
    by_file["mocks.yaml"] = mocks
    seen = {}
    for d in decoded:
        k = seen[d["file"]] = seen.get(d["file"], -1) + 1
        doc = by_file[d["file"]][k]
        spec = doc["spec"]
        what = "Keploy's decoding of %s %s: " % (d["file"], d["name"])
        b64 = lambda v: base64.b64decode(v) if v else b""
        check(d["kind"] == doc["kind"] and d["name"] == doc["name"], what + "kind, name")
        if doc["kind"] == "Http":
            check(d["method"] == spec["req"]["method"] and d["url"] == spec["req"]["url"],
                  what + "method, url")
            check((d.get("url_params") or {}) == spec["req"].get("url_params", {}),
                  what + "url_params")
            check(b64(d.get("req_body")) == yaml_body(spec["req"]), what + "request body")
            check(b64(d.get("resp_body")) == yaml_body(spec["resp"]), what + "response body")
            check(d["status"] == spec["resp"]["status_code"], what + "status")
            check(d["resp_header"] == spec["resp"]["header"], what + "response header")
            if doc["name"].startswith("test-"):
                check(d.get("noise") == sorted(spec["assertions"]["noise"]), what + "noise")
        else:
            data = lambda m: m["data"]
            check([data(m) for m in d["requests"]] ==
                  [data(m["message"][0]) for m in spec["genericrequests"]], what + "requests")
            check([data(m) for m in d.get("responses") or []] ==
                  [data(m["message"][0]) for m in spec["genericresponses"]], what + "responses")
    check(sum(seen.get(f, -1) + 1 for f in by_file) == sum(len(v) for v in by_file.values()),
          "Keploy decoded every document")

# ---- HAR and JSON lines ----
har = json.load(open(TMP + "/out.har"))["log"]
check(har["version"] == "1.2", "HAR version")
entries = {(e["request"]["method"], e["request"]["url"]): e for e in har["entries"]}
check(len(har["entries"]) == len(truth) + 3, "%d HAR entries" % len(har["entries"]))
for t in truth:
    e = entries.get((t["method"], t["url"]))
    if not check(e, "no HAR entry for " + t["url"]):
        continue
    body, _ = decoded_body(t["resp_headers"], t["resp_body"])
    c = e["response"]["content"]
    got = base64.b64decode(c["text"]) if c.get("encoding") == "base64" else c["text"].encode()
    check(e["response"]["status"] == t["status"] and got == body,
          "HAR %s: response" % t["url"])
    chunked = any(k.lower() == "transfer-encoding" for k, _ in t["resp_headers"])
    check(e["response"]["bodySize"] == len(t["resp_body"]) or
          (chunked and e["response"]["bodySize"] > len(t["resp_body"])),
          "HAR %s: bodySize, the bytes on the wire" % t["url"])
    if t["req_body"]:
        p = e["request"].get("postData", {})
        sent = base64.b64decode(p.get("text", "")) if p.get("encoding") == "base64" \
            else p.get("text", "").encode()
        check(sent == t["req_body"] and "_encoding" not in p and
              (p.get("encoding") == "base64") == ("comment" in p),
              "HAR %s: postData is the request body (encoding: base64 when not text)" % t["url"])
    cookies = [v for k, v in t["req_headers"] if k.lower() == "cookie"]
    check(len(e["request"]["cookies"]) == sum(len(c.split(";")) for c in cookies),
          "HAR %s: request cookies" % t["url"])
lines = [json.loads(l) for l in open(TMP + "/out.jsonl")]
check(sum(l["kind"] == "http" for l in lines) == len(truth) + 3 and
      sum(l["kind"] == "raw" for l in lines) == 2, "JSON lines: exchanges by kind")
check(all(l["complete"] for l in lines), "JSON lines: all complete")


# ---- pcapng: tshark's follow-tcp of both captures, stream by stream ----
def follow(path, convs):
    args = ["tshark", "-r", path, "-q"]
    for c in convs:
        args += ["-z", "follow,tcp,raw,%s:%s,%s:%s" % c]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    streams, cur = {}, None
    for line in out.splitlines():
        if line.startswith("Node 0: "):
            cur = [line[8:], None, bytearray(), bytearray()]
        elif line.startswith("Node 1: ") and cur:
            cur[1] = line[8:]
            streams[(cur[0], cur[1])] = cur
        elif line.startswith("====="):
            cur = None
        elif cur and cur[1] and line.strip():
            side = 3 if line.startswith("\t") else 2
            cur[side] += bytes.fromhex(line.strip())
    return {k: (bytes(v[2]), bytes(v[3])) for k, v in streams.items()}


syn = subprocess.run(["tshark", "-r", TMP + "/real.pcapng", "-Y",
                      "tcp.flags.syn == 1 && tcp.flags.ack == 0", "-T", "fields",
                      "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst",
                      "-e", "tcp.dstport"], capture_output=True, text=True).stdout
convs = [tuple(l.split("\t")) for l in syn.splitlines() if l]
# the client's python, curl and the app's calls: 4 + 2 + 1 + 1 connections
check(len(convs) == 8, "tshark saw %d connections, want 8" % len(convs))
real = follow(TMP + "/real.pcapng", convs)
ours = follow(TMP + "/out.pcapng", convs)
check(len(real) == len(convs), "tshark followed %d of its own %d streams" % (len(real), len(convs)))
for k, v in real.items():
    o = ours.get(k)
    if check(o is not None, "stream %s <-> %s not in podtap's pcapng" % k):
        check(o == v, "stream %s <-> %s: %d/%d bytes in podtap's pcapng, %d/%d in tshark's"
              % (k + (len(o[0]), len(o[1]), len(v[0]), len(v[1]))))
def requests(path):
    return subprocess.run(["tshark", "-r", path, "-Y", "http.request", "-T",
                           "fields", "-e", "http.request.method", "-e",
                           "http.request.uri"], capture_output=True, text=True).stdout


dissected = requests(TMP + "/out.pcapng")
# tshark itself does not always dissect the 10 MiB chunked upload (in its
# own capture either): every other request must be there
uris = re.split(r"[,\t\n]", dissected)
want = [t["target"] for t in truth if not t["target"].startswith("/upload")]
check(all(u in uris for u in want + ["/data.txt", "/text.txt?n=100", "/hello?n=101"]),
      "tshark dissects the HTTP requests in podtap's pcapng, not only:\n" + dissected)
# and, the upload aside, exactly as in its own capture: where tshark
# dissects the upload depends on segment boundaries, which differ
def but_upload(text):
    return [l for l in text.splitlines() if "/upload" not in l]


check(but_upload(dissected) == but_upload(requests(TMP + "/real.pcapng")),
      "tshark dissects podtap's pcapng as it does its own capture")

for f in failures:
    print("  " + f)
print("export_check: %d problems" % len(failures))
sys.exit(1 if failures else 0)
