#!/bin/sh
# Build kmm_a.ko and kmm_b.ko for one kernel and install them, with kmm_b.fw, in
# the layout a KMM kmod image has. The Dockerfile here runs it, after the OS recipe
# (kmm-os-headers.sh) installed the headers; it also runs as is on a machine with
# the kernel headers installed:
#
#   KERNEL_VERSION=$(uname -r) DEST_ROOT=/tmp/out sh build.sh
#
# Environment:
#   KERNEL_VERSION  Required. The kernel to build for, as `uname -r` prints it on
#                   the node (e.g. 6.1.0-28-cloud-amd64). KMM passes it as a build
#                   arg. KMM trims a trailing '+' (COS: 6.1.100+ -> 6.1.100); when
#                   the headers say the kernel is KERNEL_VERSION plus '+', the
#                   headers' string is used.
#   KERNEL_SRC      Kernel headers (the tree to run `make -C` in). Default:
#                   /lib/modules/$KERNEL_VERSION/build, or when that does not
#                   exist /usr/src/linux-headers-$KERNEL_VERSION (Debian, Ubuntu),
#                   then /usr/src/kernels/$KERNEL_VERSION (Amazon Linux, RHEL).
#   SRC_DIR         Where the sources are. Default: this script's directory.
#   BUILD_DIR       Where to build; the sources are copied there first, so
#                   SRC_DIR may be read-only. Default: a temporary directory,
#                   removed at the end.
#   DEST_ROOT       Root to install under. Default: /
#   DIR_NAME        KMM's modprobe.dirName. Default: /opt. The modules go to
#                   $DEST_ROOT$DIR_NAME/lib/modules/$KERNEL_VERSION/extra/.
#   FIRMWARE_DIR    KMM's modprobe.firmwarePath. Default: /firmware. kmm_b.fw
#                   goes to $DEST_ROOT$FIRMWARE_DIR/.
#   MAKE_ARGS       Optional extra make arguments, split on blanks, e.g.
#                   "CC=gcc14-gcc" or "LLVM=1 CC=x86_64-cros-linux-gnu-clang"
#                   (the Dockerfile takes it, and KERNEL_SRC, from the recipe's
#                   /etc/kmm-build.env).
#
# Nothing is signed here: signing is a separate step (the chart's sign job).
set -eu

die() {
	printf 'build.sh: error: %s\n' "$*" >&2
	exit 1
}

note() {
	printf 'build.sh: %s\n' "$*"
}

# depmod lives in /sbin on some systems that leave it out of PATH.
PATH=$PATH:/usr/sbin:/sbin
export PATH

[ -n "${KERNEL_VERSION:-}" ] ||
	die "KERNEL_VERSION is not set: set it to the target kernel (uname -r on the node, e.g. 6.1.0-28-cloud-amd64)"

# Kernel headers.
searched=${KERNEL_SRC:-}
if [ -z "${KERNEL_SRC:-}" ]; then
	searched="/lib/modules/$KERNEL_VERSION/build, /usr/src/linux-headers-$KERNEL_VERSION or /usr/src/kernels/$KERNEL_VERSION"
	for dir in "/lib/modules/$KERNEL_VERSION/build" \
		"/usr/src/linux-headers-$KERNEL_VERSION" "/usr/src/kernels/$KERNEL_VERSION"; do
		KERNEL_SRC=$dir
		[ -e "$dir" ] && break
	done
fi
uts=$KERNEL_SRC/include/generated/utsrelease.h
if [ ! -f "$KERNEL_SRC/Makefile" ] || [ ! -f "$uts" ]; then
	die "no kernel headers for $KERNEL_VERSION in $searched. Install" \
		"linux-headers-$KERNEL_VERSION (Debian, Ubuntu) or kernel-devel-$KERNEL_VERSION" \
		"(Amazon Linux, RHEL), or set KERNEL_SRC to the headers"
fi

