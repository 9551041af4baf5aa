package cluster

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"kmm.dev/kmm/pkg/render"
)

func TestLoadNodesExamples(t *testing.T) {
	root, err := RepoRoot()
	require.NoError(t, err)
	for example, count := range map[string]int{"eks": 9, "gke": 7, "ubuntu": 5} {
		ns, err := LoadNodes(filepath.Join(root, "examples", example, "nodes.yaml"))
		require.NoError(t, err, example)
		require.Len(t, ns, count, example)
		for _, n := range ns {
			require.NotEmpty(t, n.Name)
			require.NotEmpty(t, n.Status.NodeInfo.KernelVersion, n.Name)
			require.NotEmpty(t, n.Labels[LabelKernelFull], n.Name)
		}
	}
}

func TestLoadNodesForms(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	multi := write("multi.yaml", "apiVersion: v1\nkind: Node\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: b}\n")
	ns, err := LoadNodes(multi)
	require.NoError(t, err)
	require.Len(t, ns, 2)

	list := write("list.json", `{"apiVersion":"v1","kind":"NodeList","items":[{"metadata":{"name":"c"}}]}`)
	ns, err = LoadNodes(list)
	require.NoError(t, err)
	require.Equal(t, "c", ns[0].Name)

	_, err = LoadNodes(write("empty.yaml", "apiVersion: v1\nkind: List\nitems: []\n"))
	require.ErrorContains(t, err, "holds no nodes")
	_, err = LoadNodes(write("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"))
	require.ErrorContains(t, err, `kind "Pod"`)
	_, err = LoadNodes(filepath.Join(dir, "missing.yaml"))
	require.Error(t, err)
}

func TestNFDKernelLabels(t *testing.T) {
	for _, kernel := range []string{"5.10.109+", "6.1.112-122.189.amzn2023.x86_64", "5.15.0-1034-gke", "6.8.0-51-generic"} {
		want, ok := render.KernelLabelValue(kernel)
		require.True(t, ok)
		require.Equal(t, want, NFDKernelLabels(kernel)[LabelKernelFull], kernel)
	}
	require.Equal(t, map[string]string{
		LabelKernelFull: "5.15.0-105-generic", LabelKernelMajor: "5", LabelKernelMinor: "15", LabelKernelRevision: "0",
	}, NFDKernelLabels("5.15.0-105-generic"))
	require.Equal(t, map[string]string{
		LabelKernelFull: "5.10.109", LabelKernelMajor: "5", LabelKernelMinor: "10", LabelKernelRevision: "109",
	}, NFDKernelLabels("5.10.109+"))
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
