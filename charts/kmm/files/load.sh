#!/bin/sh
# load.sh: main process of a kmm module loader container (KMM worker semantics).
# Loads the module (and the dependencies of modulesLoadingOrder), then waits and
# unloads it on SIGTERM/SIGINT. Runs under busybox sh, dash and bash.
#
# Environment (lists are newline-separated, empty lines are ignored; each entry is
# one argument, spaces and quotes included):
#   KMM_KERNEL               kernel this loader is for; checked against `uname -r` when set
#   KMM_ROOT                 prefix of the module tree (default empty; node builds: /kmm/build/rootfs)
#   KMM_DIR_NAME             modprobe.dirName (default /opt); modprobe -d gets $KMM_ROOT$KMM_DIR_NAME
#   KMM_MODULE               modprobe.moduleName (empty with rawArgs)
#   KMM_PARAMETERS           list: modprobe.parameters, given after the module name
#   KMM_LOAD_ARGS            list: modprobe.args.load, given before the module name
#   KMM_UNLOAD_ARGS          list: modprobe.args.unload (used by unload.sh)
#   KMM_UNLOAD_WAIT          seconds unload.sh waits for the module's users to release it
#                            when this pod stops (not when it unloads a different version first)
#   KMM_RAW                  "true" when rawArgs are used
#   KMM_RAW_LOAD             list: modprobe.rawArgs.load, the whole modprobe argument list
#   KMM_RAW_UNLOAD           list: modprobe.rawArgs.unload (used by unload.sh)
#   KMM_LOADING_ORDER        list: modprobe.modulesLoadingOrder; first entry is the module itself,
#                            the others are loaded before it, last entry first
#   KMM_IN_TREE_REMOVE       list: in-tree modules to unload first when they are loaded
#   KMM_SYS_MODULE           sysfs module folder (default /sys/module)
#   KMM_FIRMWARE_PATH        modprobe.firmwarePath, a folder of the image tree under KMM_ROOT
#                            (empty: no firmware)
#   KMM_FIRMWARE_DIR         container folder where the host firmware folder is mounted
#                            (default /var/lib/firmware)
#   KMM_FIRMWARE_HOST_PATH   that folder's path on the host (default: KMM_FIRMWARE_DIR)
#   KMM_FIRMWARE_CLASS_PATH  file receiving the kernel firmware search path
#                            (default /kmm/firmware-class/path)
#   KMM_STATE                state folder (default /kmm/state); "loaded" is created there
#   KMM_UNLOAD_ON_STOP       "false" keeps the module loaded on SIGTERM/SIGINT (default true)
#   KMM_ONESHOT              "true": exit 0 once loaded instead of waiting
#   KMM_SCRIPTS              folder holding common.sh (sourced: log, err, die, termination,
#                            sysfs_name) and unload.sh (default: the folder of this script)
#   KMM_VERIFY_VERSION       "true": check that the module and each loading-order dependency in
#                            the kernel is the image's (srcversion, else version, of modinfo of
#                            the image's file against /sys/module/<name>); a different one loaded
#                            is unloaded first, or the load fails naming both versions and what
#                            holds it (default false; the chart sets loader.verifyVersion)
#   KMM_TERMINATION_LOG      file that receives the message of a failure, on one line and cut to
#                            4096 bytes, for the pod status (default /dev/termination-log, the
#                            container's terminationMessagePath); skipped when it cannot be written
set -eu

KMM_KERNEL=${KMM_KERNEL:-}
KMM_ROOT=${KMM_ROOT:-}
KMM_DIR_NAME=${KMM_DIR_NAME:-/opt}
KMM_MODULE=${KMM_MODULE:-}
KMM_PARAMETERS=${KMM_PARAMETERS:-}
KMM_LOAD_ARGS=${KMM_LOAD_ARGS:-}
KMM_RAW=${KMM_RAW:-false}
KMM_RAW_LOAD=${KMM_RAW_LOAD:-}
KMM_LOADING_ORDER=${KMM_LOADING_ORDER:-}
KMM_IN_TREE_REMOVE=${KMM_IN_TREE_REMOVE:-}
KMM_SYS_MODULE=${KMM_SYS_MODULE:-/sys/module}
KMM_FIRMWARE_PATH=${KMM_FIRMWARE_PATH:-}
KMM_FIRMWARE_DIR=${KMM_FIRMWARE_DIR:-/var/lib/firmware}
KMM_FIRMWARE_HOST_PATH=${KMM_FIRMWARE_HOST_PATH:-$KMM_FIRMWARE_DIR}
KMM_FIRMWARE_CLASS_PATH=${KMM_FIRMWARE_CLASS_PATH:-/kmm/firmware-class/path}
KMM_STATE=${KMM_STATE:-/kmm/state}
KMM_UNLOAD_ON_STOP=${KMM_UNLOAD_ON_STOP:-true}
KMM_ONESHOT=${KMM_ONESHOT:-false}
KMM_VERIFY_VERSION=${KMM_VERIFY_VERSION:-false}
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

