#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The kernel matrix (make test-kernels): the BPF harness (build/test_progs)
# on Debian's own kernel images booted under qemu with TCG, and on the host
# kernel, with its results brought out on the serial console in the
# harness's normal format. Writes docs/compat.md from the run.
#
#   tests/kernels/run.sh [--no-doc] [--no-plain-host] [KERNEL...]
#
# KERNEL: 6.1, 6.12 (default: both). --no-doc leaves docs/compat.md alone;
# --no-plain-host skips the host's own run (the suite's BPF harness stage
# has just done it) and keeps the forced fallback.
#
# Kernel packages are fetched with apt-get download and kept in
# build/kernels/ (KERNEL_CACHE) between runs. Each guest gets 1 GiB and
# KERNEL_TIMEOUT seconds (default 600). KERNEL_TESTS=PATTERN runs only
# those tests (test_progs -t), PT_TEST_VERBOSE=1 shows libbpf's and the
# verifier's words. Exits non-zero if any kernel fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${KERNEL_CACHE:-$ROOT/build/kernels}
TIMEOUT=${KERNEL_TIMEOUT:-600}
doc=1
plain_host=1
while [ $# -gt 0 ]; do
	case $1 in
	--no-doc) doc=0 ;;
	--no-plain-host) plain_host=0 ;;
	-h|--help) sed -n '3,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "test-kernels: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
	shift
done
kernels=("$@")
[ ${#kernels[@]} = 0 ] && kernels=(6.1 6.12)

die() { echo "test-kernels: $*" >&2; exit 1; }

# Debian's meta package for each kernel line. Every kernel here is
# expected to give cgroup programs what podtap's task path needs
# (bpf/compat.bpf.h); the fallback without it is proven on the host with
# PODTAP_NO_TASK_HELPERS=1.
meta_of() {
	case $1 in
	6.1) echo linux-image-amd64 ;;
	6.12) echo linux-image-6.12-amd64 ;;
	*) return 1 ;;
	esac
}

for t in qemu-system-x86_64 busybox dash cpio apt-get ldd ip; do
	command -v $t > /dev/null || die "needs $t (make deps installs it)"
done
[ -x build/test_progs ] || die "build the harness first (make build/test_progs)"
[ "$(id -u)" = 0 ] || die "run as root (the host column loads BPF programs)"
for k in "${kernels[@]}"; do
	meta_of "$k" > /dev/null || die "unknown kernel '$k' (want 6.1 or 6.12)"
