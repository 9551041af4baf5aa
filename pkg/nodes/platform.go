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
	// LabelGKEComputeClass names the ComputeClass a GKE node was created for; the built-in
	// Autopilot classes run Autopilot-mode nodes even in Standard clusters.
	LabelGKEComputeClass = "cloud.google.com/compute-class"
)

// EKS compute types (the value of LabelEKSComputeType) that kmm treats apart.
const (
	// EKSFargate nodes are Fargate micro-VMs: no DaemonSet pod runs there.
	EKSFargate = "fargate"
	// EKSAutoMode nodes are EKS Auto Mode instances: an AWS-managed, immutable
	// Bottlerocket-based image that AWS replaces on its own schedule.
	EKSAutoMode = "auto"
	// EKSHybrid nodes are EKS Hybrid Nodes: machines of your own (on premises or at the edge)
	// running an OS of your choice. kmm treats them by their OS, like bare metal.
	EKSHybrid = "hybrid"
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

// OSFamily names the node's OS the way header packages are chosen: al2, al2023, bottlerocket,
// cos, debian, ubuntu, or the OS image itself.
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
	case strings.HasPrefix(img, "Debian GNU/Linux"):
		return "debian"
	case strings.HasPrefix(img, "Bottlerocket OS"):
		return "bottlerocket"
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
	return n.Labels[LabelEKSComputeType] != EKSFargate
}

// EKSComputeType is the node's eks.amazonaws.com/compute-type label: EKSFargate, EKSAutoMode,
// EKSHybrid, or "" (managed node groups, self-managed nodes, and Karpenter nodes of your own AMI).
func EKSComputeType(n Node) string { return n.Labels[LabelEKSComputeType] }

// Autopilot reports whether the node is a GKE Autopilot node, where privileged pods and the
// SYS_MODULE capability are refused: nodes of the built-in Autopilot ComputeClasses
// (cloud.google.com/compute-class autopilot or autopilot-spot, which Standard clusters can run
// too), and nodes named gk3-..., the prefix GKE gives the nodes of Autopilot clusters (Standard
// clusters' nodes are named gke-...). This is the nodes' observed signature, not a documented
// API: GKE could change it.
func Autopilot(n Node) bool {
	switch n.Labels[LabelGKEComputeClass] {
	case "autopilot", "autopilot-spot":
		return true
	}
	return Detect(n) == PlatformGKE && strings.HasPrefix(n.Name, "gk3-")
}

// NodePool names the node's pool for messages: the GKE node pool, the EKS managed node group,
// the EKS compute type, or "".
func NodePool(n Node) string {
	switch {
	case n.Labels[LabelGKENodepool] != "":
		return "node pool " + n.Labels[LabelGKENodepool]
	case n.Labels[LabelEKSNodegroup] != "":
		return "node group " + n.Labels[LabelEKSNodegroup]
	case n.Labels[LabelEKSComputeType] != "":
		return "compute type " + n.Labels[LabelEKSComputeType]
	}
	return ""
}

// OSRelease is the release of the node's OS, read from its OS image, as build defaults use it:
// al2 "2"; al2023 "2023.6.20241010" (dnf's releasever); ubuntu "22.04"; debian "12" (variant
// "bookworm"); bottlerocket "1.26.1" (variant "aws-k8s-1.31"). COS says nothing (its build id
// is not on the Node object) and other OSes neither. Only [A-Za-z0-9._-] pass: the values end
// up in build args and image references.
func OSRelease(n Node) (release, variant string) {
	img := n.OSImage
	paren := ""
	if i := strings.IndexByte(img, '('); i >= 0 {
		if j := strings.IndexByte(img[i:], ')'); j > 0 {
			paren = img[i+1 : i+j]
		}
	}
	fields := strings.Fields(img)
	field := func(i int) string {
		if i < len(fields) {
			return fields[i]
		}
		return ""
	}
	switch OSFamily(n) {
	case "al2":
		release = "2"
	case "al2023":
		// dnf's releasever is the full 2023.x.yyyymmdd; a bare "Amazon Linux 2023" names none.
		if r := field(2); strings.HasPrefix(r, "2023.") {
			release = r
		}
	case "ubuntu":
		parts := strings.SplitN(field(1), ".", 3)
		if len(parts) >= 2 {
			release = parts[0] + "." + parts[1]
		}
	case "debian":
		release, variant = field(2), paren
	case "bottlerocket":
		release, variant = field(2), paren
	}
	if !safeToken(release) || !safeToken(variant) {
		return "", ""
	}
	return release, variant
}

