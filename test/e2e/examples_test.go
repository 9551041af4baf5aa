package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"kmm.dev/kmm/internal/localcluster"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/render"
)

// kernelChange moves every node running one kernel to another, and adds a node (a copy of one
// that runs cloneKernel) with a new kernel: both new kernels are matched by a mapping, and no
// node runs the old kernel any more.
type kernelChange struct {
	from, to    string
	cloneKernel string
	newKernel   string
	// extraLiterals are literal mappings added to the values (module name -> kernels), for
	// examples whose mappings are all literal: a new kernel gets a loader only once its
	// mapping is added, as examples/ubuntu/values.yaml explains.
	extraLiterals map[string][]string
}

var changes = map[string]kernelChange{
	"eks": {
		from: "5.4.190-107.353.amzn2.x86_64", to: "5.4.209-116.367.amzn2.x86_64",
		cloneKernel: "6.1.112-122.189.amzn2023.x86_64", newKernel: "6.1.115-126.197.amzn2023.x86_64",
	},
	// The COS pool gets no loader (LoadPin), so the Ubuntu pool's kernel moves.
	"gke": {
		from: "5.15.0-1034-gke", to: "5.15.0-1049-gke",
		cloneKernel: "5.15.0-1034-gke", newKernel: "5.15.0-1052-gke",
	},
	"ubuntu": {
		from: "6.8.0-51-generic", to: "6.8.0-52-generic",
		cloneKernel: "5.15.0-105-generic", newKernel: "5.15.0-107-generic",
		extraLiterals: map[string][]string{"kmm-ci-a": {"6.8.0-52-generic", "5.15.0-107-generic"}},
	},
}

const newNodeName = "kmm-e2e-joined-node"

// TestExamples installs the chart for each example through Helm 3 (kmm-render by path) and
// Helm 4 (the kmm-render plugin) on a cluster holding the example's nodes, and checks the
// loaders, a no-op upgrade, an upgrade after nodes changed kernel or joined, a rollback and
// the uninstall.
func TestExamples(t *testing.T) {
	for _, name := range []string{"eks", "gke", "ubuntu"} {
		t.Run(name, func(t *testing.T) {
			for _, version := range []int{3, 4} {
				t.Run(fmt.Sprintf("helm%d", version), func(t *testing.T) {
					lifecycle(t, version, loadExample(t, name), changes[name])
				})
			}
		})
	}
}

