package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/render"
)

const (
	release          = "kmm"
	releaseNamespace = "kmm-system"
	instanceLabel    = "app.kubernetes.io/instance=" + release
	// loaderLabel selects the release's loader DaemonSets and their ServiceAccounts (the chart
	// also renders the KMM controller and webhook).
	loaderLabel = instanceLabel + ",app.kubernetes.io/component=module-loader"
	pollTimeout = 90 * time.Second
)

// example is one examples/<name> folder: its values, its nodes and its modules.
type example struct {
	name      string
	values    string // values file the chart is installed with
	nodesFile string
	modules   []*render.Module
	nodes     []nodes.Node  // what the expectation is computed from
	objects   []corev1.Node // full Node objects of the snapshot
}

func loadExample(t *testing.T, name string) *example {
	t.Helper()
	dir := filepath.Join(repo, "examples", name)
	ex := &example{name: name, values: filepath.Join(dir, "values.yaml"), nodesFile: filepath.Join(dir, "nodes.yaml")}
	ex.loadModules(t)
	var err error
	if ex.nodes, err = nodes.LoadFile(ex.nodesFile); err != nil {
		t.Fatal(err)
	}
	if ex.objects, err = nodes.LoadObjects(ex.nodesFile); err != nil {
		t.Fatal(err)
	}
	return ex
}

func (ex *example) loadModules(t *testing.T) {
	t.Helper()
	rendered, err := chartrender.Render(context.Background(), chartrender.Options{ChartDir: chartDir, Namespace: releaseNamespace, ValueFiles: []string{ex.values}})
	if err != nil {
		t.Fatal(err)
	}
	if ex.modules, err = rendered.Modules(); err != nil {
		t.Fatal(err)
	}
}

// namespaces the example's modules live in (the chart does not create them).
func (ex *example) namespaces() []string {
	var out []string
	for _, m := range ex.modules {
		if !slices.Contains(out, m.Namespace) {
			out = append(out, m.Namespace)
		}
	}
	return out
}

// loaderNamespaces are the namespaces of the helm-managed modules (each gets a loader
// ServiceAccount).
func (ex *example) loaderNamespaces() []string {
	var out []string
	for _, m := range ex.helmModules() {
		if !slices.Contains(out, m.Namespace) {
			out = append(out, m.Namespace)
		}
	}
	sort.Strings(out)
	return out
}

// helmModules are the modules kmm-render expands (not those left to the KMM operator).
func (ex *example) helmModules() []*render.Module {
	var out []*render.Module
	for _, m := range ex.modules {
		if !m.Operator() {
			out = append(out, m)
		}
	}
	return out
}

// operatorModules are the `via: operator` modules: the chart renders a KMM Module for each.
func (ex *example) operatorModules() []*render.Module {
	var out []*render.Module
	for _, m := range ex.modules {
		if m.Operator() {
			out = append(out, m)
		}
	}
	return out
}

// useExample gives the cluster exactly the example's nodes, with no kmm release and no loader
// left from an earlier test, and creates the modules' namespaces.
func useExample(t *testing.T, ctx context.Context, ex *example) {
	t.Helper()
	cleanupRelease(t, ctx)
	if err := kc.ReplaceNodes(ctx, ex.nodesFile); err != nil {
		t.Fatal(err)
	}
	for _, ns := range ex.namespaces() {
		if err := kc.EnsureNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
}

// cleanupRelease removes any kmm release and whatever it left, whichever Helm made it.
// cleanupInstall registers the cleanup of a test that installs the chart: the release and what
// it left, then the KMM CRDs, which the chart keeps on uninstall.
func cleanupInstall(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		cleanupRelease(t, context.Background())
		deleteCRDs(t, context.Background(), mustDynamic(t))
	})
}

func cleanupRelease(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, v := range []int{4, 3} {
		_, _, _ = kc.Helm(ctx, v, "uninstall", release, "-n", releaseNamespace, "--ignore-not-found", "--wait", "--timeout", "60s")
	}
	cs := kc.Client
	dss, err := cs.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{LabelSelector: instanceLabel})
	if err != nil {
		t.Fatal(err)
	}
	for _, ds := range dss.Items {
		_ = cs.AppsV1().DaemonSets(ds.Namespace).Delete(ctx, ds.Name, metav1.DeleteOptions{})
	}
	sas, err := cs.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{LabelSelector: instanceLabel})
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range sas.Items {
		_ = cs.CoreV1().ServiceAccounts(sa.Namespace).Delete(ctx, sa.Name, metav1.DeleteOptions{})
	}
	_ = cs.CoreV1().Secrets(releaseNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "owner=helm,name=" + release})
}

// placement is which node runs which module's loader for which kernel.
type placement map[string]map[string]string // module ID -> node -> kernel

