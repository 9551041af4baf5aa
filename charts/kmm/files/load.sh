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
#   KMM_SCRIPTS              folder holding unload.sh (default: the folder of this script)
set -eu

log() { printf 'kmm: %s\n' "$*"; }
err() { printf 'kmm: %s\n' "$*" >&2; }
die() {
	err "$@"
	exit 1
}

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
case $0 in
*/*) default_scripts=${0%/*} ;;
*) default_scripts=. ;;
esac
KMM_SCRIPTS=${KMM_SCRIPTS:-$default_scripts}

# sysfs_name NAME: sets sysfs to the /sys/module entry of NAME (the kernel
# uses _ for -).
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
		err "modprobe $name failed (see the messages above and the node's dmesg)"
	elif vermagic=$(modinfo -b "$moddir" -k "$running" -F vermagic "$name" 2>/dev/null); then
		built=
		read -r built _ <<EOV || :
$vermagic
EOV
		if [ -n "$built" ] && [ "$built" != "$running" ]; then
			err "$name was built for kernel $built, this node runs $running: rebuild it for $running"
		else
			err "modprobe $name failed (see the messages above and the node's dmesg)"
		fi
	else
		err "no module $name in $moddir/lib/modules/$running (check dirName and the image)"
	fi
	exit 1
}

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
	# Dependencies: every entry but the first, last one first.
	set --
	first=true
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		if [ "$first" = true ]; then
			first=false
			continue
		fi
		set -- "$line" "$@"
	done <<EOF
$KMM_LOADING_ORDER
EOF
	for dep in "$@"; do
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

# f. state
mkdir -p "$KMM_STATE" || die "could not create the state folder $KMM_STATE"
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
