package chartrender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"

	"kmm.dev/kmm/pkg/postrender"
)

// helmInstall renders as chartrender did through action.Install (a client-only dry run, as
// `helm template` runs it), the reference Render must match byte for byte. Test binaries may
// link package action; kmm-render may not (cmd/kmm-render's TestBinaryLinksNoHelmAction).
func helmInstall(ctx context.Context, o Options) (*Rendered, error) {
	chrt, err := load(o.ChartDir)
	if err != nil {
		return nil, err
	}
	vals, err := (&values.Options{ValueFiles: o.ValueFiles, Values: o.Values, StringValues: o.StringValues}).MergeValues(getter.All(cli.New()))
	if err != nil {
		return nil, fmt.Errorf("reading values: %w", err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = defaultString(o.ReleaseName, "kmm")
	install.Namespace = defaultString(o.Namespace, "default")
	install.APIVersions = o.APIVersions
	install.PostRenderer = o.PostRenderer
	kv, err := chartutil.ParseKubeVersion(defaultString(o.KubeVersion, DefaultKubeVersion()))
	if err != nil {
		return nil, fmt.Errorf("kube version %q: %w", o.KubeVersion, err)
	}
	install.KubeVersion = kv
	rel, err := install.RunWithContext(ctx, chrt, vals)
	if err != nil {
		return nil, fmt.Errorf("rendering chart %s: %w", chrt.Name(), err)
	}
	out := &Rendered{Manifests: rel.Manifest}
	for _, h := range rel.Hooks {
		out.Hooks = append(out.Hooks, hookManifest(h))
	}
	return out, nil
}

// generated matches what the chart generates anew on every render when it makes the webhook's
// certificate itself (certManager.enabled false): keys, certificates, their expiry and the
// checksum of them. Two renders differ there whoever renders; the cases with cert-manager
// compare every byte.
var generated = regexp.MustCompile(`(?m)^(\s*(?:ca\.crt|ca\.key|tls\.crt|tls\.key|caBundle|checksum/tls|kmm\.dev/webhook-tls-(?:ca-)?not-after):\s*).+$`)

func normalize(s string) string { return generated.ReplaceAllString(s, "${1}<generated>") }

// valuesServer serves file at /values.yaml, and 404 elsewhere, as a remote values file.
func valuesServer(t *testing.T, file string) string {
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/values.yaml" {
			http.NotFound(w, r)
			return
		}
		assert.Regexp(t, `^Helm/3\.`, r.UserAgent())
		_, _ = w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// failingPostRenderer fails as a post-renderer whose command exits non-zero does.
type failingPostRenderer struct{}

func (failingPostRenderer) Run(*bytes.Buffer) (*bytes.Buffer, error) {
	return nil, errors.New("post-renderer exited 3")
}

// emptyPostRenderer returns nothing, and no error.
type emptyPostRenderer struct{}

func (emptyPostRenderer) Run(*bytes.Buffer) (*bytes.Buffer, error) { return nil, nil }

// TestRenderMatchesHelmInstall is the proof that Render, which drives Helm's rendering packages
// itself, renders what action.Install's dry run renders: the same manifests in the same order
// under the same "# Source:" lines, the same hooks, and the same post-rendered output.
func TestRenderMatchesHelmInstall(t *testing.T) {
	example := func(name string) string { return filepath.Join("..", "..", "examples", name, "values.yaml") }
	certManager := []string{"certManager.enabled=true"}
	served := valuesServer(t, example("ubuntu"))
	kmmRender := func(name string) *postrender.Renderer {
		return postrender.New(postrender.Options{Nodes: postrender.FileNodes(filepath.Join("..", "..", "examples", name, "nodes.yaml"))})
	}
	tests := []struct {
		name string
		o    Options
		post *postrender.Renderer
		// empty: the manifests may be empty (a post-renderer that returns nothing).
		empty bool
		// exact: no generated certificate, so every byte must match as it is.
		exact bool
	}{
		{name: "chart defaults", o: Options{ChartDir: chartDir}},
		{name: "embedded chart", o: Options{ValueFiles: []string{example("eks")}, Values: certManager}, exact: true},
		{name: "eks", o: Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{example("eks")}}},
		{name: "gke", o: Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{example("gke")}}},
		{name: "ubuntu", o: Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{example("ubuntu")}}},
		{name: "eks with cert-manager", o: Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{example("eks")}, Values: certManager}, exact: true},
		{name: "gke with cert-manager", o: Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{example("gke")}, Values: certManager}, exact: true},
		{name: "ubuntu with cert-manager", o: Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{example("ubuntu")}, Values: certManager}, exact: true},
		{name: "values file over http", o: Options{ChartDir: chartDir, ValueFiles: []string{served + "/values.yaml"}, Values: certManager}, exact: true},
		{name: "two values files, later wins", o: Options{ChartDir: chartDir, ValueFiles: []string{example("eks"), example("gke")}, Values: certManager}, exact: true},
		{
			name: "--set",
			o: Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{example("gke")},
				Values: []string{"certManager.enabled=true", "drift.enabled=true", "drift.image.repository=registry.example.com/kmm-render", "drift.image.tag=v1", "controller.enabled=false"}},
			exact: true,
		},
		{
			name: "--set-string over --set",
			o: Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{example("ubuntu")},
				Values:       []string{"certManager.enabled=true", "modules[0].selector.pool=7"},
				StringValues: []string{"modules[0].selector.pool=007", "drift.image.tag=1.0"}},
			exact: true,
		},
		{
			name: "release name, api versions and kube version",
			o: Options{ChartDir: chartDir, ReleaseName: "kmm-x", Namespace: "ns1", ValueFiles: []string{example("eks")}, Values: certManager,
				APIVersions: []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"}, KubeVersion: "1.30.4"},
			exact: true,
		},
		{name: "post-renderer", o: Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{example("gke")}, Values: certManager}, post: kmmRender("gke"), exact: true},
		{name: "post-renderer that returns nothing", o: Options{ChartDir: chartDir, Values: certManager, PostRenderer: emptyPostRenderer{}}, empty: true, exact: true},
		{name: "post-renderer, generated certificate", o: Options{ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{example("eks")}}, post: kmmRender("eks")},
	}
	hooks := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.post != nil {
				tt.o.PostRenderer = postrender.HelmV3(ctx, tt.post)
			}
			want, err := helmInstall(ctx, tt.o)
			require.NoError(t, err)
			got, err := Render(ctx, tt.o)
			require.NoError(t, err)
			if !tt.empty {
				require.NotEmpty(t, got.Manifests)
			}
			hooks += len(got.Hooks)
			if tt.exact {
				assert.Equal(t, want.Manifests, got.Manifests)
				assert.Equal(t, want.Hooks, got.Hooks)
				return
			}
			assert.Equal(t, normalize(want.Manifests), normalize(got.Manifests))
			require.Len(t, got.Hooks, len(want.Hooks))
			for i := range want.Hooks {
				assert.Equal(t, normalize(want.Hooks[i]), normalize(got.Hooks[i]))
			}
		})
	}
	assert.NotZero(t, hooks, "some case renders hooks")
}