# trim TEXT: TEXT without leading and trailing blanks.
trim() {
	t=$1
	while :; do
		case $t in
		[[:space:]]*) t=${t#?} ;;
		*) break ;;
		esac
	done
	while :; do
		case $t in
		*[[:space:]]) t=${t%?} ;;
		*) break ;;
		esac
	done
	printf '%s' "$t"
}

# The state of an earlier run of this container: kmm-state is an emptyDir, which outlives a
# container restart, and the readiness probe only tests for "loaded". Until this run has loaded
# and verified the modules, the pod is not Ready.
rm -f "$KMM_STATE/loaded" "$KMM_STATE/versions" || die "could not clear the state folder $KMM_STATE"

# a. kernel check
running=$(uname -r) || die "could not run uname -r: the loader image needs uname"
if [ -n "$KMM_KERNEL" ] && [ "$KMM_KERNEL" != "$running" ]; then
	die "this loader is for kernel $KMM_KERNEL but the node runs $running: the pod was scheduled on the wrong node; check its nodeSelector"
fi

# b. firmware
if [ -n "$KMM_FIRMWARE_PATH" ]; then
	fw_src=$KMM_ROOT$KMM_FIRMWARE_PATH
	[ -d "$fw_src" ] || die "firmware folder $fw_src does not exist: fix modprobe.firmwarePath or add the firmware to the image"
	mkdir -p "$KMM_FIRMWARE_DIR" || die "could not create the firmware folder $KMM_FIRMWARE_DIR: check its hostPath mount"
	cp -R "$fw_src/." "$KMM_FIRMWARE_DIR/" || die "could not copy the firmware from $fw_src to $KMM_FIRMWARE_DIR: check the mount and free space"
	log "copied the firmware of $fw_src to $KMM_FIRMWARE_DIR (host: $KMM_FIRMWARE_HOST_PATH)"
	if [ -e "$KMM_FIRMWARE_CLASS_PATH" ]; then
		current=$(cat "$KMM_FIRMWARE_CLASS_PATH") || die "could not read $KMM_FIRMWARE_CLASS_PATH: check the firmware_class mount"
		current=$(trim "$current")
		if [ "$current" != "$KMM_FIRMWARE_HOST_PATH" ]; then
			if ! printf '%s' "$KMM_FIRMWARE_HOST_PATH" >"$KMM_FIRMWARE_CLASS_PATH"; then
				die "could not write $KMM_FIRMWARE_HOST_PATH to $KMM_FIRMWARE_CLASS_PATH: the loader must run privileged with /sys/module/firmware_class/parameters mounted"
			fi
			log "set the kernel firmware search path to $KMM_FIRMWARE_HOST_PATH (was '$current')"
		fi
	else
		err "warning: $KMM_FIRMWARE_CLASS_PATH does not exist: the kernel will only search its default firmware folders, not $KMM_FIRMWARE_HOST_PATH"
	fi
fi

# A stop requested while loading is handled once the module is loaded.
stop_requested=false
if [ "$KMM_ONESHOT" != true ]; then
	trap 'stop_requested=true' TERM INT
fi

# c. in-tree modules
set --
while IFS= read -r line; do
	if [ -n "$line" ]; then set -- "$@" "$line"; fi
