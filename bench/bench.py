#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""podtap's benchmark harness: what recording costs, measured side by side.

Every comparison runs its configurations interleaved run by run (A B C A B
C ...) in one invocation and reports medians and ratios against the
untraced baseline of that same invocation, because absolute numbers move
on a shared machine. Nothing here asserts a timing; it reports.

  1. overhead on a traced server: nginx with 1 KiB and 64 KiB responses
     under wrk (32 keep-alive connections, loopback): untraced, recorded
     by podtap (full payload to a file), captured by tcpdump -i lo -w FILE,
     and the floor: bench/floor.bpf.c, which copies each TCP payload into a
     ring buffer and nothing more, drained and thrown away (bench/floor.c)
  2. overhead on processes that are not targets, while podtap records
     another cgroup, or another pid namespace (which puts the programs on
     the root cgroup, where they pass every other socket over)
  3. capture throughput: one bulk TCP transfer from a target cgroup at
     increasing offered rates; what was captured and what was lost
  4. kernel cost per event from the kernel's BPF run-time statistics,
     podtap's and the floor's
  5. podtap record's CPU seconds per GB captured and peak RSS
  6. TLS: the traced nginx over HTTPS (its libssl hooked, plaintext
     recorded), and an nginx that is not a target but maps the same
     libssl file while podtap records the other one
  7. where the time goes: a profile of the whole machine (perf record -a
     -g) under section 1's 1 KiB load, each sample's own function grouped
     by who runs it: podtap's BPF programs, the kernel's BPF helpers and
     hooks, podtap record, the traffic itself

Writes DIR/benchmarks.md, DIR/benchmarks.json and DIR/benchmarks.png.

  bench/bench.py [--tiny] [--runs N] [--seconds S] [--out DIR]

With --offline SECONDS, only the offline side: nginx with 1 KiB responses
recorded under wrk for SECONDS, then the time, CPU and peak RSS of podtap
read, podtap export (jsonl, har, pcapng, keploy) and podtap replay (a dry
run, and every request sent again to that nginx) on that capture, written
to DIR/benchmarks-offline.md. --readers read,export,replay picks some.

