// Package kernel proves on a real Linux kernel what the chart renders for a module: the chart's
// own scripts and environment, taken from charts/kmm rendered through kmm-render for
// testdata/values.yaml, build examples/kmod against Debian's kernel headers (build.sh with the
// build Job's KMM_BUILD_ARGS, as examples/kmod/Dockerfile runs it with the debian recipe of the
// chart's build.osDefaults), sign it (sign.sh with the kernel's sign-file; each signature is
// then verified against the certificate with openssl), and load and unload it in a qemu VM that
// boots Debian's kernel (load.sh and unload.sh with the loader DaemonSet's environment):
// loading order, parameters, firmware, the removal of an in-tree module, the refusal of a
// module built for another kernel and of a missing module, and the upgrade of a module another
// module holds (upgrade_test.go: the loader of the new version refuses while the old one is held,
// and replaces it once released).
//
//	make kernel-test    # installs qemu, the kernel and its headers when missing, then runs this
//
// It needs qemu, Debian's cloud kernel and headers, busybox, kmod and openssl (`make
// kernel-deps`), and root (Debian's /boot/vmlinuz-* are root-only). Without them it fails.
package kernel

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	repoRoot   = "../.."
	valuesFile = "testdata/values.yaml"
	// The module testdata/values.yaml declares.
	moduleName      = "kmm-kmod"
	moduleNamespace = "kmm-demo"
	// vmTimeout bounds one boot of the VM, every scenario included; qemu is killed after it.
	vmTimeout = 150 * time.Second
	// scriptTimeout bounds each run of load.sh or unload.sh in the VM (busybox timeout).
	scriptTimeout = 40
	// stepTimeout bounds every command run on this machine (a module build takes seconds).
	stepTimeout = 5 * time.Minute
	// certCN is the test certificate's subject.
	certCN = "kmm-test"
	// firmwareHostPath is where the VM's loader copies the firmware and points the kernel to,
	// as the loader pod does with its hostPath mount.
	firmwareHostPath = "/var/lib/firmware"
)

// Programs busybox provides in the VM (the scripts need sh, cat, cp, mkdir, printf, rm, uname;
// /init the others).
var applets = []string{"sh", "mount", "cat", "grep", "sleep", "uname", "dmesg", "poweroff", "reboot",
	"mkdir", "cp", "ls", "test", "[", "printf", "rm", "tr", "echo", "timeout", "sync", "env", "true", "false"}

// kmodTools are the links to kmod in the VM (busybox's own module tools are left out).
var kmodTools = []string{"modprobe", "modinfo", "depmod", "insmod", "rmmod", "lsmod"}

