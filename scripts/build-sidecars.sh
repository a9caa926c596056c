#!/bin/sh
# Builds bottle's sidecar programs (bottle-proxy, bottle-gate-scan) and its web fixture
# (bottle-web-fixture, for the demo and tests) as static executables, the form bottle's
# image builds take them in: they run on the images' Debian 12 base whatever host built
# them. Prints the directory they are in; point BOTTLE_SIDECAR_DIR at it (a bottle built
# in this tree also finds them there by itself).
#
# Only the gnu target is installed here, so "static" is glibc's crt-static; the explicit
# --target keeps the flag off build scripts and proc-macros, which must stay dynamic.
set -eu
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
programs="bottle-proxy bottle-gate-scan bottle-web-fixture"
echo "==> building the static sidecar programs ($programs)" >&2
set --
for p in $programs; do set -- "$@" -p "$p"; done
RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release --locked \
	"$@" --target "$target"
dir="${CARGO_TARGET_DIR:-$(pwd)/target}/$target/release"
# ldd says "statically linked" (static-pie) or "not a dynamic executable"; a dynamic
# one lists its libraries with "=>".
for p in $programs; do
	if ldd "$dir/$p" 2>&1 | grep -q '=>'; then
		echo "build-sidecars: $dir/$p is not static" >&2
		exit 1
	fi
done
echo "$dir"
