// Package chartrender renders charts/kmm as `helm template` does, through Helm's own Go packages
// (helm.sh/helm/v3): the chart's defaults, every values file, --set and --set-string, and the
// values schema.
package chartrender

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"runtime/debug"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	helmpostrender "helm.sh/helm/v3/pkg/postrender"
	"helm.sh/helm/v3/pkg/release"
	"sigs.k8s.io/kustomize/kyaml/kio"

	"kmm.dev/kmm/charts"
	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/postrender"
	"kmm.dev/kmm/pkg/render"
)

// Options are `helm template`'s flags that kmm needs.
type Options struct {
	// ChartDir is the chart's folder. Empty: the chart embedded in this program
	// (charts.KMM).
	ChartDir string
	// ReleaseName and Namespace default to "kmm" and "default".
	ReleaseName string
	Namespace   string
	// ValueFiles, Values and StringValues are -f, --set and --set-string, in Helm's order.
	ValueFiles   []string
	Values       []string
	StringValues []string
	// APIVersions are --api-versions: what the cluster is taken to serve.
	APIVersions []string
	// KubeVersion is --kube-version; empty: DefaultKubeVersion.
	KubeVersion string
	// PostRenderer, when set, post-renders the manifests as --post-renderer does.
	PostRenderer helmpostrender.PostRenderer
}

// Rendered is what a render made.
type Rendered struct {
	// Manifests are the release's manifests: what Helm hands a post-renderer (or what it
	// returned), hooks excluded.
	Manifests string
	// Hooks are the hook manifests, each with its "# Source:" line.
	Hooks []string
}

// Render renders the chart with o.
func Render(ctx context.Context, o Options) (*Rendered, error) {
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

func hookManifest(h *release.Hook) string {
	return "---\n# Source: " + h.Path + "\n" + h.Manifest + "\n"
}

// load reads the chart from dir, or from the embedded copy.
func load(dir string) (*chart.Chart, error) {
	if dir != "" {
		c, err := loader.Load(dir)
		if err != nil {
			return nil, fmt.Errorf("loading chart %s: %w", dir, err)
		}
		return c, nil
	}
	var files []*loader.BufferedFile
	err := fs.WalkDir(charts.KMM, charts.KMMDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := charts.KMM.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, &loader.BufferedFile{Name: strings.TrimPrefix(p, charts.KMMDir+"/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the embedded chart: %w", err)
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("loading the embedded chart %s: %w", path.Join("charts", charts.KMMDir), err)
	}
	return c, nil
}

// DefaultKubeVersion is the Kubernetes version of the client libraries this program is built
// with (k8s.io/client-go v0.X.Y is Kubernetes v1.X.Y), as Helm 4 takes it from its build info.
// Helm 3's library default (v1.20) is older than the chart allows.
func DefaultKubeVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/client-go" && strings.HasPrefix(d.Version, "v0.") {
				return "v1." + strings.TrimPrefix(d.Version, "v0.")
			}
		}
	}
	return "v1.37.0"
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Modules returns the modules the chart declared: its module list (pkg/contract), decoded,
// validated against KMM's admission rules and compiled by kmm-render's own code, in the values'
// order.
func (r *Rendered) Modules() ([]*render.Module, error) {
	docs, err := kio.FromBytes([]byte(r.Manifests))
	if err != nil {
		return nil, fmt.Errorf("reading the rendered manifests: %w", err)
	}
	for _, d := range docs {
		if _, ok := d.GetAnnotations()[contract.AnnotationModules]; !ok {
			continue
		}
		ms, err := postrender.ModuleList(d)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", d.GetKind(), d.GetName(), err)
		}
		return ms, nil
	}
	return nil, fmt.Errorf("the rendered chart holds no module list (a ConfigMap annotated %s)", contract.AnnotationModules)
}
