package drift

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/postrender"
	"kmm.dev/kmm/pkg/render"
)

const (
	zoneA = "gke-prod-ubuntu-pool-3f9a1c7e-2mzp" // kmm-ci-a-ubuntu, kmm-kmod
	zoneB = "gke-prod-ubuntu-pool-8e2b5d40-k5vd" // kmm-ci-a-ubuntu
	zoneC = "gke-prod-ubuntu-pool-c71f0a93-w4rn" // kmm-ci-a-ubuntu, kmm-kmod-node
	k1034 = "5.15.0-1034-gke"
	k1049 = "5.15.0-1049-gke"
)

// release renders examples/gke through kmm-render against its snapshot, as `helm install` with
// the post-renderer would store it.
func release(t *testing.T) (string, []nodes.Node) {
	t.Helper()
	ns, err := nodes.LoadFile("../../examples/gke/nodes.yaml")
	require.NoError(t, err)
	r, err := chartrender.Render(context.Background(), chartrender.Options{
		ChartDir: "../../charts/kmm", Namespace: "kmm-system", ValueFiles: []string{"../../examples/gke/values.yaml"},
		PostRenderer: postrender.HelmV3(context.Background(), postrender.New(postrender.Options{Nodes: postrender.StaticNodes(ns)})),
	})
	require.NoError(t, err)
	return r.Manifests, ns
}

