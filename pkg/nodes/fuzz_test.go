package nodes

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// FuzzLoadNodes feeds the node snapshot reader (behind LoadFile and --nodes) arbitrary bytes.
// Whatever the input, it never panics, and it returns either an error and no node, or at least
// one node, sorted by name, each with a distinct valid name and a kernel that CheckKernel
// accepts: what planning takes for granted. Seeds: the examples' snapshots and this package's
// fixtures; inputs that once failed are kept in testdata/fuzz/FuzzLoadNodes.
func FuzzLoadNodes(f *testing.F) {
	for _, s := range []string{
		listYAML, nodeListYAML, kubectlJSON, multiDocYAML,
		"", "null", "[]", "{}", "---\n---\n", "kind: Node\n", "kind: List\nitems: {}\n",
		"kind: Node\nmetadata: {name: a}\nstatus: {nodeInfo: {kernelVersion: \"5.10.1\\nx\"}}\n",
		"kind: Node\nmetadata: {name: a, labels: {k: \"v v\"}}\nstatus: {nodeInfo: {kernelVersion: \"5.10.1\"}}\n",
		`{"kind":"List","items":[{"kind":"Node","metadata":{"name":"a"},"status":{"nodeInfo":{"kernelVersion":"1"}}},{"kind":"Pod"}]}`,
	} {
		f.Add([]byte(s))
	}
	for _, e := range []string{"eks", "gke", "ubuntu"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", e, "nodes.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ns, err := Parse(data)
		if err != nil {
			if ns != nil {
				t.Fatalf("error %q came with %d nodes", err, len(ns))
			}
			return
		}
		if len(ns) == 0 {
			t.Fatal("no error and no node")
		}
		if !sort.SliceIsSorted(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name }) {
			t.Fatal("nodes not sorted by name")
		}
		for i, n := range ns {
			if n.Name == "" {
				t.Fatalf("node %d has no name", i)
			}
			if i > 0 && ns[i-1].Name == n.Name {
				t.Fatalf("node %q is returned twice", n.Name)
			}
			if n.Kernel == "" {
				t.Fatalf("node %q has no kernel", n.Name)
			}
			if err := n.Check(); err != nil {
				t.Fatalf("a returned node fails Check: %v", err)
			}
		}
		objs, err := ParseObjects(data)
		if err != nil || len(objs) != len(ns) {
			t.Fatalf("ParseObjects disagrees with Parse: %d objects, error %v", len(objs), err)
		}
		again, err := Parse(data)
		if err != nil || len(again) != len(ns) {
			t.Fatalf("a second parse differs: error %v", err)
		}
		for i := range ns {
			if again[i].Name != ns[i].Name || again[i].Kernel != ns[i].Kernel {
				t.Fatalf("a second parse differs at %d", i)
			}
		}
	})
}
