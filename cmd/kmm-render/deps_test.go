package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kmm-render links none of the packages whose initialisation made up most of its start-up
// (docs/benchmarks.md): Helm's action and what only it needs (kubectl, cli-runtime, the
// registry and getter clients). Helm runs kmm-render on every install and upgrade, and the
// post-render path needs none of them; one import of package action brings them all back.
func TestBinaryLinksNoHelmAction(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err, "go list -deps")
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "helm.sh/helm/v3/pkg/engine", "the dependency list is kmm-render's")
	tests := []struct {
		name    string
		pattern *regexp.Regexp
	}{
		{name: "Helm's action", pattern: regexp.MustCompile(`^helm\.sh/helm/v3/pkg/action$`)},
		{name: "Helm's cli, getter, registry and kube", pattern: regexp.MustCompile(`^helm\.sh/helm/v3/pkg/(cli|getter|registry|kube)$`)},
		{name: "kubectl", pattern: regexp.MustCompile(`^k8s\.io/kubectl/`)},
		{name: "cli-runtime", pattern: regexp.MustCompile(`^k8s\.io/cli-runtime/`)},
		{name: "oras", pattern: regexp.MustCompile(`^oras\.land/`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var linked []string
			for _, d := range deps {
				if tt.pattern.MatchString(d) {
					linked = append(linked, d)
				}
			}
			assert.Empty(t, linked, "kmm-render links these again: find the import with `go mod why -m` or `go list -deps`")
		})
	}
}
