package localcluster

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/render"
)

func TestNFDKernelLabels(t *testing.T) {
	tests := []struct {
		kernel string
		want   map[string]string
	}{
		{
			kernel: "5.15.0-105-generic",
			want:   map[string]string{LabelKernelFull: "5.15.0-105-generic", LabelKernelMajor: "5", LabelKernelMinor: "15", LabelKernelRevision: "0"},
		},
		{
			kernel: "5.10.109+",
			want:   map[string]string{LabelKernelFull: "5.10.109", LabelKernelMajor: "5", LabelKernelMinor: "10", LabelKernelRevision: "109"},
		},
		{
			kernel: "6.1.112-122.189.amzn2023.x86_64",
			want:   map[string]string{LabelKernelFull: "6.1.112-122.189.amzn2023.x86_64", LabelKernelMajor: "6", LabelKernelMinor: "1", LabelKernelRevision: "112"},
		},
		{
			// .major comes from the cleaned value: the leading '+' is trimmed first.
			kernel: "+5.4.0",
			want:   map[string]string{LabelKernelFull: "5.4.0", LabelKernelMajor: "5", LabelKernelMinor: "4", LabelKernelRevision: "0"},
		},
		{
			kernel: "6.8#generic",
			want:   map[string]string{LabelKernelFull: "6.8_generic", LabelKernelMajor: "6", LabelKernelMinor: "8"},
		},
		{
			kernel: "rolling",
			want:   map[string]string{LabelKernelFull: "rolling"},
		},
		{kernel: "", want: map[string]string{}},
		{kernel: "+++", want: map[string]string{}},
		{kernel: "5." + strings.Repeat("1", 70), want: map[string]string{}}, // too long for a label value
	}
	for _, tt := range tests {
		t.Run(tt.kernel, func(t *testing.T) {
			got := NFDKernelLabels(tt.kernel)
			assert.Equal(t, tt.want, got)
			full, ok := render.KernelLabelValue(tt.kernel)
			assert.Equal(t, ok, got[LabelKernelFull] != "", "a .full label exactly when render has a value")
			assert.Equal(t, full, got[LabelKernelFull], "render.KernelLabelValue's value")
		})
	}
}

// TestNFDKernelLabelsExamples: the examples' nodes carry the .full label NFDKernelLabels gives
// their kernel, so a node the e2e tests move to another kernel looks like a real one.
func TestNFDKernelLabelsExamples(t *testing.T) {
	root, err := RepoRoot()
	require.NoError(t, err)
	for _, example := range []string{"eks", "gke", "ubuntu"} {
		t.Run(example, func(t *testing.T) {
			ns, err := nodes.LoadObjects(filepath.Join(root, "examples", example, "nodes.yaml"))
			require.NoError(t, err)
			require.NotEmpty(t, ns)
			for _, n := range ns {
				assert.Equal(t, n.Labels[LabelKernelFull], NFDKernelLabels(n.Status.NodeInfo.KernelVersion)[LabelKernelFull], n.Name)
			}
		})
	}
}

func TestPrepareNode(t *testing.T) {
	in := corev1.Node{}
	in.Name = "n"
	in.ResourceVersion, in.UID = "42", "uid"
	in.Spec.Taints = []corev1.Taint{
		{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule},
	}
	in.Status.NodeInfo.KernelVersion = "6.8.0-51-generic"
	in.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	out := prepareNode(in)
	require.Empty(t, out.ResourceVersion)
	require.Empty(t, out.UID)
	require.Len(t, out.Spec.Taints, 1)
	require.Empty(t, out.Status.Conditions, "conditions are kwok's")
	require.Equal(t, "6.8.0-51-generic", out.Status.NodeInfo.KernelVersion)
	pods := out.Status.Capacity[corev1.ResourcePods]
	require.Equal(t, int64(110), pods.Value())
}

func TestNodeReady(t *testing.T) {
	ready := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	tests := []struct {
		name string
		node corev1.Node
		want bool
	}{
		{name: "Ready", node: corev1.Node{Status: corev1.NodeStatus{Conditions: ready}}, want: true},
		{name: "no conditions", node: corev1.Node{}, want: false},
		{name: "Ready false", node: corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}}}, want: false},
		{
			name: "Ready but still tainted not-ready",
			node: corev1.Node{Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}}, Status: corev1.NodeStatus{Conditions: ready}},
			want: false,
		},
		{
			name: "Ready, other taints do not matter",
			node: corev1.Node{Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "nvidia.com/gpu", Effect: corev1.TaintEffectNoSchedule}}}, Status: corev1.NodeStatus{Conditions: ready}},
			want: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, NodeReady(&tt.node))
		})
	}
}
