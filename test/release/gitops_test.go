package release

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// pushOnce pushes the packaged chart to oci://<registry>/<path>/kmm with Helm 3.
func pushOnce(t *testing.T, path string) string {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	helm(t, ctx, 3, "push", chartFile(), fmt.Sprintf("oci://%s/%s", registry, path), "--plain-http")
	return fmt.Sprintf("oci://%s/%s/kmm", registry, path)
}

// toolEnv is a clean environment with `helm` (helm 3 or 4) first on PATH and Helm's folders
// in dir.
func toolEnv(t *testing.T, v int, dir string) []string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(assets, fmt.Sprintf("helm%d", v)), filepath.Join(bin, "helm")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	return []string{
		"PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir,
		"TMPDIR=" + dir,
		"HELM_CACHE_HOME=" + filepath.Join(dir, "helm", "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(dir, "helm", "config"),
		"HELM_DATA_HOME=" + filepath.Join(dir, "helm", "data"),
	}
}

// localRender is what the repository's chart renders with these values and nodes.
func localRender(t *testing.T, nodes string, values ...string) map[string]string {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	args := []string{"template", releaseName, filepath.Join(repo, "charts", "kmm"), "-n", releaseNS}
	for _, v := range values {
		args = append(args, "-f", v)
	}
	args = append(args, "--post-renderer", binary(relDir), "--post-renderer-args=--nodes", "--post-renderer-args="+nodes)
	ds := daemonSets(t, helm(t, ctx, 3, args...))
	if countLoaders(ds) == 0 {
		t.Fatalf("the repository's chart renders no loader for %s", nodes)
	}
	return ds
}

type cmp struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version  string `json:"version"`
		Discover struct {
			FileName string `json:"fileName"`
		} `json:"discover"`
		Generate struct {
			Command []string `json:"command"`
			Args    []string `json:"args"`
		} `json:"generate"`
	} `json:"spec"`
}

