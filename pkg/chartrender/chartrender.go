// Package chartrender renders charts/kmm as `helm template` does, through Helm's own Go packages
// (helm.sh/helm/v3): the chart's defaults, every values file, --set and --set-string, and the
// values schema.
//
// It drives Helm's rendering packages (chart/loader, chartutil, engine, releaseutil, strvals)
// the way action.Install does for `helm template` (a client-only dry run), rather than calling
// action.Install itself: package action links kubectl, cli-runtime, the registry clients and the
// SQL storage driver, whose package initialisation alone cost kmm-render tens of milliseconds
// and megabytes on every start, post-render included (docs/benchmarks.md). The test
// TestRenderMatchesHelmInstall holds the two renders byte for byte equal.
package chartrender

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"runtime/debug"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	helmpostrender "helm.sh/helm/v3/pkg/postrender"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/yaml"

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
	vals, err := mergeValues(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("reading values: %w", err)
	}
	kv, err := chartutil.ParseKubeVersion(defaultString(o.KubeVersion, DefaultKubeVersion()))
	if err != nil {
		return nil, fmt.Errorf("kube version %q: %w", o.KubeVersion, err)
	}
	out, err := install(chrt, vals, kv, o)
	if err != nil {
		return nil, fmt.Errorf("rendering chart %s: %w", chrt.Name(), err)
	}
	return out, nil
}

// install is action.Install.RunWithContext (Helm v3.22) with DryRun, ClientOnly and Replace
// set, as `helm template` runs it, cut down to the steps that shape its output or its errors,
// in its order: the release name's check, the chart's dependencies, the client-only
// capabilities, the values (coalesced and checked against the schema), then renderResources.
// The steps it leaves out do nothing on a client-only dry run: the storage (an empty memory
// driver), the Kubernetes client (a printing fake, whose Build returns no resources) and CRD
// installation (skipped when client only; `helm template` includes no CRDs unless
// --include-crds, which kmm does not pass).
func install(chrt *chart.Chart, vals map[string]any, kv *chartutil.KubeVersion, o Options) (*Rendered, error) {
	name := defaultString(o.ReleaseName, "kmm")
	if err := chartutil.ValidateReleaseName(name); err != nil {
		return nil, fmt.Errorf("release name %q: %w", name, err)
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	// Install appends to the copy, which shares DefaultVersionSet's array; a new slice keeps
	// the package default untouched between renders, with the same versions in the same order.
	caps.APIVersions = slices.Concat(caps.APIVersions, chartutil.VersionSet(o.APIVersions))
	valuesToRender, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, vals, chartutil.ReleaseOptions{
		Name:      name,
		Namespace: defaultString(o.Namespace, "default"),
		Revision:  1,
		IsInstall: true,
	}, caps, false)
	if err != nil {
		return nil, err
	}
	hooks, manifests, err := renderResources(chrt, valuesToRender, caps, o.PostRenderer)
	if err != nil {
		return nil, err
	}
	out := &Rendered{Manifests: manifests}
	for _, h := range hooks {
		out.Hooks = append(out.Hooks, hookManifest(h))
	}
	return out, nil
}

// notesFileSuffix is action's: NOTES.txt is rendered, then left out of the manifests.
const notesFileSuffix = "NOTES.txt"

// renderResources is action.Configuration.renderResources for `helm template` without
// --output-dir, --include-crds or --hide-secret, and without talking to a cluster: the chart's
// kubeVersion checked, the templates rendered, NOTES.txt dropped (its text is no manifest), the
// rest split into hooks and manifests in InstallOrder, the manifests concatenated each under
// its "# Source:" line, and the whole handed to the post-renderer, whose output is taken as it
// is (Install's Kubernetes client, a fake on a client-only run, builds nothing from it).
func renderResources(chrt *chart.Chart, values chartutil.Values, caps *chartutil.Capabilities, pr helmpostrender.PostRenderer) ([]*release.Hook, string, error) {
	if chrt.Metadata.KubeVersion != "" {
		if !chartutil.IsCompatibleRange(chrt.Metadata.KubeVersion, caps.KubeVersion.String()) {
			return nil, "", fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", chrt.Metadata.KubeVersion, caps.KubeVersion.String())
		}
	}
	files, err := engine.Render(chrt, values)
	if err != nil {
		return nil, "", err
	}
	for k := range files {
		if strings.HasSuffix(k, notesFileSuffix) {
			delete(files, k)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, "", err
	}
	b := bytes.NewBuffer(nil)
	for _, m := range manifests {
		fmt.Fprintf(b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	if pr != nil {
		b, err = pr.Run(b)
		if err != nil {
			return nil, "", fmt.Errorf("error while running post render on files: %w", err)
		}
	}
	if b == nil {
		// A post-renderer that returns no buffer and no error: Install keeps no manifest.
		return hooks, "", nil
	}
	return hooks, b.String(), nil
}

func hookManifest(h *release.Hook) string {
	return "---\n# Source: " + h.Path + "\n" + h.Manifest + "\n"
}

// mergeValues is Helm's values.Options.MergeValues for -f, --set and --set-string: each values
// file read and merged over the ones before it (nested maps merged, anything else replaced),
// then every --set, then every --set-string parsed into the result.
func mergeValues(ctx context.Context, o Options) (map[string]any, error) {
	base := map[string]any{}
	for _, filePath := range o.ValueFiles {
		current := map[string]any{}
		data, err := readValuesFile(ctx, filePath)
		if err != nil {
			return nil, err
		}
		if err := yaml.Unmarshal(data, &current); err != nil {
			return nil, fmt.Errorf("failed to parse %s: %w", filePath, err)
		}
		base = mergeMaps(base, current)
	}
	for _, value := range o.Values {
		if err := strvals.ParseInto(value, base); err != nil {
			return nil, fmt.Errorf("failed parsing --set data: %w", err)
		}
	}
	for _, value := range o.StringValues {
		if err := strvals.ParseIntoString(value, base); err != nil {
			return nil, fmt.Errorf("failed parsing --set-string data: %w", err)
		}
	}
	return base, nil
}

// mergeMaps is values.Options' merge: b over a, maps merged key by key.
func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v, ok := v.(map[string]any); ok {
			if bv, ok := out[k]; ok {
				if bv, ok := bv.(map[string]any); ok {
					out[k] = mergeMaps(bv, v)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

// readValuesFile reads a values file as Helm's values.Options does with the getters `helm`
// itself has: "-" is standard input, an http or https URL is fetched (Helm's HTTP getter,
// without repository credentials, which values files never get), and anything else, an unknown
// URL scheme included, is a local path. Helm's oci:// getter pulls charts, not values files, and
// getter plugins are not loaded: both are refused with an error that says so.
func readValuesFile(ctx context.Context, filePath string) ([]byte, error) {
	if strings.TrimSpace(filePath) == "-" {
		return io.ReadAll(os.Stdin)
	}
	u, err := url.Parse(filePath)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "https":
		return fetch(ctx, filePath)
	case "oci":
		return nil, fmt.Errorf("values file %s: oci:// values files are not supported: pull the file and pass its path", filePath)
	}
	return os.ReadFile(filePath)
}

// fetch is Helm's HTTP getter's GET: Helm's User-Agent, proxies from the environment, no
// transparent compression, and anything but 200 an error.
func fetch(ctx context.Context, href string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, href, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "Helm/"+strings.TrimPrefix(chartutil.DefaultCapabilities.HelmVersion.Version, "v"))
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, Proxy: http.ProxyFromEnvironment}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failed to fetch %s : %s", href, resp.Status)
	}
	return io.ReadAll(resp.Body)
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
