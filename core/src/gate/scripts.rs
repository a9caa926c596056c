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

/// How long the gate's persistent ssh connection to an upstream stays open after its last
/// use, in seconds.
pub const CONTROL_PERSIST_SECS: u32 = 120;

/// The ssh command the gate uses for one upstream: its own key, its pinned host key, no
/// user or system ssh config, never a prompt; and one persistent connection per upstream
/// (`ControlMaster`), so that a refresh does not pay for a new ssh handshake. The control
/// socket lives in the gate user's home, which no one else can enter, and belongs to this
/// entry alone (each entry has its own key). Keepalives (`ServerAliveInterval`) end a
/// connection whose upstream went silent, and the access hook checks before every refresh
/// that the upstream still accepts new connections.
pub fn ssh_command(layout: &GateLayout, name: &str) -> Result<String, QuoteError> {
    let mut options = vec![
        format!("IdentityFile={}", layout.key(name)),
        "IdentitiesOnly=yes".to_owned(),
        format!("UserKnownHostsFile={}", layout.known_hosts(name)),
        "GlobalKnownHostsFile=/dev/null".to_owned(),
        "StrictHostKeyChecking=yes".to_owned(),
        "BatchMode=yes".to_owned(),
        "ConnectTimeout=15".to_owned(),
    ];
    if let Some(control) = layout.control_path(name) {
        options.extend([
            "ControlMaster=auto".to_owned(),
            format!("ControlPath={control}"),
            format!("ControlPersist={CONTROL_PERSIST_SECS}"),
            "ServerAliveInterval=15".to_owned(),
            "ServerAliveCountMax=3".to_owned(),
        ]);
    }
    let mut words = vec!["ssh", "-F", "/dev/null"];
    for option in &options {
        words.extend(["-o", option.as_str()]);
    }
    quote::sh_join(words)
}

/// Renders the script set for `upstreams` with the paths of `layout`.
pub fn render(layout: &GateLayout, upstreams: &[GitUpstream]) -> Result<ScriptSet, QuoteError> {
    Ok(ScriptSet {
        entrypoint: entrypoint(layout, upstreams)?,
        pre_receive: PRE_RECEIVE.replace("@READ_FACTS@\n", READ_FACTS),
        access_hook: ACCESS_HOOK.replace("@READ_FACTS@\n", READ_FACTS),
    })
}

fn entrypoint(layout: &GateLayout, upstreams: &[GitUpstream]) -> Result<String, QuoteError> {
    let mut calls = String::new();
    for up in upstreams {
        calls.push_str(&format!(
            "init_repo {} {} {} {} {} {}\n",
            quote::sh(&up.name)?,
            quote::sh(&up.url)?,
            quote::sh(&ssh_command(layout, &up.name)?)?,
            quote::sh(&layout.known_hosts(&up.name))?,
            quote::sh(&up.host)?,
            quote::sh(&up.port.unwrap_or(22).to_string())?,
        ));
    }
    Ok(ENTRYPOINT
        .replace("@REPOS@", &quote::sh(&layout.repos_dir())?)
        .replace("@HOOKS@", &quote::sh(&layout.hooks_dir())?)
        .replace("@ACCESS_HOOK@", &quote::sh(&layout.access_hook())?)
        .replace("@CONTROL@", &quote::sh(&layout.control_dir())?)
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
control=@CONTROL@

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

mkdir -p "$repos"
# The gate's persistent ssh connections (their control sockets): its user's alone.
mkdir -p "$control"
chmod 0700 "$control"
@INIT_REPOS@
exec git daemon --reuseaddr --export-all --informative-errors --verbose \
	--enable=receive-pack --base-path="$repos" --access-hook="$access_hook" \
	"$@" "$repos"
"#;

/// The hooks' reading of a mirror's facts (written by the entrypoint into its config), in
/// one `git config` call: `name` (set by the hook beforehand, kept when the key is
/// missing), `known_hosts`, `url`, `host`, `port` and `head_synced`.
const READ_FACTS: &str = r#"# The mirror's facts, written by the entrypoint, read in one go (git prints the
# keys in lower case). Not every hook needs every one.
# shellcheck disable=SC2034
{
	known_hosts=''
	url=unknown
	host=''
	port=22
	head_synced=''
	while read -r key value; do
		case $key in
		bottle-gate.name) name=$value ;;
		bottle-gate.knownhosts) known_hosts=$value ;;
		bottle-gate.upstreamhost) host=$value ;;
		bottle-gate.upstreamport) port=$value ;;
		bottle-gate.headsynced) head_synced=$value ;;
		remote.origin.url) url=$value ;;
		esac
	done <<EOF
$(git config --get-regexp '^(bottle-gate\.|remote\.origin\.url$)')
EOF
}
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
"#;

const ACCESS_HOOK: &str = r#"#!/bin/sh
# bottle git-gate access hook: git daemon runs it before serving a repository,
# as: access-hook SERVICE REPO_PATH HOST CANONICAL_HOST IP PORT.
#
# Refreshes the mirror from its real upstream before every fetch (clone, fetch,
# pull, ls-remote), and refuses service when that fails, so the agent never
# works on stale data; a push is served once a host key is pinned. The
# first line of stdout is what the agent's git shows when service is refused;
# everything else goes to stderr (the gate's log).
#
# Fast without being stale:
# - Refreshes of one mirror run one at a time, under a lock, instead of racing
#   on its refs. A request that waited for the lock is served without a refresh
#   of its own only when a refresh that *started after the request arrived* has
#   succeeded meanwhile: that refresh saw everything the upstream had when the
#   request came in. For this, refreshes are numbered: a counter is raised just
#   before each one starts, and the number of the last one that succeeded is kept.
# - A refresh rides on the gate's persistent ssh connection to the upstream (see
#   core.sshCommand), so it pays no handshake. That connection can outlive the
#   upstream's listener, so first a new connection to the upstream's ssh port
#   must be accepted; when it is not, the upstream counts as unreachable.
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

