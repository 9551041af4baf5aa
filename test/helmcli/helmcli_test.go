// Package helmcli drives the real helm 3 and helm 4 binaries (built by `make tools`) through
// `helm template` with kmm-render as post-renderer: the Helm 3 executable contract and the
// Helm 4 postrenderer/v1 plugin, for every example.
package helmcli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/kyaml/kio"
)

var (
	root     = mustAbs("../..")
	assets   string
	renderer string
	helmHome string
)

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

func TestMain(m *testing.M) {
	assets = os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "assets")
	}
	for _, h := range []string{"helm3", "helm4"} {
		if _, err := os.Stat(filepath.Join(assets, h)); err != nil {
			fmt.Fprintf(os.Stderr, "%s not found in %s: run `make tools` first (make test does)\n", h, assets)
			os.Exit(1)
		}
	}
	tmp, err := os.MkdirTemp("", "kmm-helmcli")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(tmp)
		// The Helm 4 plugin directory, laid out as `make plugin` does.
		plugin := filepath.Join(tmp, "plugin", "kmm-render")
		renderer = filepath.Join(plugin, "bin", "kmm-render")
		if out, err := exec.Command("go", "build", "-o", renderer, filepath.Join(root, "cmd", "kmm-render")).CombinedOutput(); err != nil {
			fmt.Fprintln(os.Stderr, string(out))
			return 1
		}
		b, err := os.ReadFile(filepath.Join(root, "plugin", "plugin.yaml"))
		if err != nil || os.WriteFile(filepath.Join(plugin, "plugin.yaml"), b, 0o644) != nil {
			fmt.Fprintln(os.Stderr, "laying out the plugin:", err)
			return 1
		}
		helmHome = filepath.Join(tmp, "helm")
		if out, err := helm(4, "plugin", "install", plugin); err != nil {
			fmt.Fprintln(os.Stderr, "helm plugin install:", out, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// helm runs helm 3 or 4 with its state in a scratch folder. HELM_PLUGINS stays unset: helm 4
// installs plugins under HELM_DATA_HOME and looks them up there only then.
func helm(version int, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(assets, fmt.Sprintf("helm%d", version)), args...)
	cmd.Dir = root
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HELM_") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			env = append(env, kv)
		}
	}
	home := filepath.Join(helmHome, fmt.Sprint(version)) // helm 3 cannot read helm 4 plugins
	cmd.Env = append(env,
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"KUBECONFIG=/nonexistent",
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func template(version int, example string, extra ...string) (string, error) {
	post := renderer
	if version == 4 {
		post = "kmm-render"
	}
	// cert-manager: no generated keys, so the output is the same on every run.
	args := append([]string{"template", "kmm", "charts/kmm", "-n", "kmm-system",
		"-f", "examples/" + example + "/values.yaml", "--set", "certManager.enabled=true",
		"--api-versions", "kmm.sigs.x-k8s.io/v1beta1/Module",
		"--post-renderer", post,
		"--post-renderer-args=--nodes", "--post-renderer-args=" + filepath.Join(root, "examples", example, "nodes.yaml")}, extra...)
	return helm(version, args...)
}

func TestTemplateWithPostRenderer(t *testing.T) {
	for _, version := range []int{3, 4} {
		for _, example := range []string{"eks", "gke", "ubuntu"} {
			t.Run(fmt.Sprintf("helm%d/%s", version, example), func(t *testing.T) {
				first, err := template(version, example)
				require.NoError(t, err, first)
				second, err := template(version, example)
				require.NoError(t, err, second)
				require.Equal(t, first, second, "same input and nodes, byte-identical output")

				objs, err := (&kio.ByteReader{Reader: strings.NewReader(first), OmitReaderAnnotations: true}).Read()
				require.NoError(t, err)
				count := map[string]int{} // role -> objects
				for _, o := range objs {
					for k, v := range o.GetLabels() {
						assert.Empty(t, validation.IsValidLabelValue(v), "%s: %s=%s", o.GetName(), k, v)
					}
					if o.GetKind() != "DaemonSet" && o.GetKind() != "Job" {
						continue
					}
					assert.Empty(t, validation.IsDNS1123Label(o.GetName()), o.GetName())
					assert.NotContains(t, o.GetAnnotations(), "render.kmm.dev/expand", "no template survives")
					role := o.GetLabels()["kmm.node.kubernetes.io/role"]
					if role != "device-plugin" {
						assert.NotEmpty(t, o.GetAnnotations()["render.kmm.dev/kernel-version"], "%s %s", o.GetKind(), o.GetName())
					}
					count[o.GetKind()+" "+role]++
				}
				// Per example: a loader per module and kernel its nodes run and a mapping
				// matches; a build Job per kernel of the registry-built module (kmm-kmod); its
				// device plugin.
				want := map[string]map[string]int{
					// eks: one build for the AL2023 kernel its nodes run, two for its extraKernels.
					"eks":    {"DaemonSet module-loader": 6, "Job build": 3, "DaemonSet device-plugin": 1},
					"gke":    {"DaemonSet module-loader": 3, "Job build": 1, "DaemonSet device-plugin": 1},
					"ubuntu": {"DaemonSet module-loader": 4, "Job build": 1, "DaemonSet device-plugin": 1},
				}[example]
				assert.Equal(t, want, count)
			})
		}
	}
}

func TestWithoutPostRendererNothingLoads(t *testing.T) {
	out, err := helm(3, "template", "kmm", "charts/kmm", "-n", "kmm-system", "-f", "examples/gke/values.yaml")
	require.NoError(t, err, out)
	assert.Contains(t, out, "render.kmm.dev/post-renderer: required", "the unexpanded template selects no node")
	// helm 3 wants a cluster even for --dry-run=client; helm 4 does not.
	out, err = helm(4, "install", "kmm", "charts/kmm", "-n", "kmm-system", "-f", "examples/gke/values.yaml", "--dry-run=client")
	require.NoError(t, err, out)
	assert.Contains(t, out, "NOTHING IS LOADED", "NOTES.txt says how to run with kmm-render")
	assert.Contains(t, out, "--post-renderer kmm-render")
}

func TestPostRendererErrorsFailHelm(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "nodes.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("apiVersion: v1\nkind: NodeList\nitems: []\n"), 0o644))
	for _, version := range []int{3, 4} {
		t.Run(fmt.Sprintf("helm%d", version), func(t *testing.T) {
			post := renderer
			if version == 4 {
				post = "kmm-render"
			}
			out, err := helm(version, "template", "kmm", "charts/kmm", "-f", "examples/eks/values.yaml",
				"--post-renderer", post, "--post-renderer-args=--nodes", "--post-renderer-args="+bad)
			require.Error(t, err)
			if version == 3 {
				assert.Contains(t, out, bad+": holds no nodes")
			} else {
				// Helm 4 hides a plugin's stderr; kmm-render leaves the message in the cache.
				assert.Contains(t, out, `"kmm-render"`)
				msg, rerr := os.ReadFile(filepath.Join(helmHome, "4", "cache", "kmm-render", "last-error.txt"))
				require.NoError(t, rerr)
				assert.Contains(t, string(msg), "holds no nodes")
			}
		})
	}
}
