# The mirror's facts, written by the entrypoint, read in one go (git prints the
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
