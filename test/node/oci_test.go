package node

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"kmm.dev/kmm/internal/ldd"
)

// layer is an image layer under construction: files by path (no leading slash). Folders are
// implied by the files' paths.
type layer struct {
	files map[string]layerFile
	// tarFile, when set, is the whole layer: a tar file on the host (hack/node-images.sh's).
	tarFile string
}

// tarLayer is the layer of the tar file at path, as it is.
func tarLayer(path string) *layer { return &layer{tarFile: path} }

type layerFile struct {
	mode    int64
	data    []byte
	link    string // a symbolic link's target
	dir     bool
	modTime time.Time
	uid     int // owner and group
}

func newLayer() *layer { return &layer{files: map[string]layerFile{}} }

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (l *layer) file(p string, mode int64, data []byte) {
	l.files[clean(p)] = layerFile{mode: mode, data: data}
}

func (l *layer) symlink(p, target string) { l.files[clean(p)] = layerFile{mode: 0o777, link: target} }

func (l *layer) dir(p string) { l.files[clean(p)] = layerFile{mode: 0o755, dir: true} }

// ownedDir is the folder p owned by uid and its group uid, mode 0700.
func (l *layer) ownedDir(p string, uid int) {
	l.files[clean(p)] = layerFile{mode: 0o700, dir: true, uid: uid}
}

// hostFile copies the host file src to p, keeping its permissions.
func (l *layer) hostFile(p, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	l.file(p, int64(st.Mode().Perm()), data)
	return nil
}

// tree copies the host folder dir to p.
func (l *layer) tree(p, dir string) error {
	return filepath.WalkDir(dir, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, host)
		if err != nil {
			return err
		}
		target := path.Join(p, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			l.dir(target)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(host)
			if err != nil {
				return err
			}
			l.symlink(target, link)
		case d.Type().IsRegular():
			return l.hostFile(target, host)
		}
		return nil
	})
}

// binary copies the host program prog to p, with the shared libraries and the loader ldd lists,
// at the paths ldd prints (with /usr merged away: /lib/x86_64-linux-gnu, /lib64).
func (l *layer) binary(p, prog string) error {
	if err := l.hostFile(p, prog); err != nil {
		return err
	}
	libs, err := ldd.Libraries(context.Background(), prog)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		if err := l.hostFile(strings.TrimPrefix(lib.Path, "/usr"), lib.File); err != nil {
			return err
		}
	}
	return nil
}

// tarGz writes the layer as a gzip-compressed tar, folders first, sorted, with fixed times and
// owners (root), and returns it with the digest of the uncompressed tar (the image config's
// diff_id).
func (l *layer) tarGz() (blob []byte, diffID string, err error) {
	if l.tarFile != "" {
		raw, err := os.ReadFile(l.tarFile)
		if err != nil {
			return nil, "", err
		}
		return gz(raw)
	}
	all := map[string]layerFile{}
	for p, f := range l.files {
		all[p] = f
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = layerFile{mode: 0o755, dir: true}
			}
		}
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names)
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	epoch := time.Unix(1700000000, 0)
	for _, p := range names {
		f := all[p]
		h := &tar.Header{Name: p, Mode: f.mode, ModTime: epoch, Format: tar.FormatPAX, Uid: f.uid, Gid: f.uid}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, p+"/"
		case f.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.data); err != nil {
				return nil, "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	return gz(raw.Bytes())
}

// gz compresses the tar raw, and returns it with raw's digest (the diff_id).
func gz(raw []byte) (blob []byte, diffID string, err error) {
	sum := sha256.Sum256(raw)
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return out.Bytes(), "sha256:" + hex.EncodeToString(sum[:]), nil
}

// image is an OCI image to push: its layers, bottom first, and its process.
type image struct {
	layers     []*layer
	entrypoint []string
	cmd        []string
	env        []string
	user       string
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// push writes img to the registry at host (plain HTTP) as repo:tag, through the OCI
// distribution API (blob uploads, then the manifest), and returns the manifest's digest.
func push(ctx context.Context, host, repo, tag string, img image) (string, error) {
	type descriptor struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	var layers []descriptor
	var diffIDs []string
	for _, l := range img.layers {
		blob, diffID, err := l.tarGz()
		if err != nil {
			return "", err
		}
		d := descriptor{"application/vnd.oci.image.layer.v1.tar+gzip", digestOf(blob), len(blob)}
		if err := putBlob(ctx, host, repo, d.Digest, blob); err != nil {
			return "", err
		}
		layers = append(layers, d)
		diffIDs = append(diffIDs, diffID)
	}
	env := img.env
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      "2023-11-14T22:13:20Z",
		"config":       map[string]any{"Entrypoint": img.entrypoint, "Cmd": img.cmd, "Env": env, "User": img.user},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return "", err
	}
	cd := descriptor{"application/vnd.oci.image.config.v1+json", digestOf(config), len(config)}
	if err := putBlob(ctx, host, repo, cd.Digest, config); err != nil {
		return "", err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        cd,
		"layers":        layers,
	})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, repo, tag), bytes.NewReader(manifest))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if err := do(req, http.StatusCreated); err != nil {
		return "", fmt.Errorf("pushing the manifest of %s:%s: %w", repo, tag, err)
	}
	return digestOf(manifest), nil
}

func putBlob(ctx context.Context, host, repo, digest string, blob []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://%s/v2/%s/blobs/uploads/", host, repo), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("starting a blob upload to %s: %s", repo, resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	if !loc.IsAbs() {
		loc.Scheme, loc.Host = "http", host
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(blob))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if err := do(req, http.StatusCreated); err != nil {
		return fmt.Errorf("uploading blob %s to %s: %w", digest, repo, err)
	}
	return nil
}

func do(req *http.Request, want int) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, body)
	}
	return nil
}
