#!/bin/sh
# Runs bottle's benchmark (bench/, the bottle-bench crate) on a fresh Debian 12 machine,
# as root, with a Docker engine running: installs what it needs, builds bottle's images
# when missing or stale, builds release binaries, runs every measure, prints the table
# and writes the results as JSON.
#
#   ./scripts/bench.sh                      # every measure, 5 runs each after a warm-up
#   ./scripts/bench.sh --runs 9 --only clone,fetch_noop
#   ./scripts/bench.sh --lever-off persistent-ssh   # measure with one gate lever off
#   ./scripts/bench.sh --only proxy_latency,proxy_throughput,proxy_tunnels,proxy_memory
#                                           # the egress proxy against squid and tinyproxy
#   ./scripts/bench.sh --only cred_ttfb,cred_events
#                                           # the credential route against the API stand-in
#                                           # straight (loopback; runs bottle-web-fixture)
#   ./scripts/bench.sh --only push_scan,push_large,push_merge
#                                           # pushes of three shapes through the gate
#
# Options go to bottle-bench (./target/release/bottle-bench --help). The JSON goes to
# $BENCH_OUT, by default target/bench/results.json. Exits 1 when a target does not hold.
set -eu
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

./scripts/install-deps.sh
# docker-compose, for the up_compose comparison.
if ! command -v docker-compose >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "bench: docker-compose is missing; run this script as root (or apt-get install docker-compose)" >&2
		exit 1
	fi
	say "installing docker-compose"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
# squid and tinyproxy (Debian's), the egress proxy's peers in the proxy_* measures; run
# by bottle-bench as host processes on loopback, never as services.
for tool in squid tinyproxy; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		if [ "$(id -u)" -ne 0 ]; then
			echo "bench: $tool is missing; run this script as root (or apt-get install $tool)" >&2
			exit 1
		fi
		say "installing $tool"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >/dev/null
		# A package may start its service; the bench runs its own on loopback only.
		if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
			systemctl disable --now "$tool" >/dev/null 2>&1 || true
		fi
	fi
done
docker info >/dev/null 2>&1 || {
	echo "bench: the Docker engine is not reachable (is dockerd running? is DOCKER_HOST right?)" >&2
	exit 1
}

say "cargo build --release (bottle, bottle-bench)"
cargo build --release --quiet -p bottle -p bottle-bench
bin=${CARGO_TARGET_DIR:-target}/release
bin=$(cd "$bin" && pwd)
BOTTLE_SIDECAR_DIR=$(./scripts/build-sidecars.sh)
export BOTTLE_SIDECAR_DIR # bottle-bench's proxy measures run its bottle-proxy

say "bottle's images (bottle --backend docker image build: builds only what is missing or stale)"
(cd /tmp && "$bin/bottle" --backend docker image build)

out=${BENCH_OUT:-target/bench/results.json}
say "bottle-bench (load average now: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; other work on this machine skews the figures)"
exec "$bin/bottle-bench" --bottle "$bin/bottle" --out "$out" "$@"
