package e2e

import (
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kmm.dev/kmm/pkg/drift"
)

// TestDrift: the kmm-render drift command, run as the binary against the local cluster with a
// token of the ServiceAccount the chart gives its drift CronJob (its RBAC and nothing else; the
// CronJob's pod itself does not run on kwok). After the install it reports in sync; a node that
// joins with a kernel two modules map is named, with an Event on each module's loader; after
// helm upgrade it is in sync again; a node that leaves makes its module's loader stale, which is
// no drift.
func TestDrift(t *testing.T) {
	ex := loadExample(t, "gke")
	ctx := testContext(t, 4*time.Minute)
	useExample(t, ctx, ex)
	cleanupInstall(t)
	args := func(verb string) []string {
		a := []string{verb, release, chartDir, "-n", releaseNamespace, "-f", ex.values,
			"--set", "drift.enabled=true", "--set", "drift.image.repository=registry.example.com/kmm-render", "--set", "drift.image.tag=test",
			// No Job during the test: the command is tested as a binary.
			"--set", "drift.schedule=0 0 1 1 *"}
		if verb == "install" {
			a = append(a, "--create-namespace")
		}
		return append(append(a, helmArgs(4)...), "--wait", "--timeout", "3m")
	}
	helm(t, ctx, 4, args("install")...)
	kubeconfig := tokenKubeconfig(t, ctx, releaseNamespace, release+"-drift")

	run := func(extra ...string) (drift.Report, int, string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, kmmRender, append([]string{"drift", "--release", release, "-n", releaseNamespace,
			"--kubeconfig", kubeconfig, "-o", "json"}, extra...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var r drift.Report
		if code != 2 {
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("kmm-render drift -o json: %v\n%s\nstderr: %s", err, out, stderr.String())
			}
		}
		return r, code, stderr.String()
	}

	r, code, stderr := run()
	if code != 0 || len(r.Missing) != 0 || len(r.Stale) != 0 {
		t.Fatalf("right after the install: exit %d, missing %v, stale %v (want in sync)\n%s", code, r.Missing, r.Stale, stderr)
	}
	if r.Release != release || r.Revision != 1 {
		t.Errorf("report names release %s revision %d, want %s 1", r.Release, r.Revision, release)
	}

	// A node joins with a kernel that kmm-ci-a-ubuntu and kmm-kmod map (zone a Ubuntu pool).
	const kernel = "5.15.0-1052-gke"
	proto := ex.objects[slices.IndexFunc(ex.objects, func(o corev1.Node) bool { return o.Name == "gke-prod-ubuntu-pool-3f9a1c7e-2mzp" })]
	joined := cloneNode(&proto, "kmm-drift-joined", kernel)
	if err := kc.AddNode(ctx, joined); err != nil {
		t.Fatal(err)
	}
	r, code, stderr = run("--events")
	if code != 1 {
		t.Fatalf("after a node joined with %s: exit %d, want 1 (drift)\n%s", kernel, code, stderr)
	}
	want := []drift.Pair{
		{Module: "kmm-demo/kmm-ci-a-ubuntu", Kernel: kernel, Nodes: []string{joined.Name}},
		{Module: "kmm-demo/kmm-kmod", Kernel: kernel, Nodes: []string{joined.Name}},
	}
	if !slices.EqualFunc(r.Missing, want, func(a, b drift.Pair) bool {
		return a.Module == b.Module && a.Kernel == b.Kernel && slices.Equal(a.Nodes, b.Nodes)
	}) {
		t.Errorf("missing pairs %+v, want %+v", r.Missing, want)
	}
	events, err := kc.Client.CoreV1().Events("kmm-demo").List(ctx, metav1.ListOptions{FieldSelector: "reason=" + drift.EventReason})
	if err != nil {
		t.Fatal(err)
	}
	on := map[string]bool{}
	for _, e := range events.Items {
		if strings.Contains(e.Message, kernel) && e.Type == corev1.EventTypeWarning {
			on[e.InvolvedObject.Kind+" "+e.InvolvedObject.Name] = true
		}
	}
	for _, ds := range []string{"DaemonSet kmm-ci-a-ubuntu-loader-5-15-0-1034-gke", "DaemonSet kmm-kmod-loader-5-15-0-1034-gke"} {
		if !on[ds] {
			t.Errorf("no %s Event on %s; Events: %v", drift.EventReason, ds, on)
		}
	}

	// helm upgrade renders the loaders for the new kernel: in sync again.
	helm(t, ctx, 4, args("upgrade")...)
	r, code, stderr = run()
	if code != 0 || len(r.Missing) != 0 {
		t.Fatalf("after helm upgrade: exit %d, missing %v (want in sync)\n%s", code, r.Missing, stderr)
	}

	// The zone c node leaves: kmm-kmod-node's loader is stale, which is no drift.
	if err := kc.Client.CoreV1().Nodes().Delete(ctx, "gke-prod-ubuntu-pool-c71f0a93-w4rn", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r, code, stderr = run()
	if code != 0 {
		t.Fatalf("after a node left: exit %d, want 0\n%s", code, stderr)
	}
	if len(r.Stale) != 1 || r.Stale[0].Module != "kmm-demo/kmm-kmod-node" || r.Stale[0].Kernel != "5.15.0-1034-gke" {
		t.Errorf("stale loaders %+v, want kmm-demo/kmm-kmod-node for 5.15.0-1034-gke", r.Stale)
	}

	// Without the release's storage rights (another ServiceAccount), drift fails and says why.
	other := newServiceAccount(t, ctx, "kmm-drift-unbound")
	cmd := exec.CommandContext(ctx, kmmRender, "drift", "--release", release, "-n", releaseNamespace, "--kubeconfig", other)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "forbidden (403)") || !strings.Contains(string(out), "secrets") {
		t.Errorf("drift without rights: %v\n%s\nwant exit 2 naming the missing permission on secrets", err, out)
	}
}
