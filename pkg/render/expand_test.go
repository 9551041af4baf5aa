package render

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/nodes"
)

const testModuleJSON = `{"name":"kmm-ci-a","namespace":"kmm-demo",` +
	`"selector":{"kubernetes.io/os":"linux","pool":"gpu"},` +
	`"tolerations":[{"key":"nvidia.com/gpu","operator":"Equal","value":"true","effect":"NoSchedule"},` +
	`{"key":"example.com/maintenance","operator":"Exists"}],` +
	`"moduleLoader":{"container":{"containerImage":"r/kmm-ci-a:${KERNEL_FULL_VERSION}",` +
	`"modprobe":{"moduleName":"kmm_ci_a","parameters":["debug=1"]},` +
	`"kernelMappings":[{"literal":"5.15.0-105-generic"},` +
	`{"regexp":"^5\\.10\\.109$","containerImage":"r/kmm-ci-a:cos-${KERNEL_XYZ}"}]}}}`

// templateYAML is a loader template shaped like charts/kmm/templates/module-loader.yaml renders it.
func templateYAML(kind, annotations, containers string) string {
	return `apiVersion: apps/v1
kind: ` + kind + `
metadata:
  name: kmm-ci-a-loader
  namespace: kmm-demo
  labels:
    app.kubernetes.io/name: kmm
    app.kubernetes.io/component: module-loader
  annotations:
` + annotations + `
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: kmm
  template:
    metadata:
      labels:
        app.kubernetes.io/name: kmm
    spec:
      nodeSelector:
        # Matches no node: kmm-render replaces it.
        render.kmm.dev/post-renderer: required
      tolerations:
        - key: nvidia.com/gpu
          operator: Equal
          value: "true"
          effect: NoSchedule
        - key: example.com/maintenance
          operator: Exists
      containers:
` + containers
}

const (
	goodAnnotations = `    render.kmm.dev/expand: module-loader
    render.kmm.dev/module: kmm-demo/kmm-ci-a
    keep.example.com/note: kept`
	goodContainers = `        - name: sidecar
          image: busybox:1.36
        - name: module-loader
          image: "r/kmm-ci-a:placeholder"
          command: ["sleep", "infinity"]
`
)

func parseTemplate(t *testing.T, s string) *Template {
	t.Helper()
	n, err := yaml.Parse(s)
	require.NoError(t, err)
	_, id, err := TemplateModule(n)
	require.NoError(t, err)
	m := compile(t, testModuleJSON)
	require.Equal(t, m.ID(), id)
	tpl, err := NewTemplate(n, m)
	require.NoError(t, err)
	return tpl
}

