// Package report prints what kmm-render sees of a cluster: its kernels, their nodes and
// platforms, and which kernel mapping of which module each kernel hits.
package report

import (
	"fmt"
	"io"
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
	header := []string{"KERNEL", "NODES", "PLATFORM", "OS", "LABEL VALUE"}
	if len(plans) > 0 {
		header = append(header, "MODULE", "SELECTED", "MAPPING", "IMAGE")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, g := range groups {
		row := []string{g.Kernel, strconv.Itoa(len(g.Nodes)), nodes.Platforms(g.Nodes), nodes.OSFamilies(g.Nodes), labelValue(g, kernelLabel)}
		if len(plans) == 0 {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
			continue
		}
		hits := 0
		for _, p := range plans {
			selected, value, mapping, image, ok := planRow(p, g.Kernel)
			if !ok {
				continue
			}
			hits++
			r := append([]string{}, row...)
			if value != "" {
				r[4] = value // the value the module's loader selects by
			}
			fmt.Fprintln(tw, strings.Join(append(r, p.Module.ID(), strconv.Itoa(selected), mapping, image), "\t"))
		}
		if hits == 0 {
			fmt.Fprintln(tw, strings.Join(append(row, "-", "0", "-", "-"), "\t"))
		}
	}
	return tw.Flush()
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
