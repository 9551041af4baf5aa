package render

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/module"
	"kmm.dev/kmm/pkg/nodes"
)

const kl = DefaultKernelLabel

// node builds a test node. Labels are "k=v" strings.
func node(name, kernel string, labels ...string) nodes.Node {
	n := nodes.Node{Name: name, Kernel: kernel, Labels: map[string]string{}}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		n.Labels[k] = v
	}
	return n
}

func tainted(n nodes.Node, taints ...corev1.Taint) nodes.Node {
	n.Taints = append(n.Taints, taints...)
	return n
}

func TestSelects(t *testing.T) {
	sel := map[string]string{"kubernetes.io/os": "linux", "pool": "gpu"}
	gpuTaint := corev1.Taint{Key: "nvidia.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}
	base := node("n", "5.10.109", "kubernetes.io/os=linux", "pool=gpu")
	tests := []struct {
		name        string
		selector    map[string]string
		tolerations []corev1.Toleration
		node        nodes.Node
		want        bool
	}{
		{name: "all selector labels match", selector: sel, node: base, want: true},
		{name: "extra node labels are fine", selector: sel, node: node("n", "k", "kubernetes.io/os=linux", "pool=gpu", "x=y"), want: true},
		{name: "one label differs", selector: sel, node: node("n", "k", "kubernetes.io/os=linux", "pool=cpu"), want: false},
		{name: "missing label", selector: sel, node: node("n", "k", "kubernetes.io/os=linux"), want: false},
		{name: "label present with empty value does not match a value", selector: sel, node: node("n", "k", "kubernetes.io/os=linux", "pool="), want: false},
		{name: "selector for empty value needs the label", selector: map[string]string{"flag": ""}, node: node("n", "k"), want: false},
		{name: "selector for empty value matches empty label", selector: map[string]string{"flag": ""}, node: node("n", "k", "flag="), want: true},
		{name: "node without labels", selector: sel, node: nodes.Node{Name: "n", Kernel: "k"}, want: false},
		{
			name: "NoSchedule taint not tolerated", selector: sel,
			node: tainted(base, gpuTaint), want: false,
		},
		{
			name: "NoExecute taint not tolerated", selector: sel,
			node: tainted(base, corev1.Taint{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoExecute}), want: false,
		},
		{
			name: "control-plane taint not tolerated", selector: sel,
			node: tainted(base, corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}), want: false,
		},
		{
			name: "tolerated by Equal", selector: sel,
			tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule}},
			node:        tainted(base, gpuTaint), want: true,
		},
		{
			name: "tolerated by empty operator (Equal)", selector: sel,
			tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Value: "true"}},
			node:        tainted(base, gpuTaint), want: true,
		},
		{
			name: "Equal with a different value does not tolerate", selector: sel,
			tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Value: "false", Effect: corev1.TaintEffectNoSchedule}},
			node:        tainted(base, gpuTaint), want: false,
		},
		{
			name: "toleration for another effect does not tolerate", selector: sel,
			tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoExecute}},
			node:        tainted(base, gpuTaint), want: false,
		},
		{
			name: "tolerated by Exists on the key", selector: sel,
			tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists}},
			node:        tainted(base, gpuTaint), want: true,
		},
		{
			name: "Exists on another key does not tolerate", selector: sel,
			tolerations: []corev1.Toleration{{Key: "other", Operator: corev1.TolerationOpExists}},
			node:        tainted(base, gpuTaint), want: false,
		},
		{
			name: "empty-key Exists tolerates everything", selector: sel,
			tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			node: tainted(base, gpuTaint,
				corev1.Taint{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoExecute},
				corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}),
			want: true,
		},
		{
			name: "one of two taints not tolerated", selector: sel,
			tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists}},
			node:        tainted(base, gpuTaint, corev1.Taint{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}),
			want:        false,
		},
		{
			name: "PreferNoSchedule ignored", selector: sel,
			node: tainted(base, corev1.Taint{Key: "soft", Value: "x", Effect: corev1.TaintEffectPreferNoSchedule}), want: true,
		},
		{
			name: "node.kubernetes.io/not-ready ignored", selector: sel,
			node: tainted(base, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}), want: true,
		},
		{
			name: "node.kubernetes.io/not-ready NoSchedule ignored", selector: sel,
			node: tainted(base, corev1.Taint{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}), want: true,
		},
		{
			name: "node.kubernetes.io/unreachable ignored", selector: sel,
			node: tainted(base, corev1.Taint{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoExecute}), want: true,
		},
		{
			name: "node.kubernetes.io/unschedulable ignored", selector: sel,
			node: tainted(base, corev1.Taint{Key: "node.kubernetes.io/unschedulable", Effect: corev1.TaintEffectNoSchedule}), want: true,
		},
		{
			name: "node.kubernetes.io/disk-pressure ignored", selector: sel,
			node: tainted(base, corev1.Taint{Key: "node.kubernetes.io/disk-pressure", Effect: corev1.TaintEffectNoSchedule}), want: true,
		},
		{
			name: "node.kubernetes.io/memory-pressure ignored", selector: sel,
			node: tainted(base, corev1.Taint{Key: "node.kubernetes.io/memory-pressure", Effect: corev1.TaintEffectNoSchedule}), want: true,
		},
		{
			name: "node.kubernetes.io/pid-pressure ignored", selector: sel,
			node: tainted(base, corev1.Taint{Key: "node.kubernetes.io/pid-pressure", Effect: corev1.TaintEffectNoSchedule}), want: true,
		},
		{
			name: "node.kubernetes.io/network-unavailable ignored", selector: sel,
			node: tainted(base, corev1.Taint{Key: "node.kubernetes.io/network-unavailable", Effect: corev1.TaintEffectNoSchedule}), want: true,
		},
		{
			name: "condition taint ignored but another taint still counts", selector: sel,
			node: tainted(base, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}, gpuTaint), want: false,
		},
		{
			name: "EKS Fargate never selected", selector: sel,
			node: node("fargate-ip-1", "5.10.109", "kubernetes.io/os=linux", "pool=gpu", "eks.amazonaws.com/compute-type=fargate"), want: false,
		},
		{
			name: "EKS Fargate never selected, even when everything is tolerated", selector: map[string]string{"kubernetes.io/os": "linux"},
			tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			node:        node("fargate-ip-1", "5.10.109", "kubernetes.io/os=linux", "eks.amazonaws.com/compute-type=fargate"), want: false,
		},
		{
			name: "EKS compute-type ec2 is selected", selector: sel,
			node: node("n", "5.10.109", "kubernetes.io/os=linux", "pool=gpu", "eks.amazonaws.com/compute-type=ec2"), want: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Selects(tt.selector, tt.tolerations, tt.node))
		})
	}
}

