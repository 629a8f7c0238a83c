#!/bin/bash
# dockerd.sh start|stop|status: runs Debian's dockerd for dockercr's tests,
# with experimental features on (docker checkpoint needs them) and no
# bridge or iptables changes (tests use --network none or host only).
#
# runc execs `criu` from dockerd's PATH, so $DOCKERCR_BINDIR (our criu
# wrapper, default /usr/local/sbin) is put first.
#
# For trying the script against a second daemon: DOCKERCR_DOCKERD_LOG and
# DOCKERCR_DOCKERD_PIDFILE move the log and pid file, DOCKERCR_DOCKERD_ARGS
# adds dockerd flags (data root, socket), and DOCKER_HOST points the
# client at that socket.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=dockerd
. "$ROOT/scripts/lib.sh"

LOGFILE=${DOCKERCR_DOCKERD_LOG:-/var/log/dockercr-dockerd.log}
PIDFILE=${DOCKERCR_DOCKERD_PIDFILE:-/run/dockercr-dockerd.pid}
WAIT=60

# alive PID: PID exists and is not a zombie. PID 1 on these machines does
# not reap orphans, so a dead dockerd can linger as a zombie.
alive() {
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

is_dockerd() {
	alive "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = dockerd ]
}

# our_pid prints the pid from the pid file if it is a live dockerd.
our_pid() {
	local pid
	[ -r "$PIDFILE" ] || return 0
	pid=$(tr -dc 0-9 <"$PIDFILE")
	[ -z "$pid" ] || ! is_dockerd "$pid" || printf '%s\n' "$pid"
}

require_experimental() {
	local exp
	exp=$(timeout 10 "$DOCKER" version --format '{{.Server.Experimental}}')
	[ "$exp" = true ] || die "the dockerd answering on the socket runs" \
		"without --experimental; stop it and run '$0 start'"
}

fail_with_log() {
	echo "--- last lines of $LOGFILE ---" >&2
	tail -n 30 "$LOGFILE" >&2 || true
	die "$@"
}

start() {
	local pid i path

	if docker_answers; then
		require_experimental
		log "dockerd already answering (pid file: $(our_pid))"
		return
	fi

	pid=$(our_pid)
	if [ -n "$pid" ]; then
		log "dockerd $pid is up but not answering yet; waiting"
	else
		need_root
		command -v dockerd >/dev/null || die "dockerd not installed (docker.io)"
		log "starting dockerd, log $LOGFILE"
		echo "--- dockercr: dockerd.sh start at $(date -u +%FT%TZ) ---" >>"$LOGFILE"
		# setsid: the daemon must outlive the shell or job that started it.
		path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
		[ "$DOCKERCR_BINDIR" = /usr/local/sbin ] || path="$DOCKERCR_BINDIR:$path"
		PATH=$path \
			setsid dockerd --experimental --bridge=none \
			--iptables=false --ip6tables=false ${DOCKERCR_DOCKERD_ARGS:-} \
			</dev/null >>"$LOGFILE" 2>&1 &
		pid=$!
		echo "$pid" >"$PIDFILE"
	fi

	for ((i = 0; i < WAIT; i++)); do
		if docker_answers; then
			log "dockerd $pid answering after ${i}s"
			return
		fi
		alive "$pid" || fail_with_log "dockerd $pid exited during startup"
		sleep 1
	done
	fail_with_log "dockerd $pid not answering after ${WAIT}s"
}

stop() {
	local pid i

	pid=$(our_pid)
	if [ -z "$pid" ]; then
		rm -f -- "$PIDFILE"
		log "no dockerd from $PIDFILE running"
		return
	fi

	log "stopping dockerd $pid"
	kill -TERM "$pid"
	for ((i = 0; i < WAIT; i++)); do
		if ! alive "$pid"; then
			rm -f -- "$PIDFILE"
			log "dockerd $pid stopped after ${i}s"
			return
		fi
		sleep 1
	done
	die "dockerd $pid still running ${WAIT}s after SIGTERM"
}

status() {
	local pid
	pid=$(our_pid)
	if docker_answers; then
		log "answering, server $(timeout 10 "$DOCKER" version \
			--format '{{.Server.Version}}'), pid file: ${pid:-none}"
		return 0
	fi
	log "not answering, pid file: ${pid:-none}"
	return 3
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 start|stop|status" ;;
esac
