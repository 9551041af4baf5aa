// Command release builds kmm's release artifacts into one folder (`make release`):
//
//   - kmm-<version>.tgz: `helm package` of a copy of charts/kmm, version and appVersion set to
//     the release version, Artifact Hub's image list and prerelease flag following it;
//   - kmm-render-<os>-<arch>: static kmm-render binaries (CGO_ENABLED=0, -trimpath, no build
//     ID), byte-identical for the same source and Go toolchain;
//   - kmm-render-<version>-<os>-<arch>.tgz: the Helm 4 postrenderer/v1 plugin (kmm-render/
//     plugin.yaml and kmm-render/bin/kmm-render), for `helm plugin install <file> --verify=false`;
//   - kmm-render-<version>-helm3-<os>-<arch>.tgz: the Helm 3 plugin (plugin.yaml at the root,
//     as Helm 3's `helm plugin install <URL>` expects), which puts the binary under
//     $HELM_PLUGINS/kmm-render/bin/ and adds `helm kmm-render`;
//   - SHA256SUMS of every other file, in `sha256sum -c` format.
//
// Archives are deterministic too (fixed entry order, owner and time, gzip without a name or
// time; the chart package is rewritten so, as helm package stamps the current time), so
// SHA256SUMS is the same for the same commit and Go toolchain.
//
// The version is -version, else derived from `git describe --tags --always --dirty`: a tag
// vX.Y.Z gives X.Y.Z, N commits past it X.Y.Z-N-g<sha>; with no tag, <Chart.yaml
// version>-<commit count>-g<sha>; a dirty tree appends .dirty.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Platforms are the os/arch pairs a release builds by default.
var Platforms = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}

// semverRE is SemVer 2.0.0's own regular expression.
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

type options struct {
	root      string
	out       string
	version   string
	helm      string
	goBin     string
	platforms []string
	noChart   bool
}

func main() {
	var o options
	var platforms string
	flag.StringVar(&o.root, "root", ".", "repository root")
	flag.StringVar(&o.out, "out", "bin/release", "output folder (emptied first)")
	flag.StringVar(&o.version, "version", "", "release version (SemVer 2, no leading v); default: from git describe")
	flag.StringVar(&o.helm, "helm", "helm", "helm binary that packages the chart (3 or 4)")
	flag.StringVar(&o.goBin, "go", "go", "go binary")
	flag.StringVar(&platforms, "platforms", strings.Join(Platforms, ","), "comma-separated os/arch pairs to build kmm-render for")
	flag.BoolVar(&o.noChart, "no-chart", false, "skip the chart package (binaries, plugins and checksums only)")
	printVersion := flag.Bool("print-version", false, "print the version the release would have, and exit")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	if *printVersion {
		v, err := gitVersion(o.root)
		if err != nil {
			fail(err)
		}
		fmt.Println(v)
		return
	}
	for _, p := range strings.Split(platforms, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.platforms = append(o.platforms, p)
		}
	}
	files, err := run(o)
	if err != nil {
		fail(err)
	}
	for _, f := range files {
		fmt.Println(filepath.Join(o.out, f))
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "release: %v\n", err)
	os.Exit(1)
}