func TestKernel(t *testing.T) {
	h := requireHost(t)
	t.Logf("kernel %s (%s); headers %s; sign-file %s; busybox %s", h.version, h.why, h.headers, h.signFile, h.busyboxVersion)
	work := t.TempDir()
	started := time.Now()
	lap := func(what string) { t.Logf("%s done after %s", what, time.Since(started).Round(100*time.Millisecond)) }

	// 1. What the chart renders.
	var r *rendered
	step(t, "render", func(t *testing.T) {
		r = renderFor(t, h.version)
		assert.Equal(t, h.version, r.loaderValue("KMM_KERNEL"), "the loader is for the VM's kernel")
		assert.Equal(t, "kmm_a", r.loaderValue("KMM_MODULE"))
		assert.Equal(t, []string{"kmm_a", "kmm_b"}, list(r.loaderValue("KMM_LOADING_ORDER")))
		assert.NotEmpty(t, list(r.loaderValue("KMM_IN_TREE_REMOVE")))
		assert.NotEmpty(t, r.loaderValue("KMM_FIRMWARE_PATH"))
		assert.Contains(t, list(r.buildEnv["KMM_BUILD_ARGS"]), "KERNEL_VERSION="+h.version)
	})
	module := r.loaderValue("KMM_MODULE")
	order := list(r.loaderValue("KMM_LOADING_ORDER"))
	first := order[len(order)-1] // load.sh loads the last dependency first
	params := list(r.loaderValue("KMM_PARAMETERS"))
	inTree := list(r.loaderValue("KMM_IN_TREE_REMOVE"))
	loaderDir := r.loaderValue("KMM_DIR_NAME")
	firmwarePath := r.loaderValue("KMM_FIRMWARE_PATH")
	buildDir := r.buildEnv["KMM_DIR_NAME"]
	require.Equal(t, loaderDir, buildDir, "the build and the loader agree on dirName")
	firmware, err := os.ReadFile(filepath.Join(repoRoot, "examples", "kmod", "kmm_b.fw"))
	require.NoError(t, err)
	// ko is where a module of the image tree root is, as modprobe -d looks for it on the VM.
	ko := func(root, m string) string {
		return filepath.Join(root, loaderDir, "lib", "modules", h.version, "extra", m+".ko")
	}
	lap("render")

	// 2. Build: examples/kmod/build.sh with the build Job's build args, as examples/kmod/Dockerfile
	// runs it for Debian nodes (build.osDefaults.debian), into the image tree.
	image := filepath.Join(work, "image")
	unsigned := filepath.Join(work, "unsigned")
	step(t, "build", func(t *testing.T) {
		buildKmod(t, h.headers, list(r.buildEnv["KMM_BUILD_ARGS"]), buildDir, filepath.Join(work, "build"), image)
		for _, m := range order {
			require.FileExists(t, ko(image, m))
			vermagic := modinfo(t, h, ko(image, m), "vermagic")
			assert.True(t, strings.HasPrefix(vermagic, h.version+" "), "%s.ko's vermagic %q is for kernel %s", m, vermagic, h.version)
			require.NoError(t, copyFile(ko(image, m), filepath.Join(unsigned, m+".ko"), 0o644))
		}
		got, err := os.ReadFile(filepath.Join(image, firmwarePath, "kmm_b.fw"))
		require.NoError(t, err, "the image has the firmware in the loader's firmwarePath")
		assert.Equal(t, firmware, got)
	})
	lap("build")

	// 3. Sign: the chart's sign.sh with the build Job's files to sign, then every signature
	// checked against the certificate, independently of the kernel's tools.
	keys := filepath.Join(work, "keys")
	key, cert := genKey(t, h, keys, "test")
	otherKey, otherCert := genKey(t, h, keys, "other")
	step(t, "sign", func(t *testing.T) {
		script := filepath.Join(work, "sign.sh")
		require.NoError(t, os.WriteFile(script, []byte(r.signSh), 0o755))
		files := r.buildEnv["KMM_FILES_TO_SIGN"]
		out, err := runCmd(t, envWith(
			"KMM_ROOT="+image, "KMM_DIR_NAME="+buildDir, "KMM_FILES_TO_SIGN="+files,
			"KMM_SIGN_KEY="+key, "KMM_SIGN_CERT="+cert, "KMM_SIGN_FILE="+h.signFile,
		), h.busybox, "sh", script)
		require.NoError(t, err, "the rendered sign.sh (under busybox sh) failed:\n%s\nKMM_FILES_TO_SIGN:\n%s", out, files)
		signed := map[string]bool{}
		for _, f := range list(files) {
			assert.Contains(t, out, "kmm: signed "+f)
			p := filepath.Join(image, f)
			require.FileExists(t, p, "sign.filesToSign entry %s", f)
			assert.NoError(t, verifySignature(t, h, p, cert), "%s is signed by the test key", f)
			signed[filepath.Clean(p)] = true
		}
		for _, m := range order {
			p := ko(image, m)
			require.True(t, signed[filepath.Clean(p)], "%s is in KMM_FILES_TO_SIGN", p)
			// kmod reads the signature too: signer and hash.
			assert.Equal(t, certCN, modinfo(t, h, p, "signer"), "modinfo -F signer %s", p)
			assert.Equal(t, "sha256", modinfo(t, h, p, "sig_hashalgo"), "modinfo -F sig_hashalgo %s", p)
		}

		// An unsigned module is told apart.
		_, _, err = splitSignature(mustRead(t, filepath.Join(unsigned, module+".ko")))
		assert.ErrorIs(t, err, errUnsigned, "the unsigned build of %s", module)

		// A module signed with another key does not verify against the test certificate (both
		// certificates have the same issuer and serial, so this is the signature failing, not a
		// certificate lookup), but does against its own.
		other := filepath.Join(work, "other-key", module+".ko")
		require.NoError(t, copyFile(filepath.Join(unsigned, module+".ko"), other, 0o644))
		out, err = runCmd(t, nil, h.signFile, "sha256", otherKey, otherCert, other)
		require.NoError(t, err, out)
		assert.Error(t, verifySignature(t, h, other, cert), "a module signed with another key verifies against the test certificate")
		assert.NoError(t, verifySignature(t, h, other, otherCert))

		// A signed module changed afterwards does not verify.
		tampered := mustRead(t, ko(image, module))
		tampered[len(tampered)/3] ^= 0xff
		p := filepath.Join(work, "tampered", module+".ko")
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, tampered, 0o644))
		assert.Error(t, verifySignature(t, h, p, cert), "a changed module still verifies")
	})
	lap("sign")

	// 4. Images load.sh must refuse: each its own tree in the VM, with the firmware (the loader's
	// firmwarePath must exist) and the same loader environment.
	refusals := prepareRefusals(t, h, work, r, image, unsigned, ko, first, module)
	lap("trees to refuse")
	// The upgrade's two images of kmm_up and its holder.
	up := prepareUpgrade(t, h, work, r)
	lap("upgrade build")

	// 5. The VM: Debian's kernel, busybox, kmod, the image trees and the chart's scripts.
	initrd := filepath.Join(work, "initrd.gz")
	step(t, "initramfs", func(t *testing.T) {
		buildInitramfs(t, h, work, r, image, refusals, inTree, up, initrd)
	})
	lap("initramfs")
	var c *console
	step(t, "boot", func(t *testing.T) {
		c = boot(t, h.qemu, h.vmlinuz, initrd, vmTimeout)
	})
	lap("boot")
	get := func(t *testing.T, name string) report {
		t.Helper()
		rep, ok := c.reports[name]
		if !ok {
			t.Fatalf("the VM printed no report %q. Console:\n%s", name, tail(c.raw, 150))
		}
		return rep
	}
	loadedIn := func(procModules, m string) bool {
		for _, l := range strings.Split(procModules, "\n") {
			if strings.HasPrefix(l, m+" ") {
				return true
			}
		}
		return false
	}
	// before asserts that a comes before b in s.
	before := func(t *testing.T, s, a, b, what string) {
		t.Helper()
		i, j := strings.Index(s, a), strings.Index(s, b)
		require.GreaterOrEqual(t, i, 0, "%s: %q not found in:\n%s", what, a, s)
		require.GreaterOrEqual(t, j, 0, "%s: %q not found in:\n%s", what, b, s)
		assert.Less(t, i, j, "%s: %q comes before %q in:\n%s", what, a, b, s)
	}
	moddir := "/image" + loaderDir
	insmod := func(m string) string {
		return "insmod " + moddir + "/lib/modules/" + h.version + "/extra/" + m + ".ko"
	}

	t.Run("kernel", func(t *testing.T) {
		assert.Equal(t, h.version, strings.TrimSpace(get(t, "uname").out), "the VM runs the kernel the chart rendered for")
	})
	t.Run("load", func(t *testing.T) {
		load := get(t, "load")
		require.Equal(t, 0, load.rc, "load.sh exit code; its output:\n%s", load.out)
		assert.Contains(t, load.out, "kmm: loaded "+module+" (kernel "+h.version+")")
		// loader.verifyVersion: each module in the kernel is checked against the image's file.
		require.Equal(t, "true", r.loaderValue("KMM_VERIFY_VERSION"), "the chart's default verifies the loaded version")
		for _, m := range order {
			src := modinfo(t, h, ko(image, m), "srcversion")
			require.NotEmpty(t, src, "%s.ko has a srcversion (MODULE_VERSION)", m)
			assert.Contains(t, load.out, "kmm: verified "+m+": srcversion "+src+", version "+modinfo(t, h, ko(image, m), "version"))
		}
		for _, m := range order {
			assert.True(t, loadedIn(get(t, "modules-loaded").out, m), "%s in /proc/modules after load.sh:\n%s", m, get(t, "modules-loaded").out)
		}
		assert.Contains(t, get(t, "state-loaded").out, "loaded", "load.sh writes $KMM_STATE/loaded (the readiness probe's file)")
	})
	t.Run("loading order", func(t *testing.T) {
		load, dmesg := get(t, "load").out, get(t, "dmesg-loaded").out
		before(t, load, insmod("kmm_b"), insmod("kmm_a")+" "+strings.Join(params, " "), "modprobe -v in load.sh's output")
		before(t, dmesg, "kmm_b: loaded", "kmm_a: loaded answer=42", "dmesg after load.sh")
	})
	t.Run("parameters", func(t *testing.T) {
		require.Equal(t, []string{"answer=42", "greeting=hi"}, params)
		for _, p := range params {
			name, value, _ := strings.Cut(p, "=")
			rep := get(t, "param-"+name)
			assert.Equal(t, 0, rep.rc, rep.out)
			assert.Equal(t, value, strings.TrimSpace(rep.out), "/sys/module/%s/parameters/%s", module, name)
		}
	})
	t.Run("firmware", func(t *testing.T) {
		line := firmware
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		want := fmt.Sprintf("kmm_b: firmware kmm_b.fw: %d bytes: %s", len(firmware), line)
		assert.Contains(t, get(t, "dmesg-loaded").out, want, "kmm_b found its firmware")
		assert.Equal(t, firmwareHostPath, strings.TrimSpace(get(t, "firmware-class-path").out),
			"/sys/module/firmware_class/parameters/path after load.sh")
		assert.Contains(t, get(t, "firmware-dir").out, "kmm_b.fw")
	})
	t.Run("in-tree removal", func(t *testing.T) {
		load := get(t, "load").out
		require.Equal(t, 0, get(t, "intree-load").rc, "loading the in-tree modules before load.sh:\n%s", get(t, "intree-load").out)
		for _, m := range inTree {
			assert.True(t, loadedIn(get(t, "modules-before").out, m), "%s is loaded before load.sh:\n%s", m, get(t, "modules-before").out)
			assert.False(t, loadedIn(get(t, "modules-loaded").out, m), "%s is not loaded after load.sh:\n%s", m, get(t, "modules-loaded").out)
			before(t, load, "kmm: unloading in-tree module "+m, "kmm: modprobe -v -d "+moddir+" "+first, "load.sh's output")
			before(t, load, "rmmod "+m, insmod(first), "load.sh's output")
		}
	})
	t.Run("unload", func(t *testing.T) {
		unload := get(t, "unload")
		require.Equal(t, 0, unload.rc, "unload.sh exit code; its output:\n%s", unload.out)
		for _, m := range order {
			assert.False(t, loadedIn(get(t, "modules-unloaded").out, m), "%s in /proc/modules after unload.sh:\n%s", m, get(t, "modules-unloaded").out)
		}
		before(t, unload.out, "rmmod kmm_a", "rmmod kmm_b", "modprobe -r -v in unload.sh's output")
		before(t, get(t, "dmesg-unloaded").out, "kmm_a: unloaded", "kmm_b: unloaded", "dmesg after unload.sh")
		assert.NotContains(t, get(t, "state-unloaded").out, "loaded", "unload.sh removes $KMM_STATE/loaded")
	})
	for _, rf := range refusals {
		t.Run("refuses/"+rf.name, func(t *testing.T) {
			load := get(t, "load-"+rf.name)
			require.NotEqual(t, 143, load.rc, "load.sh did not end within %ds (killed); its output:\n%s", scriptTimeout, load.out)
			assert.Equal(t, 1, load.rc, "load.sh fails on %s; its output:\n%s", rf.what, load.out)
			for _, w := range rf.want {
				assert.Contains(t, load.out, w, "load.sh's output on %s", rf.what)
			}
			assert.False(t, loadedIn(get(t, "modules-"+rf.name).out, module), "%s is not loaded:\n%s", module, get(t, "modules-"+rf.name).out)
			for _, m := range rf.notLoaded {
				assert.False(t, loadedIn(get(t, "modules-"+rf.name).out, m), "%s is not loaded:\n%s", m, get(t, "modules-"+rf.name).out)
			}
			for _, w := range rf.kernelSays {
				assert.Contains(t, get(t, "dmesg-"+rf.name).out, w, "the kernel's messages on %s", rf.what)
			}
		})
	}
	t.Run("upgrade", func(t *testing.T) {
		// What the test knows of the two images, from modinfo on this machine.
		have := "srcversion " + up.v1.srcversion + ", version " + up.v1.version
		want := "srcversion " + up.v2.srcversion + ", version " + up.v2.version
		load := get(t, "up-load-v1")
		require.Equal(t, 0, load.rc, "load.sh of %s exit code; its output:\n%s", up.v1.name, load.out)
		require.Contains(t, load.out, "kmm: verified "+upModule+": "+have)
		hold := get(t, "up-hold")
		require.Equal(t, 0, hold.rc, "insmod %s:\n%s", upHolderKo, hold.out)
		require.Equal(t, upHolder, strings.TrimSpace(get(t, "up-holders").out), "/sys/module/%s/holders", upModule)
		refcnt := strings.TrimSpace(get(t, "up-refcnt").out)
		require.Equal(t, "1", refcnt, "/sys/module/%s/refcnt with %s inserted", upModule, upHolder)

		t.Run("refused while held", func(t *testing.T) {
			load := get(t, "up-load-held")
			require.NotEqual(t, 143, load.rc, "load.sh did not end within %ds (killed); its output:\n%s", scriptTimeout, load.out)
			assert.Equal(t, 1, load.rc, "load.sh of %s fails while %s holds %s %s; its output:\n%s", up.v2.name, upHolder, upModule, up.v1.version, load.out)
			assert.Contains(t, load.out, "kmm: "+upModule+" is loaded at "+have+"; this image has "+want)
			// The failure names both versions, the holder and the refcount (the kernel's, read above).
			refused := "kmm: " + upModule + " is loaded at " + have + " but this loader's image has " + want +
				", and it cannot be unloaded: held by modules [" + upHolder + "], refcnt " + refcnt
			found := false
			for _, l := range strings.Split(load.out, "\n") {
				if rest, ok := strings.CutPrefix(l, refused); ok && (rest == "" || rest[0] < '0' || rest[0] > '9') {
					found = true
				}
			}
			assert.True(t, found, "load.sh's output has a line starting %q; its output:\n%s", refused, load.out)
			// It tried to unload the old version first, and said why it failed after that.
			before(t, load.out, "kmm: "+upModule+" is loaded at "+have+"; this image has "+want, "kmm: unloading the loaded version first", "load.sh's output")
			before(t, load.out, "kmm: unloading the loaded version first", refused, "load.sh's output")
			assert.NotContains(t, load.out, "kmm: verified "+upModule)
			assert.NotContains(t, load.out, "kmm: loaded "+upModule)
			assert.Equal(t, up.v1.version, strings.TrimSpace(get(t, "up-version-held").out), "/sys/module/%s/version after the refusal", upModule)
			assert.Equal(t, up.v1.srcversion, strings.TrimSpace(get(t, "up-srcversion-held").out), "/sys/module/%s/srcversion after the refusal", upModule)
			assert.NotEqual(t, 0, get(t, "up-ready-held").rc, "the refused loader's readiness file exists")
		})
		t.Run("after release", func(t *testing.T) {
			release := get(t, "up-release")
			require.Equal(t, 0, release.rc, "rmmod %s:\n%s", upHolder, release.out)
			load := get(t, "up-load-released")
			require.Equal(t, 0, load.rc, "load.sh of %s exit code once %s is removed; its output:\n%s", up.v2.name, upHolder, load.out)
			before(t, load.out, "kmm: "+upModule+" is loaded at "+have+"; this image has "+want, "kmm: unloading the loaded version first", "load.sh's output")
			before(t, load.out, "kmm: unloading the loaded version first", "kmm: verified "+upModule+": "+want, "load.sh's output")
			assert.Contains(t, load.out, "kmm: loaded "+upModule+" (kernel "+h.version+")")
			assert.Equal(t, up.v2.version, strings.TrimSpace(get(t, "up-version-released").out), "/sys/module/%s/version after the upgrade", upModule)
			assert.Equal(t, up.v2.srcversion, strings.TrimSpace(get(t, "up-srcversion-released").out), "/sys/module/%s/srcversion after the upgrade", upModule)
			assert.Equal(t, 0, get(t, "up-ready-released").rc, "load.sh writes $KMM_STATE/loaded (the readiness probe's file)")
			// The kernel's own account: 1.0 held, released, unloaded, then 2.0 loaded.
			dmesg := get(t, "up-dmesg").out
			before(t, dmesg, upModule+": version "+up.v1.version+" loaded", upHolder+": holding "+upModule+" version "+up.v1.version, "dmesg")
			before(t, dmesg, upHolder+": holding "+upModule+" version "+up.v1.version, upHolder+": released "+upModule, "dmesg")
			before(t, dmesg, upHolder+": released "+upModule, upModule+": version "+up.v1.version+" unloaded", "dmesg")
			before(t, dmesg, upModule+": version "+up.v1.version+" unloaded", upModule+": version "+up.v2.version+" loaded", "dmesg")
		})
	})
	if t.Failed() {
		t.Logf("VM console:\n%s", tail(c.raw, 400))
	}
}

