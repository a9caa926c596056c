//! The git-gate's one script set: entrypoint, pre-receive hook, access hook.
//!
//! Every backend copies these same bytes into its gate; the host-level test runs them
//! directly under a temporary root. They are POSIX sh, pass `shellcheck` and `sh -n`, and
//! take every manifest value as a shell-quoted word ([`crate::quote::sh`]): nothing from a
//! manifest is pasted into a script unquoted. The hooks read per-repository facts (the
//! entry's name, its known_hosts path) from the bare repository's git config, written by the
//! entrypoint, so the hooks themselves hold no manifest values at all.

use crate::gate::GateLayout;
use crate::manifest::GitUpstream;
use crate::quote::{self, QuoteError};

/// The rendered scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSet {
    /// Creates the bare mirrors and execs `git daemon`.
    pub entrypoint: String,
    /// Scans pushed commits with gitleaks, then forwards every ref upstream atomically.
    pub pre_receive: String,
    /// Refreshes a mirror from its upstream before it is served; fails closed.
    pub access_hook: String,
}

/// The ssh command the gate uses for one upstream: its own key, its pinned host key, no
/// user or system ssh config, never a prompt.
pub fn ssh_command(layout: &GateLayout, name: &str) -> Result<String, QuoteError> {
    let key = layout.key(name);
    let known_hosts = layout.known_hosts(name);
    let identity = format!("IdentityFile={key}");
    let hosts = format!("UserKnownHostsFile={known_hosts}");
    quote::sh_join([
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        &identity,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        &hosts,
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=15",
    ])
}

/// Renders the script set for `upstreams` with the paths of `layout`.
pub fn render(layout: &GateLayout, upstreams: &[GitUpstream]) -> Result<ScriptSet, QuoteError> {
    Ok(ScriptSet {
        entrypoint: entrypoint(layout, upstreams)?,
        pre_receive: PRE_RECEIVE.to_owned(),
        access_hook: ACCESS_HOOK.to_owned(),
    })
}

fn entrypoint(layout: &GateLayout, upstreams: &[GitUpstream]) -> Result<String, QuoteError> {
    let mut calls = String::new();
    for up in upstreams {
        calls.push_str(&format!(
            "init_repo {} {} {} {}\n",
            quote::sh(&up.name)?,
            quote::sh(&up.url)?,
            quote::sh(&ssh_command(layout, &up.name)?)?,
            quote::sh(&layout.known_hosts(&up.name))?,
        ));
    }
    Ok(ENTRYPOINT
        .replace("@REPOS@", &quote::sh(&layout.repos_dir())?)
        .replace("@HOOKS@", &quote::sh(&layout.hooks_dir())?)
        .replace("@ACCESS_HOOK@", &quote::sh(&layout.access_hook())?)
        .replace("@INIT_REPOS@\n", &calls))
}

const ENTRYPOINT: &str = r#"#!/bin/sh
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

# init_repo NAME UPSTREAM_URL SSH_COMMAND KNOWN_HOSTS_FILE
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
	echo "bottle-gate: serving $1 (upstream $2)" >&2
}

mkdir -p "$repos"
@INIT_REPOS@
exec git daemon --reuseaddr --export-all --informative-errors --verbose \
	--enable=receive-pack --base-path="$repos" --access-hook="$access_hook" \
	"$@" "$repos"
"#;

const PRE_RECEIVE: &str = r#"#!/bin/sh
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

name=$(git config bottle-gate.name) || name=$(pwd)
known_hosts=$(git config bottle-gate.knownHosts) || known_hosts=
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
url=$(git config remote.origin.url)
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
"#;

const ACCESS_HOOK: &str = r#"#!/bin/sh
# bottle git-gate access hook: git daemon runs it before serving a repository,
# as: access-hook SERVICE REPO_PATH HOST CANONICAL_HOST IP PORT.
#
# Refreshes the mirror from its real upstream before every fetch and push, and
# refuses service when that fails, so the agent never works on stale data. The
# first line of stdout is what the agent's git shows when service is refused;
# everything else goes to stderr (the gate's log).
set -u

service=$1
repo=$2
case $service in
upload-pack | receive-pack) ;;
*) exit 0 ;;
esac

if ! cd "$repo" 2>/dev/null; then
	echo "bottle-gate: no repository $repo on this gate"
	exit 1
fi
name=$(git config bottle-gate.name) || name=$repo
known_hosts=$(git config bottle-gate.knownHosts) || known_hosts=
url=$(git config remote.origin.url) || url=unknown

if [ ! -s "$known_hosts" ]; then
	echo "bottle-gate: '$name' is not served: no host key is pinned for its upstream; add known_host_key = \"<type> <base64>\" to its git entry in bottle.toml (ssh-keyscan prints it) and recreate the bottle"
	exit 1
fi

if ! err=$(git fetch --quiet --prune origin 2>&1); then
	printf 'bottle-gate: fetch of %s failed:\n%s\n' "$url" "$err" >&2
	# The cause, without git's boilerplate around it (e.g. "ssh: Could not
	# resolve hostname ...", "Host key verification failed.").
	why=$(printf '%s\n' "$err" | sed -e '/^[[:space:]]*$/d' \
		-e '/^fatal: Could not read from remote repository/d' \
		-e '/^Please make sure you have the correct access rights/d' \
		-e '/^and the repository exists/d' | head -n 1)
	echo "bottle-gate: upstream $url of '$name' is unreachable; refusing to serve possibly stale data (${why:-no reason given})"
	exit 1
fi

# Until it is known, point HEAD at the upstream's default branch, so a clone
# checks out what a clone of the upstream would. (Whether HEAD resolves is no
# test: the mirror's initial HEAD names git's own default branch, which the
# upstream may also have without it being its default.)
if [ "$(git config --get bottle-gate.headSynced)" != true ]; then
	head=$(git ls-remote --symref origin HEAD 2>/dev/null |
		sed -n 's/^ref: \(refs\/[^[:space:]]*\)[[:space:]]*HEAD$/\1/p')
	if [ -n "$head" ]; then
		git symbolic-ref HEAD "$head"
		git config bottle-gate.headSynced true
	fi
fi
exit 0
"#;
