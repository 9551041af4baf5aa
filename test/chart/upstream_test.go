package chart

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/kustomize/kyaml/kio"

	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/postrender"
	"kmm.dev/kmm/test/upstream"
)

func renderUpstream(t *testing.T, e upstream.Example, via string) (string, error) {
	t.Helper()
	values, err := e.Values(via)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(file, values, 0o644))
	r, err := chartrender.Render(context.Background(), chartrender.Options{
		ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{file},
		// A cluster that serves KMM's Module API: the Modules are then release objects, post-rendered,
		// and not the first install's hooks (operator-modules.yaml).
		APIVersions:  []string{"kmm.sigs.x-k8s.io/v1beta1/Module"},
		PostRenderer: postrender.HelmV3(context.Background(), postrender.New(postrender.Options{Nodes: postrender.FileNodes(filepath.Join("..", "..", e.Nodes))})),
	})
	if err != nil {
		return "", err
	}
	return r.Manifests, nil
}

// modulesIn returns the KMM Module objects of a stream, decoded.
func modulesIn(t *testing.T, stream string) []map[string]any {
	t.Helper()
	docs, err := kio.FromBytes([]byte(stream))
	require.NoError(t, err)
	var modules []map[string]any
	for _, d := range docs {
		if d.GetKind() != "Module" || d.GetApiVersion() != "kmm.sigs.x-k8s.io/v1beta1" {
			continue
		}
		var obj map[string]any
		require.NoError(t, d.YNode().Decode(&obj))
		modules = append(modules, obj)
	}
	return modules
}

// TestUpstreamModulesViaOperator: each of KMM's published Module examples, its spec pasted into
// a `via: operator` module, renders through kmm-render into a Module whose spec is the example's,
// field for field (placeholders such as <aws-account-id> included: KMM accepts them).
func TestUpstreamModulesViaOperator(t *testing.T) {
	for _, e := range upstream.Examples {
		t.Run(e.File, func(t *testing.T) {
			name, spec, err := e.Spec()
			require.NoError(t, err)
			out, err := renderUpstream(t, e, "operator")
			require.NoError(t, err)
			modules := modulesIn(t, out)
			require.Len(t, modules, 1)
			meta := modules[0]["metadata"].(map[string]any)
			assert.Equal(t, name, meta["name"])
			assert.Equal(t, upstream.Namespace, meta["namespace"])
			want, err := json.Marshal(spec)
			require.NoError(t, err)
			got, err := json.Marshal(modules[0]["spec"])
			require.NoError(t, err)
			assert.JSONEq(t, string(want), string(got), "the Module's spec is the example's, every field kept")
		})
	}
}

// TestUpstreamModulesViaHelm: the same specs as helm-managed modules are refused, with one line
// per field kmm cannot honour that names its values path and says why.
func TestUpstreamModulesViaHelm(t *testing.T) {
	for _, e := range upstream.Examples {
		t.Run(e.File, func(t *testing.T) {
			_, err := renderUpstream(t, e, "helm")
			require.Error(t, err)
			for _, w := range e.HelmRefused {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
