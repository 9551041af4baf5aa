#!/usr/bin/env bash
# node-images.sh OUTDIR KERNEL: the Debian parts of two images of the real-node test (test/node),
# as tar files of a root file system, built only from Debian packages with mmdebstrap:
#
#   OUTDIR/builder.tar           the chart's build Job's builder (build.builderImage): bookworm
#                                minbase with runc and uidmap (newuidmap, newgidmap: with file
#                                capabilities, not Debian's setuid bit, which fails to write
#                                uid_map in a container with the runtime's default
#                                capabilities), and the
#                                rootless user of moby/buildkit's rootless image: uid 1000
#                                "user", /etc/subuid and /etc/subgid user:100000:65536,
#                                /home/user/.local/{tmp,share/buildkit}. The test
#                                adds buildkitd, buildctl, rootlesskit, buildctl-daemonless.sh and
#                                /run/user/1000 (mmdebstrap leaves /run empty)
#                                as a layer of their own.
#   OUTDIR/build-base-KERNEL.tar the module build's base image (build.osDefaults.debian.baseImage):
#                                bookworm minbase with make, gcc, kmod and linux-headers-KERNEL,
#                                as an air-gapped site bakes them in; the chart's Debian recipes
#                                then install nothing.
#
# Each is rebuilt only when its inputs changed (OUT.inputs). MIRROR and SECURITY_MIRROR override
# the Debian mirrors (bookworm, bookworm-updates; bookworm-security).
# The hooks are mmdebstrap's: it runs them with the root as $1, so they are single-quoted.
# shellcheck disable=SC2016
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin
out=${1:?usage: node-images.sh OUTDIR KERNEL} kernel=${2:?usage: node-images.sh OUTDIR KERNEL}
mirror=${MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
# The kernel's headers are where the host's kernel came from: the security suite, as often as not.
security=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
sources=("deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main")
mkdir -p "$out"

# build NAME PACKAGES HOOK: OUTDIR/NAME.tar, bookworm minbase with PACKAGES, HOOK run on the root.
build() {
	local name=$1 packages=$2 hook=$3 tar=$out/$1.tar inputs t0 tmp
	inputs="packages $packages sources ${sources[*]} hook $hook script $(sha256sum "$0" | cut -d' ' -f1)"
	if [ -f "$tar" ] && [ "$(cat "$tar.inputs" 2>/dev/null)" = "$inputs" ]; then
		echo "node-images: $tar is up to date"
		return 0
	fi
	t0=$(date +%s)
	tmp=$(mktemp "$out/.$name-XXXXXX.tar")
	trap 'rm -f "$tmp"' EXIT
	echo "node-images: mmdebstrap bookworm minbase ($packages) from $mirror and $security"
	mmdebstrap --quiet --variant=minbase --include="$packages" \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		--customize-hook="$hook" \
		--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
		bookworm "$tmp" "${sources[@]}"
	mv "$tmp" "$tar"
	trap - EXIT
	echo "$inputs" >"$tar.inputs"
	echo "node-images: $tar built in $(($(date +%s) - t0)) s"
}

build builder runc,uidmap,libcap2-bin 'chroot "$1" useradd --uid 1000 --user-group --create-home --shell /bin/sh user &&
	echo user:100000:65536 >"$1/etc/subuid" && echo user:100000:65536 >"$1/etc/subgid" &&
	mkdir -p "$1/home/user/.local/tmp" "$1/home/user/.local/share/buildkit" &&
	chroot "$1" chown -R user:user /home/user &&
	chmod 0755 "$1/usr/bin/newuidmap" "$1/usr/bin/newgidmap" &&
	chroot "$1" setcap cap_setuid+ep /usr/bin/newuidmap && chroot "$1" setcap cap_setgid+ep /usr/bin/newgidmap'
build "build-base-$kernel" "make,gcc,kmod,linux-headers-$kernel" 'test -f "$1/usr/src/linux-headers-'"$kernel"'/Makefile"'
