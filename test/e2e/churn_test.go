package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/nodes"
)

// TestChurn: nothing is lost or left behind on change. On examples/gke, through a series of
// upgrades with kernel churn (a node joins with a new kernel, one leaves, one moves to another
// kernel), a module removed from the values, a kernel mapping changed, two upgrades that fail
// halfway (values the schema refuses; values kmm-render refuses) and a rollback. After every
// step: the per-kernel objects in the cluster are exactly the release's (none orphaned, none
// missing), and no loader pod runs on a node of another kernel than its DaemonSet's. After the
// steps that succeed, every loader is where the values and nodes say; after the failed ones, the
// previous revision and its pods are untouched.
func TestChurn(t *testing.T) {
	for _, version := range []int{3, 4} {
		t.Run(fmt.Sprintf("helm%d", version), func(t *testing.T) { churn(t, version) })
	}
}

func churn(t *testing.T, version int) {
	ex := loadExample(t, "gke")
	ctx := testContext(t, 5*time.Minute)
	useExample(t, ctx, ex)
	cleanupInstall(t)
	upgrade := func(values string) (string, error) {
		args := append([]string{"upgrade", release, chartDir, "-n", releaseNamespace, "-f", values, "--set", "webhook.enabled=false",
			"--wait", "--timeout", "2m"}, helmArgs(version)...)
		stdout, stderr, err := kc.Helm(ctx, version, args...)
		return stdout + stderr, err
	}
	install := append([]string{"install", release, chartDir, "-n", releaseNamespace, "--create-namespace", "-f", ex.values,
		"--set", "webhook.enabled=false", "--wait", "--timeout", "2m"}, helmArgs(version)...)
	helm(t, ctx, version, install...)
	live := ex.nodes
	step := func(name string, values string) {
		t.Helper()
		ex.values = values
		ex.loadModules(t)
		waitPlacement(t, ctx, ex.helmModules(), expected(ex.helmModules(), live))
		checkReleaseObjects(t, ctx, version, name)
		checkLoaderKernels(t, ctx, name)
	}
	step("install", ex.values)
	base := ex.values

	// Kernel churn: a node joins with a new kernel, a COS node leaves, an Ubuntu node moves on.
	var ubuntu []nodes.Node
	for _, n := range live {
		if n.Labels["cloud.google.com/gke-nodepool"] == "ubuntu-pool" {
			ubuntu = append(ubuntu, n)
		}
	}
	sort.Slice(ubuntu, func(i, j int) bool { return ubuntu[i].Name < ubuntu[j].Name })
	if len(ubuntu) < 2 {
		t.Fatalf("examples/gke has %d Ubuntu nodes; the test moves one and clones one", len(ubuntu))
	}
	proto := ex.objects[slices.IndexFunc(ex.objects, func(o corev1.Node) bool { return o.Name == ubuntu[0].Name })]
	joined := cloneNode(&proto, "kmm-churn-joined", "5.15.0-1052-gke")
	if err := kc.AddNode(ctx, joined); err != nil {
		t.Fatal(err)
	}
	leaving := ""
	for _, n := range live {
		if n.Labels["cloud.google.com/gke-nodepool"] == "cos-pool" {
			leaving = n.Name
			break
		}
	}
	if err := kc.Client.CoreV1().Nodes().Delete(ctx, leaving, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	moved := ubuntu[1].Name
	if err := kc.SetKernel(ctx, moved, "5.15.0-1049-gke", nil); err != nil {
		t.Fatal(err)
	}
	live = liveNodes(t, ctx)
	t.Logf("node %s joined with 5.15.0-1052-gke, %s left, %s moved to 5.15.0-1049-gke", joined.Name, leaving, moved)
	if out, err := upgrade(base); err != nil {
		t.Fatalf("upgrade after kernel churn: %v\n%s", err, out)
	}
	step("kernel churn", base)

	// A module removed from the values: its loaders go, nothing else moves.
	without := editValues(t, base, func(v map[string]any) {
		v["modules"] = slices.DeleteFunc(v["modules"].([]any), func(m any) bool { return m.(map[string]any)["name"] == "kmm-kmod-node" })
	})
	if out, err := upgrade(without); err != nil {
		t.Fatalf("upgrade without kmm-kmod-node: %v\n%s", err, out)
	}
	step("module removed", without)

	// A kernel mapping changed: kmm-ci-a-ubuntu now maps the 1049 kernel only.
	narrowed := editValues(t, without, func(v map[string]any) {
		for _, m := range v["modules"].([]any) {
			if mod := m.(map[string]any); mod["name"] == "kmm-ci-a-ubuntu" {
				c := mod["moduleLoader"].(map[string]any)["container"].(map[string]any)
				c["kernelMappings"] = []any{map[string]any{"literal": "5.15.0-1049-gke"}}
			}
		}
	})
	if out, err := upgrade(narrowed); err != nil {
		t.Fatalf("upgrade with a narrower mapping: %v\n%s", err, out)
	}
	step("mapping changed", narrowed)
	good := narrowed

	// Upgrades that fail halfway leave the release and its pods as they were.
	refusedBySchema := editValues(t, good, func(v map[string]any) { v["platformLabels"] = "yes" })
	refusedByRender := editValues(t, good, func(v map[string]any) {
		for _, m := range v["modules"].([]any) {
			if mod := m.(map[string]any); mod["name"] == "kmm-ci-a-ubuntu" {
				c := mod["moduleLoader"].(map[string]any)["container"].(map[string]any)
				c["kernelMappings"] = []any{map[string]any{"regexp": `^5\.15\.(0`}}
			}
		}
	})
	for _, bad := range []struct{ name, values, says string }{
		{"values the schema refuses", refusedBySchema, "platformLabels"},
		{"values kmm-render refuses", refusedByRender, "kmm-ci-a-ubuntu"},
	} {
		revision := releaseRevision(t, ctx, version)
		pods, err := loaderPods(ctx, ex.helmModules())
		if err != nil {
			t.Fatal(err)
		}
		out, err := upgrade(bad.values)
		if err == nil {
			t.Fatalf("upgrade with %s succeeded", bad.name)
		}
		if version == 3 && !strings.Contains(out, bad.says) {
			t.Errorf("the failed upgrade (%s) does not name %q:\n%s", bad.name, bad.says, out)
		}
		if got := releaseRevision(t, ctx, version); got != revision {
			t.Errorf("%s: the release moved from revision %d to %d", bad.name, revision, got)
		}
		after, err := loaderPods(ctx, ex.helmModules())
		if err != nil {
			t.Fatal(err)
		}
		if !equalPods(pods, after) {
			t.Errorf("%s: loader pods changed:\nbefore %v\nafter  %v", bad.name, pods, after)
		}
		step(bad.name, good)
	}

	// Rollback to the install: its objects come back as they were rendered then (for kernels
	// some nodes no longer run: harmless, they select no node), none of the later ones stay.
	helm(t, ctx, version, "rollback", release, "1", "-n", releaseNamespace, "--wait", "--timeout", "2m")
	checkReleaseObjects(t, ctx, version, "rollback")
	checkLoaderKernels(t, ctx, "rollback")
}

// liveNodes lists the cluster's nodes as kmm sees them.
func liveNodes(t *testing.T, ctx context.Context) []nodes.Node {
	t.Helper()
	l, err := kc.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]nodes.Node, 0, len(l.Items))
	for i := range l.Items {
		out = append(out, nodes.FromCoreV1(&l.Items[i]))
	}
	return out
}