// step runs f as the subtest name and stops the test when it fails: the later steps need it.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// refusal is an image tree load.sh must refuse.
type refusal struct {
	name string // the tree's folder in the VM (/<name>) and the name of its reports
	what string // what is wrong with it, for messages
	tree string // the tree on this machine
	// want are lines of load.sh's output.
	want []string
	// notLoaded are modules that must not be loaded afterwards (besides the module itself).
	notLoaded []string
	// kernelSays are messages of the kernel refusing the module.
	kernelSays []string
}

// prepareRefusals lays out the trees load.sh must refuse: modules built for another kernel
// (always one made from the build, and one really built against another installed kernel's
// headers when there is one) and missing modules.
func prepareRefusals(t *testing.T, h *host, work string, r *rendered, image, unsigned string, ko func(root, m string) string, first, module string) []refusal {
	t.Helper()
	var out []refusal
	dirName := r.loaderValue("KMM_DIR_NAME")
	firmwarePath := r.loaderValue("KMM_FIRMWARE_PATH")
	order := list(r.loaderValue("KMM_LOADING_ORDER"))
	tree := func(name string, modules map[string]string) string {
		t.Helper()
		root := filepath.Join(work, "refuse", name)
		fw := filepath.Join(image, firmwarePath)
		entries, err := os.ReadDir(fw)
		require.NoError(t, err)
		for _, e := range entries {
			require.NoError(t, copyFile(filepath.Join(fw, e.Name()), filepath.Join(root, firmwarePath, e.Name()), 0o644))
		}
		require.NoError(t, os.MkdirAll(filepath.Join(root, dirName), 0o755))
		if len(modules) > 0 {
			for m, src := range modules {
				require.NoError(t, copyFile(src, ko(root, m), 0o644))
			}
			depmodTree(t, h, filepath.Join(root, dirName), h.version)
		}
		return root
	}
	wrongKernel := func(built string) []string {
		return []string{"kmm: " + first + " was built for kernel " + built + ", this node runs " + h.version + ": rebuild it for " + h.version}
	}
	notInserted := []string{"modprobe: ERROR: could not insert '" + first + "'"}

	step(t, "wrong-kernel/rebranded", func(t *testing.T) {
		// The build, made into a build for another kernel version of the same length: its
		// vermagic says so and its symbol CRCs differ, as a module of that kernel would.
		fake := otherKernelVersion(h.version)
		mods := map[string]string{}
		for _, m := range order {
			data, err := rebrandForKernel(mustRead(t, filepath.Join(unsigned, m+".ko")), h.version, fake)
			require.NoError(t, err, "%s.ko", m)
			p := filepath.Join(work, "rebranded", m+".ko")
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, data, 0o644))
			mods[m] = p
		}
		root := tree("wrong-kernel", mods)
		for _, m := range order {
			vermagic := modinfo(t, h, ko(root, m), "vermagic")
			require.True(t, strings.HasPrefix(vermagic, fake+" "), "the rebranded %s.ko's vermagic is %q", m, vermagic)
		}
		out = append(out, refusal{
			name: "wrong-kernel", what: "modules whose vermagic and symbol versions are kernel " + fake + "'s", tree: root,
			want: append(wrongKernel(fake), notInserted...), notLoaded: order,
			kernelSays: []string{first + ": disagrees about version of symbol"},
		})
	})
	if h.other != nil {
		step(t, "wrong-kernel/built-for-other", func(t *testing.T) {
			// A real build for the other installed kernel, shipped in an image tagged for this one.
			var args []string
			for _, a := range list(r.buildEnv["KMM_BUILD_ARGS"]) {
				name, _, _ := strings.Cut(a, "=")
				if name == "KERNEL_VERSION" || name == "KERNEL_FULL_VERSION" {
					a = name + "=" + h.other.version
				}
				args = append(args, a)
			}
			dest := filepath.Join(work, "other-build")
			buildKmod(t, h.other.headers, args, r.buildEnv["KMM_DIR_NAME"], filepath.Join(work, "other-build-tmp"), dest)
			mods := map[string]string{}
			for _, m := range order {
				mods[m] = filepath.Join(dest, dirName, "lib", "modules", h.other.version, "extra", m+".ko")
			}
			out = append(out, refusal{
				name: "other-kernel", what: "modules built with the headers of " + h.other.version, tree: tree("other-kernel", mods),
				want: append(wrongKernel(h.other.version), notInserted...), notLoaded: order,
			})
		})
	} else {
		t.Logf("no other kernel with headers is installed: the module built for another kernel is only the rebranded build")
	}
	step(t, "missing-modules", func(t *testing.T) {
		out = append(out, refusal{
			name: "missing-all", what: "an image without modules", tree: tree("missing-all", nil),
			want:      []string{"kmm: no module " + first + " in /missing-all" + dirName + "/lib/modules/" + h.version},
			notLoaded: order,
		})
		// Its dependencies are there (signed, from the build), the module is not.
		deps := map[string]string{}
		for _, m := range order {
			if m != module {
				deps[m] = ko(image, m)
			}
		}
		out = append(out, refusal{
			name: "missing-module", what: "an image without " + module, tree: tree("missing-module", deps),
			want: []string{"kmm: no module " + module + " in /missing-module" + dirName + "/lib/modules/" + h.version},
		})
	})
	return out
}

