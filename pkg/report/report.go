// Package report prints what kmm-render sees of a cluster: its kernels, their nodes and
// platforms, and which kernel mapping of which module each kernel hits.
package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"kmm.dev/kmm/pkg/module"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/render"
)

// KernelTable writes one row per kernel, or, given plans, one row per kernel and module that
// selects nodes running it ("-" in MODULE for kernels no module selects). The plans are the
// post-renderer's own (postrender.Renderer.Plan), so the table says what the DaemonSets do.
func KernelTable(w io.Writer, groups []nodes.KernelGroup, plans []*render.Plan, kernelLabel string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := []string{"KERNEL", "NODES", "PLATFORM", "OS", "LABEL VALUE", "UNLABELLED"}
	if len(plans) > 0 {
		header = append(header, "MODULE", "SELECTED", "MAPPING", "IMAGE")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	rows := make([]kernelRow, 0, len(groups))
	for _, g := range groups {
		rows = append(rows, kernelRow{kernel: g.Kernel, cells: []string{g.Kernel, strconv.Itoa(len(g.Nodes)), nodes.Platforms(g.Nodes), nodes.OSFamilies(g.Nodes),
			labelValue(g, kernelLabel), unlabelled(g, kernelLabel)}})
	}
	rows = append(rows, extraRows(groups, plans)...)
	for _, row := range rows {
		if len(plans) == 0 {
			fmt.Fprintln(tw, strings.Join(row.cells, "\t"))
			continue
		}
		hits := 0
		for _, p := range plans {
			selected, value, mapping, image, ok := planRow(p, row.kernel)
			if !ok {
				continue
			}
			hits++
			r := append([]string{}, row.cells...)
			if value != "" {
				r[4] = value // the value the module's loader selects by
			}
			fmt.Fprintln(tw, strings.Join(append(r, p.Module.ID(), strconv.Itoa(selected), mapping, image), "\t"))
		}
		if hits == 0 {
			fmt.Fprintln(tw, strings.Join(append(row.cells, "-", "0", "-", "-"), "\t"))
		}
	}
	return tw.Flush()
}

type kernelRow struct {
	kernel string
	cells  []string
}

// extraRows are the rows of the extra kernels (extraKernels) that a plan builds for and no
// node runs, sorted.
func extraRows(groups []nodes.KernelGroup, plans []*render.Plan) []kernelRow {
	run := map[string]bool{}
	for _, g := range groups {
		run[g.Kernel] = true
	}
	seen := map[string]bool{}
	var out []kernelRow
	for _, p := range plans {
		for _, tg := range p.Targets {
			if !tg.Extra || run[tg.Kernel] || seen[tg.Kernel] {
				continue
			}
			seen[tg.Kernel] = true
			out = append(out, kernelRow{kernel: tg.Kernel, cells: []string{tg.Kernel, "0 (extra)", tg.Platform, tg.OS, tg.LabelValue, "-"}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].kernel < out[j].kernel })
	return out
}

// unlabelled says which of the kernel's nodes lack the kernel label: "-", or their count and
// up to three names.
func unlabelled(g nodes.KernelGroup, key string) string {
	var missing []string
	for _, n := range g.Nodes {
		if _, ok := n.Labels[key]; !ok {
			missing = append(missing, n.Name)
		}
	}
	switch {
	case len(missing) == 0:
		return "-"
	case len(missing) > 3:
		return fmt.Sprintf("%d: %s, ... (+%d)", len(missing), strings.Join(missing[:3], ", "), len(missing)-3)
	}
	return fmt.Sprintf("%d: %s", len(missing), strings.Join(missing, ", "))
}

// FixLabels writes, when nodes lack the kernel label, the commands that label them: Node Feature
// Discovery, or kubectl by hand. It writes nothing when every node carries it.
func FixLabels(w io.Writer, groups []nodes.KernelGroup, key string) {
	var cmds []string
	n := 0
	for _, g := range groups {
		value, ok := render.KernelLabelValue(g.Kernel)
		for _, node := range g.Nodes {
			if _, has := node.Labels[key]; has {
				continue
			}
			n++
			if ok {
				cmds = append(cmds, fmt.Sprintf("  kubectl label node %s %s=%s", node.Name, key, value))
			} else {
				cmds = append(cmds, fmt.Sprintf("  # %s: kernel %q has no valid label value; relabel by hand with the value its module's loader selects", node.Name, g.Kernel))
			}
		}
	}
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "%d node(s) lack the kernel label %s, so no loader selects them. Install Node Feature Discovery, which labels every node:\n", n, key)
	fmt.Fprintln(w, "  helm repo add nfd https://kubernetes-sigs.github.io/node-feature-discovery/charts")
	fmt.Fprintln(w, "  helm install nfd nfd/node-feature-discovery --namespace node-feature-discovery --create-namespace")
	fmt.Fprintln(w, "or label them by hand (a new kernel needs a new label):")
	const max = 20
	if len(cmds) > max {
		cmds = append(cmds[:max], fmt.Sprintf("  # ... and %d more", len(cmds)-max))
	}
	for _, c := range cmds {
		fmt.Fprintln(w, c)
	}
}

// planRow is what plan p says of kernel: how many of its nodes the module selects, the kernel
// label value its loader selects them by (helm-managed modules), the mapping and the image; ok is
// false when the module selects none of them.
func planRow(p *render.Plan, kernel string) (selected int, value, mapping, image string, ok bool) {
	for _, tg := range p.Targets {
		if tg.Kernel == kernel {
			return len(tg.Nodes), tg.LabelValue, fmt.Sprintf("#%d %s", tg.Mapping, p.Module.Mappings[tg.Mapping].Describe()), ImageOf(p.Module, tg), true
		}
	}
	for _, u := range p.Unmatched {
		if u.Kernel == kernel {
			return len(u.Nodes), "", "none (no loader)", "-", true
		}
	}
	return 0, "", "", "", false
}

// NodeBuilt is what the IMAGE column says of a kernel whose module is built on each node (the
// node strategy): no image holds it.
const NodeBuilt = "(built on each node)"

// ImageOf is the module image a target's loader loads from: the resolved image, or NodeBuilt.
func ImageOf(m *render.Module, tg render.Target) string {
	if m.Operator() {
		return tg.Image
	}
	if bp, err := m.BuildPlanFor(tg.Mapping, tg.Kernel, tg.Image); err == nil && bp != nil && bp.Strategy == module.StrategyNode {
		return NodeBuilt
	}
	return tg.Image
}

func labelValue(g nodes.KernelGroup, key string) string {
	for _, n := range g.Nodes {
		if v, ok := n.Labels[key]; ok {
			return v
		}
	}
	if v, ok := render.KernelLabelValue(g.Kernel); ok {
		return v + " (unlabelled)"
	}
	return "(none possible)"
}