// Arch is the node's architecture as kernels and toolchains spell it (x86_64, aarch64), from
// the Go spelling Kubernetes reports (amd64, arm64).
func Arch(n Node) string {
	switch n.Architecture {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	if safeToken(n.Architecture) {
		return n.Architecture
	}
	return ""
}

func safeToken(s string) bool {
	if len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func hasLabel(n Node, key string) bool {
	_, ok := n.Labels[key]
	return ok
}

// Platforms is the sorted, comma-separated set of the nodes' platforms (Detect).
func Platforms(ns []Node) string {
	return distinct(ns, func(n Node) string { return string(Detect(n)) })
}

// Archs is the sorted, comma-separated set of the nodes' architectures (Arch).
func Archs(ns []Node) string {
	return distinct(ns, Arch)
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

// OSImageOfKernel guesses, for a kernel no node runs yet, the OS image of the nodes that will
// run it from the kernel string's distribution marks: .amzn2023. (Amazon Linux 2023), .amzn2.
// (Amazon Linux 2), a trailing '+' (Container-Optimized OS), Debian's -amd64/-arm64 flavours
// and Ubuntu's -generic, -gke, -aws... flavours. It returns "" when the string says nothing.
func OSImageOfKernel(kernel string) string {
	switch {
	case strings.Contains(kernel, ".amzn2023."):
		return "Amazon Linux 2023"
	case strings.Contains(kernel, ".amzn2."):
		return "Amazon Linux 2"
	case strings.HasSuffix(kernel, "+"):
		return "Container-Optimized OS from Google"
	case strings.HasSuffix(kernel, "-amd64"), strings.HasSuffix(kernel, "-arm64"):
		return "Debian GNU/Linux"
	}
	if i := strings.LastIndexByte(kernel, '-'); i > 0 {
		switch kernel[i+1:] {
		case "generic", "lowlatency", "gke", "gkeop", "aws", "azure", "gcp", "kvm", "oracle", "ibm", "nvidia":
			return "Ubuntu"
		}
	}
	return ""
}

// ArchOfKernel is the architecture (as nodes report it: amd64, arm64) a kernel string names,
// or "".
func ArchOfKernel(kernel string) string {
	switch {
	case strings.HasSuffix(kernel, ".x86_64"), strings.HasSuffix(kernel, "-amd64"):
		return "amd64"
	case strings.HasSuffix(kernel, ".aarch64"), strings.HasSuffix(kernel, "-arm64"):
		return "arm64"
	}
	return ""
}

// PlatformOfOS is the platform an OS family belongs to when nothing else tells: Amazon Linux
// is EKS's, Container-Optimized OS GKE's (for kernels no node runs yet). Other families: "".
func PlatformOfOS(family string) Platform {
	switch family {
	case "al2", "al2023":
		return PlatformEKS
	case "cos":
		return PlatformGKE
	}
	return ""
}

// NotLinux is the operating system of a node that does not run Linux: its kubernetes.io/os
// label, else its status.nodeInfo.operatingSystem, when either says something other than
// "linux" (Windows nodes report "windows" in both); "" for a Linux node or one that says
// nothing. No module can be loaded there.
func NotLinux(n Node) string {
	for _, os := range []string{n.Labels["kubernetes.io/os"], n.OperatingSystem} {
		if os != "" && os != "linux" {
			return os
		}
	}
	return ""
}
