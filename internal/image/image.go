// Package image builds kmm-render's container image without a container engine: an OCI image
// index with one image per platform, each a base layer (the files under rootfs/: /etc/passwd and
// /etc/group with the nonroot user 65532, as distroless' static:nonroot has) and a layer holding
// the static kmm-render and kmm-upgrade binaries, run as 65532:65532 with kmm-render as the
// entrypoint. There is no base image to pull, so nothing in the image is unpinned: it is a
// function of the binaries, the version and the creation time, and the same inputs give the same
// digest.
package image

import (
	"archive/tar"
	"bytes"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rootfs is the base layer. The Dockerfile copies the same folder, so both images hold the same
// files.
//
//go:embed rootfs
var rootfs embed.FS

// User is the user and group the image runs as: distroless' nonroot.
const User = "65532:65532"

// Binaries are the files of the binary layer, in each platform's folder of Options.BinDir, and
// where the image holds them.
var Binaries = []string{"kmm-render", "kmm-upgrade"}

// Entrypoint is the image's entrypoint.
var Entrypoint = []string{"/kmm-render"}

// Options say what to build.
type Options struct {
	// BinDir holds a folder per platform, named OS_ARCH (e.g. linux_amd64), each with the
	// Binaries built for it.
	BinDir string
	// Platforms, e.g. linux/amd64, linux/arm64: one image each, in this order in the index.
	Platforms []string
	// Version is kmm's version, in the org.opencontainers.image.version label.
	Version string
	// Revision is the git commit, in the org.opencontainers.image.revision label.
	Revision string
	// Source is the repository's URL, in the org.opencontainers.image.source label.
	Source string
	// Created is the image's creation time and every file's modification time: the commit's
	// time (SOURCE_DATE_EPOCH) keeps the image reproducible.
	Created time.Time
}

// Build builds the index.
func Build(o Options) (v1.ImageIndex, error) {
	if len(o.Platforms) == 0 {
		return nil, fmt.Errorf("building the kmm-render image: no platforms")
	}
	created := o.Created.UTC()
	base, err := layer(func(w *tar.Writer) error { return addRootfs(w, created) })
	if err != nil {
		return nil, fmt.Errorf("building the base layer: %w", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]bool{}
	for _, p := range o.Platforms {
		osName, arch, ok := strings.Cut(p, "/")
		if !ok || osName == "" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("building the kmm-render image: platform %q is not OS/ARCH (e.g. linux/amd64)", p)
		}
		if seen[p] {
			return nil, fmt.Errorf("building the kmm-render image: platform %q is given twice", p)
		}
		seen[p] = true
		img, err := platformImage(o, base, osName, arch, created)
		if err != nil {
			return nil, fmt.Errorf("building the %s image: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}},
		})
	}
	return idx, nil
}

func platformImage(o Options, base v1.Layer, osName, arch string, created time.Time) (v1.Image, error) {
	dir := filepath.Join(o.BinDir, osName+"_"+arch)
	bins, err := layer(func(w *tar.Writer) error {
		for _, name := range Binaries {
			file := filepath.Join(dir, name)
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("reading the binary %s: %w", file, err)
			}
			if err := addFile(w, name, data, 0o755, created); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), base, bins)
	if err != nil {
		return nil, fmt.Errorf("adding the layers: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = osName, arch
	cf.Created = v1.Time{Time: created}
	cf.Author = "kmm"
	cf.Config.User = User
	cf.Config.Entrypoint = Entrypoint
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "kmm-render",
		"org.opencontainers.image.description": "kmm's Helm post-renderer (kmm-render) and upgrade controller (kmm-upgrade)",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
	}
	cf.History = []v1.History{
		{Created: v1.Time{Time: created}, CreatedBy: "kmm: /etc/passwd and /etc/group (nonroot 65532)"},
		{Created: v1.Time{Time: created}, CreatedBy: "kmm: /" + strings.Join(Binaries, ", /")},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("writing the image config: %w", err)
	}
	return img, nil
}

// layer makes an OCI layer of the tar that fill writes.
func layer(fill func(*tar.Writer) error) (v1.Layer, error) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	if err := fill(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("closing the layer's tar: %w", err)
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

func addRootfs(w *tar.Writer, created time.Time) error {
	var files []string
	err := fs.WalkDir(rootfs, "rootfs", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the base layer's files: %w", err)
	}
	sort.Strings(files)
	dirs := map[string]bool{}
	for _, p := range files {
		rel := strings.TrimPrefix(p, "rootfs/")
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: created, Format: tar.FormatPAX}); err != nil {
				return fmt.Errorf("writing %s: %w", d, err)
			}
		}
		data, err := rootfs.ReadFile(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if err := addFile(w, rel, data, 0o644, created); err != nil {
			return err
		}
	}
	return nil
}

func addFile(w *tar.Writer, name string, data []byte, mode int64, created time.Time) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: created, Format: tar.FormatPAX}
	if err := w.WriteHeader(h); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}
