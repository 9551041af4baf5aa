#!/bin/sh
# Fake buildctl-daemonless.sh: logs its arguments, and BUILDKITD_FLAGS to
# $FAKE_LOG.flags. FAKE_BUILDCTL_FAIL=1 makes it fail.
{
	printf '%s' "${0##*/}"
	for a in "$@"; do printf '\037%s' "$a"; done
	printf '\n'
} >>"$FAKE_LOG"
printf '%s\n' "${BUILDKITD_FLAGS-<unset>}" >>"$FAKE_LOG.flags"
if [ -n "${FAKE_BUILDCTL_FAIL:-}" ]; then
	echo "fake-buildctl: error: failed to solve" >&2
	exit 1
fi
