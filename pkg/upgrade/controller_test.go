package upgrade

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/yaml"

	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/module"
)

// The label keys, spelled out (not built with the code under test).
const (
	ns          = "kmm-demo"
	stateKey    = "kmm.node.kubernetes.io/kmm-demo.gpu.upgrade-state"
	readyKey    = "kmm.node.kubernetes.io/kmm-demo.gpu.ready"
	versionKey  = "kmm.node.kubernetes.io/kmm-demo.gpu.version.ready"
	pausedKey   = "kmm.node.kubernetes.io/kmm-demo.gpu.device-plugin-paused"
	requestKey  = "kmm.node.kubernetes.io/kmm-demo.gpu.upgrade-requested"
	skipKey     = "kmm.node.kubernetes.io/kmm-demo.gpu.upgrade-skip"
	cordonedBy  = "upgrade.kmm.dev/cordoned-by"
	sinceKey    = "upgrade.kmm.dev/kmm-demo.gpu.since"
	versionAnno = "render.kmm.dev/module-version"
)

var t0 = time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)

// world is a fake cluster with one module, "kmm-demo/gpu", whose loader DaemonSets are per
// kernel; the test plays the DaemonSet controller and the kubelets.
type world struct {
	t       *testing.T
	client  *fake.Clientset
	now     time.Time
	c       *Controller
	evicted []string
}

func newWorld(t *testing.T, m ModuleConfig, objs ...runtime.Object) *world {
	w := &world{t: t, client: fake.NewClientset(objs...), now: t0}
	// Evictions delete the pod, as the API server's eviction subresource does without a PDB.
	w.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		w.evicted = append(w.evicted, ev.Namespace+"/"+ev.Name)
		return true, nil, w.client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), ev.Namespace, ev.Name)
	})
	c, err := New(Options{Client: w.client, Modules: []ModuleConfig{m}, Now: func() time.Time { return w.now }})
	require.NoError(t, err)
	w.c = c
	return w
}

func gpu(p module.UpgradePolicy) ModuleConfig {
	return ModuleConfig{Namespace: ns, Name: "gpu", DevicePlugin: true, Policy: p}
}

func node(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: labels}}
}

var modLabels = map[string]string{
	"kmm.node.kubernetes.io/module.name":      "gpu",
	"kmm.node.kubernetes.io/module.namespace": ns,
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// loaderDS is a loader DaemonSet at version, with its newest revision's hash.
func loaderDS(name, version, hash string, revision int64) []runtime.Object {
	l := with(modLabels, "kmm.node.kubernetes.io/role", "module-loader")
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Labels: l, Generation: 2,
			Annotations: map[string]string{"render.kmm.dev/kernel-version": "kernel-of-" + name}},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l,
			Annotations: map[string]string{versionAnno: version}}}},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 2},
	}
	out := []runtime.Object{ds}
	for r := int64(1); r <= revision; r++ {
		h := fmt.Sprintf("old%d", r)
		if r == revision {
			h = hash
		}
		out = append(out, &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-" + h, Namespace: ns, Labels: with(l, "controller-revision-hash", h),
				OwnerReferences: []metav1.OwnerReference{{Kind: "DaemonSet", Name: name, UID: ds.UID, Controller: ptr.To(true)}}},
			Revision: r,
		})
	}
	return out
}

// built marks loaderDS's DaemonSet as one whose image the build Job job builds (kmm-render's
// render.kmm.dev/build-job).
func built(objs []runtime.Object, job string) []runtime.Object {
	ds := objs[0].(*appsv1.DaemonSet)
	ds.Annotations = with(ds.Annotations, "render.kmm.dev/build-job", job)
	return objs
}

// buildJob is a build Job of the module, as kmm-render labels it: "running", "complete" (its
// Complete condition, or only status.succeeded with "succeeded") or "failed".
func buildJob(name, state string) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name),
		Labels: with(modLabels, "kmm.node.kubernetes.io/role", "build", "app.kubernetes.io/component", "module-build")}}
	switch state {
	case "running":
		j.Status.Active = 1
	case "complete":
		j.Status.Succeeded = 1
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	case "succeeded":
		j.Status.Succeeded = 1
	case "failed":
		j.Status.Failed = 3
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue,
			Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}}
	}
	return j
}

func pod(name, nodeName, role, ds, hash, version string, ready bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name),
			Labels:      with(modLabels, "kmm.node.kubernetes.io/role", role, "controller-revision-hash", hash),
			Annotations: map[string]string{versionAnno: version}},
		Spec: corev1.PodSpec{NodeName: nodeName},
	}
	if ds != "" {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: ds, Controller: ptr.To(true)}}
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	return p
}

func loader(name, nodeName, ds, hash, version string, ready bool) *corev1.Pod {
	return pod(name, nodeName, "module-loader", ds, hash, version, ready)
}

func plugin(name, nodeName string, ready bool) *corev1.Pod {
	return pod(name, nodeName, "device-plugin", "gpu-device-plugin", "p1", "", ready)
}

