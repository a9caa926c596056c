#!/bin/sh
# make-base.sh - build bottle's local Debian base image without a registry.
#
# Builds a minimal Debian rootfs with debootstrap, trims it and imports it
# into the container engine as an image (default bottle-base:bookworm), or
# writes the rootfs as a tarball for a caller that imports it itself.
#
# Usage: make-base.sh [--name IMAGE] [--include PKG[,PKG...]]... [--tar-out PATH]
#                     [--no-upgrade] [--force] [-h|--help]
#
# Environment:
#   BOTTLE_DEBIAN_MIRROR           Debian mirror (default http://deb.debian.org/debian)
#   BOTTLE_DEBIAN_SECURITY_MIRROR  security mirror (default http://deb.debian.org/debian-security)
#   BOTTLE_ENGINE                  engine CLI used for import/inspect (default docker; podman works)
#   TMPDIR                         where the temporary rootfs is built (default /var/tmp)
#
# Needs root (debootstrap), debootstrap, tar, and the engine CLI unless --tar-out is given.
set -eu

prog=make-base
suite=bookworm
recipe_version=1
name=bottle-base:bookworm
# curl: what an agent (and the e2e suite) uses to reach hosts through the egress proxy.
base_includes=git,openssh-client,ca-certificates,curl
extra_includes=
tar_out=
upgrade=1
force=0
mirror=${BOTTLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${BOTTLE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
engine=${BOTTLE_ENGINE:-docker}
image_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# run CMD...: log and run a command; its output goes to stderr so that stdout
# carries only the import changes printed in --tar-out mode.
run() { log "+ $*"; "$@" >&2; }

usage() {
	sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p;}' "$0"
}

while [ $# -gt 0 ]; do
	case $1 in
	--name) [ $# -ge 2 ] || die "--name needs a value"; name=$2; shift 2 ;;
	--name=*) name=${1#--name=}; shift ;;
	--include) [ $# -ge 2 ] || die "--include needs a value"; extra_includes="$extra_includes,$2"; shift 2 ;;
	--include=*) extra_includes="$extra_includes,${1#--include=}"; shift ;;
	--tar-out) [ $# -ge 2 ] || die "--tar-out needs a value"; tar_out=$2; shift 2 ;;
	--tar-out=*) tar_out=${1#--tar-out=}; shift ;;
	--no-upgrade) upgrade=0; shift ;;
	--force) force=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

[ -n "$name" ] || die "--name must not be empty"

# Normalised, sorted, de-duplicated package list (comma separated, no spaces).
includes=$(printf '%s\n' "$base_includes,$extra_includes" | tr ' ' ',' | tr ',' '\n' | sed '/^$/d' | LC_ALL=C sort -u | paste -sd, -)
for pkg in $(printf '%s\n' "$includes" | tr ',' ' '); do
	case $pkg in
	*[!a-z0-9.+-]*) die "not a Debian package name: $pkg" ;;
	esac
done

# Identifies what the image was built from; used to skip needless rebuilds.
if [ "$upgrade" = 1 ]; then upg=upgraded; else upg=release; fi
recipe="$suite/$includes/$upg/v$recipe_version"
label_change="LABEL bottle.base.recipe=$recipe"
path_change="ENV PATH=$image_path"
cmd_change='CMD ["/bin/bash"]'

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap needs it)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found (apt-get install debootstrap)"

if [ -z "$tar_out" ]; then
	command -v "$engine" >/dev/null 2>&1 || die "engine CLI '$engine' not found (set BOTTLE_ENGINE)"
	if [ "$force" = 0 ] && have=$("$engine" image inspect --format '{{ index .Config.Labels "bottle.base.recipe" }}' "$name" 2>/dev/null); then
		if [ "$have" = "$recipe" ]; then
			log "$name already built from $recipe; nothing to do (use --force to rebuild)"
			exit 0
		fi
		log "$name exists but was built from '$have'; rebuilding"
	fi
fi

