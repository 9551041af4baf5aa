// Package node is the real-node test (make node-test): the pods kmm renders run in real
// containers (containerd 2, runc) on a real kubelet, on Debian's cloud kernel in a qemu guest
// joined to the local control plane, with images built here and pulled from a local registry.
// docs/node-test.md says how it is built and why.
package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"

	"kmm.dev/kmm/internal/localcluster"
	"kmm.dev/kmm/pkg/upgrade"
)

// The versions of the Makefile's BUILDKIT_VERSION, ROOTLESSKIT_VERSION and CRANE_VERSION (the
// builder and image check images' tools, make node-tools).
const (
	buildkitVersion    = "v0.34.2"
	rootlesskitVersion = "v2.3.6"
	craneVersion       = "v0.22.1"
)

const (
	nodeName        = "kmm-node"
	moduleNamespace = "kmm-demo"
	moduleName      = "kmm-kmod"
	release         = "kmm"
	releaseNS       = "kmm-system"
	resourceName    = "kmm.dev/kmm_a"
	// guestRegistry is the registry as the guest reaches it (slirp guestfwd to 127.0.0.1).
	guestRegistry = "10.0.2.100:5000"
	guestAPIPort  = 6443
)

var repoRoot string

func init() {
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
}

// phase logs how long each step took: the run time docs/node-test.md reports.
type phases struct {
	t    *testing.T
	last time.Time
	all  []string
}

func (p *phases) done(what string) {
	d := time.Since(p.last).Round(100 * time.Millisecond)
	p.t.Logf("phase %-40s %s", what, d)
	p.all = append(p.all, fmt.Sprintf("%s %s", what, d))
	p.last = time.Now()
}

// cloudKernel is the newest /boot/vmlinuz-*-cloud-amd64 with its headers and initramfs.
func cloudKernel(t *testing.T) string {
	vs, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64")
	sort.Strings(vs)
	for i := len(vs) - 1; i >= 0; i-- {
		v := strings.TrimPrefix(vs[i], "/boot/vmlinuz-")
		if _, err := os.Stat("/boot/initrd.img-" + v); err != nil {
			continue
		}
		if _, err := os.Stat("/usr/src/linux-headers-" + v + "/Makefile"); err != nil {
			continue
		}
		return v
	}
	t.Fatal("no /boot/vmlinuz-*-cloud-amd64 with /boot/initrd.img-* and headers: run make node-deps")
	return ""
}

func tool(t *testing.T, name string) string {
	p := filepath.Join(repoRoot, "bin", "tools", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: make node-test builds it (make node-tools)", p)
	}
	return p
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// goModCache is the Go module cache (go env GOMODCACHE).
func goModCache(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every 2 s until it is true or timeout passes, then fails naming what.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error), diag func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			msg := ""
			if diag != nil {
				msg = diag()
			}
			t.Fatalf("waited %s for %s; last error: %v\n%s", timeout, what, lastErr, msg)
		}
		time.Sleep(2 * time.Second)
	}
}