func TestTemplateModuleErrors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr []string
	}{
		{
			name:    "not a DaemonSet",
			yaml:    templateYAML("Deployment", goodAnnotations, goodContainers),
			wantErr: []string{"kmm-ci-a-loader", "Deployment", "not a DaemonSet"},
		},
		{
			name:    "missing module annotation",
			yaml:    templateYAML("DaemonSet", "    render.kmm.dev/expand: module-loader", goodContainers),
			wantErr: []string{"kmm-ci-a-loader", `render.kmm.dev/module=""`, "<namespace>/<name>"},
		},
		{
			name: "module annotation without a namespace",
			yaml: templateYAML("DaemonSet", `    render.kmm.dev/expand: module-loader
    render.kmm.dev/module: kmm-ci-a`, goodContainers),
			wantErr: []string{"kmm-ci-a-loader", `render.kmm.dev/module="kmm-ci-a"`},
		},
		{
			name: "module annotation of an older chart (JSON)",
			yaml: templateYAML("DaemonSet", `    render.kmm.dev/expand: module-loader
    render.kmm.dev/module: '{"name":"kmm-ci-a","namespace":"x/y"}'`, goodContainers),
			wantErr: []string{"kmm-ci-a-loader", "does not name a module"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := yaml.Parse(tt.yaml)
			require.NoError(t, err)
			_, _, err = TemplateModule(n)
			require.Error(t, err)
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestNewTemplateErrors(t *testing.T) {
	tests := []struct {
		name       string
		containers string
		module     string
		wantErr    []string
	}{
		{
			name: "no module-loader container",
			containers: `        - name: sidecar
          image: busybox:1.36
        - name: loader
          image: r/m:1
`,
			module:  testModuleJSON,
			wantErr: []string{"kmm-ci-a-loader", `"module-loader"`},
		},
		{name: "empty containers", containers: "        []\n", module: testModuleJSON, wantErr: []string{`"module-loader"`}},
		{
			name: "module without a loader", containers: goodContainers,
			module:  `{"name":"kmm-ci-a","namespace":"kmm-demo","via":"operator","devicePlugin":{"container":{"image":"r/dp:1"}}}`,
			wantErr: []string{"kmm-ci-a-loader", "kmm-demo/kmm-ci-a has no moduleLoader"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := yaml.Parse(templateYAML("DaemonSet", goodAnnotations, tt.containers))
			require.NoError(t, err)
			tpl, err := NewTemplate(n, compile(t, tt.module))
			require.Error(t, err)
			assert.Nil(t, tpl)
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func expandNodes() []nodes.Node {
	gpu := corev1.Taint{Key: "nvidia.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}
	return []nodes.Node{
		node("ubuntu-1", "5.15.0-105-generic", linux, "pool=gpu", kl+"=5.15.0-105-generic"),
		tainted(node("ubuntu-2", "5.15.0-105-generic", linux, "pool=gpu", kl+"=5.15.0-105-generic"), gpu),
		node("cos-1", "5.10.109+", linux, "pool=gpu", kl+"=5.10.109"),
		node("cpu-1", "5.15.0-105-generic", linux, "pool=cpu", kl+"=5.15.0-105-generic"),
		node("unmapped", "6.1.100+", linux, "pool=gpu", kl+"=6.1.100"),
	}
}

func decodeDS(t *testing.T, n *yaml.RNode) appsv1.DaemonSet {
	t.Helper()
	s, err := n.String()
	require.NoError(t, err)
	var ds appsv1.DaemonSet
	require.NoError(t, sigsyaml.UnmarshalStrict([]byte(s), &ds), s)
	return ds
}

func TestTemplateExpand(t *testing.T) {
	tpl := parseTemplate(t, templateYAML("DaemonSet", goodAnnotations, goodContainers))
	before, err := tpl.Node.String()
	require.NoError(t, err)

	p, err := NewPlan(tpl.Module, expandNodes(), kl)
	require.NoError(t, err)
	require.Len(t, p.Targets, 2)

	out, err := tpl.Expand(p, ExpandOptions{KernelLabel: kl})
	require.NoError(t, err)
	require.Len(t, out, 2)

	after, err := tpl.Node.String()
	require.NoError(t, err)
	assert.Equal(t, before, after, "Expand must leave the template unchanged")

	tests := []struct {
		kernel     string
		labelValue string
		mapping    string
		image      string
	}{
		{kernel: "5.10.109+", labelValue: "5.10.109", mapping: `1: regexp ^5\.10\.109$`, image: "r/kmm-ci-a:cos-5.10.109"},
		{kernel: "5.15.0-105-generic", labelValue: "5.15.0-105-generic", mapping: "0: literal 5.15.0-105-generic", image: "r/kmm-ci-a:5.15.0-105-generic"},
	}
	names := map[string]bool{}
	for i, tt := range tests {
		t.Run(tt.kernel, func(t *testing.T) {
			ds := decodeDS(t, out[i])
			wantName, err := ObjectName("kmm-ci-a-loader", tt.kernel)
			require.NoError(t, err)
			assert.Equal(t, wantName, ds.Name)
			assert.Equal(t, "kmm-demo", ds.Namespace)
			assert.Equal(t, "DaemonSet", ds.Kind)
			assert.Equal(t, "apps/v1", ds.APIVersion)
			names[ds.Name] = true

			assert.Equal(t, map[string]string{
				contract.AnnotationKernel:   tt.kernel,
				contract.AnnotationMapping:  tt.mapping,
				contract.AnnotationPlatform: "generic", // the test's nodes name no cloud and no OS image
				contract.AnnotationOS:       "unknown",
				"keep.example.com/note":     "kept",
			}, ds.Annotations)
			assert.NotContains(t, ds.Annotations, contract.AnnotationExpand)
			assert.NotContains(t, ds.Annotations, contract.AnnotationModule)

			kmmLabels := map[string]string{
				"kmm.node.kubernetes.io/module.name":      "kmm-ci-a",
				"kmm.node.kubernetes.io/module.namespace": "kmm-demo",
				"kmm.node.kubernetes.io/role":             "module-loader",
				contract.LabelKernel:                      tt.labelValue,
				contract.LabelKernelHash:                  KernelHash(tt.kernel),
			}
			withTemplate := func(extra map[string]string) map[string]string {
				m := map[string]string{}
				for k, v := range kmmLabels {
					m[k] = v
				}
				for k, v := range extra {
					m[k] = v
				}
				return m
			}
			assert.Equal(t, withTemplate(map[string]string{
				"app.kubernetes.io/name":      "kmm",
				"app.kubernetes.io/component": "module-loader",
			}), ds.Labels, "metadata.labels")
			require.NotNil(t, ds.Spec.Selector)
			assert.Equal(t, withTemplate(map[string]string{"app.kubernetes.io/name": "kmm"}), ds.Spec.Selector.MatchLabels, "spec.selector.matchLabels")
			assert.Equal(t, withTemplate(map[string]string{"app.kubernetes.io/name": "kmm"}), ds.Spec.Template.Labels, "pod template labels")
			for k, v := range ds.Spec.Selector.MatchLabels {
				assert.Equal(t, v, ds.Spec.Template.Labels[k], "selector must select the pod template: %s", k)
			}

			assert.Equal(t, map[string]string{
				"kubernetes.io/os": "linux",
				"pool":             "gpu",
				kl:                 tt.labelValue,
			}, ds.Spec.Template.Spec.NodeSelector, "nodeSelector: module selector + kernel label only")

			assert.Equal(t, []corev1.Toleration{
				{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule},
				{Key: "example.com/maintenance", Operator: corev1.TolerationOpExists},
			}, ds.Spec.Template.Spec.Tolerations, "the template's tolerations kept")

			require.Len(t, ds.Spec.Template.Spec.Containers, 2)
			assert.Equal(t, "sidecar", ds.Spec.Template.Spec.Containers[0].Name)
			assert.Equal(t, "busybox:1.36", ds.Spec.Template.Spec.Containers[0].Image, "other containers untouched")
			assert.Equal(t, "module-loader", ds.Spec.Template.Spec.Containers[1].Name)
			assert.Equal(t, tt.image, ds.Spec.Template.Spec.Containers[1].Image)
			assert.Equal(t, tt.image, ds.Spec.Template.Annotations["render.kmm.dev/module-version"], "no version: the image is the version")
			assert.Equal(t, []string{"sleep", "infinity"}, ds.Spec.Template.Spec.Containers[1].Command, "the template's command kept")
			assert.Equal(t, env("KMM_KERNEL", tt.kernel, "KMM_DIR_NAME", "/opt", "KMM_MODULE", "kmm_ci_a", "KMM_PARAMETERS", "debug=1"),
				ds.Spec.Template.Spec.Containers[1].Env)
		})
	}
	assert.Len(t, names, 2, "names distinct")

	// The generated objects are independent copies: editing one leaves the other and the
	// template alone.
	require.NoError(t, out[0].SetName("changed"))
	assert.NotEqual(t, "changed", out[1].GetName())
	assert.Equal(t, "kmm-ci-a-loader", tpl.Node.GetName())
}

func TestTemplateExpandCustomKernelLabel(t *testing.T) {
	tpl := parseTemplate(t, templateYAML("DaemonSet", goodAnnotations, goodContainers))
	const key = "example.com/kernel"
	ns := []nodes.Node{node("w1", "5.15.0-105-generic", linux, "pool=gpu", key+"=jammy-105")}
	p, err := NewPlan(tpl.Module, ns, key)
	require.NoError(t, err)
	out, err := tpl.Expand(p, ExpandOptions{KernelLabel: key})
	require.NoError(t, err)
	require.Len(t, out, 1)
	ds := decodeDS(t, out[0])
	assert.Equal(t, map[string]string{"kubernetes.io/os": "linux", "pool": "gpu", key: "jammy-105"}, ds.Spec.Template.Spec.NodeSelector)
	assert.NotContains(t, ds.Spec.Template.Spec.NodeSelector, kl)
	assert.Equal(t, "jammy-105", ds.Labels[contract.LabelKernel])
}

func TestTemplateExpandNoTargets(t *testing.T) {
	tpl := parseTemplate(t, templateYAML("DaemonSet", goodAnnotations, goodContainers))
	out, err := tpl.Expand(&Plan{Module: tpl.Module}, ExpandOptions{KernelLabel: kl})
	require.NoError(t, err)
	assert.Empty(t, out)
}

func TestTemplateExpandWithoutNodeSelectorOrLabels(t *testing.T) {
	// A template without labels, matchLabels or nodeSelector gets them created.
	s := `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: bare
  annotations:
    render.kmm.dev/expand: module-loader
    render.kmm.dev/module: kmm-demo/kmm-ci-a
spec:
  template:
    spec:
      containers:
        - name: module-loader
          image: x:1
`
	tpl := parseTemplate(t, s)
	p := &Plan{Module: tpl.Module, Targets: []Target{{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic"}}}
	out, err := tpl.Expand(p, ExpandOptions{KernelLabel: kl})
	require.NoError(t, err)
	require.Len(t, out, 1)
	ds := decodeDS(t, out[0])
	assert.Equal(t, "bare-5-15-0-105-generic", ds.Name)
	assert.Equal(t, "module-loader", ds.Labels[contract.LabelRole])
	require.NotNil(t, ds.Spec.Selector)
	assert.Equal(t, "kmm-ci-a", ds.Spec.Selector.MatchLabels[contract.LabelModuleName])
	assert.Equal(t, "kmm-demo", ds.Spec.Template.Labels[contract.LabelModuleNamespace])
	assert.Equal(t, map[string]string{"kubernetes.io/os": "linux", "pool": "gpu", kl: "5.15.0-105-generic"}, ds.Spec.Template.Spec.NodeSelector)
	assert.Equal(t, "r/kmm-ci-a:5.15.0-105-generic", ds.Spec.Template.Spec.Containers[0].Image)
}

// A module's version, when it sets one, is what its loader pods say they load.
func TestTemplateExpandVersion(t *testing.T) {
	tpl := parseTemplate(t, templateYAML("DaemonSet", goodAnnotations, goodContainers))
	tpl.Module.Container().Version = "2.1.0"
	p, err := NewPlan(tpl.Module, expandNodes(), kl)
	require.NoError(t, err)
	out, err := tpl.Expand(p, ExpandOptions{KernelLabel: kl})
	require.NoError(t, err)
	require.Len(t, out, 2)
	for _, o := range out {
		assert.Equal(t, "2.1.0", decodeDS(t, o).Spec.Template.Annotations["render.kmm.dev/module-version"])
	}
}
