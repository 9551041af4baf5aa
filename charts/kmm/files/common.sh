#!/bin/sh
# common.sh: helpers shared by load.sh and unload.sh, which source it from KMM_SCRIPTS (default:
# the folder of the sourcing script); it is not run on its own. Defines log and err (a "kmm: "
# line on stdout, on stderr), die (err, the termination message, exit 1), termination and
# sysfs_name. Runs under busybox sh, dash and bash.
#
# Environment (set by the sourcing script before any of these functions is called):
#   KMM_TERMINATION_LOG  file that receives the message of a failure (termination, die)
# Sourcing it repeats the scripts' own set -eu, so that it holds for this file's code too.
set -eu

log() { printf 'kmm: %s\n' "$*"; }
err() { printf 'kmm: %s\n' "$*" >&2; }
die() {
	err "$@"
	termination "$*"
	exit 1
}

# termination MESSAGE: writes MESSAGE, its newlines made blanks and cut to its first 4096 bytes
# (what the kubelet reads), as the container's termination message. A file that cannot be
# written is skipped: this never fails.
termination() {
	(
		LC_ALL=C
		export LC_ALL
		nl='
'
		rest=$*
		msg=
		while :; do
			case $rest in
			*"$nl"*)
				msg="$msg${rest%%"$nl"*} "
				rest=${rest#*"$nl"}
				;;
			*)
				msg=$msg$rest
				break
				;;
			esac
		done
		if [ "${#msg}" -gt 4096 ]; then
			bytes='?'
			while [ "${#bytes}" -lt 4096 ]; do bytes=$bytes$bytes; done
			# shellcheck disable=SC2295 # $bytes is meant as a pattern: any 4096 bytes
			msg=${msg%"${msg#$bytes}"}
		fi
		printf '%s' "$msg" >"$KMM_TERMINATION_LOG"
	) 2>/dev/null || :
}

# sysfs_name NAME: sets sysfs to the /sys/module entry of NAME (the kernel uses _ for -).
sysfs_name() {
	rest=$1
	sysfs=
	while :; do
		case $rest in
		*-*)
			sysfs=$sysfs${rest%%-*}_
			rest=${rest#*-}
			;;
		*)
			sysfs=$sysfs$rest
			break
			;;
		esac
	done
}