// Render fails where action.Install fails, with the same message.
func TestRenderErrorsMatchHelmInstall(t *testing.T) {
	served := valuesServer(t, "../../examples/eks/values.yaml")
	tests := []struct {
		name string
		o    Options
		want string // part of the message
	}{
		{name: "missing values file", o: Options{ChartDir: chartDir, ValueFiles: []string{"nope.yaml"}}, want: "reading values: open nope.yaml"},
		{name: "values file not served", o: Options{ChartDir: chartDir, ValueFiles: []string{served + "/nope.yaml"}}, want: "failed to fetch " + served + "/nope.yaml : 404 Not Found"},
		{name: "values file is no YAML map", o: Options{ChartDir: chartDir, ValueFiles: []string{"../../charts/kmm/README.md"}}, want: "failed to parse ../../charts/kmm/README.md"},
		{name: "bad --set", o: Options{ChartDir: chartDir, Values: []string{"modules[x].name=a"}}, want: "failed parsing --set data"},
		{name: "bad --set-string", o: Options{ChartDir: chartDir, StringValues: []string{"a[-1]=b"}}, want: "failed parsing --set-string data"},
		{name: "schema", o: Options{ChartDir: chartDir, Values: []string{"modules[0].name=x", "modules[0].selectr.a=b"}}, want: "values don't meet the specifications of the schema(s)"},
		{name: "template's required", o: Options{ChartDir: chartDir, Values: []string{"controller.serviceAccount.create=false"}}, want: "controller.serviceAccount.name is required when controller.serviceAccount.create is false"},
		{name: "kube version the chart refuses", o: Options{ChartDir: chartDir, KubeVersion: "v1.20.0"}, want: "chart requires kubeVersion: >=1.26.0-0 which is incompatible with Kubernetes v1.20.0"},
		{name: "release name", o: Options{ChartDir: chartDir, ReleaseName: "Not_A_Name"}, want: `release name "Not_A_Name"`},
		{name: "post-renderer", o: Options{ChartDir: chartDir, PostRenderer: failingPostRenderer{}}, want: "error while running post render on files: post-renderer exited 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, want := helmInstall(context.Background(), tt.o)
			require.Error(t, want)
			_, got := Render(context.Background(), tt.o)
			require.Error(t, got)
			assert.Equal(t, want.Error(), got.Error())
			assert.Contains(t, got.Error(), tt.want)
			if strings.HasPrefix(tt.name, "post-renderer") {
				assert.ErrorContains(t, got, "rendering chart kmm: ")
			}
		})
	}
}
