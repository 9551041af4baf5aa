package image

import (
	"archive/tar"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var created = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// fakeBins writes a folder per platform whose binaries are scripts naming their platform.
func fakeBins(t *testing.T, platforms ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range platforms {
		d := filepath.Join(dir, strings.ReplaceAll(p, "/", "_"))
		require.NoError(t, os.MkdirAll(d, 0o755))
		for _, b := range Binaries {
			require.NoError(t, os.WriteFile(filepath.Join(d, b), []byte("#!/bin/sh\necho "+b+" "+p+"\n"), 0o755))
		}
	}
	return dir
}

type entry struct {
	mode    int64
	uid     int
	content string
	mtime   time.Time
}

// files reads a layer's tar.
func files(t *testing.T, l v1.Layer) map[string]entry {
	t.Helper()
	rc, err := l.Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	out := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[h.Name] = entry{mode: h.Mode, uid: h.Uid, content: string(data), mtime: h.ModTime.UTC()}
	}
}

func TestBuild(t *testing.T) {
	bins := fakeBins(t, "linux/amd64", "linux/arm64")
	idx, err := Build(Options{BinDir: bins, Platforms: []string{"linux/amd64", "linux/arm64"}, Version: "1.2.3", Revision: "abc123", Source: "https://example.com/kmm", Created: created})
	require.NoError(t, err)

	mt, err := idx.MediaType()
	require.NoError(t, err)
	assert.Equal(t, types.OCIImageIndex, mt)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 2)
	for i, want := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}} {
		d := im.Manifests[i]
		assert.Equal(t, types.OCIManifestSchema1, d.MediaType)
		require.NotNil(t, d.Platform)
		assert.Equal(t, want, *d.Platform)

		img, err := idx.Image(d.Digest)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, "linux", cf.OS)
		assert.Equal(t, want.Architecture, cf.Architecture)
		assert.Equal(t, "65532:65532", cf.Config.User, "the image runs as distroless' nonroot")
		assert.Equal(t, []string{"/kmm-render"}, cf.Config.Entrypoint)
		assert.Equal(t, created, cf.Created.UTC())
		assert.Equal(t, "1.2.3", cf.Config.Labels["org.opencontainers.image.version"])
		assert.Equal(t, "abc123", cf.Config.Labels["org.opencontainers.image.revision"])
		assert.Equal(t, "https://example.com/kmm", cf.Config.Labels["org.opencontainers.image.source"])

		layers, err := img.Layers()
		require.NoError(t, err)
		require.Len(t, layers, 2)
		for _, l := range layers {
			lmt, err := l.MediaType()
			require.NoError(t, err)
			assert.Equal(t, types.OCILayer, lmt)
		}
		base := files(t, layers[0])
		assert.Equal(t, map[string]entry{
			"etc/":       {mode: 0o755, mtime: created},
			"etc/group":  {mode: 0o644, mtime: created, content: "root:x:0:\nnonroot:x:65532:\n"},
			"etc/passwd": {mode: 0o644, mtime: created, content: "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
		}, base)
		p := "linux/" + want.Architecture
		assert.Equal(t, map[string]entry{
			"kmm-render":  {mode: 0o755, mtime: created, content: "#!/bin/sh\necho kmm-render " + p + "\n"},
			"kmm-upgrade": {mode: 0o755, mtime: created, content: "#!/bin/sh\necho kmm-upgrade " + p + "\n"},
		}, files(t, layers[1]), "each platform's image holds that platform's binaries")
	}
}

func digestOf(t *testing.T, o Options) v1.Hash {
	t.Helper()
	idx, err := Build(o)
	require.NoError(t, err)
	d, err := idx.Digest()
	require.NoError(t, err)
	return d
}

func TestBuildIsReproducible(t *testing.T) {
	bins := fakeBins(t, "linux/amd64")
	o := Options{BinDir: bins, Platforms: []string{"linux/amd64"}, Version: "1.0.0", Created: created}
	first := digestOf(t, o)
	assert.Equal(t, first, digestOf(t, o), "the same inputs give the same digest")

	later := o
	later.Created = created.Add(time.Second)
	assert.NotEqual(t, first, digestOf(t, later), "the creation time is part of the image")

	other := o
	other.Version = "1.0.1"
	assert.NotEqual(t, first, digestOf(t, other), "the version label is part of the image")
}

func TestBuildErrors(t *testing.T) {
	bins := fakeBins(t, "linux/amd64")
	for _, tc := range []struct {
		name      string
		platforms []string
		want      string
	}{
		{"no platforms", nil, "no platforms"},
		{"not OS/ARCH", []string{"amd64"}, `platform "amd64" is not OS/ARCH`},
		{"twice", []string{"linux/amd64", "linux/amd64"}, `platform "linux/amd64" is given twice`},
		{"no binaries", []string{"linux/amd64", "linux/riscv64"}, "building the linux/riscv64 image: reading the binary " + filepath.Join(bins, "linux_riscv64", "kmm-render")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(Options{BinDir: bins, Platforms: tc.platforms, Created: created})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestImageRuns builds the image of a real kmm-render for this machine, pushes it to a
// registry, pulls it back, and runs the /kmm-render of its flattened file system.
func TestImageRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kmm-render")
	}
	bins := t.TempDir()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	dir := filepath.Join(bins, runtime.GOOS+"_"+runtime.GOARCH)
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X kmm.dev/kmm/pkg/version.Version=9.8.7-test", "-o", dir+"/", "kmm.dev/kmm/cmd/kmm-render", "kmm.dev/kmm/cmd/kmm-upgrade")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	idx, err := Build(Options{BinDir: bins, Platforms: []string{platform}, Version: "9.8.7-test", Created: created})
	require.NoError(t, err)

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/kmm/kmm-render:9.8.7-test", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(ref, idx))

	pulled, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}))
	require.NoError(t, err)
	rootfs := t.TempDir()
	tr := tar.NewReader(mutate.Extract(pulled))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		target := filepath.Join(rootfs, h.Name)
		if h.Typeflag == tar.TypeDir {
			require.NoError(t, os.MkdirAll(target, 0o755))
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(target), 0o755))
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode))
		require.NoError(t, err)
		_, err = io.Copy(f, tr)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	for _, b := range Binaries {
		assert.FileExists(t, filepath.Join(rootfs, b))
	}
	version, err := exec.Command(filepath.Join(rootfs, "kmm-render"), "version").CombinedOutput()
	require.NoError(t, err, "%s", version)
	assert.Contains(t, string(version), "9.8.7-test", "the image's kmm-render is the one built")
}
