#!/bin/sh
# image-exists.sh: checks whether a module image is in its registry with
# `crane digest`. Runs in ghcr.io/google/go-containerregistry/crane/debug
# (busybox sh at /busybox/sh, crane on PATH). Registry credentials: crane reads
# $DOCKER_CONFIG/config.json.
#
# Environment:
#   KMM_IMAGE         image reference (required)
#   KMM_INSECURE      "true": crane --insecure (plain HTTP or unverified TLS)
#   KMM_WAIT          "true": poll until the image exists, then exit 0
#   KMM_POLL_SECONDS  seconds between two polls with KMM_WAIT (default 10)
#   KMM_BUILD_JOB     name of the Job building the image, shown while waiting (optional)
#   KMM_STATE         state folder (default /kmm/state); without KMM_WAIT, the digest of an
#                     existing image is written to $KMM_STATE/exists
# Without KMM_WAIT it exits 0 whether the image exists or not; any error other
# than "not found" (authentication, network) is printed and read as "missing".
set -eu

log() { printf 'kmm: %s\n' "$*"; }
die() {
	printf 'kmm: %s\n' "$*" >&2
	exit 1
}

KMM_IMAGE=${KMM_IMAGE:-}
KMM_INSECURE=${KMM_INSECURE:-false}
KMM_WAIT=${KMM_WAIT:-false}
KMM_POLL_SECONDS=${KMM_POLL_SECONDS:-10}
KMM_BUILD_JOB=${KMM_BUILD_JOB:-}
KMM_STATE=${KMM_STATE:-/kmm/state}

[ -n "$KMM_IMAGE" ] || die "KMM_IMAGE is empty: set it to the image to look for"
command -v crane >/dev/null 2>&1 || die "crane is not on PATH: run this script in the crane debug image"

if [ "$KMM_INSECURE" = true ]; then
	set -- crane --insecure digest "$KMM_IMAGE"
else
	set -- crane digest "$KMM_IMAGE"
fi

output=
digest=
# check: runs crane digest; sets output (all crane printed) and digest
# (the last line of the form algorithm:hex). Returns crane's status.
check() {
	digest=
	status=0
	output=$("$@" 2>&1) || status=$?
	if [ "$status" -eq 0 ]; then
		while IFS= read -r l; do
			case $l in
			*[[:space:]]*) ;;
			*:*) digest=$l ;;
			esac
		done <<EOF
$output
EOF
	fi
	return "$status"
}

# not_found: whether output says that the image or its repository is missing.
not_found() {
	case $output in
	*MANIFEST_UNKNOWN* | *NAME_UNKNOWN* | *"404 Not Found"* | *"status code 404"* | *"not found"* | *"NOT_FOUND"*)
		return 0
		;;
	esac
	return 1
}

# print_output: crane's messages, one "kmm: crane: " line each.
print_output() {
	while IFS= read -r l; do
		if [ -n "$l" ]; then printf 'kmm: crane: %s\n' "$l" >&2; fi
	done <<EOF
$output
EOF
}

if [ "$KMM_WAIT" = true ]; then
	polls=0
	last_error=
	until check "$@"; do
		if [ $((polls % 30)) -eq 0 ]; then
			if [ -n "$KMM_BUILD_JOB" ]; then
				log "waiting for image $KMM_IMAGE (built by Job $KMM_BUILD_JOB)"
			else
				log "waiting for image $KMM_IMAGE"
			fi
		fi
		if ! not_found && [ "$output" != "$last_error" ]; then
			print_output
			last_error=$output
		fi
		polls=$((polls + 1))
		sleep "$KMM_POLL_SECONDS"
	done
	log "$KMM_IMAGE exists (${digest:-digest unknown})"
	exit 0
fi

if check "$@"; then
	mkdir -p "$KMM_STATE" || die "could not create the state folder $KMM_STATE"
	printf '%s\n' "$digest" >"$KMM_STATE/exists" || die "could not write $KMM_STATE/exists"
	log "$KMM_IMAGE exists ($digest): not rebuilt"
	exit 0
fi
if ! not_found; then
	print_output
	log "could not check $KMM_IMAGE (see crane's message above; check the pull secret and the registry): assuming it is missing"
fi
log "$KMM_IMAGE does not exist yet: building it"
exit 0
