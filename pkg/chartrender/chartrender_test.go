package chartrender

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"kmm.dev/kmm/pkg/module"
)

const chartDir = "../../charts/kmm"

// Every example's modules pass KMM's admission rules, as kmm-render applies them: an example can
// never ship a module that KMM refuses.
func TestExamplesModulesPassKMMRules(t *testing.T) {
	for _, example := range []string{"eks", "gke", "ubuntu"} {
		t.Run(example, func(t *testing.T) {
			values := filepath.Join("..", "..", "examples", example, "values.yaml")
			data, err := os.ReadFile(values)
			require.NoError(t, err)
			var declared struct {
				Modules []map[string]any `json:"modules"`
			}
			require.NoError(t, yaml.Unmarshal(data, &declared))
			require.NotEmpty(t, declared.Modules)

			r, err := Render(context.Background(), Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{values}})
			require.NoError(t, err)
			ms, err := r.Modules()
			require.NoError(t, err)
			require.Len(t, ms, len(declared.Modules))
			for i, m := range ms {
				assert.Equal(t, declared.Modules[i]["name"], m.Name)
				assert.Empty(t, m.Validate(module.ValuesPaths(i)), m.ID())
			}
		})
	}
}

func TestRenderValues(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "a.yaml")
	second := filepath.Join(dir, "b.yaml")
	require.NoError(t, os.WriteFile(first, []byte(`modules:
  - name: a
    selector: {kubernetes.io/os: linux}
    moduleLoader:
      container:
        containerImage: r/a:v1
        modprobe: {moduleName: a}
        kernelMappings: [{regexp: "."}]
`), 0o644))
	require.NoError(t, os.WriteFile(second, []byte("controller:\n  enabled: false\n"), 0o644))
	tests := []struct {
		name string
		o    Options
		want func(t *testing.T, ms []*moduleView)
	}{
		{
			name: "files, then --set, then --set-string, in Helm's order",
			o: Options{ValueFiles: []string{first, second}, Namespace: "ns1",
				Values:       []string{"modules[0].moduleLoader.container.containerImage=r/a:v2"},
				StringValues: []string{"modules[0].selector.pool=007"}},
			want: func(t *testing.T, ms []*moduleView) {
				require.Len(t, ms, 1)
				assert.Equal(t, "ns1/a", ms[0].id)
				assert.Equal(t, "r/a:v2", ms[0].image)
				assert.Equal(t, map[string]string{"kubernetes.io/os": "linux", "pool": "007"}, ms[0].selector)
			},
		},
		{
			name: "the embedded chart is the chart",
			o:    Options{ValueFiles: []string{first}},
			want: func(t *testing.T, ms []*moduleView) {
				require.Len(t, ms, 1)
				assert.Equal(t, "default/a", ms[0].id)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.o.ChartDir == "" && tt.name != "the embedded chart is the chart" {
				tt.o.ChartDir = chartDir
			}
			r, err := Render(context.Background(), tt.o)
			require.NoError(t, err)
			ms, err := r.Modules()
			require.NoError(t, err)
			var views []*moduleView
			for _, m := range ms {
				views = append(views, &moduleView{id: m.ID(), image: m.Container().ContainerImage, selector: m.Selector})
			}
			tt.want(t, views)
		})
	}
}

type moduleView struct {
	id, image string
	selector  map[string]string
}

func TestEmbeddedChartMatchesChartsDir(t *testing.T) {
	values := filepath.Join("..", "..", "examples", "eks", "values.yaml")
	sets := []string{"certManager.enabled=true"}
	embedded, err := Render(context.Background(), Options{ValueFiles: []string{values}, Values: sets})
	require.NoError(t, err)
	onDisk, err := Render(context.Background(), Options{ChartDir: chartDir, ValueFiles: []string{values}, Values: sets})
	require.NoError(t, err)
	assert.Equal(t, onDisk.Manifests, embedded.Manifests)
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{name: "missing values file", o: Options{ChartDir: chartDir, ValueFiles: []string{"nope.yaml"}}, want: "nope.yaml"},
		{name: "schema", o: Options{ChartDir: chartDir, Values: []string{"modules[0].name=x", "modules[0].selectr.a=b"}}, want: "selectr"},
		{name: "missing chart", o: Options{ChartDir: "nope"}, want: "loading chart nope"},
		{name: "kube version", o: Options{ChartDir: chartDir, KubeVersion: "one"}, want: `kube version "one"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(context.Background(), tt.o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestDefaultKubeVersion(t *testing.T) {
	assert.Regexp(t, `^v1\.\d+\.\d+`, DefaultKubeVersion())
}
