package postrender

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"kmm.dev/kmm/pkg/nodes"
)

// benchInput is a release of one module list, `modules` loader templates and as many
// pass-through objects, and a cluster of `nodeCount` nodes spread over `kernels` kernels.
func benchInput(modules, nodeCount, kernels int) ([]byte, []nodes.Node) {
	var b strings.Builder
	list := make([]map[string]any, modules)
	for i := range list {
		list[i] = loaderModule(fmt.Sprintf(`{"name":"mod%d","namespace":"kmm","selector":{"kubernetes.io/os":"linux"},"containerImage":"reg.example/mod:${KERNEL_FULL_VERSION}","kernelMappings":[{"regexp":"^5\\."}]}`, i))
	}
	b.WriteString(moduleList(false, list...))
	for i := 0; i < modules; i++ {
		b.WriteString(configMap[:strings.Index(configMap, "name: keep-me")] + fmt.Sprintf("name: cm-%d\n  namespace: kmm\n", i))
		b.WriteString(loaderTemplate(fmt.Sprintf("mod%d", i), "kmm", false, ""))
	}
	ns := make([]nodes.Node, nodeCount)
	for i := range ns {
		ns[i] = node(fmt.Sprintf("node-%05d", i), fmt.Sprintf("5.15.0-%d-generic", i%kernels), nil)
	}
	return []byte(b.String()), ns
}

// Cost grows linearly with input plus generated objects: compare ns/op across sizes.
func BenchmarkRun(b *testing.B) {
	for _, size := range []struct{ modules, nodes, kernels int }{
		{1, 10, 2}, {10, 1000, 10}, {50, 5000, 20}, {100, 5000, 20},
	} {
		in, ns := benchInput(size.modules, size.nodes, size.kernels)
		b.Run(fmt.Sprintf("modules=%d/nodes=%d/kernels=%d", size.modules, size.nodes, size.kernels), func(b *testing.B) {
			r := New(Options{Nodes: StaticNodes(ns)})
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Run(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
