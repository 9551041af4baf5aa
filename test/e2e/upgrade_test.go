package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"kmm.dev/kmm/pkg/upgrade"
)

// The upgrade scenario's module and namespaces, spelled out.
const (
	upNS       = "kmm-up"      // the module's namespace
	upWorkNS   = "kmm-up-work" // its consumers' namespace
	upModule   = "kmod"
	upState    = "kmm.node.kubernetes.io/kmm-up.kmod.upgrade-state"
	upReady    = "kmm.node.kubernetes.io/kmm-up.kmod.ready"
	upVersion  = "kmm.node.kubernetes.io/kmm-up.kmod.version.ready"
	upRequest  = "kmm.node.kubernetes.io/kmm-up.kmod.upgrade-requested"
	upParallel = 2
)

// upValues is the release: one module with a device plugin on six nodes of three kernels, the
// upgrade controller on, at most two nodes at a time, consumers "app=burn" in upWorkNS, manual
// mode (a node upgrades once it is labelled), so each step can be looked at.
func upValues(version, tag string) string {
	return fmt.Sprintf(`upgrade:
  enabled: true
  image: {repository: registry.example.com/kmm-render, tag: e2e}
  interval: 1s
modules:
  - name: %s
    namespace: %s
    selector: {kmm.dev/e2e-upgrade: "true"}
    upgrade:
      mode: manual
      maxParallel: %d
      maxUnavailable: 2
      drain: {podSelector: app=burn, namespaces: [%s], timeout: 10m}
    moduleLoader:
      container:
        version: "%s"
        containerImage: registry.example.com/kmod:%s-${KERNEL_FULL_VERSION}
        modprobe: {moduleName: kmm_ci_a}
        kernelMappings: [{regexp: '^.+$'}]
    devicePlugin:
      container: {image: registry.example.com/kmod-device-plugin:1}
`, upModule, upNS, upParallel, upWorkNS, version, tag)
}

var upKernels = []string{"5.15.0-105-generic", "6.8.0-45-generic", "6.1.0-28-cloud-amd64"}

// TestUpgrade: a module upgrade across three kernels with Helm 3 and with Helm 4, the upgrade
// controller running as the binary with a token of the ServiceAccount the chart gives it (its
// RBAC and nothing else). It checks, from the API server's watch streams: never more than
// maxParallel nodes upgrading nor more than maxUnavailable without a Ready loader; on every
// node, the device plugin pod gone before the old loader pod is deleted and back only after the
// new loader is Ready; consumers evicted, other pods kept; each node cordoned during its upgrade
// and uncordoned after; and `kmm-render status` telling the truth at each step.
func TestUpgrade(t *testing.T) {
	for _, hv := range []int{3, 4} {
		t.Run(fmt.Sprintf("helm%d", hv), func(t *testing.T) { testUpgrade(t, hv) })
	}
}

