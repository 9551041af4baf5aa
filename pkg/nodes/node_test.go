package nodes

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFromCoreV1(t *testing.T) {
	in := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"a": "b"}},
		Spec: corev1.NodeSpec{
			ProviderID: "aws:///us-west-2a/i-1",
			Taints:     []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}},
		},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{
			KernelVersion: "5.10.109+", OSImage: "Container-Optimized OS from Google", Architecture: "amd64",
		}},
	}
	assert.Equal(t, Node{
		Name:         "n1",
		Kernel:       "5.10.109+",
		OSImage:      "Container-Optimized OS from Google",
		Architecture: "amd64",
		Labels:       map[string]string{"a": "b"},
		Taints:       []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}},
		ProviderID:   "aws:///us-west-2a/i-1",
	}, FromCoreV1(in))
}

func TestSort(t *testing.T) {
	ns := []Node{{Name: "c"}, {Name: "a"}, {Name: "b"}}
	out := Sort(ns)
	assert.Equal(t, []Node{{Name: "a"}, {Name: "b"}, {Name: "c"}}, out)
	assert.Equal(t, "a", ns[0].Name, "sorted in place")
	assert.Empty(t, Sort(nil))
}

type groupView struct {
	Kernel string
	Nodes  []string
}

func view(gs []KernelGroup) []groupView {
	out := []groupView{}
	for _, g := range gs {
		v := groupView{Kernel: g.Kernel}
		for _, n := range g.Nodes {
			v.Nodes = append(v.Nodes, n.Name)
		}
		out = append(out, v)
	}
	return out
}

// permutations returns every ordering of ns (ns is small).
func permutations(ns []Node) [][]Node {
	if len(ns) <= 1 {
		return [][]Node{append([]Node(nil), ns...)}
	}
	var out [][]Node
	for i := range ns {
		rest := append(append([]Node(nil), ns[:i]...), ns[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]Node{ns[i]}, p...))
		}
	}
	return out
}

func TestByKernel(t *testing.T) {
	tests := []struct {
		name  string
		nodes []Node
		want  []groupView
	}{
		{name: "no nodes", nodes: nil, want: []groupView{}},
		{
			name:  "one kernel",
			nodes: []Node{{Name: "b", Kernel: "k"}, {Name: "a", Kernel: "k"}},
			want:  []groupView{{Kernel: "k", Nodes: []string{"a", "b"}}},
		},
		{
			name: "kernels sorted lexically, nodes by name",
			nodes: []Node{
				{Name: "w4", Kernel: "6.8.0-51-generic"},
				{Name: "cos-b", Kernel: "5.10.109+"},
				{Name: "w1", Kernel: "5.15.0-105-generic"},
				{Name: "w3", Kernel: "6.8.0-51-generic"},
				{Name: "cos-a", Kernel: "5.10.109"},
			},
			want: []groupView{
				{Kernel: "5.10.109", Nodes: []string{"cos-a"}},
				{Kernel: "5.10.109+", Nodes: []string{"cos-b"}},
				{Kernel: "5.15.0-105-generic", Nodes: []string{"w1"}},
				{Kernel: "6.8.0-51-generic", Nodes: []string{"w3", "w4"}},
			},
		},
		{
			name:  "empty kernel is a group of its own, first",
			nodes: []Node{{Name: "x", Kernel: "1"}, {Name: "y", Kernel: ""}},
			want:  []groupView{{Kernel: "", Nodes: []string{"y"}}, {Kernel: "1", Nodes: []string{"x"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			perms := permutations(tt.nodes)
			if len(tt.nodes) == 0 {
				perms = [][]Node{nil}
			}
			for i, p := range perms {
				assert.Equal(t, tt.want, view(ByKernel(p)), "permutation %d: %v", i, p)
			}
		})
	}
}

func TestByKernelLarge(t *testing.T) {
	// Many nodes, interleaved kernels: the same groups forwards and backwards.
	var ns []Node
	for i := 0; i < 60; i++ {
		ns = append(ns, Node{Name: fmt.Sprintf("node-%02d", i), Kernel: fmt.Sprintf("k%d", i%7)})
	}
	rev := make([]Node, len(ns))
	for i := range ns {
		rev[len(ns)-1-i] = ns[i]
	}
	a, b := ByKernel(ns), ByKernel(rev)
	require.Len(t, a, 7)
	assert.Equal(t, view(a), view(b))
	for _, g := range a {
		for i := 1; i < len(g.Nodes); i++ {
			assert.Less(t, g.Nodes[i-1].Name, g.Nodes[i].Name)
		}
	}
}
