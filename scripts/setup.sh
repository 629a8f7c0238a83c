#!/bin/bash
# Installs what dockercr's tests need on a Debian machine, as root:
# Debian packages, a CRIU new enough for this kernel, an old CRIU for the
# version-gate test, the Go modules, a running dockerd and the busybox
# test image. Safe to run again: each step checks first and skips.
#
# DOCKERCR_PREFIX (default /opt/dockercr) holds the private CRIU copies and
# their apt state; DOCKERCR_BINDIR (default /usr/local/sbin) gets the criu
# wrapper.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=setup
. "$ROOT/scripts/lib.sh"

PACKAGES="docker.io busybox-static iproute2 util-linux tar zstd
ca-certificates"

# Keep apt from regenerating binary caches in the system's cache dir
# when all we do is read the system lists.
APT_RO="-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache="

export DEBIAN_FRONTEND=noninteractive

# run_system_apt CMD ARGS...: apt-get / apt-cache on the system's own
# sources, read-only.
run_system_apt() {
	local cmd=$1
	shift
	# shellcheck disable=SC2086
	"$cmd" $APT_RO "$@"
}

pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null |
		grep 'install ok installed' >/dev/null
}

# apt_install PKG...: installs the missing ones; refreshes the system lists
# only when the first attempt fails (a fresh image ships without them).
apt_install() {
	local p missing=
	for p in "$@"; do
		pkg_installed "$p" || missing="$missing $p"
	done
	if [ -z "$missing" ]; then
		log "packages present: $*"
		return
	fi

	log "apt-get install$missing"
	# shellcheck disable=SC2086
	if ! apt-get install -y -q --no-install-recommends $missing; then
		log "install failed; running apt-get update and retrying"
		apt-get update -q || die "apt-get update failed"
		# shellcheck disable=SC2086
		apt-get install -y -q --no-install-recommends $missing ||
			die "apt-get install$missing failed"
	fi
}

# system_candidate PKG: the version apt would install from system sources.
system_candidate() {
	run_system_apt apt-cache policy "$1" 2>/dev/null |
		awk '$1 == "Candidate:" && $2 != "(none)" && !n++ { print $2 }'
}