done
mkdir -p "$CACHE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch KERNEL: the newest package of that line, cached and extracted;
# prints the directory it is extracted in
fetch() {
	local meta pkg deb
	meta=$(meta_of "$1")
	pkg=$(apt-cache depends "$meta" 2> /dev/null |
		awk '/Depends: linux-image-/ { print $2; exit }')
	if [ -n "$pkg" ]; then
		deb=$(ls "$CACHE"/"$pkg"_*.deb 2> /dev/null | tail -1)
		if [ -z "$deb" ]; then
			(cd "$CACHE" && apt-get download -q "$pkg" > /dev/null 2>&1) ||
				{ echo "apt-get download $pkg failed" >&2; return 1; }
			deb=$(ls "$CACHE"/"$pkg"_*.deb | tail -1)
		fi
	else	# no package lists: the newest cached one of that line
		deb=$(ls "$CACHE"/linux-image-"$1".*amd64_*.deb 2> /dev/null | sort -V | tail -1)
		[ -n "$deb" ] || { echo "cannot resolve $meta (run apt-get update)" >&2; return 1; }
	fi
	local x=$CACHE/${deb##*/}.d
	if [ ! -d "$x" ]; then
		rm -rf "$x.tmp"
		dpkg-deb -x "$deb" "$x.tmp" && mv "$x.tmp" "$x" || return 1
	fi
	echo "$x"
}

# copy_elf TREE SRC DST: the program SRC to TREE/DST, with the shared
# libraries it loads at their own paths
copy_elf() {
	local tree=$1 src=$2 dst=$3 lib
	mkdir -p "$tree$(dirname "$dst")"
	cp -L "$src" "$tree$dst"
	ldd "$src" | awk '/=> \// { print $3 } /^[ \t]*\/lib/ { print $1 }' |
	while read -r lib; do
		[ -e "$tree$lib" ] && continue
		mkdir -p "$tree$(dirname "$lib")"
		cp -L "$lib" "$tree$lib"
	done
}

# initramfs common to every kernel: busybox, ip, the harness, /init
tree=$work/tree
mkdir -p "$tree"/{bin,proc,sys,dev,tmp,run,etc,modules,var}
ln -s /run "$tree/var/run"
cp "$(command -v busybox)" "$tree/bin/busybox"
for a in mount mkdir insmod poweroff cat; do
	ln -s busybox "$tree/bin/$a"
done
# dash, not busybox's shell, runs /init and the harness's system(): the
# static busybox prefers its own applets, and its ip knows no netns
copy_elf "$tree" "$(command -v dash)" /bin/sh
copy_elf "$tree" "$(command -v ip)" /bin/ip
copy_elf "$tree" build/test_progs /test_progs
# the Go TLS peer for test_gotls (a static PIE: nothing else to copy)
gotls_env=
if command -v go >/dev/null; then
	(cd tests/peers/gotls && GOCACHE=$work/gocache GOPATH=$work/gopath \
		GOFLAGS=-mod=mod CGO_ENABLED=0 go build -buildmode=pie \
		-ldflags='-s -w' -o "$tree/gotls" .) ||
		die "building tests/peers/gotls failed"
	gotls_env=PODTAP_GOTLS=/gotls
fi
cp tests/kernels/init "$tree/init"
chmod +x "$tree/init"

results=$work/results
mkdir -p "$results"
failed=0

run_kernel() { # KERNEL
	local k=$1 ver kdir mod rc log t0
	kdir=$(fetch "$k") || { echo "kernel $k: not fetched"; return 1; }
	ver=$(ls "$kdir/lib/modules")
	# veth is a module in Debian's kernels; everything else used is built in
	rm -f "$tree"/modules/*
	mod=$(find "$kdir/lib/modules/$ver" -name 'veth.ko*' | head -1)
	case $mod in
	*.xz) xz -dc "$mod" > "$tree/modules/veth.ko" ;;
	*.zst) zstd -qdc "$mod" > "$tree/modules/veth.ko" ;;
	*.ko) cp "$mod" "$tree/modules/veth.ko" ;;
	*) echo "kernel $k: no veth module"; return 1 ;;
	esac
	cat > "$tree/etc/guest.env" <<-EOF
	PODTAP_EXPECT_TASK_HELPERS=1
	PODTAP_EXPECT_UPROBE_SESSION=0
	$gotls_env
	PT_TEST_VERBOSE=${PT_TEST_VERBOSE:-}
	TEST_ARGS="${KERNEL_TESTS:+-t $KERNEL_TESTS}"
	EOF
	(cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd"
	log=$results/$ver.log
	echo "=== kernel $ver (Debian, qemu TCG)"
	t0=$(date +%s)
	timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 \
		-kernel "$kdir/boot/vmlinuz-$ver" -initrd "$work/initrd" \
		-append "console=ttyS0 panic=-1 quiet loglevel=3" \
		-display none -monitor none -serial "file:$log" -no-reboot
	rc=$?
	# the guest's own lines, between its markers
	sed -n '/^podtap-guest: begin/,/^podtap-guest: end/p' "$log" | tr -d '\r' |
		grep -v '^podtap-guest: begin' > "$results/$ver.out"
	cat "$results/$ver.out"
	echo "($(($(date +%s) - t0)) s)"
	if [ $rc = 124 ]; then
		echo "kernel $ver: timed out after ${TIMEOUT}s; the console's end:"
		tail -20 "$log"
		return 1
	fi
	grep -q '^podtap-guest: end rc=0$' "$results/$ver.out" &&
		grep -q '^#[0-9]* kernel:OK' "$results/$ver.out"
}

for k in "${kernels[@]}"; do
	run_kernel "$k" || { echo "kernel $k: FAILED"; failed=$((failed + 1)); }
done

host=$(uname -r)
run_host() { # NAME [ENV...]: the harness on this kernel
	local name=$1 rc
	shift
	echo "=== kernel $host (this host${*:+, $*})"
	env "$@" build/test_progs > "$results/$name" 2>&1
	rc=$?
	cat "$results/$name"
	grep -q '^#[0-9]* kernel:OK' "$results/$name" && [ $rc = 0 ]
}
# session uprobes came with 6.13; the guests' 6.1 and 6.12 have none
ses=$(uname -r | awk -F. '{ print ($1 > 6 || ($1 == 6 && $2 >= 13)) ? 1 : 0 }')
if [ $plain_host = 1 ]; then
	run_host "$host.host" PODTAP_EXPECT_TASK_HELPERS=1 \
		PODTAP_EXPECT_UPROBE_SESSION=$ses ||
		{ echo "kernel $host: FAILED"; failed=$((failed + 1)); }
fi
run_host "$host.fallback" PODTAP_NO_TASK_HELPERS=1 PODTAP_EXPECT_TASK_HELPERS=0 \
	PODTAP_NO_UPROBE_SESSION=1 PODTAP_EXPECT_UPROBE_SESSION=0 ||
	{ echo "kernel $host, fallback: FAILED"; failed=$((failed + 1)); }

if [ $doc = 1 ]; then
	python3 tests/kernels/compat_doc.py "$results" > docs/compat.md.tmp &&
		mv docs/compat.md.tmp docs/compat.md && echo "wrote docs/compat.md"
fi
total=$((${#kernels[@]} + 1 + plain_host))
echo "test_kernels: $((total - failed)) passed, $failed failed"
[ $failed = 0 ]