// buildKmod runs examples/kmod/build.sh with the build args as environment variables, as
// examples/kmod/Dockerfile does (its ARGs) with the debian recipe (build.osDefaults.debian: the
// headers in /usr/src/linux-headers-<kernel>, no MAKE_ARGS), into dest, building in the folder
// build (Kbuild's M= cannot hold blanks or parentheses, which subtests' temporary folders have).
func buildKmod(t *testing.T, headers string, args []string, dirName, build, dest string) {
	t.Helper()
	src, err := filepath.Abs(filepath.Join(repoRoot, "examples", "kmod"))
	require.NoError(t, err)
	env := envWith(append(args,
		"KERNEL_SRC="+headers, "SRC_DIR="+src, "BUILD_DIR="+build, "DEST_ROOT="+dest, "DIR_NAME="+dirName)...)
	out, err := runCmd(t, env, "sh", filepath.Join(src, "build.sh"))
	require.NoError(t, err, "examples/kmod/build.sh with %v:\n%s", args, out)
}

// genKey makes a private key and a self-signed certificate for module signing. Every
// certificate has the same subject and serial, so that only the key tells them apart.
func genKey(t *testing.T, h *host, dir, name string) (key, cert string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	key, cert = filepath.Join(dir, name+"-key.pem"), filepath.Join(dir, name+"-cert.pem")
	out, err := runCmd(t, nil, h.openssl, "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN="+certCN, "-set_serial", "4242", "-outform", "PEM", "-keyout", key, "-out", cert,
		"-addext", "basicConstraints=critical,CA:FALSE",
		"-addext", "keyUsage=digitalSignature", "-addext", "extendedKeyUsage=codeSigning")
	require.NoError(t, err, out)
	return key, cert
}