name=$repo
@READ_FACTS@

if [ ! -s "$known_hosts" ]; then
	echo "bottle-gate: '$name' is not served: no host key is pinned for its upstream; add known_host_key = \"<type> <base64>\" to its git entry in bottle.toml (ssh-keyscan prints it) and recreate the bottle"
	exit 1
fi

# A push needs no refresh first: the pre-receive hook scans it and forwards it
# under a lease on every ref, so the upstream itself refuses it when it moved
# (the hook then says to fetch and rebase), and a push fails when the upstream
# is unreachable. Refreshing here would only add a round trip to every push.
if [ "$service" = receive-pack ]; then
	exit 0
fi

unreachable() {
	echo "bottle-gate: upstream $url of '$name' is unreachable; refusing to serve possibly stale data ($1)"
	exit 1
}

# counter FILE: sets n to the number in FILE; empty when missing or garbled.
counter() {
	n=''
	read -r n 2>/dev/null <"$1" || n=''
	case $n in
	'' | *[!0-9]*) n='' ;;
	esac
}

# put FILE NUMBER: replaces FILE at once (a reader never sees it half written).
put() {
	printf '%s\n' "$2" >"$1.tmp" && mv -f "$1.tmp" "$1"
}

started=bottle-gate-refresh.started
succeeded=bottle-gate-refresh.succeeded
# The number of the last refresh that had started when this request arrived.
counter "$started"
seen=$n

refresh=yes
if command -v flock >/dev/null 2>&1; then
	exec 9>>bottle-gate-refresh.lock
	if ! flock -w 900 9; then
		echo "bottle-gate: '$name' is busy: a refresh from its upstream has been running for 15 minutes; try again later"
		exit 1
	fi
	counter "$succeeded"
	if [ -n "$seen" ] && [ -n "$n" ] && [ "$n" -gt "$seen" ]; then
		refresh=no
	fi
else
	echo "bottle-gate: flock is missing: concurrent refreshes of '$name' race" >&2
fi

if [ "$refresh" = yes ]; then
	counter "$started"
	number=$((${n:-0} + 1))
	# Without its number on record, this refresh must not stand in for others.
	put "$started" "$number" || number=

	# The probe runs while the fetch does; both must succeed. (When the fetch
	# succeeds over a connection that outlived the upstream's listener, what it
	# fetched is real, but service is refused all the same.)
	# shellcheck disable=SC2016
	timeout 15 bash -c ': <>"/dev/tcp/$1/$2"' bottle-gate "$host" "$port" \
		>bottle-gate-refresh.probe 2>&1 9>&- &
	probe=$!
	fetched=yes
	err=$(git fetch --quiet --prune --no-show-forced-updates --no-write-fetch-head origin 2>&1 9>&-) ||
		fetched=no
	if ! wait "$probe"; then
		why=$(sed -n '1{s/^bottle-gate: //;s/^line [0-9]*: //;p;}' bottle-gate-refresh.probe)
		why="cannot connect to $host port $port: ${why:-no answer within 15 s}"
		printf 'bottle-gate: fetch of %s failed: %s\n' "$url" "$why" >&2
		unreachable "$why"
	fi
	if [ "$fetched" = no ]; then
		printf 'bottle-gate: fetch of %s failed:\n%s\n' "$url" "$err" >&2
		# The cause, without git's boilerplate around it (e.g. "ssh: Could not
		# resolve hostname ...", "Host key verification failed.").
		why=$(printf '%s\n' "$err" | sed -e '/^[[:space:]]*$/d' \
			-e '/^fatal: Could not read from remote repository/d' \
			-e '/^Please make sure you have the correct access rights/d' \
			-e '/^and the repository exists/d' | head -n 1)
		unreachable "${why:-no reason given}"
	fi
	if [ -n "$number" ]; then
		put "$succeeded" "$number" || true
	fi

	# A clone is served with less work from a pack with a reachability bitmap
	# (no walk over every object). The first refresh brings the whole history in
	# a pack without one: write it then, once. (git's automatic gc keeps one.)
	set -- objects/pack/*.bitmap
	if [ ! -e "$1" ] && [ -n "$(git for-each-ref --count=1 2>/dev/null)" ]; then
		git repack -a -d -b -q >&2 9>&- ||
			echo "bottle-gate: writing a bitmap for '$name' failed; it is served without one" >&2
	fi
fi

# Until it is known, point HEAD at the upstream's default branch, so a clone
# checks out what a clone of the upstream would. (Whether HEAD resolves is no
# test: the mirror's initial HEAD names git's own default branch, which the
# upstream may also have without it being its default.)
if [ "$head_synced" != true ]; then
	head=$(git ls-remote --symref origin HEAD 2>/dev/null 9>&- |
		sed -n 's/^ref: \(refs\/[^[:space:]]*\)[[:space:]]*HEAD$/\1/p')
	if [ -n "$head" ]; then
		git symbolic-ref HEAD "$head"
		git config bottle-gate.headSynced true
	fi
fi
exit 0
"#;
