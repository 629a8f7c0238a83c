#!/bin/bash
# Shows dockercr on a real container, as root, after scripts/setup.sh:
# a busybox container printing a counter is checkpointed with
# examples/checkpoint (and stops), restored in place with
# examples/restore, and restored once more as a clone beside it; the
# counter goes on where it stopped each time. Everything the demo
# creates (two containers, a temporary directory) is removed on exit,
# also after a failure. Containers it did not create are never touched.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# setup.sh defines its steps without running them when sourced; the
# demo reuses its busybox image (and the helpers of lib.sh).
. "$ROOT/scripts/setup.sh"
LOG_TAG=demo

NAME=dockercr-demo
CLONE=dockercr-demo-clone
# Containers the demo made carry this label, so a leftover of an
# interrupted run can be told from someone else's container.
LABEL_KEY=io.github.docker-cr.demo
LABEL=$LABEL_KEY=1
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

WORK=
CREATED=()

heading() { printf '\n==> %s\n' "$*"; }

# run EXAMPLE ARGS...: shows and runs one of the built examples.
run() {
	local example=$1
	shift
	echo "\$ examples/$example $*"
	"$WORK/bin/$example" "$@"
}

# ours NAME: the container exists and carries the demo's label.
ours() {
	[ "$("$DOCKER" inspect -f "{{index .Config.Labels \"$LABEL_KEY\"}}" \
		"$1" 2>/dev/null)" = 1 ]
}

exists() { "$DOCKER" inspect "$1" >/dev/null 2>&1; }

cleanup() {
	local rc=$? c
	heading "clean up"
	for c in "${CREATED[@]}"; do
		ours "$c" || continue
		"$DOCKER" rm -f "$c" >/dev/null
		echo "  removed container $c"
	done
	if [ -n "$WORK" ]; then
		rm -rf -- "$WORK"
		echo "  removed $WORK"
	fi
	[ "$rc" = 0 ] || printf '\ndemo FAILED (exit %s)\n' "$rc" >&2
	exit "$rc"
}

# claim NAME: removes a leftover demo container of that name, refuses a
# foreign one, and records NAME for the clean-up, which removes it only
# if it carries the demo's label.
claim() {
	if exists "$1"; then
		ours "$1" || die "a container named $1 exists that the demo did not create; remove or rename it"
		log "removing $1 left over from an earlier run"
		"$DOCKER" rm -f "$1" >/dev/null
	fi
	CREATED+=("$1")
}

# numbers NAME: the counter lines of NAME's log.
numbers() { "$DOCKER" logs "$1" 2>/dev/null | grep -E '^[0-9]+$' || true; }

# wait_count NAME N: waits (up to 10 s) until NAME has logged N or more.
wait_count() {
	local i
	for i in $(seq 100); do
		[ "$(numbers "$1" | tail -n 1)" -ge "$2" ] 2>/dev/null && return
		sleep 0.1
	done
	die "$1 did not count to $2"
}

# wait_exited NAME: waits (up to 10 s) until Docker reports NAME stopped.
wait_exited() {
	local i
	for i in $(seq 100); do
		[ "$("$DOCKER" inspect -f '{{.State.Running}}' "$1")" = false ] && return
		sleep 0.1
	done
	die "$1 still runs after its checkpoint"
}

status() {
	"$DOCKER" ps -a --filter label="$LABEL" --format '  {{.Names}}: {{.Status}}'
}

# continued NAME LAST: shows NAME's numbers after LAST and checks that
# the first of them is LAST+1.
continued() {
	local after first
	after=$(numbers "$1" | awk -v n="$2" '$1 > n')
	first=$(printf '%s\n' "$after" | head -n 1)
	echo "  $1 counts on: $(printf '%s\n' "$after" | head -n 6 | paste -sd ' ')"
	[ "$first" = $(($2 + 1)) ] ||
		die "$1 did not continue: last before $2, first after ${first:-none}"
	echo "  continued: $2 was the last number before the checkpoint, $first came next"
}

main() {
	need_root
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	claim "$NAME"
	claim "$CLONE"
	busybox_image >/dev/null

	WORK=$(mktemp -d -t dockercr-demo.XXXXXX)
	heading "build the examples"
	(cd "$ROOT" && "$GO" build -o "$WORK/bin/" ./examples/checkpoint ./examples/restore)
	echo "  $WORK/bin/checkpoint, $WORK/bin/restore"

	heading "start $NAME: prints a counter every 0.5 s"
	"$DOCKER" run -d --name "$NAME" --network none --label "$LABEL" "$DOCKERCR_IMAGE" \
		sh -c 'i=0; while :; do i=$((i + 1)); echo $i; sleep 0.5; done' >/dev/null
	wait_count "$NAME" 5
	"$DOCKER" logs --tail 3 "$NAME" | sed 's/^/  /'

	heading "checkpoint $NAME (it stops once dumped)"
	run checkpoint -name demo1 -dir "$WORK/checkpoints" "$NAME"
	wait_exited "$NAME"
	# Let Docker's log copier drain what the container wrote last.
	sleep 0.5
	status
	echo "  (exit 137 is SIGKILL: CRIU kills the processes once they are dumped)"
	local last
	last=$(numbers "$NAME" | tail -n 1)
	echo "  last number before the checkpoint: $last"

	heading "restore $NAME in place"
	run restore -name demo1 -dir "$WORK/checkpoints" "$NAME"
	wait_count "$NAME" $((last + 4))
	continued "$NAME" "$last"

	heading "restore a clone beside it: $CLONE"
	run restore -name demo1 -dir "$WORK/checkpoints" -as "$CLONE" "$NAME"
	wait_count "$CLONE" $((last + 4))
	continued "$CLONE" "$last"
	status

	printf '\ndemo OK: checkpointed, restored in place and cloned; both counters went on\n'
}

main "$@"
