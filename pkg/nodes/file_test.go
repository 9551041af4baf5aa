package nodes

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

const listYAML = `apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: worker-b
    labels:
      kubernetes.io/os: linux
  spec:
    providerID: aws:///us-west-2a/i-0b
    taints:
    - key: nvidia.com/gpu
      value: "true"
      effect: NoSchedule
  status:
    nodeInfo:
      kernelVersion: 5.4.196-108.356.amzn2.x86_64
      osImage: Amazon Linux 2
      architecture: amd64
- apiVersion: v1
  kind: Node
  metadata:
    name: worker-a
  status:
    nodeInfo:
      kernelVersion: 6.1.112-122.189.amzn2023.aarch64
      osImage: Amazon Linux 2023.6.20241010
      architecture: arm64
`

const nodeListYAML = `apiVersion: v1
kind: NodeList
items:
- metadata:
    name: n2
  status:
    nodeInfo:
      kernelVersion: 5.10.109+
- kind: Node
  metadata:
    name: n1
  status:
    nodeInfo:
      kernelVersion: 6.1.100+
`

// What `kubectl get nodes -o json` prints.
const kubectlJSON = `{
    "apiVersion": "v1",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "labels": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": "metal-worker-1"},
                "name": "metal-worker-1"
            },
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {
                "nodeInfo": {
                    "architecture": "amd64",
                    "kernelVersion": "5.15.0-105-generic",
                    "osImage": "Ubuntu 22.04.4 LTS",
                    "operatingSystem": "linux"
                }
            }
        },
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "metal-cp-1"},
            "spec": {"taints": [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]},
            "status": {"nodeInfo": {"kernelVersion": "5.15.0-105-generic", "osImage": "Ubuntu 22.04.4 LTS"}}
        }
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}`

const multiDocYAML = `# two nodes, one per document
---
apiVersion: v1
kind: Node
metadata:
  name: gke-b
  labels:
    cloud.google.com/gke-nodepool: cos-pool
spec:
  providerID: gce://p/us-central1-a/gke-b
status:
  nodeInfo:
    kernelVersion: 5.10.109+
    osImage: Container-Optimized OS from Google
---
---
apiVersion: v1
kind: Node
metadata:
  name: gke-a
status:
  nodeInfo:
    kernelVersion: 5.15.0-1034-gke
    osImage: Ubuntu 22.04.2 LTS
`

