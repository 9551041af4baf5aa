package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hostile input battery: what a broken pipeline, a tampered node snapshot or a malicious
// chart user can hand kmm-render. Every case runs the real binary (built once, in TestMain)
// and must fail the same way: a non-zero exit, one message on stderr that names the culprit
// (document, module and field path, node, file or value path) and holds no raw control
// character, and nothing at all on stdout, so that Helm applies nothing.

const eksNodes = "../../examples/eks/nodes.yaml"

// firstEKSNode is the first node of the EKS snapshot, whose kernel the node cases replace.
const firstEKSNode = "ip-10-0-12-34.us-west-2.compute.internal"

// billionLaughs is the classic alias bomb: nine levels of nine aliases, 9^9 (387 million)
// strings once expanded, in 600 bytes.
const billionLaughs = `---
# Source: kmm/templates/lol.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: lol
  namespace: kmm
data:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`

// sa is a small valid document, so that the hostile one is not the first.
const sa = "---\n# Source: kmm/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  namespace: kmm\n"

// moduleList is the chart's module list ConfigMap holding modules (a JSON list).
func moduleList(modules string) string {
	return "---\n# Source: kmm/templates/modules-configmap.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kmm-modules\n  namespace: kmm\n" +
		"  annotations:\n    render.kmm.dev/modules: v1\ndata:\n  modules.json: '" + modules + "'\n"
}

// regexpModule is a helm-managed module whose one kernel mapping is re.
func regexpModule(re string) string {
	return `[{"name":"m","namespace":"kmm","selector":{"kubernetes.io/os":"linux"},"moduleLoader":{"container":{"modprobe":{"moduleName":"m"},` +
		`"containerImage":"r/m:${KERNEL_FULL_VERSION}","kernelMappings":[{"literal":"5.4.1"},{"regexp":"` + re + `"}]}}}]`
}

// replaceOnce replaces old, which must occur in s, once.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	require.Contains(t, s, old, "the fixture changed: recapture the case")
	return strings.Replace(s, old, new, 1)
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// eksNodesWithKernel is the EKS snapshot with its first node's kernel replaced by kernel, a
// YAML double-quoted scalar's content (escapes allowed).
func eksNodesWithKernel(t *testing.T, kernel string) string {
	t.Helper()
	b, err := os.ReadFile(eksNodes)
	require.NoError(t, err)
	return writeTemp(t, "nodes.yaml", replaceOnce(t, string(b), "kernelVersion: 5.4.196-108.356.amzn2.x86_64\n", `kernelVersion: "`+kernel+"\"\n"))
}

