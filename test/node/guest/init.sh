#!/bin/sh
# /sbin/kmm-init of the real-node test's guest (test/node): PID 1, no systemd. It mounts what a
# kubelet and containerd need, loads the kernel modules containers need (the cloud kernel builds
# them as modules), brings up the guest's own network (slirp's 10.0.2.0/24, restricted: nothing
# leaves the VM but the forwards to the API server and the registry), copies the run's config from
# the second disk, starts containerd and the kubelet, and serves the test's commands on ttyS1.
# Everything is logged on the serial console (ttyS0).
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
log() { echo "kmm-init: $*"; }

mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# Move init out of the root cgroup and enable every controller for the kubelet's hierarchy.
mkdir -p /sys/fs/cgroup/init
echo $$ >/sys/fs/cgroup/init/cgroup.procs
# shellcheck disable=SC2013
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control; done
mount -o remount,rw /
mount --make-rshared /
hostname kmm-node

for m in virtio_console overlay bridge br_netfilter veth nf_conntrack virtio_net; do
	modprobe "$m" || log "modprobe $m failed"
done
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 kernel.panic=10 vm.overcommit_memory=1 kernel.panic_on_oops=1

mkdir -p /mnt/config
mount -o ro /dev/vdb /mnt/config || log "no config disk"
cp -a /mnt/config/etc/. /etc/
# shellcheck disable=SC1091
. /etc/kmm-node.env

# The one virtio NIC (Debian's initramfs names it, e.g. ens3).
nic=
i=0
while [ -z "$nic" ] && [ $i -lt 50 ]; do
	for n in /sys/class/net/*; do
		case ${n##*/} in lo) ;; *) nic=${n##*/} ;; esac
	done
	[ -n "$nic" ] || sleep 0.2
	i=$((i + 1))
done
ip link set lo up
ip link set "$nic" up
ip addr add 10.0.2.15/24 dev "$nic"
ip route add default via 10.0.2.2
echo "nameserver 10.0.2.3" >/etc/resolv.conf
echo "10.0.2.15 kmm-node" >>/etc/hosts
# The kubernetes Service (10.0.0.1:443, the first address of the cluster's service range): there
# is no kube-proxy, so a forwarder bound on that address relays each connection to the API
# server's forward (10.0.2.100:6443). Pods reach it through their gateway (cni0) as an address of
# this host; the API server's certificate names 10.0.0.1 and kubernetes.default.svc.
ip addr add 10.0.0.1/32 dev lo
socat TCP-LISTEN:443,bind=10.0.0.1,fork,reuseaddr TCP:10.0.2.100:6443 >/var/log/kubernetes-service.log 2>&1 &

mkdir -p /var/log /var/lib/kubelet /var/lib/containerd /etc/cni/net.d
log "starting containerd"
containerd --config /etc/containerd/config.toml >/var/log/containerd.log 2>&1 &
i=0
until [ -S /run/containerd/containerd.sock ] || [ $i -ge 60 ]; do sleep 1; i=$((i + 1)); done
log "starting kubelet"
kubelet --config=/etc/kubernetes/kubelet.yaml --kubeconfig=/etc/kubernetes/kubelet.conf \
	--hostname-override=kmm-node --node-ip=10.0.2.15 --node-labels="$KMM_NODE_LABELS" \
	--v=2 >/var/log/kubelet.log 2>&1 &
log "ready"

# The test's command channel: one line of sh in, its output then "@@KMM-NODE@@ rc N" out. The
# port is opened once, raw and without echo, so nothing the test sends comes back.
exec 3<>/dev/ttyS1
stty raw -echo <&3
while read -r line <&3; do
	sh -c "$line" </dev/null >/tmp/cmd.out 2>&1
	rc=$?
	{ cat /tmp/cmd.out; echo "@@KMM-NODE@@ rc $rc"; } >&3
done
log "command channel closed"
sleep infinity
