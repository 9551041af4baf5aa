package demo

import "kmm.dev/kmm/pkg/render"

// namespaces are the modules' namespaces, each once, in order.
func namespaces(modules []*render.Module) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range modules {
		if !seen[m.Namespace] {
			seen[m.Namespace] = true
			out = append(out, m.Namespace)
		}
	}
	return out
}