func TestRealNode(t *testing.T) {
	p := &phases{t: t, last: time.Now()}
	kernel := cloudKernel(t)
	work := t.TempDir()
	busybox := tool(t, "busybox")

	// The guest's disk, cached in bin/node by its inputs.
	rootfs := filepath.Join(repoRoot, "bin", "node", "rootfs-"+kernel+".ext4")
	if err := os.MkdirAll(filepath.Dir(rootfs), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(run(t, nil, "bash", filepath.Join(repoRoot, "hack", "node-rootfs.sh"), rootfs, kernel,
		tool(t, "kubelet-v1.37.2"), tool(t, "containerd-v2.4.2"), tool(t, "containerd-shim-runc-v2-v2.4.2"))))
	p.done("guest rootfs")

	// The Debian parts of the builder image and of the module build's base image, cached in
	// bin/node by their inputs.
	images := filepath.Join(repoRoot, "bin", "node")
	t.Log(strings.TrimSpace(run(t, nil, "bash", filepath.Join(repoRoot, "hack", "node-images.sh"), images, kernel)))
	p.done("builder and build base roots")

	// The registry, on 127.0.0.1 only.
	regPort := freePort(t)
	startRegistry(t, tool(t, "registry-v3.1.2"), regPort, filepath.Join(work, "registry"))
	host := fmt.Sprintf("127.0.0.1:%d", regPort)
	pushImages(t, host, kernel, images, busybox)
	pushRenderImage(t, host, "1", filepath.Join(work, "render"))
	p.done("images built and pushed")

	// The control plane, kwok nodes (testdata/nodes.yaml) and the guest's kubelet.
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{
		AssetsDir: os.Getenv("KUBEBUILDER_ASSETS"),
		Nodes:     filepath.Join(repoRoot, "test", "node", "testdata", "nodes.yaml"),
		WorkDir:   filepath.Join(work, "cluster"),
		Log:       testWriter{t},
		// The upgrade controller's pod on the real node reads its token (in-cluster config).
		ServiceAccountTokens: true,
	})
	if err != nil {
		t.Fatalf("starting the local cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.Keep = true
			t.Logf("cluster logs kept in %s", c.WorkDir)
		}
		_ = c.Stop()
	})
	p.done("control plane and kwok nodes")

	config := configDisk(t, c, work)
	var apiPortN int
	if _, err := fmt.Sscanf(c.Config.Host, "https://127.0.0.1:%d", &apiPortN); err != nil || apiPortN == 0 {
		t.Fatalf("the API server is at %s, not https://127.0.0.1:PORT", c.Config.Host)
	}
	v := startVM(t, vmOptions{
		qemu: "qemu-system-x86_64", kernel: "/boot/vmlinuz-" + kernel, initrd: "/boot/initrd.img-" + kernel,
		rootfs: rootfs, config: config, busybox: busybox, dir: work, memoryMB: 3072,
		forwards: map[int]int{guestAPIPort: apiPortN, 5000: regPort},
	})
	guestDiag := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, _, err := v.run(ctx, "tail -n 25 /var/log/kubelet.log; tail -n 10 /var/log/containerd.log")
		if err != nil {
			return fmt.Sprintf("guest console:\n%s\n(command channel: %v)", v.consoleTail(40), err)
		}
		return "guest console:\n" + v.consoleTail(15) + "\nkubelet and containerd logs:\n" + out
	}
	waitFor(t, 5*time.Minute, "node "+nodeName+" (the guest's kubelet) to register and be Ready", func() (bool, error) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return localcluster.NodeReady(n), nil
	}, guestDiag)
	p.done("guest booted, node Ready")
	n, err := c.Client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Status.NodeInfo.KernelVersion; got != kernel {
		t.Fatalf("node %s reports kernel %q, want %q", nodeName, got, kernel)
	}
	t.Logf("node %s: kernel %s, %s, %s, kubelet %s", nodeName, n.Status.NodeInfo.KernelVersion, n.Status.NodeInfo.OSImage,
		n.Status.NodeInfo.ContainerRuntimeVersion, n.Status.NodeInfo.KubeletVersion)
	// What Node Feature Discovery would label it with.
	labels, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": localcluster.NFDKernelLabels(kernel)}})
	if _, err := c.Client.CoreV1().Nodes().Patch(ctx, nodeName, types.MergePatchType, labels, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, helm := range []int{3, 4} {
		ok := t.Run(fmt.Sprintf("helm%d", helm), func(t *testing.T) {
			installAndCheck(t, c, v, helm, kernel, host, guestDiag)
		})
		p.done(fmt.Sprintf("helm %d: install, checks, uninstall", helm))
		if !ok {
			break
		}
	}
	t.Logf("phases:\n  %s", strings.Join(p.all, "\n  "))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// kmodSources is the build context of examples/kmod with kmm_a at version, as the data of the
// module's build ConfigMap: its Dockerfile (key dockerfile) and sources.
func kmodSources(t *testing.T, version string) map[string]string {
	t.Helper()
	data := map[string]string{}
	for _, f := range []string{"Dockerfile", "kmm_a.c", "kmm_b.c", "kmm_b.h", "Kbuild", "Makefile", "kmm_b.fw", "build.sh"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "kmod", f))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if f == "kmm_a.c" {
			if !strings.Contains(s, `MODULE_VERSION("1.0.0")`) {
				t.Fatal(`examples/kmod/kmm_a.c has no MODULE_VERSION("1.0.0") to build other versions from`)
			}
			s = strings.Replace(s, `MODULE_VERSION("1.0.0")`, fmt.Sprintf("MODULE_VERSION(%q)", version), 1)
		}
		if f == "Dockerfile" {
			f = "dockerfile"
		}
		data[f] = s
	}
	return data
}