# debian_source prints "URI<TAB>SIGNED-BY" of the machine's main Debian
# archive entry (not -security), from deb822 sources or sources.list.
debian_source() {
	local f=/etc/apt/sources.list.d/debian.sources out=
	if [ -r "$f" ]; then
		out=$(awk '
			function flush() {
				if (!found && types ~ /(^|[ \t])deb([ \t]|$)/ &&
				    uris != "" && suites !~ /-security/ &&
				    enabled != "no") {
					split(uris, u, /[ \t]+/)
					print u[1] "\t" signed
					found = 1
				}
				types = uris = suites = signed = enabled = ""
			}
			/^#/ { next }
			/^[ \t]*$/ { flush(); next }
			/^[ \t]/ { next }
			{
				key = tolower($1); sub(/:$/, "", key)
				val = $0; sub(/^[^:]*:[ \t]*/, "", val)
				if (key == "types") types = val
				else if (key == "uris") uris = val
				else if (key == "suites") suites = val
				else if (key == "signed-by") signed = val
				else if (key == "enabled") enabled = tolower(val)
			}
			END { flush() }' "$f")
	fi
	if [ -z "$out" ] && [ -r /etc/apt/sources.list ]; then
		out=$(awk '
			$1 != "deb" { next }
			{
				i = 2; signed = ""
				if ($2 ~ /^\[/) {
					for (; i <= NF; i++) {
						if ($i ~ /signed-by=/) {
							s = $i
							sub(/.*signed-by=/, "", s)
							sub(/\]$/, "", s)
							signed = s
						}
						if ($i ~ /\]$/) break
					}
					i++
				}
				if ($(i + 1) ~ /-security/) next
				print $i "\t" signed
				exit
			}' /etc/apt/sources.list)
	fi
	[ -n "$out" ] || die "no Debian archive entry found in $f or /etc/apt/sources.list"
	printf '%s\n' "$out"
}

# papt_init DIR SUITE: a self-contained apt configuration in DIR that reads
# SUITE from the machine's own Debian mirror. Its lists, caches, status
# file and config parts are all under DIR, so the system's apt state is
# never touched; only the system's Acquire settings (proxies, date checks)
# are carried over.
papt_init() {
	local dir=$1 suite=$2 src uri signed opt=
	src=$(debian_source)
	uri=${src%%$'\t'*}
	signed=${src#*$'\t'}
	case $signed in
	/*) opt="[signed-by=$signed] " ;;
	*) [ -z "$signed" ] || log "inline Signed-By not copied; using apt's trusted keys" ;;
	esac

	mkdir -p "$dir/etc/sources.list.d" "$dir/etc/preferences.d" \
		"$dir/etc/apt.conf.d" "$dir/state/lists/partial" \
		"$dir/cache/archives/partial"
	sandbox_dir "$dir/state/lists/partial" "$dir/cache/archives/partial"
	[ -e "$dir/state/status" ] || : >"$dir/state/status"

	{
		cat <<-EOF
			Dir::State "$dir/state";
			Dir::State::status "$dir/state/status";
			Dir::Cache "$dir/cache";
			Dir::Etc::SourceList "$dir/etc/sources.list";
			Dir::Etc::SourceParts "$dir/etc/sources.list.d";
			Dir::Etc::Preferences "$dir/etc/preferences";
			Dir::Etc::PreferencesParts "$dir/etc/preferences.d";
			Dir::Etc::Parts "$dir/etc/apt.conf.d";
			Dir::Etc::Main "/dev/null";
			APT::Architecture "$ARCH";
			APT::Architectures { "$ARCH"; };
		EOF
		# System hooks (appstream, packagekit) and extra index targets
		# stay out: they would write outside DIR.
		apt-config dump | grep '^Acquire::' | grep -v '^Acquire::IndexTargets'
	} >"$dir/apt.conf"

	printf 'deb %s%s %s main\n' "$opt" "$uri" "$suite" >"$dir/etc/sources.list"
}

papt() { APT_CONFIG="$PAPT/apt.conf" "$@"; }

papt_candidate() {
	papt apt-cache policy "$1" |
		awk '$1 == "Candidate:" && $2 != "(none)" && !n++ { print $2 }'
}

# closure PKG...: PKG and everything it depends on, recursively, without
# recommends and the like; virtual names dropped. Runs under $APTRUN.
closure() {
	$APTRUN apt-cache depends --recurse --no-recommends --no-suggests \
		--no-conflicts --no-breaks --no-replaces --no-enhances "$@" |
		grep -v '^[ <]' | sort -u
}

# sandbox_dir DIR...: lets apt's unprivileged download user write there.
sandbox_dir() {
	! id _apt >/dev/null 2>&1 || chown _apt:root "$@"
}

# has_shlib DEB: DEB ships a shared library.
has_shlib() {
	# No grep -q: with pipefail, its early exit would fail dpkg-deb.
	dpkg-deb -c "$1" | grep -E '\.so(\.[0-9.]+)?$' >/dev/null
}

# unpack DEST MODE PKG...: downloads PKG... under $APTRUN and extracts them
# into DEST (replacing it), without installing anything. MODE "libs" keeps
# only criu and the packages that ship shared libraries.
unpack() {
	local dest=$1 mode=$2 debs="$1.debs" stage="$1.stage" f
	shift 2
	rm -rf -- "$debs" "$stage"
	mkdir -p "$debs" "$stage"
	sandbox_dir "$debs"

	log "downloading $# packages for $(basename "$dest")"
	(cd "$debs" && $APTRUN apt-get download -q "$@") >"$debs.log" 2>&1 || {
		tail -n 20 "$debs.log" >&2
		die "apt-get download failed for: $*"
	}

	for f in "$debs"/*.deb; do
		case $mode:${f##*/} in
		libs:criu_*) ;;
		libs:*) has_shlib "$f" || continue ;;
		esac
		dpkg -x "$f" "$stage" || die "dpkg -x $f failed"
	done
	[ -x "$stage/usr/sbin/criu" ] || die "no usr/sbin/criu in the unpacked packages"

	rm -rf -- "$dest"
	mv "$stage" "$dest"
	rm -rf -- "$debs" "$debs.log"
}

# write_wrapper FILE DIR: a script that runs DIR's criu through DIR's own
# dynamic loader and libraries, so a CRIU built for a newer libc runs on
# this system without touching the system's libc. Fails when a library
# would come from outside DIR, which means the closure missed a package.
write_wrapper() {
	local file=$1 dir=$2 ld= libs= d outside
	for d in "$dir/usr/lib/$TRIPLET" "$dir/lib/$TRIPLET"; do
		[ -d "$d" ] || continue
		libs="${libs:+$libs:}$d"
		[ -n "$ld" ] || [ ! -e "$d/$LOADER" ] || ld="$d/$LOADER"
	done
	[ -n "$ld" ] || die "no $LOADER in $dir"

	outside=$("$ld" --library-path "$libs" --list "$dir/usr/sbin/criu" |
		awk -v d="$dir/" '$2 == "=>" && index($3, d) != 1 { print $1 }') ||
		die "$ld --list $dir/usr/sbin/criu failed"
	[ -z "$outside" ] || die "libraries not found in $dir:" $outside

	mkdir -p "$(dirname "$file")"
	cat >"$file.tmp" <<-EOF
		#!/bin/sh
		# dockercr: written by scripts/setup.sh; runs the criu unpacked in
		# $dir with that tree's own loader and libraries.
		exec "$ld" --library-path "$libs" "$dir/usr/sbin/criu" "\$@"
	EOF
	chmod 0755 "$file.tmp"
	mv "$file.tmp" "$file"
}

