#!/bin/sh
# bottle git-gate pre-receive hook. Rendered by bottle; the same for every upstream.
#
# Reads "<old> <new> <ref>" lines. First scans every commit the gate does not
# already have with gitleaks; any finding (or any gitleaks failure) rejects the
# whole push. Then forwards every ref upstream in one atomic push, each guarded by
# a lease on the value the gate last saw, so the upstream moves all at once or not
# at all. Only when that push succeeds does the gate's own ref move.
set -u

updates=$(cat)
[ -n "$updates" ] || exit 0

name=$PWD
@READ_FACTS@
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

# The tips to scan, and the push arguments: leases first, then refspecs.
tips=
set --
while read -r old new ref; do
	[ -n "$ref" ] || continue
	if is_zero "$old"; then
		set -- "$@" "--force-with-lease=$ref:"
	else
		set -- "$@" "--force-with-lease=$ref:$old"
	fi
	if ! is_zero "$new"; then
		tips="$tips $new"
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

if [ -n "$tips" ]; then
	# Only what is new: "--not --all" excludes every commit already on a ref here.
	# gitleaks exits 0 when git itself fails under it (it then scans nothing), so
	# its log is checked too: any error line rejects the push.
	echo "bottle-gate: scanning new commits with gitleaks" >&2
	log=$(mktemp)
	trap 'rm -f "$log"' EXIT
	gitleaks git --no-banner --no-color --redact --verbose --ignore-gitleaks-allow --platform none \
		--log-opts="${tips# } --not --all" . >&2 2>"$log"
	status=$?
	cat "$log" >&2
	if [ "$status" -ne 0 ] || grep -Eq '^[^ ]* (ERR|FTL) ' "$log"; then
		echo "bottle-gate: push to '$name' rejected: gitleaks reported the findings above (or failed)." >&2
		echo "bottle-gate: nothing was forwarded upstream. Remove the secret from the commits (rewrite them) and push again." >&2
		exit 1
	fi
fi

echo "bottle-gate: forwarding to the upstream of '$name'" >&2
if ! git push --atomic "$@" >&2; then
	echo "bottle-gate: the upstream of '$name' refused the push or could not be reached; nothing changed upstream or on the gate." >&2
	echo "bottle-gate: if the upstream moved, fetch, rebase and push again." >&2
	exit 1
fi
exit 0
