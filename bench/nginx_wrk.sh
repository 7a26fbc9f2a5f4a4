#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Requests/s of nginx under wrk on loopback, three ways in one invocation,
# interleaved run by run (A B C A B C ...): untraced, recorded by podtap
# (full payload to a file), and captured by `tcpdump -i lo -w FILE`.
# Prints each run, then medians and ratios against the untraced median.
# Reports numbers; asserts nothing.
#
#   bench/nginx_wrk.sh [RUNS] [SECONDS] [RESPONSE_BYTES]
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SECS=${2:-5}
SIZE=${3:-1024}
CONNS=${CONNS:-32}
PORT=${PORT:-18490}
PODTAP=$PWD/podtap

[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
for t in nginx wrk tcpdump; do command -v $t > /dev/null || { echo "bench: needs $t" >&2; exit 1; }; done
[ -x "$PODTAP" ] || { echo "bench: build podtap first (make)" >&2; exit 1; }

. tests/lib.sh
CG=$(cg2_root)/podtap-bench-$$
TMP=$(mktemp -d /tmp/podtap-bench.XXXXXX)
NGINX_PID=
cleanup() {
	[ -n "$NGINX_PID" ] && { kill "$NGINX_PID" 2> /dev/null; wait "$NGINX_PID" 2> /dev/null || true; }
	rmdir "$CG" 2> /dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/www"
head -c "$SIZE" /dev/urandom > "$TMP/www/r.bin"
start_nginx "$TMP" "$PORT" "$CG"

run_wrk() {
	wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$PORT/r.bin" |
		awk '/^Requests\/sec:/ { print $2 }'
}

one() { # config -> requests/s
	local rps pid
	case $1 in
	untraced)
		rps=$(run_wrk) ;;
	podtap)
		"$PODTAP" record -q --cgroup "$CG" -w "$TMP/cap.ptcap" &
		pid=$!
		sleep 1
		rps=$(run_wrk)
		kill -INT $pid; wait $pid
		ls -l "$TMP/cap.ptcap" | awk '{ printf "  podtap file %d bytes\n", $5 }' >&2
		rm -f "$TMP/cap.ptcap" ;;
	tcpdump)
		tcpdump -q -i lo -w "$TMP/cap.pcap" "tcp port $PORT" 2> /dev/null &
		pid=$!
		sleep 1
		rps=$(run_wrk)
		kill -INT $pid; wait $pid || true
		rm -f "$TMP/cap.pcap" ;;
	esac
	echo "$rps"
}

declare -A res
for i in $(seq "$RUNS"); do
	for c in untraced podtap tcpdump; do
		r=$(one $c)
		echo "run $i $c: $r req/s" >&2
		res[$c]="${res[$c]:-} $r"
	done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
base=$(median <<< "${res[untraced]}")
echo "nginx ${SIZE}-byte responses, wrk -c$CONNS, ${SECS}s x $RUNS runs each, interleaved; $(nproc) CPUs, kernel $(uname -r)"
printf '%-10s %14s %10s\n' config "median req/s" ratio
for c in untraced podtap tcpdump; do
	m=$(median <<< "${res[$c]}")
	printf '%-10s %14.0f %10.3f\n' $c "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN { print a / b }')"
done