func (w *world) pass() {
	w.t.Helper()
	require.NoError(w.t, w.c.Reconcile(context.Background()))
}

func (w *world) node(name string) *corev1.Node {
	w.t.Helper()
	n, err := w.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(w.t, err)
	return n
}

func (w *world) state(name string) string { return w.node(name).Labels[stateKey] }

func (w *world) states(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, n+"="+w.state(n))
	}
	return out
}

func (w *world) pods() []string {
	w.t.Helper()
	l, err := w.client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	require.NoError(w.t, err)
	var out []string
	for _, p := range l.Items {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	sort.Strings(out)
	return out
}

func (w *world) create(p *corev1.Pod) {
	w.t.Helper()
	_, err := w.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	require.NoError(w.t, err)
}

func (w *world) remove(name string) {
	w.t.Helper()
	require.NoError(w.t, w.client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}))
}

// events is "Reason node: message" of every Event recorded, in order.
func (w *world) events() []string {
	w.t.Helper()
	l, err := w.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
	require.NoError(w.t, err)
	// Names end in the controller's sequence number: recording order.
	seq := func(e corev1.Event) int {
		n, _ := strconv.Atoi(e.Name[strings.LastIndex(e.Name, ".")+1:])
		return n
	}
	sort.Slice(l.Items, func(i, j int) bool { return seq(l.Items[i]) < seq(l.Items[j]) })
	var out []string
	for _, e := range l.Items {
		assert.Equal(w.t, "Node", e.InvolvedObject.Kind)
		out = append(out, e.Reason+" "+e.InvolvedObject.Name+": "+e.Message)
	}
	return out
}

func reasons(events []string) []string {
	var out []string
	for _, e := range events {
		out = append(out, strings.SplitN(e, ":", 2)[0])
	}
	return out
}

// Four nodes on two kernels, all on the old revision: the bound counts across both kernels.
func TestBoundAcrossKernels(t *testing.T) {
	tests := []struct {
		name   string
		policy module.UpgradePolicy
		want   []string
	}{
		{"defaults: one at a time", module.UpgradePolicy{},
			[]string{"a=restarting", "b=upgrade-required", "c=upgrade-required", "d=upgrade-required"}},
		{"maxParallel 3, maxUnavailable 50%", module.UpgradePolicy{MaxParallel: ptr.To[int32](3), MaxUnavailable: ptr.To(intstr.FromString("50%"))},
			[]string{"a=restarting", "b=restarting", "c=upgrade-required", "d=upgrade-required"}},
		{"maxParallel 2, maxUnavailable 3", module.UpgradePolicy{MaxParallel: ptr.To[int32](2), MaxUnavailable: ptr.To(intstr.FromInt32(3))},
			[]string{"a=restarting", "b=restarting", "c=upgrade-required", "d=upgrade-required"}},
		{"maxParallel 4, maxUnavailable 100%", module.UpgradePolicy{MaxParallel: ptr.To[int32](4), MaxUnavailable: ptr.To(intstr.FromString("100%"))},
			[]string{"a=restarting", "b=restarting", "c=restarting", "d=restarting"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := append(loaderDS("gpu-loader-k1", "v2", "new1", 2), loaderDS("gpu-loader-k2", "v2", "new2", 2)...)
			for i, n := range []string{"a", "b", "c", "d"} {
				ds, old := "gpu-loader-k1", "old1"
				if i%2 == 1 {
					ds = "gpu-loader-k2"
				}
				objs = append(objs, node(n, nil), loader("l-"+n, n, ds, old, "v1", true))
			}
			w := newWorld(t, gpu(tt.policy), objs...)
			w.pass()
			assert.Equal(t, tt.want, w.states("a", "b", "c", "d"))
			w.pass() // a second pass starts nothing more: the nodes restarting still count
			assert.Equal(t, tt.want, w.states("a", "b", "c", "d"))
		})
	}
}

