package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInstallFailures: when kmm-render cannot learn the nodes, helm install fails, says why,
// and creates nothing.
func TestInstallFailures(t *testing.T) {
	ex := loadExample(t, "gke")
	ctx := testContext(t, 3*time.Minute)
	useExample(t, ctx, ex)

	dir := t.TempDir()
	unreachable := filepath.Join(dir, "unreachable.kubeconfig")
	if err := os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster:
    server: https://127.0.0.1:1
    insecure-skip-tls-verify: true
users:
- name: nobody
  user:
    token: nothing
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody}
current-context: nowhere
`), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "does-not-exist", "nodes.yaml")
	empty := filepath.Join(dir, "empty-nodes.yaml")
	if err := os.WriteFile(empty, []byte("apiVersion: v1\nkind: List\nitems: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		args []string
		// Helm 3 shows kmm-render's stderr: it must name the problem.
		helm3Says []string
	}{
		{"unreachable cluster", []string{"--kubeconfig", unreachable}, []string{"https://127.0.0.1:1"}},
		{"missing node file", []string{"--nodes", missing}, []string{missing, "no such file"}},
		{"node file without nodes", []string{"--nodes", empty}, []string{empty, "holds no nodes"}},
	}
	for _, version := range []int{3, 4} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("helm%d/%s", version, tc.name), func(t *testing.T) {
				expectInstallRefused(t, ctx, version, ex.values, tc.args, tc.helm3Says)
			})
		}
	}
}

// expectInstallRefused runs helm install with kmm-render as post-renderer (postArgs its
// arguments) and checks that it fails, that the user is told each of says (Helm 3 shows
// kmm-render's stderr; Helm 4 names the plugin, and kmm-render's message is in
// $HELM_CACHE_HOME), and that nothing of the release was created.
func expectInstallRefused(t *testing.T, ctx context.Context, version int, values string, postArgs, says []string) {
	t.Helper()
	args := []string{"install", release, chartDir, "-n", releaseNamespace, "--create-namespace", "-f", values}
	if version == 3 {
		args = append(args, "--post-renderer", kmmRender)
	} else {
		args = append(args, "--post-renderer", "kmm-render")
	}
	for _, a := range postArgs {
		args = append(args, "--post-renderer-args="+a)
	}
	args = append(args, "--wait", "--timeout", "1m")
	lastError := filepath.Join(kc.HelmCacheHome(version), "kmm-render", "last-error.txt")
	_ = os.Remove(lastError)
	stdout, stderr, err := kc.Helm(ctx, version, args...)
	if err == nil {
		cleanupRelease(t, ctx)
		t.Fatalf("helm%d install succeeded; want a failure\nstdout:\n%s\nstderr:\n%s", version, stdout, stderr)
	}
	t.Logf("helm%d failed as it should: %s", version, strings.TrimSpace(stderr))
	wants := says
	if version == 4 {
		wants = []string{"kmm-render"}
		msg, err := os.ReadFile(lastError)
		if err != nil {
			t.Errorf("kmm-render left no message for Helm 4 users: %v", err)
		}
		for _, w := range says {
			if !strings.Contains(string(msg), w) {
				t.Errorf("%s does not mention %q:\n%s", lastError, w, msg)
			}
		}
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Errorf("helm%d stderr does not mention %q:\n%s", version, w, stderr)
		}
	}
	dss, sas, err := releaseObjects(ctx, instanceLabel)
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := releaseSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dss)+len(sas)+len(secrets) > 0 {
		t.Errorf("a failed install left objects behind: DaemonSets %v, ServiceAccounts %v, release secrets %v", dss, sas, secrets)
		cleanupRelease(t, ctx)
	}
}

// TestHelm4PluginReadsKUBECONFIG: Helm 4 passes its environment to the plugin, so with no
// --post-renderer-args the plugin finds the cluster through KUBECONFIG.
func TestHelm4PluginReadsKUBECONFIG(t *testing.T) {
	ex := loadExample(t, "gke")
	ctx := testContext(t, 2*time.Minute)
	useExample(t, ctx, ex)
	out := helm(t, ctx, 4, "template", release, chartDir, "-n", releaseNamespace, "-f", ex.values, "--post-renderer", "kmm-render")
	checkLoaders(t, []byte(out), ex)
}
