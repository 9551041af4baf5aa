//go:build tools

// Package tools pins the binaries this module builds (hack/build-tools.sh): the registry of the
// release and real-node tests, and containerd, rootless BuildKit and crane of the real-node test.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/distribution/distribution/v3/cmd/registry"
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "github.com/moby/buildkit/cmd/buildctl"
	_ "github.com/moby/buildkit/cmd/buildkitd"
	_ "github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit"
)