// One node through every step, with a device plugin and a consumer; then the next node starts.
func TestUpgradeOrder(t *testing.T) {
	objs := loaderDS("gpu-loader-k1", "v2", "new", 2)
	objs = append(objs,
		node("a", nil), node("b", nil),
		loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true), loader("l-b", "b", "gpu-loader-k1", "old1", "v1", true),
		plugin("dp-a", "a", true), plugin("dp-b", "b", true),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "burn-a", Namespace: "ml", Labels: map[string]string{"app": "burn"}}, Spec: corev1.PodSpec{NodeName: "a"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other-a", Namespace: "ml", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{NodeName: "a"}},
	)
	w := newWorld(t, gpu(module.UpgradePolicy{Drain: &module.DrainPolicy{PodSelector: "app=burn", Namespaces: []string{"ml"}}}), objs...)

	// Status first: both nodes carry the ready and version labels of v1.
	w.pass()
	a := w.node("a")
	assert.Equal(t, "", a.Labels[readyKey])
	assert.Contains(t, a.Labels, readyKey)
	assert.Equal(t, "v1", a.Labels[versionKey])
	assert.True(t, a.Spec.Unschedulable, "cordoned")
	assert.Equal(t, "kmm-demo.gpu", a.Annotations[cordonedBy])
	assert.Equal(t, "true", a.Labels[pausedKey], "device plugin paused")
	assert.Equal(t, "draining", a.Labels[stateKey])
	assert.Equal(t, "2026-12-07T08:00:00Z", a.Annotations[sinceKey])
	assert.Equal(t, "upgrade-required", w.state("b"))
	assert.Equal(t, []string{"ml/burn-a"}, w.evicted, "the consumer is evicted, the other pod stays")
	assert.Contains(t, w.pods(), "kmm-demo/l-a", "the old loader stays while the device plugin runs")

	// The DaemonSet controller takes the plugin away (the paused label): the old loader goes.
	w.remove("dp-a")
	w.pass()
	assert.Equal(t, "restarting", w.state("a"))
	assert.NotContains(t, w.pods(), "kmm-demo/l-a", "old loader deleted")
	assert.Equal(t, []string{"kmm-demo/dp-b", "kmm-demo/l-b", "ml/other-a"}, w.pods())

	// The new loader runs but is not Ready yet: still restarting, plugin still paused, and the
	// node no longer says the module is ready.
	w.create(loader("l-a2", "a", "gpu-loader-k1", "new", "v2", false))
	w.pass()
	assert.Equal(t, "restarting", w.state("a"))
	assert.Equal(t, "true", w.node("a").Labels[pausedKey])
	assert.NotContains(t, w.node("a").Labels, readyKey, "no Ready loader: not ready")
	assert.NotContains(t, w.node("a").Labels, versionKey)

	// Ready (its version verified): the plugin may come back.
	w.remove("l-a2")
	w.create(loader("l-a2", "a", "gpu-loader-k1", "new", "v2", true))
	w.pass()
	a = w.node("a")
	assert.Equal(t, "validating", a.Labels[stateKey])
	assert.NotContains(t, a.Labels, pausedKey)
	assert.True(t, a.Spec.Unschedulable, "still cordoned until the plugin is Ready")
	assert.Equal(t, "v2", a.Labels[versionKey])
	assert.Equal(t, "upgrade-required", w.state("b"), "b waits: a is still unavailable")

	// The plugin is back and Ready: uncordon, done; b starts in the same pass.
	w.create(plugin("dp-a2", "a", true))
	w.pass()
	a = w.node("a")
	assert.Equal(t, "upgrade-done", a.Labels[stateKey])
	assert.False(t, a.Spec.Unschedulable)
	assert.NotContains(t, a.Annotations, cordonedBy)
	assert.NotContains(t, a.Annotations, sinceKey)
	assert.Equal(t, "draining", w.state("b"))

	assert.Equal(t, []string{
		"ModuleLoaded a", "ModuleLoaded b", "ModuleUpgrading a", "ModuleUnloaded a",
		"ModuleLoaded a", "ModuleUpgraded a", "ModuleUpgrading b",
	}, reasons(w.events()))
	assert.Contains(t, w.events(), "ModuleUpgrading a: upgrading module kmm-demo/gpu from v1 to v2: node cordoned, device plugin and consumers leaving")
	assert.Contains(t, w.events(), "ModuleLoaded a: module kmm-demo/gpu version v2 is loaded (loader pod l-a2)")
}

// A node that someone cordoned before the upgrade stays cordoned after it.
func TestAdminCordonKept(t *testing.T) {
	objs := loaderDS("gpu-loader-k1", "v2", "new", 2)
	n := node("a", nil)
	n.Spec.Unschedulable = true
	objs = append(objs, n, loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true))
	m := gpu(module.UpgradePolicy{})
	m.DevicePlugin = false
	w := newWorld(t, m, objs...)
	w.pass()
	assert.Equal(t, "restarting", w.state("a"), "no plugin, no consumers: straight to restarting")
	assert.NotContains(t, w.node("a").Annotations, cordonedBy)
	w.create(loader("l-a2", "a", "gpu-loader-k1", "new", "v2", true))
	w.pass()
	assert.Equal(t, "validating", w.state("a"))
	w.pass()
	assert.Equal(t, "upgrade-done", w.state("a"))
	assert.True(t, w.node("a").Spec.Unschedulable, "still cordoned: not the upgrade's cordon")
}

// Skip labels and manual mode keep a node from starting.
func TestSkipAndManual(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		labels map[string]string
		want   string
	}{
		{"module skip label", "", map[string]string{skipKey: "true"}, ""},
		{"global skip label", "", map[string]string{"kmm.node.kubernetes.io/upgrade-skip": "true"}, ""},
		{"skip label false", "", map[string]string{skipKey: "false"}, "restarting"},
		{"manual, not requested", module.UpgradeManual, nil, "upgrade-required"},
		{"manual, requested", module.UpgradeManual, map[string]string{requestKey: ""}, "restarting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := append(loaderDS("gpu-loader-k1", "v2", "new", 2), node("a", tt.labels), loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true))
			w := newWorld(t, gpu(module.UpgradePolicy{Mode: tt.mode}), objs...)
			w.pass()
			assert.Equal(t, tt.want, w.state("a"))
		})
	}
}

