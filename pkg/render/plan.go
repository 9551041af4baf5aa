package render

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"kmm.dev/kmm/pkg/module"
	"kmm.dev/kmm/pkg/nodes"
)

// Target is one kernel a module gets a loader for.
type Target struct {
	// Require are node requirements beyond the selector and the kernel label: the target's
	// nodes meet them and the kernel's other nodes do not (COS CPU nodes a GPU pool shares its
	// kernel with).
	Require    []corev1.NodeSelectorRequirement
	Kernel     string // raw, as the nodes report it
	LabelValue string // the kernel label value its nodes carry
	Mapping    int    // index of the kernel mapping that matched
	Image      string // resolved image
	Nodes      []string
	Platform   string // platforms of its nodes (nodes.Detect), comma-separated
	OS         string // OS families of its nodes (nodes.OSFamily), comma-separated
	// OSRelease and OSVariant are the release of its nodes' OS (nodes.OSRelease), empty unless
	// all its nodes agree.
	OSRelease, OSVariant string
	Arch                 string // architectures of its nodes (nodes.Arch), comma-separated
	// Extra marks a kernel that no node runs yet (extraKernels): built ahead, and loaded only
	// when the release asks for extra kernels' loaders too.
	Extra bool
}

// Unmatched is a kernel that selected nodes run and no mapping matches.
type Unmatched struct {
	Kernel string
	Nodes  []string
}

// Plan says what a module gets on a set of nodes.
type Plan struct {
	Module    *Module
	Targets   []Target    // sorted by kernel
	Unmatched []Unmatched // sorted by kernel
	// Warnings are things a person must know (nodes missing the kernel label, kernels that no
	// label value can express), one line each, in a stable order.
	Warnings []string
}

// LoaderTargets are the targets that get a loader: the kernels nodes run, and the extra kernels
// when extraLoaders is true.
func (p *Plan) LoaderTargets(extraLoaders bool) []Target {
	if extraLoaders {
		return p.Targets
	}
	out := make([]Target, 0, len(p.Targets))
	for _, tg := range p.Targets {
		if !tg.Extra {
			out = append(out, tg)
		}
	}
	return out
}

// daemonSetTolerated are the taints the DaemonSet controller tolerates on its own
// (node conditions): a node carrying only these still gets DaemonSet pods.
var daemonSetTolerated = map[string]bool{
	corev1.TaintNodeNotReady:           true,
	corev1.TaintNodeUnreachable:        true,
	corev1.TaintNodeDiskPressure:       true,
	corev1.TaintNodeMemoryPressure:     true,
	corev1.TaintNodePIDPressure:        true,
	corev1.TaintNodeUnschedulable:      true,
	corev1.TaintNodeNetworkUnavailable: true,
}

// Selects reports whether a module with selector and tolerations places a DaemonSet pod on n:
// every selector label matches, the node is one that runs DaemonSets at all (not EKS Fargate),
// and every NoSchedule / NoExecute taint, other than node-condition taints the DaemonSet
// controller tolerates itself, is tolerated.
func Selects(selector map[string]string, tolerations []corev1.Toleration, n nodes.Node) bool {
	return nodes.RunsDaemonSets(n) && matches(selector, tolerations, n)
}

// matches is Selects without the Fargate rule: the selector's labels and the taints.
func matches(selector map[string]string, tolerations []corev1.Toleration, n nodes.Node) bool {
	for k, v := range selector {
		if got, ok := n.Labels[k]; !ok || got != v {
			return false
		}
	}
	for i := range n.Taints {
		t := &n.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule || daemonSetTolerated[t.Key] {
			continue
		}
		tolerated := false
		for j := range tolerations {
			if tolerations[j].ToleratesTaint(klog.Background(), t, true) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return false
		}
	}
	return true
}

// NewPlan matches the module against the nodes (its selector and tolerations pick them): which kernels its selected nodes run, which
// mapping each kernel hits, the image, and the kernel label value that selects those nodes.
// kernelLabel is the node label key that carries the kernel. Nodes that already carry it keep
// their actual value; for the others it is computed as NFD would, and a warning names them.
// An empty kernelLabel plans for KMM's own controller, which selects nodes without a kernel
// label: targets then have no LabelValue.
func NewPlan(m *Module, all []nodes.Node, kernelLabel string) (*Plan, error) {
	return NewPlanForGroups(m, nodes.ByKernel(all), kernelLabel)
}

