package nodes

import (
	"fmt"
	"strings"
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

func TestCheckKernel(t *testing.T) {
	tests := []struct {
		name, kernel string
		wantErr      string
	}{
		{name: "EKS", kernel: "6.1.112-122.189.amzn2023.aarch64"},
		{name: "COS, with +", kernel: "5.10.109+"},
		{name: "punctuation kernels may carry", kernel: "5.10.0~rt#1_x:y"},
		{name: "256 bytes", kernel: strings.Repeat("5", 256)},
		{name: "257 bytes", kernel: strings.Repeat("5", 257), wantErr: "is 257 bytes long; a kernel release (uname -r) has at most 256"},
		{name: "NUL", kernel: "5.10.1\x00", wantErr: "holds byte 0x00 at offset 6"},
		{name: "newline", kernel: "5.10.1\nwarning: x", wantErr: "holds byte 0x0a at offset 6"},
		{name: "escape", kernel: "\x1b[2J5.10.1", wantErr: "holds byte 0x1b at offset 0"},
		{name: "space", kernel: "5.10.1 x", wantErr: "holds byte 0x20 at offset 6"},
		{name: "tab", kernel: "5.10.1\tx", wantErr: "holds byte 0x09 at offset 6"},
		{name: "DEL", kernel: "5.10.1\x7f", wantErr: "holds byte 0x7f at offset 6"},
		{name: "non-ASCII", kernel: "5.10.1é", wantErr: "holds byte 0xc3 at offset 6; a kernel release (uname -r) is printable ASCII without spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckKernel(tt.kernel)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// Check applies to every node, from a file or a cluster: a kernel string reaches annotations,
// environment variables and messages, and a label value the nodeSelectors.
func TestNodeCheck(t *testing.T) {
	ok := Node{Name: "ip-10-0-1-1.ec2.internal", Kernel: "5.10.109+", Labels: map[string]string{"feature.node.kubernetes.io/kernel-version.full": "5.10.109"}}
	tests := []struct {
		name    string
		mutate  func(n *Node)
		wantErr []string
	}{
		{name: "valid", mutate: func(*Node) {}},
		{name: "no kernel yet (a new node of a live cluster)", mutate: func(n *Node) { n.Kernel = "" }},
		{name: "kernel with a newline", mutate: func(n *Node) { n.Kernel = "5.10.1\nwarning: forged" },
			wantErr: []string{`node "ip-10-0-1-1.ec2.internal": status.nodeInfo.kernelVersion "5.10.1\nwarning: forged" holds byte 0x0a`}},
		{name: "kernel of 1,000 bytes, quoted short", mutate: func(n *Node) { n.Kernel = strings.Repeat("a", 1000) },
			wantErr: []string{`kernelVersion "` + strings.Repeat("a", 64) + `"...(1000 bytes) is 1000 bytes long`}},
		{name: "name that is no DNS subdomain", mutate: func(n *Node) { n.Name = "Node\x1bA" },
			wantErr: []string{`node "Node\x1bA": metadata.name is not a valid node name`}},
		{name: "empty name", mutate: func(n *Node) { n.Name = "" }, wantErr: []string{`node "": metadata.name is not a valid node name`}},
		{name: "invalid kernel label value", mutate: func(n *Node) { n.Labels["feature.node.kubernetes.io/kernel-version.full"] = "5.10.109 rt" },
			wantErr: []string{`node "ip-10-0-1-1.ec2.internal": metadata.labels: Invalid value: "5.10.109 rt"`}},
		{name: "invalid label key", mutate: func(n *Node) { n.Labels["bad key"] = "x" },
			wantErr: []string{`node "ip-10-0-1-1.ec2.internal": metadata.labels: Invalid value: "bad key"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := ok
			n.Labels = map[string]string{}
			for k, v := range ok.Labels {
				n.Labels[k] = v
			}
			tt.mutate(&n)
			err := n.Check()
			if tt.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
