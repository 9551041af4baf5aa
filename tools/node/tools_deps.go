//go:build tools

// Package tools pins the binaries this module builds (hack/build-tools.sh): the registry of the
// release and real-node tests, and containerd and the image tools of the real-node test.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/distribution/distribution/v3/cmd/registry"
)
