#!/usr/bin/env bash
# build-tools.sh NAME...: builds the pinned tools the tests and the demo run into $TOOLS_DIR as
# NAME-VERSION, from the tools module (tools/go.mod), skipping those already built. A tool that
# $KUBEBUILDER_ASSETS already holds is linked instead of built.
#
# Names: kube-apiserver kube-controller-manager kube-scheduler etcd kwok kubectl helm3 helm4, and
# registry (distribution/distribution, from the tools/node module); kubelet, containerd and
# containerd-shim-runc-v2, static (CGO_ENABLED=0), for the real-node test's guest (test/node), and
# kmm-device-plugin (tools/cmd/kmm-device-plugin), the device plugin image of that test; buildkitd,
# buildctl and rootlesskit (the rootless BuildKit of that test's builder image) and crane (its
# image check), static, from tools/node too.
# Versions and link flags come from the Makefile's environment: K8S_VERSION ETCD_VERSION
# KWOK_VERSION HELM3_VERSION HELM4_VERSION REGISTRY_VERSION CONTAINERD_VERSION K8S_LDFLAGS HELM3_LDFLAGS HELM4_LDFLAGS,
# GO, TOOLS_DIR.
#
# Why one `go build` for all of them: the tools share most of their packages (client-go,
# apimachinery, the API types), which one tools module compiles once for all; and a single go
# command keeps both cores busy, compiling one tool while it links another, where one command a
# tool links each alone on one core. -s -w: the tools need no debug information, and leaving it
# out makes each link markedly cheaper.
set -euo pipefail
: "${TOOLS_DIR:?}" "${GO:=go}"

version_of() {
	case $1 in
	kube-apiserver | kube-controller-manager | kube-scheduler | kubectl | kubelet | kmm-device-plugin) echo "$K8S_VERSION" ;;
	etcd) echo "$ETCD_VERSION" ;;
	kwok) echo "$KWOK_VERSION" ;;
	helm3) echo "$HELM3_VERSION" ;;
	helm4) echo "$HELM4_VERSION" ;;
	registry) echo "${REGISTRY_VERSION:?}" ;;
	containerd | containerd-shim-runc-v2) echo "${CONTAINERD_VERSION:?}" ;;
	buildkitd | buildctl) echo "${BUILDKIT_VERSION:?}" ;;
	rootlesskit) echo "${ROOTLESSKIT_VERSION:?}" ;;
	crane) echo "${CRANE_VERSION:?}" ;;
	*) echo "build-tools: unknown tool $1" >&2; exit 1 ;;
	esac
}

# file_of NAME: where NAME is kept (helm3 and helm4 keep Helm's own name, helm-vX.Y.Z).
file_of() {
	case $1 in
	helm3 | helm4) echo "$TOOLS_DIR/helm-$(version_of "$1")" ;;
	*) echo "$TOOLS_DIR/$1-$(version_of "$1")" ;;
	esac
}

# package_of NAME: the Go package of its main, in the tools module.
package_of() {
	case $1 in
	kube-apiserver | kube-controller-manager | kube-scheduler | kubectl | etcd | kubelet | kmm-device-plugin) echo "./cmd/$1" ;;
	kwok) echo "sigs.k8s.io/kwok/cmd/kwok" ;;
	helm3) echo "helm.sh/helm/v3/cmd/helm" ;;
	helm4) echo "helm.sh/helm/v4/cmd/helm" ;;
	registry) echo "github.com/distribution/distribution/v3/cmd/registry" ;;
	containerd | containerd-shim-runc-v2) echo "github.com/containerd/containerd/v2/cmd/$1" ;;
	buildkitd | buildctl) echo "github.com/moby/buildkit/cmd/$1" ;;
	rootlesskit) echo "github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit" ;;
	crane) echo "github.com/google/go-containerregistry/cmd/crane" ;;
	esac
}

# module_of NAME: the folder of the Go module that builds it.
module_of() {
	case $1 in
	registry | containerd | containerd-shim-runc-v2 | buildkitd | buildctl | rootlesskit | crane) echo node ;;
	*) echo . ;;
	esac
}

mkdir -p "$TOOLS_DIR"
todo=()
for name in "$@"; do
	file=$(file_of "$name")
	[ -x "$file" ] && continue
	if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$name" ]; then
		echo "using $KUBEBUILDER_ASSETS/$name from KUBEBUILDER_ASSETS"
		ln -sf "$KUBEBUILDER_ASSETS/$name" "$file"
		continue
	fi
	todo+=("$name")
done
[ ${#todo[@]} -gt 0 ] || exit 0

# helm3 and helm4 are both "helm": the second one builds in a go command of its own. The tools of
# tools/node build in a go command of their own, in that module. The guest's binaries (kubelet,
# containerd and its shim) are static: one go command each module, with CGO_ENABLED=0.
first=() second=() node=() guest=() guestnode=()
for name in "${todo[@]}"; do
	if [ "$name" = kubelet ] || [ "$name" = kmm-device-plugin ]; then
		guest+=("$name")
	elif [[ " containerd containerd-shim-runc-v2 buildkitd buildctl rootlesskit crane " == *" $name "* ]]; then
		guestnode+=("$name")
	elif [ "$(module_of "$name")" = node ]; then
		node+=("$name")
	elif [ "$name" = helm4 ] && [[ " ${todo[*]} " == *" helm3 "* ]]; then
		second+=("$name")
	else
		first+=("$name")
	fi
done

# build MODULE NAME...: one go build, in tools/MODULE, of each NAME.
build() {
	local module=$1 out pkgs=() name
	shift
	out=$(mktemp -d "$TOOLS_DIR/.build-XXXXXX")
	for name in "$@"; do pkgs+=("$(package_of "$name")"); done
	echo "building $* (one go build; a cold build takes minutes, cached in bin/tools afterwards)"
	(cd "$(dirname "$0")/../tools/$module" &&
		"$GO" build -trimpath ${TAGS:+-tags "$TAGS"} -ldflags "-s -w $K8S_LDFLAGS $HELM3_LDFLAGS $HELM4_LDFLAGS" -o "$out/" "${pkgs[@]}")
	for name in "$@"; do
		case $name in helm3 | helm4) bin=helm ;; *) bin=$name ;; esac
		mv "$out/$bin" "$(file_of "$name")"
	done
	rm -rf "$out"
}
if [ ${#first[@]} -gt 0 ]; then build . "${first[@]}"; fi
if [ ${#second[@]} -gt 0 ]; then build . "${second[@]}"; fi
if [ ${#node[@]} -gt 0 ]; then build node "${node[@]}"; fi
if [ ${#guest[@]} -gt 0 ]; then CGO_ENABLED=0 build . "${guest[@]}"; fi
# containerd without the snapshotters the guest does not use (they need cgo or libraries); the
# builder image's BuildKit and the crane of the image check, static too (they run in images).
if [ ${#guestnode[@]} -gt 0 ]; then CGO_ENABLED=0 TAGS="no_btrfs no_devmapper no_zfs" build node "${guestnode[@]}"; fi