func lifecycle(t *testing.T, version int, ex *example, ch kernelChange) {
	ctx := testContext(t, 4*time.Minute)
	t0 := time.Now()
	useExample(t, ctx, ex)
	t.Logf("cluster holds the %d nodes of examples/%s (%.1fs)", len(ex.nodes), ex.name, time.Since(t0).Seconds())
	t.Cleanup(func() {
		if t.Failed() {
			cleanupRelease(t, context.Background())
		}
	})

	values := ex.values
	if len(ch.extraLiterals) > 0 {
		values = withExtraLiterals(t, ex.values, ch.extraLiterals)
		ex.values = values
		ex.loadModules(t)
	}
	modules := ex.helmModules()
	var extra []string
	if len(ex.operatorModules()) > 0 {
		// kwok's pods serve nothing, so a KMM webhook (failurePolicy Fail) would refuse
		// every Module: run these examples without it.
		extra = []string{"--set", "webhook.enabled=false"}
	}
	cmd := func(verb, values string) []string {
		args := []string{verb, release, chartDir, "-n", releaseNamespace, "-f", values}
		if verb == "install" {
			args = append(args, "--create-namespace")
		}
		args = append(args, extra...)
		args = append(args, helmArgs(version)...)
		return append(args, "--wait", "--timeout", "3m")
	}

	// Install: every loader where it belongs, and nowhere else, and every `via: operator` module
	// accepted, from one `helm install` (the Modules follow the CRDs as post-install hooks).
	base := 1
	helm(t, ctx, version, cmd("install", values)...)
	want := expected(modules, ex.nodes)
	waitPlacement(t, ctx, modules, want)
	rev1, err := daemonSetKernels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkServiceAccounts(t, ctx, ex)
	checkDaemonSetCount(t, rev1, want)
	checkBuilds(t, ctx, ex.buildInputs(t, ex.nodes), modules, want)
	moduleUIDs := checkOperatorModules(t, ctx, ex)

	// No-op upgrade: nothing changes, not even a DaemonSet's generation or a pod.
	gens, err := generations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := loaderPods(ctx, modules)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := buildJobUIDs(ctx, modules)
	if err != nil {
		t.Fatal(err)
	}
	helm(t, ctx, version, cmd("upgrade", values)...)
	deadline := time.Now().Add(2 * time.Second) // a rollout would replace pods within this
	for {
		gens2, err := generations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pods2, err := loaderPods(ctx, modules)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(gens, gens2) {
			t.Fatalf("no-op upgrade changed DaemonSets (name -> generation):\nbefore %v\nafter  %v", gens, gens2)
		}
		if !maps.Equal(pods, pods2) {
			t.Fatalf("no-op upgrade changed loader pods:\nbefore %v\nafter  %v", sortedValues(pods), sortedValues(pods2))
		}
		jobs2, err := buildJobUIDs(ctx, modules)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(jobs, jobs2) {
			t.Fatalf("no-op upgrade changed build Jobs (name -> UID):\nbefore %v\nafter  %v", jobs, jobs2)
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("no-op upgrade left %d DaemonSets, %d pods and %d build Jobs untouched", len(gens), len(pods), len(jobs))
	checkModulesAdopted(t, ctx, version, ex, moduleUIDs)

	// Kernel change: nodes move to a new kernel, a node with another new kernel joins.
	changed := applyChange(t, ctx, ex, ch)
	helm(t, ctx, version, cmd("upgrade", values)...)
	want2 := expected(modules, changed)
	waitPlacement(t, ctx, modules, want2)
	after, err := daemonSetKernels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Collect(maps.Values(after))
	for _, k := range []string{ch.to, ch.newKernel} {
		if !slices.Contains(got, k) {
			t.Errorf("after the upgrade no DaemonSet loads for new kernel %s; DaemonSets: %v", k, after)
		}
	}
	if slices.Contains(got, ch.from) {
		t.Errorf("after the upgrade a DaemonSet remains for kernel %s, which no node runs any more: %v", ch.from, after)
	}
	checkDaemonSetCount(t, after, want2)
	checkBuilds(t, ctx, ex.buildInputs(t, changed), modules, want2)

	// Rollback to the first revision with every module: its DaemonSets again.
	helm(t, ctx, version, "rollback", release, fmt.Sprint(base), "-n", releaseNamespace, "--wait", "--timeout", "3m")
	var now map[string]string
	if err := poll(ctx, pollTimeout, func() (bool, error) {
		now, err = daemonSetKernels(ctx)
		return err == nil && maps.Equal(now, rev1), err
	}); err != nil {
		t.Fatalf("after rollback to revision %d the DaemonSets are\n%v\nwant (revision %d)\n%v\n(%v)", base, keys(now), base, keys(rev1), err)
	}
	t.Logf("rollback restored the %d DaemonSets of revision %d", len(rev1), base)

	// Uninstall: no DaemonSet, ServiceAccount, loader pod or release record is left.
	helm(t, ctx, version, "uninstall", release, "-n", releaseNamespace, "--wait", "--timeout", "3m")
	checkNothingLeft(t, ctx, modules)
}

// applyChange changes the cluster's nodes as ch says and returns the nodes the expectation is
// computed from, changed the same way.
func applyChange(t *testing.T, ctx context.Context, ex *example, ch kernelChange) []nodes.Node {
	t.Helper()
	var out []nodes.Node
	var moved []string
	for _, n := range ex.nodes {
		if n.Kernel == ch.from {
			if err := kc.SetKernel(ctx, n.Name, ch.to, nil); err != nil {
				t.Fatal(err)
			}
			n.Kernel = ch.to
			n.Labels = withLabels(n.Labels, localcluster.NFDKernelLabels(ch.to))
			moved = append(moved, n.Name)
		}
		out = append(out, n)
	}
	if len(moved) == 0 {
		t.Fatalf("no node of examples/%s runs kernel %s", ex.name, ch.from)
	}
	var proto *corev1.Node
	for i := range ex.objects {
		if o := &ex.objects[i]; o.Status.NodeInfo.KernelVersion == ch.cloneKernel && len(o.Spec.Taints) == 0 {
			proto = o
			break
		}
	}
	if proto == nil {
		t.Fatalf("no untainted node of examples/%s runs kernel %s", ex.name, ch.cloneKernel)
	}
	joined := cloneNode(proto, newNodeName, ch.newKernel)
	if err := kc.AddNode(ctx, joined); err != nil {
		t.Fatal(err)
	}
	out = append(out, nodes.FromCoreV1(&joined))
	t.Logf("moved %s from kernel %s to %s; node %s (like %s) joined with kernel %s",
		strings.Join(moved, ", "), ch.from, ch.to, newNodeName, proto.Name, ch.newKernel)
	return out
}

// cloneNode copies a node under another name, running kernel.
func cloneNode(proto *corev1.Node, name, kernel string) corev1.Node {
	n := *proto.DeepCopy()
	n.Name = name
	n.Labels = withLabels(n.Labels, localcluster.NFDKernelLabels(kernel))
	n.Labels["kubernetes.io/hostname"] = name
	n.Spec.ProviderID = ""
	n.Spec.PodCIDR, n.Spec.PodCIDRs = "", nil
	n.Status.NodeInfo.KernelVersion = kernel
	n.Status.NodeInfo.BootID, n.Status.NodeInfo.MachineID, n.Status.NodeInfo.SystemUUID = "", "", ""
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "10.255.0.10"},
		{Type: corev1.NodeHostName, Address: name},
	}
	return n
}

