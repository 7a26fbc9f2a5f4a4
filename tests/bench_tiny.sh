#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The benchmark harness in its tiny mode (one short run per configuration):
# proves it runs end to end and writes a complete report. The numbers are
# not judged; a run on a busy CI machine says nothing about speed.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
pass=0
fail=0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

log=$out/bench.log
bench/bench.py --tiny --out "$out" > "$log" 2>&1 &
bpid=$!
if wait $bpid; then
	ok "bench/bench.py --tiny exits 0"
else
	notok "bench/bench.py --tiny exits 0"
	tail -20 "$log"
fi
check "benchmarks.png is a PNG" \
	bash -c "head -c 8 '$out/benchmarks.png' | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a'"
for h in "1. Overhead on a traced server" "2. Overhead on processes that are not targets" \
	 "3. Capture throughput" "4. Kernel cost per event" "5. Userspace" "6. TLS" \
	 "7. Where the time goes"; do
	check "benchmarks.md has '$h'" grep -qF "## $h" "$out/benchmarks.md"
done
check "benchmarks.md reads section 4's floors together" \
	grep -q "^Read together: at 1 KiB podtap costs" "$out/benchmarks.md"
# every configuration measured something, and the counters moved
check "benchmarks.json holds a measurement for every configuration" python3 - "$out/benchmarks.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
for size, r in d["traced"].items():
    for cfg in ("untraced", "podtap", "tcpdump", "floor"):
        if not r[cfg]["median_rps"] > 0:
            bad.append("traced %s %s" % (size, cfg))
for cfg, r in d["untargeted"].items():
    if not r["median_rps"] > 0:
        bad.append("untargeted " + cfg)
steps = d["throughput"]["steps"]
if len(steps) < 2 or not all(s["sent_bytes"] > 0 and s["captured_bytes"] > 0
                             for s in steps):
    bad.append("throughput steps")
for name, k in d["kernel"].items():
    if not k["skb_runs"] > 0:
        bad.append("kernel " + name)
    copies = name.startswith(("captured", "floor")) and "nothing" not in name
    if copies and not k["events"] > 0:
        bad.append("kernel events " + name)
floors = sorted(n for n in d["kernel"] if n.startswith("floor"))
if floors != ["floor, captured 1 KiB", "floor, captured 64 KiB",
              "floor, doing nothing (passed over)",
              "floor, per-CPU rings, captured 1 KiB",
              "floor, per-CPU rings, captured 64 KiB"] or \
        not all(k["payload_bytes"] > 0 and k["ns_per_skb_run"]
                for n, k in d["kernel"].items()
                if n.startswith("floor") and "nothing" not in n):
    bad.append("kernel: the floors' cost per run")
nothing = d["kernel"].get("floor, doing nothing (passed over)", {})
if nothing.get("events") != 0 or not nothing.get("ns_per_skb_run"):
    bad.append("kernel: the floor doing nothing ran, and copied nothing")
for size, prof in d["profile"].items():
    if not prof["samples"] > 0 or not prof["parts"].get("podtap BPF programs", 0) > 0 or \
            not prof["parts"].get("podtap record, userspace", 0) > 0:
        bad.append("profile %s: the BPF programs and podtap record's own share" % size)
if sorted(d["profile"]) != ["1024", "65536"]:
    bad.append("profile: one per load")
if d["kernel"]["filtered out"]["events"] != 0:
    bad.append("filtered-out traffic was captured")
for size, u in d["userspace"].items():
    if not (u["cpu_s_per_GB"] and u["peak_rss_MiB"] > 0):
        bad.append("userspace " + size)
for part in ("traced", "untargeted"):
    # a third with --tls-probes process, on kernels with session uprobes
    if len(d["tls"][part]) not in (2, 3) or not all(r["median_rps"] > 0 for r in d["tls"][part].values()):
        bad.append("tls " + part)
if not all(b > 0 for b in d["tls"]["captured_bytes"]):
    bad.append("tls: nothing captured from the traced nginx over HTTPS")
calls = d["tls"]["call_ns"]
base = sorted(c for c in calls if "--tls-probes process" not in c)
if base != ["a target", "not a target", "untraced"] or len(calls) > 4 or \
        not all(c["median_ns"] > 0 for c in calls.values()):
    bad.append("tls: ns per library call")
if bad:
    print("missing or empty: " + ", ".join(bad))
    sys.exit(1)
