package render

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"kmm.dev/kmm/pkg/module"
)

// decodeModule decodes a module as the chart's module list holds it.
func decodeModule(t *testing.T, data string) *module.Module {
	t.Helper()
	var m module.Module
	require.NoError(t, module.Decode([]byte(data), &m))
	return &m
}

// compile decodes and compiles a module, failing the test on any error.
func compile(t *testing.T, data string) *Module {
	t.Helper()
	rm, err := NewModule(decodeModule(t, data))
	require.NoError(t, err)
	return rm
}

func validModule(t *testing.T) *module.Module {
	return decodeModule(t, `{"name":"kmm-ci-a","namespace":"kmm-demo","selector":{"kubernetes.io/os":"linux"},
		"moduleLoader":{"container":{"containerImage":"quay.io/org/${MOD_NAME}:${KERNEL_FULL_VERSION}","modprobe":{"moduleName":"kmm_ci_a"},
		"kernelMappings":[{"literal":"5.4.196-108.356.amzn2.x86_64","containerImage":"quay.io/org/kmm-ci-a:pinned"},{"regexp":"^5\\.4\\."}]}}}`)
}

func TestNewModule(t *testing.T) {
	rm := compile(t, `{"name":"a","namespace":"n","selector":{"k":"v"},"moduleLoader":{"container":{"modprobe":{"moduleName":"a"},
		"kernelMappings":[{"literal":"6.1.0","containerImage":"r/a:1"},{"regexp":"^6\\.","containerImage":"r/a:2"}]}}}`)
	require.Len(t, rm.Mappings, 2)
	assert.Equal(t, 0, rm.Mappings.Match("6.1.0"))
	assert.Equal(t, 1, rm.Mappings.Match("6.2.0"))
	assert.Equal(t, -1, rm.Mappings.Match("5.2.0"))

	_, err := NewModule(decodeModule(t, `{"name":"a","namespace":"n","moduleLoader":{"container":{"kernelMappings":[{"regexp":"("}]}}}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "module n/a: kernelMappings[0]: invalid regexp")

	dp, err := NewModule(decodeModule(t, `{"name":"a","namespace":"n","via":"operator","devicePlugin":{"container":{"image":"r/dp:1"}}}`))
	require.NoError(t, err)
	assert.Empty(t, dp.Mappings)
}

func TestModuleImageFor(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(m *module.Module)
		mapping int
		kernel  string
		want    string
		wantErr []string
	}{
		{
			name: "mapping image overrides module image", mapping: 0,
			kernel: "5.4.196-108.356.amzn2.x86_64", want: "quay.io/org/kmm-ci-a:pinned",
		},
		{
			name: "module image used when mapping has none", mapping: 1,
			kernel: "5.4.190-107.353.amzn2.x86_64", want: "quay.io/org/kmm-ci-a:5.4.190-107.353.amzn2.x86_64",
		},
		{
			name: "mapping image with variables", mapping: 0,
			mutate: func(m *module.Module) {
				m.Container().KernelMappings[0].ContainerImage = "r/${MOD_NAMESPACE}/${MOD_NAME}:cos-${KERNEL_XYZ}"
			},
			kernel: "6.1.100+", want: "r/kmm-demo/kmm-ci-a:cos-6.1.100",
		},
		{
			name: "a kernel that makes an invalid tag: error names module, mapping and kernel", mapping: 1,
			mutate: func(m *module.Module) { m.Container().ContainerImage = "r/m:${KERNEL_X}" },
			kernel: "-x.y.z", wantErr: []string{"kmm-demo/kmm-ci-a", "kernelMappings[1], kernel -x.y.z", "not a valid image reference"},
		},
		{
			name: "undefined variable: error names module and mapping", mapping: 1,
			mutate: func(m *module.Module) { m.Container().ContainerImage = "r/m:${KERNEL_XYZ}" },
			kernel: "custom", wantErr: []string{"kmm-demo/kmm-ci-a", "kernelMappings[1]", "KERNEL_XYZ"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validModule(t)
			if tt.mutate != nil {
				tt.mutate(m)
			}
			require.Empty(t, m.Validate(module.ValuesPaths(0)))
			rm, err := NewModule(m)
			require.NoError(t, err)
			got, err := rm.ImageFor(tt.mapping, tt.kernel)
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