// planModuleWith compiles the plan tests' module after mutate changes it.
func planModuleWith(t *testing.T, mutate func(c *kmmv1beta1.ModuleLoaderContainerSpec)) *Module {
	t.Helper()
	m := decodeModule(t, `{"name":"kmm-ci-a","namespace":"kmm-demo","selector":{"kubernetes.io/os":"linux"},
		"moduleLoader":{"container":{"containerImage":"r/kmm-ci-a:${KERNEL_FULL_VERSION}","modprobe":{"moduleName":"kmm_ci_a"},
		"kernelMappings":[{"literal":"5.15.0-105-generic"},{"regexp":"^6\\.8\\.","containerImage":"r/kmm-ci-a:noble-${KERNEL_XYZ}"},{"regexp":"^5\\.10\\.109$"}]}}}`)
	if mutate != nil {
		mutate(m.Container())
	}
	require.Empty(t, m.Validate(module.ValuesPaths(0)))
	rm, err := NewModule(m)
	require.NoError(t, err)
	return rm
}

func planModule(t *testing.T) *Module { return planModuleWith(t, nil) }

const linux = "kubernetes.io/os=linux"

func TestNewPlan(t *testing.T) {
	tests := []struct {
		name          string
		module        func(t *testing.T) *Module
		tolerations   []corev1.Toleration
		nodes         []nodes.Node
		kernelLabel   string
		wantTargets   []Target
		wantUnmatched []Unmatched
		// wantWarnings: one entry per warning, in order, each a list of substrings.
		wantWarnings [][]string
		wantErr      []string
	}{
		{
			name:        "targets sorted by kernel, nodes by name, whatever the input order",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("w4", "6.8.0-51-generic", linux, kl+"=6.8.0-51-generic"),
				node("w2", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
				node("w3", "6.8.0-51-generic", linux, kl+"=6.8.0-51-generic"),
				node("w1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"w1", "w2"}},
				{Kernel: "6.8.0-51-generic", LabelValue: "6.8.0-51-generic", Mapping: 1, Image: "r/kmm-ci-a:noble-6.8.0", Nodes: []string{"w3", "w4"}},
			},
		},
		{
			name:        "unmatched kernels listed with their node names, sorted",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("b", "6.5.0-1-generic", linux, kl+"=6.5.0-1-generic"),
				node("a", "6.5.0-1-generic", linux, kl+"=6.5.0-1-generic"),
				node("c", "4.19.0-1", linux, kl+"=4.19.0-1"),
				node("d", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"d"}},
			},
			wantUnmatched: []Unmatched{
				{Kernel: "4.19.0-1", Nodes: []string{"c"}},
				{Kernel: "6.5.0-1-generic", Nodes: []string{"a", "b"}},
			},
		},
		{
			name:        "unselected nodes ignored: selector, taint, Fargate",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("win", "5.15.0-105-generic", "kubernetes.io/os=windows"),
				tainted(node("cp", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
					corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}),
				node("fargate", "4.19.0-1", linux, "eks.amazonaws.com/compute-type=fargate"),
				node("w1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"w1"}},
			},
			wantWarnings: [][]string{{"kernel 4.19.0-1", "node(s) fargate are EKS Fargate nodes", "no DaemonSet runs", "managed node group"}},
		},
		{
			name:        "nodes that do not run Linux get no loader, by label or by nodeInfo, under a selector that picks them",
			kernelLabel: kl,
			module: func(t *testing.T) *Module {
				m := planModuleWith(t, func(c *kmmv1beta1.ModuleLoaderContainerSpec) {
					c.KernelMappings = append(c.KernelMappings, kmmv1beta1.KernelMapping{Regexp: ".*"})
				})
				m.Selector = map[string]string{"pool": "mixed"}
				return m
			},
			nodes: []nodes.Node{
				node("win-1", "10.0.20348.2582", "pool=mixed", "kubernetes.io/os=windows", kl+"=10.0.20348.2582"),
				func() nodes.Node {
					n := node("win-2", "10.0.20348.2582", "pool=mixed")
					n.OperatingSystem = "windows"
					return n
				}(),
				func() nodes.Node {
					n := node("w1", "5.15.0-105-generic", "pool=mixed", linux, kl+"=5.15.0-105-generic")
					n.OperatingSystem = "linux"
					return n
				}(),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"w1"}},
			},
			wantWarnings: [][]string{{"module kmm-demo/kmm-ci-a: kernel 10.0.20348.2582: node(s) win-1 (windows), win-2 (windows) do not run Linux: they get no loader, build or device plugin", "kubernetes.io/os: linux"}},
		},
		{
			name:        "an operator module's image that is no valid reference is planned as KMM takes it, with a warning",
			kernelLabel: kl,
			module: func(t *testing.T) *Module {
				m := decodeModule(t, `{"name":"kmm-ci-a","namespace":"kmm-demo","via":"operator","selector":{"kubernetes.io/os":"linux"},
					"moduleLoader":{"container":{"modprobe":{"moduleName":"kmm_ci_a"},
					"kernelMappings":[{"regexp":"^.+$","containerImage":"<aws-account-id>.dkr.ecr.<aws-region>.amazonaws.com/lab:${KERNEL_FULL_VERSION}"}]}}}`)
				require.Empty(t, m.Validate(module.ValuesPaths(0)), "KMM's rule: a ':' is there")
				rm, err := NewModule(m)
				require.NoError(t, err)
				return rm
			},
			nodes: []nodes.Node{node("w1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic")},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "<aws-account-id>.dkr.ecr.<aws-region>.amazonaws.com/lab:5.15.0-105-generic", Nodes: []string{"w1"}},
			},
			wantWarnings: [][]string{{"module kmm-demo/kmm-ci-a: kernel 5.15.0-105-generic", `"<aws-account-id>.dkr.ecr.<aws-region>.amazonaws.com/lab:5.15.0-105-generic" is not a valid image reference`, "the KMM controller accepts the Module, but its worker pods cannot pull the image"}},
		},
		{
			name:        "EKS Auto Mode nodes get no loader; hybrid nodes are ordinary nodes",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("auto-1", "6.1.119", linux, "eks.amazonaws.com/compute-type=auto"),
				node("hybrid-1", "5.15.0-105-generic", linux, "eks.amazonaws.com/compute-type=hybrid"),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"hybrid-1"}},
			},
			wantWarnings: [][]string{
				{"kernel 5.15.0-105-generic: node(s) hybrid-1 lack label"},
				{"kernel 6.1.119: node(s) auto-1 are EKS Auto Mode nodes", "allowEKSAutoMode: true"},
			},
		},
		{
			name:        "allowEKSAutoMode lets Auto Mode nodes in",
			kernelLabel: kl,
			module: func(t *testing.T) *Module {
				m := planModule(t)
				m.AllowEKSAutoMode = true
				return m
			},
			nodes: []nodes.Node{node("auto-1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic", "eks.amazonaws.com/compute-type=auto")},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"auto-1"}},
			},
		},
		{
			name:        "GKE Autopilot nodes the selector picks: refused, naming pools and nodes",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("gke-std-pool-1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic", "cloud.google.com/gke-nodepool=std-pool"),
				node("gk3-prod-pool-2-abcd", "6.6.56+", linux, "cloud.google.com/gke-nodepool=pool-2"),
				node("gke-std-ap-1", "6.6.56+", linux, "cloud.google.com/gke-nodepool=nap-e2", "cloud.google.com/compute-class=autopilot"),
			},
			wantErr: []string{"module kmm-demo/kmm-ci-a", "GKE Autopilot nodes", "node pool nap-e2 (gke-std-ap-1)", "node pool pool-2 (gk3-prod-pool-2-abcd)",
				"SYS_MODULE", "cloud.google.com/gke-nodepool: <pool>"},
		},
		{
			name:        "GKE Autopilot nodes the selector does not pick are no concern",
			kernelLabel: kl,
			module: func(t *testing.T) *Module {
				m := planModule(t)
				m.Selector = map[string]string{"cloud.google.com/gke-nodepool": "std-pool"}
				return m
			},
			nodes: []nodes.Node{
				node("gke-std-pool-1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic", "cloud.google.com/gke-nodepool=std-pool"),
				node("gk3-prod-pool-2-abcd", "6.6.56+", linux, "cloud.google.com/gke-nodepool=pool-2"),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"gke-std-pool-1"}},
			},
		},
		{
			name:        "tolerations let tainted nodes in",
			kernelLabel: kl,
			tolerations: []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			nodes: []nodes.Node{
				tainted(node("cp", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
					corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}),
				node("w1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"cp", "w1"}},
			},
		},
		{
			name:        "no node carries the label: NFD value computed, warning names the nodes",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("cos-2", "5.10.109+", linux),
				node("cos-1", "5.10.109+", linux),
			},
			wantTargets: []Target{
				{Kernel: "5.10.109+", LabelValue: "5.10.109", Mapping: 2, Image: "r/kmm-ci-a:5.10.109", Nodes: []string{"cos-1", "cos-2"}},
			},
			wantWarnings: [][]string{{"kmm-demo/kmm-ci-a", "5.10.109+", "cos-1, cos-2", "lack label " + kl, kl + "=5.10.109"}},
		},
		{
			name:        "some nodes lack the label: the carried value is used, warning names only the unlabelled",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("w1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
				node("w2", "5.15.0-105-generic", linux),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"w1", "w2"}},
			},
			wantWarnings: [][]string{{"node(s) w2 lack label"}},
		},
		{
			name:        "nodes carrying the label: the actual value is used even when NFD would compute another",
			kernelLabel: "example.com/kernel",
			nodes: []nodes.Node{
				node("w1", "5.10.109+", linux, "example.com/kernel=cos-97"),
				node("w2", "5.10.109+", linux, "example.com/kernel=cos-97"),
			},
			wantTargets: []Target{
				{Kernel: "5.10.109+", LabelValue: "cos-97", Mapping: 2, Image: "r/kmm-ci-a:5.10.109", Nodes: []string{"w1", "w2"}},
			},
		},
		{
			name:        "disagreeing labels: most common value, warning names the odd node",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("w1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
				node("w2", "5.15.0-105-generic", linux, kl+"=stale"),
				node("w3", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"w1", "w2", "w3"}},
			},
			wantWarnings: [][]string{{"disagree", `"5.15.0-105-generic"`, "w2 (" + kl + "=stale)"}},
		},
		{
			name:        "disagreeing labels, tie: lexically first value",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("w1", "5.15.0-105-generic", linux, kl+"=zeta"),
				node("w2", "5.15.0-105-generic", linux, kl+"=alpha"),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "alpha", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"w1", "w2"}},
			},
			wantWarnings: [][]string{{"disagree", `"alpha"`, "w1 (" + kl + "=zeta)"}},
		},
		{
			name:        "two raw kernels with the same label value: error names both",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("cos", "5.10.109+", linux),
				node("other", "5.10.109", linux),
			},
			wantErr: []string{`"5.10.109"`, `"5.10.109+"`, kl + "=5.10.109"},
		},
		{
			name:        "two raw kernels whose nodes carry the same label value: error names both",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("w1", "5.15.0-105-generic", linux, kl+"=same"),
				node("w2", "6.8.0-51-generic", linux, kl+"=same"),
			},
			wantErr: []string{`"5.15.0-105-generic"`, `"6.8.0-51-generic"`, kl + "=same"},
		},
		{
			name:        "operator mode (empty kernel label): no LabelValue, no label warnings, no fold error",
			kernelLabel: "",
			nodes: []nodes.Node{
				node("cos", "5.10.109+", linux),
				node("other", "5.10.109", linux),
				node("w1", "5.15.0-105-generic", linux, kl+"=zeta"),
				node("w2", "5.15.0-105-generic", linux, kl+"=alpha"),
			},
			wantTargets: []Target{
				{Kernel: "5.10.109", Mapping: 2, Image: "r/kmm-ci-a:5.10.109", Nodes: []string{"other"}},
				{Kernel: "5.10.109+", Mapping: 2, Image: "r/kmm-ci-a:5.10.109", Nodes: []string{"cos"}},
				{Kernel: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"w1", "w2"}},
			},
		},
		{
			name:        "node with empty kernel: warning, no target",
			kernelLabel: kl,
			nodes: []nodes.Node{
				node("nokernel", "", linux),
				node("w1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
			},
			wantTargets: []Target{
				{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Mapping: 0, Image: "r/kmm-ci-a:5.15.0-105-generic", Nodes: []string{"w1"}},
			},
			wantWarnings: [][]string{{"kmm-demo/kmm-ci-a", "nokernel", "report no kernel"}},
		},
		{
			name:         "node with empty kernel in operator mode: warning too",
			kernelLabel:  "",
			nodes:        []nodes.Node{node("nokernel", "", linux)},
			wantWarnings: [][]string{{"nokernel", "report no kernel"}},
		},
		{
			name: "kernel no label value can express, unlabelled: warning, no target",
			module: func(t *testing.T) *Module {
				return planModuleWith(t, func(c *kmmv1beta1.ModuleLoaderContainerSpec) {
					c.KernelMappings = append(c.KernelMappings, kmmv1beta1.KernelMapping{Regexp: "^x"})
				})
			},
			kernelLabel:  kl,
			nodes:        []nodes.Node{node("long", "x"+strings.Repeat("y", 70), linux)},
			wantWarnings: [][]string{{"no valid value of label", "long"}},
		},
		{
			name: "image substitution error propagates",
			module: func(t *testing.T) *Module {
				return planModuleWith(t, func(c *kmmv1beta1.ModuleLoaderContainerSpec) {
					c.KernelMappings = []kmmv1beta1.KernelMapping{{Regexp: ".", ContainerImage: "r/m:${KERNEL_X}-${KERNEL_Y}"}}
				})
			},
			kernelLabel: kl,
			nodes:       []nodes.Node{node("w", "custom", linux)},
			wantErr:     []string{"KERNEL_X"},
		},
		{
			name:        "no node selected: empty plan",
			kernelLabel: kl,
			nodes:       []nodes.Node{node("win", "10.0.17763", "kubernetes.io/os=windows")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := planModule(t)
			if tt.module != nil {
				m = tt.module(t)
			}
			m.Tolerations = tt.tolerations
			p, err := NewPlan(m, tt.nodes, tt.kernelLabel)
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			assert.Same(t, m, p.Module)
			// Where the nodes run is TestPlanPlatforms' concern.
			got := append([]Target(nil), p.Targets...)
			for i := range got {
				got[i].Platform, got[i].OS, got[i].Arch, got[i].OSRelease, got[i].OSVariant = "", "", "", "", ""
			}
			assert.Equal(t, tt.wantTargets, got)
			assert.Equal(t, tt.wantUnmatched, p.Unmatched)
			require.Len(t, p.Warnings, len(tt.wantWarnings), "warnings: %q", p.Warnings)
			for i, subs := range tt.wantWarnings {
				for _, s := range subs {
					assert.Contains(t, p.Warnings[i], s)
				}
			}
			// Planning is deterministic: the same nodes in reverse order give the same plan.
			rev := make([]nodes.Node, len(tt.nodes))
			for i, n := range tt.nodes {
				rev[len(rev)-1-i] = n
			}
			p2, err := NewPlan(m, rev, tt.kernelLabel)
			require.NoError(t, err)
			assert.Equal(t, p.Targets, p2.Targets)
			assert.Equal(t, p.Unmatched, p2.Unmatched)
			assert.Equal(t, p.Warnings, p2.Warnings)
		})
	}
}