# --- temporary work area, removed on any exit -------------------------------
work=
cleanup() {
	status=$?
	trap - EXIT HUP INT TERM
	if [ -n "$work" ] && [ -d "$work" ]; then
		# Unmount anything debootstrap/chroot left mounted below the rootfs,
		# deepest first, before deleting it.
		awk -v p="$work/" 'index($2, p) == 1 { print $2 }' /proc/mounts | LC_ALL=C sort -r |
			while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
		rm -rf --one-file-system "$work" || log "warning: could not remove $work"
	fi
	if [ -n "$tar_out" ]; then rm -f "$tar_out.partial.$$"; fi
	[ "$status" = 0 ] || log "failed (exit $status)"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' HUP INT TERM

work=$(mktemp -d "${TMPDIR:-/var/tmp}/bottle-base.XXXXXX")
root=$work/rootfs
log "building $suite rootfs in $root"
log "packages: $includes"
log "mirror: $mirror"

# --- bootstrap ---------------------------------------------------------------
start=$(date +%s)
run debootstrap --variant=minbase --include="$includes" "$suite" "$root" "$mirror"

# --- configuration for later apt use inside images (FROM this base) ----------
cat >"$root/etc/dpkg/dpkg.cfg.d/bottle-minimize" <<'CFG'
# bottle: do not install documentation, manuals or translations.
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
path-exclude=/usr/share/linda/*
CFG
cat >"$root/etc/apt/apt.conf.d/bottle-minimize" <<'CFG'
// bottle: keep images small.
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
CFG

# --- security and point-release updates (debootstrap installs only the release suite)
cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
SRC
if [ "$upgrade" = 1 ]; then
	log "applying $suite-updates and $suite-security"
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 0755 "$root/usr/sbin/policy-rc.d"
	run chroot "$root" apt-get -q update
	run chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -q -y \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		--no-install-recommends dist-upgrade
	rm -f "$root/usr/sbin/policy-rc.d"
fi
run chroot "$root" apt-get clean

# --- trim --------------------------------------------------------------------
log "trimming rootfs"
before=$(du -sk "$root" | cut -f1)
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
	"$root"/var/lib/dpkg/*-old "$root"/var/cache/ldconfig/aux-cache
# Documentation: keep only the copyright files.
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian "$root"/usr/share/linda
# Translations: keep none; the C/C.UTF-8 locales live in /usr/lib/locale.
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find "$root/usr/lib/locale" -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true
# Logs: keep the files, drop their contents.
find "$root/var/log" -type f -exec truncate -s 0 {} +
# Host files debootstrap copied in, host keys, runtime state.
: >"$root/etc/resolv.conf"
echo localhost >"$root/etc/hostname"
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id" 2>/dev/null || true
rm -rf "${root:?}"/dev/* "${root:?}"/proc/* "${root:?}"/sys/* "${root:?}"/run/* "${root:?}"/tmp/* "${root:?}"/var/tmp/*
after=$(du -sk "$root" | cut -f1)
log "rootfs: $((before / 1024)) MiB before trimming, $((after / 1024)) MiB after"

# --- output ------------------------------------------------------------------
if [ -n "$tar_out" ]; then
	log "+ tar -C $root --numeric-owner -c . > $tar_out"
	tar -C "$root" --numeric-owner -c . >"$tar_out.partial.$$"
	mv -f "$tar_out.partial.$$" "$tar_out"
	log "wrote $tar_out ($(du -k "$tar_out" | cut -f1) KiB) in $(($(date +%s) - start)) s"
	log "import it with these changes (docker import -c / engine API 'changes'):"
	printf '%s\n%s\n%s\n' "$path_change" "$label_change" "$cmd_change"
else
	log "+ tar -C $root --numeric-owner -c . | $engine import -c '$path_change' -c '$label_change' -c '$cmd_change' - $name"
	tar -C "$root" --numeric-owner -c . |
		"$engine" import -c "$path_change" -c "$label_change" -c "$cmd_change" - "$name" >/dev/null
	size=$("$engine" image inspect --format '{{.Size}}' "$name")
	log "imported $name ($((size / 1000000)) MB) in $(($(date +%s) - start)) s"
fi
