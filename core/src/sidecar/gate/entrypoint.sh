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

# internal_addresses ROUTES ADDRESSES: of ADDRESSES (IPv4, space-separated), those on a
# network whose interface does not carry a default route, per ROUTES (the format of
# /proc/net/route, whose addresses and masks are 32-bit little-endian hex). The gate sits
# on the bottle's internal network, which has no route out, and on its egress network,
# which carries the default route: this finds its address on the internal one, where the
# agent is, so the egress side never sees the gate's port. Plain sh: the image has no awk.
internal_addresses() {
	routes=$1
	defaults=
	while read -r iface dest _ _ _ _ _ mask _; do
		if [ "$dest" = 00000000 ] && [ "$mask" = 00000000 ]; then
			defaults="$defaults $iface "
		fi
	done <"$routes"
	found=
	for a in $2; do
		case $a in *[!0-9.]* | *.*.*.*.* | .* | *. | *..*) continue ;; esac
		old_ifs=$IFS
		IFS=.
		# shellcheck disable=SC2086
		set -- $a
		IFS=$old_ifs
		if [ $# -ne 4 ] || [ "$1" -gt 255 ] || [ "$2" -gt 255 ] || [ "$3" -gt 255 ] ||
			[ "$4" -gt 255 ]; then
			continue
		fi
		le=$(($1 + $2 * 256 + $3 * 65536 + $4 * 16777216))
		while read -r iface dest gateway _ _ _ _ mask _; do
			case $dest$gateway$mask in *[!0-9A-Fa-f]*) continue ;; esac
			if [ "$gateway" != 00000000 ] || [ "$mask" = 00000000 ]; then
				continue
			fi
			case $defaults in *" $iface "*) continue ;; esac
			if [ $((le & 0x$mask)) -eq $((0x$dest)) ]; then
				found="$found $a"
				break
			fi
		done <"$routes"
	done
	echo "${found# }"
}

# Where git daemon listens: as given (the host-level test passes --listen), else the
# gate's internal addresses; a container with no such address (a Kubernetes Pod has one
# interface, and NetworkPolicies bound who reaches it) listens on all of its own.
listen=
case " $* " in
*" --listen="*) ;;
*)
	for a in $(internal_addresses /proc/net/route "$(hostname -I 2>/dev/null || :)"); do
		listen="$listen --listen=$a"
	done
	;;
esac
echo "bottle-gate: listening on ${listen:-every address}" >&2

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
# shellcheck disable=SC2086 # $listen: --listen=ADDRESS words, no spaces inside
exec git daemon --reuseaddr --export-all --informative-errors --verbose \
	--enable=receive-pack --base-path="$repos" --access-hook="$access_hook" \
	$listen "$@" "$repos"