func run(o options) ([]string, error) {
	root, err := filepath.Abs(o.root)
	if err != nil {
		return nil, err
	}
	if len(o.platforms) == 0 {
		return nil, errors.New("-platforms: no os/arch given")
	}
	for _, p := range o.platforms {
		if !regexp.MustCompile(`^(linux|darwin)/(amd64|arm64)$`).MatchString(p) {
			return nil, fmt.Errorf("-platforms: %q is not one of %s", p, strings.Join(Platforms, ", "))
		}
	}
	version := o.version
	if version == "" {
		if version, err = gitVersion(root); err != nil {
			return nil, err
		}
	}
	if !semverRE.MatchString(version) {
		return nil, fmt.Errorf("version %q is not SemVer 2 (X.Y.Z[-pre][+build], no leading v)", version)
	}
	out, err := filepath.Abs(o.out)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "release: version %s into %s\n", version, out)

	if !o.noChart {
		if err := packageChart(root, out, version, o.helm); err != nil {
			return nil, err
		}
	}
	helm4Manifest, err := os.ReadFile(filepath.Join(root, "plugin", "plugin.yaml"))
	if err != nil {
		return nil, fmt.Errorf("the Helm 4 plugin manifest: %w", err)
	}
	helm3Manifest, err := os.ReadFile(filepath.Join(root, "plugin", "helm3", "plugin.yaml"))
	if err != nil {
		return nil, fmt.Errorf("the Helm 3 plugin manifest: %w", err)
	}
	for _, p := range o.platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		bin := filepath.Join(out, fmt.Sprintf("kmm-render-%s-%s", goos, goarch))
		if err := buildBinary(root, o.goBin, goos, goarch, version, bin); err != nil {
			return nil, err
		}
		binary, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		m4, err := setPluginVersion(helm4Manifest, version)
		if err != nil {
			return nil, fmt.Errorf("plugin/plugin.yaml: %w", err)
		}
		if err := writeTgz(filepath.Join(out, fmt.Sprintf("kmm-render-%s-%s-%s.tgz", version, goos, goarch)), []entry{
			{name: "kmm-render/", dir: true},
			{name: "kmm-render/bin/", dir: true},
			{name: "kmm-render/bin/kmm-render", data: binary, mode: 0o755},
			{name: "kmm-render/plugin.yaml", data: m4, mode: 0o644},
		}); err != nil {
			return nil, err
		}
		m3, err := setPluginVersion(helm3Manifest, version)
		if err != nil {
			return nil, fmt.Errorf("plugin/helm3/plugin.yaml: %w", err)
		}
		if err := writeTgz(filepath.Join(out, fmt.Sprintf("kmm-render-%s-helm3-%s-%s.tgz", version, goos, goarch)), []entry{
			{name: "bin/", dir: true},
			{name: "bin/kmm-render", data: binary, mode: 0o755},
			{name: "plugin.yaml", data: m3, mode: 0o644},
		}); err != nil {
			return nil, err
		}
	}
	return writeChecksums(out)
}

// gitVersion turns `git describe --tags --always --dirty` into SemVer (see the package doc).
func gitVersion(root string) (string, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		b, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return "", fmt.Errorf("git %s: %v: %s (pass -version to build outside a git checkout)", strings.Join(args, " "), err, bytes.TrimSpace(ee.Stderr))
			}
			return "", fmt.Errorf("git %s: %v (pass -version to build outside a git checkout)", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	desc, err := git("describe", "--tags", "--always", "--dirty", "--abbrev=12")
	if err != nil {
		return "", err
	}
	chart, err := os.ReadFile(filepath.Join(root, "charts", "kmm", "Chart.yaml"))
	if err != nil {
		return "", err
	}
	base := regexp.MustCompile(`(?m)^version:\s*"?([^"\s]+)"?`).FindSubmatch(chart)
	if base == nil {
		return "", errors.New("charts/kmm/Chart.yaml has no version")
	}
	count := func() (string, error) { return git("rev-list", "--count", "HEAD") }
	return describeToSemver(desc, string(base[1]), count)
}

var (
	tagDescRE  = regexp.MustCompile(`^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+?)?)(?:-(\d+)-g([0-9a-f]+))?(-dirty)?$`)
	bareDescRE = regexp.MustCompile(`^([0-9a-f]+)(-dirty)?$`)
)

// describeToSemver maps git describe output to SemVer: v1.2.3 -> 1.2.3, v1.2.3-4-gabc ->
// 1.2.3-4-gabc, v1.2.3-rc.1-4-gabc -> 1.2.3-rc.1.4-gabc; a bare sha (no tag) -> <base>-<count>-g<sha>;
// -dirty -> .dirty appended to the pre-release (or -dirty when there is none).
func describeToSemver(desc, base string, count func() (string, error)) (string, error) {
	var v, dirty string
	if m := bareDescRE.FindStringSubmatch(desc); m != nil {
		n, err := count()
		if err != nil {
			return "", err
		}
		v, dirty = fmt.Sprintf("%s-%s-g%s", base, n, m[1]), m[2]
	} else if m := tagDescRE.FindStringSubmatch(desc); m != nil {
		v, dirty = m[1], m[4]
		if m[2] != "" {
			sep := "-"
			if strings.Contains(v, "-") {
				sep = "."
			}
			v += sep + m[2] + "-g" + m[3]
		}
	} else {
		return "", fmt.Errorf("git describe gave %q: not a vX.Y.Z tag nor a commit; tag the release vX.Y.Z or pass -version", desc)
	}
	if dirty != "" {
		if strings.Contains(v, "-") {
			v += ".dirty"
		} else {
			v += "-dirty"
		}
	}
	if !semverRE.MatchString(v) {
		return "", fmt.Errorf("git describe gave %q, which makes %q: not SemVer 2; pass -version", desc, v)
	}
	return v, nil
}

