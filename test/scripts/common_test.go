package scripts_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCommonSourced checks where load.sh and unload.sh find common.sh, which they source: in
// KMM_SCRIPTS when it is set, else in their own folder; without it they fail saying so, before
// running anything.
func TestCommonSourced(t *testing.T) {
	t.Parallel()
	files, err := filepath.Abs(filesDir)
	require.NoError(t, err)
	runs := []struct {
		name    string
		script  string
		env     map[string]string
		wantOut string
	}{{
		name:    "load.sh",
		script:  "load.sh",
		env:     map[string]string{"KMM_MODULE": "a", "KMM_ONESHOT": "true"},
		wantOut: "kmm: modprobe -v -d /opt a\nkmm: loaded a (kernel 6.1.0-test)\n",
	}, {
		name:    "unload.sh",
		script:  "unload.sh",
		env:     map[string]string{"KMM_MODULE": "a"},
		wantOut: "kmm: modprobe -r -v -d /opt a\nkmm: unloaded a\n",
	}}
	forShells(t, func(t *testing.T, sh shell) {
		for _, r := range runs {
			// The script alone in a folder of the sandbox.
			lone := func(s *sandbox) string {
				data, err := os.ReadFile(filepath.Join(files, r.script))
				require.NoError(t, err)
				s.write("alone/"+r.script, string(data))
				return s.path("alone/" + r.script)
			}
			t.Run(r.name+" without common.sh", func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t, sh)
				code, out := s.startFile(lone(s), r.env).wait()
				assert.Equal(t, 1, code, "exit code; output:\n%s", out)
				assert.Equal(t, "kmm: "+s.path("alone")+"/common.sh is missing: it ships with this script (set KMM_SCRIPTS to their folder)\n", out)
				assert.Empty(t, s.calls(), "nothing runs without common.sh")
			})
			t.Run(r.name+" with KMM_SCRIPTS", func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t, sh)
				s.write("state/loaded", "")
				env := map[string]string{"KMM_SCRIPTS": files}
				for k, v := range r.env {
					env[k] = v
				}
				code, out := s.startFile(lone(s), env).wait()
				assert.Equal(t, 0, code, "exit code; output:\n%s", out)
				assert.Equal(t, r.wantOut, out)
			})
		}
	})
}