func testUpgrade(t *testing.T, hv int) {
	ctx := testContext(t, 8*time.Minute)
	ex := loadExample(t, "ubuntu")
	cleanupRelease(t, ctx)
	cleanupInstall(t)
	names := upNodes(t, ctx, ex)
	for _, ns := range []string{releaseNamespace, upNS, upWorkNS} {
		if err := kc.EnsureNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	values := func(version, tag string) string {
		p := filepath.Join(dir, "values-"+version+".yaml")
		if err := os.WriteFile(p, []byte(upValues(version, tag)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := func(verb, valuesFile string) []string {
		a := []string{verb, release, chartDir, "-n", releaseNamespace, "-f", valuesFile}
		wait := "--wait"
		if hv == 4 {
			// Helm 4's default waiter (kstatus) holds an OnDelete DaemonSet in progress until
			// every pod is replaced, which the upgrade controller does node by node afterwards;
			// the legacy waiter, Helm 3's, treats OnDelete DaemonSets as ready (README).
			wait = "--wait=legacy"
		}
		return append(append(a, helmArgs(hv)...), wait, "--timeout", "3m")
	}
	helm(t, ctx, hv, args("install", values("1.0.0", "v1"))...)

	// The controller's identity is exactly the chart's RBAC.
	sa := release + "-upgrade"
	checkUpgradeRBAC(t, ctx, sa)
	stopController := startController(t, ctx, dir, sa)
	defer stopController()

	// Before any upgrade: every node loaded 1.0.0, current, and labelled so.
	waitStatus(t, ctx, "after the install", func(r *upgrade.Report) error {
		return eachNode(r, names, func(n upgrade.NodeStatus) error {
			if err := expectNode(n, "1.0.0", "1.0.0", true, upgrade.StateCurrent, false); err != nil {
				return err
			}
			node, err := kc.Client.CoreV1().Nodes().Get(ctx, n.Node, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if v, ok := node.Labels[upReady]; !ok || v != "" || node.Labels[upVersion] != "1.0.0" {
				return fmt.Errorf("labels %s=%q (set: %t), %s=%q; want \"\" and 1.0.0", upReady, v, ok, upVersion, node.Labels[upVersion])
			}
			return nil
		})
	})

	// Consumers on every node, and a pod that is no consumer.
	for _, n := range names {
		createPod(t, ctx, upWorkNS, "burn-"+n, n, map[string]string{"app": "burn"})
	}
	createPod(t, ctx, upWorkNS, "bystander", names[0], map[string]string{"app": "web"})

	rec := record(t, ctx)

	// The new version: every node is outdated, nothing moves until it is requested.
	helm(t, ctx, hv, args("upgrade", values("2.0.0", "v2"))...)
	waitStatus(t, ctx, "after helm upgrade", func(r *upgrade.Report) error {
		return eachNode(r, names, func(n upgrade.NodeStatus) error {
			return expectNode(n, "2.0.0", "1.0.0", true, "upgrade-required", false)
		})
	})

	// One node requested: it alone upgrades.
	label(t, ctx, names[0], upRequest, "")
	waitStatus(t, ctx, "after upgrading "+names[0], func(r *upgrade.Report) error {
		return eachNode(r, names, func(n upgrade.NodeStatus) error {
			if n.Node == names[0] {
				return expectNode(n, "2.0.0", "2.0.0", true, "upgrade-done", false)
			}
			return expectNode(n, "2.0.0", "1.0.0", true, "upgrade-required", false)
		})
	})

	// All the others at once: the policy lets two go at a time.
	for _, n := range names[1:] {
		label(t, ctx, n, upRequest, "")
	}
	waitStatus(t, ctx, "after upgrading every node", func(r *upgrade.Report) error {
		return eachNode(r, names, func(n upgrade.NodeStatus) error {
			return expectNode(n, "2.0.0", "2.0.0", true, "upgrade-done", false)
		})
	})
	rec.stop()
	rec.check(t, names)

	// Consumers evicted, the bystander kept; each node's Events tell the story.
	pods, err := kc.Client.CoreV1().Pods(upWorkNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, p := range pods.Items {
		left = append(left, p.Name)
	}
	if !slices.Equal(left, []string{"bystander"}) {
		t.Errorf("pods left in %s: %v, want only the bystander (the consumers evicted)", upWorkNS, left)
	}
	// Node Events (recorded once the node's step is done: waited for), of these nodes (by UID:
	// an earlier run's nodes had the same names).
	uids := map[types.UID]string{}
	for _, n := range names {
		uids[getNode(t, ctx, n).UID] = n
	}
	want := []string{
		"ModuleUpgraded: module kmm-up/kmod upgraded to 2.0.0; device plugin back, node uncordoned",
		"ModuleUpgrading: upgrading module kmm-up/kmod from 1.0.0 to 2.0.0: node cordoned, device plugin and consumers leaving",
	}
	var got map[string][]string
	err = poll(ctx, time.Minute, func() (bool, error) {
		events, err := kc.Client.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		got = map[string][]string{}
		for _, e := range events.Items {
			n, ok := uids[e.InvolvedObject.UID]
			if ok && e.InvolvedObject.Kind == "Node" && (e.Reason == upgrade.ReasonUpgrading || e.Reason == upgrade.ReasonUpgraded) {
				got[n] = append(got[n], e.Reason+": "+e.Message)
			}
		}
		for _, n := range names {
			sort.Strings(got[n])
			if !slices.Equal(got[n], want) {
				return false, nil
			}
		}
		return true, nil
	})
	for _, n := range names {
		if err != nil && !slices.Equal(got[n], want) {
			t.Errorf("node %s: upgrade Events %q, want %q", n, got[n], want)
		}
		if l := getNode(t, ctx, n).Labels; l[upVersion] != "2.0.0" {
			t.Errorf("node %s: %s=%q, want 2.0.0", n, upVersion, l[upVersion])
		}
	}
}

// upNodes replaces the cluster's nodes with six worker nodes, two per kernel, cloned from the
// Ubuntu example's first worker, and labelled for the module.
func upNodes(t *testing.T, ctx context.Context, ex *example) []string {
	t.Helper()
	i := slices.IndexFunc(ex.objects, func(n corev1.Node) bool {
		_, cp := n.Labels["node-role.kubernetes.io/control-plane"]
		return !cp && len(n.Spec.Taints) == 0
	})
	if i < 0 {
		t.Fatal("the ubuntu example has no untainted worker node to clone")
	}
	if err := kc.DeleteAllNodes(ctx); err != nil {
		t.Fatal(err)
	}
	var nodes []corev1.Node
	var names []string
	for k, kernel := range upKernels {
		for j := range 2 {
			n := cloneNode(&ex.objects[i], fmt.Sprintf("up-%d%c", k, 'a'+j), kernel)
			n.Labels["kmm.dev/e2e-upgrade"] = "true"
			nodes = append(nodes, n)
			names = append(names, n.Name)
		}
	}
	if err := kc.AddNodes(ctx, nodes...); err != nil {
		t.Fatal(err)
	}
	if err := kc.WaitNodesReady(ctx, names...); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// checkUpgradeRBAC: the chart's rules for the controller, one by one, and nothing more.
func checkUpgradeRBAC(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	rules := func(ns, role string) []string {
		var rs []rbacv1.PolicyRule
		if ns == "" {
			cr, err := kc.Client.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rs = cr.Rules
		} else {
			r, err := kc.Client.RbacV1().Roles(ns).Get(ctx, role, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rs = r.Rules
		}
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%v %v %v", r.APIGroups, r.Resources, r.Verbs))
		}
		return out
	}
	tests := []struct {
		ns, role string
		want     []string
	}{
		{"", name, []string{"[] [nodes] [list patch]"}},
		{releaseNamespace, name + "-lease", []string{"[coordination.k8s.io] [leases] [get create update]"}},
		{upNS, name + "-loaders", []string{"[apps] [daemonsets controllerrevisions] [list]", "[] [pods] [list delete]"}},
		{metav1.NamespaceDefault, name + "-events", []string{"[] [events] [create]"}},
		{upWorkNS, name + "-drain", []string{"[] [pods] [list]", "[] [pods/eviction] [create]"}},
	}
	for _, tt := range tests {
		if got := rules(tt.ns, tt.role); !slices.Equal(got, tt.want) {
			t.Errorf("role %s/%s: %q, want %q", tt.ns, tt.role, got, tt.want)
		}
	}
	// And no other Role: the namespaces above and "default" (Node Events live there) only.
	roles, err := kc.Client.RbacV1().Roles("").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range roles.Items {
		got = append(got, r.Namespace+"/"+r.Name)
	}
	sort.Strings(got)
	want := []string{"default/" + name + "-events", upWorkNS + "/" + name + "-drain", upNS + "/" + name + "-loaders", releaseNamespace + "/" + name + "-lease"}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("the controller's Roles: %v, want %v", got, want)
	}
}

// startController runs kmm-upgrade with the ServiceAccount's token and the configuration the
// chart rendered (its ConfigMap), holding its Lease; the returned func stops it.
func startController(t *testing.T, ctx context.Context, dir, sa string) func() {
	t.Helper()
	cm, err := kc.Client.CoreV1().ConfigMaps(releaseNamespace).Get(ctx, sa, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config.json")
	if err := os.WriteFile(config, []byte(cm.Data["config.json"]), 0o644); err != nil {
		t.Fatal(err)
	}
	kubeconfig := tokenKubeconfig(t, ctx, releaseNamespace, sa)
	logPath := filepath.Join(dir, "kmm-upgrade.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(cctx, kmmUpgrade, "--config", config, "--kubeconfig", kubeconfig, "--interval", "300ms",
		"--lease-namespace", releaseNamespace, "--lease-name", sa, "--identity", "e2e")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			_ = cmd.Wait()
			logFile.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logPath)
				t.Logf("kmm-upgrade's log:\n%s", b)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// status runs `kmm-render status -o json` as an admin.
func status(ctx context.Context) (*upgrade.Report, error) {
	cmd := exec.CommandContext(ctx, kmmRender, "status", "-n", upNS, "--kubeconfig", kc.Kubeconfig, "-o", "json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kmm-render status: %v: %s", err, stderr.String())
	}
	var r upgrade.Report
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("kmm-render status -o json: %v\n%s", err, out)
	}
	return &r, nil
}

// waitStatus polls the status command until check passes; on timeout the test fails with the
// last mismatch.
func waitStatus(t *testing.T, ctx context.Context, what string, check func(*upgrade.Report) error) {
	t.Helper()
	var last error
	err := poll(ctx, 3*time.Minute, func() (bool, error) {
		r, err := status(ctx)
		if err != nil {
			return false, err
		}
		last = check(r)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: kmm-render status never showed the expected state: %v (last: %v)", what, err, last)
	}
}

func eachNode(r *upgrade.Report, names []string, check func(upgrade.NodeStatus) error) error {
	if len(r.Modules) != 1 || r.Modules[0].Namespace != upNS || r.Modules[0].Name != upModule {
		return fmt.Errorf("modules %+v, want only %s/%s", r.Modules, upNS, upModule)
	}
	var got []string
	for _, n := range r.Modules[0].Nodes {
		got = append(got, n.Node)
		if err := check(n); err != nil {
			return fmt.Errorf("node %s: %w", n.Node, err)
		}
	}
	if !slices.Equal(got, names) {
		return fmt.Errorf("nodes %v, want %v", got, names)
	}
	return nil
}

func expectNode(n upgrade.NodeStatus, wanted, loaded string, ready bool, state string, cordoned bool) error {
	if n.Wanted != wanted || n.Loaded != loaded || n.Ready != ready || n.State != state || n.Cordoned != cordoned || n.DevicePlugin != "ready" {
		return fmt.Errorf("wanted %q loaded %q ready %t state %q cordoned %t device plugin %q; want %q %q %t %q %t \"ready\"",
			n.Wanted, n.Loaded, n.Ready, n.State, n.Cordoned, n.DevicePlugin, wanted, loaded, ready, state, cordoned)
	}
	return nil
}

func getNode(t *testing.T, ctx context.Context, name string) *corev1.Node {
	t.Helper()
	n, err := kc.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func label(t *testing.T, ctx context.Context, node, key, value string) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{key: value}}})
	if _, err := kc.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createPod(t *testing.T, ctx context.Context, ns, name, node string, labels map[string]string) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.example.com/burn:1"}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
	}
	if _, err := kc.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// recorder keeps the watch streams of the nodes and of the module's pods, each in the API
// server's order.
type recorder struct {
	nodes, pods watch.Interface
	wg          sync.WaitGroup
	nodeEvents  []*corev1.Node
	podEvents   []podEvent
}

type podEvent struct {
	typ watch.EventType
	pod *corev1.Pod
}

func record(t *testing.T, ctx context.Context) *recorder {
	t.Helper()
	r := &recorder{}
	// Each watch starts where a List left off: only what happens from now on.
	nodes, err := kc.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := kc.Client.CoreV1().Pods(upNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.nodes, err = kc.Client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{ResourceVersion: nodes.ResourceVersion}); err != nil {
		t.Fatal(err)
	}
	if r.pods, err = kc.Client.CoreV1().Pods(upNS).Watch(ctx, metav1.ListOptions{ResourceVersion: pods.ResourceVersion}); err != nil {
		t.Fatal(err)
	}
	for i := range nodes.Items {
		r.nodeEvents = append(r.nodeEvents, &nodes.Items[i])
	}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		for e := range r.nodes.ResultChan() {
			if n, ok := e.Object.(*corev1.Node); ok {
				r.nodeEvents = append(r.nodeEvents, n)
			}
		}
	}()
	go func() {
		defer r.wg.Done()
		for e := range r.pods.ResultChan() {
			if p, ok := e.Object.(*corev1.Pod); ok {
				r.podEvents = append(r.podEvents, podEvent{e.Type, p})
			}
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *recorder) stop() {
	r.nodes.Stop()
	r.pods.Stop()
	r.wg.Wait()
}

// check replays the streams: the bound on the nodes, and per node the device plugin's order.
func (r *recorder) check(t *testing.T, names []string) {
	t.Helper()
	// Nodes: at most upParallel upgrading or cordoned at once; each node cordoned, then uncordoned.
	state := map[string]*corev1.Node{}
	maxBusy, maxCordoned := 0, 0
	cordonedOnce := map[string]bool{}
	for _, n := range r.nodeEvents {
		state[n.Name] = n
		busy, cordoned := 0, 0
		for _, s := range state {
			switch s.Labels[upState] {
			case "draining", "restarting", "validating":
				busy++
			}
			if s.Spec.Unschedulable {
				cordoned++
				cordonedOnce[s.Name] = true
			}
		}
		maxBusy, maxCordoned = max(maxBusy, busy), max(maxCordoned, cordoned)
	}
	if maxBusy > upParallel || maxCordoned > upParallel {
		t.Errorf("at most %d nodes at a time may upgrade: saw %d upgrading and %d cordoned at once", upParallel, maxBusy, maxCordoned)
	}
	if maxBusy != upParallel {
		t.Errorf("with five nodes requested at once, %d should upgrade together: saw at most %d", upParallel, maxBusy)
	}
	for _, n := range names {
		if !cordonedOnce[n] {
			t.Errorf("node %s was never cordoned during its upgrade", n)
		}
		if s := state[n]; s == nil || s.Spec.Unschedulable {
			t.Errorf("node %s is still cordoned after its upgrade", n)
		}
	}

	// Pods: per node, the order of what happened to its loader and device plugin pods.
	logs := map[string][]string{}  // per node, its steps in order
	seen := map[types.UID]string{} // what was last recorded of a pod
	noReady := map[string]bool{}   // nodes without a Ready loader now (none at the start)
	maxUnavailable := 0
	for _, e := range r.podEvents {
		p := e.pod
		n := p.Spec.NodeName
		if n == "" {
			continue
		}
		role := p.Labels["kmm.node.kubernetes.io/role"]
		version := p.Annotations["render.kmm.dev/module-version"]
		var step string
		switch {
		case e.typ == watch.Deleted || p.DeletionTimestamp != nil:
			step = role + " " + version + " leaves"
		case upgrade.PodReady(p):
			step = role + " " + version + " ready"
		default:
			continue
		}
		if role == "device-plugin" {
			step = "device-plugin " + strings.Fields(step)[len(strings.Fields(step))-1]
		}
		if seen[p.UID] == step {
			continue
		}
		seen[p.UID] = step
		if l := logs[n]; len(l) == 0 || l[len(l)-1] != step {
			logs[n] = append(l, step)
		}
		if role == "module-loader" {
			noReady[n] = !strings.HasSuffix(step, "ready")
			count := 0
			for _, down := range noReady {
				if down {
					count++
				}
			}
			maxUnavailable = max(maxUnavailable, count)
		}
	}
	if maxUnavailable > 2 {
		t.Errorf("maxUnavailable is 2: saw %d nodes without a Ready loader at once", maxUnavailable)
	}
	want := []string{"device-plugin leaves", "module-loader 1.0.0 leaves", "module-loader 2.0.0 ready", "device-plugin ready"}
	for _, n := range names {
		if got := logs[n]; !slices.Equal(got, want) {
			t.Errorf("node %s: %q, want %q (device plugin out first, back last)", n, got, want)
		}
	}
}
