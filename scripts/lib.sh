# Shell helpers shared by scripts/setup.sh and scripts/dockerd.sh.
# Source it; it defines functions and a few defaults, and runs nothing.

DOCKERCR_PREFIX=${DOCKERCR_PREFIX:-/opt/dockercr}
DOCKERCR_BINDIR=${DOCKERCR_BINDIR:-/usr/local/sbin}
DOCKERCR_IMAGE=${DOCKERCR_IMAGE:-dockercr-busybox:dev}

# Debian's 20.10 client; a newer client may sit earlier on PATH.
DOCKER=/usr/bin/docker

# The first CRIU that passes `criu check` on kernel 6.18 (vvar_vclock) and
# can dump TCP sockets there (SO_PASSCRED refused on non-unix sockets).
CRIU_MIN=4.2.0

# The old CRIU the library's version gate is tested against (Debian 12).
CRIU_OLD=3.17.1

log() { printf '%s: %s\n' "${LOG_TAG:-dockercr}" "$*"; }

die() {
	printf '%s: ERROR: %s\n' "${LOG_TAG:-dockercr}" "$*" >&2
	exit 1
}

need_root() {
	[ "$(id -u)" = 0 ] || die "must run as root (uid 0), not uid $(id -u)"
}

# version_ge A B: true when Debian version A >= B.
version_ge() {
	[ -n "$1" ] && dpkg --compare-versions "$1" ge "$2"
}

# upstream_version 1:4.2.1-1+b2 -> 4.2.1 (drops epoch and Debian revision).
upstream_version() {
	local v=${1#*:}
	printf '%s\n' "${v%-*}"
}

# criu_version BIN: the "Version:" line of `BIN --version`, or nothing.
criu_version() {
	[ -x "$1" ] || return 0
	"$1" --version 2>/dev/null | awk '/^Version:/ && !n++ { print $2 }'
}

# criu_usable BIN: BIN reports at least CRIU_MIN and `criu check` passes.
criu_usable() {
	local v
	v=$(criu_version "$1")
	version_ge "$v" "$CRIU_MIN" && "$1" check >/dev/null 2>&1
}

# multiarch sets TRIPLET and LOADER for the dpkg architecture.
multiarch() {
	ARCH=$(dpkg --print-architecture)
	case $ARCH in
	amd64) TRIPLET=x86_64-linux-gnu LOADER=ld-linux-x86-64.so.2 ;;
	arm64) TRIPLET=aarch64-linux-gnu LOADER=ld-linux-aarch64.so.1 ;;
	*) die "unsupported architecture $ARCH" ;;
	esac
}

docker_answers() {
	timeout 10 "$DOCKER" version --format '{{.Server.Version}}' \
		>/dev/null 2>&1
}
