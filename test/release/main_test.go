// Package release tests what `make release` ships, the way a platform engineer installs it:
// the chart pushed to a real OCI registry (distribution/distribution on 127.0.0.1) with Helm 3
// and Helm 4 and installed from oci:// into a real local control plane with kwok nodes, the
// post-renderer plugin installed from its release archive, checksums and reproducible
// binaries, and the GitOps recipes (deploy/argocd's Config Management Plugin, deploy/flux's
// render script) run as Argo CD and CI would run them.
package release

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"kmm.dev/kmm/internal/localcluster"
)

var (
	repo     string                // repository root
	assets   string                // bin/assets: helm3, helm4, registry, the control plane
	kc       *localcluster.Cluster // local control plane with examples/gke's nodes
	relDir   string                // release build (the host's platform)
	relDir2  string                // second build of the same version, for reproducibility
	version  string                // the release version (from git describe)
	platform = runtime.GOOS + "-" + runtime.GOARCH
	registry string // host:port of the OCI registry
	fileURL  string // http://host:port serving relDir (a release download page)

	chartYAMLBefore []byte // charts/kmm/Chart.yaml before the release builds
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "release: "+format+"\n", args...)
		return 1
	}
	var err error
	if repo, err = localcluster.RepoRoot(); err != nil {
		return fail("%v", err)
	}
	if assets, err = localcluster.DefaultAssetsDir(); err != nil {
		return fail("%v", err)
	}
	if err := localcluster.CheckAssets(assets); err != nil {
		return fail("%v", err)
	}
	if err := localcluster.CheckHelm(assets); err != nil {
		return fail("%v", err)
	}
	if fi, err := os.Stat(filepath.Join(assets, "registry")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		return fail("assets folder %s lacks registry (distribution/distribution): run `make registry`", assets)
	}
	work, err := os.MkdirTemp("", "kmm-release-test-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(work)

	// The release build, twice: once with the version from git and Helm 3 packaging, once more
	// with that version given and Helm 4 packaging, into another folder; every file must be
	// byte-identical.
	if chartYAMLBefore, err = os.ReadFile(filepath.Join(repo, "charts", "kmm", "Chart.yaml")); err != nil {
		return fail("%v", err)
	}
	t0 := time.Now()
	tool := filepath.Join(work, "release-tool")
	if out, err := goCmd(repo, "build", "-o", tool, "./hack/release").CombinedOutput(); err != nil {
		return fail("go build ./hack/release: %v\n%s", err, out)
	}
	relDir, relDir2 = filepath.Join(work, "release"), filepath.Join(work, "release2")
	host := runtime.GOOS + "/" + runtime.GOARCH
	out, err := runTool(tool, "-out", relDir, "-helm", filepath.Join(assets, "helm3"), "-platforms", host)
	if err != nil {
		return fail("%v", err)
	}
	m1 := regexp.MustCompile(`(?m)/kmm-(\d[^/\s]*)\.tgz$`).FindStringSubmatch(out)
	if m1 == nil {
		return fail("the release build listed no chart package kmm-<version>.tgz:\n%s", out)
	}
	version = m1[1]
	if _, err := runTool(tool, "-out", relDir2, "-helm", filepath.Join(assets, "helm4"), "-version", version, "-platforms", host); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(os.Stderr, "release: built %s twice (%.1fs)\n", version, time.Since(t0).Seconds())

	// The registry, on a free port of 127.0.0.1, storing in a temporary folder.
	stopRegistry, err := startRegistry(work)
	if err != nil {
		return fail("%v", err)
	}
	defer stopRegistry()

	// The release files over HTTP, as a download page serves them (Helm 3 installs plugins
	// from a URL).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail("%v", err)
	}
	srv := &http.Server{Handler: tgzServer(relDir)}
	go srv.Serve(ln)
	defer srv.Close()
	fileURL = "http://" + ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := localcluster.Start(ctx, localcluster.Options{
		AssetsDir: assets, Log: os.Stderr, Nodes: filepath.Join(repo, "examples", "gke", "nodes.yaml"),
		WorkDir: filepath.Join(work, "cluster"),
	})
	if err != nil {
		return fail("starting the local cluster: %v", err)
	}
	kc = c
	stopSignals := c.StopOnSignal()
	defer stopSignals()
	code := 1
	defer func() {
		if code != 0 && !c.Interrupted() {
			fmt.Fprintf(os.Stderr, "release: tests failed\n%s", c.LogSummary())
		}
		if err := c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "release: stopping the cluster: %v\n", err)
		}
	}()
	code = m.Run()
	return code
}

func goCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	return cmd
}

func runTool(tool string, args ...string) (string, error) {
	cmd := exec.Command(tool, args...)
	cmd.Dir = repo
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("release %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// startRegistry runs distribution/distribution's registry on 127.0.0.1 and waits for /v2/.
func startRegistry(work string) (stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	registry = ln.Addr().String()
	ln.Close()
	dir := filepath.Join(work, "registry")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), registry)), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(assets, "registry"), "serve", config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting the registry: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + registry + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		select {
		case err := <-exited:
			logf.Close()
			log, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("the registry exited: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("the registry did not answer on %s within 30s:\n%s", registry, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tgzServer serves dir with Content-Type application/gzip for archives: Helm 3 installs a
// plugin from a URL only when a HEAD request says it is a gzip archive.
func tgzServer(dir string) http.Handler {
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".tgz") {
			w.Header().Set("Content-Type", "application/gzip")
		}
		files.ServeHTTP(w, r)
	})
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// helm runs helm 3 or 4 against the cluster (its own HELM_* folders) and fails on error.
func helm(t *testing.T, ctx context.Context, v int, args ...string) string {
	t.Helper()
	stdout, stderr, err := kc.Helm(ctx, v, args...)
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	return stdout
}
