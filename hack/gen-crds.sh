#!/usr/bin/env bash
# Regenerates the KMM API's deepcopy functions (api/*/zz_generated.deepcopy.go) and its
# CustomResourceDefinitions (config/crd/bases/) with controller-gen.
#
# controller-gen is run with `go run pkg@version`, which builds it from the Go module proxy
# (or the module cache) without touching this repository's go.mod / go.sum.
# Override the version with CONTROLLER_GEN_VERSION=vX.Y.Z.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CONTROLLER_GEN_VERSION="${CONTROLLER_GEN_VERSION:-v0.20.1}"
GO="${GO:-go}"
CONTROLLER_GEN=("$GO" run "sigs.k8s.io/controller-tools/cmd/controller-gen@${CONTROLLER_GEN_VERSION}")

echo "controller-gen ${CONTROLLER_GEN_VERSION}: deepcopy"
"${CONTROLLER_GEN[@]}" object:headerFile=hack/boilerplate.go.txt paths=./api/...

echo "controller-gen ${CONTROLLER_GEN_VERSION}: CRDs -> config/crd/bases"
# Start from an empty folder so CRDs of removed kinds do not linger.
rm -f config/crd/bases/*.yaml
"${CONTROLLER_GEN[@]}" crd paths=./api/... output:crd:artifacts:config=config/crd/bases
