#!/bin/sh
# setup-podman.sh - prepares a Debian 12 host for bottle's podman backend.
#
# Usage: setup-podman.sh [--rootless USER] [--rootfs] [--force-rootfs] [-h|--help]
#
#   (always)         rootful podman: Debian packages (podman, runc, catatonit),
#                    /etc/containers/containers.conf with the settings this kind of
#                    host needs, and root's API service on /run/podman/podman.sock.
#   --rootless USER  rootless podman for USER too: creates the user (useradd -m, which
#                    fills /etc/subuid and /etc/subgid), makes /dev/net/tun usable,
#                    makes XDG_RUNTIME_DIR=/run/user/UID (0700, owned by USER), writes
#                    ~USER/.config/containers/containers.conf and starts USER's API
#                    service on $XDG_RUNTIME_DIR/podman/podman.sock. Implies --rootfs.
#   --rootfs         makes bottle's base root filesystems (debootstrap, a few minutes,
#                    needs the Debian mirror) as tarballs in $BOTTLE_ROOTFS_DIR, from
#                    which bottle imports its base images through the API, as any user,
#                    without root. Skipped for a tarball that is already there.
#   --force-rootfs   makes them again even when they are there.
#
# Idempotent: what is already done is left alone. Run as root.
#
# Environment:
#   BOTTLE_ROOTFS_DIR  where the rootfs tarballs go (default /var/lib/bottle/rootfs)
#
# Without systemd the API services run as background processes started here (they do
# not survive a reboot: run this script again). With systemd, root's service is the
# podman.socket unit, and USER's is USER's podman.socket unit (lingering enabled).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
prog=setup-podman
rootless_user=
rootfs=0
force_rootfs=0
rootfs_dir=${BOTTLE_ROOTFS_DIR:-/var/lib/bottle/rootfs}

say() { printf '==> %s: %s\n' "$prog" "$*" >&2; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p;}' "$0"; }

while [ $# -gt 0 ]; do
	case $1 in
	--rootless) [ $# -ge 2 ] || die "--rootless needs a user name"; rootless_user=$2; rootfs=1; shift 2 ;;
	--rootless=*) rootless_user=${1#--rootless=}; rootfs=1; shift ;;
	--rootfs) rootfs=1; shift ;;
	--force-rootfs) rootfs=1; force_rootfs=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

[ "$(id -u)" = 0 ] || die "must run as root"
case $rootless_user in
*[!a-z0-9_-]*) die "not a user name: $rootless_user" ;;
esac

have_systemd() { [ -d /run/systemd/system ]; }

# --- packages ------------------------------------------------------------------
# catatonit is podman's init (containers created with init=true); runc is the OCI
# runtime (crun fails on hybrid cgroups); uidmap, slirp4netns and fuse-overlayfs are
# what rootless podman needs.
packages="podman runc catatonit uidmap slirp4netns fuse-overlayfs netavark aardvark-dns curl"
missing=
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	say "installing Debian packages:$missing"
	apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- containers.conf -----------------------------------------------------------
# default_ulimits = []: podman's default rlimits fail without CAP_SYS_RESOURCE.
# runtime = "runc": crun fails here ("cgroups in hybrid mode not supported").
# init_path: Debian's catatonit lives in /usr/bin, not where podman looks by default.
marker="# written by bottle's scripts/setup-podman.sh"
conf_text() {
	printf '%s\n' "$marker" \
		'[containers]' \
		'default_ulimits = []' \
		'init_path = "/usr/bin/catatonit"' \
		'' \
		'[engine]' \
		'runtime = "runc"'
}

# write_conf FILE OWNER: writes FILE unless it exists without our marker, in which
# case it must already carry the settings.
write_conf() {
	file=$1 owner=$2
	if [ -f "$file" ] && ! grep -qF "$marker" "$file"; then
		if grep -Eq '^[[:space:]]*default_ulimits[[:space:]]*=[[:space:]]*\[[[:space:]]*\]' "$file" &&
			grep -Eq '^[[:space:]]*runtime[[:space:]]*=[[:space:]]*"runc"' "$file"; then
			say "$file exists and has the settings bottle needs; left alone"
			return 0
		fi
		die "$file exists and was not written by this script; add these settings to it by hand:
$(conf_text | sed 1d)"
	fi
	want=$(conf_text)
	if [ -f "$file" ] && [ "$(cat "$file")" = "$want" ]; then
		return 0
	fi
	mkdir -p "$(dirname "$file")"
	printf '%s\n' "$want" >"$file"
	chown "$owner" "$file"
	say "wrote $file"
}

