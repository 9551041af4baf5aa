package nodes

import (
	"sort"
	"strings"
)

// Platform is the kind of cluster a node belongs to, as far as its Node object tells.
type Platform string

const (
	PlatformEKS     Platform = "eks"
	PlatformGKE     Platform = "gke"
	PlatformUbuntu  Platform = "ubuntu"
	PlatformGeneric Platform = "generic"
)

// Labels that identify managed platforms.
const (
	LabelEKSNodegroup   = "eks.amazonaws.com/nodegroup"
	LabelEKSComputeType = "eks.amazonaws.com/compute-type"
	LabelGKENodepool    = "cloud.google.com/gke-nodepool"
	LabelGKEOSDistro    = "cloud.google.com/gke-os-distribution"
	LabelGKEAccelerator = "cloud.google.com/gke-accelerator"
)

// Detect tells the platform from the provider ID (aws:// or gce://), the managed node group
// labels, and, for nodes of no cloud, the OS image.
func Detect(n Node) Platform {
	switch {
	case strings.HasPrefix(n.ProviderID, "aws://"), hasLabel(n, LabelEKSNodegroup), hasLabel(n, LabelEKSComputeType):
		return PlatformEKS
	case strings.HasPrefix(n.ProviderID, "gce://"), hasLabel(n, LabelGKENodepool):
		return PlatformGKE
	case strings.HasPrefix(n.OSImage, "Ubuntu"):
		return PlatformUbuntu
	default:
		return PlatformGeneric
	}
}

// OSFamily names the node's OS the way header packages are chosen: al2, al2023, cos, ubuntu,
// or the OS image itself.
func OSFamily(n Node) string {
	switch img := n.OSImage; {
	case strings.HasPrefix(img, "Amazon Linux 2023"):
		return "al2023"
	case strings.HasPrefix(img, "Amazon Linux 2"):
		return "al2"
	case strings.HasPrefix(img, "Container-Optimized OS"):
		return "cos"
	case strings.HasPrefix(img, "Ubuntu"):
		return "ubuntu"
	case img == "":
		return "unknown"
	default:
		return img
	}
}

// LoadPinRefuses reports whether the node runs a Container-Optimized OS image whose LoadPin
// refuses out-of-tree modules: COS CPU and TPU images (GPU node pools, labelled with their
// accelerator, load GPU drivers).
func LoadPinRefuses(n Node) bool {
	return OSFamily(n) == "cos" && !hasLabel(n, LabelGKEAccelerator)
}

// RunsDaemonSets is false for nodes where no DaemonSet pod can run: EKS Fargate.
func RunsDaemonSets(n Node) bool {
	return n.Labels[LabelEKSComputeType] != "fargate"
}

func hasLabel(n Node, key string) bool {
	_, ok := n.Labels[key]
	return ok
}

// Platforms is the sorted, comma-separated set of the nodes' platforms (Detect).
func Platforms(ns []Node) string {
	return distinct(ns, func(n Node) string { return string(Detect(n)) })
}

// OSFamilies is the sorted, comma-separated set of the nodes' OS families (OSFamily).
func OSFamilies(ns []Node) string {
	return distinct(ns, OSFamily)
}

func distinct(ns []Node, f func(Node) string) string {
	set := map[string]bool{}
	for _, n := range ns {
		set[f(n)] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
