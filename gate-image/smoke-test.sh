#!/bin/sh
# shellcheck disable=SC2016  # single-quoted $... is meant to expand inside the container
# smoke-test.sh - check a built bottle-gate image against its contract.
#
# Static checks (config, users, modes, tools), a gitleaks scan that must find a
# planted secret, and a live check: a gate container gets a rendered
# entrypoint and a creds file copied in before start (as bottle does), serves
# a bare repo with git daemon, and another container runs git ls-remote
# against it over an internal network. Removes every container and network it
# creates.
#
# Env: BOTTLE_ENGINE (docker), GATE_IMAGE (bottle-gate:latest).
set -eu

engine=${BOTTLE_ENGINE:-docker}
image=${GATE_IMAGE:-bottle-gate:latest}
id=$$
net=bottle-gate-test-net-$id
gate=bottle-gate-test-$id
work=

log() { printf 'smoke-test: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
expect() { # expect WHAT GOT WANT
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
	log "ok: $1 = $3"
}

cleanup() {
	status=$?
	trap - EXIT HUP INT TERM
	if [ -n "$work" ] && [ -f "$work/containers" ]; then
		while read -r c; do "$engine" rm -f "$c" >/dev/null 2>&1 || true; done <"$work/containers"
	fi
	"$engine" network rm "$net" >/dev/null 2>&1 || true
	[ -z "$work" ] || rm -rf "$work"
	if [ "$status" = 0 ]; then log "PASS"; else log "failed (exit $status)"; fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' HUP INT TERM
work=$(mktemp -d)
: >"$work/containers"
track() { echo "$1" >>"$work/containers"; }

# sh_in CMD: run a shell command in a throwaway gate container (as the image's user).
sh_in() {
	c=bottle-gate-test-sh-$id-$(date +%s%N)
	track "$c"
	"$engine" run --name "$c" --network none --entrypoint /bin/sh "$image" -c "$1"
}

# --- image config ---------------------------------------------------------------
cfg() { "$engine" image inspect --format "$1" "$image"; }
expect User "$(cfg '{{.Config.User}}')" 10001:10001
expect WorkingDir "$(cfg '{{.Config.WorkingDir}}')" /git
expect Entrypoint "$(cfg '{{json .Config.Entrypoint}}')" '["/etc/bottle-gate/entrypoint"]'
expect ExposedPorts "$(cfg '{{json .Config.ExposedPorts}}')" '{"9418/tcp":{}}'
expect 'label bottle.image' "$(cfg '{{index .Config.Labels "bottle.image"}}')" gate

# --- contents ---------------------------------------------------------------------
expect 'gitleaks version' "$(sh_in 'gitleaks version')" 8.30.1
expect 'gitleaks sha256' "$(sh_in 'sha256sum /usr/local/bin/gitleaks | cut -d" " -f1')" \
	88f91962aa2f93ac6ab281d553b9e125f5197bbbce38f9f2437f7299c32e5509
expect 'gate config sha256' "$(sh_in 'sha256sum /usr/local/lib/bottle-gate/gitleaks.toml | cut -d" " -f1')" \
	7bf47babc9505700d53a85eceac7ba6e8f0f73134e2a9c069c40eaaf68ffebb1
expect 'bottle-gate-scan' "$(sh_in 'bottle-gate-scan --version | cut -d" " -f1')" bottle-gate-scan
expect id "$(sh_in 'id')" 'uid=10001(gate) gid=10001(gate) groups=10001(gate)'
expect 'passwd entry' "$(sh_in 'getent passwd gate')" 'gate:x:10001:10001:bottle git gate:/var/lib/bottle-gate:/usr/sbin/nologin'
expect HOME "$(sh_in 'echo $HOME')" /var/lib/bottle-gate
expect modes "$(sh_in 'stat -c "%n %u:%g %a" /git /var/lib/bottle-gate /etc/bottle-gate /etc/bottle-gate/creds /usr/local/bin/gitleaks | tr "\n" " "')" \
	'/git 10001:10001 755 /var/lib/bottle-gate 10001:10001 700 /etc/bottle-gate 0:0 755 /etc/bottle-gate/creds 10001:10001 700 /usr/local/bin/gitleaks 0:0 755 '
expect tools "$(sh_in 'for t in git ssh flock; do command -v $t; done; test -x "$(git --exec-path)/git-daemon" && echo git-daemon; test -s /etc/ssl/certs/ca-certificates.crt && echo ca-certificates' | tr '\n' ' ')" \
	'/usr/bin/git /usr/bin/ssh /usr/bin/flock git-daemon ca-certificates '
sh_in 'git daemon -h' 2>&1 | grep -q '^usage: git daemon' || fail "git daemon -h"
log "ok: git daemon -h prints its usage"

# --- gitleaks finds a planted secret -------------------------------------------------
rc=0
sh_in 'set -e; cd /git; git init -q -b main t; cd t
	git -c user.name=t -c user.email=t@t commit -q --allow-empty -m clean
	gitleaks git --no-banner --log-level error . >/dev/null || exit 10
	printf "token = \"ghp_%s\"\n" Xq7rT2kLm9PzW4vB8nHj3sDf6GaYc1EuKo5N > cfg.txt; git add cfg.txt
	git -c user.name=t -c user.email=t@t commit -q -m leak
	gitleaks git --no-banner --log-level error --exit-code 3 .' >/dev/null || rc=$?
expect 'gitleaks exit code (clean, then planted secret)' "$rc" 3

# --- live: rendered entrypoint + creds copied in before start, git daemon on 9418 ----------
"$engine" network create --internal "$net" >/dev/null
cat >"$work/entrypoint" <<'SH'
#!/bin/sh
set -eu
test "$(cat /etc/bottle-gate/creds/up.key)" = secret
git init -q --bare -b main /git/app.git
git -C /git/app.git -c user.name=g -c user.email=g@g commit-tree -m init "$(git -C /git/app.git mktree </dev/null)" |
	xargs git -C /git/app.git update-ref refs/heads/main
exec git daemon --reuseaddr --base-path=/git --export-all --listen=0.0.0.0 --port=9418 /git
SH
chmod 0755 "$work/entrypoint"
mkdir "$work/creds" && printf secret >"$work/creds/up.key" && chmod 0600 "$work/creds/up.key"
track "$gate"
"$engine" create --name "$gate" --network "$net" "$image" >/dev/null
tar -C "$work" --owner=0 --group=0 --numeric-owner -c entrypoint | "$engine" cp - "$gate:/etc/bottle-gate/"
tar -C "$work/creds" --owner=10001 --group=10001 --numeric-owner -c up.key | "$engine" cp - "$gate:/etc/bottle-gate/creds/"
"$engine" start "$gate" >/dev/null
client=bottle-gate-test-client-$id
track "$client"
out=
i=0
while :; do
	"$engine" rm -f "$client" >/dev/null 2>&1 || true
	if out=$("$engine" run --name "$client" --network "$net" --entrypoint git "$image" ls-remote "git://$gate/app.git" 2>&1); then
		break
	fi
	i=$((i + 1))
	if [ "$i" -gt 20 ] || [ "$("$engine" inspect -f '{{.State.Running}}' "$gate")" != true ]; then
		"$engine" logs "$gate" >&2 || true
		fail "git ls-remote git://$gate/app.git: $out"
	fi
	sleep 0.5
done
printf '%s\n' "$out" | grep -q '	refs/heads/main$' || fail "no refs/heads/main in: $out"
log "ok: git ls-remote git://$gate/app.git -> $out"
