#!/bin/sh
# Runs every check CI runs, on a fresh Debian 12 machine with a Docker engine:
# installs what the tests need, then formatting, lints, and the whole test suite.
set -eu
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

# rustfmt and clippy ship with the toolchain here; add them where rustup lacks them.
if command -v rustup >/dev/null 2>&1; then
	rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Podman, rootful (root's API service) and rootless (an unprivileged user made here,
# with its own service), for the podman backend's tests.
./scripts/setup-podman.sh --rootless bottle-rl

# The engine tests need a Docker engine. On CI its absence fails the run; locally
# they skip with a loud message.
if docker info >/dev/null 2>&1; then
	echo "==> building bottle's images (bottle image build)" >&2
	cargo build --quiet --bin bottle
	./target/debug/bottle --backend docker image build
elif [ "${CI:-}" = true ]; then
	echo "test: the Docker engine is not reachable, and CI needs it" >&2
	exit 1
else
	echo "!!!! test: no Docker engine: the engine tests will SKIP !!!!" >&2
fi

echo "==> cargo test" >&2
cargo test --workspace