func TestHostileInputs(t *testing.T) {
	chart := chartInput(t)
	nodes := []string{"--nodes", eksNodes}
	// What the chart writes for kmm-ci-a's loader, and the KMM Module of kmm-ci-b.
	const loaderSelector = "    matchLabels:\n      app.kubernetes.io/name: kmm\n      app.kubernetes.io/instance: kmm\n      app.kubernetes.io/component: module-loader\n      kmm.node.kubernetes.io/module.name: kmm-ci-a\n"
	const loaderPodLabels = "      labels:\n        app.kubernetes.io/name: kmm\n        app.kubernetes.io/instance: kmm\n        app.kubernetes.io/component: module-loader\n        kmm.node.kubernetes.io/module.name: kmm-ci-a\n"
	const loaderName = "(kmm/templates/module-loader.yaml) DaemonSet kmm-demo/kmm-ci-a-loader"
	const moduleName = "(kmm/templates/operator-modules.yaml) Module kmm-demo/kmm-ci-b"
	const moduleLabels = "  name: kmm-ci-b\n  namespace: kmm-demo\n  labels:\n"
	const moduleSelector = "  selector:\n    eks.amazonaws.com/nodegroup: al2023-ng\n"
	const listName = "(kmm/templates/modules-configmap.yaml)"
	badValues := func(v string) []string {
		return []string{"nodes", "--nodes", eksNodes, "-f", "../../examples/eks/values.yaml", "-f", writeTemp(t, "values.yaml", v)}
	}
	module := func(name, namespace string) string {
		return fmt.Sprintf("modules:\n- name: %s\n  namespace: %s\n  selector: {kubernetes.io/os: linux}\n  moduleLoader:\n    container:\n"+
			"      modprobe: {moduleName: m}\n      containerImage: r/m:${KERNEL_FULL_VERSION}\n      kernelMappings: [{regexp: '^5'}]\n", name, namespace)
	}

	tests := []struct {
		name  string
		stdin string
		args  []string
		want  []string
	}{
		// Truncated and malformed YAML.
		{name: "cut inside the module list's JSON string",
			stdin: chart[:strings.Index(chart, `modules.json: "[{\"builder`)+len(`modules.json: "[{\"builder`)], args: nodes,
			want: []string{"document 5 " + listName, "malformed YAML", "found unexpected end of stream"}},
		{name: "cut inside a key", stdin: chart[:strings.Index(chart, "  namespace: kmm-demo\n  labels:\n    helm.sh/chart: kmm-0.1.0\n    app.kubernetes.io/name: kmm\n    app.kubernetes.io/instance: kmm\n    app.kubernetes.io/version: \"0.1.0\"\n    app.kubernetes.io/managed-by: Helm\n    app.kubernetes.io/component: module-loader\n    kmm.node.kubernetes.io/module.name: kmm-ci-a")+len("  namesp")], args: nodes,
			want: []string{"document 6 (kmm/templates/module-loader.yaml)", "malformed YAML", "could not find expected ':'"}},
		{name: "bad indentation", stdin: sa + "---\n# Source: kmm/templates/bad.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n   namespace: kmm\n", args: nodes,
			want: []string{"document 2 (kmm/templates/bad.yaml)", "malformed YAML", "line 6: mapping values are not allowed in this context"}},
		{name: "tab indentation", stdin: sa + "---\n# Source: kmm/templates/tab.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: a\n", args: nodes,
			want: []string{"document 2 (kmm/templates/tab.yaml)", "malformed YAML", "line 5", "cannot start any token"}},
		{name: "unclosed flow mapping", stdin: sa + "---\n# Source: kmm/templates/flow.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: kmm\n", args: nodes,
			want: []string{"document 2 (kmm/templates/flow.yaml)", "malformed YAML", "did not find expected ',' or '}'"}},
		{name: "invalid UTF-8", stdin: sa + "---\n# Source: kmm/templates/utf8.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: \"\xff\xfe\"\n", args: nodes,
			want: []string{"document 2 (kmm/templates/utf8.yaml)", "not UTF-8 text (line 7)"}},
		{name: "UTF-16 stream", stdin: "\xff\xfe-\x00-\x00-\x00\n\x00", args: nodes,
			want: []string{"document 1", "not UTF-8 text (line 1)"}},
		{name: "byte order mark mid-stream", stdin: sa + "---\n\ufeffapiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bom\n", args: nodes,
			want: []string{"document 2: a byte order mark (U+FEFF) inside the stream (line 1)"}},
		{name: "a document that is a scalar", stdin: sa + "---\n# Source: kmm/templates/scalar.yaml\njust some text\n", args: nodes,
			want: []string{"document 2 (kmm/templates/scalar.yaml)", "not a Kubernetes object (a YAML scalar)"}},
		{name: "a document that is a list", stdin: sa + "---\n- apiVersion: v1\n  kind: ConfigMap\n", args: nodes,
			want: []string{"document 2", "not a Kubernetes object (a YAML list)"}},
		{name: "a document after a ... end marker", stdin: sa + "---\n# Source: kmm/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n...\nkind: Secret\n", args: nodes,
			want: []string{"document 2 (kmm/templates/cm.yaml)", "malformed YAML", "line 5: did not find expected <document start>"}},
		// Helm and kmm-render split at "---\n"; YAML also breaks lines at a lone \r, U+0085,
		// U+2028 and U+2029: a Secret smuggled after one would reach a YAML reader unchecked.
		{name: "a document hidden after a carriage return", stdin: sa + "---\n# Source: kmm/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\r---\rkind: Secret\rmetadata: {name: hidden}\r", args: nodes,
			want: []string{"document 2 (kmm/templates/cm.yaml)", "a second YAML document starts inside this one"}},
		{name: "a document hidden after U+2028", stdin: sa + "---\n# Source: kmm/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\u2028---\u2028kind: Secret\n", args: nodes,
			want: []string{"document 2 (kmm/templates/cm.yaml)", "a second YAML document starts inside this one"}},
		{name: "content on the --- line", stdin: sa + "--- {apiVersion: v1, kind: Secret, metadata: {name: hidden}}\n", args: nodes,
			want: []string{"document 2", "content after --- on its separator line ({apiVersion: v1, kind: Secret, metadata: {name: hidden}})"}},
		{name: "a repeated key", stdin: sa + "---\n# Source: kmm/templates/dup.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: kmm\n  name: b\n", args: nodes,
			want: []string{"document 2 (kmm/templates/dup.yaml)", "line 7: key name is repeated (first at line 5)"}},
		{name: "metadata that is a list", stdin: sa + "---\n# Source: kmm/templates/md.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: [{name: a}]\n", args: nodes,
			want: []string{"document 2 (kmm/templates/md.yaml)", "line 4: metadata is a YAML list, not a mapping"}},
		{name: "a control character in a name", stdin: sa + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"evil\\e[2Jname\"\n", args: nodes,
			want: []string{"document 2 ConfigMap \"evil\\x1b[2Jname\"", `metadata.name "evil\x1b[2Jname" holds a control or non-printable character`}},
		{name: "!!binary hides the kind", stdin: sa + "---\n# Source: kmm/templates/bin.yaml\napiVersion: v1\nkind: !!binary U2VjcmV0\nmetadata: {name: a}\n", args: nodes,
			want: []string{"document 2 (kmm/templates/bin.yaml)", "line 3: explicit YAML tag !!binary"}},

		// Anchors and aliases, in what kmm-render interprets and elsewhere.
		{name: "alias in a loader template",
			stdin: replaceOnce(t, replaceOnce(t, chart, loaderSelector, strings.Replace(loaderSelector, "matchLabels:", "matchLabels: &podLabels", 1)), loaderPodLabels, "      labels: *podLabels\n"), args: nodes,
			want: []string{"document 6 " + loaderName, "YAML alias *podLabels", "kmm-render refuses YAML aliases"}},
		{name: "alias in a KMM Module",
			stdin: replaceOnce(t, replaceOnce(t, chart, moduleLabels, strings.Replace(moduleLabels, "labels:", "labels: &labels", 1)), moduleSelector, "  selector: *labels\n"), args: nodes,
			want: []string{"document 8 " + moduleName, "YAML alias *labels"}},
		{name: "merge key in a KMM Module",
			stdin: replaceOnce(t, chart, moduleSelector, "  selector:\n    <<: {eks.amazonaws.com/nodegroup: al2023-ng}\n"), args: nodes,
			want: []string{"document 8 " + moduleName, "YAML merge key <<"}},
		{name: "billion laughs", stdin: sa + billionLaughs, args: nodes,
			want: []string{"document 2 (kmm/templates/lol.yaml) ConfigMap kmm/lol", "line 9: YAML alias *a"}},

		// Kernel mappings: RE2 syntax, which has no backreferences or lookaround.
		{name: "backreference in a kernel mapping", stdin: moduleList(regexpModule(`(5)\\1`)), args: nodes,
			want: []string{"document 1 " + listName, "module kmm/m breaks KMM", `modules[0].moduleLoader.container.kernelMappings[1].regexp: Invalid value: "(5)\\1"`, "invalid escape sequence"}},
		{name: "lookahead in a kernel mapping", stdin: moduleList(regexpModule(`^5(?=\\.)`)), args: nodes,
			want: []string{"module kmm/m", "modules[0].moduleLoader.container.kernelMappings[1].regexp", "invalid or unsupported Perl syntax: `(?=`"}},
		{name: "lookbehind in a kernel mapping", stdin: moduleList(regexpModule(`(?<=x)5`)), args: nodes,
			want: []string{"module kmm/m", "modules[0].moduleLoader.container.kernelMappings[1].regexp", "invalid named capture: `(?<=x)5`"}},

		// Node snapshots that hold no node list, mix kinds, or nodes no kubelet reports.
		{name: "node file: a ConfigMap", stdin: chart, args: []string{"--nodes", writeTemp(t, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")},
			want: []string{"cm.yaml", "document 1 is kind ConfigMap, not a Node, NodeList or List"}},
		{name: "node file: a Pod list", stdin: chart, args: []string{"--nodes", writeTemp(t, "pods.yaml", "apiVersion: v1\nkind: PodList\nitems: [{kind: Pod, metadata: {name: p}}]\n")},
			want: []string{"pods.yaml", "document 1 is kind PodList"}},
		{name: "node file: empty", stdin: chart, args: []string{"--nodes", writeTemp(t, "empty.yaml", "")},
			want: []string{"empty.yaml", "holds no nodes"}},
		{name: "node file: a JSON array", stdin: chart, args: []string{"--nodes", writeTemp(t, "array.json", `[{"kind":"Node","metadata":{"name":"a"}}]`)},
			want: []string{"array.json", "document 1 is a list, not a Node, NodeList or List"}},
		{name: "node file: null", stdin: chart, args: []string{"--nodes", writeTemp(t, "null.yaml", "null\n")},
			want: []string{"null.yaml", "holds no nodes"}},
		{name: "node file: a List of a Node and a Pod", stdin: chart, args: []string{"--nodes", writeTemp(t, "mixed.yaml",
			"apiVersion: v1\nkind: List\nitems:\n- {kind: Node, metadata: {name: a}, status: {nodeInfo: {kernelVersion: 5.10.1}}}\n- {kind: Pod, metadata: {name: p}}\n")},
			want: []string{"mixed.yaml", "document 1: items[1] is kind Pod, not a Node"}},
		{name: "node file: a node without a name", stdin: chart, args: []string{"--nodes", writeTemp(t, "noname.yaml", "kind: Node\nmetadata: {labels: {a: b}}\nstatus: {nodeInfo: {kernelVersion: 5.10.1}}\n")},
			want: []string{"noname.yaml", "document 1: a Node has no metadata.name"}},
		{name: "node file: a node name twice", stdin: chart, args: []string{"--nodes", writeTemp(t, "twice.yaml",
			"kind: Node\nmetadata: {name: a}\nstatus: {nodeInfo: {kernelVersion: 5.10.1}}\n---\nkind: Node\nmetadata: {name: a}\nstatus: {nodeInfo: {kernelVersion: 5.10.2}}\n")},
			want: []string{"twice.yaml", `node "a" is listed twice`}},
		{name: "node file: an invalid node name", stdin: chart, args: []string{"--nodes", writeTemp(t, "badname.yaml", "kind: Node\nmetadata: {name: \"Node A\"}\nstatus: {nodeInfo: {kernelVersion: 5.10.1}}\n")},
			want: []string{"badname.yaml", `node "Node A": metadata.name is not a valid node name`}},
		{name: "node file: an invalid kernel label value", stdin: chart, args: []string{"--nodes", writeTemp(t, "label.yaml",
			"kind: Node\nmetadata: {name: a, labels: {feature.node.kubernetes.io/kernel-version.full: \"5.10.1 rt\"}}\nstatus: {nodeInfo: {kernelVersion: 5.10.1}}\n")},
			want: []string{"label.yaml", `node "a": metadata.labels: Invalid value: "5.10.1 rt"`}},
		{name: "kernel of 1,000 characters", stdin: chart, args: []string{"--nodes", eksNodesWithKernel(t, strings.Repeat("5", 1000))},
			want: []string{"items[0]", `node "` + firstEKSNode + `": status.nodeInfo.kernelVersion "` + strings.Repeat("5", 64) + `"...(1000 bytes) is 1000 bytes long; a kernel release (uname -r) has at most 256`}},
		{name: "kernel with an escape sequence", stdin: chart, args: []string{"--nodes", eksNodesWithKernel(t, `5.4.196\e[2J`)},
			want: []string{`node "` + firstEKSNode + `": status.nodeInfo.kernelVersion "5.4.196\x1b[2J" holds byte 0x1b at offset 7`}},
		{name: "kernel with a NUL byte", stdin: chart, args: []string{"--nodes", eksNodesWithKernel(t, `5.4.196\0-evil`)},
			want: []string{`node "` + firstEKSNode + `": status.nodeInfo.kernelVersion "5.4.196\x00-evil" holds byte 0x00 at offset 7`}},
		{name: "kernel with a newline", stdin: chart, args: []string{"--nodes", eksNodesWithKernel(t, `5.4.196\nwarning: forged`)},
			want: []string{`node "` + firstEKSNode + `": status.nodeInfo.kernelVersion "5.4.196\nwarning: forged" holds byte 0x0a at offset 7`}},
		{name: "kernel with a space", stdin: chart, args: []string{"--nodes", eksNodesWithKernel(t, `5.4.196 x`)},
			want: []string{`node "` + firstEKSNode + `"`, "holds byte 0x20 at offset 7; a kernel release (uname -r) is printable ASCII without spaces"}},
		{name: "extra kernel of 10,000 characters", stdin: chart, args: append([]string{"--extra-kernel", strings.Repeat("5", 10000)}, nodes...),
			want: []string{"(--extra-kernel) is 10000 bytes long"}},

		// Values the chart's values.schema.json (or, where a schema cannot say it, kmm-render)
		// refuses, rendered with the Helm SDK as `helm template` does.
		{name: "values: module name with upper case", args: badValues(module("Bad-Name", "kmm")),
			want: []string{"values don't meet the specifications of the schema", "at '/modules/0/name': 'Bad-Name' does not match pattern"}},
		{name: "values: name and namespace over 40 characters", args: badValues(module("a-rather-long-module-name", "and-a-long-namespace")),
			want: []string{listName, "module and-a-long-namespace/a-rather-long-module-name", "modules[0].name", "45 characters together; KMM v2.6.0 allows at most 40"}},
		{name: "values: unknown top-level key", args: badValues("bogusTopLevel: 1\n"),
			want: []string{"at '': additional properties 'bogusTopLevel' not allowed"}},
		{name: "values: platformLabels not a boolean", args: badValues("platformLabels: \"yes\"\n"),
			want: []string{"at '/platformLabels': got string, want boolean"}},
		{name: "values: extraKernels entry with a space", args: badValues("extraKernels: [\"5.10.1 x\"]\n"),
			want: []string{"at '/extraKernels/0'", "'5.10.1 x' does not match pattern"}},
		{name: "values: build.osDefaults with an unknown key", args: badValues("build:\n  osDefaults:\n    al2:\n      baseImage: amazonlinux:2\n      bogus: y\n"),
			want: []string{"at '/build/osDefaults/al2': additional properties 'bogus' not allowed"}},
	}
	require.GreaterOrEqual(t, len(tests), 30)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := runBinary(t, tt.stdin, nil, tt.args...)
			assert.NotEqual(t, 0, code, "exit code")
			assert.Empty(t, out, "nothing on stdout")
			assert.Equal(t, 1, strings.Count(stderr, "kmm-render: error:"), "one error message:\n%s", stderr)
			for _, w := range tt.want {
				assert.Contains(t, stderr, w)
			}
			for _, c := range []string{"\x00", "\x1b", "\r"} {
				assert.NotContains(t, stderr, c, "a raw control character reaches the terminal")
			}
		})
	}
}