// A manual request is consumed when the node's upgrade is done.
func TestManualRequestCleared(t *testing.T) {
	objs := append(loaderDS("gpu-loader-k1", "v2", "new", 2), node("a", map[string]string{requestKey: ""}), loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true))
	m := gpu(module.UpgradePolicy{Mode: module.UpgradeManual})
	m.DevicePlugin = false
	w := newWorld(t, m, objs...)
	w.pass()
	w.create(loader("l-a2", "a", "gpu-loader-k1", "new", "v2", true))
	w.pass()
	w.pass()
	assert.Equal(t, "upgrade-done", w.state("a"))
	assert.NotContains(t, w.node("a").Labels, requestKey)
}

// Drains that take too long: rolled back, or forced.
func TestDrainTimeout(t *testing.T) {
	consumer := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "burn", Namespace: ns, Labels: map[string]string{"app": "burn"},
		DeletionTimestamp: ptr.To(metav1.NewTime(t0)), Finalizers: []string{"hold"}}, Spec: corev1.PodSpec{NodeName: "a"}}
	setup := func(t *testing.T, force bool) *world {
		objs := append(loaderDS("gpu-loader-k1", "v2", "new", 2), node("a", nil), loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true), consumer.DeepCopy())
		m := gpu(module.UpgradePolicy{Drain: &module.DrainPolicy{PodSelector: "app=burn", Timeout: "2m", Force: force}})
		m.DevicePlugin = false
		w := newWorld(t, m, objs...)
		w.pass()
		require.Equal(t, "draining", w.state("a"))
		w.now = t0.Add(time.Minute)
		w.pass()
		require.Equal(t, "draining", w.state("a"), "within the timeout: waits")
		w.now = t0.Add(3 * time.Minute)
		return w
	}
	t.Run("rolled back", func(t *testing.T) {
		w := setup(t, false)
		w.pass()
		a := w.node("a")
		assert.Equal(t, "upgrade-failed", a.Labels[stateKey])
		assert.False(t, a.Spec.Unschedulable, "uncordoned: the old version is still loaded")
		assert.Contains(t, w.pods(), "kmm-demo/l-a", "old loader kept")
		ev := w.events()
		assert.Contains(t, ev[len(ev)-1], "ModuleUpgradeFailed a: draining the node for module kmm-demo/gpu took longer than 2m0s: pod kmm-demo/burn still running. Rolled back")
		w.pass()
		assert.Equal(t, "upgrade-failed", w.state("a"), "a failed node is not retried until its label goes")
	})
	t.Run("forced", func(t *testing.T) {
		var graces []int64
		w := setup(t, true)
		w.client.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			d := a.(k8stesting.DeleteActionImpl)
			if d.DeleteOptions.GracePeriodSeconds != nil {
				graces = append(graces, *d.DeleteOptions.GracePeriodSeconds)
				// The API server removes a pod deleted with grace 0 even with finalizers here.
				return true, nil, w.client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), d.Namespace, d.Name)
			}
			return false, nil, nil
		})
		w.pass()
		assert.Equal(t, []int64{0}, graces, "the consumer deleted with grace 0")
		w.pass()
		assert.Equal(t, "restarting", w.state("a"))
	})
}

