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
	"testing"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"

	"kmm.dev/kmm/pkg/postrender"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const chartDir = "../../charts/kmm"

// render runs `helm template kmm charts/kmm -n kmm-system -f values --set certManager.enabled=true
// --api-versions kmm.sigs.x-k8s.io/v1beta1/Module --post-renderer kmm-render --nodes nodes` in
// process; post may be nil for no post-renderer.
func render(t *testing.T, values string, post *postrender.Renderer) (string, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	require.NoError(t, err)
	vals := map[string]any{}
	if values != "" {
		vals, err = chartutil.ReadValuesFile(values)
		require.NoError(t, err)
	}
	// A self-signed webhook certificate is generated anew on every render without a cluster;
	// with cert-manager the output is deterministic, which golden files need.
	vals["certManager"] = map[string]any{"enabled": true}
	// The CRDs are generated (make generate, checked by make lint); they would only bloat these.
	vals["crds"] = map[string]any{"enabled": false}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = "kmm"
	install.Namespace = "kmm-system"
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}
	// As on a cluster that already serves the Module CRD (the release's second revision).
	install.APIVersions = []string{"kmm.sigs.x-k8s.io/v1beta1/Module"}
	if post != nil {
		install.PostRenderer = postrender.HelmV3(context.Background(), post)
	}
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	b.WriteString(rel.Manifest)
	for _, h := range rel.Hooks {
		b.WriteString("---\n# Source: " + h.Path + "\n" + h.Manifest + "\n")
	}
	return b.String(), nil
}

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
			out, err := render(t, filepath.Join(dir, "values.yaml"), r)
			require.NoError(t, err)
			golden(t, example+".yaml", out)
			golden(t, example+".warnings.txt", warnings.String())

			// Identical input, identical bytes.
			again, err := render(t, filepath.Join(dir, "values.yaml"), postrender.New(postrender.Options{
				Nodes: postrender.FileNodes(filepath.Join(dir, "nodes.yaml")),
			}))
			require.NoError(t, err)
			require.Equal(t, out, again)
		})
	}
}