// verifySignature checks the signature appended to the module file against cert: the PKCS#7
// signature over the bytes before it, verified by openssl with cert as the only signer
// certificate (-nointern) and no chain check (-noverify: the certificate is self-signed).
func verifySignature(t *testing.T, h *host, file, cert string) error {
	t.Helper()
	content, sig, err := splitSignature(mustRead(t, file))
	if err != nil {
		return err
	}
	dir := t.TempDir()
	c, s := filepath.Join(dir, "content"), filepath.Join(dir, "sig.der")
	require.NoError(t, os.WriteFile(c, content, 0o644))
	require.NoError(t, os.WriteFile(s, sig, 0o644))
	out, err := runCmd(t, nil, h.openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", s, "-content", c,
		"-certfile", cert, "-nointern", "-noverify", "-out", os.DevNull)
	if err != nil {
		return fmt.Errorf("openssl cms -verify: %v: %s", err, out)
	}
	return nil
}

// modinfo returns `modinfo -F field file`.
func modinfo(t *testing.T, h *host, file, field string) string {
	t.Helper()
	out, err := runCmd(t, nil, h.modinfo, "-F", field, file)
	require.NoError(t, err, out)
	return strings.TrimSpace(out)
}

// depmodTree writes modules.dep of base/lib/modules/kernel, as build.sh does.
func depmodTree(t *testing.T, h *host, base, kernel string) {
	t.Helper()
	dir := filepath.Join(base, "lib", "modules", kernel)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if _, err := os.Stat(filepath.Join(dir, f)); os.IsNotExist(err) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o644))
		}
	}
	out, err := runCmd(t, nil, h.depmod, "-b", base, kernel)
	require.NoError(t, err, out)
}

