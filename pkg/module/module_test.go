package module

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sigsyaml "sigs.k8s.io/yaml"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
)

func TestDecodeList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr []string
		check   func(t *testing.T, ms []Module)
	}{
		{
			name: "helm and operator modules",
			in: `[{"name":"a","namespace":"ns","selector":{"k":"v"},"tolerations":[{"key":"gpu","operator":"Exists"}],
			       "moduleLoader":{"container":{"containerImage":"r/a:1","modprobe":{"moduleName":"a"},"kernelMappings":[{"regexp":"^6"}]}},
			       "loader":{"priorityClassName":"system-node-critical","maxUnavailable":"10%"}},
			      {"name":"b","namespace":"ns","via":"operator","selector":{"k":"v"},"devicePlugin":{"container":{"image":"r/dp:1"}}}]`,
			check: func(t *testing.T, ms []Module) {
				require.Len(t, ms, 2)
				assert.Equal(t, "ns/a", ms[0].ID())
				assert.False(t, ms[0].Operator())
				assert.Equal(t, "r/a:1", ms[0].Container().ContainerImage)
				assert.Equal(t, "system-node-critical", ms[0].Loader.PriorityClassName)
				assert.Equal(t, "10%", ms[0].Loader.MaxUnavailable.String())
				assert.Equal(t, "gpu", ms[0].Tolerations[0].Key)
				assert.True(t, ms[1].Operator())
				assert.Nil(t, ms[1].Container())
				assert.Equal(t, "r/dp:1", ms[1].DevicePlugin.Container.Image)
			},
		},
		{
			name:    "misspelled field deep down",
			in:      `[{"name":"ok","selector":{"k":"v"}},{"name":"a","namespace":"ns","moduleLoader":{"container":{"kernelMapping":[]}}}]`,
			wantErr: []string{`modules[1] (ns/a)`, `unknown field "moduleLoader.container.kernelMapping"`},
		},
		{
			name:    "unknown top-level field",
			in:      `[{"name":"a","selectors":{"k":"v"}}]`,
			wantErr: []string{`modules[0] (a)`, `unknown field "selectors"`},
		},
		{
			name:    "repeated field",
			in:      `[{"name":"a","name":"b"}]`,
			wantErr: []string{`modules[0]`, `duplicate field "name"`},
		},
		{
			name:    "wrong type names the JSON path",
			in:      `[{"name":"a","moduleLoader":{"container":{"modprobe":{"moduleName":7}}}}]`,
			wantErr: []string{`modules[0] (a)`, `field "moduleLoader.container.modprobe.moduleName": a JSON number cannot be a string`},
		},
		{
			name:    "not a list",
			in:      `{"name":"a"}`,
			wantErr: []string{"modules: not a JSON list"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := DecodeList([]byte(tt.in))
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, w := range tt.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			tt.check(t, ms)
		})
	}
}

func TestDecodeObject(t *testing.T) {
	var o kmmv1beta1.Module
	err := Decode([]byte(`{"apiVersion":"kmm.sigs.x-k8s.io/v1beta1","kind":"Module","metadata":{"name":"a"},"spec":{"selector":{},"moduleLoader":{"container":{"modprobe":{"moduleNmae":"x"}}}}}`), &o)
	require.Error(t, err)
	assert.Equal(t, `unknown field "spec.moduleLoader.container.modprobe.moduleNmae"`, err.Error())
}

func TestDescribeMapping(t *testing.T) {
	assert.Equal(t, "literal 6.1.0", DescribeMapping(&kmmv1beta1.KernelMapping{Literal: "6.1.0"}))
	assert.Equal(t, `regexp ^6\.1`, DescribeMapping(&kmmv1beta1.KernelMapping{Regexp: `^6\.1`}))
	assert.Equal(t, `literal "a" and regexp "b"`, DescribeMapping(&kmmv1beta1.KernelMapping{Literal: "a", Regexp: "b"}))
}

// A module's `loader:` overrides the chart's `loader:` defaults key for key: every default is a
// field of LoaderOverrides.
func TestLoaderOverridesCoverTheChartDefaults(t *testing.T) {
	data, err := os.ReadFile("../../charts/kmm/values.yaml")
	require.NoError(t, err)
	var values struct {
		Loader json.RawMessage `json:"loader"`
	}
	require.NoError(t, sigsyaml.Unmarshal(data, &values))
	var o LoaderOverrides
	require.NoError(t, Decode(values.Loader, &o))
	assert.NotEmpty(t, o.FirmwareHostPath)
	assert.NotNil(t, o.Resources)
}