// A node's kernel label value decides which generated DaemonSet runs on it. NewPlan checks that
// no two targets use the same value, but not that the value of a target is carried only by nodes
// of that target's kernel: a node on another kernel carrying it (an unmatched kernel folding to
// the same value, or a stale label) then gets the target's loader, with an image built for
// another kernel, and NewPlan returns neither an error nor a warning about it.
func TestNewPlanLabelValueCarriedByAnotherKernel(t *testing.T) {
	tests := []struct {
		name    string
		nodes   []nodes.Node
		kernels []string // the error must name both
	}{
		{
			// Ubuntu example: literal mappings, admins upgrade kernels with apt + reboot. A
			// hand-applied (or no longer refreshed) label goes stale on the upgraded node,
			// whose new kernel no mapping matches yet.
			name: "unmatched kernel with a stale label",
			nodes: []nodes.Node{
				node("metal-worker-1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
				node("metal-worker-2", "5.15.0-107-generic", linux, kl+"=5.15.0-105-generic"),
			},
			kernels: []string{"5.15.0-105-generic", "5.15.0-107-generic"},
		},
		{
			name: "unmatched kernel that NFD folds into a target's value",
			nodes: []nodes.Node{
				node("a", "5.10.109", linux, kl+"=5.10.109"),
				node("b", "5.10.109-", linux, kl+"=5.10.109"), // NFD: "5.10.109-" -> "5.10.109"; no mapping matches "5.10.109-"
			},
			kernels: []string{"5.10.109", "5.10.109-"},
		},
		{
			// The minority value of a group is another target's value: the warning says the
			// node "gets no loader", but it gets the other kernel's.
			name: "minority label of one kernel is another target's value",
			nodes: []nodes.Node{
				node("w1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
				node("w2", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
				node("w3", "5.15.0-105-generic", linux, kl+"=6.8.0-51-generic"),
				node("w4", "6.8.0-51-generic", linux, kl+"=6.8.0-51-generic"),
			},
			kernels: []string{"5.15.0-105-generic", "6.8.0-51-generic"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(planModule(t), tt.nodes, kl)
			if err == nil {
				t.Errorf("nodes of kernels %q share one %s value, so a generated nodeSelector selects nodes of another kernel, yet NewPlan returned no error (targets %+v, unmatched %+v, warnings %q)",
					tt.kernels, kl, p.Targets, p.Unmatched, p.Warnings)
				return
			}
			for _, k := range tt.kernels {
				assert.Contains(t, err.Error(), `"`+k+`"`)
			}
		})
	}
}

func TestPlanPlatforms(t *testing.T) {
	m := compile(t, `{"name":"m","namespace":"kmm","selector":{"kubernetes.io/os":"linux"},
		"moduleLoader":{"container":{"containerImage":"r/m:${KERNEL_FULL_VERSION}","modprobe":{"moduleName":"m"},"kernelMappings":[{"regexp":"."}]}}}`)
	linux := func(extra map[string]string) map[string]string {
		l := map[string]string{"kubernetes.io/os": "linux"}
		for k, v := range extra {
			l[k] = v
		}
		return l
	}
	ns := []nodes.Node{
		{Name: "cos", Kernel: "5.10.109+", OSImage: "Container-Optimized OS from Google", ProviderID: "gce://p/z/cos", Labels: linux(nil)},
		{Name: "al2", Kernel: "5.4.196-108.356.amzn2.x86_64", OSImage: "Amazon Linux 2", ProviderID: "aws:///us-west-2a/i-1", Labels: linux(nil)},
		{Name: "metal", Kernel: "6.8.0-51-generic", OSImage: "Ubuntu 24.04.1 LTS", Labels: linux(nil)},
		{Name: "fargate", Kernel: "5.10.1-1.amzn2.x86_64", OSImage: "Amazon Linux 2", Labels: linux(map[string]string{"eks.amazonaws.com/compute-type": "fargate"})},
	}
	p, err := NewPlan(m, ns, DefaultKernelLabel)
	require.NoError(t, err)
	got := map[string][2]string{}
	for _, tg := range p.Targets {
		got[tg.Kernel] = [2]string{tg.Platform, tg.OS}
	}
	assert.Equal(t, map[string][2]string{
		"5.4.196-108.356.amzn2.x86_64": {"eks", "al2"},
		"6.8.0-51-generic":             {"ubuntu", "ubuntu"},
	}, got, "EKS Fargate nodes run no DaemonSet and get no target; COS CPU nodes refuse out-of-tree modules (LoadPin)")
	var cos []string
	for _, w := range p.Warnings {
		if strings.Contains(w, "LoadPin") {
			cos = append(cos, w)
		}
	}
	require.Len(t, cos, 1, "warnings: %q", p.Warnings)
	assert.Contains(t, cos[0], "module kmm/m: kernel 5.10.109+: node(s) cos run Container-Optimized OS CPU or TPU images")
	assert.Contains(t, cos[0], "--image-type=UBUNTU_CONTAINERD", "the fix")
	assert.Contains(t, cos[0], "allowCOS: true", "the opt-in")
}

// COS: CPU nodes are refused unless the module opts in; a GPU pool (accelerator label) on the
// same kernel keeps its loader, restricted to the accelerator nodes.
func TestPlanCOSLoadPin(t *testing.T) {
	const mod = `{"name":"m","namespace":"kmm","selector":{"kubernetes.io/os":"linux"},%s
		"moduleLoader":{"container":{"containerImage":"r/m:${KERNEL_FULL_VERSION}","modprobe":{"moduleName":"m"},"kernelMappings":[{"regexp":"."}]}}}`
	cos := func(name string, gpu bool) nodes.Node {
		n := node(name, "6.1.100+", linux, kl+"=6.1.100")
		n.OSImage = "Container-Optimized OS from Google"
		if gpu {
			n.Labels["cloud.google.com/gke-accelerator"] = "nvidia-l4"
		}
		return n
	}
	gpuOnly := []corev1.NodeSelectorRequirement{{Key: "cloud.google.com/gke-accelerator", Operator: corev1.NodeSelectorOpExists}}
	tests := []struct {
		name     string
		allow    string
		nodes    []nodes.Node
		targets  map[string][]string // kernel -> nodes
		require  []corev1.NodeSelectorRequirement
		warnings int
	}{
		{name: "CPU pool refused", nodes: []nodes.Node{cos("cpu-1", false), cos("cpu-2", false)}, targets: map[string][]string{}, warnings: 1},
		{name: "CPU pool, opted in", allow: `"allowCOS":true,`, nodes: []nodes.Node{cos("cpu-1", false)}, targets: map[string][]string{"6.1.100+": {"cpu-1"}}},
		{name: "GPU pool", nodes: []nodes.Node{cos("gpu-1", true)}, targets: map[string][]string{"6.1.100+": {"gpu-1"}}},
		{name: "GPU and CPU pools on one kernel", nodes: []nodes.Node{cos("cpu-1", false), cos("gpu-1", true)},
			targets: map[string][]string{"6.1.100+": {"gpu-1"}}, require: gpuOnly, warnings: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(compile(t, fmt.Sprintf(mod, tt.allow)), tt.nodes, kl)
			require.NoError(t, err)
			got := map[string][]string{}
			for _, tg := range p.Targets {
				got[tg.Kernel] = tg.Nodes
				assert.Equal(t, tt.require, tg.Require)
			}
			assert.Equal(t, tt.targets, got)
			assert.Len(t, p.Warnings, tt.warnings, "%q", p.Warnings)
		})
	}
}
