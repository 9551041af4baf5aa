package render

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

type wantValuesModule struct {
	id             string
	selector       map[string]string
	containerImage string
	mappings       []string // Describe() of each
	mappingImages  []string
	tolerations    []corev1.Toleration
	via            string
}

func TestModulesFromValuesExamples(t *testing.T) {
	tests := []struct {
		example string
		want    []wantValuesModule
	}{
		{
			example: "eks",
			want: []wantValuesModule{
				{
					id:             "kmm-demo/kmm-ci-a",
					selector:       map[string]string{"kubernetes.io/os": "linux"},
					containerImage: "123456789012.dkr.ecr.us-west-2.amazonaws.com/kmm/${MOD_NAME}:${KERNEL_FULL_VERSION}",
					mappings: []string{
						"literal 5.4.196-108.356.amzn2.x86_64",
						`regexp ^5\.4\.\d+-\d+\.\d+\.amzn2\.x86_64$`,
						`regexp ^6\.1\.\d+-\d+\.\d+\.amzn2023\.x86_64$`,
					},
					mappingImages: []string{"123456789012.dkr.ecr.us-west-2.amazonaws.com/kmm/kmm-ci-a:5.4.196-108.356.amzn2", "", ""},
				},
				{
					id:             "kmm-gpu/gdrdrv",
					selector:       map[string]string{"eks.amazonaws.com/nodegroup": "gpu-al2-ng", "kmm.example.com/gpu": "true"},
					containerImage: "123456789012.dkr.ecr.us-west-2.amazonaws.com/kmm/${MOD_NAME}:${KERNEL_FULL_VERSION}",
					mappings:       []string{`regexp ^5\.4\.\d+-\d+\.\d+\.amzn2\.x86_64$`},
					mappingImages:  []string{""},
					tolerations: []corev1.Toleration{{
						Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule,
					}},
				},
				{
					id:            "kmm-demo/kmm-ci-b",
					selector:      map[string]string{"eks.amazonaws.com/nodegroup": "al2023-ng"},
					mappings:      []string{`regexp ^6\.1\.\d+-\d+\.\d+\.amzn2023\.x86_64$`},
					mappingImages: []string{"123456789012.dkr.ecr.us-west-2.amazonaws.com/kmm/kmm-ci-b:${KERNEL_FULL_VERSION}"},
					via:           "operator",
				},
			},
		},
		{
			example: "gke",
			want: []wantValuesModule{
				{
					id:             "kmm-demo/kmm-ci-a-cos",
					selector:       map[string]string{"cloud.google.com/gke-os-distribution": "cos"},
					containerImage: "us-central1-docker.pkg.dev/my-project/kmm/kmm-ci-a:cos-${KERNEL_XYZ}",
					mappings:       []string{`regexp ^5\.10\.109$`, `regexp ^6\.1\.\d+$`},
					mappingImages: []string{
						"us-central1-docker.pkg.dev/my-project/kmm/kmm-ci-a@sha256:0f89b405db0de55cfa93b0641f6b23e878c0859bb25cda6f958c7be5b6f0033f",
						"",
					},
				},
				{
					id:             "kmm-demo/kmm-ci-a-ubuntu",
					selector:       map[string]string{"cloud.google.com/gke-os-distribution": "ubuntu", "cloud.google.com/gke-nodepool": "ubuntu-pool"},
					containerImage: "us-central1-docker.pkg.dev/my-project/kmm/kmm-ci-a:${KERNEL_FULL_VERSION}",
					mappings:       []string{`regexp ^5\.15\.0-\d+-gke$`},
					mappingImages:  []string{""},
				},
			},
		},
		{
			example: "ubuntu",
			want: []wantValuesModule{
				{
					id:             "kmm-demo/kmm-ci-a",
					selector:       map[string]string{"kubernetes.io/os": "linux"},
					containerImage: "registry.lab.example.com/kmm/${MOD_NAME}:${KERNEL_FULL_VERSION}",
					mappings:       []string{"literal 5.15.0-105-generic", "literal 6.8.0-51-generic"},
					mappingImages:  []string{"", ""},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.example, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "examples", tt.example, "values.yaml"))
			require.NoError(t, err)
			got, err := ModulesFromValues(data, "release-ns")
			require.NoError(t, err)
			require.Len(t, got, len(tt.want))
			for i, w := range tt.want {
				g := got[i]
				assert.Equal(t, w.id, g.Spec.ID())
				assert.Equal(t, w.selector, g.Spec.Selector)
				assert.Equal(t, w.containerImage, g.Spec.ContainerImage)
				require.Len(t, g.Spec.KernelMappings, len(w.mappings))
				for j, d := range w.mappings {
					assert.Equal(t, d, g.Spec.KernelMappings[j].Describe())
					assert.Equal(t, w.mappingImages[j], g.Spec.KernelMappings[j].ContainerImage)
				}
				assert.Equal(t, w.tolerations, g.Tolerations)
				assert.Equal(t, w.via, g.Via)
				// Validated, so compiled: matching does not panic.
				assert.NotPanics(t, func() { g.Spec.KernelMappings.Match("5.10.109+") })
			}
		})
	}
}

