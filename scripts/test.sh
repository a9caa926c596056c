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

# The fuzz targets (fuzz/; docs/security.md, "Fuzzing"): each for a bounded time from its
# committed corpus (new inputs go to a scratch directory, so the tree stays clean). A crash
# or a hang fails the run; libFuzzer leaves the input in fuzz/artifacts/<target>/.
# cargo-fuzz needs nightly flags, which the stable toolchain accepts with RUSTC_BOOTSTRAP=1.
fuzz_seconds=${BOTTLE_FUZZ_SECONDS:-60}
echo "==> cargo fuzz: each target for $fuzz_seconds s" >&2
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build)
for target in $(cd fuzz && cargo fuzz list); do
	scratch=$(mktemp -d)
	fuzz_status=0
	(cd fuzz && RUSTC_BOOTSTRAP=1 timeout $((fuzz_seconds + 300)) cargo fuzz run "$target" "$scratch" "corpus/$target" -- \
		-max_total_time="$fuzz_seconds" -timeout=10 -print_final_stats=1) || fuzz_status=$?
	rm -rf "$scratch"
	if [ "$fuzz_status" -ne 0 ]; then
		echo "test: fuzz target $target failed (exit $fuzz_status); the input is in fuzz/artifacts/$target/" >&2
		exit 1
	fi
done
# Podman, rootful (root's API service) and rootless (an unprivileged user made here,
# with its own service), for the podman backend's tests and the end-to-end suite.
rootless_user=${BOTTLE_E2E_ROOTLESS_USER:-bottle-rl}
./scripts/setup-podman.sh --rootless "$rootless_user"

# The engine tests need each engine's images in its own store (docker, root's podman,
# the rootless user's podman). On CI a missing engine fails the run; locally its tests
# skip with a loud message.
cargo build --quiet --bin bottle
bottle=$(pwd)/target/debug/bottle
# The sidecar programs, static, for the images; the tests find them through this too.
BOTTLE_SIDECAR_DIR=$(./scripts/build-sidecars.sh)
export BOTTLE_SIDECAR_DIR
uid=$(id -u "$rootless_user")
as_rootless() {
	runuser -u "$rootless_user" -- env -i HOME="$(getent passwd "$rootless_user" | cut -d: -f6)" \
		XDG_RUNTIME_DIR="/run/user/$uid" PATH=/usr/local/bin:/usr/bin:/bin "$@"
}
# The rootless user runs the binary from a copy when it cannot reach target/.
rootless_bottle=$bottle
if ! as_rootless test -x "$bottle"; then
	copy_dir=$(mktemp -d)
	cp "$bottle" "$copy_dir/bottle"
	cp "$BOTTLE_SIDECAR_DIR/bottle-proxy" "$BOTTLE_SIDECAR_DIR/bottle-gate-scan" \
		"$BOTTLE_SIDECAR_DIR/bottle-web-fixture" "$copy_dir/"
	chmod 0755 "$copy_dir" "$copy_dir"/*
	rootless_bottle=$copy_dir/bottle
fi
for engine in docker podman podman-rootless; do
	case $engine in
	docker) run='' cli=docker backend=docker bin=$bottle ;;
	podman) run='' cli=podman backend=podman bin=$bottle ;;
	podman-rootless) run=as_rootless cli=podman backend=podman bin=$rootless_bottle ;;
	esac
	if $run "$cli" info >/dev/null 2>&1; then
		echo "==> building bottle's images for $engine (bottle --backend $backend image build)" >&2
		(cd /tmp && $run "$bin" --backend "$backend" image build)
	elif [ "${CI:-}" = true ]; then
		echo "test: $engine is not reachable, and CI needs it" >&2
		exit 1
	else
		echo "!!!! test: $engine is not reachable: its engine tests will SKIP !!!!" >&2
	fi
done
[ "$rootless_bottle" = "$bottle" ] || rm -rf "$(dirname "$rootless_bottle")"

echo "==> cargo test (all but the end-to-end suite)" >&2
cargo test --workspace -- --skip e2e::
# The end-to-end suite waits on containers far more than it computes, and its harness
# bounds the bottles that exist at once (BOTTLE_E2E_JOBS, and one podman bottle per
# engine): more test threads than cores keep those slots full.
echo "==> cargo test: the end-to-end suite on docker, podman and rootless podman" >&2
cargo test --test integration e2e:: -- --test-threads="${BOTTLE_E2E_THREADS:-6}"