// A document over 10 MB (an 11 MB ConfigMap value) is no error: kmm-render sets no size limit
// of its own (Helm holds the whole release in memory before kmm-render sees it, and the API
// server refuses objects over its own limit), and passes it through byte for byte while it
// expands the templates around it.
func TestDocumentOver10MBPassesThroughByteExact(t *testing.T) {
	big := "---\n# Source: kmm/templates/big.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  namespace: kmm-demo\ndata:\n  blob: " +
		strings.Repeat("0123456789abcdef", 11<<20/16) + "\n"
	require.Greater(t, len(big), 11<<20)
	out, stderr, code := runBinary(t, chartInput(t)+big, nil, "--nodes", eksNodes)
	require.Equal(t, 0, code, stderr)
	assert.True(t, strings.HasSuffix(out, big), "the big document passes through byte for byte")
	assert.True(t, strings.Contains(out, "name: kmm-ci-a-loader-5-4-196-108-356-amzn2-x86-64-a6e82dda\n"), "the templates before it are expanded")
}

// 100,000 documents in one stream work: every one passes through byte for byte, in order,
// after the expanded chart.
func TestHundredThousandDocuments(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 100000; i++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa-%06d\n  namespace: kmm\n", i)
	}
	many := b.String()
	out, stderr, code := runBinary(t, chartInput(t)+many, nil, "--nodes", eksNodes)
	require.Equal(t, 0, code, stderr)
	assert.True(t, strings.HasSuffix(out, many), "100,000 documents pass through byte for byte")
	assert.Equal(t, 100000, strings.Count(out, "kind: ServiceAccount\nmetadata:\n  name: sa-"))
	assert.True(t, strings.Contains(out, "name: kmm-ci-a-loader-5-4-196-108-356-amzn2-x86-64-a6e82dda\n"), "the templates before them are expanded")
}