// The new version does not load (the old one is held): failed after the load timeout, with the
// loader's message; it resumes on its own once the loader is Ready.
func TestLoadFailsThenResumes(t *testing.T) {
	objs := append(loaderDS("gpu-loader-k1", "v2", "new", 2), node("a", nil), loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true))
	m := gpu(module.UpgradePolicy{LoadTimeout: "5m"})
	m.DevicePlugin = false
	w := newWorld(t, m, objs...)
	w.pass()
	require.Equal(t, "restarting", w.state("a"))
	held := loader("l-a2", "a", "gpu-loader-k1", "new", "v2", false)
	msg := "gpu is loaded at srcversion AAA, version 1 but this loader's image has srcversion BBB, version 2, and it cannot be unloaded: held by modules [gpu_user], refcnt 1"
	held.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "module-loader", RestartCount: 2,
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: msg}}}}
	w.create(held)
	w.pass()
	w.pass()
	mismatch := "ModuleVersionMismatch a: loader pod l-a2: " + msg
	assert.Equal(t, 1, count(w.events(), mismatch), "one Event per failure: %v", w.events())
	w.now = t0.Add(6 * time.Minute)
	w.pass()
	a := w.node("a")
	assert.Equal(t, "upgrade-failed", a.Labels[stateKey])
	assert.True(t, a.Spec.Unschedulable, "stays cordoned: no driver")
	ev := w.events()
	assert.Equal(t, "ModuleUpgradeFailed a: the new version of module kmm-demo/gpu did not load within 5m0s (loader pod l-a2 is not Ready: "+msg+"); the node stays cordoned and the device plugin paused until it loads", ev[len(ev)-1])

	// The holder is gone; the kubelet restarts the loader, which loads v2.
	w.remove("l-a2")
	w.create(loader("l-a2", "a", "gpu-loader-k1", "new", "v2", true))
	w.pass()
	assert.Equal(t, "validating", w.state("a"))
	w.pass()
	assert.Equal(t, "upgrade-done", w.state("a"))
	assert.False(t, w.node("a").Spec.Unschedulable)
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// A failed, not Ready loader counts against maxUnavailable: no other node starts.
func TestFailedNodeHoldsTheBound(t *testing.T) {
	objs := loaderDS("gpu-loader-k1", "v2", "new", 2)
	a := node("a", map[string]string{stateKey: "upgrade-failed"})
	objs = append(objs, a, node("b", nil), node("c", nil), node("d", nil),
		loader("l-a", "a", "gpu-loader-k1", "new", "v2", false),
		loader("l-b", "b", "gpu-loader-k1", "old1", "v1", true),
		loader("l-c", "c", "gpu-loader-k1", "old1", "v1", true),
		loader("l-d", "d", "gpu-loader-k1", "old1", "v1", true))
	w := newWorld(t, gpu(module.UpgradePolicy{MaxParallel: ptr.To[int32](4)}), objs...) // 25% of 4 = 1
	w.pass()
	assert.Equal(t, []string{"a=upgrade-failed", "b=upgrade-required", "c=upgrade-required", "d=upgrade-required"}, w.states("a", "b", "c", "d"))
}

// A DaemonSet the DaemonSet controller has not caught up with is left alone, and a loader pod
// of the newest revision needs nothing.
func TestNothingToDo(t *testing.T) {
	objs := loaderDS("gpu-loader-k1", "v2", "new", 2)
	objs[0].(*appsv1.DaemonSet).Status.ObservedGeneration = 1
	objs = append(objs, loaderDS("gpu-loader-k2", "v2", "cur", 1)...)
	objs = append(objs, node("a", nil), node("b", map[string]string{stateKey: "upgrade-required"}),
		loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true),
		loader("l-b", "b", "gpu-loader-k2", "cur", "v2", true))
	w := newWorld(t, gpu(module.UpgradePolicy{}), objs...)
	w.pass()
	assert.Equal(t, []string{"a=", "b="}, w.states("a", "b"))
	assert.Equal(t, "v1", w.node("a").Labels[versionKey])
}