type application struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Source struct {
			Path   string `json:"path"`
			Plugin struct {
				Name string `json:"name"`
				Env  []struct {
					Name  string `json:"name"`
					Value string `json:"value"`
				} `json:"env"`
			} `json:"plugin"`
		} `json:"source"`
		Destination struct {
			Namespace string `json:"namespace"`
		} `json:"destination"`
	} `json:"spec"`
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestArgoCDPlugin runs deploy/argocd's Config Management Plugin as Argo CD's cmp-server
// does: its generate command, exec'd without a shell around it, in a copy of the example
// application's folder (with the rest of the repository, as Argo CD sends it), with the
// ARGOCD_APP_* and ARGOCD_ENV_* variables of deploy/argocd/example/application.yaml, with
// Helm 3 and with Helm 4 as the sidecar's helm, from a node snapshot and from the cluster.
func TestArgoCDPlugin(t *testing.T) {
	var plugin cmp
	readYAML(t, filepath.Join(repo, "deploy", "argocd", "plugin.yaml"), &plugin)
	if plugin.APIVersion != "argoproj.io/v1alpha1" || plugin.Kind != "ConfigManagementPlugin" || len(plugin.Spec.Generate.Command) == 0 {
		t.Fatalf("deploy/argocd/plugin.yaml is not a ConfigManagementPlugin with a generate command: %+v", plugin)
	}
	var app application
	readYAML(t, filepath.Join(repo, "deploy", "argocd", "example", "application.yaml"), &app)
	if want := plugin.Metadata.Name + "-" + plugin.Spec.Version; app.Spec.Source.Plugin.Name != want {
		t.Errorf("application.yaml names plugin %q; a sidecar plugin %s of version %s is %q", app.Spec.Source.Plugin.Name, plugin.Metadata.Name, plugin.Spec.Version, want)
	}

	// The sidecar patch hands kmm-render over as generate expects: the init container's
	// `kmm-render copy DIR` into a volume the sidecar mounts at DIR, KMM_RENDER=DIR/kmm-render.
	kmmRender := checkSidecarPatch(t, filepath.Join(repo, "deploy", "argocd", "repo-server-patch.yaml"))

	// The generate script and render.sh are POSIX sh (the sidecar's /bin/sh is dash or busybox).
	script := filepath.Join(t.TempDir(), "generate.sh")
	if err := os.WriteFile(script, []byte(strings.Join(plugin.Spec.Generate.Args, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{script, filepath.Join(repo, "deploy", "flux", "render.sh")} {
		if out, err := exec.Command("shellcheck", "-s", "sh", f).CombinedOutput(); err != nil {
			t.Errorf("shellcheck -s sh %s: %v\n%s", f, err, out)
		}
	}

	// The repository as Argo CD hands it over: a copy, the command running in the app's path.
	work := t.TempDir()
	for _, d := range []string{"deploy", "examples"} {
		if err := os.CopyFS(filepath.Join(work, "repo", d), os.DirFS(filepath.Join(repo, d))); err != nil {
			t.Fatal(err)
		}
	}
	appDir := filepath.Join(work, "repo", filepath.FromSlash(app.Spec.Source.Path))
	if m, _ := filepath.Glob(filepath.Join(appDir, plugin.Spec.Discover.FileName)); len(m) == 0 {
		t.Fatalf("discovery: %s has no %s, so Argo CD would not pick the plugin", app.Spec.Source.Path, plugin.Spec.Discover.FileName)
	}
	appEnv := map[string]string{}
	for _, e := range app.Spec.Source.Plugin.Env {
		appEnv[e.Name] = e.Value
	}
	// The chart from the test's registry instead of ghcr.io, over plain HTTP.
	appEnv["KMM_CHART"] = pushOnce(t, "argocd/charts")
	appEnv["KMM_CHART_VERSION"] = version
	appEnv["KMM_HELM_ARGS"] = "--plain-http"

	generate := func(t *testing.T, v int, env map[string]string, extra ...string) (string, string, error) {
		t.Helper()
		dir := filepath.Join(work, fmt.Sprintf("helm%d", v))
		cmdEnv := append(toolEnv(t, v, dir),
			"KMM_RENDER="+kmmRender,
			"ARGOCD_APP_NAME="+app.Metadata.Name,
			"ARGOCD_APP_NAMESPACE="+app.Spec.Destination.Namespace,
			"ARGOCD_APP_SOURCE_PATH="+app.Spec.Source.Path,
			"ARGOCD_APP_REVISION=0123456789abcdef0123456789abcdef01234567",
		)
		for k, val := range env {
			cmdEnv = append(cmdEnv, "ARGOCD_ENV_"+k+"="+val)
		}
		cmdEnv = append(cmdEnv, extra...)
		argv := append(append([]string{}, plugin.Spec.Generate.Command...), plugin.Spec.Generate.Args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = appDir
		cmd.Env = cmdEnv
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	var values []string
	for _, f := range strings.Fields(appEnv["KMM_VALUES"]) {
		values = append(values, filepath.Join(appDir, f))
	}
	want := localRender(t, filepath.Join(appDir, appEnv["KMM_NODES"]), values...)
	for _, v := range []int{3, 4} {
		t.Run(fmt.Sprintf("helm%d", v), func(t *testing.T) {
			out, stderr, err := generate(t, v, appEnv)
			if err != nil {
				t.Fatalf("generate: %v\n%s", err, stderr)
			}
			if got := daemonSets(t, out); !maps.Equal(got, want) {
				t.Errorf("generate's DaemonSets\n%swant (the repository's chart, same values and nodes)\n%s", describe(got), describe(want))
			}
			// Argo CD compares renders: the same input gives the same bytes.
			again, stderr, err := generate(t, v, appEnv)
			if err != nil {
				t.Fatalf("generate again: %v\n%s", err, stderr)
			}
			if again != out {
				t.Error("two generate runs of the same revision differ; Argo CD would show the application OutOfSync forever")
			}
			// Live: the sidecar's identity reads the cluster (here, the admin kubeconfig of a
			// cluster holding the same nodes).
			live := maps.Clone(appEnv)
			live["KMM_NODES"] = "-"
			out, stderr, err = generate(t, v, live, "KUBECONFIG="+kc.Kubeconfig)
			if err != nil {
				t.Fatalf("generate from the cluster: %v\n%s", err, stderr)
			}
			if got := daemonSets(t, out); !maps.Equal(got, want) {
				t.Errorf("generate from the cluster: DaemonSets\n%swant\n%s", describe(got), describe(want))
			}
		})
	}

	// Bad input: a clear message, nothing on stdout.
	for _, c := range []struct {
		key, value, msg string
	}{
		{"KMM_VALUES", "missing.yaml", "values file missing.yaml not found"},
		{"KMM_NODES", "missing-nodes.yaml", "node snapshot missing-nodes.yaml not found"},
	} {
		env := maps.Clone(appEnv)
		env[c.key] = c.value
		out, stderr, err := generate(t, 3, env)
		if err == nil || !strings.Contains(stderr, c.msg) || out != "" {
			t.Errorf("generate with %s=%s: err %v, stdout %d bytes, stderr %q; want a failure saying %q", c.key, c.value, err, len(out), stderr, c.msg)
		}
	}
	out, stderr, err := generate(t, 3, appEnv, "KMM_RENDER=/nonexistent/kmm-render")
	if err == nil || !strings.Contains(stderr, "kmm-render not found") || out != "" {
		t.Errorf("generate without kmm-render: err %v, stderr %q", err, stderr)
	}
}

// TestFluxRecipe runs docs/flux.md's render step (deploy/flux/render.sh) with Helm 3 and 4 and
// checks the folder a Flux Kustomization applies.
func TestFluxRecipe(t *testing.T) {
	script := filepath.Join(repo, "deploy", "flux", "render.sh")
	chart := pushOnce(t, "flux/charts")
	values := filepath.Join(repo, "examples", "gke", "values.yaml")
	nodes := filepath.Join(repo, "examples", "gke", "nodes.yaml")
	want := localRender(t, nodes, values)
	run := func(t *testing.T, v int, dir, out string, args ...string) (string, error) {
		cmd := exec.Command(script, append([]string{out}, args...)...)
		cmd.Env = append(toolEnv(t, v, dir), "KMM_RENDER="+binary(relDir), "KMM_CHART="+chart, "KMM_CHART_VERSION="+version,
			"KMM_RELEASE="+releaseName, "KMM_NAMESPACE="+releaseNS)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	for _, v := range []int{3, 4} {
		t.Run(fmt.Sprintf("helm%d", v), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "clusters", "prod", "kmm")
			if v == 4 {
				// Without the plugin, Helm 4 cannot post-render: a message says what to install.
				msg, err := run(t, v, dir, out, "-f", values, "--nodes", nodes, "--plain-http")
				if err == nil || !strings.Contains(msg, "helm plugin install") {
					t.Fatalf("render.sh with Helm 4 and no plugin: %v\n%s", err, msg)
				}
				cmd := exec.Command(filepath.Join(dir, "bin", "helm"), "plugin", "install", helm4Archive(relDir), "--verify=false")
				cmd.Env = toolEnv(t, v, dir)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("helm4 plugin install: %v\n%s", err, b)
				}
			}
			if msg, err := run(t, v, dir, out, "-f", values, "--nodes", nodes, "--plain-http"); err != nil {
				t.Fatalf("render.sh: %v\n%s", err, msg)
			}
			rendered, err := os.ReadFile(filepath.Join(out, "kmm.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if got := daemonSets(t, string(rendered)); !maps.Equal(got, want) {
				t.Errorf("render.sh's DaemonSets\n%swant\n%s", describe(got), describe(want))
			}
			var k struct {
				Kind      string   `json:"kind"`
				Resources []string `json:"resources"`
			}
			readYAML(t, filepath.Join(out, "kustomization.yaml"), &k)
			if k.Kind != "Kustomization" || len(k.Resources) != 1 || k.Resources[0] != "kmm.yaml" {
				t.Errorf("kustomization.yaml: %+v, want a Kustomization of kmm.yaml", k)
			}
			// A failed render leaves the committed folder as it was.
			msg, err := run(t, v, dir, out, "-f", filepath.Join(dir, "missing.yaml"), "--nodes", nodes, "--plain-http")
			if err == nil || !strings.Contains(msg, "unchanged") {
				t.Errorf("render.sh with a missing values file: %v\n%s", err, msg)
			}
			after, _ := os.ReadFile(filepath.Join(out, "kmm.yaml"))
			if !bytes.Equal(after, rendered) {
				t.Error("a failed render.sh changed kmm.yaml")
			}
		})
	}
}

type container struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Env     []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"env"`
	VolumeMounts []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
		SubPath   string `json:"subPath"`
	} `json:"volumeMounts"`
}

// checkSidecarPatch checks repo-server-patch.yaml against itself and plugin.yaml's needs, runs
// its init container's command with the release binary (into a temporary folder standing for
// the shared volume), and returns the path of the copy, which generate then runs.
func checkSidecarPatch(t *testing.T, path string) string {
	t.Helper()
	var d struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Template struct {
				Spec struct {
					InitContainers []container `json:"initContainers"`
					Containers     []container `json:"containers"`
					Volumes        []struct {
						Name      string `json:"name"`
						ConfigMap *struct {
							Name string `json:"name"`
						} `json:"configMap"`
						EmptyDir *struct{} `json:"emptyDir"`
					} `json:"volumes"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	readYAML(t, path, &d)
	pod := d.Spec.Template.Spec
	if d.Kind != "Deployment" || d.Metadata.Name != "argocd-repo-server" || len(pod.InitContainers) != 1 || len(pod.Containers) != 1 {
		t.Fatalf("%s: want a Deployment argocd-repo-server patch with one init container and one sidecar", path)
	}
	init, side := pod.InitContainers[0], pod.Containers[0]
	if !strings.HasPrefix(init.Image, "ghcr.io/kmm-dev/kmm-render:") || len(init.Command) != 3 || init.Command[0] != "/kmm-render" || init.Command[1] != "copy" {
		t.Fatalf("init container: image %s command %v; want the kmm-render image running /kmm-render copy DIR", init.Image, init.Command)
	}
	dir := init.Command[2]
	mountOf := func(c container, at string) string {
		for _, m := range c.VolumeMounts {
			if m.MountPath == at {
				return m.Name
			}
		}
		return ""
	}
	vol := mountOf(init, dir)
	if vol == "" || mountOf(side, dir) != vol {
		t.Errorf("the init container copies into %s, which it and the sidecar must mount from the same volume", dir)
	}
	env := map[string]string{}
	for _, e := range side.Env {
		env[e.Name] = e.Value
	}
	if env["KMM_RENDER"] != dir+"/kmm-render" {
		t.Errorf("sidecar KMM_RENDER = %q, want %s/kmm-render", env["KMM_RENDER"], dir)
	}
	if mountOf(side, "/home/argocd/cmp-server/config/plugin.yaml") != "kmm-cmp" || len(side.Command) != 1 || side.Command[0] != "/var/run/argocd/argocd-cmp-server" {
		t.Errorf("sidecar: want argocd-cmp-server with plugin.yaml from the kmm-cmp volume; got command %v", side.Command)
	}
	found := false
	for _, v := range pod.Volumes {
		if v.Name == "kmm-cmp" && v.ConfigMap != nil && v.ConfigMap.Name == "kmm-cmp" {
			found = true
		}
	}
	if !found {
		t.Error("no kmm-cmp volume of ConfigMap kmm-cmp (kustomization.yaml's configMapGenerator)")
	}
	kust, err := os.ReadFile(filepath.Join(filepath.Dir(path), "kustomization.yaml"))
	if err != nil || !strings.Contains(string(kust), "- name: kmm-cmp") || !strings.Contains(string(kust), "- plugin.yaml") || !strings.Contains(string(kust), "disableNameSuffixHash: true") {
		t.Errorf("kustomization.yaml must generate ConfigMap kmm-cmp (no name suffix) from plugin.yaml (%v)", err)
	}

	// The init container's command, for real.
	shared := t.TempDir()
	out, err := exec.Command(binary(relDir), "copy", shared).CombinedOutput()
	if err != nil {
		t.Fatalf("kmm-render copy: %v\n%s", err, out)
	}
	return filepath.Join(shared, "kmm-render")
}
