#!/bin/sh
# unload.sh: unloads the module that load.sh loaded (KMM worker semantics).
# Run by load.sh on SIGTERM/SIGINT, or by a preStop hook. Runs under busybox sh,
# dash and bash.
#
# Environment (the same as load.sh; lists are newline-separated, empty lines are
# ignored, each entry is one argument):
#   KMM_ROOT           prefix of the module tree (default empty)
#   KMM_DIR_NAME       modprobe.dirName (default /opt); modprobe -d gets $KMM_ROOT$KMM_DIR_NAME
#   KMM_MODULE         modprobe.moduleName (empty with rawArgs)
#   KMM_UNLOAD_ARGS    list: modprobe.args.unload, given before the module name
#   KMM_RAW            "true" when rawArgs are used
#   KMM_RAW_UNLOAD     list: modprobe.rawArgs.unload, the whole modprobe argument list
#   KMM_LOADING_ORDER  list: modprobe.modulesLoadingOrder; unloaded in this order after the module
#   KMM_STATE          state folder (default /kmm/state); "loaded" is removed from it
set -eu

log() { printf 'kmm: %s\n' "$*"; }
die() {
	printf 'kmm: %s\n' "$*" >&2
	exit 1
}

KMM_ROOT=${KMM_ROOT:-}
KMM_DIR_NAME=${KMM_DIR_NAME:-/opt}
KMM_MODULE=${KMM_MODULE:-}
KMM_UNLOAD_ARGS=${KMM_UNLOAD_ARGS:-}
KMM_RAW=${KMM_RAW:-false}
KMM_RAW_UNLOAD=${KMM_RAW_UNLOAD:-}
KMM_LOADING_ORDER=${KMM_LOADING_ORDER:-}
KMM_STATE=${KMM_STATE:-/kmm/state}

if [ "$KMM_RAW" = true ]; then
	set --
	while IFS= read -r line; do
		if [ -n "$line" ]; then set -- "$@" "$line"; fi
	done <<EOF
$KMM_RAW_UNLOAD
EOF
	[ "$#" -gt 0 ] || die "rawArgs.unload is empty: set modprobe.rawArgs.unload to unload the modules"
	label="rawArgs.unload ($*)"
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
	log "modprobe $*"
	modprobe "$@" </dev/null || die "could not unload $KMM_MODULE (in use?): stop what uses it and try again"
fi

rm -f "$KMM_STATE/loaded"
log "unloaded $label"
