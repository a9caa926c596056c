#!/bin/sh
# Builds the static bottle-proxy and checks it: no dynamic dependency, and hickory
# resolves from a hosts-style file (no DNS query leaves loopback), then a real egress
# refusal through the static binary. Usage: proxy/scripts/check-static.sh
set -eu
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release -p bottle-proxy --target x86_64-unknown-linux-gnu
bin=$target/x86_64-unknown-linux-gnu/release/bottle-proxy
file "$bin"
if ldd "$bin" 2>&1 | grep -q 'not a dynamic executable\|statically linked'; then
  echo "static: ok"
else
  ldd "$bin"; echo "bottle-proxy is not static" >&2; exit 1
fi
dir=$(mktemp -d)
pid= web=
trap 'kill $pid $web 2>/dev/null || true; rm -rf "$dir"' EXIT
printf 'options timeout:1 attempts:1\n' > "$dir/resolv.conf"  # no name server: hosts only, no query
printf '127.0.0.1 hosted.test\n' > "$dir/hosts"
out=$("$bin" resolve hosted.test --resolv-conf "$dir/resolv.conf" --hosts "$dir/hosts")
echo "resolve hosted.test: $out"
[ "$out" = "127.0.0.1 loopback" ]
# Port 0 cannot be told to curl; pick a fixed loopback port for this check.
mkdir "$dir/www" && echo 'through the static proxy' > "$dir/www/index.html"
python3 -m http.server 39180 --bind 127.0.0.1 --directory "$dir/www" >/dev/null 2>&1 &
web=$!
printf '{"bottle":"dev","listen":["127.0.0.1:39128"],"allow":["hosted.test","served.test:39180"],"allow_private":["served.test"]}' > "$dir/egress.json"
printf '127.0.0.1 served.test\n' >> "$dir/hosts"
"$bin" egress --config "$dir/egress.json" --resolv-conf "$dir/resolv.conf" --hosts "$dir/hosts" \
  > "$dir/audit.jsonl" 2> "$dir/stderr" &
pid=$!
sleep 0.5
code=$(curl -s -o "$dir/body" -w '%{http_code}' -x http://127.0.0.1:39128 http://hosted.test/ || true)
echo "plain GET http://hosted.test/ through the static proxy: $code $(cat "$dir/body")"
[ "$code" = 403 ]
grep -q '"reason":"private-address"' "$dir/audit.jsonl"
# Allowed: plain HTTP forwarding, then a CONNECT tunnel (curl -p), both to loopback.
got=$(curl -sf -x http://127.0.0.1:39128 http://served.test:39180/)
echo "plain GET through the static proxy: $got"
[ "$got" = 'through the static proxy' ]
got=$(curl -sf -p -x http://127.0.0.1:39128 http://served.test:39180/)
echo "CONNECT tunnel through the static proxy: $got"
[ "$got" = 'through the static proxy' ]
kill -TERM "$pid"; wait "$pid" || true
echo "audit: $(cat "$dir/audit.jsonl")"
echo "check-static: ok"