func TestModulesFromValues(t *testing.T) {
	tests := []struct {
		name    string
		values  string
		wantIDs []string
		wantVia []string
		wantErr []string
	}{
		{
			name: "default namespace applied when missing",
			values: `
modules:
  - name: a
    selector: {os: linux}
    moduleLoader:
      container:
        containerImage: r/a:${KERNEL_FULL_VERSION}
        kernelMappings: [{literal: "5.10.109"}]
  - name: b
    namespace: own
    selector: {os: linux}
    via: operator
    moduleLoader:
      container:
        containerImage: r/b:v1
        kernelMappings: [{regexp: "^5"}]
`,
			wantIDs: []string{"release-ns/a", "own/b"},
			wantVia: []string{"", "operator"},
		},
		{
			name: "empty namespace string also defaulted",
			values: `
modules:
  - name: a
    namespace: ""
    selector: {os: linux}
    moduleLoader: {container: {containerImage: "r/a:v1", kernelMappings: [{literal: x}]}}
`,
			wantIDs: []string{"release-ns/a"},
			wantVia: []string{""},
		},
		{
			name:    "no modules key",
			values:  "loader: {}\n",
			wantIDs: []string{},
		},
		{
			name:    "empty modules list (the chart default)",
			values:  "modules: []\n",
			wantIDs: []string{},
		},
		{
			name: "invalid module: error names its index",
			values: `
modules:
  - name: ok
    selector: {os: linux}
    moduleLoader: {container: {containerImage: "r/a:v1", kernelMappings: [{literal: x}]}}
  - name: bad
    selector: {os: linux}
    moduleLoader: {container: {containerImage: "r/a", kernelMappings: [{literal: x}]}}
`,
			wantErr: []string{"modules[1]", "neither a tag nor a digest"},
		},
		{
			name: "invalid regexp: error names module index and mapping index",
			values: `
modules:
  - name: bad
    selector: {os: linux}
    moduleLoader: {container: {containerImage: "r/a:v1", kernelMappings: [{literal: x}, {regexp: "("}]}}
`,
			wantErr: []string{"modules[0]", "kernelMappings[1]", "invalid regexp"},
		},
		{
			name: "missing selector",
			values: `
modules:
  - name: bad
    moduleLoader: {container: {containerImage: "r/a:v1", kernelMappings: [{literal: x}]}}
`,
			wantErr: []string{"modules[0]", "selector is empty"},
		},
		{
			name:    "malformed YAML",
			values:  "modules: [\n",
			wantErr: []string{"values"},
		},
		{
			name:    "modules is not a list",
			values:  "modules: {a: b}\n",
			wantErr: []string{"values: modules"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ModulesFromValues([]byte(tt.values), "release-ns")
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			ids := []string{}
			vias := []string{}
			for _, m := range got {
				ids = append(ids, m.Spec.ID())
				vias = append(vias, m.Via)
			}
			assert.Equal(t, tt.wantIDs, ids)
			if tt.wantVia != nil {
				assert.Equal(t, tt.wantVia, vias)
			}
		})
	}
}

func TestModulesFromChartDefaultValues(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "charts", "kmm", "values.yaml"))
	require.NoError(t, err)
	got, err := ModulesFromValues(data, "default")
	require.NoError(t, err)
	assert.Empty(t, got)
}