// inTreeModules copies the in-tree modules names, and what they depend on, from
// /lib/modules/<kernel> to stage/lib/modules/<kernel>, and runs depmod there.
func inTreeModules(t *testing.T, h *host, stage string, names []string) {
	t.Helper()
	kdir := filepath.Join("/lib/modules", h.version)
	dep, err := os.ReadFile(filepath.Join(kdir, "modules.dep"))
	require.NoError(t, err)
	deps := map[string][]string{} // module name -> its file, then its dependencies' files
	byFile := map[string]string{}
	for _, line := range strings.Split(string(dep), "\n") {
		file, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name := moduleNameOf(file)
		deps[name] = append([]string{file}, strings.Fields(rest)...)
		byFile[file] = name
	}
	sdir := filepath.Join(stage, "lib", "modules", h.version)
	copied := map[string]bool{}
	var copyModule func(name string)
	copyModule = func(name string) {
		files, ok := deps[name]
		require.True(t, ok, "in-tree module %s is not in %s/modules.dep: pick a loadable module of kernel %s for inTreeModulesToRemove", name, kdir, h.version)
		for i, f := range files {
			if copied[f] {
				continue
			}
			copied[f] = true
			require.NoError(t, copyFile(filepath.Join(kdir, f), filepath.Join(sdir, f), 0o644))
			if i > 0 {
				copyModule(byFile[f])
			}
		}
	}
	for _, n := range names {
		copyModule(strings.ReplaceAll(n, "-", "_"))
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo"} {
		if _, err := os.Stat(filepath.Join(kdir, f)); err == nil {
			require.NoError(t, copyFile(filepath.Join(kdir, f), filepath.Join(sdir, f), 0o644))
		}
	}
	depmodTree(t, h, stage, h.version)
}

