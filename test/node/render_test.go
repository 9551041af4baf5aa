package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	kmmimage "kmm.dev/kmm/internal/image"
)

// renderImage is the kmm-render image (kmm-render and kmm-upgrade) as the guest pulls it: the
// chart's upgrade.image.
const renderImage = "kmm-test/kmm-render"

// pushRenderImage builds the kmm-render image the way make image does (internal/image, from
// static go builds of ./cmd/kmm-render and ./cmd/kmm-upgrade), for linux/amd64 only, and pushes
// its index to the registry at host as renderImage:tag.
func pushRenderImage(t *testing.T, host, tag, dir string) {
	t.Helper()
	bin := filepath.Join(dir, "linux_amd64")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin+"/", "./cmd/kmm-render", "./cmd/kmm-upgrade")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kmm-render ./cmd/kmm-upgrade: %v\n%s", err, out)
	}
	idx, err := kmmimage.Build(kmmimage.Options{BinDir: dir, Platforms: []string{"linux/amd64"}, Version: "node-test",
		Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(fmt.Sprintf("%s/%s:%s", host, renderImage, tag), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, _ := idx.Digest()
	t.Logf("pushed %s/%s:%s (%s)", guestRegistry, renderImage, tag, d)
}