write_conf /etc/containers/containers.conf root:root

# --- firewall next to Docker ----------------------------------------------------
# Docker sets the FORWARD policy to DROP and, with bridge-nf-call-iptables, that
# policy also judges traffic between two containers on one podman bridge. netavark
# adds no ACCEPT for internal networks, so an agent could not reach its gate. Let
# traffic stay within podman bridges through DOCKER-USER, the chain Docker keeps for
# such rules. (Internal networks have no gateway, so this opens no way out.)
if command -v iptables >/dev/null 2>&1 && iptables -S DOCKER-USER >/dev/null 2>&1; then
	if iptables -C DOCKER-USER -i podman+ -o podman+ -j ACCEPT 2>/dev/null; then
		say "DOCKER-USER already lets traffic stay within podman bridges"
	else
		iptables -I DOCKER-USER -i podman+ -o podman+ -j ACCEPT
		say "added to DOCKER-USER: -i podman+ -o podman+ -j ACCEPT (Docker's FORWARD DROP blocked podman bridges)"
	fi
fi

# --- API services --------------------------------------------------------------
# ping SOCKET: whether a libpod API answers on SOCKET.
ping() {
	[ -S "$1" ] && [ "$(curl -s -m 5 --unix-socket "$1" http://d/v4.0.0/libpod/_ping 2>/dev/null)" = OK ]
}

wait_ping() {
	i=0
	while [ $i -lt 50 ]; do
		ping "$1" && return 0
		sleep 0.2
		i=$((i + 1))
	done
	die "no podman API answers on $1 (log: $2)"
}

root_sock=/run/podman/podman.sock
if ping "$root_sock"; then
	say "root's podman API answers on $root_sock"
elif have_systemd; then
	say "starting root's podman.socket unit"
	systemctl enable --now podman.socket
	wait_ping "$root_sock" "journalctl -u podman.service"
else
	say "starting root's podman API service on $root_sock (log /var/log/podman-service.log)"
	mkdir -p /run/podman
	rm -f "$root_sock"
	setsid podman system service --time=0 "unix://$root_sock" \
		</dev/null >>/var/log/podman-service.log 2>&1 &
	wait_ping "$root_sock" /var/log/podman-service.log
fi