With --scale, only the scale runs: 10,000 keep-alive connections on a
target against 32 (ns per packet-program run, the kernel memory charged to
podtap record's memory cgroup, its RSS), and 500 targeted cgroups against
one (time to start and stop, ns per packet-program run), written to
DIR/benchmarks-scale.md and .json. Measured, not judged.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PODTAP = os.path.join(ROOT, "podtap")
PORT_T, PORT_U, PORT_M, PORT_BULK = 18570, 18571, 18572, 18573
PORT_T_TLS, PORT_U_TLS = 18574, 18575
PORT_S, PORT_S2 = 18576, 18577
CONNS = 32
OFFLINE_GROUPS = ("read", "export", "replay")
SIZES = (1024, 65536)


def die(msg):
    print("bench: " + msg, file=sys.stderr)
    sys.exit(1)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cg2_root():
    mounts = [l.split() for l in open("/proc/self/mounts")]
    roots = sorted(m[1] for m in mounts if m[2] == "cgroup2")
    if not roots:
        die("no cgroup v2 mount")
    return "/sys/fs/cgroup" if "/sys/fs/cgroup" in roots else roots[0]


def median(v):
    return statistics.median(v) if v else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="podtap-bench.")
        os.chmod(self.tmp, 0o755)       # nginx workers run as nobody
        root = cg2_root()
        self.cg_t = os.path.join(root, "podtap-bench-t-%d" % os.getpid())
        self.cg_u = os.path.join(root, "podtap-bench-u-%d" % os.getpid())
        self.cg_o = os.path.join(root, "podtap-bench-o-%d" % os.getpid())
        self.procs = []
        self.cgs = [self.cg_t, self.cg_u, self.cg_o]
        for cg in self.cgs:
            os.makedirs(cg, exist_ok=True)

    # ---- processes ----

    def spawn(self, argv, cgroup=None, **kw):
        def enter():
            if cgroup:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
        p = subprocess.Popen(argv, preexec_fn=enter, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGINT, timeout=30):
        """Signal p and reap it; its rusage (or None if already reaped)."""
        if p in self.procs:
            self.procs.remove(p)
        if p.returncode is not None:
            return None
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                return ru
            if time.monotonic() > deadline:
                p.kill()
            time.sleep(0.02)

    def cleanup(self):
        for p in list(self.procs):
            self.stop(p, signal.SIGKILL)
        # nginx workers outlive a killed master: empty the cgroups whole
        # (the ones made last, inside the others, first)
        for cg in reversed(self.cgs):
            try:
                with open(os.path.join(cg, "cgroup.kill"), "w") as f:
                    f.write("1")
            except OSError:
                pass
            for _ in range(100):
                try:
                    os.rmdir(cg)
                    break
                except OSError:
                    time.sleep(0.05)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def cert(self):
        """A self-signed certificate for the nginx TLS listeners."""
        c, k = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        if not os.path.exists(c):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                            "-nodes", "-days", "1", "-subj", "/CN=localhost",
                            "-keyout", k, "-out", c], check=True,
                           capture_output=True)
            os.chmod(k, 0o644)
        return c, k

    def nginx(self, name, port, cgroup, tls_port=None, conns=1024):
        d = os.path.join(self.tmp, name)
        os.makedirs(os.path.join(d, "www"))
        os.makedirs(os.path.join(d, "tmp"))
        for size in SIZES:
            with open(os.path.join(d, "www", "r%d.bin" % size), "wb") as f:
                f.write(os.urandom(size))
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
worker_rlimit_nofile %(nofile)d;
events { worker_connections %(conns)d; }
http {
	access_log off;
	client_body_temp_path %(d)s/tmp;
	proxy_temp_path %(d)s/tmp;
	fastcgi_temp_path %(d)s/tmp;
	uwsgi_temp_path %(d)s/tmp;
	scgi_temp_path %(d)s/tmp;
	keepalive_requests 1000000;
	server { listen 127.0.0.1:%(port)d; root %(d)s/www; %(tls)s}
}
""" % {"d": d, "port": port, "conns": conns, "nofile": conns + 448,
       "tls": (
                "listen 127.0.0.1:%d ssl; ssl_certificate %s; "
                "ssl_certificate_key %s; " % ((tls_port,) + self.cert())
                if tls_port else "")})
        subprocess.run(["chmod", "-R", "a+rwX", d], check=True)
        p = self.spawn(["nginx", "-c", conf], cgroup)
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/r1024.bin" % port,
                                       timeout=1).read()
                return p
            except OSError as e:
                last = e
                time.sleep(0.05)
        try:
            err = open(os.path.join(d, "error.log")).read().strip()
        except OSError:
            err = "no error log"
        die("nginx on port %d did not answer (%s): %s" % (port, last,
                                                         err[-300:]))

    def wrk(self, port, size, scheme="http"):
        out = subprocess.run(
            ["wrk", "-t1", "-c%d" % CONNS, "-d%ds" % self.args.seconds,
             "%s://127.0.0.1:%d/r%d.bin" % (scheme, port, size)],
            capture_output=True, text=True, check=True).stdout
        m = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
        if not m:
            die("wrk printed no Requests/sec:\n" + out)
        return float(m.group(1))

    def record(self, targets, out, metrics=False, binary=PODTAP, extra=(),
               cgroup=None):
        """podtap record, returned once it says it is recording."""
        argv = [binary, "record", "-w", out]
        for kind, t in targets:
            argv += [kind, t]
        argv += list(extra)
        if metrics:
            argv += ["--metrics", "127.0.0.1:%d" % PORT_M]
        p = self.spawn(argv, cgroup, stderr=subprocess.PIPE, text=True)
        # lines before it say what it found (the targets' TLS libraries)
        seen = []
        for _ in range(200):
            line = p.stderr.readline()
            seen.append(line.strip())
            if not line or "recording" in line:
                break
        if "recording" not in line:
            self.stop(p)
            die("podtap record did not start: " + " / ".join(seen) +
                p.stderr.read().strip())
        # CPU spent so far is loading and verifying the programs, not
        # capturing: taken off what rusage says at the end
        with open("/proc/%d/stat" % p.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        p.start_cpu = (int(fields[11]) + int(fields[12])) / \
            os.sysconf("SC_CLK_TCK")
        return p

    def record_stop(self, p):
        """Stop podtap record; (rusage, CPU seconds since it started
        recording, payload bytes, lost events from its closing line)."""
        ru = self.stop(p)
        rest = p.stderr.read()
        if p.returncode != 0:
            die("podtap record failed: " + rest.strip())
        m = re.search(r"([0-9.]+) (B|KiB|MiB|GiB|TiB) of payload, "
                      r"\d+ records, (\d+) lost", rest)
        if not m:
            die("podtap record printed no summary: " + rest.strip())
        unit = 1024 ** ("B KiB MiB GiB TiB".split().index(m.group(2)))
        cpu = ru.ru_utime + ru.ru_stime - p.start_cpu
        return ru, cpu, float(m.group(1)) * unit, int(m.group(3))

    def tcpdump(self, out, port):
        p = self.spawn(["tcpdump", "-i", "lo", "-w", out, "tcp port %d" % port],
                       stderr=subprocess.PIPE, text=True)
        line = p.stderr.readline()
        if "listening" not in line:
            self.stop(p)
            die("tcpdump did not start: " + line.strip())
        return p

    def build_floor(self):
        """bench/floor.bpf.c and its consumer, built here (once)."""
        if hasattr(self, "floor_exe"):
            return
        obj = os.path.join(self.tmp, "floor.bpf.o")
        exe = os.path.join(self.tmp, "floor")
        arch = {"x86_64": "x86", "aarch64": "arm64"}.get(platform.machine(),
                                                         platform.machine())
        for argv in (["clang", "-g", "-O2", "-target", "bpf",
                      "-D__TARGET_ARCH_" + arch, "-Wall", "-Werror",
                      "-I" + os.path.join(ROOT, "vmlinux", arch),
                      "-I" + os.path.join(ROOT, "bpf"), "-c",
                      os.path.join(ROOT, "bench/floor.bpf.c"), "-o", obj],
                     ["gcc", "-O2", "-Wall", "-Werror", "-o", exe,
                      os.path.join(ROOT, "bench/floor.c"), "-lbpf"]):
            r = subprocess.run(argv, capture_output=True, text=True)
            if r.returncode:
                die("cannot build the floor configuration (%s): %s" %
                    (argv[0], r.stderr.strip()))
        self.floor_obj, self.floor_exe = obj, exe

    def floor(self, cgroup, stats=False, mode="copy"):
        """The floor configuration on cgroup, once it is attached; mode
        copy (one ring, as podtap), pcpu (a ring per CPU) or pass (programs
        that do nothing)."""
        self.build_floor()
        p = self.spawn([self.floor_exe] + (["-s"] if stats else []) +
                       ["-m", mode, self.floor_obj, cgroup],
                       stderr=subprocess.PIPE, text=True)
        line = p.stderr.readline()
        if "capturing" not in line:
            self.stop(p)
            die("the floor did not start: " + line.strip() +
                p.stderr.read().strip())
        return p

    def floor_stop(self, p):
        """Stop the floor: (records, bytes, lost bytes, {program: (runs,
        ns)}) from its closing lines."""
        self.stop(p)
        rest = p.stderr.read()
        m = re.search(r"floor: (\d+) records, (\d+) bytes, (\d+) bytes lost",
                      rest)
        if p.returncode or not m:
            die("the floor failed: " + rest.strip())
        progs = {n: (int(r), int(t)) for n, r, t in
                 re.findall(r"floor: (\w+) (\d+) runs (\d+) ns", rest)}
        return int(m.group(1)), int(m.group(2)), int(m.group(3)), progs

    def tcpdump_stop(self, p):
        self.stop(p)
        rest = p.stderr.read()
        m = re.search(r"(\d+) packets dropped by kernel", rest)
        return int(m.group(1)) if m else None

    def scrape(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % PORT_M,
                                    timeout=5) as r:
            text = r.read().decode()
        v = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, val = line.rsplit(" ", 1)
                v[name] = float(val)
        return v

    # ---- 1. traced server ----

    def traced(self):
        cfgs = ("untraced", "podtap", "tcpdump", "floor")
        res = {s: {c: [] for c in cfgs} for s in SIZES}
        usr = {s: [] for s in SIZES}
        lost = {s: {"podtap": [], "tcpdump": [], "floor": []} for s in SIZES}
        for run in range(self.args.runs):
            for size in SIZES:
                for cfg in cfgs:
                    out = os.path.join(self.tmp, "cap")
                    note = ""
                    if cfg == "podtap":
                        p = self.record([("-c", self.cg_t)], out)
                        rps = self.wrk(PORT_T, size)
                        ru, cpu, payload, nlost = self.record_stop(p)
                        usr[size].append({
                            "cpu_s": cpu,
                            "startup_cpu_s": p.start_cpu,
                            "payload_bytes": payload,
                            "file_bytes": os.path.getsize(out),
                            "maxrss_kib": ru.ru_maxrss})
                        lost[size]["podtap"].append(nlost)
                        note = "  (%.0f MB payload, %d events lost, " \
                            "%.2f CPU s)" % (payload / 1e6, nlost, cpu)
                    elif cfg == "tcpdump":
                        p = self.tcpdump(out, PORT_T)
                        rps = self.wrk(PORT_T, size)
                        drops = self.tcpdump_stop(p)
                        lost[size]["tcpdump"].append(drops)
                        note = "  (%s packets dropped)" % drops
                    elif cfg == "floor":
                        p = self.floor(self.cg_t)
                        rps = self.wrk(PORT_T, size)
                        _, nbytes, nlost, _ = self.floor_stop(p)
                        lost[size]["floor"].append(nlost)
                        note = "  (%.0f MB copied, %d bytes lost)" % (
                            nbytes / 1e6, nlost)
                    else:
                        rps = self.wrk(PORT_T, size)
                    if os.path.exists(out):
                        os.unlink(out)
                    res[size][cfg].append(rps)
                    log("traced   run %d  %5d B  %-9s %10.0f req/s%s" %
                        (run + 1, size, cfg, rps, note))
        return res, usr, lost

    # ---- the offline side: reading one large capture ----

    def offline(self, secs, groups):
        """Record nginx (1 KiB) under wrk for secs, then run the readers
        of groups (read, export, replay) on the capture: (capture facts,
        [row per reader])."""
        cap = os.path.join(self.tmp, "big.ptcap")
        p = self.record([("-c", self.cg_t)], cap)
        t0 = time.monotonic()
        subprocess.run(["wrk", "-t1", "-c%d" % CONNS, "-d%ds" % secs,
                        "http://127.0.0.1:%d/r1024.bin" % PORT_T],
                       capture_output=True, check=True)
        rec_s = time.monotonic() - t0
        ru, cpu, payload, nlost = self.record_stop(p)
        facts = {"seconds": rec_s, "payload_bytes": payload,
                 "lost_events": nlost, "file_bytes": os.path.getsize(cap),
                 "record_rss_kib": ru.ru_maxrss}
        log("offline  recorded %.1f s: %.2f GiB of payload, %.0f MB file, "
            "%d lost" % (rec_s, payload / 2**30, facts["file_bytes"] / 1e6,
                          nlost))
        rows = []
        kdir = os.path.join(self.tmp, "keploy-out")
        to = "http://127.0.0.1:%d" % PORT_T
        for group, name, argv in (
                ("read", "read", ["read", "-v", cap]),
                ("export", "export -f jsonl",
                 ["export", "-f", "jsonl", "-v", cap]),
                ("export", "export -f har",
                 ["export", "-f", "har", "-v", cap]),
                ("export", "export -f pcapng",
                 ["export", "-f", "pcapng", "-v", "-o", "-", cap]),
                ("export", "export -f keploy",
                 ["export", "-f", "keploy", "-v", "-o", kdir, cap]),
                # the service recorded, still up: every request again,
                # one connection per recorded one, all at once (-v
                # would list every pass: the dry run alone says what
                # it held)
                ("replay", "replay --dry-run",
                 ["replay", "--to", to, "--dry-run", "-v", cap]),
                ("replay", "replay -j %d" % CONNS,
                 ["replay", "--to", to, "-j", str(CONNS), cap])):
            if group not in groups:
                continue
            t0 = time.monotonic()
            q = subprocess.Popen([PODTAP] + argv, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            out_bytes = 0
            while True:
                b = q.stdout.read(1 << 20)
                if not b:
                    break
                out_bytes += len(b)
            err = q.stderr.read().decode(errors="replace")
            _, status, qru = os.wait4(q.pid, 0)
            wall = time.monotonic() - t0
            if os.waitstatus_to_exitcode(status):
                die("podtap %s failed: %s" % (" ".join(argv), err[-400:]))
            if "keploy" in argv:
                # a directory: what its files hold
                for d, _, files in os.walk(kdir):
                    out_bytes += sum(os.path.getsize(os.path.join(d, f))
                                     for f in files)
                shutil.rmtree(kdir)
            m = re.search(r"at most (\d+) bytes held", err)
            row = {"reader": name, "seconds": wall,
                   "cpu_s": qru.ru_utime + qru.ru_stime,
                   "peak_rss_kib": qru.ru_maxrss, "output_bytes": out_bytes,
                   "held_bytes": int(m.group(1)) if m else None}
            rows.append(row)
            log("offline  %-16s %7.1f s  %7.0f MiB peak RSS  %8.0f MB out" %
                (name, wall, qru.ru_maxrss / 1024, out_bytes / 1e6))
        os.unlink(cap)
        return facts, rows

    # ---- scale: many connections, many targets ----

    def memcg(self):
        """A memory cgroup for podtap record, so that the kernel memory it
        owns (its maps' elements, socket storage among them) can be read:
        (directory, function giving its kernel bytes)."""
        root = cg2_root()
        ctl = os.path.join(root, "cgroup.subtree_control")
        if os.path.exists(ctl) and "memory" in open(ctl).read().split():
            d = os.path.join(root, "podtap-bench-r-%d" % os.getpid())
            os.makedirs(d, exist_ok=True)
            self.cgs.append(d)

            def kernel():
                for line in open(os.path.join(d, "memory.stat")):
                    k, v = line.split()
                    if k == "kernel":
                        return int(v)
                return None
            return d, kernel
        v1 = "/sys/fs/cgroup/memory"
        if os.path.exists(os.path.join(v1, "memory.kmem.usage_in_bytes")):
            d = os.path.join(v1, "podtap-bench-r-%d" % os.getpid())
            os.makedirs(d, exist_ok=True)
            self.cgs.append(d)
            return d, lambda: int(open(os.path.join(
                d, "memory.kmem.usage_in_bytes")).read())
        return None, lambda: None

    def skb_cost(self, before, after):
        """Packet-program runs and ns per run between two scrapes."""
        runs = ns = 0
        for prog in ("podtap_ingress", "podtap_egress"):
            k = 'podtap_program_runs_total{program="%s"}' % prog
            t = 'podtap_program_run_seconds_total{program="%s"}' % prog
            runs += after.get(k, 0) - before.get(k, 0)
            ns += (after.get(t, 0) - before.get(t, 0)) * 1e9
        return int(runs), ns / runs if runs else None

    def scale(self, nconns, ncgroups):
        """Section 'scale': podtap's cost with nconns keep-alive
        connections on a target against CONNS, and with ncgroups targeted
        cgroups against one. Measured, not judged."""
        res = {"connections": [], "cgroups": []}
        memdir, kmem = self.memcg()
        # wrk and nginx each hold a descriptor per connection
        want = nconns + 512
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < want:
            die("--scale needs %d open files per process; the hard limit "
                "is %d" % (want, hard))
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
        self.nginx("scale", PORT_S, self.cg_t, conns=nconns + 64)
        for n in (CONNS, nconns):
            p = self.record([("-c", self.cg_t)], "/dev/null", metrics=True,
                            cgroup=memdir)
            self.wait_ready()
            k0 = kmem()
            before = self.scrape()
            w = subprocess.Popen(
                ["wrk", "-t2", "-c%d" % n, "-d%ds" % self.args.seconds,
                 "--timeout", "30s",
                 "http://127.0.0.1:%d/r1024.bin" % PORT_S],
                stdout=subprocess.PIPE, text=True)
            # in the middle of the load, every connection open
            time.sleep(max(1, self.args.seconds * 2 / 3))
            mid = self.scrape()
            k1 = kmem()
            with open("/proc/%d/status" % p.pid) as f:
                rss = int(re.search(r"^VmRSS:\s+(\d+)", f.read(),
                                    re.M).group(1))
            out = w.communicate()[0]
            after = self.scrape()
            ru, _, payload, nlost = self.record_stop(p)
            runs, ns = self.skb_cost(before, after)
            m = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
            err = re.search(r"Socket errors: (.*)", out)
            row = {"connections": n,
                   "tracked": int(mid.get("podtap_connections_tracked", 0)),
                   "requests_per_s": float(m.group(1)) if m else None,
                   "socket_errors": err.group(1) if err else None,
                   "skb_runs": runs, "ns_per_skb_run": ns,
                   "kernel_bytes": k1 - k0 if k0 is not None else None,
                   "rss_kib": rss, "peak_rss_kib": ru.ru_maxrss,
                   "lost_events": nlost}
            res["connections"].append(row)
            log("scale    %5d connections: %d tracked, %.1f ns per packet "
                "run, kernel +%s, RSS %d MiB%s" % (
                    n, row["tracked"], ns or 0,
                    "%.1f MiB" % (row["kernel_bytes"] / 2**20)
                    if row["kernel_bytes"] is not None else "?",
                    rss >> 10, ", socket errors " + row["socket_errors"]
                    if row["socket_errors"] else ""))
        # many targets: the served one is the last of ncgroups siblings
        parent = os.path.join(cg2_root(), "podtap-bench-s-%d" % os.getpid())
        os.makedirs(parent, exist_ok=True)
        self.cgs.append(parent)
        kids = []
        for i in range(ncgroups):
            kids.append(os.path.join(parent, "c%d" % i))
            os.makedirs(kids[-1], exist_ok=True)
            self.cgs.append(kids[-1])
        self.nginx("many", PORT_S2, kids[-1])
        for k in (1, ncgroups):
            t0 = time.monotonic()
            p = self.record([("-c", c) for c in kids[-k:]], "/dev/null",
                            metrics=True, cgroup=memdir)
            attach_s = time.monotonic() - t0
            self.wait_ready()
            before = self.scrape()
            rps = self.wrk(PORT_S2, 1024)
            after = self.scrape()
            t0 = time.monotonic()
            ru, _, _, nlost = self.record_stop(p)
            stop_s = time.monotonic() - t0
            runs, ns = self.skb_cost(before, after)
            row = {"cgroups": k,
                   "attached": int(after.get("podtap_attached_cgroups", 0)),
                   "start_s": attach_s, "stop_s": stop_s,
                   "requests_per_s": rps, "skb_runs": runs,
                   "ns_per_skb_run": ns, "peak_rss_kib": ru.ru_maxrss,
                   "lost_events": nlost}
            res["cgroups"].append(row)
            log("scale    %5d cgroups: %d attached, started in %.2f s, "
                "stopped in %.2f s, %.1f ns per packet run" % (
                    k, row["attached"], attach_s, stop_s, ns or 0))
        return res

    # ---- before/after: this build against another, section 1's load ----

    def compare(self, other):
        cfgs = ("untraced", "this build", "other build")
        res = {s: {c: [] for c in cfgs} for s in SIZES}
        got = {s: {c: [0, 0, 0.0] for c in cfgs[1:]} for s in SIZES}
        for run in range(self.args.runs):
            for size in SIZES:
                for cfg in cfgs:
                    out = os.path.join(self.tmp, "cap")
                    if cfg == "untraced":
                        rps = self.wrk(PORT_T, size)
                    else:
                        p = self.record([("-c", self.cg_t)], out, binary=
                                        PODTAP if cfg == "this build" else other)
                        rps = self.wrk(PORT_T, size)
                        _, cpu, payload, nlost = self.record_stop(p)
                        os.unlink(out)
                        got[size][cfg][0] += payload
                        got[size][cfg][1] += nlost
                        got[size][cfg][2] += cpu
                    res[size][cfg].append(rps)
                    log("compare  run %d  %5d B  %-11s %10.0f req/s" %
                        (run + 1, size, cfg, rps))
        lines = ["| response | config | median req/s | ratio | "
                 "captured MB | events lost | CPU s per GB |",
                 "|---|---|---:|---:|---:|---:|---:|"]
        for size in SIZES:
            r = ratios(res[size])
            for cfg in cfgs:
                g = got[size].get(cfg)
                lines.append("| %d B | %s | %.0f | %.3f | %s | %s | %s |" % (
                    size, cfg, r[cfg]["median_rps"], r[cfg]["ratio"],
                    "%.0f" % (g[0] / 1e6) if g else "",
                    g[1] if g else "",
                    "%.2f" % (g[2] / (g[0] / 1e9)) if g and g[0] else ""))
        return "\n".join(lines) + "\n"

    def compare_tls(self, other):
        """--compare with --load tls: section 6's loads, wrk over HTTPS
        against the traced nginx and against the one that is not a
        target (the same libssl file), this build against another."""
        loads = (("traced", PORT_T_TLS), ("not a target", PORT_U_TLS))
        cfgs = ("untraced", "this build", "other build")
        res = {name: {c: [] for c in cfgs} for name, _ in loads}
        for run in range(self.args.runs):
            for name, port in loads:
                for cfg in cfgs:
                    out = os.path.join(self.tmp, "cap")
                    if cfg == "untraced":
                        rps = self.wrk(port, SIZES[0], "https")
                    else:
                        p = self.record([("-c", self.cg_t)], out, binary=
                                        PODTAP if cfg == "this build" else other)
                        rps = self.wrk(port, SIZES[0], "https")
                        self.record_stop(p)
                        os.unlink(out)
                    res[name][cfg].append(rps)
                    log("compare  run %d  %-12s %-11s %10.0f req/s" %
                        (run + 1, name, cfg, rps))
        lines = ["| server | config | median req/s | ratio |",
                 "|---|---|---:|---:|"]
        for name, _ in loads:
            r = ratios(res[name])
            for cfg in cfgs:
                lines.append("| %s | %s | %.0f | %.3f |" % (
                    name, cfg, r[cfg]["median_rps"], r[cfg]["ratio"]))
        calls = self.tls_call({"this build, ": PODTAP,
                               "other build, ": other})
        lines += ["", "| one SSL_read_ex (bench/tlscall.c) | ns per call "
                  "| added ns |", "|---|---:|---:|"]
        base = calls["untraced"]["median_ns"]
        for cfg, v in calls.items():
            lines.append("| %s | %.0f | %+.0f |" % (
                cfg, v["median_ns"], v["median_ns"] - base))
        return "\n".join(lines) + "\n"

    def pidns_holder(self):
        """A process alone in a pid namespace of its own (in cg_o), for
        --pidns targets nothing else lives in: (Popen, its child's pid)."""
        idle = self.spawn(["unshare", "--pid", "--fork", "sleep", "100000"],
                          self.cg_o)
        for _ in range(100):
            kids = subprocess.run(["pgrep", "-P", str(idle.pid)],
                                  capture_output=True, text=True).stdout.split()
            if kids:
                return idle, kids[0]
            time.sleep(0.02)
        die("unshare --pid started no process")

    # ---- 2. untargeted server ----

    def untargeted(self):
        cfgs = ("untraced", "other cgroup", "other pidns")
        res = {c: [] for c in cfgs}
        idle, pid = self.pidns_holder()
        for run in range(self.args.runs):
            for cfg in cfgs:
                out = os.path.join(self.tmp, "cap")
                if cfg == "untraced":
                    rps = self.wrk(PORT_U, SIZES[0])
                else:
                    t = ("-c", self.cg_o) if cfg == "other cgroup" else \
                        ("--pidns", pid)
                    p = self.record([t], out)
                    rps = self.wrk(PORT_U, SIZES[0])
                    self.record_stop(p)
                    os.unlink(out)
                res[cfg].append(rps)
                log("other    run %d  %5d B  %-13s %10.0f req/s" %
                    (run + 1, SIZES[0], cfg, rps))
        self.stop(idle, signal.SIGKILL)
        return res

    # ---- 6. TLS ----

    def per_process_ok(self):
        """Whether this kernel takes --tls-probes process (6.13+)."""
        if not hasattr(self, "_per_process"):
            r = subprocess.run([PODTAP, "record", "-q", "--tls-probes",
                                "process", "-c", self.cg_t, "--duration", "1",
                                "-w", os.path.join(self.tmp, "pp.ptcap")],
                               capture_output=True, text=True)
            self._per_process = r.returncode == 0
        return self._per_process

    def tls(self):
        """wrk over HTTPS, 1 KiB responses: the traced nginx, and the
        other one while podtap records the traced one (whose libssl is
        the same file, so its uprobes trap in both, unless the probes are
        per process), each against its own untraced runs."""
        pp = ["--tls-probes", "process"]
        cfgs = [("untraced", PORT_T_TLS, None), ("traced", PORT_T_TLS, []),
                ("untraced, not a target", PORT_U_TLS, None),
                ("not a target, same libssl", PORT_U_TLS, [])]
        if self.per_process_ok():
            cfgs += [("traced, --tls-probes process", PORT_T_TLS, pp),
                     ("not a target, --tls-probes process", PORT_U_TLS, pp)]
        res = {c[0]: [] for c in cfgs}
        captured = []
        for run in range(self.args.runs):
            for name, port, rec in cfgs:
                out = os.path.join(self.tmp, "cap")
                if rec is not None:
                    p = self.record([("-c", self.cg_t)], out, extra=rec)
                    rps = self.wrk(port, SIZES[0], "https")
                    _, _, payload, _ = self.record_stop(p)
                    if port == PORT_T_TLS and not rec:
                        captured.append(payload)
                    os.unlink(out)
                else:
                    rps = self.wrk(port, SIZES[0], "https")
                res[name].append(rps)
                log("tls      run %d  %5d B  %-26s %10.0f req/s" %
                    (run + 1, SIZES[0], name, rps))
        return res, captured

    def tlscall_exe(self):
        """bench/tlscall.c, built once."""
        exe = os.path.join(self.tmp, "tlscall")
        if os.path.exists(exe):
            return exe
        r = subprocess.run(["gcc", "-O2", "-o", exe,
                            os.path.join(ROOT, "bench/tlscall.c"),
                            "-lssl", "-lcrypto"], capture_output=True, text=True)
        if r.returncode:
            die("cannot build bench/tlscall.c (make deps installs "
                "libssl-dev): " + r.stderr.strip())
        return exe

    def tlscall_ns(self, cgroup):
        """Median ns per call of tlscall's rounds, run in cgroup."""
        calls = 20000 if self.args.tiny else 200000
        p = self.spawn([self.tlscall_exe(), str(calls), "3"], cgroup,
                       stdout=subprocess.PIPE, text=True)
        out = p.communicate()[0].split()
        self.procs.remove(p)
        if p.returncode or len(out) != 3:
            die("tlscall failed")
        return statistics.median(float(x) for x in out)

    def tls_call(self, binaries=None):
        """ns per SSL_read_ex (bench/tlscall.c, calls that fail at once in
        OpenSSL's inner read function) of a process that is not a target
        and of one that is, while podtap records the traced nginx (which
        maps the same libssl file), against the same calls untraced.
        binaries: {name: podtap binary}, for --compare (default: this
        build, as "not a target" and "a target")."""
        pp = None
        if not binaries and self.per_process_ok():
            pp = "not a target, --tls-probes process"
        binaries = binaries or {"": PODTAP}
        cfgs = ["untraced"] + ["%s%s" % (n, c) for n in binaries
                               for c in ("not a target", "a target")]
        cfgs += [pp] if pp else []
        res = {c: [] for c in cfgs}
        for run in range(self.args.runs):
            res["untraced"].append(self.tlscall_ns(self.cg_u))
            for name, binary in binaries.items():
                out = os.path.join(self.tmp, "cap")
                p = self.record([("-c", self.cg_t)], out, binary=binary)
                res[name + "not a target"].append(self.tlscall_ns(self.cg_u))
                res[name + "a target"].append(self.tlscall_ns(self.cg_t))
                self.record_stop(p)
                os.unlink(out)
            if pp:
                p = self.record([("-c", self.cg_t)], out,
                                extra=["--tls-probes", "process"])
                res[pp].append(self.tlscall_ns(self.cg_u))
                self.record_stop(p)
                os.unlink(out)
            log("tlscall  run %d  %s" % (run + 1, "  ".join(
                "%s %.0f ns" % (c, res[c][-1]) for c in cfgs)))
        return {c: {"median_ns": median(v), "runs": v} for c, v in res.items()}

    # ---- 7. where the time goes ----

    def profile(self):
        """profile_one under each of section 1's loads."""
        return {str(s): self.profile_one(s) for s in SIZES}

    def profile_one(self, size):
        """perf record -a -g (cpu-clock) while podtap records the traced
        nginx under section 1's load of size; the samples by PARTS, and the
        functions most sampled in each."""
        data = os.path.join(self.tmp, "perf.data")
        out = os.path.join(self.tmp, "cap")
        p = self.record([("-c", self.cg_t)], out)
        perf = self.spawn(["perf", "record", "-a", "-g", "-e", "cpu-clock",
                           "-F", str(profile_hz(self.args)), "-o", data,
                           "--", "sleep",
                           str(self.args.seconds)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
        rps = self.wrk(PORT_T, size)
        err = perf.communicate()[1]
        self.procs.remove(perf)
        self.record_stop(p)
        os.unlink(out)
        if perf.returncode:
            die("perf record failed (make deps installs linux-perf): " +
                err.strip())
        r = subprocess.run(["perf", "report", "-i", data, "--stdio",
                            "--no-children", "-g", "none", "-n",
                            "--sort", "comm,dso,sym", "-t", "\t"],
                           capture_output=True, text=True)
        os.unlink(data)
        if r.returncode:
            die("perf report failed: " + r.stderr.strip())
        parts = {name: 0 for name, _ in PARTS}
        top = {name: {} for name, _ in PARTS}
        total = 0
        for line in r.stdout.splitlines():
            f = line.split("\t")
            if line.startswith("#") or len(f) < 5 or not f[1].strip().isdigit():
                continue
            n, comm, dso, sym = int(f[1]), f[2].strip(), f[3].strip(), f[4].strip()
            k = sym.startswith("[k]")
            sym = sym[4:] if sym[:1] == "[" else sym
            if sym.startswith("0x"):
                sym = "(%s)" % os.path.basename(dso)  # no symbol: its file
            name = next(nm for nm, test in PARTS if test(comm, k, sym))
            parts[name] += n
            top[name][sym] = top[name].get(sym, 0) + n
            total += n
        log("profile  %5d B  %d samples at %.0f req/s: %s" % (size, total, rps, ", ".join(
            "%s %.1f%%" % (nm, 100.0 * v / total) for nm, v in parts.items()
            if v)) if total else "profile  no samples")
        return {"samples": total, "req_per_s": rps,
                "hz": profile_hz(self.args),
                "parts": {nm: 100.0 * v / total if total else 0
                          for nm, v in parts.items()},
                "top": {nm: [[s, 100.0 * v / total] for s, v in
                             sorted(d.items(), key=lambda x: -x[1])[:6]]
                        for nm, d in top.items() if d}}

    # ---- 3. capture throughput ----

    def throughput(self, binary=PODTAP):
        rates = (100, 1000) if self.args.tiny else \
            (250, 500, 1000, 1500, 2000, 3000)
        secs = 0.5 if self.args.tiny else 2.0
        steps = []
        p = self.record([("-c", self.cg_t)], "/dev/null", metrics=True,
                        binary=binary)
        self.wait_ready()
        for rate in list(rates) + [None]:
            before = self.scrape()
            sent, elapsed = self.bulk(rate, secs)
            time.sleep(0.3)     # the ring drains
            after = self.scrape()
            d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            lost = sum(v for k, v in d.items()
                       if k.startswith("podtap_lost_bytes_total"))
            step = {"offered_MBps": rate, "achieved_MBps": sent / elapsed / 1e6,
                    "sent_bytes": sent,
                    "captured_bytes": int(d["podtap_kernel_payload_bytes_total"]),
                    "lost_bytes": int(lost),
                    "lost_events": int(d["podtap_lost_events_total"])}
            steps.append(step)
            log("bulk     %-6s MB/s offered: %7.0f MB/s sent, %d of %d bytes "
                "captured, %d lost" % (rate or "max", step["achieved_MBps"],
                                       step["captured_bytes"], sent,
                                       step["lost_bytes"]))
        self.record_stop(p)
        return steps

    def compare_bulk(self, other):
        """--compare with --load bulk: section 3's paced steps, this build
        against another, run after run; the medians of each step."""
        cfgs = (("this build", PODTAP), ("other build", other))
        res = {c: [] for c, _ in cfgs}
        for run in range(self.args.runs):
            for cfg, binary in cfgs:
                res[cfg].append(self.throughput(binary))
                log("compare  run %d  bulk  %-11s done" % (run + 1, cfg))
        lines = ["| offered MB/s | config | sent MB/s | captured | "
                 "lost bytes |", "|---:|---|---:|---:|---:|"]
        for i, step in enumerate(res["this build"][0]):
            for cfg, _ in cfgs:
                runs = [r[i] for r in res[cfg]]
                lines.append("| %s | %s | %.0f | %.4f | %d |" % (
                    step["offered_MBps"] or "unpaced", cfg,
                    median([r["achieved_MBps"] for r in runs]),
                    median([r["captured_bytes"] / r["sent_bytes"]
                            for r in runs]),
                    median([r["lost_bytes"] for r in runs])))
        return "\n".join(lines) + "\n"

    def wait_ready(self):
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/readyz" % PORT_M,
                                       timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        die("podtap's /readyz did not answer")

    def bulk(self, rate, secs):
        """One connection from the target cgroup at rate MB/s (None: as
        fast as it goes) for secs; returns (bytes sent, seconds)."""
        code = r"""
import socket, sys, time
port, rate, secs = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
buf = b"\xa5" * (256 << 10)
s = socket.create_connection(("127.0.0.1", port))
sent, t0 = 0, time.monotonic()
while True:
    now = time.monotonic() - t0
    if now >= secs:
        break
    if rate and sent > rate * 1e6 * now:
        time.sleep(0.0002)
        continue
    sent += s.send(buf)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(sent, time.monotonic() - t0)
"""
        sink_code = r"""
import socket, sys
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen()
print("ready", flush=True)
c, _ = l.accept()
b = bytearray(1 << 20)
while c.recv_into(b):
    pass
c.close()
"""
        sink = self.spawn([sys.executable, "-c", sink_code, str(PORT_BULK)],
                          self.cg_u, stdout=subprocess.PIPE, text=True)
        sink.stdout.readline()
        src = self.spawn([sys.executable, "-c", code, str(PORT_BULK),
                          str(rate or 0), str(secs)], self.cg_t,
                         stdout=subprocess.PIPE, text=True)
        out = src.stdout.read().split()
        src.wait()
        sink.wait()
        self.procs.remove(src)
        self.procs.remove(sink)
        return int(out[0]), float(out[1])

    # ---- 4. kernel cost per event ----

    def kernel_cost(self):
        res = {}
        idle, pid = self.pidns_holder()
        cases = [("filtered out", ("--pidns", pid), PORT_U, SIZES[0])] + \
            [("captured %d KiB" % (s >> 10), ("-c", self.cg_t), PORT_T, s)
             for s in SIZES]
        for name, target, port, size in cases:
            p = self.record([target], "/dev/null", metrics=True)
            self.wait_ready()
            before = self.scrape()
            self.wrk(port, size)
            after = self.scrape()
            self.record_stop(p)
            progs = {}
            for k, v in after.items():
                m = re.match(r'podtap_program_runs_total\{program="(\w+)"\}', k)
                if not m:
                    continue
                prog = m.group(1)
                runs = v - before.get(k, 0)
                sk = 'podtap_program_run_seconds_total{program="%s"}' % prog
                ns = (after[sk] - before.get(sk, 0)) * 1e9
                progs[prog] = {"runs": int(runs),
                               "ns_per_run": ns / runs if runs else None}
            events = after["podtap_kernel_events_total"] - \
                before.get("podtap_kernel_events_total", 0)
            payload = after["podtap_kernel_payload_bytes_total"] - \
                before.get("podtap_kernel_payload_bytes_total", 0)
            skb = [progs[x] for x in ("podtap_ingress", "podtap_egress")
                   if x in progs]
            res[name] = kernel_row(
                progs, int(events), int(payload),
                sum(x["runs"] for x in skb),
                sum(x["runs"] * (x["ns_per_run"] or 0) for x in skb))
            log("kernel   %-16s %9d packet-program runs, %6.1f ns each; "
                "%d events captured%s" % (
                    name, res[name]["skb_runs"],
                    res[name]["ns_per_skb_run"] or 0, events,
                    ", %.0f ns per captured event" % res[name]["ns_per_event"]
                    if events else ""))
        self.stop(idle, signal.SIGKILL)
        # the floors under the same loads: what a copy alone costs, with
        # one ring and with a ring per CPU; what a program passed over
        # costs when it does nothing (on the root cgroup, as podtap's)
        floors = [(floor_row(m, s), m, self.cg_t, PORT_T, s)
                  for m in ("copy", "pcpu") for s in SIZES] + \
            [(floor_row("pass"), "pass", cg2_root(), PORT_U, SIZES[0])]
        for name, mode, cg, port, size in floors:
            p = self.floor(cg, stats=True, mode=mode)
            self.wrk(port, size)
            records, nbytes, _, progs = self.floor_stop(p)
            res[name] = kernel_row(
                {k: {"runs": r, "ns_per_run": t / r if r else None}
                 for k, (r, t) in progs.items()}, records, nbytes,
                sum(r for r, _ in progs.values()),
                sum(t for _, t in progs.values()))
            log("kernel   %-22s %9d packet-program runs, %6.1f ns each; "
                "%d records, %.0f ns per record" % (
                    name, res[name]["skb_runs"],
                    res[name]["ns_per_skb_run"] or 0, records,
                    res[name]["ns_per_event"] or 0))
        return res


def floor_row(mode, size=None):
    """Section 4's name for a floor's row (floor.c's modes)."""
    if mode == "pass":
        return "floor, doing nothing (passed over)"
    return "floor, %scaptured %d KiB" % (
        "per-CPU rings, " if mode == "pcpu" else "", size >> 10)


def kernel_bounds(kern):
    """Section 4's reading: podtap above the floor, the floor with a ring
    per CPU against one ring, and what a program passed over costs at
    least; None when a row is missing (an older run's data)."""
    def ns(name, key="ns_per_event"):
        return (kern.get(name) or {}).get(key)
    parts = []
    for size in SIZES:
        kib = size >> 10
        pt = ns("captured %d KiB" % kib)
        fl, pc = ns(floor_row("copy", size)), ns(floor_row("pcpu", size))
        if None in (pt, fl, pc):
            return None
        parts.append("at %d KiB podtap costs %.0f ns per captured event "
                     "above the floor (%.0f against %.0f); a ring per CPU "
                     "makes the floor's copy %.0f ns cheaper (%.0f)" %
                     (kib, pt - fl, pt, fl, fl - pc, pc))
    nothing = ns(floor_row("pass"), "ns_per_skb_run")
    passed = ns("filtered out", "ns_per_skb_run")
    if nothing is None or passed is None:
        return None
    return ("Read together: " + "; ".join(parts) + ". A program that "
            "does nothing costs %.1f ns per run here, statistics included; "
            "podtap's, passing a packet over, %.1f." % (nothing, passed))


def kernel_row(progs, events, payload, runs, ns):
    """Section 4's row: packet-program runs and their ns, per run and per
    captured event."""
    return {"programs": progs, "events": events, "payload_bytes": payload,
            "skb_runs": runs, "ns_per_skb_run": ns / runs if runs else None,
            "ns_per_event": ns / events if events else None}


# Who a profile sample's own function belongs to, first match wins.
def profile_hz(args):
    """Samples a second per CPU for section 7: 999, or with --tiny (one
    second) 4999, so that a part of 0.1% still gets samples; never above
    what the kernel allows now (it lowers its maximum when sampling is
    slow)."""
    with open("/proc/sys/kernel/perf_event_max_sample_rate") as f:
        top = int(f.read())
    return min(4999 if args.tiny else 999, top)


PARTS = (
    ("podtap BPF programs",
     lambda comm, k, sym: sym.startswith("bpf_prog_") and "podtap" in sym),
    ("the kernel's BPF helpers and hooks",
     lambda comm, k, sym: k and re.match(
         r"(_+)?(bpf_|cgroup_bpf|sk_storage|ringbuf|bpf_skb|"
         r"bpf_sk|skb_copy_bits|migrate_(en|dis)able|__rcu_read)", sym)),
    ("podtap record, userspace",
     lambda comm, k, sym: comm == "podtap" and not k),
    ("podtap record, kernel (its syscalls)",
     lambda comm, k, sym: comm == "podtap"),
    ("nginx and wrk, userspace",
     lambda comm, k, sym: comm in ("nginx", "wrk") and not k),
    ("nginx and wrk, kernel (TCP/IP on loopback)",
     lambda comm, k, sym: comm in ("nginx", "wrk")),
    ("idle", lambda comm, k, sym: comm == "swapper"),
    ("other", lambda comm, k, sym: True),
)


def machine():
    model = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024
    ver = lambda argv: subprocess.run(argv, capture_output=True, text=True)
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_MiB": mem,
            "kernel": platform.release(),
            "nginx": ver(["nginx", "-v"]).stderr.strip().split("/")[-1],
            "tcpdump": ver(["tcpdump", "--version"]).stdout.split("\n")[0],
            "podtap": ver([PODTAP, "--version"]).stdout.strip()}


def ratios(res, base="untraced"):
    b = median(res[base])
    return {c: {"median_rps": median(v), "ratio": median(v) / b,
                "runs": v} for c, v in res.items()}


def report(args, mach, traced, usr, lost, other, bulk, kern, tls, prof,
           outdir):
    t = {str(s): ratios(traced[s]) for s in traced}
    for s in traced:
        t[str(s)]["podtap"]["lost_events"] = lost[s]["podtap"]
        t[str(s)]["tcpdump"]["dropped_packets"] = lost[s]["tcpdump"]
        t[str(s)]["floor"]["lost_bytes"] = lost[s]["floor"]
    o = ratios(other)
    users = {}
    for s, v in usr.items():
        cpu = sum(x["cpu_s"] for x in v)
        gb = sum(x["payload_bytes"] for x in v) / 1e9
        users[str(s)] = {"cpu_s_per_GB": cpu / gb if gb else None,
                         "peak_rss_MiB": max(x["maxrss_kib"] for x in v) / 1024,
                         "startup_cpu_s": median([x["startup_cpu_s"]
                                                  for x in v]),
                         "runs": v}
    zero = [b for b in bulk if b["lost_bytes"] == 0 and b["captured_bytes"]
            >= b["sent_bytes"]]
    best = max((b["achieved_MBps"] for b in zero), default=None)
    doc = {"date": datetime.datetime.now(datetime.timezone.utc)
           .strftime("%Y-%m-%dT%H:%M:%SZ"),
           "mode": "tiny" if args.tiny else "full",
           "runs": args.runs, "seconds": args.seconds, "connections": CONNS,
           "machine": mach, "traced": t, "untargeted": o,
           "throughput": {"steps": bulk, "zero_loss_MBps": best},
           "kernel": kern, "userspace": users,
           "tls": {"traced": ratios({k: tls[0][k] for k in
                                      ("untraced", "traced",
                                       "traced, --tls-probes process")
                                      if k in tls[0]}),
                   "untargeted": ratios({k: tls[0][k] for k in
                                          ("untraced, not a target",
                                           "not a target, same libssl",
                                           "not a target, --tls-probes process")
                                          if k in tls[0]},
                                         "untraced, not a target"),
                   "captured_bytes": tls[1], "call_ns": tls[2]},
           "profile": prof}
    with open(os.path.join(outdir, "benchmarks.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

    def slow(r, c):
        return 1 - r[c]["ratio"]
    md = []
    w = md.append
    w("# Benchmarks\n")
    w("Measured by `make bench` (bench/bench.py) on %s: %d runs of %d s "
      "per configuration, configurations interleaved run by run, medians, "
      "ratios against the untraced median of the same invocation. The "
      "numbers are this machine's; run `make bench` on yours.\n" %
      (doc["date"], args.runs, args.seconds))
    w("Machine: %(cpus)d CPUs (%(cpu_model)s), %(memory_MiB)d MiB, kernel "
      "%(kernel)s; nginx %(nginx)s (1 worker), wrk -t1 -c32 on loopback, "
      "%(tcpdump)s, %(podtap)s.\n" % mach)
    w("![requests/s ratios and capture throughput](benchmarks.png)\n")
    w("## 1. Overhead on a traced server\n")
    w("nginx in the target cgroup; podtap records every byte to a file; "
      "tcpdump writes `-i lo -w FILE 'tcp port P'`; the floor "
      "(bench/floor.bpf.c) copies each TCP payload of the cgroup into a "
      "ring buffer in podtap's size classes, with no state, attribution, "
      "time stamps or parsing beyond the headers, and its consumer throws "
      "the records away: what any recorder of every byte pays.\n")
    w("| response | config | median req/s | ratio | slowdown vs tcpdump's | lost (all runs) |")
    w("|---|---|---:|---:|---:|---:|")
    for s in SIZES:
        r = t[str(s)]
        for c in ("untraced", "podtap", "tcpdump", "floor"):
            vs = ""
            if c == "podtap" and slow(r, "tcpdump") > 0:
                vs = "%.2f" % (slow(r, "podtap") / slow(r, "tcpdump"))
            if c == "podtap":
                lo = "%d events" % sum(r[c]["lost_events"])
            elif c == "tcpdump":
                lo = "%d packets" % sum(x or 0 for x in r[c]["dropped_packets"])
            elif c == "floor":
                lo = "%d bytes" % sum(r[c]["lost_bytes"])
            else:
                lo = ""
            w("| %d KiB | %s | %.0f | %.3f | %s | %s |" % (
                s >> 10, c, r[c]["median_rps"], r[c]["ratio"], vs, lo))
    w("\npodtap above the floor (the floor's ratio less podtap's): " +
      ", ".join("%.3f at %d KiB" % (t[str(s)]["floor"]["ratio"] -
                                    t[str(s)]["podtap"]["ratio"], s >> 10)
                for s in SIZES) + ".")
    w("\n## 2. Overhead on processes that are not targets\n")
    w("The same load against an nginx in a cgroup that is not a target, "
      "while podtap records another cgroup (programs attached to that "
      "cgroup only) or another pid namespace (programs on the root "
      "cgroup, passing every other socket over).\n")
    w("| config | median req/s | ratio |")
    w("|---|---:|---:|")
    for c, r in o.items():
        w("| %s | %.0f | %.3f |" % (c, r["median_rps"], r["ratio"]))
    w("\n## 3. Capture throughput\n")
    w("One TCP connection from a target cgroup to a sink outside it, "
      "paced at each offered rate for %s s (the last step unpaced); podtap "
      "records to /dev/null so the disk is not what is measured; captured "
      "and lost bytes from podtap's own counters.\n" %
      ("0.5" if args.tiny else "2"))
    w("| offered MB/s | sent MB/s | captured | lost bytes |")
    w("|---:|---:|---:|---:|")
    for b in bulk:
        w("| %s | %.0f | %.4f | %d |" % (
            b["offered_MBps"] or "unpaced", b["achieved_MBps"],
            b["captured_bytes"] / b["sent_bytes"] if b["sent_bytes"] else 0,
            b["lost_bytes"]))
    w("\nHighest rate captured with zero loss: %s.\n" %
      ("%.0f MB/s" % best if best else "none of the steps"))
    w("## 4. Kernel cost per event\n")
    w("From the kernel's BPF run-time statistics (`podtap record --metrics` "
      "turns them on; they add two clock reads per run). Filtered out: "
      "nginx traffic while podtap targets another pid namespace, so the "
      "packet programs run on the root cgroup and pass it over. Captured: "
      "the traced nginx above. Floor: the floor configuration under the "
      "same loads (its statistics turned on by its own consumer); an "
      "event is one record there. The per-CPU floor copies the same way "
      "into a ring of the CPU it runs on (the same 64 MiB in all): how "
      "much of a copy's cost is CPUs sharing one ring. The floor doing "
      "nothing is a pair of programs that return at once, on the root "
      "cgroup under the filtered-out load: what any packet program "
      "passed over costs here, statistics included.\n")
    w("| case | packet-program runs | ns per run | captured events | ns per captured event |")
    w("|---|---:|---:|---:|---:|")
    for name, k in kern.items():
        w("| %s | %d | %s | %d | %s |" % (
            name, k["skb_runs"],
            "%.1f" % k["ns_per_skb_run"] if k["ns_per_skb_run"] else "-",
            k["events"],
            "%.0f" % k["ns_per_event"] if k["ns_per_event"] else "-"))
    w("\nPer program (ns per run): " + "; ".join(
        "%s: %s" % (name, ", ".join(
            "%s %.0f" % (p.replace("podtap_", ""), v["ns_per_run"])
            for p, v in sorted(k["programs"].items()) if v["ns_per_run"]))
        for name, k in kern.items()) + ".\n")
    bounds = kernel_bounds(kern)
    if bounds:
        w(bounds + "\n")
    w("## 5. Userspace\n")
    w("`podtap record` in the traced runs of section 1, from its rusage: "
      "CPU seconds (user + system) per GB of payload captured, counted "
      "from the moment it is recording, and "
      "peak resident memory.\n")
    w("| response | CPU s per GB | peak RSS MiB |")
    w("|---|---:|---:|")
    for s in SIZES:
        u = users[str(s)]
        w("| %d KiB | %s | %.1f |" % (
            s >> 10, "%.2f" % u["cpu_s_per_GB"] if u["cpu_s_per_GB"] else "-",
            u["peak_rss_MiB"]))
    w("\nBefore it records, loading the programs (most of it the kernel's "
      "verifier) takes a median %.2f CPU s, once per start.\n" %
      median([u["startup_cpu_s"] for u in users.values()]))
    w("\n## 6. TLS\n")
    w("wrk over HTTPS (1 KiB responses, TLS 1.3, keep-alive) against the "
      "traced nginx, whose libssl podtap hooks and whose plaintext it "
      "records; and against the nginx that is not a target while podtap "
      "records the traced one: it maps the same libssl file, so its "
      "SSL_read and SSL_write calls trap too (as do wrk's, which uses the "
      "same file, in the traced rows), unless podtap runs with "
      "`--tls-probes process`, which puts the breakpoints in the target "
      "processes alone (Linux 6.13+; rows of their own where the kernel "
      "takes it). Each ratio is against its own untraced runs.\n")
    w("| server | config | median req/s | ratio |")
    w("|---|---|---:|---:|")
    for part in ("traced", "untargeted"):
        for c, r in doc["tls"][part].items():
            w("| %s | %s | %.0f | %.3f |" % (
                "traced" if part == "traced" else "not a target", c,
                r["median_rps"], r["ratio"]))
    calls = doc["tls"]["call_ns"]
    w("")
    w("One TLS library call (bench/tlscall.c: SSL_read_ex on an SSL with no "
      "connection, which fails at once in OpenSSL's inner read function, "
      "where podtap's probes are), in a process that is not a target and "
      "in one that is, while podtap records the traced nginx: what the "
      "probes cost per call, the part any process mapping a hooked "
      "library pays.")
    w("")
    w("| process | ns per call | added ns |")
    w("|---|---:|---:|")
    base = calls["untraced"]["median_ns"]
    for c, r in calls.items():
        w("| %s | %.0f | %s |" % (c, r["median_ns"], "" if c == "untraced"
                                  else "%.0f" % (r["median_ns"] - base)))
    w("")
    w("Probes on single-stepped instructions cost far more (17 us a call "
      "on this machine, against 0.5 us on an emulated one): "
      "`podtap_tls_probes` in `--metrics` counts each kind.")
    w("\n## 7. Where the time goes\n")
    w("`perf record -a -g -e cpu-clock -F %d` over the whole machine for "
      "%d s while podtap records the traced nginx under each of section "
      "1's loads. Each sample is counted for its own function (`perf "
      "report --no-children`), grouped by who runs it: BPF programs and "
      "helpers run in the context of the process whose packet it is, "
      "nginx's or wrk's; a function with no symbol is named by its file.\n"
      % (profile_hz(args), args.seconds))
    for size in SIZES:
        pr = prof[str(size)]
        w("%d KiB responses, %.0f req/s under the profiler, %d samples:\n" % (
            size >> 10, pr["req_per_s"], pr["samples"]))
        w("| part | share of samples | functions most sampled (share) |")
        w("|---|---:|---|")
        for nm, v in pr["parts"].items():
            if not v:
                continue
            w("| %s | %.1f%% | %s |" % (nm, v, ", ".join(
                "`%s` %.1f%%" % (sym, x) for sym, x in pr["top"].get(nm, [])[:4])))
        w("")
    with open(os.path.join(outdir, "benchmarks.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    plot(doc, outdir)
    return doc


def plot(doc, outdir):
    dat = os.path.join(outdir, ".bars.dat")
    with open(dat, "w") as f:
        for s in SIZES:
            r = doc["traced"][str(s)]
            f.write('"traced %d KiB" %f %f %f\n' % (
                s >> 10, r["podtap"]["ratio"], r["tcpdump"]["ratio"],
                r["floor"]["ratio"]))
        o = doc["untargeted"]
        f.write('"not targeted" %f %f NaN\n' % (o["other cgroup"]["ratio"],
                                               o["other pidns"]["ratio"]))
    tp = os.path.join(outdir, ".bulk.dat")
    with open(tp, "w") as f:
        for b in doc["throughput"]["steps"]:
            f.write("%f %f\n" % (b["achieved_MBps"],
                                 b["captured_bytes"] / b["sent_bytes"]
                                 if b["sent_bytes"] else 0))
    script = """
set terminal pngcairo size 1000,420 font ",10"
set output "%(png)s"
set multiplot layout 1,2
set title "requests/s, ratio to untraced"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:1.1]
set grid ytics
set key top center horizontal outside font ",9"
set yrange [0:1.2]
plot "%(dat)s" using 2:xtic(1) title "podtap (not targeted: it records another cgroup)", \\
     "" using 3 title "tcpdump (not targeted: podtap records another pid ns)", \\
     "" using 4 title "floor: a copy into a ring, nothing else"
set title "capture throughput"
set style data linespoints
set xlabel "MB/s sent"
set ylabel "fraction captured"
set yrange [0:1.05]
set xrange [0:*]
unset key
plot "%(tp)s" using 1:2 pt 7
unset multiplot
""" % {"png": os.path.join(outdir, "benchmarks.png"), "dat": dat, "tp": tp}
    r = subprocess.run(["gnuplot"], input=script, text=True,
                       capture_output=True)
    os.unlink(dat)
    os.unlink(tp)
    if r.returncode:
        die("gnuplot: " + r.stderr.strip())


def offline_report(facts, rows, groups):
    gib = facts["payload_bytes"] / 2**30
    only = "" if groups == OFFLINE_GROUPS else " --readers " + ",".join(groups)
    out = ["# Reading a large capture", "",
           "Written by `bench/bench.py --offline %d%s` on %s (%s). nginx "
           "served 1 KiB responses to wrk (%d keep-alive connections) for "
           "%.0f s while podtap recorded it: **%.2f GiB of payload** in a "
           "%.0f MB capture file, %d events lost, podtap record's peak RSS "
           "%.0f MiB. Then each reader ran alone on that file, its output "
           "read and thrown away." % (
               round(facts["seconds"]), only,
               datetime.date.today().isoformat(),
               subprocess.run([PODTAP, "--version"], capture_output=True,
                              text=True).stdout.strip(), CONNS,
               facts["seconds"], gib, facts["file_bytes"] / 1e6,
               facts["lost_events"], facts["record_rss_kib"] / 1024), "",
           "| reader | seconds | CPU s | peak RSS | output | held at most "
           "(bytes in flight) |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append("| `podtap %s` | %.1f | %.1f | %.0f MiB | %.0f MB | %s |" % (
            r["reader"], r["seconds"], r["cpu_s"], r["peak_rss_kib"] / 1024,
            r["output_bytes"] / 1e6,
            "%.1f MiB" % (r["held_bytes"] / 2**20)
            if r["held_bytes"] is not None else "(not said)"))
    out += ["",
            "`export -f jsonl` and `-f har` stream: exchanges are written in "
            "order by start as the capture is read, and memory holds what "
            "is in flight (bytes of exchanges still open, exchanges waiting "
            "for an earlier one, at most `--max-held`, 1 GiB by default, "
            "plus about a second of records). `read` reads the file twice: "
            "once for what the records say without their bytes, once for "
            "the exchanges, streamed; a connection's lines wait for those "
            "that began before it in a file in $TMPDIR, not in memory "
            "(wrk's connections last the whole recording, so nearly all of "
            "read's output waits there). `export -f pcapng` streams the "
            "bytes: each connection's new bytes become packets that wait, "
            "by time, until no record still to come can bring an earlier "
            "one (about a second of records). `export -f keploy` streams "
            "exchanges as jsonl does, into a test set written aside and "
            "renamed into place when whole. `replay` sends each request "
            "again to the nginx that was recorded, one connection per "
            "recorded one (-j %d: all at once), as the capture is read; "
            "requests a connection cannot send yet, and the results, wait "
            "in a file in $TMPDIR. With `--dry-run` it plans and lists "
            "them, sending nothing." % CONNS, ""]
    return "\n".join(out)


def scale_report(args, res):
    c, g = res["connections"], res["cgroups"]
    mib = lambda b: "%.1f MiB" % (b / 2**20) if b is not None else "not measurable here"
    out = ["# podtap at scale", "",
           "Written by `bench/bench.py --scale%s` on %s (%s, kernel %s). "
           "Measured, not judged: nothing here passes or fails." % (
               " --tiny" if args.tiny else "",
               datetime.date.today().isoformat(),
               subprocess.run([PODTAP, "--version"], capture_output=True,
                              text=True).stdout.strip(), platform.release()),
           "",
           "## Many connections on one target", "",
           "nginx (a target) serves 1 KiB responses to wrk over N keep-alive "
           "connections for %d s while podtap records to /dev/null. "
           "*Tracked* is podtap_connections_tracked two thirds into the load; "
           "*kernel memory* is what the kernel charged podtap record's own "
           "memory cgroup meanwhile (its maps' elements: the socket storage "
           "of each connection, loss entries), over what it held when "
           "recording began; RSS is podtap record's, at that moment and at "
           "its peak." % args.seconds, "",
           "| connections | tracked | requests/s | ns per packet-program run "
           "| kernel memory | per connection | RSS | peak RSS | lost events |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in c:
        per = "%.0f B" % (r["kernel_bytes"] / r["connections"]) \
            if r["kernel_bytes"] is not None else "-"
        out.append("| %d | %d | %.0f | %.1f | %s | %s | %d MiB | %d MiB | %d |" % (
            r["connections"], r["tracked"], r["requests_per_s"] or 0,
            r["ns_per_skb_run"] or 0, mib(r["kernel_bytes"]), per,
            r["rss_kib"] >> 10, r["peak_rss_kib"] >> 10, r["lost_events"]))
    errs = [r for r in c if r["socket_errors"]]
    if errs:
        out += ["", "wrk's socket errors: " + "; ".join(
            "%d connections: %s" % (r["connections"], r["socket_errors"])
            for r in errs)]
    if len(c) == 2 and c[0]["ns_per_skb_run"] and c[1]["ns_per_skb_run"]:
        out += ["", "Per packet-program run, %d connections cost %.2f times "
                "what %d do." % (c[1]["connections"], c[1]["ns_per_skb_run"] /
                                 c[0]["ns_per_skb_run"], c[0]["connections"])]
    out += ["", "## Many targeted cgroups", "",
            "N sibling cgroups are targets (`-c` N times); nginx runs in the "
            "last, and wrk (%d connections, 1 KiB) loads it for %d s. "
            "*Started* is from running podtap record to its `recording` "
            "line (loading and verifying the programs, then attaching to "
            "every cgroup); *stopped* from SIGINT to its exit." % (
                CONNS, args.seconds), "",
            "| cgroups | attached | started | stopped | requests/s | ns per "
            "packet-program run | peak RSS |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in g:
        out.append("| %d | %d | %.2f s | %.2f s | %.0f | %.1f | %d MiB |" % (
            r["cgroups"], r["attached"], r["start_s"], r["stop_s"],
            r["requests_per_s"], r["ns_per_skb_run"] or 0,
            r["peak_rss_kib"] >> 10))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(
        description="Measure what podtap costs: overhead on traced and "
        "untargeted servers (against tcpdump and no tracing), capture "
        "throughput, kernel ns per event, userspace CPU and memory. "
        "Writes benchmarks.md, benchmarks.json and benchmarks.png.")
    ap.add_argument("--tiny", action="store_true",
                    help="one short run per configuration, to prove the "
                    "harness works (numbers meaningless)")
    ap.add_argument("--runs", type=int, help="runs per configuration "
                    "(default 5; 1 with --tiny)")
    ap.add_argument("--seconds", type=int, help="seconds per wrk run "
                    "(default 5; 1 with --tiny)")
    ap.add_argument("--compare", metavar="PODTAP",
                    help="only one load (--load): this build's podtap "
                    "against another podtap binary (before/after a "
                    "change), interleaved; prints a table, writes nothing")
    ap.add_argument("--load", choices=("http", "tls", "bulk"),
                    default="http",
                    help="with --compare: section 1's load (http, the "
                    "default), section 6's (tls: the traced nginx over "
                    "HTTPS, and the one that is not a target) or section "
                    "3's (bulk: one connection at paced rates)")
    ap.add_argument("--offline", type=int, metavar="SECONDS",
                    help="only the offline side: record nginx under wrk "
                    "for SECONDS, then time podtap read and export on the "
                    "capture; writes benchmarks-offline.md")
    ap.add_argument("--readers", default=",".join(OFFLINE_GROUPS),
                    help="with --offline: which of read, export, replay "
                    "(default all); a subset writes "
                    "benchmarks-offline-GROUPS.md instead")
    ap.add_argument("--scale", action="store_true",
                    help="only the scale runs: 10,000 keep-alive "
                    "connections on a target against 32, and 500 targeted "
                    "cgroups against one (200 and 10 with --tiny); writes "
                    "benchmarks-scale.md")
    ap.add_argument("--out", help="directory for the results (default "
                    "docs/, or build/bench/ with --tiny)")
    args = ap.parse_args()
    args.runs = args.runs or (1 if args.tiny else 5)
    args.seconds = args.seconds or (1 if args.tiny else 5)
    if args.load != "http" and not args.compare:
        die("--load goes with --compare")
    groups = tuple(g for g in OFFLINE_GROUPS
                   if g in args.readers.split(","))
    bad = set(args.readers.split(",")) - set(OFFLINE_GROUPS)
    if bad or not groups:
        die("--readers: %s is not read, export or replay" %
            ",".join(sorted(bad)) if bad else "--readers: name one")
    if args.runs < 1 or args.seconds < 1:
        die("--runs and --seconds must be at least 1")
    outdir = args.out or os.path.join(ROOT, "build/bench" if args.tiny
                                      else "docs")
    if os.geteuid():
        die("run as root (podtap loads BPF programs; cgroups are made)")
    for tool in ("nginx", "wrk", "tcpdump", "gnuplot", "unshare", "pgrep",
                 "openssl", "perf", "clang", "gcc"):
        if not shutil.which(tool):
            die("needs %s (make deps installs it)" % tool)
    if not os.access(PODTAP, os.X_OK):
        die("build podtap first (make)")
    os.makedirs(outdir, exist_ok=True)
    b = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        if args.compare:
            if not os.access(args.compare, os.X_OK):
                die("--compare %s: not an executable" % args.compare)
            if args.load == "bulk":
                print(b.compare_bulk(os.path.abspath(args.compare)), end="")
            elif args.load == "tls":
                b.nginx("target", PORT_T, b.cg_t, PORT_T_TLS)
                b.nginx("other", PORT_U, b.cg_u, PORT_U_TLS)
                print(b.compare_tls(os.path.abspath(args.compare)), end="")
            else:
                b.nginx("target", PORT_T, b.cg_t)
                print(b.compare(os.path.abspath(args.compare)), end="")
            return
        if args.offline:
            b.nginx("target", PORT_T, b.cg_t)
            facts, rows = b.offline(args.offline, groups)
            name = "benchmarks-offline%s.md" % (
                "" if groups == OFFLINE_GROUPS else "-" + "-".join(groups))
            path = os.path.join(outdir, name)
            with open(path, "w") as f:
                f.write(offline_report(facts, rows, groups))
            print(open(path).read(), end="")
            return
        if args.scale:
            res = b.scale(200 if args.tiny else 10000,
                          10 if args.tiny else 500)
            with open(os.path.join(outdir, "benchmarks-scale.json"), "w") as f:
                json.dump(res, f, indent=1)
            path = os.path.join(outdir, "benchmarks-scale.md")
            with open(path, "w") as f:
                f.write(scale_report(args, res))
            print(open(path).read(), end="")
            return
        mach = machine()
        b.nginx("target", PORT_T, b.cg_t, PORT_T_TLS)
        b.nginx("other", PORT_U, b.cg_u, PORT_U_TLS)
        traced, usr, lost = b.traced()
        other = b.untargeted()
        bulk = b.throughput()
        kern = b.kernel_cost()
        tls = b.tls() + (b.tls_call(),)
        prof = b.profile()
        report(args, mach, traced, usr, lost, other, bulk, kern, tls, prof,
               outdir)
    except KeyboardInterrupt:
        die("interrupted")
    finally:
        b.cleanup()
    print(open(os.path.join(outdir, "benchmarks.md")).read())
    print("bench: wrote %s/benchmarks.{md,json,png}" % outdir)


if __name__ == "__main__":
    main()
