package contract

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

const chart = "../../charts/kmm"

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chart, path))
	require.NoError(t, err)
	return string(b)
}

// The chart spells the contract's names as this package defines them.
func TestChartSpellsTheContract(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"templates/modules-configmap.yaml", []string{
			"kind: ConfigMap",
			AnnotationModules + ": " + ModulesFormat,
			AnnotationPlatformLabels + `: "false"`,
			ModulesKey + ":",
		}},
		{"templates/module-loader.yaml", []string{
			"kind: DaemonSet",
			AnnotationExpand + ": " + ExpandModuleLoader,
			AnnotationModule + `: {{ printf "%s/%s" $ns $m.name }}`,
			"- name: " + LoaderContainer,
			LabelPostRendererRequired + ": required",
			"- name: " + ContainerWaitImage,
			"- name: " + ContainerSign,
			AnnotationNodeLoaderImage + ":",
			`include "kmm.build.container"`,
		}},
		{"templates/_helpers.tpl", []string{
			"- name: " + ContainerBuild,
			"mountPath: " + NodeBuildMount,
		}},
		{"templates/module-build.yaml", []string{
			"kind: Job",
			AnnotationExpand + ": " + ExpandModuleBuild,
			AnnotationModule + `: {{ printf "%s/%s" $ns $m.name }}`,
			"- name: " + ContainerCheck,
			`include "kmm.build.container"`,
			LabelPostRendererRequired + ": required",
		}},
		{"templates/module-device-plugin.yaml", []string{
			"kind: DaemonSet",
			AnnotationExpand + ": " + ExpandDevicePlugin,
			AnnotationModule + `: {{ printf "%s/%s" $ns $m.name }}`,
			LabelPostRendererRequired + ": required",
		}},
		{"templates/module-dockerfiles.yaml", []string{
			`printf "%s` + DockerfileConfigMapSuffix + `" $m.name`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			s := read(t, tt.file)
			for _, w := range tt.want {
				assert.Contains(t, s, w)
			}
		})
	}
}

// The KMM version whose rules kmm enforces is the version the chart installs: Chart.yaml says so,
// and every KMM image tag of values.yaml ends in it.
func TestKMMVersionPinnedWithTheImages(t *testing.T) {
	var c struct {
		Annotations map[string]string `json:"annotations"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(read(t, "Chart.yaml")), &c))
	assert.Equal(t, KMMVersion, c.Annotations["kmm.dev/kmm-version"])

	var v struct {
		Controller map[string]any `json:"controller"`
		Webhook    map[string]any `json:"webhook"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(read(t, "values.yaml")), &v))
	tags := map[string]any{
		"controller.image":       v.Controller["image"],
		"controller.workerImage": v.Controller["workerImage"],
		"controller.signImage":   v.Controller["signImage"],
		"webhook.image":          v.Webhook["image"],
	}
	for name, img := range tags {
		m, ok := img.(map[string]any)
		require.True(t, ok, name)
		tag, _ := m["tag"].(string)
		assert.True(t, strings.HasSuffix(tag, "-"+KMMVersion), "%s.tag %q must end in -%s", name, tag, KMMVersion)
	}
}