done <<EOF
$KMM_IN_TREE_REMOVE
EOF
for m in "$@"; do
	sysfs_name "$m"
	if [ -d "$KMM_SYS_MODULE/$sysfs" ]; then
		log "unloading in-tree module $m"
		modprobe -r -v "$m" </dev/null || die "could not unload in-tree module $m (in use?): stop what uses it or remove it from inTreeModulesToRemove"
	else
		log "in-tree module $m is not loaded"
	fi
done

# e. diagnosis of a failed modprobe
moddir=$KMM_ROOT$KMM_DIR_NAME
diagnose() {
	name=$1
	if ! command -v modinfo >/dev/null 2>&1; then
		die "modprobe $name failed (see the messages above and the node's dmesg)"
	elif vermagic=$(modinfo -b "$moddir" -k "$running" -F vermagic "$name" 2>/dev/null); then
		built=
		read -r built _ <<EOV || :
$vermagic
EOV
		if [ -n "$built" ] && [ "$built" != "$running" ]; then
			die "$name was built for kernel $built, this node runs $running: rebuild it for $running"
		fi
		die "modprobe $name failed (see the messages above and the node's dmesg)"
	fi
	die "no module $name in $moddir/lib/modules/$running (check dirName and the image)"
}

# Version check (KMM_VERIFY_VERSION). image_field NAME FIELD: FIELD of modinfo of NAME in the
# image, or "". loaded_field NAME FIELD: /sys/module/<name>/FIELD of the loaded module, or "".
image_field() {
	modinfo -b "$moddir" -k "$running" -F "$2" "$1" 2>/dev/null || :
}
loaded_field() {
	sysfs_name "$1"
	if [ -r "$KMM_SYS_MODULE/$sysfs/$2" ]; then cat "$KMM_SYS_MODULE/$sysfs/$2" 2>/dev/null || :; fi
}
# same_version NAME: whether the loaded NAME is the image's; sets want and have to describe them.
# An image file that carries neither srcversion nor version cannot be told apart: it counts as
# the same, with a warning.
same_version() {
	want_src=$(image_field "$1" srcversion)
	want_ver=$(image_field "$1" version)
	have_src=$(loaded_field "$1" srcversion)
	have_ver=$(loaded_field "$1" version)
	want="srcversion ${want_src:-(none)}${want_ver:+, version $want_ver}"
	have="srcversion ${have_src:-(none)}${have_ver:+, version $have_ver}"
	if [ -n "$want_src" ]; then
		[ "$want_src" = "$have_src" ]
	elif [ -n "$want_ver" ]; then
		[ "$want_ver" = "$have_ver" ]
	else
		err "warning: the image's $1 has neither srcversion nor version: the loaded $1 cannot be checked"
		return 0
	fi
}
# holders NAME: what holds the loaded NAME: the modules in its holders folder and its refcnt.
holders() {
	sysfs_name "$1"
	h=
	if [ -d "$KMM_SYS_MODULE/$sysfs/holders" ]; then
		for f in "$KMM_SYS_MODULE/$sysfs/holders"/*; do
			if [ -e "$f" ]; then h="$h${h:+ }${f##*/}"; fi
		done
	fi
	refcnt=$(loaded_field "$1" refcnt)
	printf 'held by modules [%s], refcnt %s' "$h" "${refcnt:-unknown}"
}

# modules: the module and its loading-order dependencies (module names hold no blanks); deps:
# the dependencies in the order they load, the last entry first.
modules=$KMM_MODULE
deps=
first=true
while IFS= read -r line; do
	[ -n "$line" ] || continue
	if [ "$first" = true ]; then
		first=false
		continue
	fi
	modules="$modules $line"
	deps="$line${deps:+ }$deps"
done <<EOF
$KMM_LOADING_ORDER
EOF

verify=false
if [ "$KMM_VERIFY_VERSION" = true ] && [ "$KMM_RAW" != true ] && [ -n "$KMM_MODULE" ]; then
	if command -v modinfo >/dev/null 2>&1; then
		verify=true
	else
		err "warning: the image has no modinfo: the version of the loaded module is not checked"
	fi
elif [ "$KMM_VERIFY_VERSION" = true ] && [ "$KMM_RAW" = true ]; then
	log "rawArgs: the loaded version is not checked (rawArgs name no module)"
fi

