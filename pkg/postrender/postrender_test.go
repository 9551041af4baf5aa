package postrender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/render"
)

const kernelLabel = render.DefaultKernelLabel

func node(name, kernel string, labels map[string]string, taints ...corev1.Taint) nodes.Node {
	l := map[string]string{"kubernetes.io/os": "linux"}
	if v, ok := render.KernelLabelValue(kernel); ok {
		l[kernelLabel] = v
	}
	for k, v := range labels {
		if v == "-" {
			delete(l, k)
			continue
		}
		l[k] = v
	}
	return nodes.Node{Name: name, Kernel: kernel, Labels: l, Taints: taints}
}

var cluster = []nodes.Node{
	node("cos-1", "5.10.109+", map[string]string{"pool": "cos"}),
	node("cos-2", "5.10.109+", map[string]string{"pool": "cos"}),
	node("cos-3", "6.1.100+", map[string]string{"pool": "cos"}),
	node("ubu-1", "5.15.0-1034-gke", map[string]string{"pool": "ubuntu"}),
	node("gpu-1", "5.15.0-1034-gke", map[string]string{"pool": "ubuntu"}, corev1.Taint{Key: "nvidia.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}),
	node("arm-1", "6.1.112-122.189.amzn2023.aarch64", nil),
}

// loaderModule turns the test's short module shape {name, namespace, selector, tolerations,
// containerImage, kernelMappings} into a module of the chart's module list.
func loaderModule(short string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(short), &m); err != nil {
		panic(fmt.Sprintf("test fixture %s: %v", short, err))
	}
	c := map[string]any{"modprobe": map[string]any{"moduleName": m["name"]}, "kernelMappings": m["kernelMappings"]}
	if img, ok := m["containerImage"]; ok {
		c["containerImage"] = img
	}
	delete(m, "containerImage")
	delete(m, "kernelMappings")
	m["moduleLoader"] = map[string]any{"container": c}
	return m
}

// moduleList renders the chart's module list ConfigMap holding modules.
func moduleList(helm4 bool, modules ...map[string]any) string {
	list, err := json.Marshal(modules)
	if err != nil {
		panic(err)
	}
	quoted, err := json.Marshal(string(list))
	if err != nil {
		panic(err)
	}
	var b strings.Builder
	b.WriteString("---\n")
	annotations := ""
	if helm4 {
		annotations = "    postrenderer.helm.sh/postrender-filename: kmm/templates/modules-configmap.yaml\n"
	} else {
		b.WriteString("# Source: kmm/templates/modules-configmap.yaml\n")
	}
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kmm-modules\n  namespace: kmm\n  annotations:\n%s    render.kmm.dev/modules: v1\ndata:\n  modules.json: %s\n", annotations, quoted)
	return b.String()
}

// template renders the module list with the module spec (short shape, see loaderModule) and its
// loader template, the way charts/kmm does, in Helm 3 or Helm 4 shape.
func template(name, ns, spec string, helm4 bool, extraPod string) string {
	return moduleList(helm4, loaderModule(spec)) + loaderTemplate(name, ns, helm4, extraPod)
}

func loaderTemplate(name, ns string, helm4 bool, extraPod string) string {
	var b strings.Builder
	b.WriteString("---\n")
	annotations := ""
	if helm4 {
		annotations = "    postrenderer.helm.sh/postrender-filename: kmm/templates/module-loader.yaml\n"
	} else {
		b.WriteString("# Source: kmm/templates/module-loader.yaml\n")
	}
	fmt.Fprintf(&b, `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: %s-loader
  namespace: %s
  labels:
    app.kubernetes.io/name: kmm
  annotations:
%s    render.kmm.dev/expand: module-loader
    render.kmm.dev/module: %s/%s
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
        render.kmm.dev/post-renderer: required
%s      containers:
        - name: module-loader
          image: "placeholder:${KERNEL_FULL_VERSION}"
          command: ["sleep", "infinity"]
`, name, ns, annotations, ns, name, extraPod)
	return b.String()
}

const anyKernelSpec = `{"name":"mod","namespace":"kmm","selector":{"kubernetes.io/os":"linux"},"containerImage":"reg.example/mod:${KERNEL_FULL_VERSION}","kernelMappings":[{"regexp":"^5\\."},{"literal":"6.1.100","containerImage":"reg.example/mod:cos-${KERNEL_XYZ}"}]}`

const configMap = `---
# Source: kmm/templates/cm.yaml
# a comment that must survive
apiVersion: v1
kind: ConfigMap
metadata:
  name: keep-me   # trailing comment
  namespace: kmm
data:
  script: |
    #!/bin/sh
    echo "---"
  flow: {a: 1,   b: 2}
`

func run(t *testing.T, in string, o Options) (string, string, error) {
	t.Helper()
	var warn bytes.Buffer
	o.Warnings = &warn
	if o.Nodes == nil {
		o.Nodes = StaticNodes(cluster)
	}
	out, err := New(o).Run(context.Background(), []byte(in))
	if err != nil {
		require.Empty(t, out, "no partial output on error")
	}
	return string(out), warn.String(), err
}

func parseAll(t *testing.T, out string) []*yaml.RNode {
	t.Helper()
	docs, err := split([]byte(out))
	require.NoError(t, err)
	var ns []*yaml.RNode
	for _, d := range docs {
		if d.node != nil {
			ns = append(ns, d.node)
		}
	}
	return ns
}

func TestPassThroughIsByteExact(t *testing.T) {
	for name, in := range map[string]string{
		"helm3":               configMap + "---\n# Source: kmm/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n",
		"no leading ---":      "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n" + configMap,
		"no final newline":    configMap + "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa",
		"comment-only doc":    "---\n# Source: kmm/templates/empty.yaml\n" + configMap,
		"crlf and --- spaces": "--- \r\napiVersion: v1\r\nkind: ServiceAccount\r\nmetadata:\r\n  name: sa\r\n",
		// Found by FuzzPostRender (testdata/fuzz/FuzzPostRender/regression-separator-without-newline):
		// a last --- without a line break came back with one.
		"--- without newline at the end":   configMap + "---",
		"blank lines before the first ---": "\n \n" + configMap,
		"byte order mark at the start":     "\ufeff" + configMap,
		"comment on the --- line":          "--- # Source: kmm/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n",
		"anchor without alias":             "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: &m\n  name: sa\n",
		"plain explicit tags":              "---\napiVersion: !!str v1\nkind: ServiceAccount\nmetadata: !!map\n  name: sa\n  labels: {n: !!int 1}\n",
	} {
		t.Run(name, func(t *testing.T) {
			called := false
			out, _, err := run(t, in, Options{Nodes: func(context.Context) ([]nodes.Node, error) {
				called = true
				return nil, errors.New("must not be called")
			}})
			require.NoError(t, err)
			assert.Equal(t, in, out)
			assert.False(t, called, "nodes are only listed when something depends on them")
		})
	}
}

func TestExpandsInPlaceHelm3(t *testing.T) {
	in := configMap + template("mod", "kmm", anyKernelSpec, false, "") +
		"---\n# Source: kmm/templates/after.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: after\n  namespace: kmm\n"
	out, warn, err := run(t, in, Options{})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, configMap), "documents before the template are untouched")
	require.True(t, strings.HasSuffix(out, "---\n# Source: kmm/templates/after.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: after\n  namespace: kmm\n"))

	objs := parseAll(t, out)
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	// Kernels sorted; cos 5.10.109+ and ubuntu 5.15 match ^5\., 6.1.100+ the literal; the
	// aarch64 kernel matches nothing; gpu-1 is tainted and not tolerated.
	assert.Equal(t, []string{
		"ConfigMap/keep-me",
		"ConfigMap/kmm-modules",
		"DaemonSet/mod-loader-5-10-109-2f7388a7",
		"DaemonSet/mod-loader-5-15-0-1034-gke",
		"DaemonSet/mod-loader-6-1-100-8823089a",
		"ServiceAccount/after",
	}, got)
	assert.Equal(t, 3, strings.Count(out, "# Source: kmm/templates/module-loader.yaml"), "every generated document keeps the template's # Source line")
	assert.Contains(t, warn, "module kmm/mod: kernel 6.1.112-122.189.amzn2023.aarch64 (node(s) arm-1) matches no kernel mapping")

	byName := map[string]*yaml.RNode{}
	for _, o := range objs {
		byName[o.GetName()] = o
	}
	cos := byName["mod-loader-6-1-100-8823089a"]
	require.NotNil(t, cos)
	img, err := cos.Pipe(yaml.Lookup("spec", "template", "spec", "containers", "[name=module-loader]", "image"))
	require.NoError(t, err)
	assert.Equal(t, "reg.example/mod:cos-6.1.100", yaml.GetValue(img))
	sel, err := cos.Pipe(yaml.Lookup("spec", "template", "spec", "nodeSelector"))
	require.NoError(t, err)
	m, err := sel.Map()
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"kubernetes.io/os": "linux", kernelLabel: "6.1.100"}, m)
	assert.Equal(t, "6.1.100+", cos.GetAnnotations()[contract.AnnotationKernel])
	assert.NotContains(t, cos.GetAnnotations(), contract.AnnotationExpand)
	assert.NotContains(t, cos.GetAnnotations(), contract.AnnotationModule)
	for _, o := range objs {
		assert.Empty(t, validation.IsDNS1123Label(o.GetName()), o.GetName())
		for k, v := range o.GetLabels() {
			assert.Empty(t, validation.IsValidLabelValue(v), "%s: label %s=%s", o.GetName(), k, v)
		}
	}
}

