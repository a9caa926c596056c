#!/bin/sh
# The demo, from a fresh Debian 12 machine with a Docker engine: installs what bottle
# needs, builds it, and runs `bottle demo` (extra arguments are passed on, e.g. --keep).
set -eu
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
if ! docker info >/dev/null 2>&1; then
	echo "demo: the Docker engine is not reachable; start it (systemctl start docker) or set DOCKER_HOST" >&2
	exit 1
fi
echo "==> building bottle (cargo build --release)" >&2
cargo build --release --quiet --bin bottle
# The sidecar programs go into images as static executables; bottle finds them here.
BOTTLE_SIDECAR_DIR=$(./scripts/build-sidecars.sh)
export BOTTLE_SIDECAR_DIR
exec ./target/release/bottle demo "$@"