// Go's regexps are RE2: patterns that make backtracking engines take exponential time, such
// as (a+)+$ and (a|aa)*b against a run of a's that ends in something else, are valid kernel
// mappings and match in linear time (see pkg/render's TestCatastrophicRegexpsStayLinear for the
// proof). kmm-render accepts them, and they match as KMM's Go controller would match them.
func TestRE2RegexpsAreAccepted(t *testing.T) {
	as := strings.Repeat("a", 40)
	list := moduleList(`[{"name":"m","namespace":"kmm","selector":{"kubernetes.io/os":"linux"},"moduleLoader":{"container":{"modprobe":{"moduleName":"m"},` +
		`"containerImage":"r/m:${KERNEL_FULL_VERSION}","kernelMappings":[{"regexp":"(a+)+$"},{"regexp":"(a|aa)*b"}]}}}]`)
	template := `---
# Source: kmm/templates/module-loader.yaml
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: m-loader
  namespace: kmm
  annotations:
    render.kmm.dev/expand: module-loader
    render.kmm.dev/module: kmm/m
spec:
  selector:
    matchLabels: {app: m}
  template:
    metadata:
      labels: {app: m}
    spec:
      nodeSelector:
        render.kmm.dev/post-renderer: required
      containers:
        - name: module-loader
          image: placeholder:1
`
	nodeFile := writeTemp(t, "nodes.yaml", fmt.Sprintf(`apiVersion: v1
kind: List
items:
- kind: Node
  metadata: {name: ends-in-a, labels: {kubernetes.io/os: linux}}
  status: {nodeInfo: {kernelVersion: "5.15.0-1-%[1]s"}}
- kind: Node
  metadata: {name: has-b, labels: {kubernetes.io/os: linux}}
  status: {nodeInfo: {kernelVersion: "5.15.0-2-%[1]sb"}}
- kind: Node
  metadata: {name: backtracker-killer, labels: {kubernetes.io/os: linux}}
  status: {nodeInfo: {kernelVersion: "5.15.0-3-%[1]s!"}}
`, as))
	out, stderr, code := runBinary(t, list+template, nil, "--nodes", nodeFile)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "  name: m-loader-5-15-0-1-"+as+"\n  namespace: kmm\n  annotations:\n"+
		"    render.kmm.dev/kernel-version: '5.15.0-1-"+as+"'\n    render.kmm.dev/kernel-mapping: '0: regexp (a+)+$'\n")
	assert.Contains(t, out, "  name: m-loader-5-15-0-2-"+as+"b\n  namespace: kmm\n  annotations:\n"+
		"    render.kmm.dev/kernel-version: '5.15.0-2-"+as+"b'\n    render.kmm.dev/kernel-mapping: '1: regexp (a|aa)*b'\n")
	assert.Equal(t, 2, strings.Count(out, "kind: DaemonSet\n"), "no loader for the kernel no mapping matches")
	assert.Contains(t, stderr, "warning: module kmm/m: kernel 5.15.0-3-"+as+"! (node(s) backtracker-killer) matches no kernel mapping")
}
