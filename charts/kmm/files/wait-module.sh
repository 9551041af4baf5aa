#!/bin/sh
# wait-module.sh: device plugin init container; returns once the kernel module is
# loaded on this node (its /sys/module entry exists). It waits without a timeout.
# Runs under busybox sh, dash and bash.
#
# Environment:
#   KMM_MODULE        module name (required); - is read as _ like the kernel does
#   KMM_SYS_MODULE    host /sys/module as mounted in the container (default /host/sys/module)
#   KMM_POLL_SECONDS  seconds between two checks, fractions allowed (default 2)
set -eu

die() {
	printf 'kmm: %s\n' "$*" >&2
	exit 1
}

KMM_MODULE=${KMM_MODULE:-}
KMM_SYS_MODULE=${KMM_SYS_MODULE:-/host/sys/module}
KMM_POLL_SECONDS=${KMM_POLL_SECONDS:-2}
[ -n "$KMM_MODULE" ] || die "KMM_MODULE is empty: set it to the module the device plugin needs"

rest=$KMM_MODULE
name=
while :; do
	case $rest in
	*-*)
		name=$name${rest%%-*}_
		rest=${rest#*-}
		;;
	*)
		name=$name$rest
		break
		;;
	esac
done

polls=0
while [ ! -d "$KMM_SYS_MODULE/$name" ]; do
	if [ $((polls % 30)) -eq 0 ]; then
		printf 'kmm: waiting for module %s to be loaded on this node\n' "$KMM_MODULE"
	fi
	polls=$((polls + 1))
	sleep "$KMM_POLL_SECONDS"
done
printf 'kmm: module %s is loaded\n' "$KMM_MODULE"