# papt_pick_suite: points $PAPT at testing, or unstable when testing's
# criu is older than CRIU_MIN; sets NEW_VERSION to the candidate.
papt_pick_suite() {
	local suite
	for suite in testing unstable; do
		papt_init "$PAPT" "$suite"
		log "private apt: updating lists for $suite"
		papt apt-get update -q >"$PAPT/update.log" 2>&1 || {
			tail -n 20 "$PAPT/update.log" >&2
			die "private apt-get update for $suite failed (log: $PAPT/update.log)"
		}
		NEW_VERSION=$(papt_candidate criu)
		log "private apt: $suite has criu ${NEW_VERSION:-none}"
		version_ge "$NEW_VERSION" "$CRIU_MIN" && return
	done
	die "neither testing nor unstable has criu >= $CRIU_MIN"
}

install_criu() {
	local wrapper="$DOCKERCR_BINDIR/criu" cand dir

	if criu_usable "$wrapper"; then
		log "criu $(criu_version "$wrapper") at $wrapper passes criu check; skipping"
		return
	fi
	if [ ! -e "$wrapper" ] && criu_usable /usr/sbin/criu; then
		log "system criu $(criu_version /usr/sbin/criu) passes criu check; skipping"
		return
	fi

	cand=$(system_candidate criu)
	if version_ge "$cand" "$CRIU_MIN"; then
		log "system apt offers criu $cand; installing it"
		apt_install criu
		if [ -e "$wrapper" ] && grep -q '^# dockercr:' "$wrapper"; then
			log "removing $wrapper so PATH finds the system criu"
			rm -f -- "$wrapper"
		fi
		criu_usable /usr/sbin/criu ||
			die "system criu $(criu_version /usr/sbin/criu) fails criu check"
		return
	fi

	log "system apt offers criu ${cand:-none} (< $CRIU_MIN); using a private prefix"
	PAPT="$DOCKERCR_PREFIX/apt"
	papt_pick_suite
	dir="$DOCKERCR_PREFIX/criu-$(upstream_version "$NEW_VERSION")"

	APTRUN=papt
	# shellcheck disable=SC2046
	unpack "$dir" all $(closure criu libcompel1)
	# apt's binary caches of testing's lists are large and rebuilt on use.
	rm -f -- "$PAPT"/cache/*.bin
	write_wrapper "$wrapper" "$dir"

	version_ge "$(criu_version "$wrapper")" "$CRIU_MIN" ||
		die "$wrapper reports criu '$(criu_version "$wrapper")', want >= $CRIU_MIN"
	"$wrapper" check || die "$wrapper check failed"
	log "installed criu $(criu_version "$wrapper") in $dir, wrapper $wrapper"
}

# old_lib_deps VERSION: the library packages criu VERSION depends on. Its
# python and other tool dependencies are left out: only the binary runs.
old_lib_deps() {
	$APTRUN apt-cache show "criu=$1" |
		awk -F': ' '$1 == "Depends" && !n++ { print $2 }' |
		tr ',' '\n' | sed 's/[|(].*//; s/:any//; s/[[:space:]]//g' |
		grep '^lib' || true
}