func TestParse(t *testing.T) {
	tests := []struct {
		name        string
		data        string
		wantNames   []string
		wantKernels []string
		check       func(t *testing.T, ns []Node)
	}{
		{
			name:        "List (kubectl get nodes -o yaml)",
			data:        listYAML,
			wantNames:   []string{"worker-a", "worker-b"},
			wantKernels: []string{"6.1.112-122.189.amzn2023.aarch64", "5.4.196-108.356.amzn2.x86_64"},
			check: func(t *testing.T, ns []Node) {
				b := ns[1]
				assert.Equal(t, "Amazon Linux 2", b.OSImage)
				assert.Equal(t, "amd64", b.Architecture)
				assert.Equal(t, "aws:///us-west-2a/i-0b", b.ProviderID)
				assert.Equal(t, map[string]string{"kubernetes.io/os": "linux"}, b.Labels)
				assert.Equal(t, []corev1.Taint{{Key: "nvidia.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}}, b.Taints)
				assert.Equal(t, "arm64", ns[0].Architecture)
				assert.Empty(t, ns[0].Labels)
				assert.Empty(t, ns[0].Taints)
			},
		},
		{
			name:        "NodeList, items with and without kind",
			data:        nodeListYAML,
			wantNames:   []string{"n1", "n2"},
			wantKernels: []string{"6.1.100+", "5.10.109+"},
		},
		{
			name:        "JSON (kubectl get nodes -o json)",
			data:        kubectlJSON,
			wantNames:   []string{"metal-cp-1", "metal-worker-1"},
			wantKernels: []string{"5.15.0-105-generic", "5.15.0-105-generic"},
			check: func(t *testing.T, ns []Node) {
				assert.Equal(t, "Ubuntu 22.04.4 LTS", ns[1].OSImage)
				assert.Equal(t, "metal-worker-1", ns[1].Labels["kubernetes.io/hostname"])
				require.Len(t, ns[0].Taints, 1)
				assert.Equal(t, "node-role.kubernetes.io/control-plane", ns[0].Taints[0].Key)
			},
		},
		{
			name:        "multi-document Node YAML with empty documents",
			data:        multiDocYAML,
			wantNames:   []string{"gke-a", "gke-b"},
			wantKernels: []string{"5.15.0-1034-gke", "5.10.109+"},
			check: func(t *testing.T, ns []Node) {
				assert.Equal(t, "gce://p/us-central1-a/gke-b", ns[1].ProviderID)
				assert.Equal(t, "cos-pool", ns[1].Labels["cloud.google.com/gke-nodepool"])
			},
		},
		{
			name: "Node followed by a List",
			data: `apiVersion: v1
kind: Node
metadata: {name: solo}
status: {nodeInfo: {kernelVersion: "1.2.3"}}
---
` + nodeListYAML,
			wantNames:   []string{"n1", "n2", "solo"},
			wantKernels: []string{"6.1.100+", "5.10.109+", "1.2.3"},
		},
		{
			name: "fields this client does not know are accepted",
			data: `apiVersion: v1
kind: Node
metadata: {name: future}
spec: {futureField: 1}
status: {nodeInfo: {kernelVersion: "6.20.0", futureInfo: x}}
`,
			wantNames:   []string{"future"},
			wantKernels: []string{"6.20.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, err := Parse([]byte(tt.data))
			require.NoError(t, err)
			var names, kernels []string
			for _, n := range ns {
				names = append(names, n.Name)
				kernels = append(kernels, n.Kernel)
			}
			assert.Equal(t, tt.wantNames, names, "sorted by name")
			assert.Equal(t, tt.wantKernels, kernels)
			if tt.check != nil {
				tt.check(t, ns)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantErr []string
	}{
		{name: "empty", data: "", wantErr: []string{"holds no nodes"}},
		{name: "whitespace only", data: "\n\n  \n", wantErr: []string{"holds no nodes"}},
		{name: "comments and separators only", data: "# nothing\n---\n---\n", wantErr: []string{"holds no nodes"}},
		{name: "empty List", data: "apiVersion: v1\nkind: List\nitems: []\n", wantErr: []string{"holds no nodes"}},
		{name: "empty JSON List", data: `{"apiVersion":"v1","kind":"List","items":[]}`, wantErr: []string{"holds no nodes"}},
		{
			name: "a Pod in the list",
			data: `apiVersion: v1
kind: List
items:
- kind: Node
  metadata: {name: n1}
  status: {nodeInfo: {kernelVersion: "1.2.3"}}
- kind: Pod
  metadata: {name: p}
`,
			wantErr: []string{"document 1", "items[1]", "kind Pod", "not a Node"},
		},
		{
			name:    "a list item that is not an object",
			data:    "apiVersion: v1\nkind: List\nitems:\n- just a string\n",
			wantErr: []string{"items[0]", "a string"},
		},
		{
			name:    "a Pod document",
			data:    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
			wantErr: []string{"document 1", "kind Pod", "not a Node, NodeList or List"},
		},
		{
			name: "a Pod as the second document",
			data: `kind: Node
metadata: {name: n1}
status: {nodeInfo: {kernelVersion: "1.2.3"}}
---
kind: Pod
metadata: {name: p}
`,
			wantErr: []string{"document 2", "kind Pod"},
		},
		{
			name:    "an object without kind",
			data:    "metadata: {name: n1}\n",
			wantErr: []string{"document 1", "without kind"},
		},
		{
			name: "duplicate node name in a list",
			data: `kind: List
items:
- kind: Node
  metadata: {name: dup}
  status: {nodeInfo: {kernelVersion: "1.2.3"}}
- kind: Node
  metadata: {name: dup}
  status: {nodeInfo: {kernelVersion: "1.2.4"}}
`,
			wantErr: []string{`"dup"`, "twice"},
		},
		{
			name: "duplicate node name across documents",
			data: `kind: Node
metadata: {name: dup}
status: {nodeInfo: {kernelVersion: "1.2.3"}}
---
kind: Node
metadata: {name: dup}
status: {nodeInfo: {kernelVersion: "1.2.3"}}
`,
			wantErr: []string{`"dup"`, "twice"},
		},
		{
			name:    "node without kernelVersion",
			data:    "kind: Node\nmetadata: {name: nok}\nstatus: {nodeInfo: {osImage: x}}\n",
			wantErr: []string{`"nok"`, "kernelVersion"},
		},
		{
			name:    "node without status",
			data:    "kind: Node\nmetadata: {name: nostatus}\n",
			wantErr: []string{`"nostatus"`, "kernelVersion"},
		},
		{
			name:    "list item without kernelVersion",
			data:    "kind: List\nitems:\n- kind: Node\n  metadata: {name: nok}\n",
			wantErr: []string{"items[0]", `"nok"`, "kernelVersion"},
		},
		{
			name:    "node without name",
			data:    "kind: Node\nmetadata: {}\nstatus: {nodeInfo: {kernelVersion: \"1.2.3\"}}\n",
			wantErr: []string{"no metadata.name"},
		},
		{
			name:    "malformed YAML",
			data:    "kind: Node\nmetadata: {name: [\n",
			wantErr: []string{"document 1"},
		},
		{
			name:    "malformed JSON",
			data:    `{"kind": "List", "items": [`,
			wantErr: []string{"document 1"},
		},
		{
			name:    "a scalar document",
			data:    "just text\n",
			wantErr: []string{"document 1"},
		},
		// Node snapshots are not checked by an API server: kmm checks what planning relies on.
		{
			name:    "a JSON array",
			data:    `[{"kind":"Node","metadata":{"name":"a"}}]`,
			wantErr: []string{"document 1 is a list, not a Node, NodeList or List"},
		},
		{
			name:    "a number",
			data:    "42\n",
			wantErr: []string{"document 1 is a number, not a Node, NodeList or List"},
		},
		{
			name:    "items that are no list",
			data:    "kind: List\nitems: {a: b}\n",
			wantErr: []string{"document 1: items is an object without kind, not a list"},
		},
		{
			name:    "kernel with a NUL byte",
			data:    "kind: Node\nmetadata: {name: n1}\nstatus: {nodeInfo: {kernelVersion: \"5.10.1\\0x\"}}\n",
			wantErr: []string{"document 1", `node "n1": status.nodeInfo.kernelVersion "5.10.1\x00x" holds byte 0x00 at offset 6`},
		},
		{
			name:    "kernel with a newline, in a list",
			data:    "kind: List\nitems:\n- kind: Node\n  metadata: {name: n1}\n  status: {nodeInfo: {kernelVersion: \"5.10.1\\nx\"}}\n",
			wantErr: []string{"document 1: items[0]", `node "n1": status.nodeInfo.kernelVersion "5.10.1\nx" holds byte 0x0a`},
		},
		{
			name:    "kernel of 1,000 characters",
			data:    "kind: Node\nmetadata: {name: n1}\nstatus: {nodeInfo: {kernelVersion: \"" + strings.Repeat("9", 1000) + "\"}}\n",
			wantErr: []string{`node "n1"`, "is 1000 bytes long; a kernel release (uname -r) has at most 256"},
		},
		{
			name:    "node name that is no DNS subdomain",
			data:    "kind: Node\nmetadata: {name: \"Node A\"}\nstatus: {nodeInfo: {kernelVersion: \"1.2.3\"}}\n",
			wantErr: []string{`node "Node A": metadata.name is not a valid node name`},
		},
		{
			name:    "kernel label value that no API server takes",
			data:    "kind: Node\nmetadata: {name: n1, labels: {feature.node.kubernetes.io/kernel-version.full: \"1.2.3 x\"}}\nstatus: {nodeInfo: {kernelVersion: \"1.2.3\"}}\n",
			wantErr: []string{`node "n1": metadata.labels: Invalid value: "1.2.3 x"`},
		},
		{
			name:    "wrong field type in a node",
			data:    "kind: Node\nmetadata: {name: n, labels: [a, b]}\nstatus: {nodeInfo: {kernelVersion: \"1\"}}\n",
			wantErr: []string{"document 1", "decoding Node"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, err := Parse([]byte(tt.data))
			require.Error(t, err, "got nodes %+v", ns)
			assert.Nil(t, ns)
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	tests := []struct {
		name      string
		path      string
		wantNodes int
		wantErr   []string
	}{
		{name: "YAML List", path: write("list.yaml", listYAML), wantNodes: 2},
		{name: "JSON", path: write("nodes.json", kubectlJSON), wantNodes: 2},
		{name: "multi-document", path: write("multi.yaml", multiDocYAML), wantNodes: 2},
		{name: "missing file", path: filepath.Join(dir, "missing.yaml"), wantErr: []string{"reading node file", "missing.yaml"}},
		{name: "a directory", path: dir, wantErr: []string{"reading node file"}},
		{name: "empty file names the file", path: write("empty.yaml", ""), wantErr: []string{"empty.yaml", "holds no nodes"}},
		{name: "malformed file names the file", path: write("bad.yaml", "kind: Node\nmetadata: {name: [\n"), wantErr: []string{"bad.yaml"}},
		{name: "pod file names the file", path: write("pod.yaml", "kind: Pod\nmetadata: {name: p}\n"), wantErr: []string{"pod.yaml", "kind Pod"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, err := LoadFile(tt.path)
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			assert.Len(t, ns, tt.wantNodes)
		})
	}
}

func TestLoadFileUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Log("running as root: permission bits do not stop reads; checking a missing parent instead")
		_, err := LoadFile(filepath.Join(t.TempDir(), "no", "such", "nodes.yaml"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "reading node file")
		return
	}
	p := filepath.Join(t.TempDir(), "locked.yaml")
	require.NoError(t, os.WriteFile(p, []byte(listYAML), 0o000))
	_, err := LoadFile(p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reading node file")
	assert.Contains(t, err.Error(), "locked.yaml")
}

func kernelCounts(ns []Node) map[string]int {
	out := map[string]int{}
	for _, n := range ns {
		out[n.Kernel]++
	}
	return out
}

func TestLoadFileExamples(t *testing.T) {
	tests := []struct {
		example   string
		wantNodes int
		kernels   map[string]int
		check     func(t *testing.T, ns []Node)
	}{
		{
			example:   "eks",
			wantNodes: 9,
			kernels: map[string]int{
				"5.4.196-108.356.amzn2.x86_64":     4,
				"5.4.190-107.353.amzn2.x86_64":     2,
				"6.1.112-122.189.amzn2023.x86_64":  2,
				"6.1.112-122.189.amzn2023.aarch64": 1,
			},
			check: func(t *testing.T, ns []Node) {
				var gpu *Node
				for i := range ns {
					if ns[i].Labels[LabelEKSNodegroup] == "gpu-al2-ng" {
						gpu = &ns[i]
					}
				}
				require.NotNil(t, gpu)
				assert.Equal(t, "ip-10-0-33-142.us-west-2.compute.internal", gpu.Name)
				assert.Equal(t, []corev1.Taint{{Key: "nvidia.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}}, gpu.Taints)
				arm := 0
				for _, n := range ns {
					if n.Architecture == "arm64" {
						arm++
						assert.Equal(t, "6.1.112-122.189.amzn2023.aarch64", n.Kernel)
					}
				}
				assert.Equal(t, 1, arm)
			},
		},
		{
			example:   "gke",
			wantNodes: 7,
			kernels: map[string]int{
				"5.10.109+":       2,
				"6.1.100+":        2,
				"5.15.0-1034-gke": 3,
			},
			check: func(t *testing.T, ns []Node) {
				for _, n := range ns {
					v, ok := n.Labels["feature.node.kubernetes.io/kernel-version.full"]
					require.True(t, ok, n.Name)
					if n.Kernel == "5.10.109+" {
						assert.Equal(t, "5.10.109", v)
					}
				}
			},
		},
		{
			example:   "ubuntu",
			wantNodes: 5,
			kernels: map[string]int{
				"5.15.0-105-generic": 3,
				"6.8.0-51-generic":   2,
			},
			check: func(t *testing.T, ns []Node) {
				names := []string{}
				for _, n := range ns {
					names = append(names, n.Name)
				}
				assert.Equal(t, []string{"metal-cp-1", "metal-worker-1", "metal-worker-2", "metal-worker-3", "metal-worker-4"}, names)
				require.Len(t, ns[0].Taints, 1)
				assert.Equal(t, "node-role.kubernetes.io/control-plane", ns[0].Taints[0].Key)
				assert.Empty(t, ns[0].ProviderID)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.example, func(t *testing.T) {
			path := filepath.Join("..", "..", "examples", tt.example, "nodes.yaml")
			ns, err := LoadFile(path)
			require.NoError(t, err)
			require.Len(t, ns, tt.wantNodes)
			assert.Equal(t, tt.kernels, kernelCounts(ns))
			assert.True(t, sort.SliceIsSorted(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name }), "sorted by name")
			if tt.check != nil {
				tt.check(t, ns)
			}

			// The same snapshot as JSON (kubectl get nodes -o json) parses to the same nodes.
			y, err := os.ReadFile(path)
			require.NoError(t, err)
			j, err := sigsyaml.YAMLToJSON(y)
			require.NoError(t, err)
			fromJSON, err := Parse(j)
			require.NoError(t, err)
			assert.Equal(t, ns, fromJSON)
		})
	}
}

// TestLoadObjects: the full Node objects, in file order, with the same errors as LoadFile
// (LoadFile is built on it).
func TestLoadObjects(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	tests := []struct {
		name      string
		path      string
		wantNames []string
		check     func(t *testing.T, ns []corev1.Node)
		wantErr   []string
	}{
		{
			name:      "List keeps file order and every field",
			path:      write("list.yaml", listYAML),
			wantNames: []string{"worker-b", "worker-a"},
			check: func(t *testing.T, ns []corev1.Node) {
				assert.Equal(t, "Node", ns[0].Kind)
				assert.Equal(t, "aws:///us-west-2a/i-0b", ns[0].Spec.ProviderID)
				assert.Equal(t, "Amazon Linux 2023.6.20241010", ns[1].Status.NodeInfo.OSImage)
			},
		},
		{
			name:      "JSON keeps fields Node has beyond what kmm uses",
			path:      write("nodes.json", kubectlJSON),
			wantNames: []string{"metal-worker-1", "metal-cp-1"},
			check: func(t *testing.T, ns []corev1.Node) {
				assert.Equal(t, "10.244.1.0/24", ns[0].Spec.PodCIDR)
				assert.Equal(t, "linux", ns[0].Status.NodeInfo.OperatingSystem)
			},
		},
		{
			name:      "multi-document",
			path:      write("multi.yaml", multiDocYAML),
			wantNames: []string{"gke-b", "gke-a"},
		},
		{name: "missing file", path: filepath.Join(dir, "missing.yaml"), wantErr: []string{"reading node file", "missing.yaml"}},
		{name: "pod file names the file and document", path: write("pod.yaml", "kind: Pod\nmetadata: {name: p}\n"), wantErr: []string{"node file", "pod.yaml", "document 1", "kind Pod"}},
		{name: "node without kernel", path: write("nok.yaml", "kind: Node\nmetadata: {name: nok}\n"), wantErr: []string{"nok.yaml", `"nok"`, "kernelVersion"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, err := LoadObjects(tt.path)
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				assert.Nil(t, ns)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			var names []string
			for _, n := range ns {
				names = append(names, n.Name)
			}
			assert.Equal(t, tt.wantNames, names, "file order")
			if tt.check != nil {
				tt.check(t, ns)
			}
			// LoadFile gives the same nodes, sorted by name.
			fromFile, err := LoadFile(tt.path)
			require.NoError(t, err)
			conv := make([]Node, 0, len(ns))
			for i := range ns {
				conv = append(conv, FromCoreV1(&ns[i]))
			}
			assert.Equal(t, Sort(conv), fromFile)
		})
	}
}
