#!/usr/bin/env bash
# test-deps.sh: the Debian packages kmm's tests run, installed with apt-get when missing (as
# root), and a report of the versions a test run uses.
#
#   hack/test-deps.sh apt TOOLS_DIR     shellcheck, and a busybox whose sh looks commands up on
#                                       PATH before its applets, at TOOLS_DIR/busybox
#   hack/test-deps.sh kernel            qemu, Debian's cloud kernel and headers, kmod, openssl
#   hack/test-deps.sh node              the kernel test's packages, plus mmdebstrap and e2fsprogs,
#                                       which build the real-node test's guest rootfs and images
#                                       (test/node) from Debian's packages
#   hack/test-deps.sh report TOOLS_DIR  each one's version and package; exits 1 naming the
#                                       package when one is missing or of a shape the tests do
#                                       not handle
#
# Why TOOLS_DIR/busybox: Debian's busybox-static (which the machine may have for other reasons)
# is built with FEATURE_SH_STANDALONE, so its sh runs its own tar, sha512sum or modprobe even when
# PATH names another: the script tests' fakes, and kmod's modprobe in the kernel test's VM, would
# not run. Debian's busybox package is built without it, as Alpine's busybox is. When the
# installed busybox is of the wrong shape, Debian's busybox package is unpacked into TOOLS_DIR
# (apt-get download, dpkg-deb -x) and the installed one is left alone. internal/busybox makes
# the same check in every test that runs busybox.
set -euo pipefail

die() { echo "test-deps: $*" >&2; exit 1; }

