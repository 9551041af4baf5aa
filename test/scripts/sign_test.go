package scripts_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSign(t *testing.T) {
	t.Parallel()
	// The image tree under root/: modules, a link to a module, other files.
	tree := func(s *sandbox) {
		s.write("root/opt/lib/modules/6.1.0/a.ko", "A")
		s.write("root/opt/lib/modules/6.1.0/extra/b.ko", "B")
		s.write("root/opt/lib/modules/6.1.0/modules.dep", "")
		s.write("root/opt/lib/modules/6.1.0/a.ko.txt", "")
		s.write("root/opt/x y/m.ko", "M")
		s.symlink("a.ko", "root/opt/lib/modules/6.1.0/link.ko")
		s.write("key.pem", "SECRET-KEY-MATERIAL\n")
		s.write("cert.pem", "CERT\n")
		s.env["KMM_ROOT"] = s.path("root")
		s.env["KMM_SIGN_KEY"] = s.path("key.pem")
		s.env["KMM_SIGN_CERT"] = s.path("cert.pem")
	}
	signed := func(s *sandbox, rels ...string) [][]string {
		var out [][]string
		for _, r := range rels {
			out = append(out, call("sign-file", "sha256", s.path("key.pem"), s.path("cert.pem"), s.path("root"+r)))
		}
		return out
	}
	cases := []struct {
		name     string
		env      map[string]string
		setup    func(s *sandbox)
		wantCode int
		want     []string // files signed, without the root
		wantOut  []string
	}{{
		name:    "every module by default",
		want:    []string{"/opt/lib/modules/6.1.0/a.ko", "/opt/lib/modules/6.1.0/extra/b.ko"},
		wantOut: []string{"kmm: signed /opt/lib/modules/6.1.0/a.ko\n", "kmm: signed /opt/lib/modules/6.1.0/extra/b.ko\n"},
	}, {
		name: "globs and paths with spaces",
		env: map[string]string{"KMM_FILES_TO_SIGN": lines(
			"/opt/lib/modules/*/extra/*.ko", "", "/opt/x y/m.ko", "/opt/lib/modules/6.1.0/a.ko", "/opt/lib/modules/6.1.0/[a].ko")},
		want:    []string{"/opt/lib/modules/6.1.0/extra/b.ko", "/opt/x y/m.ko", "/opt/lib/modules/6.1.0/a.ko"},
		wantOut: []string{"kmm: signed /opt/x y/m.ko\n"},
	}, {
		name: "list from a file",
		env:  map[string]string{"KMM_FILES_TO_SIGN": lines("/nothing/*.ko")},
		setup: func(s *sandbox) {
			s.write("list", "/opt/x y/*.ko\n\n")
			s.env["KMM_FILES_TO_SIGN_FILE"] = s.path("list")
		},
		want: []string{"/opt/x y/m.ko"},
	}, {
		name:  "another dirName",
		env:   map[string]string{"KMM_DIR_NAME": "/opt/x y"},
		setup: func(s *sandbox) { s.write("root/opt/x y/lib/modules/6.1.0/c.ko", "C") },
		want:  []string{"/opt/x y/lib/modules/6.1.0/c.ko"},
	}, {
		name:     "no module by default",
		env:      map[string]string{"KMM_DIR_NAME": "/opt/x y"},
		setup:    func(s *sandbox) { s.write("root/opt/x y/lib/modules/6.1.0/notes", "") },
		wantCode: 1,
		wantOut:  []string{"kmm: no *.ko file under "},
	}, {
		name:     "no match",
		env:      map[string]string{"KMM_FILES_TO_SIGN": lines("/opt/lib/modules/6.1.0/a.ko", "/opt/nope/*.ko")},
		wantCode: 1,
		wantOut:  []string{"kmm: filesToSign entry /opt/nope/*.ko matches no file under "},
	}, {
		name:     "relative path",
		env:      map[string]string{"KMM_FILES_TO_SIGN": lines("a.ko")},
		wantCode: 1,
		wantOut:  []string{"kmm: filesToSign entry a.ko is not an absolute path"},
	}, {
		name:     "compressed module by default",
		setup:    func(s *sandbox) { s.write("root/opt/lib/modules/6.1.0/extra/c.ko.xz", "") },
		wantCode: 1,
		wantOut:  []string{"kmm: /opt/lib/modules/6.1.0/extra/c.ko.xz is compressed: sign-file cannot sign compressed modules"},
	}, {
		name:     "compressed module listed",
		env:      map[string]string{"KMM_FILES_TO_SIGN": lines("/opt/lib/modules/6.1.0/*.ko*")},
		setup:    func(s *sandbox) { s.write("root/opt/lib/modules/6.1.0/c.ko.zst", "") },
		wantCode: 1,
		wantOut:  []string{"kmm: /opt/lib/modules/6.1.0/c.ko.zst is compressed: sign-file cannot sign compressed modules"},
	}, {
		name:     "key missing",
		setup:    func(s *sandbox) { require.NoError(s.t, os.Remove(s.path("key.pem"))) },
		wantCode: 1,
		wantOut:  []string{"kmm: signing key ", "/key.pem does not exist: it comes from the Secret named by sign.keySecret (key \"key\")"},
	}, {
		name:     "certificate missing",
		setup:    func(s *sandbox) { require.NoError(s.t, os.Remove(s.path("cert.pem"))) },
		wantCode: 1,
		wantOut:  []string{"kmm: signing certificate ", "/cert.pem does not exist: it comes from the Secret named by sign.certSecret (key \"cert\")"},
	}, {
		name:     "sign-file fails",
		env:      map[string]string{"FAKE_SIGN_FAIL": "1", "KMM_FILES_TO_SIGN": lines("/opt/x y/m.ko")},
		wantCode: 1,
		wantOut:  []string{"kmm: sign-file failed for /opt/x y/m.ko"},
	}, {
		name:     "sign-file missing",
		env:      map[string]string{"KMM_SIGN_FILE": "/nonexistent/sign-file"},
		wantCode: 1,
		wantOut:  []string{"kmm: /nonexistent/sign-file is not an executable file"},
	}}
	forShells(t, func(t *testing.T, sh shell) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t, sh)
				tree(s)
				if c.setup != nil {
					c.setup(s)
				}
				code, out := s.run("sign.sh", c.env)
				assert.Equal(t, c.wantCode, code, "exit code; output:\n%s", out)
				if c.wantCode == 0 {
					assert.Equal(t, signed(s, c.want...), s.calls(), "output:\n%s", out)
				} else if c.name != "sign-file fails" {
					assert.Empty(t, s.calls("sign-file"), "output:\n%s", out)
				}
				for _, w := range c.wantOut {
					assert.Contains(t, out, w)
				}
				assert.NotContains(t, out, "SECRET-KEY-MATERIAL")
			})
		}
	})
}