// NewPlanForGroups is NewPlan over nodes already grouped by nodes.ByKernel, so that many
// modules can be planned against one inventory without grouping and sorting it again.
func NewPlanForGroups(m *Module, groups []nodes.KernelGroup, kernelLabel string) (*Plan, error) {
	p := &Plan{Module: m}
	byLabel := map[string]string{} // label value -> kernel, to catch folds
	badImage := map[string]bool{}  // operator images already warned about
	var labelled []*nodes.Node     // selected nodes that carry the kernel label
	var autopilot []nodes.Node     // selected GKE Autopilot nodes: refused
	helm := kernelLabel != ""      // kmm's own loaders (the KMM controller places operator modules)
	for _, all := range groups {
		g := nodes.KernelGroup{Kernel: all.Kernel}
		var loadPin, autoMode, fargate, notLinux []string // selected nodes that get no loader
		// g.Nodes are the group's nodes that get a loader: all of them, most often, for every
		// module. Until one is left out they are all.Nodes[:kept], shared, not copied.
		kept, copied := 0, false
		for i := range all.Nodes {
			n := &all.Nodes[i]
			skip := !matches(m.Selector, m.Tolerations, *n)
			if !skip {
				switch {
				case nodes.NotLinux(*n) != "":
					notLinux = append(notLinux, n.Name+" ("+nodes.NotLinux(*n)+")")
					skip = true
				case !nodes.RunsDaemonSets(*n):
					fargate = append(fargate, n.Name)
					skip = true
				case nodes.Autopilot(*n):
					autopilot = append(autopilot, *n)
					skip = true
				case helm && !m.AllowCOS && nodes.LoadPinRefuses(*n):
					loadPin = append(loadPin, n.Name)
					skip = true
				case helm && !m.AllowEKSAutoMode && nodes.EKSComputeType(*n) == nodes.EKSAutoMode:
					autoMode = append(autoMode, n.Name)
					skip = true
				}
			}
			if skip {
				if !copied {
					g.Nodes = append(make([]nodes.Node, 0, len(all.Nodes)), all.Nodes[:kept]...)
					copied = true
				}
				continue
			}
			if copied {
				g.Nodes = append(g.Nodes, *n)
			} else {
				kept++
				g.Nodes = all.Nodes[:kept:kept] // full slice expression: an append copies
			}
			if _, ok := n.Labels[kernelLabel]; ok && helm {
				labelled = append(labelled, n)
			}
		}
		if len(notLinux) > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("module %s: kernel %s: node(s) %s do not run Linux: they get no loader, build or device plugin. "+
				"Add kubernetes.io/os: linux to the module's selector to leave them out without this warning",
				m.ID(), all.Kernel, strings.Join(notLinux, ", ")))
		}
		if len(fargate) > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("module %s: kernel %s: node(s) %s are EKS Fargate nodes, where no DaemonSet runs and no module can be loaded: they get no loader. "+
				"Run the workloads that need the module on a managed node group",
				m.ID(), all.Kernel, strings.Join(fargate, ", ")))
		}
		if len(loadPin) > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("module %s: kernel %s: node(s) %s run Container-Optimized OS CPU or TPU images, whose LoadPin refuses out-of-tree modules: they get no loader. "+
				"Move the module to an Ubuntu node pool (--image-type=UBUNTU_CONTAINERD) or a GPU pool, or set allowCOS: true on the module if LoadPin is off on these nodes",
				m.ID(), all.Kernel, strings.Join(loadPin, ", ")))
		}
		if len(autoMode) > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("module %s: kernel %s: node(s) %s are EKS Auto Mode nodes, whose AWS-managed Bottlerocket image and kernel change on AWS's schedule: they get no loader. "+
				"Run the module on a managed node group (or Karpenter with an AMI you choose), or set allowEKSAutoMode: true on the module and build for their Bottlerocket kernels (build.osDefaults.bottlerocket)",
				m.ID(), all.Kernel, strings.Join(autoMode, ", ")))
		}
		if len(g.Nodes) == 0 {
			continue
		}
		names := nodeNames(g.Nodes)
		if g.Kernel == "" {
			p.Warnings = append(p.Warnings, fmt.Sprintf("module %s: node(s) %s report no kernel (status.nodeInfo.kernelVersion); they get no loader", m.ID(), strings.Join(names, ", ")))
			continue
		}
		idx := m.Mappings.Match(g.Kernel)
		if idx < 0 {
			p.Unmatched = append(p.Unmatched, Unmatched{Kernel: g.Kernel, Nodes: names})
			continue
		}
		img, err := m.ImageFor(idx, g.Kernel)
		if err != nil {
			return nil, err
		}
		if m.Operator() && !badImage[img] {
			if err := module.CheckImageReference(img); err != nil {
				badImage[img] = true
				p.Warnings = append(p.Warnings, fmt.Sprintf("module %s: kernel %s: %v: the KMM controller accepts the Module, but its worker pods cannot pull the image (a placeholder left in?)", m.ID(), g.Kernel, err))
			}
		}
		if kernelLabel == "" {
			p.Targets = append(p.Targets, Target{Kernel: g.Kernel, Mapping: idx, Image: img, Nodes: names})
			continue
		}
		value, warnings := labelValueFor(g, kernelLabel)
		for _, w := range warnings {
			p.Warnings = append(p.Warnings, fmt.Sprintf("module %s: %s", m.ID(), w))
		}
		if value == "" {
			continue
		}
		if other, ok := byLabel[value]; ok {
			return nil, fmt.Errorf("module %s: kernels %q and %q both carry %s=%s; a nodeSelector cannot tell their nodes apart (relabel the nodes of one of them)", m.ID(), other, g.Kernel, kernelLabel, value)
		}
		byLabel[value] = g.Kernel
		tg := Target{Kernel: g.Kernel, LabelValue: value, Mapping: idx, Image: img, Nodes: names,
			Platform: nodes.Platforms(g.Nodes),
			OS:       nodes.OSFamilies(g.Nodes),
			Arch:     nodes.Archs(g.Nodes)}
		tg.OSRelease, tg.OSVariant = osRelease(g.Nodes)
		if len(loadPin) > 0 {
			// The kernel's COS CPU nodes carry the same kernel label: keep its loader on the
			// accelerator nodes.
			tg.Require = []corev1.NodeSelectorRequirement{{Key: nodes.LabelGKEAccelerator, Operator: corev1.NodeSelectorOpExists}}
		}
		p.Targets = append(p.Targets, tg)
	}
	if len(autopilot) > 0 {
		return nil, autopilotError(m, autopilot)
	}
	// A node whose label names a target's value but that runs another kernel (a stale or
	// hand-set label, or a kernel that folds to the same value) would get a module built for
	// the wrong kernel.
	for _, n := range labelled {
		if k, ok := byLabel[n.Labels[kernelLabel]]; ok && k != n.Kernel {
			return nil, fmt.Errorf("module %s: node %s runs kernel %q but carries %s=%s, the label of kernel %q; its loader would load a module built for another kernel (fix the node's label)",
				m.ID(), n.Name, n.Kernel, kernelLabel, n.Labels[kernelLabel], k)
		}
	}
	return p, nil
}

