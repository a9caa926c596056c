#!/bin/sh
# bottle git-gate entrypoint. Rendered by bottle: edit bottle.toml, not this file.
#
# Creates one bare mirror per upstream (first start only), points each at its
# upstream with the gate's own ssh key and pinned host key, then serves them all
# with git daemon. Arguments are passed on to git daemon (e.g. --port=N).
#
# Manifest values below are single-quoted literals on purpose: nothing in them
# expands.
# shellcheck disable=SC2016
set -eu

repos=@REPOS@
hooks=@HOOKS@
access_hook=@ACCESS_HOOK@
control=@CONTROL@
audit_log=@AUDIT_LOG@

# init_repo NAME UPSTREAM_URL SSH_COMMAND KNOWN_HOSTS_FILE UPSTREAM_HOST UPSTREAM_PORT
init_repo() {
	repo="$repos/$1.git"
	if [ ! -d "$repo" ]; then
		git init --quiet --bare "$repo"
		# --mirror=fetch: a fetch copies every upstream ref to the same name here.
		git -C "$repo" remote add --mirror=fetch origin "$2"
	fi
	git -C "$repo" config remote.origin.url "$2"
	git -C "$repo" config core.sshCommand "$3"
	git -C "$repo" config core.hooksPath "$hooks"
	git -C "$repo" config receive.fsckObjects true
	git -C "$repo" config bottle-gate.name "$1"
	git -C "$repo" config bottle-gate.knownHosts "$4"
	git -C "$repo" config bottle-gate.upstreamHost "$5"
	git -C "$repo" config bottle-gate.upstreamPort "$6"
	echo "bottle-gate: serving $1 (upstream $2)" >&2
}

# scan_facts NAME MAX_PUSH_BYTES MAX_SCAN_BYTES SCAN_TIMEOUT_S MAX_ARCHIVE_DEPTH PACK_BYTES
# The push scan's limits, for the pre-receive hook; and git's own bound on the pack
# it reads, so a huge pack is refused before it fills the disk.
scan_facts() {
	repo="$repos/$1.git"
	git -C "$repo" config bottle-gate.maxPushBytes "$2"
	git -C "$repo" config bottle-gate.maxScanBytes "$3"
	git -C "$repo" config bottle-gate.scanTimeout "$4"
	git -C "$repo" config bottle-gate.maxArchiveDepth "$5"
	git -C "$repo" config receive.maxInputSize "$6"
	# The accepted findings are set anew on every start: the manifest's, no others.
	git -C "$repo" config --unset-all bottle-gate.acceptFingerprint || true
	git -C "$repo" config --unset-all bottle-gate.acceptPath || true
}

# accept NAME KEY VALUE: one accepted finding (acceptFingerprint or acceptPath).
accept() {
	git -C "$repos/$1.git" config --add -- "bottle-gate.$2" "$3"
}

mkdir -p "$repos"
# The gate's persistent ssh connections (their control sockets): its user's alone.
mkdir -p "$control"
chmod 0700 "$control"
@INIT_REPOS@

# The audit log: the hooks append one JSON line per verdict (they learn where, and the
# bottle's name, from these variables, which git daemon hands down to them); a copy of
# every line goes to this container's standard output, which `bottle logs` reads. (The
# hooks' own output goes to the pusher, not here.)
BOTTLE_GATE_AUDIT=$audit_log
BOTTLE_GATE_BOTTLE=@BOTTLE@
export BOTTLE_GATE_AUDIT BOTTLE_GATE_BOTTLE
: >>"$audit_log"
tail -n 0 -F "$audit_log" 2>/dev/null &
exec git daemon --reuseaddr --export-all --informative-errors --verbose \
	--enable=receive-pack --base-path="$repos" --access-hook="$access_hook" \
	"$@" "$repos"
