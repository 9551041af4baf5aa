package scripts_test

import (
	"maps"
	"slices"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	type tc struct {
		name      string
		env       map[string]string
		setup     func(s *sandbox)
		wantCode  int
		wantCalls func(s *sandbox) [][]string // modprobe and modinfo calls
		wantOut   []string
		notOut    []string
		check     func(t *testing.T, s *sandbox)
	}
	loaded := func(t *testing.T, s *sandbox) {
		assert.True(t, s.exists("state/loaded"), "state/loaded was not written")
	}
	notLoaded := func(t *testing.T, s *sandbox) {
		assert.False(t, s.exists("state/loaded"), "state/loaded was written")
	}
	cases := []tc{{
		name: "module only",
		env:  map[string]string{"KMM_MODULE": "kmm-ci-a", "KMM_ONESHOT": "true"},
		wantCalls: func(*sandbox) [][]string {
			return [][]string{call("modprobe", "-v", "-d", "/opt", "kmm-ci-a")}
		},
		wantOut: []string{"kmm: loaded kmm-ci-a (kernel " + kernel + ")"},
		check: func(t *testing.T, s *sandbox) {
			loaded(t, s)
			assert.True(t, s.exists("sys/module/kmm_ci_a"))
		},
	}, {
		name: "loading order, args before the module, parameters after it",
		env: map[string]string{
			"KMM_MODULE":        "a",
			"KMM_LOADING_ORDER": lines("a", "b", "", "c"),
			"KMM_LOAD_ARGS":     lines("--first-time", "--syslog"),
			"KMM_PARAMETERS":    lines("p1=1", "", `msg=hello "big" world`, `q='x y'`),
			"KMM_ONESHOT":       "true",
		},
		wantCalls: func(*sandbox) [][]string {
			return [][]string{
				call("modprobe", "-v", "-d", "/opt", "c"),
				call("modprobe", "-v", "-d", "/opt", "b"),
				call("modprobe", "-v", "-d", "/opt", "--first-time", "--syslog", "a", "p1=1", `msg=hello "big" world`, `q='x y'`),
			}
		},
		wantOut: []string{"kmm: loaded a (kernel " + kernel + ")"},
		check:   loaded,
	}, {
		name: "root prefix and dirName",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_ROOT": "/kmm/build/rootfs", "KMM_DIR_NAME": "/mods",
			"KMM_ONESHOT": "true",
		},
		wantCalls: func(*sandbox) [][]string {
			return [][]string{call("modprobe", "-v", "-d", "/kmm/build/rootfs/mods", "a")}
		},
		check: loaded,
	}, {
		name: "raw args replace the command",
		env: map[string]string{
			"KMM_RAW": "true", "KMM_RAW_LOAD": lines("-v", "-d", "/raw dir", "foo", "bar=a b"),
			"KMM_MODULE": "", "KMM_LOADING_ORDER": lines("x", "y"), "KMM_LOAD_ARGS": lines("--nope"),
			"KMM_ONESHOT": "true",
		},
		wantCalls: func(*sandbox) [][]string {
			return [][]string{call("modprobe", "-v", "-d", "/raw dir", "foo", "bar=a b")}
		},
		wantOut: []string{"kmm: loaded rawArgs.load"},
		check:   loaded,
	}, {
		name: "in-tree modules removed only when loaded",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_IN_TREE_REMOVE": lines("ice", "bnx-x"), "KMM_ONESHOT": "true",
		},
		setup: func(s *sandbox) { s.mkdir("sys/module/bnx_x") },
		wantCalls: func(*sandbox) [][]string {
			return [][]string{
				call("modprobe", "-r", "-v", "bnx-x"),
				call("modprobe", "-v", "-d", "/opt", "a"),
			}
		},
		check: func(t *testing.T, s *sandbox) {
			loaded(t, s)
			assert.False(t, s.exists("sys/module/bnx_x"))
		},
	}, {
		name: "in-tree module in use",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_IN_TREE_REMOVE": lines("bnx-x"), "KMM_ONESHOT": "true",
			"FAKE_MODPROBE_FAIL": "bnx-x",
		},
		setup:    func(s *sandbox) { s.mkdir("sys/module/bnx_x") },
		wantCode: 1,
		wantCalls: func(*sandbox) [][]string {
			return [][]string{call("modprobe", "-r", "-v", "bnx-x")}
		},
		wantOut: []string{"kmm: could not unload in-tree module bnx-x (in use?)"},
		check:   notLoaded,
	}, {
		name:      "kernel mismatch",
		env:       map[string]string{"KMM_MODULE": "a", "KMM_KERNEL": "5.14.0-1", "KMM_ONESHOT": "true"},
		wantCode:  1,
		wantCalls: func(*sandbox) [][]string { return nil },
		wantOut:   []string{"kmm: this loader is for kernel 5.14.0-1 but the node runs " + kernel},
		check:     notLoaded,
	}, {
		name:      "kernel match",
		env:       map[string]string{"KMM_MODULE": "a", "KMM_KERNEL": kernel, "KMM_ONESHOT": "true"},
		wantCalls: func(*sandbox) [][]string { return [][]string{call("modprobe", "-v", "-d", "/opt", "a")} },
		check:     loaded,
	}, {
		name: "built for another kernel",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_ONESHOT": "true", "FAKE_MODPROBE_FAIL": "a",
			"FAKE_MODINFO_VERMAGIC": "5.14.0-1 SMP preempt mod_unload modversions",
		},
		wantCode: 1,
		wantCalls: func(*sandbox) [][]string {
			return [][]string{
				call("modprobe", "-v", "-d", "/opt", "a"),
				call("modinfo", "-b", "/opt", "-k", kernel, "-F", "vermagic", "a"),
			}
		},
		wantOut: []string{"kmm: a was built for kernel 5.14.0-1, this node runs " + kernel + ": rebuild it for " + kernel},
		check:   notLoaded,
	}, {
		name: "module not in the image",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_ROOT": "/r", "KMM_ONESHOT": "true", "FAKE_MODPROBE_FAIL": "a",
		},
		wantCode: 1,
		wantCalls: func(*sandbox) [][]string {
			return [][]string{
				call("modprobe", "-v", "-d", "/r/opt", "a"),
				call("modinfo", "-b", "/r/opt", "-k", kernel, "-F", "vermagic", "a"),
			}
		},
		wantOut: []string{"kmm: no module a in /r/opt/lib/modules/" + kernel + " (check dirName and the image)"},
		check:   notLoaded,
	}, {
		name: "module for this kernel fails",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_ONESHOT": "true", "FAKE_MODPROBE_FAIL": "a",
			"FAKE_MODINFO_VERMAGIC": kernel + " SMP mod_unload",
		},
		wantCode: 1,
		wantOut:  []string{"kmm: modprobe a failed (see the messages above and the node's dmesg)"},
		notOut:   []string{"rebuild", "no module"},
		check:    notLoaded,
	}, {
		name: "dependency fails",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_LOADING_ORDER": lines("a", "b", "c"), "KMM_ONESHOT": "true",
			"FAKE_MODPROBE_FAIL": "b", "FAKE_MODINFO_VERMAGIC": "5.0.0 SMP",
		},
		wantCode: 1,
		wantCalls: func(*sandbox) [][]string {
			return [][]string{
				call("modprobe", "-v", "-d", "/opt", "c"),
				call("modprobe", "-v", "-d", "/opt", "b"),
				call("modinfo", "-b", "/opt", "-k", kernel, "-F", "vermagic", "b"),
			}
		},
		wantOut: []string{"kmm: b was built for kernel 5.0.0, this node runs " + kernel},
		check:   notLoaded,
	}, {
		name: "raw load fails",
		env: map[string]string{
			"KMM_RAW": "true", "KMM_RAW_LOAD": lines("foo"), "KMM_ONESHOT": "true", "FAKE_MODPROBE_FAIL": "foo",
		},
		wantCode: 1,
		wantOut:  []string{"kmm: modprobe foo failed (see the messages above and the node's dmesg)"},
		check:    notLoaded,
	}, {
		name:     "no module name",
		env:      map[string]string{"KMM_ONESHOT": "true"},
		wantCode: 1,
		wantOut:  []string{"kmm: KMM_MODULE is empty"},
	}}

	// Firmware.
	firmwareEnv := func(extra map[string]string) map[string]string {
		env := map[string]string{"KMM_MODULE": "a", "KMM_ONESHOT": "true", "KMM_FIRMWARE_PATH": "/firmware"}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	firmwareTree := func(s *sandbox) {
		s.write("root/firmware/a.bin", "A")
		s.write("root/firmware/vendor/b bin", "B")
		s.env["KMM_ROOT"] = s.path("root")
		s.env["KMM_FIRMWARE_DIR"] = s.path("host-fw")
		s.env["KMM_FIRMWARE_CLASS_PATH"] = s.path("fwclass/path")
	}
	firmwareCopied := func(t *testing.T, s *sandbox) {
		loaded(t, s)
		assert.Equal(t, "A", s.read("host-fw/a.bin"))
		assert.Equal(t, "B", s.read("host-fw/vendor/b bin"))
	}
	cases = append(cases, tc{
		name: "firmware copied and class path written",
		env:  firmwareEnv(map[string]string{"KMM_FIRMWARE_HOST_PATH": "/var/lib/firmware"}),
		setup: func(s *sandbox) {
			firmwareTree(s)
			s.write("fwclass/path", "\n")
		},
		wantCalls: func(s *sandbox) [][]string {
			return [][]string{call("modprobe", "-v", "-d", s.path("root/opt"), "a")}
		},
		wantOut: []string{"kmm: set the kernel firmware search path to /var/lib/firmware"},
		check: func(t *testing.T, s *sandbox) {
			firmwareCopied(t, s)
			assert.Equal(t, "/var/lib/firmware", s.read("fwclass/path"))
		},
	}, tc{
		name:  "firmware host path defaults to the firmware dir",
		env:   firmwareEnv(nil),
		setup: func(s *sandbox) { firmwareTree(s); s.write("fwclass/path", "/lib/firmware/other\n") },
		check: func(t *testing.T, s *sandbox) {
			firmwareCopied(t, s)
			assert.Equal(t, s.path("host-fw"), s.read("fwclass/path"))
		},
	}, tc{
		name:   "firmware class path already set",
		env:    firmwareEnv(map[string]string{"KMM_FIRMWARE_HOST_PATH": "/var/lib/firmware"}),
		setup:  func(s *sandbox) { firmwareTree(s); s.write("fwclass/path", " /var/lib/firmware\n") },
		notOut: []string{"firmware search path"},
		check: func(t *testing.T, s *sandbox) {
			firmwareCopied(t, s)
			assert.Equal(t, " /var/lib/firmware\n", s.read("fwclass/path"))
		},
	}, tc{
		name:    "no firmware class path",
		env:     firmwareEnv(map[string]string{"KMM_FIRMWARE_HOST_PATH": "/var/lib/firmware"}),
		setup:   firmwareTree,
		wantOut: []string{"kmm: warning: ", "the kernel will only search its default firmware folders"},
		check: func(t *testing.T, s *sandbox) {
			firmwareCopied(t, s)
			assert.False(t, s.exists("fwclass/path"))
		},
	}, tc{
		name: "firmware folder missing from the image",
		env:  firmwareEnv(map[string]string{"KMM_FIRMWARE_PATH": "/nope"}),
		setup: func(s *sandbox) {
			firmwareTree(s)
		},
		wantCode:  1,
		wantCalls: func(*sandbox) [][]string { return nil },
		wantOut:   []string{"kmm: firmware folder ", "/nope does not exist"},
		check:     notLoaded,
	})

	// Version check (KMM_VERIFY_VERSION): the image's a and b are at srcversion NEW-A/NEW-B
	// (version 2.0.0); what is in the kernel before the load is set up per case.
	image := func(s *sandbox) {
		s.write("image/a.srcversion", "NEWA0000000000000000000\n")
		s.write("image/a.version", "2.0.0\n")
		s.write("image/b.srcversion", "NEWB0000000000000000000\n")
		s.write("image/b.version", "2.0.0\n")
		s.env["FAKE_MODINFO_DIR"] = s.path("image")
	}
	inKernel := func(s *sandbox, m, src, ver string) {
		s.write("sys/module/"+m+"/srcversion", src+"\n")
		s.write("sys/module/"+m+"/version", ver+"\n")
	}
	verifyEnv := map[string]string{
		"KMM_MODULE": "a", "KMM_LOADING_ORDER": lines("a", "b"), "KMM_ONESHOT": "true", "KMM_VERIFY_VERSION": "true",
	}
	fields := func(m string) [][]string {
		return [][]string{
			call("modinfo", "-b", "/opt", "-k", kernel, "-F", "srcversion", m),
			call("modinfo", "-b", "/opt", "-k", kernel, "-F", "version", m),
		}
	}
	loadCalls := [][]string{call("modprobe", "-v", "-d", "/opt", "b"), call("modprobe", "-v", "-d", "/opt", "a")}
	cases = append(cases, tc{
		name:  "version: nothing loaded, the image's version is verified after the load",
		env:   verifyEnv,
		setup: image,
		wantCalls: func(*sandbox) [][]string {
			return slices.Concat(loadCalls, fields("a"), fields("b"))
		},
		wantOut: []string{
			"kmm: verified a: srcversion NEWA0000000000000000000, version 2.0.0",
			"kmm: verified b: srcversion NEWB0000000000000000000, version 2.0.0",
			"kmm: loaded a (kernel " + kernel + ")",
		},
		check: func(t *testing.T, s *sandbox) {
			loaded(t, s)
			assert.Equal(t, "a: srcversion NEWA0000000000000000000, version 2.0.0\nb: srcversion NEWB0000000000000000000, version 2.0.0\n",
				s.read("state/versions"))
		},
	}, tc{
		name: "version: the same version already loaded is kept",
		env:  verifyEnv,
		setup: func(s *sandbox) {
			image(s)
			inKernel(s, "a", "NEWA0000000000000000000", "2.0.0")
			inKernel(s, "b", "NEWB0000000000000000000", "2.0.0")
		},
		wantCalls: func(*sandbox) [][]string {
			return slices.Concat(fields("a"), fields("b"), loadCalls, fields("a"), fields("b"))
		},
		notOut: []string{"unloading"},
		check:  loaded,
	}, tc{
		name: "version: an old version loaded and free is unloaded, then the new one loaded",
		env:  verifyEnv,
		setup: func(s *sandbox) {
			image(s)
			inKernel(s, "a", "OLDA0000000000000000000", "1.0.0")
			inKernel(s, "b", "OLDB0000000000000000000", "1.0.0")
		},
		wantCalls: func(*sandbox) [][]string {
			return slices.Concat(fields("a"), fields("b"),
				[][]string{call("modprobe", "-r", "-v", "-d", "/opt", "a", "b")},
				loadCalls, fields("a"), fields("b"))
		},
		wantOut: []string{
			"kmm: a is loaded at srcversion OLDA0000000000000000000, version 1.0.0; this image has srcversion NEWA0000000000000000000, version 2.0.0",
			"kmm: unloading the loaded version first",
			"kmm: verified a: srcversion NEWA0000000000000000000, version 2.0.0",
		},
		check: func(t *testing.T, s *sandbox) {
			loaded(t, s)
			assert.Equal(t, "NEWA0000000000000000000\n", s.read("sys/module/a/srcversion"))
			assert.Equal(t, "NEWB0000000000000000000\n", s.read("sys/module/b/srcversion"))
		},
	}, tc{
		name: "version: an old version held by a consumer fails naming both versions and the holders",
		env:  withEnv(verifyEnv, "FAKE_MODPROBE_FAIL", "a"),
		setup: func(s *sandbox) {
			image(s)
			inKernel(s, "a", "OLDA0000000000000000000", "1.0.0")
			inKernel(s, "b", "NEWB0000000000000000000", "2.0.0")
			s.write("sys/module/a/refcnt", "2\n")
			s.mkdir("sys/module/a/holders/gpu_consumer")
		},
		wantCode: 1,
		wantCalls: func(*sandbox) [][]string {
			return slices.Concat(fields("a"), fields("b"),
				[][]string{call("modprobe", "-r", "-v", "-d", "/opt", "a", "b")}, fields("a"))
		},
		wantOut: []string{
			"kmm: a is loaded at srcversion OLDA0000000000000000000, version 1.0.0 but this loader's image has " +
				"srcversion NEWA0000000000000000000, version 2.0.0, and it cannot be unloaded: held by modules [gpu_consumer], refcnt 2",
		},
		notOut: []string{"kmm: loaded a", "b is loaded at"},
		check: func(t *testing.T, s *sandbox) {
			notLoaded(t, s)
			assert.Equal(t, "OLDA0000000000000000000\n", s.read("sys/module/a/srcversion"), "the old a stays")
		},
	}, tc{
		name: "version: only the version field to compare",
		env:  withEnv(verifyEnv, "KMM_LOADING_ORDER", ""),
		setup: func(s *sandbox) {
			s.write("image/a.version", "2.0.0\n")
			s.env["FAKE_MODINFO_DIR"] = s.path("image")
			s.write("sys/module/a/version", "1.0.0\n")
			s.env["FAKE_MODPROBE_FAIL"] = "a"
		},
		wantCode: 1,
		wantOut: []string{"kmm: a is loaded at srcversion (none), version 1.0.0 but this loader's image has srcversion (none), version 2.0.0, " +
			"and it cannot be unloaded: held by modules [], refcnt unknown"},
		check: notLoaded,
	}, tc{
		name: "version: an image without versions loads with a warning",
		env:  verifyEnv,
		wantCalls: func(*sandbox) [][]string {
			return slices.Concat(loadCalls, fields("a"), fields("b"))
		},
		wantOut: []string{"kmm: warning: the image's a has neither srcversion nor version: the loaded a cannot be checked"},
		check:   loaded,
	}, tc{
		name:    "version: rawArgs are not checked",
		env:     map[string]string{"KMM_RAW": "true", "KMM_RAW_LOAD": lines("foo"), "KMM_ONESHOT": "true", "KMM_VERIFY_VERSION": "true"},
		wantOut: []string{"kmm: rawArgs: the loaded version is not checked"},
		wantCalls: func(*sandbox) [][]string {
			return [][]string{call("modprobe", "foo")}
		},
		check: loaded,
	})

	forShells(t, func(t *testing.T, sh shell) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t, sh)
				if c.setup != nil {
					c.setup(s)
				}
				code, out := s.run("load.sh", c.env)
				assert.Equal(t, c.wantCode, code, "exit code; output:\n%s", out)
				if c.wantCalls != nil {
					assert.Equal(t, c.wantCalls(s), s.calls("modprobe", "modinfo"), "output:\n%s", out)
				}
				for _, w := range c.wantOut {
					assert.Contains(t, out, w)
				}
				for _, w := range c.notOut {
					assert.NotContains(t, out, w)
				}
				if c.check != nil {
					c.check(t, s)
				}
			})
		}
	})
}

