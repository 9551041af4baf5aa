package report

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/module"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/postrender"
	"kmm.dev/kmm/pkg/render"
)

var update = flag.Bool("update", false, "rewrite golden files")

var columnGap = regexp.MustCompile(`\s{2,}`)

// table splits KernelTable's output into rows of cells. Cells hold single spaces at most
// ("none (no loader)"), tabwriter pads with at least two.
func table(t *testing.T, out string) (header []string, rows [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.NotEmpty(t, lines)
	for i, l := range lines {
		cells := columnGap.Split(strings.TrimRight(l, " "), -1)
		if i == 0 {
			header = cells
			continue
		}
		require.Len(t, cells, len(header), "row %q", l)
		rows = append(rows, cells)
	}
	return header, rows
}

// loadExample renders the chart with an example's values, as `kmm-render nodes` does, and plans
// its modules against the example's nodes.
func loadExample(t *testing.T, name string) ([]nodes.KernelGroup, []*render.Plan) {
	t.Helper()
	dir := filepath.Join("..", "..", "examples", name)
	rendered, err := chartrender.Render(context.Background(), chartrender.Options{ChartDir: "../../charts/kmm", ValueFiles: []string{filepath.Join(dir, "values.yaml")}})
	require.NoError(t, err)
	res, err := postrender.New(postrender.Options{Nodes: postrender.FileNodes(filepath.Join(dir, "nodes.yaml"))}).Plan(context.Background(), []byte(rendered.Manifests))
	require.NoError(t, err)
	plans := make([]*render.Plan, len(res.Plans))
	for i := range res.Plans {
		plans[i] = res.Plans[i].Plan
	}
	return res.Kernels, plans
}

func TestKernelTableEKS(t *testing.T) {
	groups, plans := loadExample(t, "eks")
	var b bytes.Buffer
	require.NoError(t, KernelTable(&b, groups, plans, render.DefaultKernelLabel))
	header, rows := table(t, b.String())
	assert.Equal(t, []string{"KERNEL", "NODES", "PLATFORM", "OS", "LABEL VALUE", "UNLABELLED", "MODULE", "SELECTED", "MAPPING", "IMAGE"}, header)

	const ecr = "123456789012.dkr.ecr.us-west-2.amazonaws.com/kmm/"
	want := [][]string{
		{"5.4.190-107.353.amzn2.x86_64", "2", "eks", "al2", "5.4.190-107.353.amzn2.x86_64", "-", "kmm-demo/kmm-ci-a", "2",
			`#1 regexp ^5\.4\.\d+-\d+\.\d+\.amzn2\.x86_64$`, ecr + "kmm-ci-a:5.4.190-107.353.amzn2.x86_64"},
		// The GPU node runs this kernel too, but kmm-ci-a does not tolerate its taint: 3 of 4.
		{"5.4.196-108.356.amzn2.x86_64", "4", "eks", "al2", "5.4.196-108.356.amzn2.x86_64", "-", "kmm-demo/kmm-ci-a", "3",
			"#0 literal 5.4.196-108.356.amzn2.x86_64", ecr + "kmm-ci-a:5.4.196-108.356.amzn2"},
		{"5.4.196-108.356.amzn2.x86_64", "4", "eks", "al2", "5.4.196-108.356.amzn2.x86_64", "-", "kmm-gpu/gdrdrv", "1",
			`#0 regexp ^5\.4\.\d+-\d+\.\d+\.amzn2\.x86_64$`, ecr + "gdrdrv:5.4.196-108.356.amzn2.x86_64"},
		// Built on each node of al2-ng (node strategy): the image name only labels the build.
		{"5.4.196-108.356.amzn2.x86_64", "4", "eks", "al2", "5.4.196-108.356.amzn2.x86_64", "-", "kmm-demo/kmm-kmod-node", "3",
			`#0 regexp ^5\.4\.\d+-\d+\.\d+\.amzn2\.x86_64$`, "(built on each node)"},
		{"6.1.112-122.189.amzn2023.aarch64", "1", "eks", "al2023", "6.1.112-122.189.amzn2023.aarch64", "-", "kmm-demo/kmm-ci-a", "1",
			"none (no loader)", "-"},
		{"6.1.112-122.189.amzn2023.x86_64", "2", "eks", "al2023", "6.1.112-122.189.amzn2023.x86_64", "-", "kmm-demo/kmm-ci-a", "2",
			`#2 regexp ^6\.1\.\d+-\d+\.\d+\.amzn2023\.x86_64$`, ecr + "kmm-ci-a:6.1.112-122.189.amzn2023.x86_64"},
		// kmm-ci-b is handed to the KMM controller (via: operator); it maps the same way.
		{"6.1.112-122.189.amzn2023.x86_64", "2", "eks", "al2023", "6.1.112-122.189.amzn2023.x86_64", "-", "kmm-demo/kmm-ci-b", "2",
			`#0 regexp ^6\.1\.\d+-\d+\.\d+\.amzn2023\.x86_64$`, ecr + "kmm-ci-b:6.1.112-122.189.amzn2023.x86_64"},
		// Built by a Job per kernel (registry strategy) and pushed to ECR.
		{"6.1.112-122.189.amzn2023.x86_64", "2", "eks", "al2023", "6.1.112-122.189.amzn2023.x86_64", "-", "kmm-demo/kmm-kmod", "2",
			`#0 regexp ^6\.1\.\d+-\d+\.\d+\.amzn2023\.x86_64$`, ecr + "kmm-kmod:1.0.0-6.1.112-122.189.amzn2023.x86_64"},
		// extraKernels: kmm-kmod's images are built before any node runs these kernels
		// (kmm-ci-a builds nothing, so the extra kernels give it nothing).
		{"6.1.115-126.197.amzn2023.x86_64", "0 (extra)", "eks", "al2023", "6.1.115-126.197.amzn2023.x86_64", "-", "kmm-demo/kmm-kmod", "0",
			`#0 regexp ^6\.1\.\d+-\d+\.\d+\.amzn2023\.x86_64$`, ecr + "kmm-kmod:1.0.0-6.1.115-126.197.amzn2023.x86_64"},
		{"6.1.119-129.201.amzn2023.x86_64", "0 (extra)", "eks", "al2023", "6.1.119-129.201.amzn2023.x86_64", "-", "kmm-demo/kmm-kmod", "0",
			`#0 regexp ^6\.1\.\d+-\d+\.\d+\.amzn2023\.x86_64$`, ecr + "kmm-kmod:1.0.0-6.1.119-129.201.amzn2023.x86_64"},
	}
	require.Len(t, rows, len(want))
	for i := range want {
		t.Run(want[i][0]+"/"+want[i][6], func(t *testing.T) {
			assert.Equal(t, want[i], rows[i])
		})
	}
}

func TestKernelTableGolden(t *testing.T) {
	tests := []struct {
		example     string
		withModules bool
	}{
		{"eks", true}, {"eks", false},
		{"gke", true}, {"gke", false},
		{"ubuntu", true}, {"ubuntu", false},
	}
	for _, tt := range tests {
		name := tt.example + "-kernels"
		if tt.withModules {
			name += "-modules"
		}
		t.Run(name, func(t *testing.T) {
			groups, plans := loadExample(t, tt.example)
			if !tt.withModules {
				plans = nil
			}
			var b bytes.Buffer
			require.NoError(t, KernelTable(&b, groups, plans, render.DefaultKernelLabel))
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(golden, b.Bytes(), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./pkg/report -update to create it")
			assert.Equal(t, string(want), b.String())
		})
	}
}

func mkNode(name, kernel, osImage, providerID string, labels ...string) nodes.Node {
	n := nodes.Node{Name: name, Kernel: kernel, OSImage: osImage, ProviderID: providerID, Labels: map[string]string{}}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		n.Labels[k] = v
	}
	return n
}

// loaderModule compiles a helm-managed module "ns/<name>" with one kernel mapping.
func loaderModule(t *testing.T, name string, selector map[string]string, image string, mapping kmmv1beta1.KernelMapping) *render.Module {
	t.Helper()
	m := &module.Module{Name: name, Namespace: "ns", ModuleSpec: kmmv1beta1.ModuleSpec{Selector: selector,
		ModuleLoader: &kmmv1beta1.ModuleLoaderSpec{Container: kmmv1beta1.ModuleLoaderContainerSpec{
			ContainerImage: image, Modprobe: kmmv1beta1.ModprobeSpec{ModuleName: name}, KernelMappings: []kmmv1beta1.KernelMapping{mapping}}}}}
	require.Empty(t, m.Validate(module.ValuesPaths(0)))
	rm, err := render.NewModule(m)
	require.NoError(t, err)
	return rm
}

func TestKernelTableRows(t *testing.T) {
	const kl = render.DefaultKernelLabel
	linux := map[string]string{"kubernetes.io/os": "linux"}
	tests := []struct {
		name    string
		nodes   []nodes.Node
		modules func(t *testing.T) []*render.Module
		label   string
		extra   []render.ExtraKernel
		want    [][]string
		wantErr string
	}{
		{
			name: "kernel label: carried, unlabelled, none possible",
			nodes: []nodes.Node{
				mkNode("a", "5.10.109+", "Container-Optimized OS from Google", "gce://p/z/a", kl+"=5.10.109"),
				mkNode("b", "6.1.100+", "Container-Optimized OS from Google", "gce://p/z/b"),
				mkNode("c", strings.Repeat("9", 70), "", ""),
			},
			label: kl,
			want: [][]string{
				{"5.10.109+", "1", "gke", "cos", "5.10.109", "-"},
				{"6.1.100+", "1", "gke", "cos", "6.1.100 (unlabelled)", "1: b"},
				{strings.Repeat("9", 70), "1", "generic", "unknown", "(none possible)", "1: c"},
			},
		},
		{
			name: "several platforms and OS families on one kernel, sorted",
			nodes: []nodes.Node{
				mkNode("x", "5.15.0-1034-gke", "Ubuntu 22.04.2 LTS", "gce://p/z/x"),
				mkNode("y", "5.15.0-1034-gke", "Ubuntu 22.04.2 LTS", ""),
				mkNode("z", "5.15.0-1034-gke", "Amazon Linux 2", "aws:///z/i-1"),
			},
			label: kl,
			want: [][]string{
				{"5.15.0-1034-gke", "3", "eks,gke,ubuntu", "al2,ubuntu", "5.15.0-1034-gke (unlabelled)", "3: x, y, z"},
			},
		},
		{
			name: "kernel that no module selects: dash row; unmatched kernel: none (no loader)",
			nodes: []nodes.Node{
				mkNode("w", "10.0.17763", "Windows Server 2019 Datacenter", "", "kubernetes.io/os=windows", kl+"=10.0.17763"),
				mkNode("l", "6.8.0-51-generic", "Ubuntu 24.04.1 LTS", "", "kubernetes.io/os=linux", kl+"=6.8.0-51-generic"),
			},
			modules: func(t *testing.T) []*render.Module {
				return []*render.Module{loaderModule(t, "m", linux, "r/m:${KERNEL_FULL_VERSION}", kmmv1beta1.KernelMapping{Literal: "5.15.0-105-generic"})}
			},
			label: kl,
			want: [][]string{
				{"10.0.17763", "1", "generic", "Windows Server 2019 Datacenter", "10.0.17763", "-", "-", "0", "-", "-"},
				{"6.8.0-51-generic", "1", "ubuntu", "ubuntu", "6.8.0-51-generic", "-", "ns/m", "1", "none (no loader)", "-"},
			},
		},
		{
			name: "tainted and Fargate nodes not counted as selected",
			nodes: []nodes.Node{
				mkNode("ok", "5.10.0", "Amazon Linux 2", "aws:///z/i-1", "kubernetes.io/os=linux", kl+"=5.10.0"),
				func() nodes.Node {
					n := mkNode("tainted", "5.10.0", "Amazon Linux 2", "aws:///z/i-2", "kubernetes.io/os=linux", kl+"=5.10.0")
					n.Taints = []corev1.Taint{{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}}
					return n
				}(),
				mkNode("fargate", "5.10.0", "Amazon Linux 2", "", "kubernetes.io/os=linux", "eks.amazonaws.com/compute-type=fargate"),
			},
			modules: func(t *testing.T) []*render.Module {
				return []*render.Module{loaderModule(t, "m", linux, "r/m:${KERNEL_XYZ}", kmmv1beta1.KernelMapping{Regexp: `^5\.10\.`})}
			},
			label: kl,
			want: [][]string{
				{"5.10.0", "3", "eks", "al2", "5.10.0", "1: fargate", "ns/m", "1", `#0 regexp ^5\.10\.`, "r/m:5.10.0"},
			},
		},
		{
			name: "more than three unlabelled nodes; extra kernels after the nodes' kernels",
			nodes: []nodes.Node{
				mkNode("n1", "6.1.0-28-cloud-amd64", "Debian GNU/Linux 12 (bookworm)", "", "kubernetes.io/os=linux"),
				mkNode("n2", "6.1.0-28-cloud-amd64", "Debian GNU/Linux 12 (bookworm)", "", "kubernetes.io/os=linux"),
				mkNode("n3", "6.1.0-28-cloud-amd64", "Debian GNU/Linux 12 (bookworm)", "", "kubernetes.io/os=linux"),
				mkNode("n4", "6.1.0-28-cloud-amd64", "Debian GNU/Linux 12 (bookworm)", "", "kubernetes.io/os=linux"),
				mkNode("n5", "6.1.0-28-cloud-amd64", "Debian GNU/Linux 12 (bookworm)", "", "kubernetes.io/os=linux"),
			},
			modules: func(t *testing.T) []*render.Module {
				return []*render.Module{loaderModule(t, "m", linux, "r/m:${KERNEL_FULL_VERSION}", kmmv1beta1.KernelMapping{Regexp: `^6\.1\.`})}
			},
			extra: []render.ExtraKernel{{Kernel: "6.1.0-40-cloud-amd64"}, {Kernel: "6.12.57+deb13-amd64"}},
			label: kl,
			want: [][]string{
				{"6.1.0-28-cloud-amd64", "5", "generic", "debian", "6.1.0-28-cloud-amd64", "5: n1, n2, n3, ... (+2)", "ns/m", "5", `#0 regexp ^6\.1\.`, "r/m:6.1.0-28-cloud-amd64"},
				{"6.1.0-40-cloud-amd64", "0 (extra)", "generic", "debian", "6.1.0-40-cloud-amd64", "-", "ns/m", "0", `#0 regexp ^6\.1\.`, "r/m:6.1.0-40-cloud-amd64"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var plans []*render.Plan
			if tt.modules != nil {
				for _, m := range tt.modules(t) {
					p, err := render.NewPlan(m, tt.nodes, tt.label)
					require.NoError(t, err)
					require.NoError(t, p.AddExtraKernels(tt.extra, tt.label, true))
					plans = append(plans, p)
				}
			}
			var b bytes.Buffer
			err := KernelTable(&b, nodes.ByKernel(tt.nodes), plans, tt.label)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			_, rows := table(t, b.String())
			assert.Equal(t, tt.want, rows)
		})
	}
}

func TestLoadersTable(t *testing.T) {
	ds := func(name, ns, mod, kernel string, desired int32) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID(name),
				Labels:      map[string]string{contract.LabelRole: contract.RoleModuleLoader, contract.LabelModuleName: mod, contract.LabelModuleNamespace: ns},
				Annotations: map[string]string{contract.AnnotationKernel: kernel}},
			Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: desired},
		}
	}
	pod := func(name, ns, owner, nodeName string, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
				Labels:          map[string]string{contract.LabelRole: contract.RoleModuleLoader},
				OwnerReferences: []metav1.OwnerReference{{UID: types.UID(owner)}}},
			Spec:   corev1.PodSpec{NodeName: nodeName},
			Status: corev1.PodStatus{Phase: phase},
		}
	}
	c := fake.NewClientset(
		ds("a-loader-6-8", "kmm", "a", "6.8.0-51-generic", 1),
		ds("a-loader-5-15", "kmm", "a", "5.15.0-105-generic", 2),
		pod("p1", "kmm", "a-loader-5-15", "w2", corev1.PodRunning),
		pod("p2", "kmm", "a-loader-5-15", "w1", corev1.PodPending),
		pod("p3", "kmm", "a-loader-6-8", "w3", corev1.PodRunning),
		pod("stray", "other", "a-loader-6-8", "w9", corev1.PodRunning),
	)
	rows, err := Loaders(context.Background(), c)
	require.NoError(t, err)
	require.Equal(t, []LoaderRow{
		{Module: "kmm/a", Kernel: "5.15.0-105-generic", DaemonSet: "a-loader-5-15", Nodes: []string{"w1", "w2"}, Running: 1, Desired: 2},
		{Module: "kmm/a", Kernel: "6.8.0-51-generic", DaemonSet: "a-loader-6-8", Nodes: []string{"w3"}, Running: 1, Desired: 1},
	}, rows)
	var b bytes.Buffer
	require.NoError(t, LoaderTable(&b, rows))
	assert.Equal(t, "MODULE  KERNEL              DAEMONSET      NODES  RUNNING\nkmm/a   5.15.0-105-generic  a-loader-5-15  w1,w2  1/2\nkmm/a   6.8.0-51-generic    a-loader-6-8   w3     1/1\n", b.String())
}

func TestFixLabels(t *testing.T) {
	const kl = render.DefaultKernelLabel
	ns := []nodes.Node{
		mkNode("a", "6.1.0-28-cloud-amd64", "", "", kl+"=6.1.0-28-cloud-amd64"),
		mkNode("b", "6.1.0-28-cloud-amd64", "", ""),
		mkNode("c", "5.10.109+", "", ""),
	}
	var b bytes.Buffer
	FixLabels(&b, nodes.ByKernel(ns), kl)
	assert.Equal(t, "2 node(s) lack the kernel label "+kl+", so no loader selects them. Install Node Feature Discovery, which labels every node:\n"+
		"  helm repo add nfd https://kubernetes-sigs.github.io/node-feature-discovery/charts\n"+
		"  helm install nfd nfd/node-feature-discovery --namespace node-feature-discovery --create-namespace\n"+
		"or label them by hand (a new kernel needs a new label):\n"+
		"  kubectl label node c "+kl+"=5.10.109\n"+
		"  kubectl label node b "+kl+"=6.1.0-28-cloud-amd64\n", b.String())
	b.Reset()
	FixLabels(&b, nodes.ByKernel(ns[:1]), kl)
	assert.Empty(t, b.String(), "every node labelled: nothing to fix")
}
