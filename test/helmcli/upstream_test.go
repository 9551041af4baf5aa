package helmcli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/kustomize/kyaml/kio"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"

	"kmm.dev/kmm/test/upstream"
)

// TestUpstreamModules: KMM's published Module examples, pasted into values, through the real
// Helm 3 and Helm 4 with kmm-render. As `via: operator` modules each renders into a Module with
// the example's spec; as `via: helm` modules each is refused with a message that names the
// fields and says why: on Helm 3's stderr, and, as Helm 4 hides it, in the file kmm-render
// leaves for it.
func TestUpstreamModules(t *testing.T) {
	for _, version := range []int{3, 4} {
		for _, e := range upstream.Examples {
			for _, via := range []string{"operator", "helm"} {
				t.Run(fmt.Sprintf("helm%d/%s/%s", version, e.File, via), func(t *testing.T) {
					values, err := e.Values(via)
					require.NoError(t, err)
					file := filepath.Join(t.TempDir(), "values.yaml")
					require.NoError(t, os.WriteFile(file, values, 0o644))
					lastError := filepath.Join(helmHome, "4", "cache", "kmm-render", "last-error.txt")
					require.NoError(t, os.RemoveAll(lastError))
					post := renderer
					if version == 4 {
						post = "kmm-render"
					}
					out, err := helm(version, "template", "kmm", "charts/kmm", "-n", "kmm-system", "-f", file,
						"--api-versions", "kmm.sigs.x-k8s.io/v1beta1/Module", "--post-renderer", post,
						"--post-renderer-args=--nodes", "--post-renderer-args="+filepath.Join(root, e.Nodes))
					if via == "helm" {
						require.Error(t, err, out)
						msg := out
						if version == 4 {
							b, rerr := os.ReadFile(lastError)
							require.NoError(t, rerr)
							msg = string(b)
						}
						for _, w := range e.HelmRefused {
							assert.Contains(t, msg, w)
						}
						return
					}
					require.NoError(t, err, out)
					name, spec, err := e.Spec()
					require.NoError(t, err)
					objs, err := (&kio.ByteReader{Reader: strings.NewReader(out), OmitReaderAnnotations: true}).Read()
					require.NoError(t, err)
					var got []string
					for _, o := range objs {
						if o.GetKind() != "Module" || o.GetName() != name || o.GetNamespace() != upstream.Namespace {
							continue
						}
						s, err := o.Pipe(kyaml.Lookup("spec"))
						require.NoError(t, err)
						b, err := s.MarshalJSON()
						require.NoError(t, err)
						got = append(got, string(b))
					}
					require.Len(t, got, 1, "one Module %s/%s", upstream.Namespace, name)
					want, err := json.Marshal(spec)
					require.NoError(t, err)
					assert.JSONEq(t, string(want), got[0], "the Module's spec is the example's, every field kept")
				})
			}
		}
	}
}
