#!/bin/sh
# unload.sh: unloads the module that load.sh loaded (KMM worker semantics).
# Run by load.sh on SIGTERM/SIGINT, or by a preStop hook. Runs under busybox sh,
# dash and bash.
#
# Environment (the same as load.sh; lists are newline-separated, empty lines are
# ignored, each entry is one argument):
#   KMM_ROOT             prefix of the module tree (default empty)
#   KMM_DIR_NAME         modprobe.dirName (default /opt); modprobe -d gets $KMM_ROOT$KMM_DIR_NAME
#   KMM_MODULE           modprobe.moduleName (empty with rawArgs)
#   KMM_UNLOAD_ARGS      list: modprobe.args.unload, given before the module name
#   KMM_RAW              "true" when rawArgs are used
#   KMM_RAW_UNLOAD       list: modprobe.rawArgs.unload, the whole modprobe argument list
#   KMM_LOADING_ORDER    list: modprobe.modulesLoadingOrder; unloaded in this order after the module
#   KMM_STATE            state folder (default /kmm/state); "loaded" is removed from it
#   KMM_SYS_MODULE       sysfs module folder (default /sys/module), as in load.sh
#   KMM_UNLOAD_WAIT      whole seconds (default 0: no wait). While the module (the first entry of
#                        modulesLoadingOrder) is in use, its refcnt in KMM_SYS_MODULE above 0 or
#                        its holders folder not empty, check again every second, for up to this
#                        long, before unloading: its users (its device plugin, workloads) get
#                        SIGTERM at the same time as the loader and release it while they stop.
#                        Not with rawArgs (they name no module to check). Any other value is
#                        warned about and read as 0
#   KMM_TERMINATION_LOG  file that receives the failure message, on one line and cut to 4096
#                        bytes, for the pod status (default /dev/termination-log, the
#                        container's terminationMessagePath); skipped when it cannot be written
#   KMM_SCRIPTS          folder holding common.sh, which is sourced (log, err, die, termination,
#                        sysfs_name) (default: the folder of this script)
set -eu

KMM_ROOT=${KMM_ROOT:-}
KMM_DIR_NAME=${KMM_DIR_NAME:-/opt}
KMM_MODULE=${KMM_MODULE:-}
KMM_UNLOAD_ARGS=${KMM_UNLOAD_ARGS:-}
KMM_RAW=${KMM_RAW:-false}
KMM_RAW_UNLOAD=${KMM_RAW_UNLOAD:-}
KMM_LOADING_ORDER=${KMM_LOADING_ORDER:-}
KMM_STATE=${KMM_STATE:-/kmm/state}
KMM_SYS_MODULE=${KMM_SYS_MODULE:-/sys/module}
KMM_UNLOAD_WAIT=${KMM_UNLOAD_WAIT:-0}
KMM_TERMINATION_LOG=${KMM_TERMINATION_LOG:-/dev/termination-log}
case $0 in
*/*) default_scripts=${0%/*} ;;
*) default_scripts=. ;;
esac
KMM_SCRIPTS=${KMM_SCRIPTS:-$default_scripts}

# log, err, die, termination, sysfs_name.
if [ ! -r "$KMM_SCRIPTS/common.sh" ]; then
	printf 'kmm: %s\n' "$KMM_SCRIPTS/common.sh is missing: it ships with this script (set KMM_SCRIPTS to their folder)" >&2
	exit 1
fi
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$KMM_SCRIPTS/common.sh"

# in_use: whether the module of $sysfs is in use: its refcnt is above 0 or its holders folder is
# not empty. Sets refcnt (a number, or "unknown") and holders (the holders' names).
in_use() {
	dir=$KMM_SYS_MODULE/$sysfs
	refcnt=
	if [ -r "$dir/refcnt" ]; then
		{ read -r refcnt <"$dir/refcnt"; } 2>/dev/null || :
	fi
	case $refcnt in
	'' | *[!0-9]*) refcnt=unknown ;;
	esac
	holders=
	if [ -d "$dir/holders" ]; then
		for f in "$dir/holders"/*; do
			if [ -e "$f" ]; then holders="$holders${holders:+ }${f##*/}"; fi
		done
	fi
	[ -n "$holders" ] || { [ "$refcnt" != unknown ] && [ "$refcnt" -gt 0 ]; }
}

case $KMM_UNLOAD_WAIT in
*[!0-9]*)
	err "warning: KMM_UNLOAD_WAIT is '$KMM_UNLOAD_WAIT', not a whole number of seconds: not waiting for the module's users"
	KMM_UNLOAD_WAIT=0
	;;
esac

if [ "$KMM_RAW" = true ]; then
	set --
	while IFS= read -r line; do
		if [ -n "$line" ]; then set -- "$@" "$line"; fi
	done <<EOF
$KMM_RAW_UNLOAD
EOF
	[ "$#" -gt 0 ] || die "rawArgs.unload is empty: set modprobe.rawArgs.unload to unload the modules"
	label="rawArgs.unload ($*)"
	if [ "$KMM_UNLOAD_WAIT" -gt 0 ]; then
		log "rawArgs: not waiting for the users of the modules to stop (KMM_UNLOAD_WAIT): rawArgs name no module to check"
	fi
	log "modprobe $*"
	modprobe "$@" </dev/null || die "could not unload $label (in use?): stop what uses it and try again"
else
	[ -n "$KMM_MODULE" ] || die "KMM_MODULE is empty: set modprobe.moduleName (or rawArgs)"
	moddir=$KMM_ROOT$KMM_DIR_NAME
	set -- -r -v -d "$moddir"
	while IFS= read -r line; do
		if [ -n "$line" ]; then set -- "$@" "$line"; fi
	done <<EOF
$KMM_UNLOAD_ARGS
EOF
	set -- "$@" "$KMM_MODULE"
	label=$KMM_MODULE
	first=true
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		if [ "$first" = true ]; then
			first=false
			continue
		fi
		set -- "$@" "$line"
		label="$label $line"
	done <<EOF
$KMM_LOADING_ORDER
EOF
	# The module's users get SIGTERM at the same time as this loader: give them
	# KMM_UNLOAD_WAIT seconds to release it.
	sysfs_name "$KMM_MODULE"
	waited=0
	if [ "$KMM_UNLOAD_WAIT" -gt 0 ] && in_use; then
		log "$KMM_MODULE is in use (refcnt $refcnt, held by [$holders]): waiting up to $KMM_UNLOAD_WAIT s for its users (the device plugin, workloads) to stop"
		while [ "$waited" -lt "$KMM_UNLOAD_WAIT" ]; do
			sleep 1
			waited=$((waited + 1))
			in_use || break
		done
		if ! in_use; then log "$KMM_MODULE is no longer in use after $waited s"; fi
	fi
	log "modprobe $*"
	if ! modprobe "$@" </dev/null; then
		if [ "$KMM_UNLOAD_WAIT" -gt 0 ] && in_use; then
			die "could not unload $KMM_MODULE: still in use after waiting $waited s (refcnt $refcnt, held by [$holders]): stop what uses it (the device plugin, workloads) and try again"
		fi
		die "could not unload $KMM_MODULE (in use?): stop what uses it and try again"
	fi
fi

rm -f "$KMM_STATE/loaded"
log "unloaded $label"
