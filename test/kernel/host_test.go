package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"kmm.dev/kmm/internal/busybox"
)

// kernelEnv picks the kernel to boot instead of the default choice (see chooseKernel), e.g.
// KMM_TEST_KERNEL=6.12.117+deb12-cloud-amd64 when several are installed.
const kernelEnv = "KMM_TEST_KERNEL"

// installed is a kernel this machine can both boot in qemu and build modules for.
type installed struct {
	version string // as `uname -r` prints it
	vmlinuz string // /boot/vmlinuz-<version>
	headers string // /usr/src/linux-headers-<version>
}

// host is what the test takes from this machine.
type host struct {
	installed
	// why says how the kernel was chosen.
	why string
	// other is another installed kernel with headers, to build modules for the wrong kernel; nil
	// when there is none.
	other *installed
	// signFile is the kernel's scripts/sign-file.
	signFile string
	// Programs.
	qemu, busybox, kmod, openssl, modinfo, depmod string
	// busyboxVersion says which busybox it is and how it was chosen.
	busyboxVersion string
}

// requireHost finds everything the test needs, or fails naming `make kernel-deps`: a missing
// prerequisite is a failure, never a skip, so that `make test` cannot pass without a kernel.
func requireHost(t *testing.T) *host {
	t.Helper()
	h := &host{}
	var missing []string
	need := func(what, pkg string, found bool) {
		if !found {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", what, pkg))
		}
	}
	var ok bool
	h.qemu, ok = lookPath("qemu-system-x86_64")
	need("qemu-system-x86_64", "qemu-system-x86", ok)
	// The VM's scripts find kmod's modprobe on PATH: a busybox that runs its own applets first
	// (Debian's busybox-static) would run its modprobe instead, which has no -d.
	if bb, err := busybox.Find(); err != nil {
		missing = append(missing, err.Error())
	} else {
		h.busybox = bb.Path
		h.busyboxVersion = bb.String()
	}
	h.kmod, ok = lookPath("kmod")
	need("kmod", "kmod", ok)
	h.modinfo, ok = lookPath("modinfo")
	need("modinfo", "kmod", ok)
	h.depmod, ok = lookPath("depmod")
	need("depmod", "kmod", ok)
	h.openssl, ok = lookPath("openssl")
	need("openssl", "openssl", ok)
	_, ok = lookPath("make")
	need("make", "make", ok)
	_, ok = lookPath("ldd")
	need("ldd", "libc-bin", ok)

	kernels := installedKernels()
	chosen, why, err := chooseKernel(kernels)
	if err != nil {
		missing = append(missing, err.Error())
	} else {
		h.installed, h.why = chosen, why
		h.signFile = findSignFile(chosen.headers)
		need("the kernel's scripts/sign-file", "linux-kbuild-*, pulled by linux-headers-cloud-amd64", h.signFile != "")
		_, err := os.Stat(filepath.Join("/lib/modules", chosen.version, "modules.dep"))
		need("/lib/modules/"+chosen.version+"/modules.dep", "linux-image-"+chosen.version, err == nil)
		for i := range kernels {
			if kernels[i].version != chosen.version {
				h.other = &kernels[i]
				break
			}
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the kernel test cannot run, missing:\n  %s\nrun `make kernel-deps` (as root: it installs them with apt-get)",
			strings.Join(missing, "\n  "))
	}
	// Debian installs /boot/vmlinuz-* readable by root only.
	if f, err := os.Open(h.vmlinuz); err != nil {
		t.Fatalf("cannot read %s, which qemu boots: %v (run the test as root, e.g. sudo make kernel-test)", h.vmlinuz, err)
	} else {
		f.Close()
	}
	return h
}

