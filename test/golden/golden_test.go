// Package golden renders charts/kmm with the Helm v3 SDK, in process, for each example and
// post-renders it against the example's node snapshot, comparing with golden files.
//
//	go test ./test/golden -update   # rewrite testdata/, then review the diff
package golden

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/postrender"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const chartDir = "../../charts/kmm"

// renderChart runs `helm template kmm charts/kmm -n kmm-system -f values --set sets...
// --post-renderer kmm-render` in process, through the same package as `kmm-render nodes`; post
// may be nil for no post-renderer. The hooks follow the manifests.
func renderChart(t *testing.T, values string, sets []string, apiVersions []string, post *postrender.Renderer) (string, error) {
	t.Helper()
	o := chartrender.Options{
		ChartDir:    chartDir,
		ReleaseName: "kmm",
		Namespace:   "kmm-system",
		Values:      sets,
		APIVersions: apiVersions,
		KubeVersion: "v1.37.2",
	}
	if values != "" {
		o.ValueFiles = []string{values}
	}
	if post != nil {
		o.PostRenderer = postrender.HelmV3(context.Background(), post)
	}
	rel, err := chartrender.Render(context.Background(), o)
	if err != nil {
		return "", err
	}
	return rel.Manifests + strings.Join(rel.Hooks, ""), nil
}

// generated matches the values the chart generates anew on every render without a cluster:
// the self-signed webhook CA, certificate and keys, their expiry (which moves with the clock), and
// the checksum of them on the webhook pods.
var generated = regexp.MustCompile(`(?m)^(\s*(?:ca\.crt|ca\.key|tls\.crt|tls\.key|caBundle|checksum/tls|kmm\.dev/webhook-tls-(?:ca-)?not-after):\s*).+$`)

func normalize(s string) string { return generated.ReplaceAllString(s, "${1}<generated>") }

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "golden file missing: run go test ./test/golden -update")
	require.Equal(t, string(want), got, "output differs from %s (go test ./test/golden -update, then review the diff)", path)
}

func TestExamplesRenderAndExpand(t *testing.T) {
	for _, example := range []string{"eks", "gke", "ubuntu"} {
		t.Run(example, func(t *testing.T) {
			dir := filepath.Join("..", "..", "examples", example)
			var warnings bytes.Buffer
			r := postrender.New(postrender.Options{
				Nodes:    postrender.FileNodes(filepath.Join(dir, "nodes.yaml")),
				Warnings: &warnings,
			})
			// cert-manager makes the webhook certificate, so the output is deterministic; the CRDs
			// are generated (make generate) and pinned by the default-install golden file.
			sets := []string{"certManager.enabled=true", "crds.enabled=false"}
			out, err := renderChart(t, filepath.Join(dir, "values.yaml"), sets, nil, r)
			require.NoError(t, err)
			golden(t, example+".yaml", out)
			golden(t, example+".warnings.txt", warnings.String())

			// Identical input, identical bytes.
			again, err := renderChart(t, filepath.Join(dir, "values.yaml"), sets, nil, postrender.New(postrender.Options{
				Nodes: postrender.FileNodes(filepath.Join(dir, "nodes.yaml")),
			}))
			require.NoError(t, err)
			require.Equal(t, out, again)
		})
	}
}

// The default install: the chart's own values, CRDs, the controller and a self-signed webhook
// certificate (normalised), through kmm-render.
func TestDefaultInstall(t *testing.T) {
	var warnings bytes.Buffer
	out, err := renderChart(t, "", nil, nil, postrender.New(postrender.Options{Nodes: postrender.FileNodes("../../examples/eks/nodes.yaml"), Warnings: &warnings}))
	require.NoError(t, err)
	require.NotEqual(t, out, normalize(out), "the self-signed certificate is normalised")
	golden(t, "default.yaml", normalize(out))
	assert.Empty(t, warnings.String())
}

// On a cluster that already serves the Module API (every upgrade after the first install),
// operator Modules are plain release objects; on the install that creates the CRDs they are
// post-install hooks carrying Helm's ownership metadata, so that the next upgrade adopts them.
func TestOperatorModulesFirstInstallAndUpgrade(t *testing.T) {
	values := "../../examples/eks/values.yaml"
	nodes := postrender.FileNodes("../../examples/eks/nodes.yaml")
	sets := []string{"certManager.enabled=true"}
	first, err := renderChart(t, values, sets, nil, postrender.New(postrender.Options{Nodes: nodes}))
	require.NoError(t, err)
	upgrade, err := renderChart(t, values, sets, []string{"kmm.sigs.x-k8s.io/v1beta1/Module"}, postrender.New(postrender.Options{Nodes: nodes}))
	require.NoError(t, err)

	const moduleHead = "apiVersion: kmm.sigs.x-k8s.io/v1beta1\nkind: Module\n"
	module := func(out string) string {
		i := strings.Index(out, moduleHead)
		require.GreaterOrEqual(t, i, 0, "no Module rendered")
		end := strings.Index(out[i:], "\n---")
		if end < 0 {
			end = len(out) - i
		}
		return out[i : i+end]
	}
	hook := module(first)
	assert.Contains(t, hook, "helm.sh/hook: post-install,post-upgrade")
	assert.Contains(t, hook, "meta.helm.sh/release-name: kmm")
	assert.Contains(t, hook, "meta.helm.sh/release-namespace: kmm-system")
	assert.NotContains(t, hook, "hook-delete-policy")
	plain := module(upgrade)
	assert.NotContains(t, plain, "helm.sh/hook")
	assert.NotContains(t, plain, "meta.helm.sh/release-name")
	manifests, _, _ := strings.Cut(upgrade, "# Source: kmm/templates/tests/")
	assert.Contains(t, manifests, moduleHead, "on upgrade, the Module is a release object")
}