# --- rootless ------------------------------------------------------------------
if [ -n "$rootless_user" ]; then
	user=$rootless_user
	if ! id -u "$user" >/dev/null 2>&1; then
		say "creating user $user"
		useradd -m -s /bin/sh "$user"
	fi
	uid=$(id -u "$user")
	gid=$(id -g "$user")
	home=$(getent passwd "$user" | cut -d: -f6)
	grep -q "^$user:" /etc/subuid || die "$user has no subordinate uids in /etc/subuid (usermod --add-subuids 100000-165535 $user)"
	grep -q "^$user:" /etc/subgid || die "$user has no subordinate gids in /etc/subgid (usermod --add-subgids 100000-165535 $user)"

	# slirp4netns opens /dev/net/tun in the user's namespace; here it is root-only.
	if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
		say "chmod 666 /dev/net/tun"
		chmod 666 /dev/net/tun
	fi

	run_dir=/run/user/$uid
	if have_systemd; then
		loginctl enable-linger "$user"
	fi
	if [ ! -d "$run_dir" ]; then
		say "making $run_dir"
		mkdir -p "$run_dir"
	fi
	chown "$uid:$gid" "$run_dir"
	chmod 0700 "$run_dir"

	mkdir -p "$home/.config/containers"
	chown "$uid:$gid" "$home/.config" "$home/.config/containers"
	write_conf "$home/.config/containers/containers.conf" "$uid:$gid"

	# Storage: without a storage.conf, rootless podman falls back to vfs here (/dev/fuse
	# is root-only, so fuse-overlayfs cannot run), which copies every layer in full.
	# Kernels from 5.11 on do overlay in a user namespace natively. Only for a store not
	# yet made: switching an existing one needs `podman system reset` (as the user).
	storage_conf=$home/.config/containers/storage.conf
	kernel=$(uname -r | sed 's/^\([0-9]*\)\.\([0-9]*\).*/\1 \2/')
	# shellcheck disable=SC2086
	set -- $kernel
	if [ ! -e "$storage_conf" ] && { [ "$1" -gt 5 ] || { [ "$1" -eq 5 ] && [ "$2" -ge 11 ]; }; }; then
		if [ -d "$home/.local/share/containers/storage/vfs" ]; then
			say "note: $user's container store already uses vfs (slow); to switch to native overlay: as $user, podman system reset, then run this script again"
		else
			printf '%s\n%s\n%s\n' "$marker" '[storage]' 'driver = "overlay"' >"$storage_conf"
			chown "$uid:$gid" "$storage_conf"
			say "wrote $storage_conf (native overlay)"
		fi
	fi

	user_sock=$run_dir/podman/podman.sock
	as_user() { runuser -u "$user" -- env HOME="$home" XDG_RUNTIME_DIR="$run_dir" "$@"; }
	if ping "$user_sock"; then
		say "$user's podman API answers on $user_sock"
	elif have_systemd; then
		say "starting $user's podman.socket unit"
		as_user DBUS_SESSION_BUS_ADDRESS="unix:path=$run_dir/bus" systemctl --user enable --now podman.socket
		wait_ping "$user_sock" "journalctl --user -u podman.service (as $user)"
	else
		log=$home/podman-service.log
		say "starting $user's podman API service on $user_sock (log $log)"
		as_user mkdir -p "$run_dir/podman"
		rm -f "$user_sock"
		# A subshell that execs: redirecting a shell function would leave copies of
		# this script's own descriptors open in the service.
		(cd "$home" && exec runuser -u "$user" -- env HOME="$home" XDG_RUNTIME_DIR="$run_dir" \
			setsid podman system service --time=0 "unix://$user_sock" </dev/null >>"$log" 2>&1) &
		wait_ping "$user_sock" "$log"
	fi
	say "rootless podman for $user: CONTAINER_HOST=unix://$user_sock (bottle finds it through XDG_RUNTIME_DIR=$run_dir)"
fi

# --- base root filesystems -----------------------------------------------------
# bottle-base:bookworm (git, openssh-client, ca-certificates) and, for the upstream
# fixture, bottle-base-sshd:bookworm (plus openssh-server). Each is a tarball
# NAME.tar (the image name with ':' and '/' as '_') and NAME.changes (the
# Dockerfile changes make-base.sh prints), world-readable, so any user's bottle can
# import it through the podman API.
if [ "$rootfs" = 1 ]; then
	mkdir -p "$rootfs_dir"
	chmod 0755 "$rootfs_dir"
	for spec in "bottle-base:bookworm:" "bottle-base-sshd:bookworm:openssh-server"; do
		name=${spec%:*}
		include=${spec##*:}
		file=$(printf '%s' "$name" | tr ':/' '__')
		tar=$rootfs_dir/$file.tar
		if [ "$force_rootfs" = 0 ] && [ -s "$tar" ] && [ -s "$rootfs_dir/$file.changes" ]; then
			say "$tar is there; left alone (--force-rootfs makes it again)"
			continue
		fi
		say "making the root filesystem of $name (debootstrap; a few minutes)"
		set -- --name "$name" --tar-out "$tar.new"
		[ -z "$include" ] || set -- "$@" --include "$include"
		sh "$here/gate-image/base/make-base.sh" "$@" >"$rootfs_dir/$file.changes.new"
		mv -f "$tar.new" "$tar"
		mv -f "$rootfs_dir/$file.changes.new" "$rootfs_dir/$file.changes"
		chmod 0644 "$tar" "$rootfs_dir/$file.changes"
		say "wrote $tar"
	done
fi
say "done"