// Versions that are no label value are hashed on the node; the status report shows them whole.
func TestVersionLabelOfImage(t *testing.T) {
	image := "registry.example.com/gpu:6.1.0-28-cloud-amd64"
	objs := append(loaderDS("gpu-loader-k1", image, "cur", 1), node("a", nil), loader("l-a", "a", "gpu-loader-k1", "cur", image, true))
	w := newWorld(t, gpu(module.UpgradePolicy{}), objs...)
	w.pass()
	// sha256("registry.example.com/gpu:6.1.0-28-cloud-amd64"), first 8 bytes: `printf %s ... | sha256sum`.
	assert.Equal(t, "sha256-762c16e5878639a1", w.node("a").Labels[versionKey])
	r, err := Status(context.Background(), w.client, "")
	require.NoError(t, err)
	require.Len(t, r.Modules, 1)
	assert.Equal(t, []NodeStatus{{Node: "a", Kernel: "kernel-of-gpu-loader-k1", Wanted: image, Loaded: image, Ready: true, State: "current", LoaderPod: "l-a"}}, r.Modules[0].Nodes)
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name, json, err string
	}{
		{"ok", `{"modules":[{"namespace":"a","name":"m","devicePlugin":true,"policy":{"mode":"manual","maxUnavailable":"10%","drain":{"podSelector":"app=x","timeout":"1m"}}}]}`, ""},
		{"unknown field", `{"modules":[{"namespace":"a","name":"m","policy":{"maxParalel":2}}]}`, `cfg.json: unknown field "modules[0].policy.maxParalel"`},
		{"twice", `{"modules":[{"namespace":"a","name":"m","policy":{}},{"namespace":"a","name":"m","policy":{}}]}`, "cfg.json: modules[1]: module a/m is listed twice"},
		{"no name", `{"modules":[{"namespace":"a","policy":{}}]}`, "cfg.json: modules[0]: namespace and name are required"},
		{"bad policy", `{"modules":[{"namespace":"a","name":"m","policy":{"drain":{"timeout":"soon"}}}]}`, `cfg.json: modules[0]: module a/m: policy.drain.timeout: Invalid value: "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.json), "cfg.json")
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			p, err := c.Modules[0].Resolve()
			require.NoError(t, err)
			assert.True(t, p.Manual)
			assert.Equal(t, 1, p.MaxParallel)
			assert.Equal(t, 2, p.Budget(11), "10% of 11, rounded up")
			assert.Equal(t, time.Minute, p.DrainTimeout)
			assert.Equal(t, 10*time.Minute, p.LoadTimeout)
			assert.Equal(t, []string{"a"}, p.Namespaces)
			assert.Equal(t, "app=x", p.Consumers.String())
		})
	}
}

// Every API call the controller makes is one the chart's RBAC for it grants
// (templates/upgrade/rbac.yaml as rendered for the same module, leases aside: cmd/kmm-upgrade's
// leader election), and every grant is used: an upgrade with a forced drain and a finished
// build Job goes through all of them.
func TestCallsMatchTheChartsRBAC(t *testing.T) {
	consumer := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "burn", Namespace: "ml", Labels: map[string]string{"app": "burn"},
		DeletionTimestamp: ptr.To(metav1.NewTime(t0)), Finalizers: []string{"hold"}}, Spec: corev1.PodSpec{NodeName: "a"}}
	objs := append(built(loaderDS("gpu-loader-k1", "v2", "new", 2), "gpu-build-k1"), buildJob("gpu-build-k1", "complete"),
		node("a", nil), loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true),
		plugin("dp-a", "a", true), consumer,
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "burn-2", Namespace: "ml", Labels: map[string]string{"app": "burn"}}, Spec: corev1.PodSpec{NodeName: "a"}})
	w := newWorld(t, gpu(module.UpgradePolicy{Drain: &module.DrainPolicy{PodSelector: "app=burn", Namespaces: []string{"ml"}, Timeout: "1m", Force: true}}), objs...)
	w.pass()
	w.remove("dp-a")
	w.now = t0.Add(2 * time.Minute)
	w.pass()
	w.pass()
	w.create(loader("l-a2", "a", "gpu-loader-k1", "new", "v2", true))
	w.create(plugin("dp-a2", "a", true))
	w.pass()
	w.pass()
	require.Equal(t, "upgrade-done", w.state("a"))

	granted := chartRBAC(t, `
upgrade:
  enabled: true
modules:
  - name: gpu
    namespace: kmm-demo
    selector: {example.com/gpu: "true"}
    moduleLoader:
      container:
        containerImage: registry.example.com/gpu:${KERNEL_FULL_VERSION}
        modprobe: {moduleName: gpu}
        build:
          dockerfileConfigMap: {name: gpu-src}
        kernelMappings:
          - regexp: '^.+$'
    devicePlugin:
      container:
        image: registry.example.com/gpu-device-plugin:1.0
    upgrade:
      drain: {podSelector: app=burn, namespaces: [ml], timeout: 1m, force: true}
`)
	used := map[string]bool{}
	for _, a := range w.client.Actions() {
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		ns := a.GetNamespace()
		if ns == "" {
			ns = "-"
		}
		k := ns + " " + a.GetVerb() + " " + res
		if a.GetVerb() == "get" && res == "nodes" || a.GetVerb() == "create" && res == "pods" && ns == "kmm-demo" || a.GetVerb() == "delete" && ns == "kmm-demo" && strings.HasPrefix(a.(k8stesting.DeleteAction).GetName(), "dp-a") {
			continue // the test's own calls
		}
		if !granted[k] {
			t.Errorf("the controller calls %q, which its RBAC does not grant", k)
		}
		used[k] = true
	}
	for k := range granted {
		if !used[k] {
			t.Errorf("the RBAC grants %q, which the controller never used", k)
		}
	}
	assert.True(t, granted["kmm-demo list jobs"], "the chart grants the build Jobs' list: %v", granted)

	// A module with a prebuilt image: no Jobs to read, no grant.
	granted = chartRBAC(t, `
upgrade:
  enabled: true
modules:
  - name: gpu
    namespace: kmm-demo
    selector: {example.com/gpu: "true"}
    moduleLoader:
      container:
        containerImage: registry.example.com/gpu:${KERNEL_FULL_VERSION}
        modprobe: {moduleName: gpu}
        kernelMappings:
          - regexp: '^.+$'
`)
	assert.Equal(t, map[string]bool{
		"- list nodes": true, "- patch nodes": true,
		"kmm-demo list daemonsets": true, "kmm-demo list controllerrevisions": true,
		"kmm-demo list pods": true, "kmm-demo delete pods": true,
		"default create events": true,
	}, granted)
}

// chartRBAC renders the chart with these values and returns the upgrade controller's rules as
// "namespace verb resource" ("-": cluster-wide), its leader Lease aside.
func chartRBAC(t *testing.T, values string) map[string]bool {
	t.Helper()
	f := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(f, []byte(values), 0o644))
	r, err := chartrender.Render(context.Background(), chartrender.Options{ChartDir: "../../charts/kmm", Namespace: "kmm-system", ValueFiles: []string{f}})
	require.NoError(t, err)
	docs, err := kio.FromBytes([]byte(r.Manifests))
	require.NoError(t, err)
	out := map[string]bool{}
	for _, d := range docs {
		if (d.GetKind() != "Role" && d.GetKind() != "ClusterRole") || d.GetLabels()["app.kubernetes.io/component"] != "upgrade" {
			continue
		}
		s, err := d.String()
		require.NoError(t, err)
		var role rbacv1.Role // a ClusterRole's rules decode the same
		require.NoError(t, yaml.Unmarshal([]byte(s), &role))
		ns := role.Namespace
		if d.GetKind() == "ClusterRole" {
			ns = "-"
		}
		for _, rule := range role.Rules {
			for _, res := range rule.Resources {
				if res == "leases" {
					continue
				}
				for _, v := range rule.Verbs {
					out[ns+" "+v+" "+res] = true
				}
			}
		}
	}
	return out
}

// A module built in the cluster (its loader DaemonSet names its build Job): a node's upgrade
// starts only once the Job is complete. Until then, and when the Job failed, the node is left
// alone: not cordoned, the old loader (and module) in place.
func TestBuildJobGatesTheUpgrade(t *testing.T) {
	const failedEvent = "ModuleBuildFailed a: build Job kmm-demo/gpu-build-k1 failed (BackoffLimitExceeded: Job has reached the specified backoff limit): " +
		"the image of module kmm-demo/gpu for kernel kernel-of-gpu-loader-k1 (version v2) was not built. The node is not upgraded: version v1 stays loaded. " +
		"Fix the build and run helm upgrade again (a changed build is a new Job; to retry an unchanged one, raise the module's imageRebuildTriggerGeneration)"
	tests := []struct {
		name     string
		job      string // the annotation's Job: "" none (prebuilt image); its state, or "missing"
		want     string // upgrade-state after the passes
		upgraded bool   // cordoned and the old loader pod deleted
		events   []string
	}{
		{"prebuilt image", "", "restarting", true, []string{"ModuleLoaded a", "ModuleUpgrading a", "ModuleUnloaded a"}},
		{"build complete", "complete", "restarting", true, []string{"ModuleLoaded a", "ModuleUpgrading a", "ModuleUnloaded a"}},
		{"build succeeded, no condition yet", "succeeded", "restarting", true, []string{"ModuleLoaded a", "ModuleUpgrading a", "ModuleUnloaded a"}},
		{"build running", "running", "upgrade-required", false, []string{"ModuleLoaded a"}},
		{"build Job not there yet", "missing", "upgrade-required", false, []string{"ModuleLoaded a"}},
		{"build failed", "failed", "upgrade-required", false, []string{"ModuleLoaded a", "ModuleBuildFailed a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := loaderDS("gpu-loader-k1", "v2", "new", 2)
			if tt.job != "" {
				objs = built(objs, "gpu-build-k1")
			}
			if tt.job != "" && tt.job != "missing" {
				objs = append(objs, buildJob("gpu-build-k1", tt.job))
			}
			// Another module's Job of that name is not this module's.
			other := buildJob("gpu-build-k1", "complete")
			other.Namespace = "elsewhere"
			objs = append(objs, other, node("a", nil), loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true))
			m := gpu(module.UpgradePolicy{})
			m.DevicePlugin = false
			w := newWorld(t, m, objs...)
			w.pass()
			w.pass() // and again: nothing more happens, no second Event
			a := w.node("a")
			assert.Equal(t, tt.want, a.Labels[stateKey])
			assert.Equal(t, tt.upgraded, a.Spec.Unschedulable, "cordoned")
			assert.Equal(t, !tt.upgraded, slices.Contains(w.pods(), "kmm-demo/l-a"), "the old loader pod is kept until the build is done")
			if !tt.upgraded {
				assert.Equal(t, "v1", a.Labels[versionKey], "the old version stays loaded")
				assert.NotContains(t, a.Annotations, cordonedBy)
				assert.NotContains(t, a.Annotations, sinceKey)
			}
			assert.Equal(t, tt.events, reasons(w.events()))
			if tt.job == "failed" {
				assert.Contains(t, w.events(), failedEvent)
				ev, err := w.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
				require.NoError(t, err)
				for _, e := range ev.Items {
					if e.Reason == "ModuleBuildFailed" {
						assert.Equal(t, corev1.EventTypeWarning, e.Type)
					}
				}
			}
			// Prebuilt images need no Job; a built one's Jobs are listed once per pass.
			lists := 0
			for _, a := range w.client.Actions() {
				if a.GetResource().Resource == "jobs" {
					assert.Equal(t, "list", a.GetVerb())
					assert.Equal(t, ns, a.GetNamespace())
					lists++
				}
			}
			switch {
			case tt.job == "":
				assert.Zero(t, lists, "no build: no Job read")
			case tt.upgraded:
				assert.Equal(t, 1, lists, "read once, when the node starts")
			default:
				assert.Equal(t, 2, lists, "one List per pass")
			}
		})
	}
}

// The build finishes: the waiting node's upgrade starts in the next pass.
func TestBuildJobCompletes(t *testing.T) {
	objs := append(built(loaderDS("gpu-loader-k1", "v2", "new", 2), "gpu-build-k1"), buildJob("gpu-build-k1", "running"),
		node("a", nil), loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true), plugin("dp-a", "a", true))
	w := newWorld(t, gpu(module.UpgradePolicy{LoadTimeout: "5m"}), objs...)
	w.pass()
	w.now = t0.Add(20 * time.Minute) // a long build: longer than loadTimeout
	w.pass()
	require.Equal(t, "upgrade-required", w.state("a"))
	require.False(t, w.node("a").Spec.Unschedulable)
	require.Contains(t, w.pods(), "kmm-demo/l-a")

	_, err := w.client.BatchV1().Jobs(ns).UpdateStatus(context.Background(), buildJob("gpu-build-k1", "complete"), metav1.UpdateOptions{})
	require.NoError(t, err)
	w.pass()
	a := w.node("a")
	assert.Equal(t, "draining", a.Labels[stateKey])
	assert.True(t, a.Spec.Unschedulable)
	assert.Equal(t, "true", a.Labels[pausedKey])
	assert.Equal(t, "2026-12-07T08:20:00Z", a.Annotations[sinceKey], "loadTimeout and drain.timeout count from the start, not from the build's")
	w.remove("dp-a")
	w.pass()
	assert.Equal(t, "restarting", w.state("a"))
	assert.NotContains(t, w.pods(), "kmm-demo/l-a")
	w.create(loader("l-a2", "a", "gpu-loader-k1", "new", "v2", true))
	w.pass()
	assert.Equal(t, "validating", w.state("a"), "loaded well within loadTimeout of the start")
}

// A node waiting for its kernel's build does not hold the bounds: the node of another kernel,
// whose image is there, upgrades meanwhile (maxParallel 1).
func TestBuildWaitOutsideTheBounds(t *testing.T) {
	objs := append(built(loaderDS("gpu-loader-k1", "v2", "new1", 2), "gpu-build-k1"), buildJob("gpu-build-k1", "running"))
	objs = append(objs, built(loaderDS("gpu-loader-k2", "v2", "new2", 2), "gpu-build-k2")...)
	objs = append(objs, buildJob("gpu-build-k2", "complete"),
		node("a", nil), loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true),
		node("b", nil), loader("l-b", "b", "gpu-loader-k2", "old1", "v1", true))
	m := gpu(module.UpgradePolicy{})
	m.DevicePlugin = false
	w := newWorld(t, m, objs...)
	w.pass()
	assert.Equal(t, []string{"a=upgrade-required", "b=restarting"}, w.states("a", "b"))
	assert.False(t, w.node("a").Spec.Unschedulable)
}

// kmm-render status says what an outdated node waits for.
func TestStatusShowsTheBuild(t *testing.T) {
	objs := append(built(loaderDS("gpu-loader-k1", "v2", "new", 2), "gpu-build-k1"), buildJob("gpu-build-k1", "failed"),
		node("a", nil), loader("l-a", "a", "gpu-loader-k1", "old1", "v1", true),
		node("b", map[string]string{stateKey: "upgrade-required"}), loader("l-b", "b", "gpu-loader-k1", "old1", "v1", true),
		node("c", nil), loader("l-c", "c", "gpu-loader-k1", "new", "v2", true))
	objs = append(objs, built(loaderDS("gpu-loader-k2", "v2", "new2", 2), "gpu-build-k2")...)
	objs = append(objs, buildJob("gpu-build-k2", "running"),
		node("d", nil), loader("l-d", "d", "gpu-loader-k2", "old1", "v1", true))
	r, err := Status(context.Background(), fake.NewClientset(objs...), "")
	require.NoError(t, err)
	var table strings.Builder
	require.NoError(t, r.Write(&table, "table"))
	assert.Equal(t, `MODULE        NODE  KERNEL                   WANTED  LOADED  READY  STATE             DEVICE-PLUGIN  CORDONED
kmm-demo/gpu  a     kernel-of-gpu-loader-k1  v2      v1      true   outdated          -              false
kmm-demo/gpu  b     kernel-of-gpu-loader-k1  v2      v1      true   upgrade-required  -              false
kmm-demo/gpu  c     kernel-of-gpu-loader-k1  v2      v2      true   current           -              false
kmm-demo/gpu  d     kernel-of-gpu-loader-k2  v2      v1      true   outdated          -              false
kmm-demo/gpu on a: build Job kmm-demo/gpu-build-k1 failed (BackoffLimitExceeded: Job has reached the specified backoff limit)
kmm-demo/gpu on b: build Job kmm-demo/gpu-build-k1 failed (BackoffLimitExceeded: Job has reached the specified backoff limit)
kmm-demo/gpu on d: waiting for build Job kmm-demo/gpu-build-k2
`, table.String())
}
