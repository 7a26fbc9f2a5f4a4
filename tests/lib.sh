# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Shell helpers shared by the tests/*.sh end to end checks and scripts/demo.sh.

# Where cgroup v2 is mounted (/sys/fs/cgroup when it is there).
cg2_root() {
	if grep -q ' /sys/fs/cgroup cgroup2 ' /proc/self/mounts; then
		echo /sys/fs/cgroup
	else
		awk '$3 == "cgroup2" { print $2 }' /proc/self/mounts | sort | head -1
	fi
}

# wait_port PORT: returns once something listens on 127.0.0.1:PORT (1
# after 5 s, saying so).
wait_port() {
	for _ in $(seq 100); do
		(echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
		sleep 0.05
	done
	echo "nothing listens on $1" >&2
	return 1
}

# wait_listen PORT: the same without connecting (for a server that
# takes any connection as its one client), from the socket table.
wait_listen() {
	for _ in $(seq 100); do
		[ -n "$(ss -Hltn "sport = :$1")" ] && return 0
		sleep 0.05
	done
	echo "nothing listens on $1" >&2
	return 1
}

# self_signed DIR: DIR/cert.pem and DIR/key.pem for CN=localhost, a day.
self_signed() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
		-keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# start_nginx DIR PORT CGROUP [EXTRA_SERVER_DIRECTIVES]: nginx with one
# worker serving DIR/www on 127.0.0.1:PORT, run in CGROUP; sets NGINX_PID
# and returns once it answers. $NGINX_CONNECTIONS connections at once
# (default 1024).
start_nginx() {
	local dir=$1 port=$2 cg=$3 extra=${4:-} conns=${NGINX_CONNECTIONS:-1024}
	mkdir -p "$dir/www" "$dir/tmp" "$cg"
	cat > "$dir/nginx.conf" << NGINX_CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
worker_rlimit_nofile $((conns * 2 + 64));
events { worker_connections $conns; }
http {
	access_log off;
	client_body_temp_path $dir/tmp;
	proxy_temp_path $dir/tmp;
	fastcgi_temp_path $dir/tmp;
	uwsgi_temp_path $dir/tmp;
	scgi_temp_path $dir/tmp;
	client_max_body_size 10m;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$port;
		root $dir/www;
		$extra
	}
}
NGINX_CONF
	chmod -R a+rwX "$dir"
	(echo $BASHPID > "$cg/cgroup.procs" && exec nginx -c "$dir/nginx.conf") &
	NGINX_PID=$!
	for _ in $(seq 50); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
		sleep 0.1
	done
	echo "nginx did not start on port $port" >&2
	return 1
}

# start_record ARGS...: podtap record in the background, stderr to
# $TMP/rec.err; sets REC_PID and returns once it says "recording" (1 if it
# exits first or takes 10 s). Needs $PODTAP and $TMP.
start_record() {
	"$PODTAP" record "$@" 2> "$TMP/rec.err" &
	REC_PID=$!
	for _ in $(seq 200); do
		grep -q 'recording' "$TMP/rec.err" && return 0
		kill -0 $REC_PID 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# TAP-like checks for the end-to-end scripts: check "what" command...
pass=0
fail=0
# no_podtap_progs: no podtap program is loaded. The kernel frees a
# program after its last user is gone, uprobe links through an RCU grace
# period: allow it 3 s after the recorder exited.
no_podtap_progs() {
	for _ in $(seq 60); do
		bpftool prog show | grep -q podtap_ || return 0
		sleep 0.05
	done
	return 1
}

ok() { echo "ok - $1"; pass=$((pass + 1)); }
notok() { echo "not ok - $1"; fail=$((fail + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d"; fi; }

# same_read FILE: podtap read of FILE as a stream (a file, read two or
# three times; the same through a pipe, kept in a file to be) says what
# it says read whole (PODTAP_READ_WHOLE=1), as text, --full, JSON and
# --dump; only the header's name for the file differs. Needs $TMP and
# $PODTAP.
same_read() {
	local f=$1 o
	for o in "" -x -j --dump "-j --dump"; do
		"$PODTAP" read $o "$f" 2>&1 | sed '1s|^# [^:]*: host|# F: host|' > "$TMP/sr.stream" || return 1
		cat "$f" | "$PODTAP" read $o - 2>&1 | sed '1s|^# [^:]*: host|# F: host|' > "$TMP/sr.pipe" || return 1
		PODTAP_READ_WHOLE=1 "$PODTAP" read $o "$f" 2>&1 | sed '1s|^# [^:]*: host|# F: host|' > "$TMP/sr.whole" || return 1
		cmp -s "$TMP/sr.stream" "$TMP/sr.whole" ||
			{ echo "  read $o differs:"; diff "$TMP/sr.stream" "$TMP/sr.whole" | head -5 | cut -c1-300; return 1; }
		cmp -s "$TMP/sr.pipe" "$TMP/sr.whole" ||
			{ echo "  read $o - differs:"; diff "$TMP/sr.pipe" "$TMP/sr.whole" | head -5 | cut -c1-300; return 1; }
	done
}

# one_line_error TEXT CMD...: CMD fails with exactly one line on stderr,
# and that line holds TEXT. Needs $TMP.
one_line_error() {
	local want=$1 out=$TMP/bad.out
	shift
	"$@" > "$out.stdout" 2> "$out"
	local rc=$?
	[ $rc != 0 ] && [ "$(wc -l < "$out")" = 1 ] && grep -q -- "$want" "$out" ||
		{ echo "  rc=$rc stderr: $(cat "$out")"; return 1; }
}