# A different version already loaded: modprobe would leave it and report success, so unload it
# first; when it cannot be unloaded, fail (the pod is not Ready) saying what holds it, a line per
# module, and all of them on the one line of the termination message.
if [ "$verify" = true ]; then
	stale=
	for m in $modules; do
		sysfs_name "$m"
		[ -d "$KMM_SYS_MODULE/$sysfs" ] || continue
		if ! same_version "$m"; then
			log "$m is loaded at $have; this image has $want"
			stale="$stale $m"
		fi
	done
	if [ -n "$stale" ]; then
		log "unloading the loaded version first"
		# No wait for the old version's users: this pod restarts (and checks again) until they
		# are gone, and the upgrade controller evicted them before it deleted the old pod.
		if ! KMM_UNLOAD_WAIT=0 sh "$KMM_SCRIPTS/unload.sh"; then
			why=
			for m in $stale; do
				same_version "$m" || :
				msg="$m is loaded at $have but this loader's image has $want, and it cannot be unloaded: $(holders "$m"). Stop what uses it (its device plugin, workloads holding the device), then delete this pod to retry"
				err "$msg"
				why="$why${why:+ }$msg"
			done
			termination "$why"
			exit 1
		fi
	fi
fi

# d. load
if [ "$KMM_RAW" = true ]; then
	set --
	while IFS= read -r line; do
		if [ -n "$line" ]; then set -- "$@" "$line"; fi
	done <<EOF
$KMM_RAW_LOAD
EOF
	[ "$#" -gt 0 ] || die "rawArgs.load is empty: set modprobe.rawArgs.load or use moduleName"
	label="rawArgs.load ($*)"
	log "modprobe $*"
	if ! modprobe "$@" </dev/null; then
		die "modprobe $* failed (see the messages above and the node's dmesg)"
	fi
else
	[ -n "$KMM_MODULE" ] || die "KMM_MODULE is empty: set modprobe.moduleName (or rawArgs)"
	label=$KMM_MODULE
	for dep in $deps; do
		log "modprobe -v -d $moddir $dep"
		modprobe -v -d "$moddir" "$dep" </dev/null || diagnose "$dep"
	done
	set -- -v -d "$moddir"
	while IFS= read -r line; do
		if [ -n "$line" ]; then set -- "$@" "$line"; fi
	done <<EOF
$KMM_LOAD_ARGS
EOF
	set -- "$@" "$KMM_MODULE"
	while IFS= read -r line; do
		if [ -n "$line" ]; then set -- "$@" "$line"; fi
	done <<EOF
$KMM_PARAMETERS
EOF
	log "modprobe $*"
	modprobe "$@" </dev/null || diagnose "$KMM_MODULE"
fi

# The modules in the kernel must now be the image's.
versions=
if [ "$verify" = true ]; then
	for m in $modules; do
		if ! same_version "$m"; then
			die "after loading, $m in the kernel is at $have, but this loader's image has $want: another copy of $m is loaded ($(holders "$m")); unload it and delete this pod to retry"
		fi
		log "verified $m: $want"
		versions="$versions$m: $want
"
	done
fi

# f. state
mkdir -p "$KMM_STATE" || die "could not create the state folder $KMM_STATE"
if [ "$verify" = true ]; then
	printf '%s' "$versions" >"$KMM_STATE/versions" || die "could not write $KMM_STATE/versions"
fi
printf '' >"$KMM_STATE/loaded" || die "could not write $KMM_STATE/loaded"

log "loaded $label (kernel $running)"

# g. wait, unload on stop
if [ "$KMM_ONESHOT" = true ]; then
	exit 0
fi

stop() {
	trap - TERM INT
	# The only background job is the sleep below. SIGKILL: a SIGTERM sent while
	# the shell is still forking it can be lost, leaving it behind.
	if [ -n "${!:-}" ]; then kill -s KILL "$!" 2>/dev/null || :; fi
	if [ "$KMM_UNLOAD_ON_STOP" != false ]; then
		log "stopping: unloading $label"
		sh "$KMM_SCRIPTS/unload.sh" || err "unloading $label failed: it stays loaded on this node"
	else
		log "stopping: $label stays loaded (unloadOnStop is false)"
	fi
	exit 0
}
trap stop TERM INT
if [ "$stop_requested" = true ]; then stop; fi

while :; do
	sleep 3600 &
	wait "$!" || :
done
