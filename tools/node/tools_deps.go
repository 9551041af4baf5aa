//go:build tools

// Package tools pins the binaries this module builds (hack/build-tools.sh).
package tools

import (
	_ "github.com/distribution/distribution/v3/cmd/registry"
)
