package postrender

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// generatedObject is an object a template expanded into, already written out as YAML: Run
// writes each template's objects as soon as it has expanded them, so that it never holds more
// than one template's objects as YAML trees, which take several times the memory of their text
// (a cluster of 50 kernels and 20 modules makes 1,000 loader DaemonSets).
type generatedObject struct {
	id   string        // identity(node)
	desc func() string // describeID(node), for a message; called on error only
	text string        // "---\n" and the YAML
}

// writeObjects writes out the objects template document d expanded into, on every CPU: writing
// YAML (yaml.v3's encoder) is the largest part of kmm-render's own work, and each object is
// written on its own. The result is in the objects' order, whatever order they were written in.
func writeObjects(d *document, objs []*yaml.RNode) ([]generatedObject, error) {
	out := make([]generatedObject, len(objs))
	errs := make([]error, len(objs))
	write := func(i int) {
		n := objs[i]
		s, err := n.String()
		if err != nil {
			errs[i] = fmt.Errorf("%s: writing %s: %w", d.name(), n.GetName(), err)
			return
		}
		desc := describeID(n)
		out[i] = generatedObject{id: identity(n), desc: func() string { return desc }, text: "---\n" + s}
	}
	workers := min(runtime.GOMAXPROCS(0), len(objs))
	if workers <= 1 {
		for i := range objs {
			write(i)
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < len(objs); i = int(next.Add(1) - 1) {
					write(i)
				}
			})
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return nil, err // the first object's, as when written one after the other
		}
	}
	return out, nil
}

// outputSize is the size of Run's output: the documents that pass through and the generated
// objects, so that the output is allocated once rather than grown and copied page by page.
func outputSize(docs []*document, generated map[*document][]generatedObject) int {
	n := 0
	for _, d := range docs {
		n += len(d.sep) + len(d.body)
		for _, g := range generated[d] {
			n += len(g.text)
		}
	}
	return n
}
