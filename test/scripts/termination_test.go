package scripts_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTerminationMessage checks the termination message (KMM_TERMINATION_LOG) that load.sh and
// unload.sh write when they fail: one line, at most 4096 bytes. TestLoad, TestUnload and
// TestLoadStop check the message of each failure.
func TestTerminationMessage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		script string
		env    map[string]string
		// wantOut is the whole output; it may span lines (the message given has newlines).
		wantOut     string
		termination string
	}{{
		name:   "load.sh: newlines become blanks",
		script: "load.sh",
		env:    map[string]string{"KMM_MODULE": "a", "KMM_KERNEL": "5.14.0\n1\n", "KMM_ONESHOT": "true"},
		wantOut: "kmm: this loader is for kernel 5.14.0\n1\n but the node runs 6.1.0-test: " +
			"the pod was scheduled on the wrong node; check its nodeSelector\n",
		termination: "this loader is for kernel 5.14.0 1  but the node runs 6.1.0-test: " +
			"the pod was scheduled on the wrong node; check its nodeSelector",
	}, {
		name:   "load.sh: cut to its first 4096 bytes",
		script: "load.sh",
		env:    map[string]string{"KMM_MODULE": "a", "KMM_KERNEL": strings.Repeat("k", 5000), "KMM_ONESHOT": "true"},
		wantOut: "kmm: this loader is for kernel " + strings.Repeat("k", 5000) + " but the node runs 6.1.0-test: " +
			"the pod was scheduled on the wrong node; check its nodeSelector\n",
		// "this loader is for kernel " is 26 bytes: 4070 bytes of the kernel's name follow.
		termination: "this loader is for kernel " + strings.Repeat("k", 4070),
	}, {
		name:   "load.sh: cut to 4096 bytes, not characters, in a UTF-8 locale",
		script: "load.sh",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_KERNEL": strings.Repeat("é", 3000), "KMM_ONESHOT": "true",
			"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
		},
		wantOut: "kmm: this loader is for kernel " + strings.Repeat("é", 3000) + " but the node runs 6.1.0-test: " +
			"the pod was scheduled on the wrong node; check its nodeSelector\n",
		// 26 bytes, then 4070 bytes: 2035 two-byte é.
		termination: "this loader is for kernel " + strings.Repeat("é", 2035),
	}, {
		name:   "unload.sh: newlines become blanks",
		script: "unload.sh",
		env:    map[string]string{"KMM_MODULE": "a\nb", "FAKE_MODPROBE_FAIL": "b"},
		wantOut: "kmm: modprobe -r -v -d /opt a\nb\n" +
			"fake-modprobe: ERROR: could not handle 'b': Operation not permitted\n" +
			"kmm: could not unload a\nb (in use?): stop what uses it and try again\n",
		termination: "could not unload a b (in use?): stop what uses it and try again",
	}, {
		name:   "unload.sh: cut to its first 4096 bytes",
		script: "unload.sh",
		env: map[string]string{
			"KMM_RAW": "true", "KMM_RAW_UNLOAD": lines("-r", strings.Repeat("m", 5000)), "FAKE_MODPROBE_FAIL": strings.Repeat("m", 5000),
		},
		wantOut: "kmm: modprobe -r " + strings.Repeat("m", 5000) + "\n" +
			"fake-modprobe: ERROR: could not handle '" + strings.Repeat("m", 5000) + "': Operation not permitted\n" +
			"kmm: could not unload rawArgs.unload (-r " + strings.Repeat("m", 5000) + ") (in use?): stop what uses it and try again\n",
		// "could not unload rawArgs.unload (-r " is 36 bytes: 4060 bytes of the name follow.
		termination: "could not unload rawArgs.unload (-r " + strings.Repeat("m", 4060),
	}}
	forShells(t, func(t *testing.T, sh shell) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t, sh)
				code, out := s.start(c.script, c.env).waitAny()
				assert.Equal(t, 1, code, "exit code; output:\n%s", out)
				assert.Equal(t, c.wantOut, out)
				got := s.read("termination-log")
				assert.Equal(t, c.termination, got)
				assert.LessOrEqual(t, len(got), 4096)
			})
		}
	})
}