func TestHelm4ShapeKeepsFilenameAnnotationAndHooks(t *testing.T) {
	hook := "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: kmm-test\n  namespace: kmm\n  annotations:\n    helm.sh/hook: test\n    postrenderer.helm.sh/postrender-filename: kmm/templates/tests/test.yaml\nspec:\n  containers: [{name: t, image: busybox:1.36}]\n"
	in := template("mod", "kmm", anyKernelSpec, true, "") + hook
	out, _, err := run(t, in, Options{})
	require.NoError(t, err)
	assert.NotContains(t, out, "# Source:")
	objs := parseAll(t, out)
	require.Len(t, objs, 5)
	assert.Equal(t, "kmm-modules", objs[0].GetName())
	for _, o := range objs[1:4] {
		assert.Equal(t, "kmm/templates/module-loader.yaml", o.GetAnnotations()[AnnotationHelm4Filename], o.GetName())
	}
	assert.True(t, strings.HasSuffix(out, hook), "hooks pass through untouched")
}

func TestTolerationsSelectTaintedNodes(t *testing.T) {
	tol := "      tolerations:\n        - key: nvidia.com/gpu\n          operator: Exists\n          effect: NoSchedule\n"
	spec := `{"name":"gpu","namespace":"kmm","selector":{"pool":"ubuntu"},"tolerations":[{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}],"containerImage":"reg.example/gpu:${KERNEL_FULL_VERSION}","kernelMappings":[{"regexp":"gke$"}]}`
	out, _, err := run(t, template("gpu", "kmm", spec, false, tol), Options{})
	require.NoError(t, err)
	objs := parseAll(t, out)
	require.Len(t, objs, 2)
	ds := objs[1]
	tolNode, err := ds.Pipe(yaml.Lookup("spec", "template", "spec", "tolerations"))
	require.NoError(t, err)
	require.NotNil(t, tolNode, "tolerations stay on the pod")
	nodeList, err := ds.Pipe(yaml.Lookup("metadata", "annotations", contract.AnnotationKernel))
	require.NoError(t, err)
	assert.Equal(t, "5.15.0-1034-gke", yaml.GetValue(nodeList), "the tainted gpu-1 and ubu-1 share the kernel")

	// Without the module's tolerations, the tainted node is not selected, whatever the pod says:
	// the module is what kmm plans from.
	spec = strings.Replace(spec, `"tolerations":[{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}],`, "", 1)
	_, warn, err := run(t, template("gpu", "kmm", spec, false, tol), Options{Nodes: StaticNodes(cluster[4:5])})
	require.NoError(t, err)
	assert.Contains(t, warn, "module kmm/gpu: no selected node runs a kernel")
}

