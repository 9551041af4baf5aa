// Package report prints what kmm-render sees of a cluster: its kernels, their nodes and
// platforms, and which kernel mapping of which module each kernel hits.
package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/render"
)

// KernelTable writes one row per kernel, or, given modules, one row per kernel and module that
// selects nodes running it ("-" in MODULE for kernels no module selects).
func KernelTable(w io.Writer, all []nodes.Node, modules []render.ValuesModule, kernelLabel string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := []string{"KERNEL", "NODES", "PLATFORM", "OS", "LABEL VALUE"}
	if len(modules) > 0 {
		header = append(header, "MODULE", "SELECTED", "MAPPING", "IMAGE")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, g := range nodes.ByKernel(all) {
		row := []string{g.Kernel, strconv.Itoa(len(g.Nodes)), nodes.Platforms(g.Nodes), nodes.OSFamilies(g.Nodes), labelValue(g, kernelLabel)}
		if len(modules) == 0 {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
			continue
		}
		hits := 0
		for _, m := range modules {
			selected := 0
			for _, n := range g.Nodes {
				if render.Selects(m.Spec.Selector, m.Tolerations, n) {
					selected++
				}
			}
			if selected == 0 {
				continue
			}
			hits++
			mapping, image := "none (no loader)", "-"
			if i := m.Spec.KernelMappings.Match(g.Kernel); i >= 0 {
				mapping = fmt.Sprintf("#%d %s", i, m.Spec.KernelMappings[i].Describe())
				img, err := m.Spec.ImageFor(i, g.Kernel)
				if err != nil {
					return err
				}
				image = img
			}
			fmt.Fprintln(tw, strings.Join(append(append([]string{}, row...), m.Spec.ID(), strconv.Itoa(selected), mapping, image), "\t"))
		}
		if hits == 0 {
			fmt.Fprintln(tw, strings.Join(append(row, "-", "0", "-", "-"), "\t"))
		}
	}
	return tw.Flush()
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
