// Package nodes builds the node inventory kmm-render expands loaders against: from a live
// cluster through client-go, or from a snapshot file (`kubectl get nodes -o yaml|json`), and
// tells which platform (EKS, GKE, Ubuntu) each node runs.
package nodes

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Node is what kmm needs to know of one cluster node.
type Node struct {
	Name    string
	Kernel  string // status.nodeInfo.kernelVersion, raw
	OSImage string
	// OperatingSystem is status.nodeInfo.operatingSystem ("linux", "windows"), as the kubelet
	// reports it.
	OperatingSystem string
	Architecture    string
	Labels          map[string]string
	Taints          []corev1.Taint
	ProviderID      string
}

// FromCoreV1 keeps the parts of a Node object kmm uses.
func FromCoreV1(n *corev1.Node) Node {
	return Node{
		Name:            n.Name,
		Kernel:          n.Status.NodeInfo.KernelVersion,
		OSImage:         n.Status.NodeInfo.OSImage,
		OperatingSystem: n.Status.NodeInfo.OperatingSystem,
		Architecture:    n.Status.NodeInfo.Architecture,
		Labels:          n.Labels,
		Taints:          n.Spec.Taints,
		ProviderID:      n.Spec.ProviderID,
	}
}

// MaxKernelLen is the longest kernel release kmm accepts, in bytes. Linux's own limit is 64
// (uname's release field); extraKernels have always been allowed up to this length.
const MaxKernelLen = 256

// CheckKernel refuses a kernel string that no Linux kernel reports (uname -r): longer than
// MaxKernelLen, or holding anything but printable ASCII without spaces (control characters,
// NUL, newlines, non-ASCII). Such a string would reach annotations, environment variables,
// image names and messages; kmm refuses it rather than guess. The empty kernel (a node that
// reports none yet) is not checked here.
func CheckKernel(kernel string) error {
	if len(kernel) > MaxKernelLen {
		return fmt.Errorf("is %d bytes long; a kernel release (uname -r) has at most %d", len(kernel), MaxKernelLen)
	}
	for i := 0; i < len(kernel); i++ {
		if c := kernel[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("holds byte %#02x at offset %d; a kernel release (uname -r) is printable ASCII without spaces", c, i)
		}
	}
	return nil
}

// Quote quotes a string from a node (a kernel, a name) for a message, cut to its first 64
// bytes when longer.
func Quote(kernel string) string {
	if len(kernel) > 64 {
		return fmt.Sprintf("%q...(%d bytes)", kernel[:64], len(kernel))
	}
	return fmt.Sprintf("%q", kernel)
}

// Check refuses a node that no API server would hold or no kubelet report: a name that is not
// a DNS subdomain, a kernel CheckKernel refuses, or invalid labels (their values end up in
// nodeSelectors). Snapshot files are not checked by an API server; kmm checks every node,
// from a file or a cluster, before planning with it.
func (n Node) Check() error {
	if msgs := validation.IsDNS1123Subdomain(n.Name); len(msgs) > 0 {
		return fmt.Errorf("node %s: metadata.name is not a valid node name: %s", Quote(n.Name), strings.Join(msgs, "; "))
	}
	if n.Kernel != "" {
		if err := CheckKernel(n.Kernel); err != nil {
			return fmt.Errorf("node %q: status.nodeInfo.kernelVersion %s %w", n.Name, Quote(n.Kernel), err)
		}
	}
	if errs := validateLabels(n.Labels); len(errs) > 0 { // ValidateLabels, remembered (labelcheck.go)
		return fmt.Errorf("node %q: %w", n.Name, errs.ToAggregate())
	}
	return nil
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