// labelValueFor picks the kernel label value that selects a kernel group's nodes: the value the
// nodes carry (the most common one, should they disagree), else the NFD value. It returns ""
// when no value can select them.
func labelValueFor(g nodes.KernelGroup, key string) (string, []string) {
	counts := map[string]int{}
	var missing []string
	for _, n := range g.Nodes {
		if v, ok := n.Labels[key]; ok {
			counts[v]++
		} else {
			missing = append(missing, n.Name)
		}
	}
	var warnings []string
	computed, computedOK := KernelLabelValue(g.Kernel)
	value := ""
	if len(counts) > 0 {
		values := make([]string, 0, len(counts))
		for v := range counts {
			values = append(values, v)
		}
		sort.Slice(values, func(i, j int) bool {
			if counts[values[i]] != counts[values[j]] {
				return counts[values[i]] > counts[values[j]]
			}
			return values[i] < values[j]
		})
		value = values[0]
		if len(values) > 1 {
			var odd []string
			for _, n := range g.Nodes {
				if v, ok := n.Labels[key]; ok && v != value {
					odd = append(odd, fmt.Sprintf("%s (%s=%s)", n.Name, key, v))
				}
			}
			warnings = append(warnings, fmt.Sprintf("kernel %s: nodes disagree on %s; using %q, so these get no loader: %s", g.Kernel, key, value, strings.Join(odd, ", ")))
		}
	} else if computedOK {
		value = computed
	}
	if len(missing) > 0 {
		if value == "" {
			warnings = append(warnings, fmt.Sprintf("kernel %s: no valid value of label %s can express it; node(s) %s get no loader", g.Kernel, key, strings.Join(missing, ", ")))
		} else {
			warnings = append(warnings, fmt.Sprintf("kernel %s: node(s) %s lack label %s; they get no loader until labelled %s=%s. Install Node Feature Discovery, or run: kubectl label node %s %s=%s",
				g.Kernel, strings.Join(missing, ", "), key, key, value, strings.Join(missing, " "), key, value))
		}
	}
	return value, warnings
}

func nodeNames(ns []nodes.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

// osRelease is the nodes' common OS release and variant, or empty ones when they differ.
func osRelease(ns []nodes.Node) (release, variant string) {
	for i, n := range ns {
		r, v := nodes.OSRelease(n)
		if i == 0 {
			release, variant = r, v
		} else if r != release || v != variant {
			return "", ""
		}
	}
	return release, variant
}

// autopilotError refuses a module that selects GKE Autopilot nodes, naming their pools.
func autopilotError(m *Module, ns []nodes.Node) error {
	pools := map[string][]string{}
	var order []string
	for _, n := range ns {
		pool := nodes.NodePool(n)
		if pool == "" {
			pool = "no node pool"
		}
		if _, ok := pools[pool]; !ok {
			order = append(order, pool)
		}
		pools[pool] = append(pools[pool], n.Name)
	}
	sort.Strings(order)
	var parts []string
	for _, pool := range order {
		names := pools[pool]
		sort.Strings(names)
		parts = append(parts, fmt.Sprintf("%s (%s)", pool, strings.Join(names, ", ")))
	}
	return fmt.Errorf("module %s: its selector picks GKE Autopilot nodes: %s. Autopilot refuses privileged pods and the SYS_MODULE capability, so a loader there would never start. "+
		"Narrow the module's selector to GKE Standard node pools (e.g. %s: <pool>), keep Autopilot ComputeClasses off those nodes, or run the module on a GKE Standard cluster",
		m.ID(), strings.Join(parts, "; "), nodes.LabelGKENodepool)
}