func TestDeterministic(t *testing.T) {
	in := configMap + template("mod", "kmm", anyKernelSpec, false, "")
	first, _, err := run(t, in, Options{})
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		shuffled := append([]nodes.Node(nil), cluster...)
		rand.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		again, _, err := run(t, in, Options{Nodes: StaticNodes(shuffled)})
		require.NoError(t, err)
		require.Equal(t, first, again)
	}
}

func TestKernelLabelFlag(t *testing.T) {
	custom := "example.com/kernel"
	ns := []nodes.Node{node("n1", "5.15.0-105-generic", map[string]string{custom: "k-5.15", kernelLabel: "-"})}
	out, warn, err := run(t, template("mod", "kmm", anyKernelSpec, false, ""), Options{Nodes: StaticNodes(ns), KernelLabel: custom})
	require.NoError(t, err)
	assert.Contains(t, out, "example.com/kernel: k-5.15", "the live label's actual value is used")
	assert.Empty(t, warn)

	// Without the label: computed, and a warning names the node and says how to fix it.
	ns = []nodes.Node{node("n1", "5.15.0-105-generic", map[string]string{kernelLabel: "-"})}
	out, warn, err = run(t, template("mod", "kmm", anyKernelSpec, false, ""), Options{Nodes: StaticNodes(ns)})
	require.NoError(t, err)
	assert.Contains(t, out, kernelLabel+": 5.15.0-105-generic")
	assert.Contains(t, warn, "node(s) n1 lack label "+kernelLabel)
	assert.Contains(t, warn, "Node Feature Discovery")
}

