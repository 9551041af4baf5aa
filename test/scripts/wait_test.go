package scripts_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWaitModule(t *testing.T) {
	t.Parallel()
	forShells(t, func(t *testing.T, sh shell) {
		t.Run("returns once the module appears", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			p := s.start("wait-module.sh", map[string]string{
				"KMM_MODULE": "kmm-ci-a", "KMM_SYS_MODULE": s.path("host/sys/module"), "KMM_POLL_SECONDS": "0.05",
			})
			eventually(t, "the waiting message", func() bool {
				return strings.Contains(p.output(), "kmm: waiting for module kmm-ci-a to be loaded on this node")
			})
			s.mkdir("host/sys/module/kmm_ci_a")
			code, out := p.wait()
			assert.Equal(t, 0, code, out)
			assert.Contains(t, out, "kmm: module kmm-ci-a is loaded")
		})
		t.Run("already loaded", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			s.mkdir("sys/module/nvidia_uvm")
			code, out := s.run("wait-module.sh", map[string]string{"KMM_MODULE": "nvidia-uvm"})
			assert.Equal(t, 0, code, out)
			assert.NotContains(t, out, "waiting")
		})
		t.Run("a file is not a loaded module", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			s.write("sys/module/m", "")
			p := s.start("wait-module.sh", map[string]string{"KMM_MODULE": "m", "KMM_POLL_SECONDS": "0.01"})
			eventually(t, "the waiting message", func() bool { return strings.Contains(p.output(), "kmm: waiting") })
			assert.NoError(t, os.Remove(s.path("sys/module/m")))
			s.mkdir("sys/module/m")
			code, out := p.wait()
			assert.Equal(t, 0, code, out)
		})
		t.Run("module required", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			code, out := s.run("wait-module.sh", nil)
			assert.Equal(t, 1, code, out)
			assert.Contains(t, out, "kmm: KMM_MODULE is empty")
		})
	})
}

func TestImageExists(t *testing.T) {
	t.Parallel()
	const img = "reg.example/kmm/a:6.1.0"
	const digest = "sha256:4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	auth := "Error: GET https://reg.example/token?scope=repository%3Akmm%2Fa%3Apull: UNAUTHORIZED: authentication required; [map[Action:pull Class: Name:kmm/a Type:repository]]"
	forShells(t, func(t *testing.T, sh shell) {
		t.Run("exists", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			s.write("ready", "")
			code, out := s.run("image-exists.sh", map[string]string{
				"KMM_IMAGE": img, "FAKE_CRANE_READY": s.path("ready"), "FAKE_DIGEST": digest,
			})
			assert.Equal(t, 0, code, out)
			assert.Equal(t, [][]string{call("crane", "digest", img)}, s.calls())
			assert.Contains(t, out, "kmm: "+img+" exists ("+digest+"): not rebuilt")
			assert.Equal(t, digest+"\n", s.read("state/exists"))
		})
		t.Run("insecure", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			code, out := s.run("image-exists.sh", map[string]string{"KMM_IMAGE": img, "KMM_INSECURE": "true"})
			assert.Equal(t, 0, code, out)
			assert.Equal(t, [][]string{call("crane", "--insecure", "digest", img)}, s.calls())
		})
		t.Run("missing", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			code, out := s.run("image-exists.sh", map[string]string{"KMM_IMAGE": img})
			assert.Equal(t, 0, code, out)
			assert.Contains(t, out, "kmm: "+img+" does not exist yet: building it")
			assert.NotContains(t, out, "MANIFEST_UNKNOWN")
			assert.False(t, s.exists("state/exists"))
		})
		t.Run("auth error is printed and read as missing", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			code, out := s.run("image-exists.sh", map[string]string{"KMM_IMAGE": img, "FAKE_CRANE_ERROR": auth})
			assert.Equal(t, 0, code, out)
			assert.Contains(t, out, "kmm: crane: "+auth)
			assert.Contains(t, out, "kmm: "+img+" does not exist yet: building it")
			assert.False(t, s.exists("state/exists"))
		})
		t.Run("image required", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			code, out := s.run("image-exists.sh", nil)
			assert.Equal(t, 1, code, out)
			assert.Contains(t, out, "kmm: KMM_IMAGE is empty")
		})
		t.Run("wait until built", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			p := s.start("image-exists.sh", map[string]string{
				"KMM_IMAGE": img, "KMM_WAIT": "true", "KMM_POLL_SECONDS": "0.02", "KMM_BUILD_JOB": "kmm-build-a",
				"FAKE_CRANE_READY": s.path("ready"), "FAKE_DIGEST": digest,
			})
			eventually(t, "three polls", func() bool { return len(s.calls("crane")) >= 3 })
			s.write("ready", "")
			code, out := p.wait()
			assert.Equal(t, 0, code, out)
			assert.Contains(t, out, "kmm: waiting for image "+img+" (built by Job kmm-build-a)")
			assert.Contains(t, out, "kmm: "+img+" exists ("+digest+")")
			assert.NotContains(t, out, "MANIFEST_UNKNOWN")
			assert.NotContains(t, out, "not rebuilt")
			for _, c := range s.calls() {
				assert.Equal(t, call("crane", "digest", img), c)
			}
		})
		t.Run("wait shows other errors once", func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, sh)
			p := s.start("image-exists.sh", map[string]string{
				"KMM_IMAGE": img, "KMM_WAIT": "true", "KMM_POLL_SECONDS": "0.02", "KMM_INSECURE": "true",
				"FAKE_CRANE_READY": s.path("ready"), "FAKE_CRANE_ERROR": auth,
			})
			eventually(t, "three polls", func() bool { return len(s.calls("crane")) >= 3 })
			s.write("ready", "")
			code, out := p.wait()
			assert.Equal(t, 0, code, out)
			assert.Contains(t, out, "kmm: waiting for image "+img+"\n")
			assert.Equal(t, 1, strings.Count(out, "kmm: crane: "+auth), out)
			for _, c := range s.calls() {
				assert.Equal(t, call("crane", "--insecure", "digest", img), c)
			}
		})
	})
}