// expected computes, from nodes and values alone, where each module's loaders must run: on
// every node that its selector picks, whose taints it tolerates, that carries the kernel label,
// whose kernel a mapping matches, and that is no COS CPU node (unless the module allows it).
func expected(modules []*render.Module, ns []nodes.Node) placement {
	out := placement{}
	for _, m := range modules {
		want := map[string]string{}
		for _, n := range ns {
			if n.Kernel == "" || !render.Selects(m.Selector, m.Tolerations, n) {
				continue
			}
			if _, ok := n.Labels[render.DefaultKernelLabel]; !ok {
				continue
			}
			if m.Mappings.Match(n.Kernel) < 0 {
				continue
			}
			// COS CPU and TPU images (no accelerator label) refuse out-of-tree modules
			// (LoadPin): no loader there unless the module opts in.
			if strings.HasPrefix(n.OSImage, "Container-Optimized OS") && n.Labels["cloud.google.com/gke-accelerator"] == "" && !m.AllowCOS {
				continue
			}
			want[n.Name] = n.Kernel
		}
		out[m.ID()] = want
	}
	return out
}

// kernels lists the distinct kernels of a module's placement.
func kernelsOf(p map[string]string) []string {
	var out []string
	for _, k := range p {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// observed is what the cluster runs for one module.
type observed struct {
	dsKernel map[string]string // DaemonSet name -> kernel annotation
	problems []string
	pods     map[string]string // node -> kernel of the DaemonSet that owns its pod
}

// loaderSelector selects a module's loader DaemonSets and pods (not its build Jobs or device
// plugin).
func loaderSelector(m *render.Module) string {
	return contract.LabelModuleName + "=" + m.Name + "," + contract.LabelRole + "=" + contract.RoleModuleLoader
}

func observe(ctx context.Context, m *render.Module) (*observed, error) {
	sel := loaderSelector(m)
	o := &observed{dsKernel: map[string]string{}, pods: map[string]string{}}
	dss, err := kc.Client.AppsV1().DaemonSets(m.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	for _, ds := range dss.Items {
		if ds.DeletionTimestamp != nil {
			o.problems = append(o.problems, fmt.Sprintf("DaemonSet %s is being deleted", ds.Name))
			continue
		}
		k := ds.Annotations[contract.AnnotationKernel]
		if k == "" {
			o.problems = append(o.problems, fmt.Sprintf("DaemonSet %s has no %s annotation (not expanded by kmm-render?)", ds.Name, contract.AnnotationKernel))
		}
		o.dsKernel[ds.Name] = k
	}
	pods, err := kc.Client.CoreV1().Pods(m.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			o.problems = append(o.problems, fmt.Sprintf("pod %s on %s is terminating", p.Name, p.Spec.NodeName))
			continue
		}
		if p.Status.Phase != corev1.PodRunning {
			o.problems = append(o.problems, fmt.Sprintf("pod %s on %q is %s", p.Name, p.Spec.NodeName, p.Status.Phase))
			continue
		}
		owner := ""
		for _, ref := range p.OwnerReferences {
			if ref.Kind == "DaemonSet" {
				owner = ref.Name
			}
		}
		if _, dup := o.pods[p.Spec.NodeName]; dup {
			o.problems = append(o.problems, fmt.Sprintf("node %s runs more than one loader of the module", p.Spec.NodeName))
		}
		o.pods[p.Spec.NodeName] = o.dsKernel[owner]
	}
	return o, nil
}

// diff explains how an observation differs from a module's expected placement; "" if it does not.
func (o *observed) diff(want map[string]string) string {
	var lines []string
	lines = append(lines, o.problems...)
	gotKernels := map[string]int{}
	for _, k := range o.dsKernel {
		gotKernels[k]++
	}
	for _, k := range kernelsOf(want) {
		if gotKernels[k] != 1 {
			lines = append(lines, fmt.Sprintf("kernel %s: %d DaemonSets, want 1", k, gotKernels[k]))
		}
	}
	for k := range gotKernels {
		if !slices.Contains(kernelsOf(want), k) {
			lines = append(lines, fmt.Sprintf("unexpected DaemonSet for kernel %s (no selected node runs it)", k))
		}
	}
	for n, k := range want {
		got, ok := o.pods[n]
		switch {
		case !ok:
			lines = append(lines, fmt.Sprintf("node %s (kernel %s): no Running loader", n, k))
		case got != k:
			lines = append(lines, fmt.Sprintf("node %s (kernel %s): loader of kernel %q", n, k, got))
		}
	}
	for n := range o.pods {
		if _, ok := want[n]; !ok {
			lines = append(lines, fmt.Sprintf("node %s: unexpected loader (kernel %s)", n, o.pods[n]))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// waitPlacement polls until every module's loaders run exactly where want says.
func waitPlacement(t *testing.T, ctx context.Context, modules []*render.Module, want placement) {
	t.Helper()
	var last string
	err := poll(ctx, pollTimeout, func() (bool, error) {
		var diffs []string
		for _, m := range modules {
			o, err := observe(ctx, m)
			if err != nil {
				return false, err
			}
			if d := o.diff(want[m.ID()]); d != "" {
				diffs = append(diffs, "module "+m.ID()+":\n  "+strings.ReplaceAll(d, "\n", "\n  "))
			}
		}
		last = strings.Join(diffs, "\n")
		return last == "", nil
	})
	if err != nil {
		t.Fatalf("loaders are not where they belong: %v\n%s", err, last)
	}
	total := 0
	for _, m := range modules {
		total += len(want[m.ID()])
	}
	t.Logf("%d loader pod(s) Running exactly where expected", total)
}

func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		if err != nil {
			lastErr = err // retried: the API server may be busy
			return false, nil
		}
		return ok, nil
	})
	if err != nil && lastErr != nil {
		return fmt.Errorf("timed out after %s (last error: %v)", timeout, lastErr)
	}
	if err != nil {
		return fmt.Errorf("timed out after %s", timeout)
	}
	return nil
}

// releaseObjects lists the release's DaemonSets ("ns/name") and ServiceAccounts that match a
// label selector (instanceLabel: all of them; loaderLabel: the loaders').
func releaseObjects(ctx context.Context, selector string) (dss, sas []string, err error) {
	dl, err := kc.Client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, nil, err
	}
	for _, d := range dl.Items {
		if d.DeletionTimestamp == nil {
			dss = append(dss, d.Namespace+"/"+d.Name)
		}
	}
	sl, err := kc.Client.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, nil, err
	}
	for _, s := range sl.Items {
		sas = append(sas, s.Namespace+"/"+s.Name)
	}
	sort.Strings(dss)
	sort.Strings(sas)
	return dss, sas, nil
}

