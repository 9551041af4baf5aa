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
		// termination is the exact termination message of a failing case (KMM_TERMINATION_LOG);
		// a case that succeeds must leave no termination message.
		termination func(s *sandbox) string
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
		wantOut:     []string{"kmm: could not unload in-tree module bnx-x (in use?)"},
		check:       notLoaded,
		termination: says("could not unload in-tree module bnx-x (in use?): stop what uses it or remove it from inTreeModulesToRemove"),
	}, {
		// A restarted loader container finds the emptyDir state of the one before (an emptyDir
		// outlives container restarts; found while adding test/node's restart check on a real
		// kubelet): the stale "loaded" must not make the readiness probe pass while this run
		// has not loaded anything, or fails.
		name: "a restart clears the state of the previous run",
		env:  map[string]string{"KMM_MODULE": "a", "KMM_KERNEL": "5.14.0-1", "KMM_ONESHOT": "true"},
		setup: func(s *sandbox) {
			s.write("state/loaded", "")
			s.write("state/versions", "a: 1.0\n")
		},
		wantCode:  1,
		wantCalls: func(*sandbox) [][]string { return nil },
		check: func(t *testing.T, s *sandbox) {
			notLoaded(t, s)
			assert.False(t, s.exists("state/versions"), "state/versions of the previous run was kept")
		},
		termination: says("this loader is for kernel 5.14.0-1 but the node runs 6.1.0-test: " +
			"the pod was scheduled on the wrong node; check its nodeSelector"),
	}, {
		name:      "kernel mismatch",
		env:       map[string]string{"KMM_MODULE": "a", "KMM_KERNEL": "5.14.0-1", "KMM_ONESHOT": "true"},
		wantCode:  1,
		wantCalls: func(*sandbox) [][]string { return nil },
		wantOut:   []string{"kmm: this loader is for kernel 5.14.0-1 but the node runs " + kernel},
		check:     notLoaded,
		termination: says("this loader is for kernel 5.14.0-1 but the node runs 6.1.0-test: " +
			"the pod was scheduled on the wrong node; check its nodeSelector"),
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
		wantOut:     []string{"kmm: a was built for kernel 5.14.0-1, this node runs " + kernel + ": rebuild it for " + kernel},
		check:       notLoaded,
		termination: says("a was built for kernel 5.14.0-1, this node runs 6.1.0-test: rebuild it for 6.1.0-test"),
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
		wantOut:     []string{"kmm: no module a in /r/opt/lib/modules/" + kernel + " (check dirName and the image)"},
		check:       notLoaded,
		termination: says("no module a in /r/opt/lib/modules/6.1.0-test (check dirName and the image)"),
	}, {
		name: "module for this kernel fails",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_ONESHOT": "true", "FAKE_MODPROBE_FAIL": "a",
			"FAKE_MODINFO_VERMAGIC": kernel + " SMP mod_unload",
		},
		wantCode:    1,
		wantOut:     []string{"kmm: modprobe a failed (see the messages above and the node's dmesg)"},
		notOut:      []string{"rebuild", "no module"},
		check:       notLoaded,
		termination: says("modprobe a failed (see the messages above and the node's dmesg)"),
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
		wantOut:     []string{"kmm: b was built for kernel 5.0.0, this node runs " + kernel},
		check:       notLoaded,
		termination: says("b was built for kernel 5.0.0, this node runs 6.1.0-test: rebuild it for 6.1.0-test"),
	}, {
		name: "raw load fails",
		env: map[string]string{
			"KMM_RAW": "true", "KMM_RAW_LOAD": lines("foo"), "KMM_ONESHOT": "true", "FAKE_MODPROBE_FAIL": "foo",
		},
		wantCode:    1,
		wantOut:     []string{"kmm: modprobe foo failed (see the messages above and the node's dmesg)"},
		check:       notLoaded,
		termination: says("modprobe foo failed (see the messages above and the node's dmesg)"),
	}, {
		name:        "no module name",
		env:         map[string]string{"KMM_ONESHOT": "true"},
		wantCode:    1,
		wantOut:     []string{"kmm: KMM_MODULE is empty"},
		termination: says("KMM_MODULE is empty: set modprobe.moduleName (or rawArgs)"),
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
		termination: func(s *sandbox) string {
			return "firmware folder " + s.path("root") + "/nope does not exist: fix modprobe.firmwarePath or add the firmware to the image"
		},
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
		name: "version: an old version held by a consumer fails naming both versions and the holders, without waiting",
		// KMM_UNLOAD_WAIT is for this pod's stop: the pod restarts until the users are gone.
		env: withEnv(verifyEnv, "FAKE_MODPROBE_FAIL", "a", "KMM_UNLOAD_WAIT", "30", "FAKE_SLEEP_MODULE", "a"),
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
		notOut: []string{"kmm: loaded a", "b is loaded at", "waiting up to"},
		check: func(t *testing.T, s *sandbox) {
			notLoaded(t, s)
			assert.Equal(t, "OLDA0000000000000000000\n", s.read("sys/module/a/srcversion"), "the old a stays")
		},
		termination: says("a is loaded at srcversion OLDA0000000000000000000, version 1.0.0 but this loader's image has " +
			"srcversion NEWA0000000000000000000, version 2.0.0, and it cannot be unloaded: held by modules [gpu_consumer], refcnt 2. " +
			"Stop what uses it (its device plugin, workloads holding the device), then delete this pod to retry"),
	}, tc{
		name: "version: two old versions in use fail on one termination line naming both",
		env:  verifyEnv,
		setup: func(s *sandbox) {
			image(s)
			inKernel(s, "a", "OLDA0000000000000000000", "1.0.0")
			inKernel(s, "b", "OLDB0000000000000000000", "1.0.0")
			s.write("sys/module/a/refcnt", "1\n")
			s.write("sys/module/b/refcnt", "1\n")
			s.mkdir("sys/module/b/holders/a")
		},
		wantCode: 1,
		wantCalls: func(*sandbox) [][]string {
			return slices.Concat(fields("a"), fields("b"),
				[][]string{call("modprobe", "-r", "-v", "-d", "/opt", "a", "b")}, fields("a"), fields("b"))
		},
		wantOut: []string{
			"fake-modprobe: FATAL: Module a is in use.\n",
			"kmm: could not unload a (in use?): stop what uses it and try again\n",
			"kmm: a is loaded at srcversion OLDA0000000000000000000, version 1.0.0 but this loader's image has " +
				"srcversion NEWA0000000000000000000, version 2.0.0, and it cannot be unloaded: held by modules [], refcnt 1. " +
				"Stop what uses it (its device plugin, workloads holding the device), then delete this pod to retry\n",
			"kmm: b is loaded at srcversion OLDB0000000000000000000, version 1.0.0 but this loader's image has " +
				"srcversion NEWB0000000000000000000, version 2.0.0, and it cannot be unloaded: held by modules [a], refcnt 1. " +
				"Stop what uses it (its device plugin, workloads holding the device), then delete this pod to retry\n",
		},
		check: notLoaded,
		// load.sh's message replaces the one unload.sh wrote.
		termination: says("a is loaded at srcversion OLDA0000000000000000000, version 1.0.0 but this loader's image has " +
			"srcversion NEWA0000000000000000000, version 2.0.0, and it cannot be unloaded: held by modules [], refcnt 1. " +
			"Stop what uses it (its device plugin, workloads holding the device), then delete this pod to retry " +
			"b is loaded at srcversion OLDB0000000000000000000, version 1.0.0 but this loader's image has " +
			"srcversion NEWB0000000000000000000, version 2.0.0, and it cannot be unloaded: held by modules [a], refcnt 1. " +
			"Stop what uses it (its device plugin, workloads holding the device), then delete this pod to retry"),
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
		termination: says("a is loaded at srcversion (none), version 1.0.0 but this loader's image has srcversion (none), version 2.0.0, " +
			"and it cannot be unloaded: held by modules [], refcnt unknown. " +
			"Stop what uses it (its device plugin, workloads holding the device), then delete this pod to retry"),
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
				if c.wantCode == 0 {
					assert.False(t, s.exists("termination-log"), "a termination message on success")
				} else if assert.NotNil(t, c.termination, "a failing case states its termination message") {
					assert.Equal(t, c.termination(s), s.read("termination-log"))
				}
			})
		}
	})
}

