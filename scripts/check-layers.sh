#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# user/ folders include only the folders below them (docs/hacking.md):
#   base <- capfile <- stream <- proto <- export <- replay    kube (on base)
#   capture (on base, capfile) <- agent (and kube) <- cmd (everything)
# and only capture/ sees the BPF skeleton, so everything else links
# without libbpf. Prints each include that breaks this; exits 1 if any.
set -u
cd "$(dirname "$0")/.."
declare -A may=(
	[base]="base"
	[capfile]="base capfile"
	[stream]="base capfile stream"
	[proto]="base capfile stream proto"
	[export]="base capfile stream proto export"
	[replay]="base capfile stream proto export replay"
	[kube]="base kube"
	[capture]="base capfile capture"
	[agent]="base capfile kube capture agent"
	[cmd]="base capfile stream proto export replay kube capture agent cmd"
)
bad=0
for d in user/*/; do
	d=${d#user/}; d=${d%/}
	if [ -z "${may[$d]+x}" ]; then
		echo "user/$d: a folder with no place in the layers (add it here and to docs/hacking.md)"
		bad=1
		continue
	fi
	while IFS=: read -r file line inc; do
		inc=${inc#*\"}; inc=${inc%\"*}
		case $inc in
		podtap.skel.h)
			[ "$d" = capture ] && continue ;;
		*/*)
			[[ " ${may[$d]} " == *" ${inc%%/*} "* ]] && continue ;;
		*)
			# bpf/podtap.h, the ABI, is for everyone
			[ "$inc" = podtap.h ] && continue ;;
		esac
		echo "$file:$line: user/$d may not include \"$inc\""
		bad=1
	done < <(grep -n '^#include "' user/"$d"/*.[ch] /dev/null)
done
[ $bad = 0 ] && echo "layers: every include goes down"
exit $bad