install_old_criu() {
	local wrapper="$DOCKERCR_PREFIX/bin/criu-old"
	local dir="$DOCKERCR_PREFIX/criu-$CRIU_OLD" cand libs

	if [ "$(criu_version "$wrapper")" = "$CRIU_OLD" ]; then
		log "old criu $CRIU_OLD at $wrapper; skipping"
		return
	fi

	APTRUN="run_system_apt"
	cand=$(system_candidate criu)
	if [ "$(upstream_version "$cand")" != "$CRIU_OLD" ]; then
		log "system apt offers criu ${cand:-none}; reading bookworm privately"
		PAPT="$DOCKERCR_PREFIX/apt-bookworm"
		papt_init "$PAPT" bookworm
		papt apt-get update -q >"$PAPT/update.log" 2>&1 ||
			die "private apt-get update for bookworm failed (log: $PAPT/update.log)"
		APTRUN=papt
		cand=$(papt_candidate criu)
		[ "$(upstream_version "$cand")" = "$CRIU_OLD" ] ||
			die "bookworm offers criu ${cand:-none}, want $CRIU_OLD"
	fi

	libs=$(old_lib_deps "$cand")
	[ -n "$libs" ] || die "could not read the library dependencies of criu $cand"
	# shellcheck disable=SC2046,SC2086
	unpack "$dir" libs "criu=$cand" $(closure $libs)
	[ "$APTRUN" != papt ] || rm -f -- "$PAPT"/cache/*.bin
	write_wrapper "$wrapper" "$dir"

	[ "$(criu_version "$wrapper")" = "$CRIU_OLD" ] ||
		die "$wrapper reports '$(criu_version "$wrapper")', want $CRIU_OLD"
	log "installed old criu $CRIU_OLD in $dir, wrapper $wrapper (not on PATH)"
}

go_modules() {
	local go
	go=$(command -v go || true)
	[ -n "$go" ] || [ ! -x /usr/local/go/bin/go ] || go=/usr/local/go/bin/go
	[ -n "$go" ] || die "no Go toolchain on PATH or in /usr/local/go; install Go >= 1.26 (go.mod)"

	log "go mod download ($("$go" env GOVERSION))"
	(cd "$ROOT" && "$go" mod download) || die "go mod download failed"
}

# CHECKPOINTCTL_VERSION is the checkpointctl the archive tests read our
# exports with. v1.7.0 needs go-criu v8.5.0, which the module proxy here
# does not serve.
CHECKPOINTCTL_VERSION=v1.6.0

# install_checkpointctl builds checkpointctl into $DOCKERCR_PREFIX/bin,
# unless a build of that version is there; go version -m reads the
# module version from the binary (a go install sets no -version).
install_checkpointctl() {
	local go bin="$DOCKERCR_PREFIX/bin/checkpointctl"
	go=$(command -v go || true)
	[ -n "$go" ] || [ ! -x /usr/local/go/bin/go ] || go=/usr/local/go/bin/go
	[ -n "$go" ] || die "no Go toolchain on PATH or in /usr/local/go; install Go >= 1.26 (go.mod)"

	if [ -x "$bin" ] && "$go" version -m "$bin" 2>/dev/null |
		awk '$1 == "mod" && $2 == "github.com/checkpoint-restore/checkpointctl" { print $3 }' |
		grep -qx "$CHECKPOINTCTL_VERSION"; then
		log "checkpointctl $CHECKPOINTCTL_VERSION present in $bin"
		return
	fi
	log "go install checkpointctl@$CHECKPOINTCTL_VERSION into $DOCKERCR_PREFIX/bin"
	mkdir -p "$DOCKERCR_PREFIX/bin"
	GOBIN="$DOCKERCR_PREFIX/bin" "$go" install \
		"github.com/checkpoint-restore/checkpointctl@$CHECKPOINTCTL_VERSION" ||
		die "go install checkpointctl@$CHECKPOINTCTL_VERSION failed"
}

# busybox_image imports the static busybox as a one-layer image, so the
# tests need no registry.
busybox_image() {
	local tmp bb applet

	if "$DOCKER" image inspect "$DOCKERCR_IMAGE" >/dev/null 2>&1; then
		log "image $DOCKERCR_IMAGE present"
		return
	fi

	bb=$(dpkg -L busybox-static | grep '/bin/busybox$' | head -n 1)
	[ -x "$bb" ] || die "busybox-static's busybox binary not found"
	tmp=$(mktemp -d)
	mkdir -p "$tmp/bin" "$tmp/tmp"
	chmod 1777 "$tmp/tmp"
	cp "$bb" "$tmp/bin/busybox"
	for applet in $("$bb" --list); do
		[ -e "$tmp/bin/$applet" ] || ln -s busybox "$tmp/bin/$applet"
	done

	log "importing $DOCKERCR_IMAGE from $bb"
	tar -C "$tmp" -c . | "$DOCKER" import - "$DOCKERCR_IMAGE" >/dev/null ||
		die "docker import of $DOCKERCR_IMAGE failed"
	rm -rf -- "$tmp"
}

main() {
	local t0=$SECONDS

	need_root
	multiarch

	# shellcheck disable=SC2086
	apt_install $PACKAGES
	install_criu
	install_old_criu
	go_modules
	install_checkpointctl
	"$ROOT/scripts/dockerd.sh" start
	busybox_image

	log "done in $((SECONDS - t0))s"
}

# Sourcing the file (for trying one step) defines the functions only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