// moduleNameOf is the module name of a modules.dep path: kernel/drivers/net/dummy.ko.xz -> dummy.
func moduleNameOf(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// buildInitramfs writes the VM's initramfs: busybox, kmod, the in-tree modules, the image trees
// (the upgrade's too, and its holder), the chart's scripts as the loader mounts them (load.sh,
// unload.sh and the common.sh they source), the loaders' environments and an /init that runs
// them.
func buildInitramfs(t *testing.T, h *host, work string, r *rendered, image string, refusals []refusal, inTree []string, up *upgradeScenario, file string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	fs := newInitramfs()
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/etc", firmwareHostPath, "/kmm/state"} {
		fs.dir(d)
	}
	// The kernel opens /dev/console for /init before anything is mounted.
	fs.charDev("/dev/console", 5, 1)

	require.NoError(t, fs.binary(ctx, "/bin/busybox", h.busybox))
	names, err := exec.CommandContext(ctx, h.busybox, "--list").Output()
	require.NoError(t, err)
	have := map[string]bool{}
	for _, a := range strings.Fields(string(names)) {
		have[a] = true
	}
	for _, a := range applets {
		require.True(t, have[a], "%s has no applet %s", h.busybox, a)
		fs.symlink("/bin/"+a, "busybox")
	}
	require.NoError(t, fs.binary(ctx, "/bin/kmod", h.kmod))
	for _, tool := range kmodTools {
		fs.symlink("/sbin/"+tool, "/bin/kmod")
	}

	stage := filepath.Join(work, "in-tree")
	inTreeModules(t, h, stage, inTree)
	require.NoError(t, fs.tree("/lib/modules/"+h.version, filepath.Join(stage, "lib", "modules", h.version)))

	require.NoError(t, fs.tree("/image", image))
	for _, rf := range refusals {
		require.NoError(t, fs.tree("/"+rf.name, rf.tree))
	}
	for _, b := range []upgradeBuild{up.v1, up.v2} {
		require.NoError(t, fs.tree("/"+b.name, b.tree))
	}
	fs.hostFile(upHolderKo, 0o644, up.holder)
	// Every file of the loader's scripts ConfigMap, as its mount at /kmm/scripts (mode 0555).
	for _, name := range slices.Sorted(maps.Keys(r.loaderScripts)) {
		fs.text("/kmm/scripts/"+name, 0o555, r.loaderScripts[name])
	}
	fs.text("/kmm/test/loader.env", 0o644, loaderEnv(r.loader, r.loaderEnv))
	fs.text("/kmm/test/upgrade.env", 0o644, loaderEnv(r.upgradeLoader, r.upgradeEnv))
	fs.text("/kmm/test/run.sh", 0o755, `#!/bin/sh
# run.sh ENV ROOT STATE SCRIPT: runs the chart's SCRIPT (load.sh or unload.sh) as the loader
# container whose environment is the file ENV does, with the module image's tree at ROOT.
# shellcheck source=/dev/null
. "$1"
export KMM_ROOT="$2" KMM_STATE="$3"
exec /bin/sh "$KMM_SCRIPTS/$4"
`)
	order := list(r.loaderValue("KMM_LOADING_ORDER"))
	fs.text("/kmm/test/cleanup.sh", 0o755, fmt.Sprintf(`#!/bin/sh
# cleanup.sh: unloads what a refused load left loaded.
for m in %s; do
	if grep -q "^$m " /proc/modules; then rmmod "$m"; fi
done
exit 0
`, strings.Join(order, " ")))
	fs.text("/init", 0o755, initScript(r, refusals, inTree))
	require.NoError(t, fs.write(file))
	if st, err := os.Stat(file); err == nil {
		t.Logf("initramfs: %d entries, %d KiB", len(fs.entries), st.Size()/1024)
	}
}