func TestUnload(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		env        map[string]string
		wantCode   int
		wantCalls  [][]string
		wantOut    string
		wantLoaded bool
	}{{
		name: "module and its loading order",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_LOADING_ORDER": lines("a", "b", "", "c"),
			"KMM_UNLOAD_ARGS": lines("--syslog", "--quiet"), "KMM_PARAMETERS": lines("p=1"),
		},
		wantCalls: [][]string{call("modprobe", "-r", "-v", "-d", "/opt", "--syslog", "--quiet", "a", "b", "c")},
		wantOut:   "kmm: unloaded a b c",
	}, {
		name:      "module only, root and dirName",
		env:       map[string]string{"KMM_MODULE": "a", "KMM_ROOT": "/kmm/build/rootfs", "KMM_DIR_NAME": "/d"},
		wantCalls: [][]string{call("modprobe", "-r", "-v", "-d", "/kmm/build/rootfs/d", "a")},
		wantOut:   "kmm: unloaded a",
	}, {
		name: "raw args replace the command",
		env: map[string]string{
			"KMM_RAW": "true", "KMM_RAW_UNLOAD": lines("-r", "foo", "bar baz"), "KMM_MODULE": "",
		},
		wantCalls: [][]string{call("modprobe", "-r", "foo", "bar baz")},
		wantOut:   "kmm: unloaded rawArgs.unload",
	}, {
		name:       "module in use",
		env:        map[string]string{"KMM_MODULE": "a", "FAKE_MODPROBE_FAIL": "a"},
		wantCode:   1,
		wantCalls:  [][]string{call("modprobe", "-r", "-v", "-d", "/opt", "a")},
		wantOut:    "kmm: could not unload a (in use?)",
		wantLoaded: true,
	}}
	forShells(t, func(t *testing.T, sh shell) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t, sh)
				s.write("state/loaded", "")
				code, out := s.run("unload.sh", c.env)
				assert.Equal(t, c.wantCode, code, "exit code; output:\n%s", out)
				assert.Equal(t, c.wantCalls, s.calls("modprobe"))
				assert.Contains(t, out, c.wantOut)
				assert.Equal(t, c.wantLoaded, s.exists("state/loaded"))
			})
		}
	})
}