// says is a termination message that does not depend on the sandbox.
func says(msg string) func(*sandbox) string { return func(*sandbox) string { return msg } }

func TestUnload(t *testing.T) {
	t.Parallel()
	// inUse makes the loaded module (its sysfs folder) held refcnt times and by the holders.
	inUse := func(sysfs, refcnt string, holders ...string) func(s *sandbox) {
		return func(s *sandbox) {
			s.write("sys/module/"+sysfs+"/refcnt", refcnt+"\n")
			s.mkdir("sys/module/" + sysfs + "/holders")
			for _, h := range holders {
				s.mkdir("sys/module/" + sysfs + "/holders/" + h)
			}
		}
	}
	// waitEnv is the environment of a module a (then b) unloaded with KMM_UNLOAD_WAIT=wait,
	// whose users stop one per fake `sleep 1` (see testdata/bin/sleep).
	waitEnv := func(wait string) map[string]string {
		return map[string]string{
			"KMM_MODULE": "a", "KMM_LOADING_ORDER": lines("a", "b"), "KMM_UNLOAD_WAIT": wait, "FAKE_SLEEP_MODULE": "a",
		}
	}
	sleep1 := call("sleep", "1")
	unloadAB := call("modprobe", "-r", "-v", "-d", "/opt", "a", "b")
	cases := []struct {
		name        string
		env         map[string]string
		setup       func(s *sandbox)
		wantCode    int
		wantCalls   [][]string // sleep and modprobe
		wantOut     string     // the whole output
		wantLoaded  bool
		termination string // "": none
	}{{
		name: "module and its loading order",
		env: map[string]string{
			"KMM_MODULE": "a", "KMM_LOADING_ORDER": lines("a", "b", "", "c"),
			"KMM_UNLOAD_ARGS": lines("--syslog", "--quiet"), "KMM_PARAMETERS": lines("p=1"),
		},
		wantCalls: [][]string{call("modprobe", "-r", "-v", "-d", "/opt", "--syslog", "--quiet", "a", "b", "c")},
		wantOut:   "kmm: modprobe -r -v -d /opt --syslog --quiet a b c\nkmm: unloaded a b c\n",
	}, {
		name:      "module only, root and dirName",
		env:       map[string]string{"KMM_MODULE": "a", "KMM_ROOT": "/kmm/build/rootfs", "KMM_DIR_NAME": "/d"},
		wantCalls: [][]string{call("modprobe", "-r", "-v", "-d", "/kmm/build/rootfs/d", "a")},
		wantOut:   "kmm: modprobe -r -v -d /kmm/build/rootfs/d a\nkmm: unloaded a\n",
	}, {
		name: "raw args replace the command",
		env: map[string]string{
			"KMM_RAW": "true", "KMM_RAW_UNLOAD": lines("-r", "foo", "bar baz"), "KMM_MODULE": "",
		},
		wantCalls: [][]string{call("modprobe", "-r", "foo", "bar baz")},
		wantOut:   "kmm: modprobe -r foo bar baz\nkmm: unloaded rawArgs.unload (-r foo bar baz)\n",
	}, {
		name:      "module in use",
		env:       map[string]string{"KMM_MODULE": "a", "FAKE_MODPROBE_FAIL": "a"},
		wantCode:  1,
		wantCalls: [][]string{call("modprobe", "-r", "-v", "-d", "/opt", "a")},
		wantOut: "kmm: modprobe -r -v -d /opt a\n" +
			"fake-modprobe: ERROR: could not handle 'a': Operation not permitted\n" +
			"kmm: could not unload a (in use?): stop what uses it and try again\n",
		wantLoaded:  true,
		termination: "could not unload a (in use?): stop what uses it and try again",
	}, {
		name:        "no module name",
		env:         map[string]string{},
		wantCode:    1,
		wantOut:     "kmm: KMM_MODULE is empty: set modprobe.moduleName (or rawArgs)\n",
		wantLoaded:  true,
		termination: "KMM_MODULE is empty: set modprobe.moduleName (or rawArgs)",
	}, {
		name:      "wait: the users release the module, then it is unloaded",
		env:       waitEnv("10"),
		setup:     inUse("a", "2", "kmm_consumer"),
		wantCalls: [][]string{sleep1, sleep1, unloadAB},
		wantOut: "kmm: a is in use (refcnt 2, held by [kmm_consumer]): waiting up to 10 s for its users (the device plugin, workloads) to stop\n" +
			"kmm: a is no longer in use after 2 s\n" +
			"kmm: modprobe -r -v -d /opt a b\n" +
			"kmm: unloaded a b\n",
	}, {
		name:      "wait: holders without a refcnt",
		env:       waitEnv("10"),
		setup:     inUse("a", "0", "kmm_consumer", "kmm_other"),
		wantCalls: [][]string{sleep1, unloadAB},
		wantOut: "kmm: a is in use (refcnt 0, held by [kmm_consumer kmm_other]): waiting up to 10 s for its users (the device plugin, workloads) to stop\n" +
			"kmm: a is no longer in use after 1 s\n" +
			"kmm: modprobe -r -v -d /opt a b\n" +
			"kmm: unloaded a b\n",
	}, {
		name: "wait: a refcnt without holders, the sysfs name of a name with dashes",
		env: map[string]string{
			"KMM_MODULE": "kmm-ci-a", "KMM_UNLOAD_WAIT": "5", "FAKE_SLEEP_MODULE": "kmm_ci_a",
		},
		setup:     func(s *sandbox) { s.write("sys/module/kmm_ci_a/refcnt", "3\n") },
		wantCalls: [][]string{sleep1, sleep1, sleep1, call("modprobe", "-r", "-v", "-d", "/opt", "kmm-ci-a")},
		wantOut: "kmm: kmm-ci-a is in use (refcnt 3, held by []): waiting up to 5 s for its users (the device plugin, workloads) to stop\n" +
			"kmm: kmm-ci-a is no longer in use after 3 s\n" +
			"kmm: modprobe -r -v -d /opt kmm-ci-a\n" +
			"kmm: unloaded kmm-ci-a\n",
	}, {
		name:      "wait expires: the unload fails naming the refcnt and the holders",
		env:       waitEnv("2"),
		setup:     inUse("a", "5", "kmm_consumer"),
		wantCode:  1,
		wantCalls: [][]string{sleep1, sleep1, unloadAB},
		wantOut: "kmm: a is in use (refcnt 5, held by [kmm_consumer]): waiting up to 2 s for its users (the device plugin, workloads) to stop\n" +
			"kmm: modprobe -r -v -d /opt a b\n" +
			"fake-modprobe: FATAL: Module a is in use.\n" +
			"kmm: could not unload a: still in use after waiting 2 s (refcnt 3, held by [kmm_consumer]): " +
			"stop what uses it (the device plugin, workloads) and try again\n",
		wantLoaded: true,
		termination: "could not unload a: still in use after waiting 2 s (refcnt 3, held by [kmm_consumer]): " +
			"stop what uses it (the device plugin, workloads) and try again",
	}, {
		name:      "wait: a module not in use is unloaded at once",
		env:       waitEnv("10"),
		setup:     inUse("a", "0"),
		wantCalls: [][]string{unloadAB},
		wantOut:   "kmm: modprobe -r -v -d /opt a b\nkmm: unloaded a b\n",
	}, {
		name:      "wait: a module not loaded is unloaded at once",
		env:       waitEnv("10"),
		wantCalls: [][]string{unloadAB},
		wantOut:   "kmm: modprobe -r -v -d /opt a b\nkmm: unloaded a b\n",
	}, {
		name:      "KMM_UNLOAD_WAIT=0: a module in use fails at once, as without it",
		env:       waitEnv("0"),
		setup:     inUse("a", "2", "kmm_consumer"),
		wantCode:  1,
		wantCalls: [][]string{unloadAB},
		wantOut: "kmm: modprobe -r -v -d /opt a b\n" +
			"fake-modprobe: FATAL: Module a is in use.\n" +
			"kmm: could not unload a (in use?): stop what uses it and try again\n",
		wantLoaded:  true,
		termination: "could not unload a (in use?): stop what uses it and try again",
	}, {
		name:      "KMM_UNLOAD_WAIT unset: a module in use fails at once",
		env:       map[string]string{"KMM_MODULE": "a", "KMM_LOADING_ORDER": lines("a", "b"), "FAKE_SLEEP_MODULE": "a"},
		setup:     inUse("a", "2", "kmm_consumer"),
		wantCode:  1,
		wantCalls: [][]string{unloadAB},
		wantOut: "kmm: modprobe -r -v -d /opt a b\n" +
			"fake-modprobe: FATAL: Module a is in use.\n" +
			"kmm: could not unload a (in use?): stop what uses it and try again\n",
		wantLoaded:  true,
		termination: "could not unload a (in use?): stop what uses it and try again",
	}, {
		name:      "KMM_UNLOAD_WAIT not a whole number: a warning, no wait",
		env:       waitEnv("2.5"),
		setup:     inUse("a", "2", "kmm_consumer"),
		wantCode:  1,
		wantCalls: [][]string{unloadAB},
		wantOut: "kmm: warning: KMM_UNLOAD_WAIT is '2.5', not a whole number of seconds: not waiting for the module's users\n" +
			"kmm: modprobe -r -v -d /opt a b\n" +
			"fake-modprobe: FATAL: Module a is in use.\n" +
			"kmm: could not unload a (in use?): stop what uses it and try again\n",
		wantLoaded:  true,
		termination: "could not unload a (in use?): stop what uses it and try again",
	}, {
		name: "rawArgs: no wait, said so",
		env: map[string]string{
			"KMM_RAW": "true", "KMM_RAW_UNLOAD": lines("-r", "a"), "KMM_UNLOAD_WAIT": "10", "FAKE_SLEEP_MODULE": "a",
		},
		setup:     inUse("a", "2", "kmm_consumer"),
		wantCode:  1,
		wantCalls: [][]string{call("modprobe", "-r", "a")},
		wantOut: "kmm: rawArgs: not waiting for the users of the modules to stop (KMM_UNLOAD_WAIT): rawArgs name no module to check\n" +
			"kmm: modprobe -r a\n" +
			"fake-modprobe: FATAL: Module a is in use.\n" +
			"kmm: could not unload rawArgs.unload (-r a) (in use?): stop what uses it and try again\n",
		wantLoaded:  true,
		termination: "could not unload rawArgs.unload (-r a) (in use?): stop what uses it and try again",
	}, {
		name: "rawArgs with KMM_UNLOAD_WAIT: a free module is unloaded",
		env: map[string]string{
			"KMM_RAW": "true", "KMM_RAW_UNLOAD": lines("-r", "a"), "KMM_UNLOAD_WAIT": "10", "FAKE_SLEEP_MODULE": "a",
		},
		setup:     inUse("a", "0"),
		wantCalls: [][]string{call("modprobe", "-r", "a")},
		wantOut: "kmm: rawArgs: not waiting for the users of the modules to stop (KMM_UNLOAD_WAIT): rawArgs name no module to check\n" +
			"kmm: modprobe -r a\n" +
			"kmm: unloaded rawArgs.unload (-r a)\n",
	}}
	forShells(t, func(t *testing.T, sh shell) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t, sh)
				s.write("state/loaded", "")
				if c.setup != nil {
					c.setup(s)
				}
				code, out := s.run("unload.sh", c.env)
				assert.Equal(t, c.wantCode, code, "exit code; output:\n%s", out)
				assert.Equal(t, c.wantCalls, s.calls("sleep", "modprobe"))
				assert.Equal(t, c.wantOut, out)
				assert.Equal(t, c.wantLoaded, s.exists("state/loaded"))
				if c.termination == "" {
					assert.False(t, s.exists("termination-log"), "a termination message on success")
				} else {
					assert.Equal(t, c.termination, s.read("termination-log"))
				}
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
		inUse      string // refcnt of a once it is loaded, as its device plugin holds it; "": none
		wantUnload bool
		wantSleeps int      // fake `sleep 1` calls of unload.sh's wait
		wantOut    []string // lines of the output
		// termination is the exact termination message; "": none.
		termination string
	}{{
		name:       "unloads on SIGTERM",
		env:        map[string]string{},
		wantUnload: true,
		wantOut:    []string{"kmm: unloaded a b\n"},
	}, {
		name:    "keeps the module when unloadOnStop is false",
		env:     map[string]string{"KMM_UNLOAD_ON_STOP": "false"},
		wantOut: []string{"kmm: stopping: a stays loaded (unloadOnStop is false)\n"},
	}, {
		name:        "a failed unload is logged, the loader still stops",
		env:         map[string]string{"FAKE_MODPROBE_FAIL": "b"},
		wantUnload:  true,
		wantOut:     []string{"kmm: could not unload a (in use?): stop what uses it and try again\n"},
		termination: "could not unload a (in use?): stop what uses it and try again",
	}, {
		name:       "waits for the device plugin to release the module, then unloads",
		env:        map[string]string{"KMM_UNLOAD_WAIT": "25", "FAKE_SLEEP_MODULE": "a"},
		inUse:      "2",
		wantUnload: true,
		wantSleeps: 2,
		wantOut: []string{
			"kmm: stopping: unloading a\n",
			"kmm: a is in use (refcnt 2, held by []): waiting up to 25 s for its users (the device plugin, workloads) to stop\n",
			"kmm: a is no longer in use after 2 s\n",
			"kmm: unloaded a b\n",
		},
	}, {
		name:       "the wait expires: the failure is logged and is the termination message, the loader still stops",
		env:        map[string]string{"KMM_UNLOAD_WAIT": "1", "FAKE_SLEEP_MODULE": "a"},
		inUse:      "3",
		wantUnload: true,
		wantSleeps: 1,
		wantOut: []string{
			"kmm: a is in use (refcnt 3, held by []): waiting up to 1 s for its users (the device plugin, workloads) to stop\n",
			"fake-modprobe: FATAL: Module a is in use.\n",
			"kmm: could not unload a: still in use after waiting 1 s (refcnt 2, held by []): stop what uses it (the device plugin, workloads) and try again\n",
			"kmm: unloading a failed: it stays loaded on this node\n",
		},
		termination: "could not unload a: still in use after waiting 1 s (refcnt 2, held by []): stop what uses it (the device plugin, workloads) and try again",
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
				if c.inUse != "" {
					s.write("sys/module/a/refcnt", c.inUse+"\n")
				}
				require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
				code, out := p.wait()
				assert.Equal(t, 0, code, "exit code; output:\n%s", out)
				for _, w := range c.wantOut {
					assert.Contains(t, out, w)
				}
				want := [][]string{
					call("modprobe", "-v", "-d", "/opt", "b"),
					call("modprobe", "-v", "-d", "/opt", "a"),
				}
				for range c.wantSleeps {
					want = append(want, call("sleep", "1"))
				}
				if c.wantUnload {
					want = append(want, call("modprobe", "-r", "-v", "-d", "/opt", "a", "b"))
				}
				assert.Equal(t, want, s.calls("modprobe", "sleep"))
				assert.Equal(t, !c.wantUnload || c.termination != "", s.exists("state/loaded"))
				if c.termination == "" {
					assert.False(t, s.exists("termination-log"), "a termination message after a clean stop")
				} else {
					assert.Equal(t, c.termination, s.read("termination-log"))
				}
			})
		}
	})
}

// withEnv returns a copy of env with name set to value.
// withEnv is env with more name, value pairs.
func withEnv(env map[string]string, kv ...string) map[string]string {
	out := maps.Clone(env)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