func TestErrors(t *testing.T) {
	sa := func(name string) string {
		return "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: " + name + "\n  namespace: kmm\n"
	}
	badNodes := filepath.Join(t.TempDir(), "empty.yaml")
	require.NoError(t, os.WriteFile(badNodes, []byte("apiVersion: v1\nkind: List\nitems: []\n"), 0o644))
	tests := []struct {
		name string
		in   string
		o    Options
		want []string
		is   error
	}{
		{name: "empty input", in: "", want: []string{"no manifests on standard input"}},
		{name: "blank input", in: "\n\n  \n", want: []string{"no manifests"}},
		{name: "separators only", in: "---\n---\n", want: []string{"no manifests on standard input, only", "empty document(s) (--- separators and comments)"}},
		{name: "separators and comments only", in: "---\n# Source: kmm/templates/a.yaml\n---\n# nothing\n", want: []string{"no manifests on standard input, only 2 empty document(s)"}},
		{name: "malformed YAML", in: sa("a") + "---\n# Source: kmm/templates/bad.yaml\napiVersion: v1\nkind: [oops\n", want: []string{"document 2 (kmm/templates/bad.yaml)", "malformed YAML"}},
		{name: "a list, not an object", in: "---\n- a\n- b\n", want: []string{"document 1", "not a Kubernetes object"}},
		{name: "no kind", in: "---\napiVersion: v1\nmetadata:\n  name: x\n", want: []string{"document 1", "no apiVersion or kind"}},
		{name: "no name", in: "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", want: []string{"no metadata.name"}},
		{name: "duplicate in input", in: sa("a") + sa("b") + sa("a"), want: []string{"document 3", "ServiceAccount kmm/a is already defined by document 1"}},
		{name: "duplicate produced by expansion", in: template("mod", "kmm", anyKernelSpec, false, "") + "---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: mod-loader-5-15-0-1034-gke\n  namespace: kmm\n", want: []string{"DaemonSet kmm/mod-loader-5-15-0-1034-gke is already defined"}},
		{name: "invalid regexp", in: template("mod", "kmm", `{"name":"mod","namespace":"kmm","selector":{"a":"b"},"containerImage":"r/m:1","kernelMappings":[{"regexp":"^5\\.(10"}]}`, false, ""), want: []string{"modules-configmap.yaml", "module kmm/mod breaks KMM v2.6.0's admission rules", "modules[0].moduleLoader.container.kernelMappings[0].regexp", "missing closing )"}},
		{name: "image without tag", in: template("mod", "kmm", `{"name":"mod","namespace":"kmm","selector":{"a":"b"},"containerImage":"reg.example:5000/mod","kernelMappings":[{"regexp":"."}]}`, false, ""), want: []string{"module kmm/mod", "neither a tag nor a digest"}},
		{name: "unknown variable in image", in: template("mod", "kmm", `{"name":"mod","namespace":"kmm","selector":{"kubernetes.io/os":"linux"},"containerImage":"r/m:${KERNEL_FLAVOUR}","kernelMappings":[{"regexp":"."}]}`, false, ""), want: []string{"module kmm/mod", "KERNEL_FLAVOUR"}},
		{name: "name+namespace too long", in: template("mod", "kmm", `{"name":"a-module-with-a-rather-long-name","namespace":"and-a-long-namespace","selector":{"a":"b"},"containerImage":"r/m:1","kernelMappings":[{"regexp":"."}]}`, false, ""), want: []string{"modules[0].name", "52 characters together", "at most 40"}},
		{name: "unknown expand role", in: strings.Replace(template("mod", "kmm", anyKernelSpec, false, ""), "expand: module-loader", "expand: module-builder", 1), want: []string{`unknown render.kmm.dev/expand="module-builder"`}},
		{name: "marked object is not a DaemonSet", in: strings.Replace(template("mod", "kmm", anyKernelSpec, false, ""), "kind: DaemonSet", "kind: Deployment", 1), want: []string{"not a DaemonSet"}},
		{name: "node source fails", in: template("mod", "kmm", anyKernelSpec, false, ""), o: Options{Nodes: func(context.Context) ([]nodes.Node, error) {
			return nil, errors.New("listing nodes from https://127.0.0.1:1: connection refused")
		}}, want: []string{"connection refused"}},
		{name: "node file missing", in: template("mod", "kmm", anyKernelSpec, false, ""), o: Options{Nodes: FileNodes("/nonexistent/nodes.yaml")}, want: []string{"reading node file", "/nonexistent/nodes.yaml"}},
		{name: "node file without nodes", in: template("mod", "kmm", anyKernelSpec, false, ""), o: Options{Nodes: FileNodes(badNodes)}, want: []string{badNodes, "holds no nodes"}},
		{name: "strict with an unmatched kernel", in: template("mod", "kmm", anyKernelSpec, false, ""), o: Options{Strict: true}, want: []string{"--strict", "module kmm/mod: kernel 6.1.112-122.189.amzn2023.aarch64 (node(s) arm-1)"}, is: ErrUnmatched},
		{name: "template without module list", in: loaderTemplate("mod", "kmm", false, ""), want: []string{"module-loader.yaml", "names module kmm/mod", "holds no module list"}},
		{name: "template of a module the list lacks", in: moduleList(false) + loaderTemplate("mod", "kmm", false, ""), want: []string{"module kmm/mod, which document 1 (kmm/templates/modules-configmap.yaml)", "does not list"}},
		{name: "template of an operator module", in: moduleList(false, map[string]any{"name": "mod", "namespace": "kmm", "via": "operator", "selector": map[string]any{"a": "b"}}) + loaderTemplate("mod", "kmm", false, ""), want: []string{"kmm/mod is `via: operator`"}},
		{name: "two module lists", in: moduleList(false) + moduleList(false), want: []string{"document 2", "a second module list"}},
		{name: "module list of another format", in: strings.Replace(moduleList(false), "modules: v1", "modules: v2", 1), want: []string{`format render.kmm.dev/modules="v2"`, `reads "v1"`}},
		{name: "module list with a misspelled field", in: moduleList(false, map[string]any{"name": "mod", "namespace": "kmm", "selecter": map[string]any{"a": "b"}}), want: []string{"modules[0] (kmm/mod)", `unknown field "selecter"`}},
		{name: "module listed twice", in: moduleList(false, map[string]any{"name": "mod", "namespace": "kmm"}, map[string]any{"name": "mod", "namespace": "kmm"}), want: []string{"modules[0] and modules[1] are both module kmm/mod"}},
		{name: "Module object with a misspelled field", in: "---\napiVersion: kmm.sigs.x-k8s.io/v1beta1\nkind: Module\nmetadata:\n  name: m\n  namespace: kmm\nspec:\n  selector: {a: b}\n  moduleLoader:\n    container:\n      modprobe: {moduleName: m}\n      kernelMapings: []\n", want: []string{"Module kmm/m", `unknown field "spec.moduleLoader.container.kernelMapings"`}},
		{name: "Module object that KMM refuses", in: "---\napiVersion: kmm.sigs.x-k8s.io/v1beta1\nkind: Module\nmetadata:\n  name: m\n  namespace: kmm\nspec:\n  selector: {a: b}\n  moduleLoader:\n    container:\n      modprobe: {moduleName: m, modulesLoadingOrder: [x, m]}\n      kernelMappings: [{regexp: ., containerImage: r/m:1}]\n", want: []string{"Module kmm/m", "spec.moduleLoader.container.modprobe.modulesLoadingOrder[0]", `must be moduleName ("m")`}},
		{name: "Module object whose mapping lacks containerImage", in: "---\napiVersion: kmm.sigs.x-k8s.io/v1beta1\nkind: Module\nmetadata:\n  name: m\n  namespace: kmm\nspec:\n  selector: {a: b}\n  moduleLoader:\n    container:\n      containerImage: r/m:1\n      modprobe: {moduleName: m}\n      kernelMappings: [{regexp: .}]\n", want: []string{"Module kmm/m", "spec.moduleLoader.container.kernelMappings[0].containerImage: Required value", "the Module CRD"}},
		{name: "folded kernels", in: template("mod", "kmm", anyKernelSpec, false, ""), o: Options{Nodes: StaticNodes([]nodes.Node{node("a", "5.10.109+", nil), node("b", "5.10.109", nil)})}, want: []string{`kernels "5.10.109" and "5.10.109+"`, "cannot tell"}},
		{name: "settings that do not decode", in: strings.Replace(template("mod", "kmm", anyKernelSpec, false, ""), "  modules.json:", "  settings.json: '{\"extraKernel\":[]}'\n  modules.json:", 1),
			want: []string{"document 1 (kmm/templates/modules-configmap.yaml)", "settings.json", `unknown field "extraKernel"`}},
		{name: "extra kernel without a label value", in: template("mod", "kmm", anyKernelSpec, false, ""), o: Options{ExtraKernels: []render.ExtraKernel{{Kernel: strings.Repeat("5", 70)}}},
			want: []string{"extra kernels: extraKernels[0]", "no valid kernel label value"}},
		{name: "GKE Autopilot nodes selected", in: template("mod", "kmm", anyKernelSpec, false, ""),
			o:    Options{Nodes: StaticNodes(append(append([]nodes.Node{}, cluster...), node("gk3-ap-pool-1-x", "5.15.0-1034-gke", map[string]string{"cloud.google.com/gke-nodepool": "pool-1"})))},
			want: []string{"module-loader.yaml", "module kmm/mod: its selector picks GKE Autopilot nodes: node pool pool-1 (gk3-ap-pool-1-x)"}},
		// Bad input must not reach Helm: YAML that parsers read differently, or that kyaml cannot
		// read, and strings that would reach a terminal raw. The first two were found by
		// FuzzPostRender (a panic in kyaml; testdata/fuzz/FuzzPostRender/regression-metadata-list).
		{name: "metadata that is a list", in: sa("a") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: [{}]\n", want: []string{"document 2: line 3: metadata is a YAML list, not a mapping"}},
		{name: "labels that are a list", in: "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: [a]\n", want: []string{"document 1: line 5: metadata.labels is a YAML list, not a mapping"}},
		{name: "an annotation that is a mapping", in: "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations: {render.kmm.dev/expand: {a: b}}\n", want: []string{"document 1: line 5: metadata.annotations.render.kmm.dev/expand is a YAML mapping, not a string"}},
		{name: "a document hidden after a carriage return", in: sa("a") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\r---\rkind: Secret\r", want: []string{"document 2", "a second YAML document starts inside this one"}},
		{name: "a document hidden after U+0085", in: sa("a") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\u0085---\u0085kind: Secret\n", want: []string{"document 2", "a second YAML document starts inside this one"}},
		{name: "content on the --- line", in: sa("a") + "--- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n", want: []string{"document 2: content after --- on its separator line ({apiVersion: v1, kind: Secret, metadata: {name: s}})"}},
		{name: "a literal block on the --- line", in: sa("a") + "--- |\n  text\n", want: []string{"document 2: content after --- on its separator line (|)"}},
		{name: "a repeated key", in: "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  annotations: {render.kmm.dev/expand: \"\", render.kmm.dev/expand: module-loader}\n  name: a\n", want: []string{"document 1 ConfigMap a: line 4: key render.kmm.dev/expand is repeated (first at line 4)"}},
		// kyaml reads the namespace below as "n" (the alias's name), Helm as "a": the very
		// disagreement the rule prevents.
		{name: "an alias", in: "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: &n a\n  namespace: *n\n", want: []string{"document 1 ConfigMap n/a: line 5: YAML alias *n", "kmm-render refuses YAML aliases"}},
		{name: "a merge key", in: "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  <<: {namespace: kube-system}\n", want: []string{"document 1 ConfigMap a: line 5: YAML merge key <<"}},
		{name: "a key that is a mapping", in: "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n? {b: c}\n: d\n", want: []string{"document 1 ConfigMap a: line 4: a mapping key that is a YAML mapping"}},
		{name: "an explicit !!binary tag", in: "---\napiVersion: v1\nkind: !!binary U2VjcmV0\nmetadata: {name: a}\n", want: []string{"document 1", "line 2: explicit YAML tag !!binary"}},
		{name: "a local tag", in: "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: !secret a}\n", want: []string{"document 1", "line 3: explicit YAML tag !secret"}},
		{name: "a byte order mark inside the stream", in: sa("a") + "---\n\ufeffapiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n", want: []string{"document 2: a byte order mark (U+FEFF) inside the stream (line 1)"}},
		{name: "invalid UTF-8 in a comment-only document", in: sa("a") + "---\n# \xff\n", want: []string{"document 2: not UTF-8 text (line 1)"}},
		{name: "a control character in a comment-only document", in: sa("a") + "---\n# \x1b[2J\n", want: []string{"document 2: malformed YAML", "control characters are not allowed"}},
		{name: "a control character in a name is quoted", in: sa("a") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"a\\e[2Jb\"}\n", want: []string{`document 2 ConfigMap "a\x1b[2Jb": metadata.name "a\x1b[2Jb" holds a control or non-printable character`}},
		{name: "a long name is cut in messages", in: sa("a") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"\\e" + strings.Repeat("a", 1000) + "\"}\n",
			want: []string{`document 2 ConfigMap "\x1b` + strings.Repeat("a", 255) + `"...(1001 bytes): metadata.name "\x1b` + strings.Repeat("a", 255) + `"...(1001 bytes) holds a control`}},
		{name: "a control character in the # Source line is quoted", in: "---\n# Source: kmm/\x1b[2J.yaml\napiVersion: v1\n", want: []string{`document 1 ("kmm/\x1b[2J.yaml"): malformed YAML`}},
		{name: "a cluster node whose kernel holds a control character", in: template("mod", "kmm", anyKernelSpec, false, ""), o: Options{Nodes: StaticNodes([]nodes.Node{node("n1", "5.10.1\x1b[2J", nil)})},
			want: []string{`node "n1": status.nodeInfo.kernelVersion "5.10.1\x1b[2J" holds byte 0x1b at offset 6`}},
		{name: "a cluster node with an invalid kernel label value", in: template("mod", "kmm", anyKernelSpec, false, ""), o: Options{Nodes: StaticNodes([]nodes.Node{node("n1", "5.10.1", map[string]string{kernelLabel: "5.10.1 rt"})})},
			want: []string{`node "n1": metadata.labels: Invalid value: "5.10.1 rt"`}},
		{name: "an extra kernel flag with a control character", in: template("mod", "kmm", anyKernelSpec, false, ""), o: Options{ExtraKernels: []render.ExtraKernel{{Kernel: "5.15.0-1\x1b[2J"}}},
			want: []string{`extra kernel "5.15.0-1\x1b[2J" (--extra-kernel) holds byte 0x1b at offset 8`}},
		{name: "a chart extra kernel with a control character", in: strings.Replace(template("mod", "kmm", anyKernelSpec, false, ""), "  modules.json:", "  settings.json: '{\"extraKernels\":[\"5.15.0-1\\u001b\"]}'\n  modules.json:", 1),
			want: []string{"document 1 (kmm/templates/modules-configmap.yaml) ConfigMap kmm/kmm-modules: settings.json: extraKernels[0]: kernel \"5.15.0-1\\x1b\" holds byte 0x1b at offset 8"}},
		{name: "module without namespace", in: "---\napiVersion: kmm.sigs.x-k8s.io/v1beta1\nkind: Module\nmetadata:\n  name: m\nspec:\n  selector: {a: b}\n  moduleLoader:\n    container:\n      modprobe: {moduleName: m}\n      kernelMappings: [{regexp: ., containerImage: r/m:1}]\n", want: []string{"Module m", "metadata.namespace: Required value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, tt.in, tt.o)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
		})
	}
}

func TestOperatorModulesAreCheckedAndPassThrough(t *testing.T) {
	mod := "---\n# Source: kmm/templates/modules.yaml\napiVersion: kmm.sigs.x-k8s.io/v1beta1\nkind: Module\nmetadata:\n  name: m\n  namespace: kmm\nspec:\n  selector: {kubernetes.io/os: linux}\n  moduleLoader:\n    container:\n      modprobe: {moduleName: m}\n      kernelMappings:\n        - regexp: '^5\\.'\n          containerImage: r/m:${KERNEL_FULL_VERSION}\n"
	out, warn, err := run(t, mod, Options{})
	require.NoError(t, err)
	assert.Equal(t, mod, out)
	assert.Contains(t, warn, "module kmm/m: kernel 6.1.100+ (node(s) cos-3) matches no kernel mapping")
	assert.NotContains(t, warn, "lack label", "KMM's controller needs no kernel label")

	_, _, err = run(t, mod, Options{Strict: true})
	require.ErrorIs(t, err, ErrUnmatched)
}

// KMM refuses to update a Module's loader version from or to empty: with a cluster to ask,
// kmm-render refuses it first, for Module objects and for the list's operator modules alike.
func TestUpdateRuleWithExistingModules(t *testing.T) {
	object := func(version string) string {
		v := ""
		if version != "" {
			v = "      version: " + version + "\n"
		}
		return "---\n# Source: kmm/templates/operator-modules.yaml\napiVersion: kmm.sigs.x-k8s.io/v1beta1\nkind: Module\nmetadata:\n  name: m\n  namespace: kmm\nspec:\n  selector: {kubernetes.io/os: linux}\n  moduleLoader:\n    container:\n" + v +
			"      modprobe: {moduleName: m}\n      kernelMappings: [{regexp: '^5', containerImage: 'r/m:${KERNEL_FULL_VERSION}'}]\n"
	}
	listed := func(version string) string {
		c := map[string]any{"modprobe": map[string]any{"moduleName": "m"}, "kernelMappings": []any{map[string]any{"regexp": "^5", "containerImage": "r/m:1"}}}
		if version != "" {
			c["version"] = version
		}
		return moduleList(false, map[string]any{"name": "m", "namespace": "kmm", "via": "operator",
			"selector": map[string]any{"kubernetes.io/os": "linux"}, "moduleLoader": map[string]any{"container": c}})
	}
	inCluster := func(version string) ModuleLookup {
		return func(_ context.Context, ns, name string) (*kmmv1beta1.Module, error) {
			if ns != "kmm" || name != "m" {
				return nil, nil
			}
			return &kmmv1beta1.Module{Spec: kmmv1beta1.ModuleSpec{ModuleLoader: &kmmv1beta1.ModuleLoaderSpec{
				Container: kmmv1beta1.ModuleLoaderContainerSpec{Version: version}}}}, nil
		}
	}
	tests := []struct {
		name     string
		in       string
		existing ModuleLookup
		want     []string
	}{
		{name: "object: version set, cluster's empty", in: object("v2"), existing: inCluster(""),
			want: []string{"Module kmm/m", "spec.moduleLoader.container.version: Forbidden", `from "" to "v2"`}},
		{name: "object: version dropped", in: object(""), existing: inCluster("v1"),
			want: []string{"spec.moduleLoader.container.version: Forbidden", `from "v1" to ""`}},
		{name: "object: version changed", in: object("v2"), existing: inCluster("v1")},
		{name: "object: no Module yet", in: object("v2"), existing: func(context.Context, string, string) (*kmmv1beta1.Module, error) { return nil, nil }},
		{name: "object: offline, no lookup", in: object("v2")},
		{name: "listed (a hook): version set, cluster's empty", in: listed("v2"), existing: inCluster(""),
			want: []string{"modules-configmap.yaml", "modules[0].moduleLoader.container.version: Forbidden"}},
		{name: "lookup fails", in: object("v2"), existing: func(context.Context, string, string) (*kmmv1beta1.Module, error) {
			return nil, errors.New("reading Module kmm/m from https://x: forbidden")
		}, want: []string{"Module kmm/m", "forbidden"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, tt.in, Options{Existing: tt.existing})
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestExtraKernels(t *testing.T) {
	in := template("mod", "kmm", anyKernelSpec, false, "")
	withSettings := func(settings string) string {
		q, err := json.Marshal(settings)
		require.NoError(t, err)
		return strings.Replace(in, "  modules.json:", "  settings.json: "+string(q)+"\n  modules.json:", 1)
	}
	loaders := func(out string) []string {
		var kernels []string
		for _, n := range parseAll(t, out) {
			if n.GetKind() == "DaemonSet" {
				kernels = append(kernels, n.GetAnnotations()[contract.AnnotationKernel])
			}
		}
		return kernels
	}
	base, _, err := run(t, in, Options{})
	require.NoError(t, err)
	nodeKernels := loaders(base)

	// Without extra loaders an extra kernel changes nothing for a module that does not build.
	out, _, err := run(t, withSettings(`{"extraKernels":["5.15.0-1049-gke"]}`), Options{})
	require.NoError(t, err)
	assert.Equal(t, nodeKernels, loaders(out))

	out, _, err = run(t, withSettings(`{"extraKernels":["5.15.0-1049-gke",{"kernel":"4.19.0-1"}],"extraKernelLoaders":true}`), Options{})
	require.NoError(t, err)
	assert.ElementsMatch(t, append(append([]string{}, nodeKernels...), "5.15.0-1049-gke"), loaders(out),
		"a loader for the extra kernel its mapping matches (^5\\.); none for 4.19.0-1, which no mapping matches")

	// The flags add to the chart's list.
	out, _, err = run(t, in, Options{ExtraKernels: []render.ExtraKernel{{Kernel: "5.15.0-1049-gke"}}, ExtraKernelLoaders: true})
	require.NoError(t, err)
	assert.Contains(t, loaders(out), "5.15.0-1049-gke")
	for _, n := range parseAll(t, out) {
		if n.GetAnnotations()[contract.AnnotationKernel] == "5.15.0-1049-gke" {
			assert.Equal(t, "5.15.0-1049-gke", n.GetAnnotations()[contract.AnnotationKernel])
			sel, err := n.Pipe(yaml.Lookup("spec", "template", "spec", "nodeSelector", kernelLabel))
			require.NoError(t, err)
			require.NotNil(t, sel)
			assert.Equal(t, "5.15.0-1049-gke", yaml.GetValue(sel))
		}
	}
}