// TestLoadStop starts load.sh as a long-running loader, waits until the module
// is loaded (the state file exists), then sends SIGTERM.
func TestLoadStop(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		env        map[string]string
		wantUnload bool
		wantOut    string
	}{{
		name:       "unloads on SIGTERM",
		env:        map[string]string{},
		wantUnload: true,
		wantOut:    "kmm: unloaded a b",
	}, {
		name:    "keeps the module when unloadOnStop is false",
		env:     map[string]string{"KMM_UNLOAD_ON_STOP": "false"},
		wantOut: "stays loaded",
	}, {
		name:       "a failed unload is logged, the loader still stops",
		env:        map[string]string{"FAKE_MODPROBE_FAIL": "b"},
		wantUnload: true,
		wantOut:    "kmm: could not unload a (in use?)",
	}}
	forShells(t, func(t *testing.T, sh shell) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t, sh)
				env := map[string]string{"KMM_MODULE": "a", "KMM_LOADING_ORDER": lines("a", "b")}
				for k, v := range c.env {
					env[k] = v
				}
				// The loading of b must succeed even when its unload fails.
				failUnload := env["FAKE_MODPROBE_FAIL"]
				delete(env, "FAKE_MODPROBE_FAIL")
				p := s.start("load.sh", env)
				eventually(t, "the state file", func() bool { return s.exists("state/loaded") })
				if failUnload != "" {
					// The loader's environment is fixed once it runs: the fake
					// modprobe also reads the module to fail from this file.
					s.write("calls.log.modprobe-fail", failUnload)
				}
				require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
				code, out := p.wait()
				assert.Equal(t, 0, code, "exit code; output:\n%s", out)
				assert.Contains(t, out, c.wantOut)
				want := [][]string{
					call("modprobe", "-v", "-d", "/opt", "b"),
					call("modprobe", "-v", "-d", "/opt", "a"),
				}
				if c.wantUnload {
					want = append(want, call("modprobe", "-r", "-v", "-d", "/opt", "a", "b"))
				}
				assert.Equal(t, want, s.calls("modprobe"))
				assert.Equal(t, !c.wantUnload || failUnload != "", s.exists("state/loaded"))
			})
		}
	})
}

// withEnv returns a copy of env with name set to value.
func withEnv(env map[string]string, name, value string) map[string]string {
	out := maps.Clone(env)
	out[name] = value
	return out
}