func withLabels(base, extra map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, extra)
	return out
}

// checkServiceAccounts: one loader ServiceAccount in each module namespace.
func checkServiceAccounts(t *testing.T, ctx context.Context, ex *example) {
	t.Helper()
	_, sas, err := releaseObjects(ctx, loaderLabel)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ns := range ex.loaderNamespaces() {
		want = append(want, ns+"/"+release+"-module-loader")
	}
	sort.Strings(want)
	if !slices.Equal(sas, want) {
		t.Errorf("release ServiceAccounts = %v, want %v", sas, want)
	}
}

// checkDaemonSetCount: exactly one DaemonSet per module and kernel, nothing else.
func checkDaemonSetCount(t *testing.T, dss map[string]string, want placement) {
	t.Helper()
	n := 0
	for _, p := range want {
		n += len(kernelsOf(p))
	}
	if len(dss) != n {
		t.Errorf("release has %d DaemonSets, want %d (one per module and kernel): %v", len(dss), n, keys(dss))
	}
}

func checkNothingLeft(t *testing.T, ctx context.Context, modules []*render.Module) {
	t.Helper()
	var dss, sas, secrets, deps []string
	var pods map[string]string
	var jobs map[string]types.UID
	err := poll(ctx, pollTimeout, func() (bool, error) {
		var err error
		if dss, sas, err = releaseObjects(ctx, instanceLabel); err != nil {
			return false, err
		}
		dl, err := kc.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: instanceLabel})
		if err != nil {
			return false, err
		}
		deps = deps[:0]
		for _, d := range dl.Items {
			deps = append(deps, d.Namespace+"/"+d.Name)
		}
		if secrets, err = releaseSecrets(ctx); err != nil {
			return false, err
		}
		p, err := loaderPods(ctx, modules)
		if err != nil {
			return false, err
		}
		pods = map[string]string{}
		for uid, v := range p {
			pods[string(uid)] = v
		}
		if jobs, err = buildJobUIDs(ctx, modules); err != nil {
			return false, err
		}
		return len(dss)+len(sas)+len(deps)+len(secrets)+len(pods)+len(jobs) == 0, nil
	})
	if err != nil {
		t.Fatalf("after uninstall: %v\nDaemonSets %v\nServiceAccounts %v\nDeployments %v\nrelease secrets %v\nloader pods %v\nbuild Jobs %v", err, dss, sas, deps, secrets, sortedValues(pods), keys(jobs))
	}
}

// checkOperatorModules: the API server holds a KMM Module for every `via: operator` module, owned
// by the release (Helm's ownership metadata). It returns their UIDs by "<namespace>/<name>".
func checkOperatorModules(t *testing.T, ctx context.Context, ex *example) map[string]types.UID {
	t.Helper()
	uids := map[string]types.UID{}
	ops := ex.operatorModules()
	if len(ops) == 0 {
		return uids
	}
	dyn, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ops {
		obj, err := dyn.Resource(moduleGVR).Namespace(m.Namespace).Get(ctx, m.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("operator module %s: %v", m.ID(), err)
			continue
		}
		if got := obj.GetAnnotations()["meta.helm.sh/release-name"]; got != release {
			t.Errorf("Module %s: meta.helm.sh/release-name=%q, want %q (the release must own it)", m.ID(), got, release)
		}
		uids[m.ID()] = obj.GetUID()
	}
	t.Logf("%d KMM Module object(s) accepted", len(ops))
	return uids
}

// checkModulesAdopted: after an upgrade, each Module is the same object (never deleted and
// created again, which would unload the module), and in the release manifest. (Helm 3 leaves the
// hook annotations it created the Module with on the live object; Helm decides hooks from the
// chart, not from live objects, so they are inert.)
func checkModulesAdopted(t *testing.T, ctx context.Context, version int, ex *example, before map[string]types.UID) {
	t.Helper()
	after := checkOperatorModules(t, ctx, ex)
	if !maps.Equal(before, after) {
		t.Errorf("Module UIDs changed across the upgrade: before %v, after %v", before, after)
	}
	dyn, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	manifest := helm(t, ctx, version, "get", "manifest", release, "-n", releaseNamespace)
	for _, m := range ex.operatorModules() {
		obj, err := dyn.Resource(moduleGVR).Namespace(m.Namespace).Get(ctx, m.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if obj.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("Module %s is not labelled app.kubernetes.io/managed-by=Helm", m.ID())
		}
		if !strings.Contains(manifest, "kind: Module\nmetadata:\n  name: "+m.Name+"\n") {
			t.Errorf("Module %s is not in the release manifest after the upgrade (not adopted)", m.ID())
		}
	}
}