func equalPods(a, b map[types.UID]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// releaseRevision is the release's current revision, as helm status says.
func releaseRevision(t *testing.T, ctx context.Context, version int) int {
	t.Helper()
	out := helm(t, ctx, version, "status", release, "-n", releaseNamespace, "-o", "json")
	var st struct {
		Version int `json:"version"`
	}
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096).Decode(&st); err != nil {
		t.Fatalf("helm status: %v\n%s", err, out)
	}
	return st.Version
}

// checkReleaseObjects compares the per-kernel objects kmm-render generated (loader and device
// plugin DaemonSets, build Jobs) in the cluster with the release's manifest: none orphaned, none
// missing. Objects being deleted are waited for.
func checkReleaseObjects(t *testing.T, ctx context.Context, version int, step string) {
	t.Helper()
	manifest := helm(t, ctx, version, "get", "manifest", release, "-n", releaseNamespace)
	want := map[string]bool{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string            `json:"name"`
				Namespace string            `json:"namespace"`
				Labels    map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := dec.Decode(&obj); err != nil {
			break
		}
		if obj.Metadata.Labels[contract.LabelRole] != "" && (obj.Kind == "DaemonSet" || obj.Kind == "Job") {
			want[obj.Kind+" "+obj.Metadata.Namespace+"/"+obj.Metadata.Name] = true
		}
	}
	if len(want) == 0 {
		t.Fatalf("%s: the release manifest holds no per-kernel object", step)
	}
	var got map[string]bool
	err := poll(ctx, pollTimeout, func() (bool, error) {
		got = map[string]bool{}
		dss, err := kc.Client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{LabelSelector: contract.LabelRole})
		if err != nil {
			return false, err
		}
		for _, d := range dss.Items {
			got["DaemonSet "+d.Namespace+"/"+d.Name] = true
		}
		jobs, err := kc.Client.BatchV1().Jobs("").List(ctx, metav1.ListOptions{LabelSelector: contract.LabelRole})
		if err != nil {
			return false, err
		}
		for _, j := range jobs.Items {
			got["Job "+j.Namespace+"/"+j.Name] = true
		}
		return mapsEqual(got, want), nil
	})
	if err != nil {
		var orphans, missing []string
		for k := range got {
			if !want[k] {
				orphans = append(orphans, k)
			}
		}
		for k := range want {
			if !got[k] {
				missing = append(missing, k)
			}
		}
		sort.Strings(orphans)
		sort.Strings(missing)
		t.Fatalf("%s: the cluster's per-kernel objects are not the release's (%v):\n  orphaned: %v\n  missing: %v", step, err, orphans, missing)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// checkLoaderKernels: every loader pod runs on a node whose kernel is its DaemonSet's.
func checkLoaderKernels(t *testing.T, ctx context.Context, step string) {
	t.Helper()
	ns := map[string]string{}
	for _, n := range liveNodes(t, ctx) {
		ns[n.Name] = n.Kernel
	}
	dss, err := kc.Client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{LabelSelector: contract.LabelRole + "=" + contract.RoleModuleLoader})
	if err != nil {
		t.Fatal(err)
	}
	kernelOf := map[types.UID]string{}
	for _, d := range dss.Items {
		kernelOf[d.UID] = d.Annotations[contract.AnnotationKernel]
	}
	pods, err := kc.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: contract.LabelRole + "=" + contract.RoleModuleLoader})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
			continue
		}
		for _, o := range p.OwnerReferences {
			if k, ok := kernelOf[o.UID]; ok && k != ns[p.Spec.NodeName] {
				t.Errorf("%s: loader pod %s/%s for kernel %s runs on node %s, whose kernel is %s", step, p.Namespace, p.Name, k, p.Spec.NodeName, ns[p.Spec.NodeName])
			}
		}
	}
}