// lookPath finds a program on PATH or in the sbin folders, which are not on every user's PATH.
func lookPath(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// installedKernels lists the kernels that have both a boot image and headers, newest first.
func installedKernels() []installed {
	images, _ := filepath.Glob("/boot/vmlinuz-*")
	var out []installed
	for _, img := range images {
		v := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		h := "/usr/src/linux-headers-" + v
		if !isFile(filepath.Join(h, "Makefile")) || !isFile(filepath.Join(h, "include/generated/utsrelease.h")) {
			continue
		}
		out = append(out, installed{version: v, vmlinuz: img, headers: h})
	}
	sort.Slice(out, func(i, j int) bool { return compareVersions(out[i].version, out[j].version) > 0 })
	return out
}

// chooseKernel picks the kernel to test: $KMM_TEST_KERNEL when set; else the one Debian's
// cloud kernel meta-packages depend on (what `make kernel-deps` installs, so that every machine
// tests the same kind of kernel); else the newest kernel with both an image and headers.
func chooseKernel(kernels []installed) (installed, string, error) {
	if len(kernels) == 0 {
		return installed{}, "", fmt.Errorf("a kernel with both /boot/vmlinuz-<version> and /usr/src/linux-headers-<version> " +
			"(Debian packages linux-image-cloud-amd64 and linux-headers-cloud-amd64)")
	}
	byVersion := map[string]installed{}
	for _, k := range kernels {
		byVersion[k.version] = k
	}
	if v := os.Getenv(kernelEnv); v != "" {
		k, ok := byVersion[v]
		if !ok {
			return installed{}, "", fmt.Errorf("%s=%s: no /boot/vmlinuz-%s with /usr/src/linux-headers-%s", kernelEnv, v, v, v)
		}
		return k, "$" + kernelEnv, nil
	}
	for _, meta := range []string{"linux-image-cloud-amd64", "linux-headers-cloud-amd64"} {
		ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Depends}", meta).Output()
		cancel()
		if err != nil {
			continue
		}
		for _, dep := range strings.FieldsFunc(string(out), func(r rune) bool { return r == ',' || r == '|' }) {
			fields := strings.Fields(dep)
			if len(fields) == 0 {
				continue
			}
			for _, prefix := range []string{"linux-image-", "linux-headers-"} {
				v := strings.TrimSuffix(strings.TrimPrefix(fields[0], prefix), "-unsigned")
				if k, ok := byVersion[v]; ok && strings.HasPrefix(fields[0], prefix) {
					return k, "the kernel " + meta + " depends on", nil
				}
			}
		}
	}
	return kernels[0], "the newest kernel with an image and headers", nil
}

// findSignFile returns the headers' scripts/sign-file (a link into linux-kbuild-* on Debian),
// or the first linux-kbuild-* one, or "".
func findSignFile(headers string) string {
	candidates := []string{filepath.Join(headers, "scripts", "sign-file")}
	more, _ := filepath.Glob("/usr/lib/linux-kbuild-*/scripts/sign-file")
	for _, c := range append(candidates, more...) {
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return c
		}
	}
	return ""
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// compareVersions compares kernel versions by runs of digits (as numbers) and of other
// characters: 6.12.117+deb12-cloud-amd64 is newer than 6.1.0-56-cloud-amd64.
func compareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, errX := strconv.Atoi(pa[i])
		y, errY := strconv.Atoi(pb[i])
		switch {
		case errX == nil && errY == nil && x != y:
			if x < y {
				return -1
			}
			return 1
		case (errX != nil || errY != nil) && pa[i] != pb[i]:
			return strings.Compare(pa[i], pb[i])
		}
	}
	return len(pa) - len(pb)
}

func versionParts(s string) []string {
	var parts []string
	for len(s) > 0 {
		digit := unicode.IsDigit(rune(s[0]))
		i := 1
		for i < len(s) && unicode.IsDigit(rune(s[i])) == digit {
			i++
		}
		parts = append(parts, s[:i])
		s = s[i:]
	}
	return parts
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"6.12.117+deb12-cloud-amd64", "6.1.0-56-cloud-amd64", 1},
		{"6.1.0-56-cloud-amd64", "6.1.0-9-cloud-amd64", 1},
		{"6.1.0-56-cloud-amd64", "6.1.0-56-cloud-amd64", 0},
		{"5.10.0-30-cloud-amd64", "6.1.0-1-cloud-amd64", -1},
	} {
		got := compareVersions(tc.a, tc.b)
		if (got > 0) != (tc.want > 0) || (got < 0) != (tc.want < 0) {
			t.Errorf("compareVersions(%q, %q) = %d, want the sign of %d", tc.a, tc.b, got, tc.want)
		}
	}
}
