package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kmm-render-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "kmm-render")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runBinary(t *testing.T, stdin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return out.String(), errb.String(), code
}

const example = "../../examples/gke"

func chartInput(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../pkg/postrender/testdata/helm3-eks.input.yaml")
	require.NoError(t, err)
	return string(b)
}

func TestVersion(t *testing.T) {
	out, _, code := runBinary(t, "", nil, "version")
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^kmm-render \S+\n$`, out)
}

func TestPostRenderFromNodeFile(t *testing.T) {
	out, stderr, code := runBinary(t, chartInput(t), nil, "--nodes", "../../examples/eks/nodes.yaml")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "name: kmm-ci-a-loader-5-4-190-107-353-amzn2-x86-64-")
	assert.Contains(t, stderr, "warning: module kmm-demo/kmm-ci-a: kernel 6.1.112-122.189.amzn2023.aarch64")
	assert.NotContains(t, out, "warning: module", "nothing but manifests on stdout")
	assert.NotRegexp(t, `(?m)^warning`, out, "nothing but manifests on stdout")
}

func TestErrorsExitNonZeroWithNothingOnStdout(t *testing.T) {
	unreachable := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600))
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"empty stdin", "", []string{"--nodes", "../../examples/eks/nodes.yaml"}, "no manifests on standard input"},
		{"missing node file", chartInput(t), []string{"--nodes", "nope.yaml"}, "nope.yaml"},
		{"unreachable API server", chartInput(t), []string{"--kubeconfig", unreachable, "--timeout", "5s"}, "https://127.0.0.1:1"},
		{"unknown context", chartInput(t), []string{"--kubeconfig", unreachable, "--context", "nope"}, `context "nope"`},
		{"strict", chartInput(t), []string{"--nodes", "../../examples/eks/nodes.yaml", "--strict"}, "6.1.112-122.189.amzn2023.aarch64"},
		{"stray argument", chartInput(t), []string{"extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := runBinary(t, tt.stdin, nil, tt.args...)
			assert.NotEqual(t, 0, code)
			assert.Empty(t, out)
			assert.Contains(t, stderr, "kmm-render: error:")
			assert.Contains(t, stderr, tt.want)
		})
	}
}

func TestHelm4PluginErrorIsLeftWhereTheUserSeesIt(t *testing.T) {
	cache := t.TempDir()
	_, _, code := runBinary(t, "", []string{"HELM_PLUGIN_NAME=kmm-render", "HELM_CACHE_HOME=" + cache}, "--nodes", "x.yaml")
	require.NotEqual(t, 0, code)
	b, err := os.ReadFile(filepath.Join(cache, "kmm-render", "last-error.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "no manifests on standard input")
}

func TestNodesTable(t *testing.T) {
	out, stderr, code := runBinary(t, "", nil, "nodes", "--nodes", example+"/nodes.yaml", "-f", example+"/values.yaml")
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, "a row per kernel and module: kmm-ci-a-ubuntu, kmm-kmod, kmm-kmod-node; the COS kernels have none (LoadPin)")
	assert.Regexp(t, `^KERNEL\s+NODES\s+PLATFORM\s+OS\s+LABEL VALUE\s+UNLABELLED\s+MODULE`, lines[0])
	assert.Regexp(t, `^5\.10\.109\+\s+2\s+gke\s+cos\s+5\.10\.109\s+-\s+-\s+0\s+-`, lines[1])
	assert.Contains(t, stderr, "run Container-Optimized OS CPU or TPU images, whose LoadPin refuses out-of-tree modules")

	out, _, code = runBinary(t, "", nil, "nodes", "--nodes", example+"/nodes.yaml")
	require.Equal(t, 0, code)
	assert.NotContains(t, out, "MODULE")

	_, stderr, code = runBinary(t, "", nil, "nodes", "--nodes", example+"/nodes.yaml", "-f", "missing.yaml")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, "missing.yaml")
}

// TestNodesWindowsNode: `kmm-render nodes` on a snapshot with a Windows node that a module's
// selector picks: the node's kernel gets no module row, and a warning names the node.
func TestNodesWindowsNode(t *testing.T) {
	data, err := os.ReadFile(example + "/nodes.yaml")
	require.NoError(t, err)
	var list map[string]any
	require.NoError(t, yaml.Unmarshal(data, &list))
	items := list["items"].([]any)
	var win map[string]any
	for _, it := range items {
		if it.(map[string]any)["metadata"].(map[string]any)["name"] == "gke-prod-ubuntu-pool-3f9a1c7e-2mzp" {
			b, err := yaml.Marshal(it)
			require.NoError(t, err)
			require.NoError(t, yaml.Unmarshal(b, &win))
		}
	}
	require.NotNil(t, win)
	meta := win["metadata"].(map[string]any)
	meta["name"] = "gke-prod-win-pool-1"
	labels := meta["labels"].(map[string]any)
	labels["kubernetes.io/os"] = "windows"
	delete(labels, "feature.node.kubernetes.io/kernel-version.full")
	info := win["status"].(map[string]any)["nodeInfo"].(map[string]any)
	info["kernelVersion"], info["operatingSystem"], info["osImage"] = "10.0.20348.2582", "windows", "Windows Server 2022 Datacenter"
	list["items"] = append(items, win)
	b, err := yaml.Marshal(list)
	require.NoError(t, err)
	snapshot := filepath.Join(t.TempDir(), "nodes.yaml")
	require.NoError(t, os.WriteFile(snapshot, b, 0o644))

	out, stderr, code := runBinary(t, "", nil, "nodes", "--nodes", snapshot, "-f", example+"/values.yaml")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "node(s) gke-prod-win-pool-1 (windows) do not run Linux: they get no loader, build or device plugin")
	var winRows []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "10.0.20348.2582") {
			winRows = append(winRows, line)
		}
	}
	require.Len(t, winRows, 1, out)
	assert.Regexp(t, `^10\.0\.20348\.2582\s+1\s.*\s-\s+0\s+-\s+-$`, winRows[0], "no module row: the kernel's nodes get nothing")
}