func keys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func sortedValues[K comparable](m map[K]string) []string {
	return slices.Sorted(maps.Values(m))
}

// TestSelfSignedWebhookNoOpUpgrade: with the chart's default webhook certificate (self-signed,
// no cert-manager), an upgrade with nothing changed reuses the certificate (the chart looks the
// Secret up), so no Deployment rolls and no loader DaemonSet changes.
func TestSelfSignedWebhookNoOpUpgrade(t *testing.T) {
	ex := loadExample(t, "gke")
	for _, version := range []int{3, 4} {
		t.Run(fmt.Sprintf("helm%d", version), func(t *testing.T) {
			ctx := testContext(t, 3*time.Minute)
			useExample(t, ctx, ex)
			t.Cleanup(func() { cleanupRelease(t, context.Background()) })
			args := func(verb string) []string {
				a := []string{verb, release, chartDir, "-n", releaseNamespace, "-f", ex.values, "--set", "certManager.enabled=false"}
				if verb == "install" {
					a = append(a, "--create-namespace")
				}
				return append(append(a, helmArgs(version)...), "--wait", "--timeout", "3m")
			}
			helm(t, ctx, version, args("install")...)
			waitPlacement(t, ctx, ex.helmModules(), expected(ex.helmModules(), ex.nodes))
			secret := release + "-webhook-selfsigned-tls"
			before, err := kc.Client.CoreV1().Secrets(releaseNamespace).Get(ctx, secret, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the chart's self-signed webhook certificate: %v", err)
			}
			gens, err := generations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			helm(t, ctx, version, args("upgrade")...)
			after, err := kc.Client.CoreV1().Secrets(releaseNamespace).Get(ctx, secret, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range before.Data {
				if string(after.Data[k]) != string(v) {
					t.Errorf("upgrade changed %s in Secret %s: the certificate was not reused", k, secret)
				}
			}
			gens2, err := generations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(gens, gens2) {
				t.Errorf("no-op upgrade changed objects (name -> generation):\nbefore %v\nafter  %v", gens, gens2)
			}

			// Renewal. A short-lived certificate (1 day, inside the 30-day renewal window) is
			// renewed by the next upgrade, signed by the same CA: the webhook configuration's
			// caBundle stays as it was. Then a renewal window longer than the CA's life renews the
			// CA too, and the caBundle follows it.
			renew := func(set ...string) (old, now *corev1.Secret) {
				t.Helper()
				old, err := kc.Client.CoreV1().Secrets(releaseNamespace).Get(ctx, secret, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				a := args("upgrade")
				for _, kv := range set {
					a = append(a, "--set", kv)
				}
				helm(t, ctx, version, a...)
				now, err = kc.Client.CoreV1().Secrets(releaseNamespace).Get(ctx, secret, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				vwc, err := kc.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: instanceLabel})
				if err != nil {
					t.Fatal(err)
				}
				if len(vwc.Items) == 0 {
					t.Fatal("no ValidatingWebhookConfiguration")
				}
				for _, w := range vwc.Items[0].Webhooks {
					if string(w.ClientConfig.CABundle) != string(now.Data["ca.crt"]) {
						t.Errorf("webhook %s trusts another CA than the one that signed the serving certificate", w.Name)
					}
				}
				return old, now
			}
			same := func(a, b *corev1.Secret, key string) bool { return string(a.Data[key]) == string(b.Data[key]) }
			short := "webhook.selfSignedValidityDays=1"
			// A window longer than the CA's life: both are renewed (the new certificate lives a day).
			old, now := renew(short, "webhook.selfSignedRenewBeforeDays=4000")
			if same(old, now, "ca.crt") || same(old, now, "tls.crt") {
				t.Errorf("a renewal window longer than the CA's life renewed neither the CA nor the certificate")
			}
			// The 1-day certificate is within the 30-day window: renewed, by the same CA.
			old, now = renew(short)
			if same(old, now, "tls.crt") {
				t.Errorf("an upgrade kept a certificate that expires within selfSignedRenewBeforeDays (%s)", now.Annotations["kmm.dev/webhook-tls-not-after"])
			}
			if !same(old, now, "ca.crt") {
				t.Errorf("renewing the serving certificate replaced the CA, which had ten years left")
			}
			// Back to the defaults: renewed once more (it still expires within a day), then kept.
			_, _ = renew()
			old, now = renew()
			if !same(old, now, "tls.crt") || !same(old, now, "ca.crt") {
				t.Errorf("an upgrade renewed a certificate with ten years left")
			}
			helm(t, ctx, version, "uninstall", release, "-n", releaseNamespace, "--wait", "--timeout", "3m")
		})
	}
}
