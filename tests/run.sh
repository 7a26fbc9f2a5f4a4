#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The whole suite, in order: the include layers, userspace unit tests, a
# bounded fuzz run of the capture reader, the BPF harness on the running
# kernel, the end-to-end checks of the binary with real peers, the
# benchmark harness in its tiny mode (no timing is judged), the kernel
# matrix. Ends with "total: N passed, M failed".
set -u
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
passed=0
failed=0
skipped=0

stage() { # name command...
	local name=$1 log rc line
	shift
	log=$(mktemp)
	echo "=== $name"
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[a-z_0-9]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
	if [ -n "$line" ]; then
		passed=$((passed + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<< "$line")))
		failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<< "$line")))
		grep -q skipped <<< "$line" &&
			skipped=$((skipped + $(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<< "$line")))
		# a runner that died after its summary still fails the stage
		[ $rc != 0 ] && ! grep -qE ' [1-9][0-9]* failed' <<< "$line" &&
			failed=$((failed + 1))
	elif [ $rc = 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
	rm -f "$log"
}

stage "layers: user/ folders include only the folders below them (scripts/check-layers.sh)" scripts/check-layers.sh
stage "unit tests (tests/user)" $MAKE -s test-user
stage "fuzz the capture reader, the HTTP parser and the agent's reading of API objects (${FUZZ_SECONDS:-20}s each)" $MAKE -s fuzz
stage "BPF harness (tests/bpf)" $MAKE -s test-bpf
stage "end to end (tests/e2e.sh)" tests/e2e.sh
stage "exports end to end (tests/e2e_export.sh)" tests/e2e_export.sh
stage "the other half: mirror, replay with diffs, mock (tests/e2e_replay.sh)" tests/e2e_replay.sh
stage "safety and one vocabulary: outputs, targets, filters, HTTP/1 corners (tests/e2e_safety.sh)" tests/e2e_safety.sh
stage "TLS plaintext: OpenSSL servers and clients in target cgroups (tests/e2e_tls.sh)" tests/e2e_tls.sh
stage "TLS plaintext: Go crypto/tls, plain, stripped and PIE builds (tests/e2e_gotls.sh)" tests/e2e_gotls.sh
stage "operations: metrics, status, pins, logs (tests/e2e_metrics.sh)" tests/e2e_metrics.sh
stage "test peers: the kube-apiserver stand-in and the collector (tests/peers/test_standin.sh)" tests/peers/test_standin.sh
stage "agent end to end: sessions, pods, segments, upload, status (tests/e2e_agent.sh)" tests/e2e_agent.sh
stage "benchmark harness, tiny mode (tests/bench_tiny.sh)" tests/bench_tiny.sh
stage "kernel matrix: Debian 6.1 and 6.12 under qemu, this kernel with and without task helpers (tests/kernels/run.sh)" \
	tests/kernels/run.sh --no-doc --no-plain-host
echo "total: $passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ]
