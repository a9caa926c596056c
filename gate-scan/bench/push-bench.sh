#!/bin/bash
# Times a push into a local bare "gate" three ways: no hook (direct), the old hook's
# `gitleaks git --log-opts="<tips> --not --all"`, and bottle-gate-scan; plus gitleaks alone
# over the same commits. Shapes: 500 commits, one large binary file, a wide merge.
#
#   gate-scan/bench/push-bench.sh [SCANNER] [RUNS]
#
# SCANNER defaults to the release build; RUNS (default 3) runs of each, the median shown.
set -euo pipefail
scanner=${1:-${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/bottle-gate-scan}
runs=${2:-3}
gitleaks=$(command -v gitleaks)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_NOSYSTEM=1 HOME=$work GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.invalid \
	GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.invalid
"$scanner" make-config --gitleaks "$gitleaks" --out "$work/gate.toml" >/dev/null

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# hook KIND GATE
hook() {
	case $1 in
	none) rm -f "$2/hooks/pre-receive"; return ;;
	old) cat >"$2/hooks/pre-receive" <<HOOK
#!/bin/sh
tips=
while read -r old new ref; do tips="\$tips \$new"; done
exec "$gitleaks" git --no-banner --no-color --redact --ignore-gitleaks-allow --platform none --log-opts="\${tips# } --not --all" . 2>/dev/null
HOOK
	;;
	new) printf '#!/bin/sh\nexec "%s" --config "%s" --gitleaks "%s" 2>/dev/null\n' \
		"$scanner" "$work/gate.toml" "$gitleaks" >"$2/hooks/pre-receive" ;;
	esac
	chmod +x "$2/hooks/pre-receive"
}

# time_push NAME KIND REFSPEC...: median seconds of a push of REFSPECs from $repo into a
# fresh copy of $base (the gate before the push).
time_push() {
	local kind=$1; shift
	for _ in $(seq "$runs"); do
		rm -rf "$work/gate.git"
		cp -a "$base" "$work/gate.git"
		hook "$kind" "$work/gate.git"
		local t0; t0=$(now)
		git -C "$repo" push -q "$work/gate.git" "$@" 2>/dev/null
		echo "$(now) - $t0" | bc
	done | median
}

# gitleaks alone over the commits new to $base (in $repo, no push).
time_gitleaks_alone() {
	local range=$1
	for _ in $(seq "$runs"); do
		local t0; t0=$(now)
		(cd "$repo" && "$gitleaks" git --no-banner --redact --log-opts="$range" . >/dev/null 2>&1) || true
		echo "$(now) - $t0" | bc
	done | median
}

report() {
	local name=$1 range=$2; shift 2
	local direct old new alone
	direct=$(time_push none "$@")
	old=$(time_push old "$@")
	new=$(time_push new "$@")
	alone=$(time_gitleaks_alone "$range")
	printf '%-22s direct %6.3f s  old hook %6.3f s  new hook %6.3f s  gitleaks alone %6.3f s  new/(direct+alone) %.2f\n' \
		"$name" "$direct" "$old" "$new" "$alone" "$(echo "$new / ($direct + $alone)" | bc -l)"
}

# --- 500 commits: a few source files edited in each, a new file every 5th ---
repo=$work/repo
git init -q -b main "$repo"
for f in 1 2 3 4; do seq 1 300 | sed "s/^/line $f /" >"$repo/src$f.txt"; done
git -C "$repo" add -A && git -C "$repo" commit -qm base
base=$work/base.git
git init -q --bare "$base"
git -C "$repo" push -q "$base" main
for i in $(seq 1 500); do
	f=$((i % 4 + 1))
	sed -i "$((i % 300 + 1))s/.*/line $f changed in commit $i/" "$repo/src$f.txt"
	[ $((i % 5)) -eq 0 ] && seq 1 40 | sed "s/^/new file $i line /" >"$repo/new$i.txt"
	git -C "$repo" add -A
	git -C "$repo" commit -qm "commit $i"
done
report "500 commits" "main --not $(git -C "$base" rev-parse main)" main

# --- a large binary file (32 MiB of random bytes) ---
base=$work/base2.git
rm -rf "$base"; git init -q --bare "$base"
git -C "$repo" push -q "$base" main
head -c $((32 << 20)) /dev/urandom >"$repo/large.bin"
git -C "$repo" add large.bin && git -C "$repo" commit -qm "large binary"
report "large binary (32 MiB)" "main --not $(git -C "$base" rev-parse main)" main

# --- a wide merge: 16 branches each editing 32 files, merged in one octopus commit ---
base=$work/base3.git
rm -rf "$base"; git init -q --bare "$base"
mkdir -p "$repo/wide"
for i in $(seq 1 512); do seq 1 50 | sed "s/^/wide $i line /" >"$repo/wide/f$i.txt"; done
git -C "$repo" add -A && git -C "$repo" commit -qm "wide base"
git -C "$repo" push -q "$base" main
branches=
for b in $(seq 1 16); do
	git -C "$repo" checkout -q -b "b$b" main
	for i in $(seq $(((b - 1) * 32 + 1)) $((b * 32))); do
		sed -i "7s/.*/branch $b edits file $i/" "$repo/wide/f$i.txt"
	done
	git -C "$repo" commit -qam "branch $b"
	branches="$branches b$b"
done
git -C "$repo" checkout -q main
# shellcheck disable=SC2086
git -C "$repo" merge -q --no-edit $branches >/dev/null
report "wide merge (16 x 32)" "main --not $(git -C "$base" rev-parse main)" main
