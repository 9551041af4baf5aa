package render

import (
	"fmt"
	"testing"
)

// The sizes of the cluster benchmark (test/bench/cluster): 20 modules with a catch-all kernel
// mapping, 50 kernels, 1,000 to 15,000 nodes. Cost grows linearly with modules x nodes
// (planning) and with generated objects (expanding): compare ns/op across sizes.
var benchScales = []scale{
	{modules: 20, kernels: 50, nodes: 1000},
	{modules: 20, kernels: 50, nodes: 5000},
	{modules: 20, kernels: 50, nodes: 15000},
	{modules: 80, kernels: 50, nodes: 5000},
}

// BenchmarkPlan plans every module against the nodes, as one kmm-render run does.
func BenchmarkPlan(b *testing.B) {
	for _, s := range benchScales {
		tpls, groups := scaleInput(b, s)
		b.Run(fmt.Sprintf("modules=%d/kernels=%d/nodes=%d", s.modules, s.kernels, s.nodes), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := planAll(tpls, groups); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExpand expands every module's loader template for its plan and writes the objects
// as YAML, as one kmm-render run does: modules x kernels DaemonSets.
func BenchmarkExpand(b *testing.B) {
	for _, s := range benchScales {
		if s.nodes != 5000 {
			continue // nodes do not change what is expanded
		}
		tpls, groups := scaleInput(b, s)
		plans, err := planAll(tpls, groups)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("modules=%d/kernels=%d/objects=%d", s.modules, s.kernels, s.modules*s.kernels), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := expandAll(tpls, plans); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
