#!/bin/sh
# bottle git-gate pre-receive hook. Rendered by bottle; the same for every upstream.
#
# Reads "<old> <new> <ref>" lines. First the push scan: bottle-gate-scan reads
# every object the push brings that the gate does not already have (in git's
# quarantine, through this hook's environment) and runs gitleaks over them with
# the gate's own config, within the limits and with the accepted findings the
# entrypoint wrote into this repository's config; anything but a clean verdict
# (findings, a limit reached, a scan that failed or could not run) rejects the
# whole push. Then forwards every ref upstream in one atomic push, each guarded
# by a lease on the value the gate last saw, so the upstream moves all at once or
# not at all. Only when that push succeeds does the gate's own ref move.
set -u

updates=$(cat)
[ -n "$updates" ] || exit 0

name=$PWD
@READ_FACTS@
@AUDIT@
if [ ! -s "$known_hosts" ]; then
	echo "bottle-gate: push to '$name' refused: no host key is pinned for its upstream." >&2
	echo "bottle-gate: add known_host_key = \"<type> <base64>\" to the '$name' git entry in bottle.toml (ssh-keyscan -p PORT HOST prints it), then recreate the bottle." >&2
	exit 1
fi

is_zero() {
	case $1 in
	*[!0]*) return 1 ;;
	*) return 0 ;;
	esac
}

# The push arguments: leases first, then refspecs.
set --
while read -r old new ref; do
	[ -n "$ref" ] || continue
	if is_zero "$old"; then
		set -- "$@" "--force-with-lease=$ref:"
	else
		set -- "$@" "--force-with-lease=$ref:$old"
	fi
done <<EOF
$updates
EOF
# Push to the URL, not the remote's name: with a mirror fetch refspec, pushing to
# "origin" would also try to update the gate's own refs, which git forbids while
# the pushed objects are still in quarantine.
set -- "$@" "$url"
while read -r old new ref; do
	[ -n "$ref" ] || continue
	if is_zero "$new"; then
		set -- "$@" ":$ref"
	else
		set -- "$@" "$new:$ref"
	fi
done <<EOF
$updates
EOF

# scan: runs bottle-gate-scan on this push; its stderr (the findings, or why the
# push could not be judged) goes to the pusher. Its arguments are this function's
# own positional parameters, so the push's stay as they are.
scan() {
	set -- --config @SCAN_CONFIG@ --gitleaks @GITLEAKS@
	[ -z "$max_push_bytes" ] || set -- "$@" --max-push-bytes "$max_push_bytes"
	[ -z "$max_scan_bytes" ] || set -- "$@" --max-scan-bytes "$max_scan_bytes"
	[ -z "$scan_timeout" ] || set -- "$@" --timeout-secs "$scan_timeout"
	[ -z "$max_archive_depth" ] || set -- "$@" --max-archive-depth "$max_archive_depth"
	while IFS= read -r fp; do
		[ -z "$fp" ] || set -- "$@" --accept-fingerprint "$fp"
	done <<EOF
$accept_fingerprints
EOF
	while IFS= read -r re; do
		[ -z "$re" ] || set -- "$@" --accept-path "$re"
	done <<EOF
$accept_paths
EOF
	set -- "$@" --audit "${BOTTLE_GATE_AUDIT:-/dev/null}" --audit-bottle "${BOTTLE_GATE_BOTTLE:-}" --audit-repo "$name"
	printf '%s\n' "$updates" | @SCANNER@ "$@"
}

echo "bottle-gate: scanning what this push brings" >&2
scan >&2
status=$?
case $status in
0) ;;
1 | 2)
	# The scanner said why (the findings, or the limit and the key that raises it).
	exit 1
	;;
*)
	echo "bottle-gate: push to '$name' refused, nothing was forwarded upstream: the secret scan could not run (exit status $status); this is a fault of the gate, not of the push." >&2
	audit push deny scan-failed "push to $name refused, nothing forwarded: the secret scan could not run (exit status $status)"
	exit 1
	;;
esac

echo "bottle-gate: forwarding to the upstream of '$name'" >&2
refs=$(printf '%s\n' "$updates" | while read -r _ _ ref; do printf '%s ' "$ref"; done)
# The forward's output goes to the pusher, kept here too for what follows.
forwarded=$(git push --atomic "$@" 2>&1)
status=$?
[ -z "$forwarded" ] || printf '%s\n' "$forwarded" >&2
if [ "$status" -ne 0 ]; then
	# Two pushes that both passed their leases race for the upstream's ref lock; the
	# loser's upstream says "cannot lock ref ...: is at X but expected Y". That is the
	# lease refusing a stale push, not a fault: say so, lest it read like one.
	case $forwarded in
	*"but expected"*)
		echo "bottle-gate: another push reached the upstream of '$name' first (the lock error above is its lease refusing this push, not a fault)." >&2
		;;
	esac
	echo "bottle-gate: the upstream of '$name' refused the push or could not be reached; nothing changed upstream or on the gate." >&2
	echo "bottle-gate: if the upstream moved, fetch, rebase and push again." >&2
	audit push deny upstream-refused "push to $name scanned clean but refused by the upstream $url or not delivered: ${refs% }"
	exit 1
fi
audit push allow push-forwarded "push to $name scanned clean and forwarded to $url: ${refs% }"
exit 0
