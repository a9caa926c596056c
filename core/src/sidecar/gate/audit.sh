# audit METHOD DECISION REASON DETAIL: one line of the bottle's audit log (the record schema of
# bottle-proxy-config: time, bottle, source, decision, reason, method, path, detail),
# appended to the gate's audit log, which the entrypoint copies to the container's
# standard output. Never a secret: callers pass names, refs and reasons. A failure to
# write is reported and changes no verdict.
audit() {
	# JSON string escapes for what a ref or message may hold: \ and " and tabs.
	a_detail=$(printf '%s' "$4" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' | tr '\n' ' ')
	a_name=$(printf '%s' "$name" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
	a_time=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
	printf '{"time":"%s","bottle":"%s","source":"gate","decision":"%s","reason":"%s","method":"%s","path":"%s","detail":"%s"}\n' \
		"$a_time" "${BOTTLE_GATE_BOTTLE:-}" "$2" "$3" "$1" "$a_name" "$a_detail" \
		>>"${BOTTLE_GATE_AUDIT:-/dev/null}" 2>/dev/null ||
		echo "bottle-gate: note: could not write the audit line ($2 $3)" >&2
}
