package render

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validModule() ModuleSpec {
	return ModuleSpec{
		Name:           "kmm-ci-a",
		Namespace:      "kmm-demo",
		Selector:       map[string]string{"kubernetes.io/os": "linux"},
		ContainerImage: "quay.io/org/${MOD_NAME}:${KERNEL_FULL_VERSION}",
		KernelMappings: Mappings{
			{Literal: "5.4.196-108.356.amzn2.x86_64", ContainerImage: "quay.io/org/kmm-ci-a:pinned"},
			{Regexp: `^5\.4\.`},
		},
	}
}

func TestModuleSpecValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(m *ModuleSpec)
		wantErr []string
	}{
		{name: "valid", mutate: func(m *ModuleSpec) {}},
		{name: "name upper case", mutate: func(m *ModuleSpec) { m.Name = "KMM-ci-a" }, wantErr: []string{`module name "KMM-ci-a"`}},
		{name: "name with a dot", mutate: func(m *ModuleSpec) { m.Name = "kmm.ci" }, wantErr: []string{`module name "kmm.ci"`}},
		{name: "name with _", mutate: func(m *ModuleSpec) { m.Name = "kmm_ci_a" }, wantErr: []string{`module name "kmm_ci_a"`}},
		{name: "name empty", mutate: func(m *ModuleSpec) { m.Name = "" }, wantErr: []string{`module name ""`}},
		{name: "name starts with -", mutate: func(m *ModuleSpec) { m.Name = "-kmm" }, wantErr: []string{`module name "-kmm"`}},
		{name: "namespace upper case", mutate: func(m *ModuleSpec) { m.Namespace = "KMM" }, wantErr: []string{`namespace "KMM"`}},
		{name: "namespace empty", mutate: func(m *ModuleSpec) { m.Namespace = "" }, wantErr: []string{`namespace ""`}},
		{
			name:   "name+namespace exactly 41",
			mutate: func(m *ModuleSpec) { m.Name = strings.Repeat("a", 20); m.Namespace = strings.Repeat("b", 21) },
		},
		{
			name:    "name+namespace 42",
			mutate:  func(m *ModuleSpec) { m.Name = strings.Repeat("a", 21); m.Namespace = strings.Repeat("b", 21) },
			wantErr: []string{"42 characters", "41"},
		},
		{name: "nil selector", mutate: func(m *ModuleSpec) { m.Selector = nil }, wantErr: []string{"kmm-demo/kmm-ci-a", "selector is empty"}},
		{name: "empty selector", mutate: func(m *ModuleSpec) { m.Selector = map[string]string{} }, wantErr: []string{"selector is empty"}},
		{name: "no mappings", mutate: func(m *ModuleSpec) { m.KernelMappings = nil }, wantErr: []string{"kmm-demo/kmm-ci-a", "no kernelMappings"}},
		{
			name: "mapping without image and no module image",
			mutate: func(m *ModuleSpec) {
				m.ContainerImage = ""
			},
			wantErr: []string{"kernelMappings[1]", `regexp ^5\.4\.`, "no containerImage"},
		},
		{
			name: "every mapping has its own image, no module image",
			mutate: func(m *ModuleSpec) {
				m.ContainerImage = ""
				m.KernelMappings[1].ContainerImage = "quay.io/org/kmm-ci-a:${KERNEL_XYZ}"
			},
		},
		{
			name:    "module image without tag",
			mutate:  func(m *ModuleSpec) { m.ContainerImage = "quay.io/org/kmm-ci-a" },
			wantErr: []string{"kernelMappings[1]", "neither a tag nor a digest"},
		},
		{
			name:    "mapping image without tag",
			mutate:  func(m *ModuleSpec) { m.KernelMappings[0].ContainerImage = "registry:5000/org/kmm-ci-a" },
			wantErr: []string{"kernelMappings[0]", "neither a tag nor a digest"},
		},
		{
			name:   "mapping image with digest",
			mutate: func(m *ModuleSpec) { m.KernelMappings[0].ContainerImage = "registry:5000/org/kmm-ci-a@sha256:abc" },
		},
		{
			name:    "invalid regexp",
			mutate:  func(m *ModuleSpec) { m.KernelMappings[1].Regexp = "^5\\.4\\.(" },
			wantErr: []string{"kmm-demo/kmm-ci-a", "kernelMappings[1]", "invalid regexp"},
		},
		{
			name:    "mapping with both literal and regexp",
			mutate:  func(m *ModuleSpec) { m.KernelMappings[0].Regexp = "^5" },
			wantErr: []string{"kernelMappings[0]", "both set"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validModule()
			tt.mutate(&m)
			err := m.Validate()
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				// Validate compiles the mappings: Match must not panic.
				assert.NotPanics(t, func() { m.KernelMappings.Match("5.4.190-107.353.amzn2.x86_64") })
				return
			}
			require.Error(t, err)
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestParseModuleSpec(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    *ModuleSpec
		wantErr []string
	}{
		{
			name: "valid",
			data: `{"name":"gdrdrv","namespace":"kmm-gpu","selector":{"a":"b"},"containerImage":"r/m:${KERNEL_FULL_VERSION}","kernelMappings":[{"regexp":"^5\\.4\\."}]}`,
			want: &ModuleSpec{
				Name: "gdrdrv", Namespace: "kmm-gpu", Selector: map[string]string{"a": "b"},
				ContainerImage: "r/m:${KERNEL_FULL_VERSION}",
				KernelMappings: Mappings{{Regexp: `^5\.4\.`}},
			},
		},
		{
			name:    "unknown top-level field rejected",
			data:    `{"name":"gdrdrv","namespace":"kmm-gpu","selector":{"a":"b"},"containerImage":"r/m:v1","kernelMappings":[{"literal":"x"}],"tolerations":[]}`,
			wantErr: []string{"render.kmm.dev/module", "tolerations"},
		},
		{
			name:    "unknown mapping field rejected",
			data:    `{"name":"gdrdrv","namespace":"kmm-gpu","selector":{"a":"b"},"containerImage":"r/m:v1","kernelMappings":[{"regex":"^5"}]}`,
			wantErr: []string{"regex"},
		},
		{
			name:    "malformed JSON",
			data:    `{"name":`,
			wantErr: []string{"is not a module"},
		},
		{
			name:    "empty",
			data:    ``,
			wantErr: []string{"is not a module"},
		},
		{
			name:    "valid JSON, invalid module",
			data:    `{"name":"gdrdrv","namespace":"kmm-gpu","selector":{},"containerImage":"r/m:v1","kernelMappings":[{"literal":"x"}]}`,
			wantErr: []string{"selector is empty"},
		},
		{
			name:    "valid JSON, image without tag",
			data:    `{"name":"gdrdrv","namespace":"kmm-gpu","selector":{"a":"b"},"containerImage":"r/m","kernelMappings":[{"literal":"x"}]}`,
			wantErr: []string{"kernelMappings[0]", "neither a tag nor a digest"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseModuleSpec(tt.data)
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				assert.Nil(t, got)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want.Name, got.Name)
			assert.Equal(t, tt.want.Namespace, got.Namespace)
			assert.Equal(t, tt.want.Selector, got.Selector)
			assert.Equal(t, tt.want.ContainerImage, got.ContainerImage)
			require.Len(t, got.KernelMappings, len(tt.want.KernelMappings))
			for i := range tt.want.KernelMappings {
				assert.Equal(t, tt.want.KernelMappings[i].Literal, got.KernelMappings[i].Literal)
				assert.Equal(t, tt.want.KernelMappings[i].Regexp, got.KernelMappings[i].Regexp)
				assert.Equal(t, tt.want.KernelMappings[i].ContainerImage, got.KernelMappings[i].ContainerImage)
			}
			assert.Equal(t, tt.want.Namespace+"/"+tt.want.Name, got.ID())
		})
	}
}

func TestModuleSpecImageFor(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(m *ModuleSpec)
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
			mutate: func(m *ModuleSpec) {
				m.KernelMappings[0].ContainerImage = "r/${MOD_NAMESPACE}/${MOD_NAME}:cos-${KERNEL_XYZ}"
			},
			kernel: "6.1.100+", want: "r/kmm-demo/kmm-ci-a:cos-6.1.100",
		},
		{
			name: "undefined variable: error names module and mapping", mapping: 1,
			mutate: func(m *ModuleSpec) { m.ContainerImage = "r/m:${KERNEL_XYZ}" },
			kernel: "custom", wantErr: []string{"kmm-demo/kmm-ci-a", "kernelMappings[1]", "KERNEL_XYZ"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validModule()
			if tt.mutate != nil {
				tt.mutate(&m)
			}
			require.NoError(t, m.Validate())
			got, err := m.ImageFor(tt.mapping, tt.kernel)
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