# apt_install PACKAGE...: install the packages with apt-get, as root.
apt_install() {
	[ $# -gt 0 ] || return 0
	if [ "$(id -u)" != 0 ]; then
		die "missing: $*; run: sudo apt-get install --no-install-recommends $*"
	fi
	echo "apt-get install $*"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# path_first BUSYBOX: whether BUSYBOX's sh runs a `cat` found on PATH rather than its applet.
path_first() {
	local dir out
	dir=$(mktemp -d)
	printf '#!/bin/sh\necho kmm-probe\n' >"$dir/cat"
	chmod +x "$dir/cat"
	out=$(PATH="$dir" "$1" sh -c 'cat </dev/null' 2>/dev/null || true)
	rm -rf "$dir"
	[ "$out" = kmm-probe ]
}

# bb_version BUSYBOX: the first line of its help, without "multi-call binary."
bb_version() {
	"$1" 2>&1 | head -n 1 | sed 's/ multi-call binary\.$//' || true
}

# package_of FILE: the Debian package and version that installed FILE, or "not from a package".
package_of() {
	local real pkg
	real=$(readlink -f "$1")
	case ${real##*/} in busybox-deb-*)
		echo "unpacked from Debian's busybox package (${real##*/busybox-deb-})"
		return 0 ;;
	esac
	pkg=$(dpkg-query -S "$real" 2>/dev/null | head -n 1 | cut -d: -f1) || true
	if [ -z "$pkg" ] && [[ "$real" == /usr/* ]]; then
		# merged /usr: dpkg knows /bin/busybox, not /usr/bin/busybox
		pkg=$(dpkg-query -S "${real#/usr}" 2>/dev/null | head -n 1 | cut -d: -f1) || true
	fi
	if [ -n "$pkg" ]; then
		echo "package $pkg $(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)"
	else
		echo "not from a package"
	fi
}

# ensure_busybox TOOLS_DIR: TOOLS_DIR/busybox is a busybox that runs PATH commands first.
ensure_busybox() {
	local tools=$1 bb tmp deb ver
	mkdir -p "$tools"
	if [ -x "$tools/busybox" ] && path_first "$tools/busybox"; then
		return 0
	fi
	rm -f "$tools/busybox"
	bb=$(command -v busybox || true)
	if [ -z "$bb" ]; then
		apt_install busybox
		bb=$(command -v busybox) || die "apt-get installed busybox, yet there is no busybox on PATH"
	fi
	if path_first "$bb"; then
		ln -s "$bb" "$tools/busybox"
		return 0
	fi
	echo "test-deps: $bb ($(bb_version "$bb"), $(package_of "$bb")) runs its own applets before PATH;" \
		"unpacking Debian's busybox package into $tools/busybox (the installed one stays)"
	tmp=$(mktemp -d)
	if ! (cd "$tmp" && apt-get download -o APT::Sandbox::User=root busybox >/dev/null 2>&1); then
		[ "$(id -u)" = 0 ] || die "cannot download Debian's busybox package; run: sudo apt-get update, then make apt-deps again"
		apt-get update -qq
		(cd "$tmp" && apt-get download -o APT::Sandbox::User=root busybox >/dev/null) ||
			die "apt-get download busybox failed: the tests need Debian's busybox package (not busybox-static)"
	fi
	deb=$(ls "$tmp"/busybox_*.deb)
	dpkg-deb -x "$deb" "$tmp/root"
	ver=$(dpkg-deb -f "$deb" Version | tr ':~+' '___')
	for f in "$tmp/root/bin/busybox" "$tmp/root/usr/bin/busybox"; do
		if [ -x "$f" ]; then
			cp "$f" "$tools/busybox-deb-$ver"
			ln -s "busybox-deb-$ver" "$tools/busybox"
			break
		fi
	done
	rm -rf "$tmp"
	[ -x "$tools/busybox" ] || die "Debian's busybox package $ver has no bin/busybox"
	path_first "$tools/busybox" || die "Debian's busybox package $ver also runs its applets before PATH: the script tests cannot use it"
}

# kernels: the kernels the kernel test can boot and build for, one "VERSION" a line.
kernels() {
	local img v h
	for img in /boot/vmlinuz-*; do
		[ -e "$img" ] || continue
		v=${img#/boot/vmlinuz-}
		h=/usr/src/linux-headers-$v
		if [ -f "$h/Makefile" ] && [ -f "$h/include/generated/utsrelease.h" ] && [ -x "$h/scripts/sign-file" ]; then
			echo "$v"
		fi
	done
}

cmd_apt() {
	local tools=${1:?usage: test-deps.sh apt TOOLS_DIR} missing=()
	command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
	apt_install "${missing[@]}"
	ensure_busybox "$tools"
}

cmd_kernel() {
	local missing=()
	command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
	{ command -v kmod && { command -v depmod || test -x /usr/sbin/depmod || test -x /sbin/depmod; }; } >/dev/null 2>&1 || missing+=(kmod)
	command -v openssl >/dev/null 2>&1 || missing+=(openssl)
	command -v make >/dev/null 2>&1 || missing+=(make)
	[ -n "$(kernels)" ] || missing+=(linux-image-cloud-amd64 linux-headers-cloud-amd64)
	apt_install "${missing[@]}"
}

cmd_node() {
	local missing=()
	cmd_kernel
	command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
	{ command -v mke2fs || test -x /usr/sbin/mke2fs || test -x /sbin/mke2fs; } >/dev/null 2>&1 || missing+=(e2fsprogs)
	apt_install "${missing[@]}"
	# The guest boots the kernel with Debian's own initramfs (it mounts the virtio disk).
	local v ok=
	for v in $(kernels); do
		[ -r "/boot/initrd.img-$v" ] && ok=1
	done
	if [ -z "$ok" ]; then
		apt_install initramfs-tools
		for v in $(kernels); do
			[ -e "/boot/initrd.img-$v" ] || update-initramfs -c -k "$v" >/dev/null
		done
	fi
}

cmd_report() {
	local tools=${1:?usage: test-deps.sh report TOOLS_DIR} bad=() p v k
	echo "test dependencies (hack/test-deps.sh report):"
	if [ -x "$tools/busybox" ] && path_first "$tools/busybox"; then
		printf '  %-10s %s -> %s: %s, %s; runs PATH before its applets\n' busybox "$tools/busybox" \
			"$(readlink -f "$tools/busybox")" "$(bb_version "$tools/busybox")" "$(package_of "$tools/busybox")"
	else
		bad+=("busybox: no $tools/busybox that runs PATH before its applets (Debian package busybox; run make apt-deps)")
	fi
	if p=$(command -v busybox); then
		printf '  %-10s %s: %s, %s; %s\n' "" "$p (on PATH)" "$(bb_version "$p")" "$(package_of "$p")" \
			"$(path_first "$p" && echo "runs PATH first" || echo "runs its applets before PATH, so the tests use the one above")"
	fi
	if p=$(command -v shellcheck); then
		printf '  %-10s %s, %s\n' shellcheck "$(shellcheck --version | sed -n 's/^version: //p')" "$(package_of "$p")"
	else
		bad+=("shellcheck: missing (Debian package shellcheck)")
	fi
	if p=$(command -v qemu-system-x86_64); then
		printf '  %-10s %s, %s\n' qemu "$("$p" --version | head -n 1)" "$(package_of "$p")"
	else
		bad+=("qemu-system-x86_64: missing (Debian package qemu-system-x86)")
	fi
	if p=$(command -v kmod); then
		v=$("$p" --version | head -n 1)
		printf '  %-10s %s, %s\n' kmod "$v" "$(package_of "$p")"
		case $v in kmod\ version\ *) ;; *) bad+=("kmod: $p prints \"$v\", not kmod's version (Debian package kmod)") ;; esac
	else
		bad+=("kmod: missing (Debian package kmod)")
	fi
	if p=$(command -v openssl); then
		printf '  %-10s %s, %s\n' openssl "$("$p" version)" "$(package_of "$p")"
	else
		bad+=("openssl: missing (Debian package openssl)")
	fi
	k=$(kernels)
	if [ -z "$k" ]; then
		bad+=("kernel: no /boot/vmlinuz-<v> with /usr/src/linux-headers-<v> and its scripts/sign-file (Debian packages linux-image-cloud-amd64 linux-headers-cloud-amd64)")
	fi
	for v in $k; do
		if [ ! -r "/boot/vmlinuz-$v" ]; then
			bad+=("kernel $v: /boot/vmlinuz-$v is not readable (Debian installs it for root only: run the tests as root)")
		elif [ ! -f "/lib/modules/$v/modules.dep" ]; then
			bad+=("kernel $v: no /lib/modules/$v/modules.dep (Debian package linux-image-$v)")
		else
			printf '  %-10s %s: /boot/vmlinuz-%s, headers /usr/src/linux-headers-%s, %s\n' kernel "$v" "$v" "$v" "$(package_of "/boot/vmlinuz-$v")"
		fi
	done
	if [ ${#bad[@]} -gt 0 ]; then
		printf 'test-deps: the tests cannot run here:\n' >&2
		printf '  %s\n' "${bad[@]}" >&2
		exit 1
	fi
}

case ${1:-} in
apt) shift; cmd_apt "$@" ;;
kernel) shift; cmd_kernel "$@" ;;
node) shift; cmd_node "$@" ;;
report) shift; cmd_report "$@" ;;
*) die "usage: test-deps.sh apt TOOLS_DIR | kernel | node | report TOOLS_DIR" ;;
esac
