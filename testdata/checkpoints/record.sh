#!/bin/bash
# record.sh re-records the checkpoints of this directory, as root, with
# the criu on PATH, and next to each the facts /proc told about the
# dumped processes (NAME.expect.txt), which inspect_test.go checks the
# images against.
#
#   tinytree/   a bare CRIU images dir: criu dump of tinytree.c (static,
#               two processes, three threads, a pipe, unix, TCP and UDP
#               sockets, an established loopback TCP pair)
#   container/  a checkpoint directory of this library: a busybox
#               container ("sh -c 'sleep 100000 & wait'", --network
#               none) dumped by examples/checkpoint; its dump.log is
#               left out to keep the directory small
#
# NAME.expect.txt, tab-separated, PIDs as the dumped tree sees them:
#   criu    VERSION                (criu --version)
#   kernel  RELEASE                (uname -r)
#   process PID PPID PGID SID COMM ARG...
#   thread  PID TID
#   fd      PID FD TARGET          (readlink of /proc/PID/fd/FD)
#   inet    INODE PROTO LOCAL REMOTE STATE   (hex, as /proc/net/tcp)
#   unix    INODE FLAGS TYPE STATE PATH      (as /proc/net/unix)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
docker=${DOCKER:-/usr/bin/docker}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# field NAME PID: the last (innermost namespace) value of a status line.
field() { awk -v k="$1:" '$1 == k { print $NF }' "/proc/$2/status"; }

# tree PID: PID and its descendants, parents first.
tree() {
	echo "$1"
	local c
	for c in $(cat /proc/"$1"/task/*/children); do tree "$c"; done
}

# snapshot ROOT: expect.txt lines for the tree rooted at host PID ROOT.
snapshot() {
	local root=$1 p ns ppid t fd
	printf 'criu\t%s\nkernel\t%s\n' "$(criu --version | sed -n 's/^Version: //p')" "$(uname -r)"
	for p in $(tree "$root"); do
		ns=$(field NSpid "$p")
		ppid=0
		[ "$p" != "$root" ] && ppid=$(field NSpid "$(field PPid "$p")")
		printf 'process\t%s\t%s\t%s\t%s\t%s' "$ns" "$ppid" \
			"$(field NSpgid "$p")" "$(field NSsid "$p")" "$(cat /proc/"$p"/comm)"
		tr '\0' '\t' </proc/"$p"/cmdline | sed 's/\t$//; s/^/\t/'
		echo
		for t in /proc/"$p"/task/*; do
			printf 'thread\t%s\t%s\n' "$ns" "$(field NSpid "${t#/proc/}")"
		done
		for fd in /proc/"$p"/fd/*; do
			printf 'fd\t%s\t%s\t%s\n' "$ns" "${fd##*/}" "$(readlink "$fd")"
		done
	done
	local inodes
	inodes=$(for p in $(tree "$root"); do readlink /proc/"$p"/fd/*; done |
		sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | sort -u | tr '\n' ' ')
	for proto in tcp udp tcp6 udp6; do
		awk -v p="$proto" -v want=" $inodes" 'NR > 1 && index(want, " " $10 " ") {
			printf "inet\t%s\t%s\t%s\t%s\t%s\n", $10, p, $2, $3, $4 }' \
			/proc/"$root"/net/"$proto"
	done
	awk -v want=" $inodes" 'NR > 1 && index(want, " " $7 " ") {
		printf "unix\t%s\t%s\t%s\t%s\t%s\n", $7, $4, $5, $6, $8 }' /proc/"$root"/net/unix
}

record_tinytree() {
	local out=$here/tinytree
	gcc -static -O2 -Wall -o "$tmp/tinytree" "$here/tinytree.c" -lpthread
	setsid "$tmp/tinytree" tcp </dev/null >"$tmp/tinytree.out" 2>&1 &
	local pid=$!
	until grep -q '^ready' "$tmp/tinytree.out"; do sleep 0.1; done
	local child
	child=$(sed -n 's/.*child=\([0-9]*\).*/\1/p' "$tmp/tinytree.out")

	rm -rf "$out" && mkdir "$out"
	snapshot "$pid" >"$out.expect.txt"
	criu dump -t "$pid" -D "$out" -o dump.log -v4 --leave-running \
		--tcp-established --network-lock skip

	# The child first: orphaned, it would become init's zombie.
	kill "$child"
	kill "$pid"
	wait "$pid" || true
}

record_container() {
	local out=$here/container name=dockercr-record-$$
	"$docker" run -d --network none --name "$name" dockercr-busybox:dev \
		sh -c 'sleep 100000 & wait' >/dev/null
	sleep 1
	local pid
	pid=$("$docker" inspect -f '{{.State.Pid}}' "$name")

	rm -rf "$out"
	snapshot "$pid" >"$out.expect.txt"
	(cd "$repo" && go run ./examples/checkpoint -dir "$tmp/base" -leave-running \
		-name rec "$name")
	"$docker" rm -f "$name" >/dev/null

	mv "$tmp/base/$name/rec" "$out"
	rm -f "$out/dump.log"
}

record_tinytree
record_container
du -sh "$here"/tinytree "$here"/container