// packageChart copies charts/kmm to a temporary folder, points Chart.yaml's Artifact Hub
// annotations at the release (the kmm-render image tag, prerelease), and runs helm package with
// --version and --app-version. The repository's Chart.yaml is not touched.
func packageChart(root, out, version, helm string) error {
	tmp, err := os.MkdirTemp("", "kmm-release-chart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dst := filepath.Join(tmp, "kmm")
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(root, "charts", "kmm"))); err != nil {
		return fmt.Errorf("copying charts/kmm: %w", err)
	}
	chartYAML := filepath.Join(dst, "Chart.yaml")
	data, err := os.ReadFile(chartYAML)
	if err != nil {
		return err
	}
	data, err = releaseChartYAML(data, version)
	if err != nil {
		return fmt.Errorf("charts/kmm/Chart.yaml: %w", err)
	}
	if err := os.WriteFile(chartYAML, data, 0o644); err != nil {
		return err
	}
	cmd := exec.Command(helm, "package", dst, "--version", version, "--app-version", version, "--destination", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s package: %v\n%s", helm, err, stderr.String())
	}
	pkg := filepath.Join(out, "kmm-"+version+".tgz")
	if _, err := os.Stat(pkg); err != nil {
		return fmt.Errorf("helm package did not write kmm-%s.tgz: %w", version, err)
	}
	return normalizeTgz(pkg)
}

// normalizeTgz rewrites an archive that helm package wrote with the time of packaging on each
// entry and in the gzip header: the same entries in the same order, each dated 1970-01-01,
// so the chart package is reproducible like the rest of the release.
func normalizeTgz(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tr := tar.NewReader(gz)
	var entries []entry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
			return fmt.Errorf("%s: %s is neither a file nor a folder", path, h.Name)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		entries = append(entries, entry{name: h.Name, data: body, mode: h.Mode, dir: h.Typeflag == tar.TypeDir})
	}
	return writeTgz(path, entries)
}

var (
	renderImageRE = regexp.MustCompile(`(image: ghcr\.io/kmm-dev/kmm-render:)\S+`)
	prereleaseRE  = regexp.MustCompile(`(artifacthub\.io/prerelease: )"(true|false)"`)
)

// releaseChartYAML sets the kmm-render image of artifacthub.io/images to the release's tag and
// artifacthub.io/prerelease to whether the version has a pre-release part. Both annotations
// must be there: a release without them would go to Artifact Hub with stale data.
func releaseChartYAML(data []byte, version string) ([]byte, error) {
	if !renderImageRE.Match(data) {
		return nil, errors.New("artifacthub.io/images lists no ghcr.io/kmm-dev/kmm-render image")
	}
	if !prereleaseRE.Match(data) {
		return nil, errors.New(`no artifacthub.io/prerelease: "true" or "false" annotation`)
	}
	data = renderImageRE.ReplaceAll(data, []byte("${1}"+version))
	pre := "false"
	if strings.Contains(strings.SplitN(version, "+", 2)[0], "-") {
		pre = "true"
	}
	return prereleaseRE.ReplaceAll(data, []byte(`${1}"`+pre+`"`)), nil
}

var pluginVersionRE = regexp.MustCompile(`(?m)^version:.*$`)

func setPluginVersion(manifest []byte, version string) ([]byte, error) {
	if len(pluginVersionRE.FindAll(manifest, -1)) != 1 {
		return nil, errors.New("want exactly one top-level version: line")
	}
	return pluginVersionRE.ReplaceAll(manifest, []byte(fmt.Sprintf("version: %q", version))), nil
}

func buildBinary(root, goBin, goos, goarch, version, dst string) error {
	ldflags := "-s -w -buildid= -X kmm.dev/kmm/pkg/version.Version=" + version
	cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", dst, "./cmd/kmm-render")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=")
	if goarch == "amd64" {
		cmd.Env = append(cmd.Env, "GOAMD64=v1")
	} else {
		cmd.Env = append(cmd.Env, "GOARM64=v8.0")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build kmm-render for %s/%s: %v\n%s", goos, goarch, err, stderr.String())
	}
	return nil
}

type entry struct {
	name string
	data []byte
	mode int64
	dir  bool
}

// writeTgz writes a deterministic tar.gz: entries in the given order, owner 0:0 without names,
// time 0 (1970-01-01), gzip header without name or time.
func writeTgz(path string, entries []entry) error {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// writeChecksums writes SHA256SUMS for every file in out, sorted by name, and returns the
// file names (SHA256SUMS last).
func writeChecksums(out string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != out {
				return fs.SkipDir
			}
			return nil
		}
		if d.Name() != "SHA256SUMS" {
			names = append(names, d.Name())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var sums strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(out, n))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(sum[:]), n)
	}
	if err := os.WriteFile(filepath.Join(out, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		return nil, err
	}
	return append(names, "SHA256SUMS"), nil
}
