// Package render holds the rules that turn one module and one node kernel into a loader:
// KMM's kernel mappings and image substitution, the node kernel label value (as Node Feature
// Discovery computes it), the names of generated objects, and the per-kernel expansion of a
// loader DaemonSet template.
package render