// startRegistry runs distribution's registry on 127.0.0.1:port, storing in dir, until the test ends.
func startRegistry(t *testing.T, bin string, port int, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: 127.0.0.1:%d
`, filepath.Join(dir, "data"), port)), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() })
	waitFor(t, 30*time.Second, "the registry to serve /v2/", func() (bool, error) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	}, nil)
}

// baseLayer is the userland of the loader tools image and the module images: Debian's busybox
// (sh and the applets the chart's scripts use) and kmod (modprobe, modinfo...) with their
// libraries, as in an Alpine image with kmod.
func baseLayer(t *testing.T, busybox string) *layer {
	t.Helper()
	l := newLayer()
	bb, err := filepath.EvalSymlinks(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.binary("bin/busybox", bb); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" {
			l.symlink("bin/"+a, "busybox")
		}
	}
	kmod, err := exec.LookPath("kmod")
	if err != nil {
		t.Fatal("no kmod on the host (Debian package kmod)")
	}
	if err := l.binary("bin/kmod", kmod); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"modprobe", "insmod", "rmmod", "lsmod", "modinfo", "depmod"} {
		l.symlink("bin/"+a, "kmod")
		l.symlink("sbin/"+a, "../bin/kmod")
	}
	for _, d := range []string{"tmp", "proc", "sys", "dev", "etc", "lib/modules", "var/lib"} {
		l.dir(d)
	}
	l.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65532:65532:nobody:/:/bin/sh\n"))
	l.file("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65532:\n"))
	return l
}

// pushImages builds and pushes every image the test runs but the module's, which the chart's
// build Job builds: the sandbox (pause) image, the loader tools image, the device plugin's, the
// build Job's builder (rootless BuildKit) and image check (crane), and the build's base image.
// images holds hack/node-images.sh's roots.
func pushImages(t *testing.T, host, kernel, images string, busybox string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	base := baseLayer(t, busybox)
	mustPush := func(repo, tag string, img image) {
		d, err := push(ctx, host, repo, tag, img)
		if err != nil {
			t.Fatalf("pushing %s:%s: %v", repo, tag, err)
		}
		t.Logf("pushed %s/%s:%s (%s)", guestRegistry, repo, tag, d)
	}
	mustPush("kmm-test/pause", "1", image{layers: []*layer{base},
		entrypoint: []string{"/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"}})
	mustPush("kmm-test/tools", "1", image{layers: []*layer{base}, cmd: []string{"/bin/sh"}})
	// moby/buildkit's rootless image, rebuilt: its user, folders and environment
	// (hack/node-images.sh), buildkitd, buildctl and rootlesskit built from Go modules, and
	// BuildKit's buildctl-daemonless.sh, which the chart's build.sh runs.
	bk := newLayer()
	for _, b := range []struct{ name, tool string }{
		{"buildkitd", "buildkitd-" + buildkitVersion}, {"buildctl", "buildctl-" + buildkitVersion}, {"rootlesskit", "rootlesskit-" + rootlesskitVersion},
	} {
		if err := bk.hostFile("usr/bin/"+b.name, tool(t, b.tool)); err != nil {
			t.Fatal(err)
		}
	}
	daemonless := filepath.Join(goModCache(t), "github.com", "moby", "buildkit@"+buildkitVersion, "examples", "buildctl-daemonless", "buildctl-daemonless.sh")
	d, err := os.ReadFile(daemonless)
	if err != nil {
		t.Fatalf("BuildKit's buildctl-daemonless.sh (the Go module's copy): %v", err)
	}
	bk.file("usr/bin/buildctl-daemonless.sh", 0o755, d)
	bk.ownedDir("run/user/1000", 1000) // XDG_RUNTIME_DIR (mmdebstrap leaves /run empty)
	mustPush("kmm-test/buildkit", "rootless", image{layers: []*layer{tarLayer(filepath.Join(images, "builder.tar")), bk},
		user:       "1000:1000",
		entrypoint: []string{"rootlesskit", "buildkitd"},
		env: []string{"HOME=/home/user", "USER=user", "XDG_RUNTIME_DIR=/run/user/1000", "TMPDIR=/home/user/.local/tmp",
			"BUILDKIT_HOST=unix:///run/user/1000/buildkit/buildkitd.sock"}})
	// go-containerregistry's crane debug image, rebuilt: crane at /ko-app, a shell at /busybox/sh.
	cr := newLayer()
	if err := cr.hostFile("ko-app/crane", tool(t, "crane-"+craneVersion)); err != nil {
		t.Fatal(err)
	}
	cr.symlink("busybox/sh", "/bin/busybox")
	mustPush("kmm-test/crane", "debug", image{layers: []*layer{base, cr}, entrypoint: []string{"/ko-app/crane"},
		env: []string{"PATH=/ko-app:/busybox:/usr/sbin:/usr/bin:/sbin:/bin"}})
	// The build's base image: Debian with make, gcc, kmod and the kernel's headers.
	mustPush("kmm-test/debian-build", "bookworm", image{layers: []*layer{tarLayer(filepath.Join(images, "build-base-"+kernel+".tar"))}, cmd: []string{"/bin/sh"}})
	dp := newLayer()
	if err := dp.hostFile("usr/local/bin/kmm-device-plugin", tool(t, "kmm-device-plugin-v1.37.2")); err != nil {
		t.Fatal(err)
	}
	mustPush("kmm-test/device-plugin", "1", image{layers: []*layer{base, dp}, entrypoint: []string{"/usr/local/bin/kmm-device-plugin"}})
}

// configDisk writes the guest's per-run config (the kubelet's kubeconfig, with the API server
// at its forwarded address, and the node's labels) as a small ext4 image, and returns its path.
func configDisk(t *testing.T, c *localcluster.Cluster, work string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range kc.Clusters {
		cl.Server = fmt.Sprintf("https://10.0.2.100:%d", guestAPIPort)
		cl.TLSServerName = "localhost" // the serving certificate's name (envtest)
	}
	root := filepath.Join(work, "config")
	if err := os.MkdirAll(filepath.Join(root, "etc", "kubernetes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.WriteToFile(*kc, filepath.Join(root, "etc", "kubernetes", "kubelet.conf")); err != nil {
		t.Fatal(err)
	}
	env := fmt.Sprintf("KMM_NODE_LABELS=%s=true\n", localcluster.RealNodeLabel)
	if err := os.WriteFile(filepath.Join(root, "etc", "kmm-node.env"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(work, "config.ext4")
	mke2fs, err := exec.LookPath("mke2fs")
	if err != nil {
		mke2fs = "/usr/sbin/mke2fs" // not on a PATH without the sbin folders
	}
	run(t, nil, mke2fs, "-q", "-F", "-t", "ext4", "-d", root, img, "16M")
	return img
}

// modules reads /proc/modules in the guest: module name to its line.
func modules(t *testing.T, v *vm) map[string]string {
	t.Helper()
	out := v.mustRun(t, "cat /proc/modules")
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			m[f[0]] = l
		}
	}
	return m
}

func installAndCheck(t *testing.T, c *localcluster.Cluster, v *vm, helm int, kernel, hostRegistry string, guestDiag func() string) {
	ctx := context.Background()
	kmmRender := filepath.Join(repoRoot, "bin", "kmm-render")
	values := filepath.Join(repoRoot, "test", "node", "testdata", "values.yaml")
	var post []string
	if helm == 3 {
		post = []string{"--post-renderer", kmmRender}
	} else {
		dir := filepath.Join(c.WorkDir, "plugin", localcluster.PluginName)
		manifest, err := localcluster.PluginManifest(repoRoot)
		if err != nil {
			t.Fatal(err)
		}
		if err := localcluster.WritePlugin(dir, kmmRender, manifest); err != nil {
			t.Fatal(err)
		}
		if err := c.InstallPlugin(ctx, dir); err != nil {
			t.Fatal(err)
		}
		post = []string{"--post-renderer", localcluster.PluginName}
	}
	args := append([]string{"install", release, filepath.Join(repoRoot, "charts", "kmm"), "-n", releaseNS, "--create-namespace", "-f", values}, post...)
	// The modules' namespace is the user's, as in the e2e tests.
	if err := c.EnsureNamespace(ctx, moduleNamespace); err != nil {
		t.Fatal(err)
	}
	// The build ConfigMaps are the user's too (examples/kmod's README: kubectl create configmap).
	applySources(t, c)
	out, stderr, err := c.Helm(ctx, helm, args...)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}

	podsOnNode := func(role string) ([]corev1.Pod, error) {
		pl, err := c.Client.CoreV1().Pods(moduleNamespace).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + nodeName})
		if err != nil {
			return nil, err
		}
		var out []corev1.Pod
		for _, p := range pl.Items {
			if strings.Contains(p.Name, role) {
				out = append(out, p)
			}
		}
		return out, nil
	}
	podDiag := func() string {
		pl, _ := c.Client.CoreV1().Pods(moduleNamespace).List(ctx, metav1.ListOptions{})
		var b strings.Builder
		for _, p := range pl.Items {
			fmt.Fprintf(&b, "pod %s on %s: %s", p.Name, p.Spec.NodeName, p.Status.Phase)
			for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
				fmt.Fprintf(&b, " [%s ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
				if w := cs.State.Waiting; w != nil {
					fmt.Fprintf(&b, " waiting %s: %s", w.Reason, w.Message)
				}
				if x := cs.State.Terminated; x != nil {
					fmt.Fprintf(&b, " terminated %d %s: %s", x.ExitCode, x.Reason, x.Message)
				}
				if x := cs.LastTerminationState.Terminated; x != nil {
					fmt.Fprintf(&b, " last: %d %s: %s", x.ExitCode, x.Reason, x.Message)
				}
				b.WriteString("]")
			}
			b.WriteString("\n")
		}
		ev, _ := c.Client.CoreV1().Events(moduleNamespace).List(ctx, metav1.ListOptions{})
		for _, e := range ev.Items {
			if e.Type != "Normal" {
				fmt.Fprintf(&b, "event %s %s: %s\n", e.InvolvedObject.Name, e.Reason, e.Message)
			}
		}
		return b.String() + guestDiag()
	}
	ready := func(p corev1.Pod) bool {
		if p.Status.Phase != corev1.PodRunning {
			return false
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady {
				return cond.Status == corev1.ConditionTrue
			}
		}
		return false
	}

	// Helm 3 runs first: its Job builds the image; Helm 4's finds it in the registry.
	waitForBuild(t, c, v, kernel, "1.0.0", helm == 3, nil, podDiag)
	var loader corev1.Pod
	waitFor(t, 6*time.Minute, "the loader pod on "+nodeName+" to be Running and Ready", func() (bool, error) {
		ps, err := podsOnNode("loader")
		if err != nil || len(ps) != 1 {
			return false, err
		}
		loader = ps[0]
		return ready(ps[0]), nil
	}, podDiag)
	checkPulled(t, hostRegistry, loader, kernel, "1.0.0")
	mods := modules(t, v)
	for _, m := range []string{"kmm_a", "kmm_b"} {
		if _, ok := mods[m]; !ok {
			t.Fatalf("%s is not in the guest's /proc/modules:\n%v", m, mods)
		}
	}
	if !strings.Contains(mods["kmm_b"], "kmm_a") {
		t.Errorf("/proc/modules: kmm_b is not used by kmm_a: %s", mods["kmm_b"])
	}
	params := v.mustRun(t, "cat /sys/module/kmm_a/parameters/answer /sys/module/kmm_a/parameters/greeting /sys/module/kmm_a/version")
	if params != "42\nhi\n1.0.0\n" {
		t.Errorf("kmm_a's answer, greeting and version in the guest's /sys/module: %q, want 42, hi, 1.0.0", params)
	}
	t.Logf("guest /proc/modules: %s | %s", mods["kmm_a"], mods["kmm_b"])
	t.Logf("guest kernel log of the modules:\n%s", v.mustRun(t, "dmesg | grep -i -e kmm -e firmware | tail -n 20"))

	if helm == 3 {
		restartLoader(t, c, v, podsOnNode, ready, podDiag)
	}

	waitFor(t, 4*time.Minute, "the device plugin pod on "+nodeName+" to be Running and "+resourceName+" in the node's allocatable",
		devicePluginServing(ctx, c, podsOnNode, ready, false), podDiag)

	work := &corev1.Pod{
		// app=kmm-work: the upgrade policy's drain.podSelector, so the upgrade evicts it.
		ObjectMeta: metav1.ObjectMeta{Name: "workload", Namespace: moduleNamespace, Labels: map[string]string{"app": "kmm-work"}},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{"kubernetes.io/hostname": nodeName},
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "work", Image: guestRegistry + "/kmm-test/tools:1",
				Command: []string{"/bin/sh", "-c", "echo devices=$KMM_DEVICES; exec sleep 3600"},
				Resources: corev1.ResourceRequirements{
					Limits: corev1.ResourceList{resourceName: resource.MustParse("1")},
				},
			}},
		},
	}
	if _, err := c.Client.CoreV1().Pods(moduleNamespace).Create(ctx, work, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "the workload pod that requests "+resourceName+" to run on "+nodeName, func() (bool, error) {
		p, err := c.Client.CoreV1().Pods(moduleNamespace).Get(ctx, "workload", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Spec.NodeName == nodeName && p.Status.Phase == corev1.PodRunning, nil
	}, podDiag)
	upgradeModule(t, c, v, helm, kernel, hostRegistry, values, post, ready, podsOnNode, podDiag)

	out, stderr, err = c.Helm(ctx, helm, "uninstall", release, "-n", releaseNS, "--wait", "--timeout", "5m")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	waitFor(t, 3*time.Minute, "kmm_a and kmm_b to leave the guest's /proc/modules after helm uninstall", func() (bool, error) {
		m := modules(t, v)
		_, a := m["kmm_a"]
		_, b := m["kmm_b"]
		return !a && !b, nil
	}, podDiag)
	waitFor(t, 3*time.Minute, "every pod of "+moduleNamespace+" to go", func() (bool, error) {
		pl, err := c.Client.CoreV1().Pods(moduleNamespace).List(ctx, metav1.ListOptions{})
		return err == nil && len(pl.Items) == 0, err
	}, podDiag)
}

// upgradeModule upgrades the release to module version 2.0.0 (values with every 1.0.0 replaced);
// the chart's upgrade controller (its Deployment, kmm-upgrade from the kmm-render image, on the
// real node, restarted by its new configuration, holding its Lease) must evict the workload that uses the module's resource (the policy's drain), delete
// the 1.0.0 loader on the real node (which unloads kmm_a and kmm_b), the new loader must load
// 2.0.0, and the device plugin must come back with its resource.
func upgradeModule(t *testing.T, c *localcluster.Cluster, v *vm, helm int, kernel, hostRegistry string, values string, post []string,
	ready func(corev1.Pod) bool, podsOnNode func(string) ([]corev1.Pod, error), podDiag func() string) {
	t.Helper()
	ctx := context.Background()
	b, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v2 := filepath.Join(dir, "values-2.0.0.yaml")
	if err := os.WriteFile(v2, []byte(strings.ReplaceAll(string(b), "1.0.0", "2.0.0")), 0o644); err != nil {
		t.Fatal(err)
	}
	old, err := podsOnNode("loader")
	if err != nil || len(old) != 1 {
		t.Fatalf("the 1.0.0 loader on %s: %v %v", nodeName, old, err)
	}
	ctrl := upgradeController(t, c, v, podDiag)
	t.Logf("the upgrade controller %s runs on %s and holds its Lease", ctrl, nodeName)
	args := append([]string{"upgrade", release, filepath.Join(repoRoot, "charts", "kmm"), "-n", releaseNS, "-f", v2}, post...)
	if out, stderr, err := c.Helm(ctx, helm, args...); err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	// The chart's controller (the same pod: the upgrade changes no configuration of it) does
	// the upgrade below, still on the real node and holding its Lease.
	ctrl = upgradeController(t, c, v, podDiag)
	// While the 2.0.0 image builds, the controller leaves the node alone: 1.0.0 stays loaded,
	// the node schedulable, the workload running. (The node is read before the Job: a cordon
	// seen while the Job still runs was made before the build was done.)
	waitForBuild(t, c, v, kernel, "2.0.0", helm == 3, func() {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err == nil && n.Spec.Unschedulable {
			jobs, _ := buildJobs(ctx, c)
			if j, ok := jobs[moduleImage(kernel, "2.0.0")]; ok {
				if upgrade.JobState(j) != upgrade.BuildComplete {
					t.Fatalf("the upgrade controller cordoned %s while the 2.0.0 image was still being built (Job %s)\n%s", nodeName, j.Name, podDiag())
				}
			}
		}
	}, podDiag)
	waitFor(t, 3*time.Minute, "the upgrade controller to evict the workload (app=kmm-work) from "+nodeName, func() (bool, error) {
		_, err := c.Client.CoreV1().Pods(moduleNamespace).Get(ctx, "workload", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}, podDiag)
	waitFor(t, 6*time.Minute, "the upgrade controller to replace the loader on "+nodeName+" and the new one to load kmm_a 2.0.0", func() (bool, error) {
		ps, err := podsOnNode("loader")
		if err != nil || len(ps) != 1 || ps[0].Name == old[0].Name || !ready(ps[0]) {
			return false, err
		}
		out, rc, err := v.run(ctx, "cat /sys/module/kmm_a/version")
		return err == nil && rc == 0 && out == "2.0.0\n", err
	}, podDiag)
	mods := modules(t, v)
	if _, ok := mods["kmm_b"]; !ok {
		t.Errorf("kmm_b is not loaded after the upgrade: %v", mods)
	}
	if ps, err := podsOnNode("loader"); err == nil && len(ps) == 1 {
		checkPulled(t, hostRegistry, ps[0], kernel, "2.0.0")
	}
	params := v.mustRun(t, "cat /sys/module/kmm_a/parameters/answer /sys/module/kmm_a/parameters/greeting")
	if params != "42\nhi\n" {
		t.Errorf("kmm_a 2.0.0's parameters: %q, want 42 and hi", params)
	}
	waitFor(t, 4*time.Minute, "the device plugin back on "+nodeName+" with "+resourceName+" allocatable, and the node uncordoned, after the upgrade",
		devicePluginServing(ctx, c, podsOnNode, ready, true), podDiag)
	if again := upgradeController(t, c, v, podDiag); again != ctrl {
		t.Logf("the upgrade controller's pod is now %s (was %s)", again, ctrl)
	}
	t.Logf("upgraded to kmm_a 2.0.0 on %s by %s: %s", nodeName, ctrl, mods["kmm_a"])
}

// restartLoader kills the loader container's load.sh in the guest (SIGKILL: no unload, as an OOM
// kill would) and checks that the kubelet restarts the container, which finds its modules loaded,
// verifies them and is Ready again, with kmm_a and kmm_b still in the kernel.
// devicePluginServing is a waitFor condition: one Ready device plugin pod on the real node and
// its resource, 2 of it, in the node's allocatable; with uncordoned, the node schedulable too.
func devicePluginServing(ctx context.Context, c *localcluster.Cluster, podsOnNode func(string) ([]corev1.Pod, error),
	ready func(corev1.Pod) bool, uncordoned bool) func() (bool, error) {
	return func() (bool, error) {
		ps, err := podsOnNode("device-plugin")
		if err != nil || len(ps) != 1 || !ready(ps[0]) {
			return false, err
		}
		n, err := c.Client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		q, ok := n.Status.Allocatable[resourceName]
		return ok && q.Value() == 2 && (!uncordoned || !n.Spec.Unschedulable), nil
	}
}

func restartLoader(t *testing.T, c *localcluster.Cluster, v *vm, podsOnNode func(string) ([]corev1.Pod, error),
	ready func(corev1.Pod) bool, podDiag func() string) {
	t.Helper()
	ps, err := podsOnNode("loader")
	if err != nil || len(ps) != 1 {
		t.Fatalf("the loader on %s: %v %v", nodeName, ps, err)
	}
	before := int32(0)
	for _, cs := range ps[0].Status.ContainerStatuses {
		before += cs.RestartCount
	}
	// The container's main process, "/bin/sh /kmm/scripts/load.sh" (anchored: not this sh -c).
	v.mustRun(t, "kill -KILL $(pgrep -f '^/bin/sh /kmm/scripts/load.sh')")
	waitFor(t, 3*time.Minute, "the kubelet to restart the killed loader container and the pod to be Ready again", func() (bool, error) {
		ps, err := podsOnNode("loader")
		if err != nil || len(ps) != 1 {
			return false, err
		}
		n := int32(0)
		for _, cs := range ps[0].Status.ContainerStatuses {
			n += cs.RestartCount
		}
		return n > before && ready(ps[0]), nil
	}, podDiag)
	mods := modules(t, v)
	for _, m := range []string{"kmm_a", "kmm_b"} {
		if _, ok := mods[m]; !ok {
			t.Fatalf("%s left the kernel when its loader container was killed and restarted: %v", m, mods)
		}
	}
}

// upgradeController waits for the chart's upgrade controller: one pod of its Deployment Running
// and Ready on the real node (not a kwok node: there its container would only be
// pretended), and holding the controller's Lease (the chart's ConfigMap's name, in the release's
// namespace), which it can only take through the API server's kubernetes Service with its
// ServiceAccount's token. It returns the pod's name.
func upgradeController(t *testing.T, c *localcluster.Cluster, v *vm, podDiag func() string) string {
	t.Helper()
	ctx := context.Background()
	sel := "app.kubernetes.io/component=upgrade"
	cms, err := c.Client.CoreV1().ConfigMaps(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil || len(cms.Items) != 1 {
		t.Fatalf("the upgrade controller's ConfigMap in %s: %v (%v)", releaseNS, err, cms)
	}
	lease := cms.Items[0].Name
	var pod, holder string
	diag := func() string {
		pl, _ := c.Client.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
		var b strings.Builder
		for _, p := range pl.Items {
			fmt.Fprintf(&b, "upgrade pod %s on %s: %s %v\n", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.ContainerStatuses)
		}
		fmt.Fprintf(&b, "Lease %s/%s held by %q\n", releaseNS, lease, holder)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, _, _ := v.run(cctx, "tail -n 20 /var/log/pods/"+releaseNS+"_*upgrade*/*/*.log; tail -n 5 /var/log/kubernetes-service.log; grep kmm-upgrade /var/log/kubelet.log | tail -n 10")
		return b.String() + "kmm-upgrade's log in the guest:\n" + out + podDiag()
	}
	waitFor(t, 5*time.Minute, "the upgrade controller's pod Running on "+nodeName+" and holding the Lease "+releaseNS+"/"+lease, func() (bool, error) {
		pl, err := c.Client.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err
		}
		pod = ""
		for _, p := range pl.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			if p.Spec.NodeName != nodeName {
				return false, fmt.Errorf("the upgrade controller's pod %s is on %s, not %s", p.Name, p.Spec.NodeName, nodeName)
			}
			for _, cs := range p.Status.ContainerStatuses {
				if cs.RestartCount >= 3 {
					t.Fatalf("the upgrade controller's container %s/%s restarted %d times\n%s", p.Name, cs.Name, cs.RestartCount, diag())
				}
			}
			if p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready {
				pod = p.Name
			}
		}
		if pod == "" {
			return false, nil
		}
		l, err := c.Client.CoordinationV1().Leases(releaseNS).Get(ctx, lease, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		holder = ""
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		return holder == pod, nil
	}, diag)
	return pod
}
