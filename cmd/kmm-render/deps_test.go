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

// Every module kmm-render compiles is required at the same version by tools/go.mod, which builds
// the control plane, kwok and helm: then a cold `make demo` compiles client-go and the API
// packages once, for the tools, and kmm-render reuses them from the build cache. A mismatch (a
// `go get` in one module only) costs minutes on a fresh machine.
func TestSameModuleVersionsAsTools(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}", ".").Output()
	require.NoError(t, err, "go list -deps")
	ours := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			ours[f[0]] = f[1]
		}
	}
	require.Contains(t, ours, "k8s.io/client-go", "the module list is kmm-render's")
	list := exec.Command("go", "list", "-m", "all")
	list.Dir = "../../tools"
	out, err = list.Output()
	require.NoError(t, err, "go list -m all in tools/")
	var differ []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && ours[f[0]] != "" && ours[f[0]] != f[1] {
			differ = append(differ, f[0]+": "+ours[f[0]]+" here, "+f[1]+" in tools/go.mod")
		}
	}
	assert.Empty(t, differ, "align them: `go get MODULE@VERSION` in the module that has the older one, then `go mod tidy` in both")
}
