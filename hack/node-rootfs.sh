#!/usr/bin/env bash
# node-rootfs.sh OUT KERNEL KUBELET CONTAINERD SHIM: the real-node test's guest disk (test/node), an
# ext4 image at OUT, built only from Debian packages and the given binaries, without a loop mount:
# mmdebstrap (bookworm, from the host's apt mirror) with runc, kmod, iproute2, util-linux, mount,
# Debian's CNI plugins, iptables (their masquerade: pods reach the registry through the guest's
# address), socat (the kubernetes Service's forwarder, guest/init.sh); plus containerd and its
# runc shim, the kubelet, the kernel's modules
# (/lib/modules/KERNEL: overlay, bridge, veth, virtio... are modules in the cloud kernel), the
# guest's init and configs (test/node/guest); packed by mke2fs -d. OUT is rebuilt only when an
# input changed: OUT.inputs records their checksums. MIRROR overrides the Debian mirror.
set -euo pipefail
# mmdebstrap and mke2fs live in /usr/sbin, which a non-login PATH may leave out.
PATH=$PATH:/usr/sbin:/sbin
out=${1:?usage: node-rootfs.sh OUT KERNEL KUBELET CONTAINERD SHIM} kernel=${2:?} kubelet=${3:?} containerd=${4:?} shim=${5:?}
here=$(cd "$(dirname "$0")/.." && pwd)
guest=$here/test/node/guest
mirror=${MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
packages=mount,iproute2,kmod,runc,containernetworking-plugins,util-linux,procps,ca-certificates,socat,iptables

inputs=$( {
	echo "packages $packages mirror $mirror kernel $kernel"
	sha256sum "$0" "$guest"/* "$kubelet" "$containerd" "$shim" | sed "s# $here/# #"
	find "/lib/modules/$kernel" -type f -printf '%P %s\n' | sort | sha256sum
} )
if [ -f "$out" ] && [ "$(cat "$out.inputs" 2>/dev/null)" = "$inputs" ]; then
	echo "node-rootfs: $out is up to date"
	exit 0
fi

t0=$(date +%s)
work=$(mktemp -d "$(dirname "$out")/.rootfs-XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
echo "node-rootfs: mmdebstrap bookworm ($packages) from $mirror"
mmdebstrap --quiet --variant=essential --include="$packages" \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$root" "$mirror"

install -m 0755 "$kubelet" "$root/usr/local/bin/kubelet"
install -m 0755 "$containerd" "$root/usr/local/bin/containerd"
install -m 0755 "$shim" "$root/usr/local/bin/containerd-shim-runc-v2"
install -m 0755 "$guest/init.sh" "$root/sbin/kmm-init"
install -D -m 0644 "$guest/containerd.toml" "$root/etc/containerd/config.toml"
install -D -m 0644 "$guest/hosts.toml" "$root/etc/containerd/certs.d/10.0.2.100:5000/hosts.toml"
install -D -m 0644 "$guest/cni.conflist" "$root/etc/cni/net.d/10-kmm.conflist"
install -D -m 0644 "$guest/kubelet.yaml" "$root/etc/kubernetes/kubelet.yaml"
mkdir -p "$root/lib/modules"
cp -a "/lib/modules/$kernel" "$root/lib/modules/"
echo kmm-node >"$root/etc/hostname"
: >"$root/etc/machine-id"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"

# Room for the images the test pulls and the containers' layers (a sparse file).
mke2fs -q -F -t ext4 -L kmm-node -d "$root" "$work/disk.ext4" 8G
mv "$work/disk.ext4" "$out"
echo "$inputs" >"$out.inputs"
echo "node-rootfs: $out built in $(($(date +%s) - t0)) s"
