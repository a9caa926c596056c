#!/bin/sh
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
@AUDIT@

if [ ! -s "$known_hosts" ]; then
	echo "bottle-gate: '$name' is not served: no host key is pinned for its upstream; add known_host_key = \"<type> <base64>\" to its git entry in bottle.toml (ssh-keyscan prints it) and recreate the bottle"
	exit 1
fi

# A push needs no refresh first: the pre-receive hook scans it and forwards it
# under a lease on every ref, so the upstream itself refuses it when it moved
# (the hook then says to fetch and rebase), and a push fails when the upstream
# is unreachable. Refreshing here would only add a round trip to every push.
#
# A push needs room first: git writes its pack into the mirror before any hook
# sees it, and a disk that fills in the middle of that cuts the connection
# without a word of why (nothing is stored or forwarded then: git drops the
# push's quarantine). So a push is refused up front while the mirrors' disk has
# less free than this upstream's max_push_mb, the most a push may bring.
if [ "$service" = receive-pack ]; then
	# shellcheck disable=SC2046
	set -- $(df -Pk . 2>/dev/null | tail -n 1)
	free_kb=${4:-}
	case $free_kb in '' | *[!0-9]*) free_kb='' ;; esac
	if [ -n "$free_kb" ] && [ -n "$max_push_bytes" ] && [ $((free_kb * 1024)) -lt "$max_push_bytes" ]; then
		free_mb=$((free_kb / 1024))
		limit_mb=$((max_push_bytes / 1048576))
		audit push deny disk-full "push to $name refused: the gate's disk has $free_mb MiB free, less than the push limit of $limit_mb MiB"
		echo "bottle-gate: push to '$name' refused: the gate's disk has $free_mb MiB free, less than this upstream's push limit of $limit_mb MiB; free space on the engine's disk, or lower max_push_mb in its git entry in bottle.toml"
		exit 1
	fi
	exit 0
fi

unreachable() {
	audit fetch deny upstream-unreachable "fetch of $name refused: its upstream $url is unreachable ($1)"
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
	# `bottle status` shows each mirror's last refresh from this line.
	audit fetch allow refreshed "fetch of $name: the mirror was refreshed from $url"

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
