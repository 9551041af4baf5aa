package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	releaseName = "kmm"
	releaseNS   = "kmm-system"
	loaderSel   = "app.kubernetes.io/component=module-loader"
	kernelAnno  = "render.kmm.dev/kernel-version"
)

func chartFile() string        { return filepath.Join(relDir, "kmm-"+version+".tgz") }
func binary(dir string) string { return filepath.Join(dir, "kmm-render-"+platform) }
func helm4Archive(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("kmm-render-%s-%s.tgz", version, platform))
}
func helm3Archive(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("kmm-render-%s-helm3-%s.tgz", version, platform))
}

// TestArtifacts checks the release folder: the files, SHA256SUMS, reproducible binaries and
// archives, the plugin layouts, the packaged chart's metadata, and that packaging left the
// repository's Chart.yaml alone.
func TestArtifacts(t *testing.T) {
	entries, err := os.ReadDir(relDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"SHA256SUMS", filepath.Base(chartFile()), filepath.Base(helm3Archive(relDir)), filepath.Base(helm4Archive(relDir)), filepath.Base(binary(relDir))}
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("release folder holds %v, want %v", names, want)
	}

	// SHA256SUMS: every other file, with its digest, checked by sha256sum -c too.
	sums, err := os.ReadFile(filepath.Join(relDir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q is not `<sha256>  <file>`", line)
		}
		listed[name] = sum
	}
	for _, n := range want {
		if n == "SHA256SUMS" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(relDir, n))
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.Sum256(data)
		if listed[n] != hex.EncodeToString(got[:]) {
			t.Errorf("SHA256SUMS gives %s %q, the file's digest is %x", n, listed[n], got)
		}
	}
	if len(listed) != len(want)-1 {
		t.Errorf("SHA256SUMS lists %d files, want %d: %v", len(listed), len(want)-1, slices.Sorted(maps.Keys(listed)))
	}
	check := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	check.Dir = relDir
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum --check: %v\n%s", err, out)
	}

	// Reproducible: the second build of the same version gives the same bytes, chart package
	// (packaged by the other Helm) and SHA256SUMS included.
	for _, n := range want {
		pair := [2]string{filepath.Join(relDir, n), filepath.Join(relDir2, n)}
		a, errA := os.ReadFile(pair[0])
		b, errB := os.ReadFile(pair[1])
		if err := errors.Join(errA, errB); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("two builds of %s differ: %s (%d bytes) and %s (%d bytes)", version, pair[0], len(a), pair[1], len(b))
		}
	}

	// The binary is static and knows its version.
	out, err := exec.Command(binary(relDir), "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "kmm-render "+version {
		t.Errorf("kmm-render version: %q (%v), want %q", out, err, "kmm-render "+version)
	}
	if runtime.GOOS == "linux" {
		ef, err := elf.Open(binary(relDir))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has a program interpreter: not a static binary (CGO_ENABLED=0)", binary(relDir))
			}
		}
		ef.Close()
	}

	// Plugin archives: Helm 4's under kmm-render/, Helm 3's at the root; both carry the
	// binary (executable) and a plugin.yaml of the release version.
	bin, _ := os.ReadFile(binary(relDir))
	for _, c := range []struct {
		archive, prefix, kind string
	}{
		{helm4Archive(relDir), "kmm-render/", "type: postrenderer/v1"},
		{helm3Archive(relDir), "", "platformCommand:"},
	} {
		files := readTgz(t, c.archive)
		if got, ok := files[c.prefix+"bin/kmm-render"]; !ok || !bytes.Equal(got.data, bin) || got.mode&0o111 == 0 {
			t.Errorf("%s: %sbin/kmm-render missing, not the release binary or not executable", c.archive, c.prefix)
		}
		manifest := string(files[c.prefix+"plugin.yaml"].data)
		if !strings.Contains(manifest, fmt.Sprintf("version: %q", version)) || !strings.Contains(manifest, c.kind) {
			t.Errorf("%s: %splugin.yaml is not the plugin of version %s:\n%s", c.archive, c.prefix, version, manifest)
		}
	}

	// The packaged chart: version and appVersion from git, Artifact Hub annotations pointing at
	// this release, the image list in step with values.yaml.
	files := readTgz(t, chartFile())
	var meta struct {
		Version     string            `json:"version"`
		AppVersion  string            `json:"appVersion"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := yaml.Unmarshal(files["kmm/Chart.yaml"].data, &meta); err != nil {
		t.Fatalf("kmm/Chart.yaml in %s: %v", chartFile(), err)
	}
	if meta.Version != version || meta.AppVersion != version {
		t.Errorf("packaged chart has version %q appVersion %q, want both %q", meta.Version, meta.AppVersion, version)
	}
	wantPre := fmt.Sprint(strings.Contains(version, "-"))
	if meta.Annotations["artifacthub.io/prerelease"] != wantPre {
		t.Errorf("artifacthub.io/prerelease = %q for version %s, want %q", meta.Annotations["artifacthub.io/prerelease"], version, wantPre)
	}
	for _, key := range []string{"license", "links", "images", "changes", "containsSecurityUpdates", "crds"} {
		if meta.Annotations["artifacthub.io/"+key] == "" {
			t.Errorf("packaged Chart.yaml has no artifacthub.io/%s annotation", key)
		}
	}
	var images []struct {
		Name  string `json:"name"`
		Image string `json:"image"`
	}
	if err := yaml.Unmarshal([]byte(meta.Annotations["artifacthub.io/images"]), &images); err != nil {
		t.Fatalf("artifacthub.io/images: %v", err)
	}
	values := string(files["kmm/values.yaml"].data)
	sawRender := false
	for _, im := range images {
		ref, tag, _ := strings.Cut(im.Image, ":")
		if ref == "ghcr.io/kmm-dev/kmm-render" {
			sawRender = true
			if tag != version {
				t.Errorf("artifacthub.io/images lists kmm-render:%s, want the release's tag %s", tag, version)
			}
			continue
		}
		if !strings.Contains(values, "repository: "+ref+"\n") || !strings.Contains(values, "tag: "+tag+"\n") {
			t.Errorf("artifacthub.io/images lists %s, which values.yaml does not default to (repository %s, tag %s)", im.Image, ref, tag)
		}
	}
	if !sawRender {
		t.Error("artifacthub.io/images does not list the kmm-render image")
	}
	for _, line := range regexpAll(`repository: (\S+)\n\s+tag: (\S+)\n`, values) {
		if line[1] == `""` || line[2] == `""` {
			continue // an image the user must give (drift, upgrade)
		}
		img := line[1] + ":" + line[2]
		if !slices.ContainsFunc(images, func(i struct {
			Name  string `json:"name"`
			Image string `json:"image"`
		}) bool {
			return i.Image == img
		}) {
			t.Errorf("values.yaml defaults to image %s, which artifacthub.io/images does not list", img)
		}
	}
	// Packaging worked on a copy: the repository's Chart.yaml is as it was before the builds.
	if now, err := os.ReadFile(filepath.Join(repo, "charts", "kmm", "Chart.yaml")); err != nil || !bytes.Equal(now, chartYAMLBefore) {
		t.Errorf("the release build changed charts/kmm/Chart.yaml (%v)", err)
	}
}

// TestBadVersion: a version that is not SemVer is refused before anything is built.
func TestBadVersion(t *testing.T) {
	tool := filepath.Join(filepath.Dir(relDir), "release-tool")
	for _, v := range []string{"v1.2.3", "1.2", "1.2.3-01"} {
		_, err := runTool(tool, "-out", filepath.Join(t.TempDir(), "out"), "-version", v, "-no-chart")
		if err == nil || !strings.Contains(err.Error(), "is not SemVer 2") {
			t.Errorf("-version %s: got %v, want a SemVer error", v, err)
		}
	}
	_, err := runTool(tool, "-out", filepath.Join(t.TempDir(), "out"), "-platforms", "windows/amd64", "-no-chart")
	if err == nil || !strings.Contains(err.Error(), `"windows/amd64" is not one of`) {
		t.Errorf("-platforms windows/amd64: got %v, want an error naming it", err)
	}
}

// TestInstallFromOCI pushes the packaged chart to the registry with Helm 3 and Helm 4, installs
// the post-renderer from its release archive (Helm 4: the file; Helm 3: its URL), and installs
// the chart from oci:// with each Helm version, from the push of the other. The loaders must
// be the ones the repository's chart gives for the same nodes.
func TestInstallFromOCI(t *testing.T) {
	ctx := testContext(t, 8*time.Minute)
	for _, v := range []int{3, 4} {
		out := helm(t, ctx, v, "push", chartFile(), fmt.Sprintf("oci://%s/helm%d/charts", registry, v), "--plain-http")
		_ = out
	}
	// What the repository's chart renders for these nodes (live, like the install).
	want := daemonSets(t, helm(t, ctx, 3, "template", releaseName, filepath.Join(repo, "charts", "kmm"), "-n", releaseNS,
		"-f", filepath.Join(repo, "examples", "gke", "values.yaml"),
		"--post-renderer", binary(relDir), "--post-renderer-args=--kubeconfig", "--post-renderer-args="+kc.Kubeconfig))
	if countLoaders(want) == 0 {
		t.Fatalf("the local chart renders no loader DaemonSet for examples/gke's nodes: %v", slices.Sorted(maps.Keys(want)))
	}

	for _, v := range []int{3, 4} {
		t.Run(fmt.Sprintf("helm%d", v), func(t *testing.T) {
			other := 7 - v
			ref := fmt.Sprintf("oci://%s/helm%d/charts/kmm", registry, other)
			show := helm(t, ctx, v, "show", "chart", ref, "--version", version, "--plain-http")
			if !strings.Contains(show, "version: "+version) || !strings.Contains(show, "artifacthub.io/images") {
				t.Fatalf("helm%d show chart %s:\n%s", v, ref, show)
			}
			var post []string
			if v == 4 {
				helm(t, ctx, 4, "plugin", "install", helm4Archive(relDir), "--verify=false")
				list := helm(t, ctx, 4, "plugin", "list")
				if !regexp.MustCompile(`(?m)^kmm-render\s+` + regexp.QuoteMeta(version) + `\s+postrenderer/v1`).MatchString(list) {
					t.Fatalf("helm4 plugin list after installing %s:\n%s", helm4Archive(relDir), list)
				}
				post = []string{"--post-renderer", "kmm-render", "--post-renderer-args=--kubeconfig", "--post-renderer-args=" + kc.Kubeconfig}
			} else {
				url := fileURL + "/" + filepath.Base(helm3Archive(relDir))
				helm(t, ctx, 3, "plugin", "install", url)
				if got := helm(t, ctx, 3, "kmm-render", "version"); strings.TrimSpace(got) != "kmm-render "+version {
					t.Fatalf("helm3 kmm-render version: %q, want kmm-render %s", got, version)
				}
				plugins := strings.TrimSpace(helm(t, ctx, 3, "env", "HELM_PLUGINS"))
				post = []string{"--post-renderer", filepath.Join(plugins, "kmm-render", "bin", "kmm-render")}
			}
			args := append([]string{"install", releaseName, ref, "--version", version, "--plain-http",
				"-n", releaseNS, "--create-namespace", "--set", "moduleNamespaces.create=true",
				"-f", filepath.Join(repo, "examples", "gke", "values.yaml"), "--wait", "--timeout", "3m"}, post...)
			helm(t, ctx, v, args...)
			t.Cleanup(func() {
				if _, stderr, err := kc.Helm(ctx, v, "uninstall", releaseName, "-n", releaseNS, "--wait", "--timeout", "3m"); err != nil {
					t.Errorf("uninstall: %v\n%s", err, stderr)
				}
			})
			manifest := helm(t, ctx, v, "get", "manifest", releaseName, "-n", releaseNS)
			got := daemonSets(t, manifest)
			if !maps.Equal(got, want) {
				t.Errorf("helm%d install from %s: DaemonSets (name -> node selector)\n%s\nwant (the repository's chart)\n%s", v, ref, describe(got), describe(want))
			}
			// Each loader runs on its kernel's nodes.
			list, err := kc.Client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{LabelSelector: loaderSel})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != countLoaders(want) {
				t.Errorf("the cluster has %d loader DaemonSets, want %d", len(list.Items), countLoaders(want))
			}
			for _, d := range list.Items {
				if d.Status.DesiredNumberScheduled == 0 || d.Status.NumberReady != d.Status.DesiredNumberScheduled {
					t.Errorf("loader %s/%s (kernel %s): %d of %d pods ready, want all of at least one", d.Namespace, d.Name,
						d.Annotations[kernelAnno], d.Status.NumberReady, d.Status.DesiredNumberScheduled)
				}
			}
		})
	}
}

// daemonSets maps each DaemonSet of a manifest stream (namespace/name) to its node selector.
func daemonSets(t *testing.T, manifests string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range objects(t, manifests) {
		if o.Kind != "DaemonSet" {
			continue
		}
		sel := o.Spec.Template.Spec.NodeSelector
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(sel)) {
			parts = append(parts, k+"="+sel[k])
		}
		key := o.Metadata.Namespace + "/" + o.Metadata.Name
		if o.Metadata.Annotations[kernelAnno] != "" {
			key += " (loader)"
		}
		out[key] = strings.Join(parts, ",")
	}
	return out
}

func countLoaders(ds map[string]string) int {
	n := 0
	for k := range ds {
		if strings.HasSuffix(k, " (loader)") {
			n++
		}
	}
	return n
}

func describe(ds map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(ds)) {
		fmt.Fprintf(&b, "  %s -> %s\n", k, ds[k])
	}
	return b.String()
}

type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Template struct {
			Spec struct {
				NodeSelector map[string]string `json:"nodeSelector"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

func objects(t *testing.T, manifests string) []object {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	var out []object
	for {
		var o object
		if err := dec.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decoding manifests: %v", err)
		}
		if o.Kind != "" {
			out = append(out, o)
		}
	}
}

type tarFile struct {
	data []byte
	mode int64
}

func readTgz(t *testing.T, path string) map[string]tarFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(gz)
	out := map[string]tarFile{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out[h.Name] = tarFile{data: data, mode: h.Mode}
	}
}

func regexpAll(re, s string) [][]string { return regexp.MustCompile(re).FindAllStringSubmatch(s, -1) }
