// Package nodes builds the node inventory kmm-render expands loaders against: from a live
// cluster through client-go, or from a snapshot file (`kubectl get nodes -o yaml|json`), and
// tells which platform (EKS, GKE, Ubuntu) each node runs.
package nodes

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// Node is what kmm needs to know of one cluster node.
type Node struct {
	Name         string
	Kernel       string // status.nodeInfo.kernelVersion, raw
	OSImage      string
	Architecture string
	Labels       map[string]string
	Taints       []corev1.Taint
	ProviderID   string
}

// FromCoreV1 keeps the parts of a Node object kmm uses.
func FromCoreV1(n *corev1.Node) Node {
	return Node{
		Name:         n.Name,
		Kernel:       n.Status.NodeInfo.KernelVersion,
		OSImage:      n.Status.NodeInfo.OSImage,
		Architecture: n.Status.NodeInfo.Architecture,
		Labels:       n.Labels,
		Taints:       n.Spec.Taints,
		ProviderID:   n.Spec.ProviderID,
	}
}

// Platform tells where the node runs; see Detect.
func (n Node) Platform() Platform { return Detect(n) }

// KernelGroup is the set of nodes running one raw kernel string.
type KernelGroup struct {
	Kernel string
	Nodes  []Node // sorted by name
}

// ByKernel groups nodes by raw kernel, kernels sorted lexically and nodes by name, so that every
// caller sees the same order for the same nodes whatever order they were listed in.
func ByKernel(nodes []Node) []KernelGroup {
	idx := map[string]int{}
	var groups []KernelGroup
	for _, n := range nodes {
		i, ok := idx[n.Kernel]
		if !ok {
			i = len(groups)
			idx[n.Kernel] = i
			groups = append(groups, KernelGroup{Kernel: n.Kernel})
		}
		groups[i].Nodes = append(groups[i].Nodes, n)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Kernel < groups[j].Kernel })
	for _, g := range groups {
		sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].Name < g.Nodes[j].Name })
	}
	return groups
}

// Sort orders nodes by name, in place, and returns them.
func Sort(nodes []Node) []Node {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return nodes
}
