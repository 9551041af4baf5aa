package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The upgrade scenario, on the loader of the kmm-upgrade module of testdata/values.yaml: version
// 1.0 of testdata/upgrade's kmm_up is loaded by load.sh from one image tree and kmm_up_holder is
// inserted, which holds it. Then load.sh with an image tree of version 2.0, as a new loader pod
// would run it (a fresh state folder), must fail: its version check finds 1.0 in the kernel,
// cannot unload it, and says so naming both versions and what holds it, leaving 1.0 loaded. Once
// the holder is removed, the next loader pod unloads 1.0 and loads 2.0.
const (
	// upgradeModuleName is the module of testdata/values.yaml whose loader the scenario runs.
	upgradeModuleName = "kmm-upgrade"
	// upModule is the kernel module it loads (its modprobe.moduleName), upHolder the module that
	// holds it.
	upModule = "kmm_up"
	upHolder = "kmm_up_holder"
	// upHolderKo is where kmm_up_holder.ko is in the VM.
	upHolderKo = "/kmm/test/" + upHolder + ".ko"
)

// upgradeBuild is one image of kmm_up: a build of testdata/upgrade for one version.
type upgradeBuild struct {
	name string // the tree's folder in the VM (/<name>)
	tree string // the tree on this machine
	// version and srcversion are modinfo's, on this machine, of the tree's kmm_up.ko.
	version, srcversion string
}

// upgradeScenario is what the VM needs for the upgrade: the two images and the holder.
type upgradeScenario struct {
	v1, v2 upgradeBuild
	holder string // kmm_up_holder.ko on this machine, built with v1
}

// prepareUpgrade builds testdata/upgrade for versions 1.0 and 2.0 and lays out each kmm_up.ko
// in an image tree as the loader finds it (<dirName>/lib/modules/<kernel>/extra, depmod run), and
// checks with modinfo that the two differ in srcversion and version.
func prepareUpgrade(t *testing.T, h *host, work string, r *rendered) *upgradeScenario {
	t.Helper()
	up := &upgradeScenario{}
	step(t, "upgrade-build", func(t *testing.T) {
		require.Equal(t, upModule, r.upgradeValue("KMM_MODULE"), "DaemonSet %s loads %s", r.upgradeLoader, upModule)
		require.Equal(t, "true", r.upgradeValue("KMM_VERIFY_VERSION"), "DaemonSet %s verifies the loaded version (the chart's default)", r.upgradeLoader)
		dirName := r.upgradeValue("KMM_DIR_NAME")
		require.NotEmpty(t, dirName, "DaemonSet %s has KMM_DIR_NAME", r.upgradeLoader)
		for i, version := range []string{"1.0", "2.0"} {
			b := upgradeBuild{name: fmt.Sprintf("upgrade-v%d", i+1), version: version}
			build := filepath.Join(work, "upgrade-build", b.name)
			buildUpgrade(t, build, h.headers, version)
			b.tree = filepath.Join(work, "upgrade", b.name)
			ko := filepath.Join(b.tree, dirName, "lib", "modules", h.version, "extra", upModule+".ko")
			require.NoError(t, copyFile(filepath.Join(build, upModule+".ko"), ko, 0o644))
			depmodTree(t, h, filepath.Join(b.tree, dirName), h.version)

			require.Equal(t, upModule, modinfo(t, h, ko, "name"))
			vermagic := modinfo(t, h, ko, "vermagic")
			require.True(t, strings.HasPrefix(vermagic, h.version+" "), "%s's vermagic %q is for kernel %s", ko, vermagic, h.version)
			require.Equal(t, version, modinfo(t, h, ko, "version"), "modinfo -F version %s", ko)
			b.srcversion = modinfo(t, h, ko, "srcversion")
			require.NotEmpty(t, b.srcversion, "%s has a srcversion (MODULE_VERSION)", ko)
			if i == 0 {
				up.v1 = b
				up.holder = filepath.Join(build, upHolder+".ko")
				require.Equal(t, upModule, modinfo(t, h, up.holder, "depends"), "%s depends on %s", up.holder, upModule)
			} else {
				up.v2 = b
			}
		}
		require.NotEqual(t, up.v1.srcversion, up.v2.srcversion, "the two builds of %s differ in srcversion", upModule)
	})
	return up
}

// buildUpgrade builds kmm_up.ko and kmm_up_holder.ko of testdata/upgrade for version in the
// folder build, with kmm_up_version.h saying version, against the kernel headers.
func buildUpgrade(t *testing.T, build, headers, version string) {
	t.Helper()
	src := filepath.Join("testdata", "upgrade")
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, copyFile(filepath.Join(src, e.Name()), filepath.Join(build, e.Name()), 0o644))
	}
	header := fmt.Sprintf("/* Written by test/kernel for this build of kmm_up. */\n#define KMM_UP_VERSION %q\n", version)
	require.NoError(t, os.WriteFile(filepath.Join(build, "kmm_up_version.h"), []byte(header), 0o644))
	abs, err := filepath.Abs(build)
	require.NoError(t, err)
	out, err := runCmd(t, nil, "make", "-C", headers, "M="+abs, "modules")
	require.NoError(t, err, "building testdata/upgrade for version %s:\n%s", version, out)
	for _, m := range []string{upModule, upHolder} {
		require.FileExists(t, filepath.Join(build, m+".ko"), "make in %s", build)
	}
}

// upgradeInit is the part of the VM's /init that runs the upgrade, with the helpers run and
// upgrade (load.sh of the upgrade module's loader: ROOT STATE SCRIPT) it defines. Each load.sh
// has its own state folder, as each loader pod has.
func upgradeInit() string {
	m := upModule
	return fmt.Sprintf(`# The upgrade: %[1]s 1.0 loaded and held by %[2]s, 2.0 refused, then loaded once released.
run up-load-v1 upgrade upgrade-v1 upgrade-v1 load.sh
run up-hold insmod %[3]s
run up-holders ls /sys/module/%[1]s/holders
run up-refcnt cat /sys/module/%[1]s/refcnt
run up-load-held upgrade upgrade-v2 upgrade-v2-held load.sh
run up-version-held cat /sys/module/%[1]s/version
run up-srcversion-held cat /sys/module/%[1]s/srcversion
run up-ready-held test -f /kmm/state/upgrade-v2-held/loaded
run up-release rmmod %[2]s
run up-load-released upgrade upgrade-v2 upgrade-v2 load.sh
run up-version-released cat /sys/module/%[1]s/version
run up-srcversion-released cat /sys/module/%[1]s/srcversion
run up-ready-released test -f /kmm/state/upgrade-v2/loaded
run up-dmesg dmesg -c
`, m, upHolder, upHolderKo)
}