# The headers decide the modules' vermagic; it must be the node's kernel.
release=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$uts")
if [ "$release" != "$KERNEL_VERSION" ]; then
	if [ "$release" = "$KERNEL_VERSION+" ]; then
		note "the headers are for $release; KMM trims the '+', using $release"
		KERNEL_VERSION=$release
	else
		die "the headers in $KERNEL_SRC are for kernel '$release', not '$KERNEL_VERSION'"
	fi
fi

# Sources and build directory.
if [ -z "${SRC_DIR:-}" ]; then
	SRC_DIR=$(dirname -- "$0")
fi
SRC_DIR=$(cd -- "$SRC_DIR" && pwd -P)
sources="kmm_a.c kmm_b.c kmm_b.h Kbuild Makefile kmm_b.fw"
for f in $sources; do
	[ -f "$SRC_DIR/$f" ] || die "$SRC_DIR/$f is missing"
done

if [ -n "${BUILD_DIR:-}" ]; then
	mkdir -p -- "$BUILD_DIR"
	BUILD_DIR=$(cd -- "$BUILD_DIR" && pwd -P)
	[ "$BUILD_DIR" != "$SRC_DIR" ] ||
		die "BUILD_DIR is SRC_DIR: use another directory, or run make there yourself"
else
	BUILD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kmm-kmod.XXXXXX")
	trap 'rm -rf -- "$BUILD_DIR"' EXIT
	trap 'exit 1' HUP INT TERM
fi

for f in $sources; do
	cp -- "$SRC_DIR/$f" "$BUILD_DIR/$f"
done

# Build.
note "building for $KERNEL_VERSION with the headers in $KERNEL_SRC (in $BUILD_DIR)"
# MAKE_ARGS is meant to be split into words; globbing stays off while it is.
set -f
# shellcheck disable=SC2086
make -C "$BUILD_DIR" KERNEL_SRC="$KERNEL_SRC" KERNEL_VERSION="$KERNEL_VERSION" ${MAKE_ARGS:-}
set +f

for m in kmm_a kmm_b; do
	[ -f "$BUILD_DIR/$m.ko" ] || die "make did not produce $m.ko"
done

# Install.
DEST_ROOT=${DEST_ROOT:-/}
DEST_ROOT=${DEST_ROOT%/}
DIR_NAME=${DIR_NAME:-/opt}
FIRMWARE_DIR=${FIRMWARE_DIR:-/firmware}
case $DIR_NAME in /*) ;; *) DIR_NAME=/$DIR_NAME ;; esac
case $FIRMWARE_DIR in /*) ;; *) FIRMWARE_DIR=/$FIRMWARE_DIR ;; esac
DIR_NAME=${DIR_NAME%/}
FIRMWARE_DIR=${FIRMWARE_DIR%/}

base=$DEST_ROOT$DIR_NAME
mod_dir=$base/lib/modules/$KERNEL_VERSION
fw_dir=$DEST_ROOT$FIRMWARE_DIR

mkdir -p -- "$mod_dir/extra" "$fw_dir"
for m in kmm_a kmm_b; do
	cp -- "$BUILD_DIR/$m.ko" "$mod_dir/extra/$m.ko"
	chmod 0644 "$mod_dir/extra/$m.ko"
done
cp -- "$SRC_DIR/kmm_b.fw" "$fw_dir/kmm_b.fw"
chmod 0644 "$fw_dir/kmm_b.fw"

# depmod warns when these are missing (which ones depends on the kmod version);
# empty ones are enough.
for f in modules.order modules.builtin modules.builtin.modinfo; do
	[ -e "$mod_dir/$f" ] || : >"$mod_dir/$f"
done

command -v depmod >/dev/null 2>&1 || die "depmod not found: install kmod"
depmod -b "${base:-/}" "$KERNEL_VERSION"

note "installed:"
for f in "$mod_dir/extra/kmm_a.ko" "$mod_dir/extra/kmm_b.ko" "$mod_dir/modules.dep" "$fw_dir/kmm_b.fw"; do
	printf '  %s\n' "$f"
done
