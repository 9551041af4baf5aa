package postrender

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/nodes"
)

// fuzzNodes are the node snapshots of every example, read once: a realistic cluster of EKS,
// GKE and Ubuntu nodes, kernels and taints.
var fuzzNodes = sync.OnceValues(func() ([]nodes.Node, error) {
	var all []nodes.Node
	for _, e := range []string{"eks", "gke", "ubuntu"} {
		ns, err := nodes.LoadFile(filepath.Join("..", "..", "examples", e, "nodes.yaml"))
		if err != nil {
			return nil, err
		}
		all = append(all, ns...)
	}
	return all, nil
})

// fuzzSeeds are handcrafted inputs next to the real Helm 3 and Helm 4 outputs of every
// example, which are checked in as corpus files (testdata/fuzz/FuzzPostRender/helm{3,4}-{eks,
// gke,ubuntu}; the EKS ones are testdata/helm{3,4}-eks.input.yaml). Inputs that once failed are
// kept there too, as regression-*.
func fuzzSeeds() []string {
	module := "---\napiVersion: kmm.sigs.x-k8s.io/v1beta1\nkind: Module\nmetadata:\n  name: m\n  namespace: kmm\nspec:\n  selector: {kubernetes.io/os: linux}\n  moduleLoader:\n    container:\n      modprobe: {moduleName: m}\n      kernelMappings: [{regexp: '^5\\.', containerImage: 'r/m:${KERNEL_FULL_VERSION}'}]\n"
	return []string{
		configMap,
		template("mod", "kmm", anyKernelSpec, false, ""),
		template("mod", "kmm", anyKernelSpec, true, ""),
		configMap + template("mod", "kmm", anyKernelSpec, false, "") + module,
		module,
		"---\n",
		"# only a comment\n",
		"\ufeff---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n",
		"--- \r\napiVersion: v1\r\nkind: ServiceAccount\r\nmetadata:\r\n  name: sa\r\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: &m\n  name: a\n  labels: *m\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n...\nb: 2\n",
	}
}

// FuzzPostRender feeds kmm-render arbitrary streams. Whatever the input:
//   - it never panics;
//   - an error comes with no output at all (Helm must not apply half a release);
//   - output parses as the stream kmm-render itself reads, and a second run on the same input
//     gives the same bytes (helm upgrade without change changes nothing);
//   - output run again is unchanged (nothing left to expand, and pass-through is byte-exact);
//   - an input with nothing marked for expansion comes back byte for byte;
//   - the objects kmm-render generates carry valid names and label values.
func FuzzPostRender(f *testing.F) {
	cluster, err := fuzzNodes()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx := context.Background()
		out, err := New(Options{Nodes: StaticNodes(cluster)}).Run(ctx, in)
		if err != nil {
			if len(out) != 0 {
				t.Fatalf("error %q came with %d bytes of output", err, len(out))
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		docs, err := split(out)
		if err != nil {
			t.Fatalf("the output does not read back: %v", err)
		}
		again, err := New(Options{Nodes: StaticNodes(cluster)}).Run(ctx, in)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("a second run on the same input differs (error %v)", err)
		}
		rerun, err := New(Options{Nodes: StaticNodes(cluster)}).Run(ctx, out)
		if err != nil || !bytes.Equal(out, rerun) {
			t.Fatalf("the output, post-rendered again, changes (error %v)", err)
		}
		inDocs, err := split(in)
		if err != nil {
			t.Fatalf("Run accepted an input split refuses: %v", err)
		}
		marked := false
		for _, d := range inDocs {
			if d.node != nil && d.node.GetAnnotations()[contract.AnnotationExpand] != "" {
				marked = true
			}
		}
		if !marked && !bytes.Equal(in, out) {
			t.Fatalf("nothing to expand, yet the output differs from the input")
		}
		for _, d := range docs {
			if d.node == nil || bytes.Contains(in, []byte(d.body)) {
				continue // passed through: whatever the chart wrote
			}
			if msgs := validation.IsDNS1123Subdomain(d.node.GetName()); len(msgs) > 0 {
				t.Errorf("generated %s %q: %v", d.node.GetKind(), d.node.GetName(), msgs)
			}
			for k, v := range d.node.GetLabels() {
				if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
					t.Errorf("generated %s %s: label %s=%q: %v", d.node.GetKind(), d.node.GetName(), k, v, msgs)
				}
			}
		}
	})
}

// The real Helm outputs among FuzzPostRender's seeds must post-render: a seed that fails early
// would only ever fuzz the first checks. They are what helm 3.22 and helm 4.3 handed a
// post-renderer for `helm template kmm charts/kmm -n kmm-system -f examples/<example>/values.yaml
// --set controller.enabled=false,crds.enabled=false`.
func TestFuzzSeedsOfRealHelmOutputsRender(t *testing.T) {
	cluster, err := fuzzNodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"helm3-eks", "helm4-eks", "helm3-gke", "helm4-gke", "helm3-ubuntu", "helm4-ubuntu"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzPostRender", name))
			if err != nil {
				t.Fatal(err)
			}
			header, value, ok := strings.Cut(string(b), "\n")
			if !ok || header != "go test fuzz v1" || !strings.HasPrefix(value, "[]byte(") {
				t.Fatalf("not a corpus file of one []byte: %.40q", b)
			}
			in, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(value, "[]byte(")), ")"))
			if err != nil {
				t.Fatal(err)
			}
			out, err := New(Options{Nodes: StaticNodes(cluster)}).Run(context.Background(), []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "\n    "+contract.AnnotationKernel+": ") {
				t.Fatal("no loader expanded")
			}
			if strings.HasPrefix(name, "helm4") != strings.Contains(in, AnnotationHelm4Filename) {
				t.Fatal("a Helm 4 output carries Helm 4's filename annotation, and only a Helm 4 output")
			}
		})
	}
}
