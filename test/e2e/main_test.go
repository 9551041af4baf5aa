package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kmm.dev/kmm/internal/localcluster"
)

// Shared by every test of the package: one control plane, one kmm-render build.
var (
	repo       string                // repository root
	kc         *localcluster.Cluster // the local cluster
	kmmRender  string                // freshly built kmm-render
	kmmUpgrade string                // and kmm-upgrade, the upgrade controller
	chartDir   string                // charts/kmm
)

// TestMain builds kmm-render and its Helm 4 plugin, starts the local control plane once for the
// whole package, runs the tests, and always stops the control plane again: on return, on
// SIGINT/SIGTERM, and (through the harness's watchdog) when a test panics or go test kills the
// binary at -timeout.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
		return 1
	}
	var err error
	if repo, err = localcluster.RepoRoot(); err != nil {
		return fail("%v", err)
	}
	chartDir = filepath.Join(repo, "charts", "kmm")
	assets, err := localcluster.DefaultAssetsDir()
	if err != nil {
		return fail("%v", err)
	}
	if err := localcluster.CheckAssets(assets); err != nil {
		return fail("%v", err)
	}
	if err := localcluster.CheckHelm(assets); err != nil {
		return fail("%v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := localcluster.Start(ctx, localcluster.Options{AssetsDir: assets, Log: os.Stderr})
	if err != nil {
		return fail("starting the local cluster: %v", err)
	}
	kc = c
	stopSignals := c.StopOnSignal()
	defer stopSignals()
	code := 1
	defer func() {
		// After a signal StopOnSignal is already stopping the cluster: Stop waits for it.
		if code != 0 && !c.Interrupted() {
			c.Keep = true
			fmt.Fprintf(os.Stderr, "e2e: tests failed; kept the cluster's folder %s\n%s", c.WorkDir, c.LogSummary())
		}
		if err := c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: stopping the cluster: %v\n", err)
		}
	}()

	// Build into the cluster's folder, which goes with the cluster however the tests end.
	t0 := time.Now()
	tmp := filepath.Join(c.WorkDir, "e2e")
	kmmRender = filepath.Join(tmp, "kmm-render")
	kmmUpgrade = filepath.Join(tmp, "kmm-upgrade")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fail("%v", err)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", tmp+string(filepath.Separator), "./cmd/kmm-render", "./cmd/kmm-upgrade")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return fail("go build ./cmd/kmm-render ./cmd/kmm-upgrade: %v\n%s", err, out)
	}
	manifest, err := localcluster.PluginManifest(repo)
	if err != nil {
		return fail("%v", err)
	}
	pluginDir := filepath.Join(tmp, "plugin", localcluster.PluginName)
	if err := localcluster.WritePlugin(pluginDir, kmmRender, manifest); err != nil {
		return fail("laying out the Helm 4 plugin: %v", err)
	}
	fmt.Fprintf(os.Stderr, "e2e: built kmm-render and kmm-upgrade (%.1fs)\n", time.Since(t0).Seconds())
	if err := c.InstallPlugin(ctx, pluginDir); err != nil {
		return fail("installing the Helm 4 plugin: %v", err)
	}
	// A prerequisite the examples name: cert-manager (its CRDs only; see CertManagerCRDs).
	if err := c.InstallCertManagerCRDs(ctx); err != nil {
		return fail("creating cert-manager's CRDs: %v", err)
	}
	code = m.Run()
	if err := c.Healthy(); err != nil && !c.Interrupted() {
		fmt.Fprintf(os.Stderr, "e2e: the cluster broke during the tests: %v\n", err)
		code = 1
	}
	return code
}

// helmArgs are the post-renderer arguments of each Helm version: Helm 3 runs the kmm-render
// binary by path; Helm 4 runs the installed plugin, which is told the kubeconfig explicitly.
func helmArgs(version int) []string {
	if version == 3 {
		return []string{"--post-renderer", kmmRender}
	}
	return []string{"--post-renderer", localcluster.PluginName,
		"--post-renderer-args=--kubeconfig", "--post-renderer-args=" + kc.Kubeconfig}
}

// helm runs helm and fails the test on a non-zero exit.
func helm(t *testing.T, ctx context.Context, version int, args ...string) string {
	t.Helper()
	t0 := time.Now()
	stdout, stderr, err := kc.Helm(ctx, version, args...)
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	t.Logf("helm%d %s (%.1fs)", version, strings.Join(args[:min(2, len(args))], " "), time.Since(t0).Seconds())
	return stdout
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