// moved returns the nodes with the named ones on another kernel (and its label), and without the
// removed ones.
func moved(ns []nodes.Node, kernel string, names []string, removed ...string) []nodes.Node {
	var out []nodes.Node
	for _, n := range ns {
		switch {
		case contains(removed, n.Name):
			continue
		case contains(names, n.Name):
			labels := map[string]string{}
			for k, v := range n.Labels {
				labels[k] = v
			}
			labels[render.DefaultKernelLabel] = kernel
			n.Kernel, n.Labels = kernel, labels
		}
		out = append(out, n)
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestCheck(t *testing.T) {
	manifest, snapshot := release(t)
	tests := []struct {
		name        string
		live        []nodes.Node
		wantMissing []Pair
		wantStale   []Pair
	}{
		{name: "the nodes the release was rendered for: in sync", live: snapshot},
		{
			name:        "one node moved to a mapped kernel: its module has no loader for it",
			live:        moved(snapshot, k1049, []string{zoneB}),
			wantMissing: []Pair{{Module: "kmm-demo/kmm-ci-a-ubuntu", Kernel: k1049, Nodes: []string{zoneB}}},
		},
		{
			name: "every Ubuntu node moved: three pairs missing, three loaders stale",
			live: moved(snapshot, k1049, []string{zoneA, zoneB, zoneC}),
			wantMissing: []Pair{
				{Module: "kmm-demo/kmm-ci-a-ubuntu", Kernel: k1049, Nodes: []string{zoneA, zoneB, zoneC}},
				{Module: "kmm-demo/kmm-kmod", Kernel: k1049, Nodes: []string{zoneA}},
				{Module: "kmm-demo/kmm-kmod-node", Kernel: k1049, Nodes: []string{zoneC}},
			},
			wantStale: []Pair{
				{Module: "kmm-demo/kmm-ci-a-ubuntu", Kernel: k1034, DaemonSet: "kmm-demo/kmm-ci-a-ubuntu-loader-5-15-0-1034-gke"},
				{Module: "kmm-demo/kmm-kmod", Kernel: k1034, DaemonSet: "kmm-demo/kmm-kmod-loader-5-15-0-1034-gke"},
				{Module: "kmm-demo/kmm-kmod-node", Kernel: k1034, DaemonSet: "kmm-demo/kmm-kmod-node-loader-5-15-0-1034-gke"},
			},
		},
		{
			name:      "the zone c node left: its module's loader is stale, nothing missing",
			live:      moved(snapshot, "", nil, zoneC),
			wantStale: []Pair{{Module: "kmm-demo/kmm-kmod-node", Kernel: k1034, DaemonSet: "kmm-demo/kmm-kmod-node-loader-5-15-0-1034-gke"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Check(manifest, tt.live, render.DefaultKernelLabel)
			require.NoError(t, err)
			want := tt.wantMissing
			if want == nil {
				want = []Pair{}
			}
			assert.Equal(t, want, r.Missing)
			stale := tt.wantStale
			if stale == nil {
				stale = []Pair{}
			}
			assert.Equal(t, stale, r.Stale)
			assert.Equal(t, len(tt.wantMissing) == 0, r.InSync())
		})
	}
}

func TestCheckErrors(t *testing.T) {
	manifest, snapshot := release(t)
	_, err := Check("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n", snapshot, render.DefaultKernelLabel)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no module list")

	_, err = Check(manifest+"---\n"+strings.SplitN(manifest[strings.Index(manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kmm-modules"):], "\n---", 2)[0], snapshot, render.DefaultKernelLabel)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "two module lists")
}

func TestReportOutput(t *testing.T) {
	r := &Report{Release: "kmm", Revision: 3,
		Missing: []Pair{{Module: "kmm-demo/a", Kernel: "6.1.0-2", Nodes: []string{"n1", "n2"}}},
		Stale:   []Pair{{Module: "kmm-demo/a", Kernel: "6.1.0-1", DaemonSet: "kmm-demo/a-loader-6-1-0-1"}}}
	assert.Equal(t, "release kmm (revision 3) has drifted: 1 module and kernel pair(s) that nodes need have no loader; run helm upgrade\n"+
		"missing  kmm-demo/a  kernel 6.1.0-2  on n1, n2\n"+
		"stale    kmm-demo/a  kernel 6.1.0-1  (DaemonSet kmm-demo/a-loader-6-1-0-1: no node runs it)\n", r.Text())
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{"release":"kmm","revision":3,"missing":[{"module":"kmm-demo/a","kernel":"6.1.0-2","nodes":["n1","n2"]}],
		"stale":[{"module":"kmm-demo/a","kernel":"6.1.0-1","daemonSet":"kmm-demo/a-loader-6-1-0-1"}]}`, string(b))
	r.Missing = nil
	assert.True(t, r.InSync())
	assert.Equal(t, "release kmm (revision 3) is in sync with the nodes (1 stale loader(s), removed by the next upgrade)\n"+
		"stale    kmm-demo/a  kernel 6.1.0-1  (DaemonSet kmm-demo/a-loader-6-1-0-1: no node runs it)\n", r.Text())
}

// TestCheckWindowsNode: a Windows node that a module's selector picks joins the cluster. Drift
// counts no pair missing for it (it gets no loader) and says why, naming it.
func TestCheckWindowsNode(t *testing.T) {
	manifest, snapshot := release(t)
	var win nodes.Node
	for _, n := range snapshot {
		if n.Name == zoneA {
			win = n
		}
	}
	require.Equal(t, zoneA, win.Name)
	labels := map[string]string{}
	for k, v := range win.Labels {
		labels[k] = v
	}
	labels["kubernetes.io/os"] = "windows"
	labels[render.DefaultKernelLabel] = "10.0.20348.2582"
	win.Name, win.Kernel, win.Labels, win.OperatingSystem = "gke-prod-win-pool-1", "10.0.20348.2582", labels, "windows"

	r, err := Check(manifest, append(snapshot, win), render.DefaultKernelLabel)
	require.NoError(t, err)
	assert.Empty(t, r.Missing)
	assert.True(t, r.InSync())
	var found bool
	for _, w := range r.Warnings {
		if strings.Contains(w, "node(s) gke-prod-win-pool-1 (windows) do not run Linux: they get no loader, build or device plugin") {
			found = true
		}
	}
	assert.True(t, found, "a warning names the Windows node: %q", r.Warnings)
}