// loaderEnv is /kmm/test/loader.env (or upgrade.env): the environment of the loader container of
// DaemonSet daemonSet as rendered, then what the pod's mounts provide and the VM has elsewhere.
func loaderEnv(daemonSet string, env []envVar) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# The env of container module-loader of DaemonSet %s, as rendered.\n", daemonSet)
	for _, e := range env {
		fmt.Fprintf(&b, "export %s=%s\n", e.name, shellQuote(e.value))
	}
	b.WriteString("# The VM: load and exit; the firmware folder and firmware_class's path are the host's own.\n")
	for _, kv := range [][2]string{
		{"KMM_ONESHOT", "true"},
		{"KMM_FIRMWARE_DIR", firmwareHostPath},
		{"KMM_FIRMWARE_HOST_PATH", firmwareHostPath},
		{"KMM_FIRMWARE_CLASS_PATH", "/sys/module/firmware_class/parameters/path"},
		{"KMM_SCRIPTS", "/kmm/scripts"},
	} {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	return b.String()
}

// initScript is the VM's /init: it loads the in-tree modules, runs load.sh and unload.sh on the
// image, then load.sh on each tree to refuse, then the upgrade (upgradeInit), printing a report of
// each step, and powers off.
func initScript(r *rendered, refusals []refusal, inTree []string) string {
	module := r.loaderValue("KMM_MODULE")
	var b strings.Builder
	fmt.Fprintf(&b, `#!/bin/sh
# /init of the VM of test/kernel.
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp %[1]s /kmm/state

# run NAME COMMAND...: runs COMMAND, its output (stdout and stderr) and exit code in a report.
run() {
	name=$1
	shift
	echo "%[2]s begin $name"
	"$@" </dev/null 2>&1
	echo "%[2]s end $name $?"
}
# script ROOT SCRIPT: the chart's SCRIPT on the image tree at /ROOT, within %[3]d seconds.
script() {
	timeout %[3]d /bin/sh /kmm/test/run.sh /kmm/test/loader.env "/$1" "/kmm/state/$1" "$2"
}
# upgrade ROOT STATE SCRIPT: the chart's SCRIPT with the upgrade module's loader environment on
# the image tree at /ROOT, with the state folder /kmm/state/STATE, within %[3]d seconds.
upgrade() {
	timeout %[3]d /bin/sh /kmm/test/run.sh /kmm/test/upgrade.env "/$1" "/kmm/state/$2" "$3"
}

run uname uname -r
`, firmwareHostPath, marker, scriptTimeout)
	fmt.Fprintf(&b, "run intree-load modprobe -v -a %s\n", strings.Join(quoteAll(inTree), " "))
	b.WriteString(`run dmesg-boot dmesg -c
run modules-before cat /proc/modules
run load script image load.sh
run modules-loaded cat /proc/modules
`)
	for _, p := range list(r.loaderValue("KMM_PARAMETERS")) {
		name, _, _ := strings.Cut(p, "=")
		fmt.Fprintf(&b, "run param-%s cat %s\n", name, shellQuote("/sys/module/"+module+"/parameters/"+name))
	}
	b.WriteString(`run firmware-class-path cat /sys/module/firmware_class/parameters/path
run firmware-dir ls ` + firmwareHostPath + `
run state-loaded ls /kmm/state/image
run dmesg-loaded dmesg -c
run unload script image unload.sh
run modules-unloaded cat /proc/modules
run state-unloaded ls /kmm/state/image
run dmesg-unloaded dmesg -c
`)
	for _, rf := range refusals {
		fmt.Fprintf(&b, "run load-%[1]s script %[1]s load.sh\nrun modules-%[1]s cat /proc/modules\nrun dmesg-%[1]s dmesg -c\nrun cleanup-%[1]s /bin/sh /kmm/test/cleanup.sh\n", rf.name)
	}
	b.WriteString(upgradeInit())
	fmt.Fprintf(&b, `echo "%s done"
sync
poweroff -f
reboot -f
`, marker)
	return b.String()
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = shellQuote(s)
	}
	return out
}

// envWith is this process's environment without what build.sh, sign.sh and make read from it,
// plus kv.
func envWith(kv ...string) []string {
	drop := map[string]bool{"MAKEFLAGS": true, "MFLAGS": true, "MAKELEVEL": true, "MAKEOVERRIDES": true,
		"KERNEL_VERSION": true, "KERNEL_FULL_VERSION": true, "KERNEL_SRC": true, "SRC_DIR": true, "BUILD_DIR": true,
		"DEST_ROOT": true, "DIR_NAME": true, "FIRMWARE_DIR": true, "MAKE_ARGS": true, "MOD_NAME": true, "MOD_NAMESPACE": true}
	var env []string
	for _, e := range os.Environ() {
		name, _, _ := strings.Cut(e, "=")
		if drop[name] || strings.HasPrefix(name, "KMM_") {
			continue
		}
		env = append(env, e)
	}
	sort.Strings(env)
	return append(env, kv...)
}

// runCmd runs a program within stepTimeout and returns its combined output. A nil env is
// envWith().
func runCmd(t *testing.T, env []string, prog string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	if env == nil {
		env = envWith()
	}
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s did not end within %s: killed", prog, stepTimeout)
	}
	return string(out), err
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	return data
}
