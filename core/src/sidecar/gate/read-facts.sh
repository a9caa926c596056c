# The mirror's facts, written by the entrypoint, read in one go (git prints the
# keys in lower case, then one space, then the value exactly). Not every hook
# needs every one. Multi-valued facts (the accepted findings) are collected one
# a line; the entrypoint refuses none, but validation keeps newlines out of them.
# shellcheck disable=SC2034
{
	known_hosts=''
	url=unknown
	host=''
	port=22
	head_synced=''
	max_push_bytes=''
	max_scan_bytes=''
	scan_timeout=''
	max_archive_depth=''
	accept_fingerprints=''
	accept_paths=''
	nl='
'
	while IFS= read -r line; do
		key=${line%% *}
		value=${line#"$key"}
		value=${value# }
		case $key in
		bottle-gate.name) name=$value ;;
		bottle-gate.knownhosts) known_hosts=$value ;;
		bottle-gate.upstreamhost) host=$value ;;
		bottle-gate.upstreamport) port=$value ;;
		bottle-gate.headsynced) head_synced=$value ;;
		bottle-gate.maxpushbytes) max_push_bytes=$value ;;
		bottle-gate.maxscanbytes) max_scan_bytes=$value ;;
		bottle-gate.scantimeout) scan_timeout=$value ;;
		bottle-gate.maxarchivedepth) max_archive_depth=$value ;;
		bottle-gate.acceptfingerprint) accept_fingerprints=$accept_fingerprints$value$nl ;;
		bottle-gate.acceptpath) accept_paths=$accept_paths$value$nl ;;
		remote.origin.url) url=$value ;;
		esac
	done <<EOF
$(git config --get-regexp '^(bottle-gate\.|remote\.origin\.url$)')
EOF
}