PY
check "nothing left behind: no cgroups" \
	bash -c "! ls -d '$(cg2_root)'/podtap-bench-*-$bpid 2>/dev/null"

# the offline side: a short recording, then read and export timed on it
bench/bench.py --offline 2 --out "$out" > "$log" 2>&1 &
bpid=$!
if wait $bpid; then
	ok "bench/bench.py --offline 2 exits 0"
else
	notok "bench/bench.py --offline 2 exits 0"
	tail -20 "$log"
fi
check "benchmarks-offline.md times read, every export and replay, streamed" python3 - "$out/benchmarks-offline.md" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rows = re.findall(r"^\| `podtap ([^`]+)` \| ([0-9.]+) \| [0-9.]+ \| ([0-9]+) MiB \| ([0-9]+) MB \| ([^|]+) \|$", t, re.M)
names = [r[0] for r in rows]
ok = names == ["read", "export -f jsonl", "export -f har",
              "export -f pcapng", "export -f keploy",
              "replay --dry-run", "replay -j 32"] and \
    all(float(r[1]) > 0 and int(r[2]) > 0 for r in rows) and \
    all("MiB" in r[4] for r in rows if r[0] != "replay -j 32") and \
    "GiB of payload" in t
sys.exit(0 if ok else 1)
PY
check "nothing left behind after --offline: no cgroups" \
	bash -c "! ls -d '$(cg2_root)'/podtap-bench-*-$bpid 2>/dev/null"
# --compare with the bulk load: this build against itself, each step twice
bench/bench.py --tiny --compare ./podtap --load bulk > "$out/compare-bulk.md" 2> "$log" &
bpid=$!
if wait $bpid; then
	ok "bench/bench.py --compare --load bulk exits 0"
else
	notok "bench/bench.py --compare --load bulk exits 0"
	tail -20 "$log"
fi
check "the bulk comparison gives both builds a capture at every step" python3 - "$out/compare-bulk.md" <<'PY'
import re, sys
rows = re.findall(r"^\| (\w+) \| (this build|other build) \| ([0-9]+) \| ([0-9.]+) \| ([0-9]+) \|$",
                  open(sys.argv[1]).read(), re.M)
steps = [r[0] for r in rows]
ok = steps == ["100", "100", "1000", "1000", "unpaced", "unpaced"] and \
    [r[1] for r in rows] == ["this build", "other build"] * 3 and \
    all(int(r[2]) > 0 and float(r[3]) > 0 for r in rows)
sys.exit(0 if ok else 1)
PY
# the scale runs, small: many connections, many targeted cgroups
bench/bench.py --scale --tiny --out "$out" > "$log" 2>&1 &
bpid=$!
if wait $bpid; then
	ok "bench/bench.py --scale --tiny exits 0"
else
	notok "bench/bench.py --scale --tiny exits 0"
	tail -20 "$log"
fi
check "benchmarks-scale.json: every connection seen, every cgroup attached, programs ran" python3 - "$out/benchmarks-scale.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c, g = d["connections"], d["cgroups"]
ok = [r["connections"] for r in c] == [32, 200] and \
    all(r["tracked"] >= r["connections"] and r["skb_runs"] > 0 and
        r["ns_per_skb_run"] > 0 for r in c) and \
    [r["cgroups"] for r in g] == [1, 10] and \
    all(r["attached"] >= r["cgroups"] and r["skb_runs"] > 0 and
        r["requests_per_s"] > 0 for r in g)
if not ok:
    print(json.dumps(d))
sys.exit(0 if ok else 1)
PY
check "benchmarks-scale.md has both tables" \
	bash -c "grep -q '^## Many connections on one target' '$out/benchmarks-scale.md' && grep -q '^## Many targeted cgroups' '$out/benchmarks-scale.md'"
check "nothing left behind after --scale: no cgroups" \
	bash -c "! ls -d '$(cg2_root)'/podtap-bench-*-$bpid /sys/fs/cgroup/memory/podtap-bench-*-$bpid 2>/dev/null"
check "nothing left behind: no nginx, wrk or podtap record" \
	bash -c "! pgrep -f 'podtap-bench[.]|[p]odtap record' >/dev/null && ! pgrep -x wrk >/dev/null && ! pgrep -x perf >/dev/null"
echo "bench: $pass passed, $fail failed"
[ $fail = 0 ]
