#!/bin/sh
# Renders kmm for Flux (docs/flux.md): helm template of the chart with the kmm-render
# post-renderer, into OUT/kmm.yaml plus OUT/kustomization.yaml, a folder a Flux Kustomization
# applies (flux-kustomization.yaml). Run it in CI, or wherever kubectl get nodes works, and
# commit OUT to the Git path Flux watches.
#
#   deploy/flux/render.sh OUT -f values.yaml [--nodes nodes.yaml] [helm template flags...]
#
# Environment: KMM_CHART (default oci://ghcr.io/kmm-dev/charts/kmm), KMM_CHART_VERSION,
# KMM_RELEASE (default kmm), KMM_NAMESPACE (default kmm-system), HELM (default helm; 3 or 4),
# KMM_RENDER (default kmm-render). Without --nodes, kmm-render reads the nodes of the current
# kubeconfig context (read only: deploy/kmm-render-rbac.yaml).
set -eu
die() { echo "render.sh: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: render.sh OUT -f values.yaml [--nodes nodes.yaml] [helm template flags...]"
out=$1
shift
helm=${HELM:-helm}
render=${KMM_RENDER:-kmm-render}
render=$(command -v "$render") || die "kmm-render not found (set KMM_RENDER)"
release=${KMM_RELEASE:-kmm}
namespace=${KMM_NAMESPACE:-kmm-system}
chart=${KMM_CHART:-oci://ghcr.io/kmm-dev/charts/kmm}

# Split our --nodes from helm's flags.
nodes=
n=$#
while [ "$n" -gt 0 ]; do
  a=$1
  shift
  n=$((n - 1))
  case $a in
    --nodes) [ "$n" -gt 0 ] || die "--nodes needs a file"; nodes=$1; shift; n=$((n - 1)) ;;
    --nodes=*) nodes=${a#--nodes=} ;;
    *) set -- "$@" "$a" ;;
  esac
done
if [ -n "$nodes" ]; then
  [ -f "$nodes" ] || die "node snapshot $nodes not found"
  set -- "$@" --post-renderer-args=--nodes "--post-renderer-args=$nodes"
fi
if [ -n "${KMM_CHART_VERSION:-}" ]; then set -- "$@" --version "$KMM_CHART_VERSION"; fi

case $("$helm" version --short 2>/dev/null) in
  v3.*) post=$render ;;
  v4.*)
    # Helm 4 runs post-renderers as plugins (README "Installing a release").
    "$helm" plugin list 2>/dev/null | grep -q '^kmm-render[[:space:]]' ||
      die "helm 4 has no kmm-render plugin: helm plugin install kmm-render-<version>-<os>-<arch>.tgz --verify=false"
    post=kmm-render ;;
  *) die "$helm is not helm 3 or 4" ;;
esac

mkdir -p "$out"
tmp=$out/.kmm.yaml.tmp
"$helm" template "$release" "$chart" --namespace "$namespace" "$@" --post-renderer "$post" > "$tmp" || {
  rm -f "$tmp"
  die "helm template failed; $out is unchanged"
}
[ -s "$tmp" ] || { rm -f "$tmp"; die "helm template printed nothing; $out is unchanged"; }
mv "$tmp" "$out/kmm.yaml"
cat > "$out/kustomization.yaml" <<KUST
# Written by deploy/flux/render.sh: kmm $release in $namespace, rendered by kmm-render.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - kmm.yaml
KUST
echo "render.sh: wrote $out/kmm.yaml and $out/kustomization.yaml" >&2