// releaseSecrets lists Helm's release records of the kmm release.
func releaseSecrets(ctx context.Context) ([]string, error) {
	l, err := kc.Client.CoreV1().Secrets(releaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + release})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, s := range l.Items {
		out = append(out, s.Name)
	}
	return out, nil
}

// loaderPods lists the UIDs of every live loader pod of the modules.
func loaderPods(ctx context.Context, modules []*render.Module) (map[types.UID]string, error) {
	out := map[types.UID]string{}
	for _, m := range modules {
		l, err := kc.Client.CoreV1().Pods(m.Namespace).List(ctx, metav1.ListOptions{LabelSelector: loaderSelector(m)})
		if err != nil {
			return nil, err
		}
		for _, p := range l.Items {
			if p.DeletionTimestamp == nil {
				out[p.UID] = p.Namespace + "/" + p.Name + "@" + p.Spec.NodeName
			}
		}
	}
	return out, nil
}

// generations maps each loader DaemonSet and each Deployment of the release to its
// metadata.generation.
func generations(ctx context.Context) (map[string]int64, error) {
	l, err := kc.Client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{LabelSelector: loaderLabel})
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, d := range l.Items {
		out["DaemonSet "+d.Namespace+"/"+d.Name] = d.Generation
	}
	deps, err := kc.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: instanceLabel})
	if err != nil {
		return nil, err
	}
	for _, d := range deps.Items {
		out["Deployment "+d.Namespace+"/"+d.Name] = d.Generation
	}
	return out, nil
}

// daemonSetKernels maps each live loader DaemonSet of the release to its kernel annotation.
func daemonSetKernels(ctx context.Context) (map[string]string, error) {
	l, err := kc.Client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{LabelSelector: loaderLabel})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, d := range l.Items {
		if d.DeletionTimestamp == nil {
			out[d.Namespace+"/"+d.Name] = d.Annotations[contract.AnnotationKernel]
		}
	}
	return out, nil
}

func editValues(t *testing.T, values string, edit func(map[string]any)) string {
	t.Helper()
	data, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	edit(v)
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(out); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// withExtraLiterals writes a copy of a values file whose modules get extra literal kernel
// mappings (module name -> kernels), for examples whose mappings are all literal.
func withExtraLiterals(t *testing.T, values string, extra map[string][]string) string {
	t.Helper()
	return editValues(t, values, func(v map[string]any) {
		mods, _ := v["modules"].([]any)
		for _, mi := range mods {
			m := mi.(map[string]any)
			kernels := extra[m["name"].(string)]
			if len(kernels) == 0 {
				continue
			}
			c := m["moduleLoader"].(map[string]any)["container"].(map[string]any)
			maps, _ := c["kernelMappings"].([]any)
			for _, k := range kernels {
				maps = append(maps, map[string]any{"literal": k})
			}
			c["kernelMappings"] = maps
		}
	})
}