// TestTerminationLogUnwritable runs load.sh and unload.sh, failing and succeeding, with a
// KMM_TERMINATION_LOG that cannot be written: their exit status and output are those of a
// writable one.
func TestTerminationLogUnwritable(t *testing.T) {
	t.Parallel()
	runs := []struct {
		name     string
		script   string
		env      map[string]string
		wantCode int
		wantOut  string
	}{{
		name:     "load.sh fails",
		script:   "load.sh",
		env:      map[string]string{"KMM_MODULE": "a", "KMM_KERNEL": "5.14.0-1", "KMM_ONESHOT": "true"},
		wantCode: 1,
		wantOut: "kmm: this loader is for kernel 5.14.0-1 but the node runs 6.1.0-test: " +
			"the pod was scheduled on the wrong node; check its nodeSelector\n",
	}, {
		name:     "load.sh fails in diagnose",
		script:   "load.sh",
		env:      map[string]string{"KMM_MODULE": "a", "KMM_ONESHOT": "true", "FAKE_MODPROBE_FAIL": "a"},
		wantCode: 1,
		wantOut: "kmm: modprobe -v -d /opt a\n" +
			"fake-modprobe: ERROR: could not handle 'a': Operation not permitted\n" +
			"kmm: no module a in /opt/lib/modules/6.1.0-test (check dirName and the image)\n",
	}, {
		name:    "load.sh succeeds",
		script:  "load.sh",
		env:     map[string]string{"KMM_MODULE": "a", "KMM_ONESHOT": "true"},
		wantOut: "kmm: modprobe -v -d /opt a\nkmm: loaded a (kernel 6.1.0-test)\n",
	}, {
		name:     "unload.sh fails",
		script:   "unload.sh",
		env:      map[string]string{"KMM_MODULE": "a", "FAKE_MODPROBE_FAIL": "a"},
		wantCode: 1,
		wantOut: "kmm: modprobe -r -v -d /opt a\n" +
			"fake-modprobe: ERROR: could not handle 'a': Operation not permitted\n" +
			"kmm: could not unload a (in use?): stop what uses it and try again\n",
	}, {
		name:    "unload.sh succeeds",
		script:  "unload.sh",
		env:     map[string]string{"KMM_MODULE": "a"},
		wantOut: "kmm: modprobe -r -v -d /opt a\nkmm: unloaded a\n",
	}}
	// Each place makes KMM_TERMINATION_LOG unwritable (even for root) and checks what it left.
	places := []struct {
		name  string
		setup func(s *sandbox) string
		check func(t *testing.T, s *sandbox)
	}{{
		name:  "a folder",
		setup: func(s *sandbox) string { s.mkdir("log"); return s.path("log") },
		check: func(t *testing.T, s *sandbox) {
			entries, err := os.ReadDir(s.path("log"))
			require.NoError(t, err)
			assert.Empty(t, entries)
		},
	}, {
		name:  "in a missing folder",
		setup: func(s *sandbox) string { return s.path("missing/termination-log") },
		check: func(t *testing.T, s *sandbox) { assert.False(t, s.exists("missing")) },
	}, {
		name:  "under a regular file",
		setup: func(s *sandbox) string { s.write("file", "x"); return s.path("file/termination-log") },
		check: func(t *testing.T, s *sandbox) { assert.Equal(t, "x", s.read("file")) },
	}, {
		name:  "a full device",
		setup: func(*sandbox) string { return "/dev/full" },
		check: func(*testing.T, *sandbox) {},
	}}
	if _, err := os.Stat("/dev/full"); err != nil {
		places = places[:len(places)-1]
	}
	forShells(t, func(t *testing.T, sh shell) {
		for _, r := range runs {
			for _, pl := range places {
				t.Run(r.name+", "+pl.name, func(t *testing.T) {
					t.Parallel()
					s := newSandbox(t, sh)
					s.write("state/loaded", "")
					s.env["KMM_TERMINATION_LOG"] = pl.setup(s)
					code, out := s.run(r.script, r.env)
					assert.Equal(t, r.wantCode, code, "exit code; output:\n%s", out)
					assert.Equal(t, r.wantOut, out)
					pl.check(t, s)
				})
			}
		}
	})
}
