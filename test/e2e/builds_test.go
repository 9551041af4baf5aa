package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/render"
)

// The expectations here come from the values as the user wrote them (render.Module is the
// decoded module list) and the nodes: which kernels a module builds for is whether the kernel
// mapping that matches it, or the container, has a build or a sign section.

// buildKernels are the kernels of a module's placement whose mapping builds or signs.
func buildKernels(m *render.Module, want map[string]string) []string {
	c := m.Container()
	var out []string
	for _, k := range kernelsOf(want) {
		km := c.KernelMappings[m.Mappings.Match(k)]
		if c.Build != nil || c.Sign != nil || km.Build != nil || km.Sign != nil {
			out = append(out, k)
		}
	}
	return out
}

// nodeStrategy: the module says `builder: {strategy: node}` (the chart's default is registry).
func nodeStrategy(m *render.Module) bool {
	return m.Builder != nil && m.Builder.Strategy == "node"
}

// jobsOf lists a module's build Jobs (not being deleted) by name.
func jobsOf(ctx context.Context, m *render.Module) (map[string]batchv1.Job, error) {
	l, err := kc.Client.BatchV1().Jobs(m.Namespace).List(ctx, metav1.ListOptions{LabelSelector: contract.LabelModuleName + "=" + m.Name})
	if err != nil {
		return nil, err
	}
	out := map[string]batchv1.Job{}
	for _, j := range l.Items {
		if j.DeletionTimestamp == nil {
			out[j.Name] = j
		}
	}
	return out, nil
}

// buildJobUIDs maps every build Job of the modules to its UID.
func buildJobUIDs(ctx context.Context, modules []*render.Module) (map[string]types.UID, error) {
	out := map[string]types.UID{}
	for _, m := range modules {
		jobs, err := jobsOf(ctx, m)
		if err != nil {
			return nil, err
		}
		for name, j := range jobs {
			out[m.Namespace+"/"+name] = j.UID
		}
	}
	return out, nil
}

func envOf(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func hasVolume(spec corev1.PodSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

// checkBuilds checks the build Jobs, the loaders' build and wait containers and the device
// plugins of the helm-managed modules against the placement want. It polls until the cluster
// agrees (objects of a removed kernel are deleted in the background), and fails with what
// differs.
func checkBuilds(t *testing.T, ctx context.Context, in buildInputs, modules []*render.Module, want placement) {
	t.Helper()
	var problems []string
	err := poll(ctx, pollTimeout, func() (bool, error) {
		problems = nil
		for _, m := range modules {
			p, err := buildProblems(ctx, in, m, want[m.ID()])
			if err != nil {
				return false, err
			}
			problems = append(problems, p...)
		}
		return len(problems) == 0, nil
	})
	if err != nil {
		t.Fatalf("builds and device plugins do not match the values (%v):\n  %s", err, strings.Join(problems, "\n  "))
	}
}

func buildProblems(ctx context.Context, in buildInputs, m *render.Module, want map[string]string) ([]string, error) {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, m.ID()+": "+fmt.Sprintf(format, args...))
	}
	c := m.Container()
	built := buildKernels(m, want)
	jobs, err := jobsOf(ctx, m)
	if err != nil {
		return nil, err
	}
	jobByKernel := map[string]batchv1.Job{}
	for _, j := range jobs {
		k := j.Annotations[contract.AnnotationKernel]
		if _, dup := jobByKernel[k]; dup {
			bad("two build Jobs for kernel %s", k)
		}
		jobByKernel[k] = j
	}
	wantJobs := append([]string{}, built...)
	for _, k := range in.extra {
		// extraKernels: built ahead of time when a mapping that builds matches.
		if i := m.Mappings.Match(k); i >= 0 && !slices.Contains(wantJobs, k) &&
			(c.Build != nil || c.Sign != nil || c.KernelMappings[i].Build != nil || c.KernelMappings[i].Sign != nil) {
			wantJobs = append(wantJobs, k)
		}
	}
	sort.Strings(wantJobs)
	if nodeStrategy(m) {
		wantJobs = nil
	}
	if got := slices.Sorted(maps.Keys(jobByKernel)); !slices.Equal(got, wantJobs) {
		bad("build Jobs for kernels %v, want %v", got, wantJobs)
	}
	for k, j := range jobByKernel {
		spec := j.Spec.Template.Spec
		wantSel := m.Selector
		if c.Build != nil && len(c.Build.Selector) > 0 {
			wantSel = c.Build.Selector
		}
		if !maps.Equal(spec.NodeSelector, wantSel) {
			bad("Job %s runs on %v, want %v", j.Name, spec.NodeSelector, wantSel)
		}
		b := findContainer(spec.Containers, contract.ContainerBuild)
		if b == nil {
			bad("Job %s has no %s container", j.Name, contract.ContainerBuild)
			continue
		}
		env := envOf(*b)
		if img := imageFor(m, k); env["KMM_IMAGE"] != img {
			bad("Job %s pushes %q, want %q", j.Name, env["KMM_IMAGE"], img)
		}
		for _, a := range []string{"KERNEL_VERSION=" + strings.TrimSuffix(k, "+"), "MOD_NAME=" + m.Name, "MOD_NAMESPACE=" + m.Namespace} {
			if !slices.Contains(strings.Split(env["KMM_BUILD_ARGS"], "\n"), a) {
				bad("Job %s: build args %q lack %s", j.Name, env["KMM_BUILD_ARGS"], a)
			}
		}
		problems = append(problems, in.osDefaultProblems(m, "Job "+j.Name, k, env)...)
		signs := c.Sign != nil
		if (env["KMM_SIGN"] == "true") != signs || hasVolume(spec, "kmm-sign-key") != signs {
			bad("Job %s: signing wired = %v (KMM_SIGN=%q), want %v", j.Name, hasVolume(spec, "kmm-sign-key"), env["KMM_SIGN"], signs)
		}
	}

	// Loaders: registry builds wait for their Job's image; node builds build on the node and
	// name no registry.
	dss, err := kc.Client.AppsV1().DaemonSets(m.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: contract.LabelModuleName + "=" + m.Name + "," + contract.LabelRole + "=" + contract.RoleModuleLoader})
	if err != nil {
		return nil, err
	}
	for _, ds := range dss.Items {
		if ds.DeletionTimestamp != nil {
			continue
		}
		k := ds.Annotations[contract.AnnotationKernel]
		spec := ds.Spec.Template.Spec
		wait := findContainer(spec.InitContainers, contract.ContainerWaitImage)
		build := findContainer(spec.InitContainers, contract.ContainerBuild)
		sign := findContainer(spec.InitContainers, contract.ContainerSign)
		isBuilt := slices.Contains(built, k)
		switch {
		case !isBuilt:
			if len(spec.InitContainers) > 0 {
				bad("loader %s loads a prebuilt image but has init containers", ds.Name)
			}
		case nodeStrategy(m):
			if build == nil || wait != nil {
				bad("loader %s builds on the node: want %s and no %s", ds.Name, contract.ContainerBuild, contract.ContainerWaitImage)
				continue
			}
			if (sign != nil) != (c.Sign != nil) {
				bad("loader %s: signing container present = %v, want %v", ds.Name, sign != nil, c.Sign != nil)
			}
			for _, ctr := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
				env := envOf(ctr)
				if env["KMM_IMAGE"] != "" || env["KMM_OUTPUT"] == "registry" {
					bad("loader %s (node build) refers to a registry: %s has KMM_IMAGE=%q KMM_OUTPUT=%q", ds.Name, ctr.Name, env["KMM_IMAGE"], env["KMM_OUTPUT"])
				}
			}
			if env := envOf(*build); env["KMM_OUTPUT"] != "local" {
				bad("loader %s: the node build writes %q, want local", ds.Name, env["KMM_OUTPUT"])
			}
			problems = append(problems, in.osDefaultProblems(m, "loader "+ds.Name, k, envOf(*build))...)
		default:
			if wait == nil || build != nil {
				bad("loader %s: want only %s", ds.Name, contract.ContainerWaitImage)
				continue
			}
			job, ok := jobByKernel[k]
			if env := envOf(*wait); ok && env["KMM_BUILD_JOB"] != m.Namespace+"/"+job.Name {
				bad("loader %s waits for Job %q, want %s/%s", ds.Name, env["KMM_BUILD_JOB"], m.Namespace, job.Name)
			}
		}
	}

	// Device plugin: one DaemonSet on the nodes of the kernels that have a loader.
	dp, err := kc.Client.AppsV1().DaemonSets(m.Namespace).Get(ctx, m.Name+"-device-plugin", metav1.GetOptions{})
	switch {
	case err != nil && m.DevicePlugin != nil && len(want) > 0:
		bad("no device plugin DaemonSet: %v", err)
	case err == nil && (m.DevicePlugin == nil || len(want) == 0):
		bad("device plugin DaemonSet %s, want none", dp.Name)
	case err == nil:
		problems = append(problems, devicePluginProblems(m, dp, want)...)
	}
	return problems, nil
}

func devicePluginProblems(m *render.Module, dp *appsv1.DaemonSet, want map[string]string) []string {
	var out []string
	var values []string
	for _, k := range kernelsOf(want) {
		v, _ := render.KernelLabelValue(k)
		values = append(values, v)
	}
	sort.Strings(values)
	spec := dp.Spec.Template.Spec
	var got []string
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, e := range term.MatchExpressions {
				if e.Key == render.DefaultKernelLabel && e.Operator == corev1.NodeSelectorOpIn {
					got = append(got, e.Values...)
				}
			}
		}
	}
	if !slices.Equal(got, values) {
		out = append(out, fmt.Sprintf("%s: device plugin on kernels %v, want %v", m.ID(), got, values))
	}
	w := findContainer(spec.InitContainers, "kmm-wait-module")
	if w == nil || envOf(*w)["KMM_MODULE"] != m.Container().Modprobe.ModuleName {
		out = append(out, fmt.Sprintf("%s: the device plugin does not wait for module %s", m.ID(), m.Container().Modprobe.ModuleName))
	}
	if dpc := findContainer(spec.Containers, "device-plugin"); dpc == nil || dpc.Image != m.DevicePlugin.Container.Image {
		out = append(out, fmt.Sprintf("%s: no device-plugin container running %s", m.ID(), m.DevicePlugin.Container.Image))
	}
	return out
}

// imageFor is the image the values name for a kernel, with the one variable the examples use.
func imageFor(m *render.Module, kernel string) string {
	c := m.Container()
	img := c.KernelMappings[m.Mappings.Match(kernel)].ContainerImage
	if img == "" {
		img = c.ContainerImage
	}
	return strings.ReplaceAll(img, "${KERNEL_FULL_VERSION}", strings.TrimSuffix(kernel, "+"))
}

// TestBuildInputChange builds one module for three kernels, then changes a build arg of the
// kernel mapping of one of them: `helm upgrade` makes exactly one new Job, for that kernel, and
// keeps the other two; an unchanged upgrade keeps all three.
func TestBuildInputChange(t *testing.T) {
	for _, version := range []int{3, 4} {
		t.Run(fmt.Sprintf("helm%d", version), func(t *testing.T) {
			ctx := testContext(t, 3*time.Minute)
			ex := loadExample(t, "eks")
			useExample(t, ctx, ex)
			t.Cleanup(func() { cleanupRelease(t, context.Background()) })
			values := func(arg string) string {
				return editValues(t, ex.values, func(v map[string]any) {
					var kept []any
					for _, mi := range v["modules"].([]any) {
						m := mi.(map[string]any)
						if m["name"] != "kmm-kmod" {
							continue
						}
						m["selector"] = map[string]any{"kubernetes.io/os": "linux"}
						c := m["moduleLoader"].(map[string]any)["container"].(map[string]any)
						c["kernelMappings"] = []any{
							map[string]any{"regexp": `^5\.4\.\d+-\d+\.\d+\.amzn2\.x86_64$`},
							map[string]any{"regexp": `^6\.1\.\d+-\d+\.\d+\.amzn2023\.x86_64$`, "build": map[string]any{
								"dockerfileConfigMap": map[string]any{"name": "kmm-kmod"},
								"buildArgs":           []any{map[string]any{"name": "KMOD_VERSION", "value": arg}},
							}},
						}
						kept = append(kept, m)
					}
					v["modules"] = kept
					v["extraKernels"] = []any{} // one Job per kernel a node runs
					v["controller"] = map[string]any{"enabled": false}
					v["crds"] = map[string]any{"enabled": false}
				})
			}
			install := func(verb, file string) {
				args := append([]string{verb, release, chartDir, "-n", releaseNamespace, "-f", file, "--wait", "--timeout", "2m"}, helmArgs(version)...)
				if verb == "install" {
					args = append(args, "--create-namespace")
				}
				helm(t, ctx, version, args...)
			}
			v1 := values("1")
			install("install", v1)
			ex.values = v1
			ex.loadModules(t)
			modules := ex.helmModules()
			if len(modules) != 1 {
				t.Fatalf("want the one module kmm-kmod, have %d", len(modules))
			}
			want := expected(modules, ex.nodes)
			checkBuilds(t, ctx, ex.buildInputs(t, ex.nodes), modules, want)
			before, err := jobsOf(ctx, modules[0])
			if err != nil {
				t.Fatal(err)
			}
			byKernel := func(jobs map[string]batchv1.Job) map[string]types.UID {
				out := map[string]types.UID{}
				for _, j := range jobs {
					out[j.Annotations[contract.AnnotationKernel]] = j.UID
				}
				return out
			}
			b := byKernel(before)
			if len(b) != 3 {
				t.Fatalf("want build Jobs for 3 kernels, have %v", b)
			}

			// Unchanged: the same three Jobs.
			install("upgrade", v1)
			same, err := jobsOf(ctx, modules[0])
			if err != nil {
				t.Fatal(err)
			}
			if got := byKernel(same); !maps.Equal(got, b) {
				t.Fatalf("an unchanged upgrade changed the build Jobs:\nbefore %v\nafter  %v", b, got)
			}

			// The AL2023 mapping's build arg changes: one new Job, for its kernel only.
			install("upgrade", values("2"))
			const changed = "6.1.112-122.189.amzn2023.x86_64"
			var after map[string]types.UID
			if err := poll(ctx, pollTimeout, func() (bool, error) {
				jobs, err := jobsOf(ctx, modules[0])
				after = byKernel(jobs)
				return err == nil && len(jobs) == 3, err
			}); err != nil {
				t.Fatalf("after the change the Jobs are %v (%v)", after, err)
			}
			for k, uid := range b {
				if k == changed && after[k] == uid {
					t.Errorf("kernel %s: its build input changed but its Job was kept", k)
				}
				if k != changed && after[k] != uid {
					t.Errorf("kernel %s: its build inputs did not change but it got a new Job", k)
				}
			}
		})
	}
}

// buildInputs is what decides a module's builds besides its placement: the nodes (their OS
// picks the build defaults), the values' extraKernels and the chart's build.osDefaults.
type buildInputs struct {
	nodes      []nodes.Node
	extra      []string
	osDefaults map[string]struct{ BaseImage, Headers, Kmod string }
}

// buildInputs reads the example's extraKernels and the chart's build.osDefaults (which the
// examples do not override) from the values files, for the nodes ns.
func (ex *example) buildInputs(t *testing.T, ns []nodes.Node) buildInputs {
	t.Helper()
	in := buildInputs{nodes: ns}
	var values struct {
		ExtraKernels []any `json:"extraKernels"`
	}
	readYAML(t, ex.values, &values)
	for _, e := range values.ExtraKernels {
		switch e := e.(type) {
		case string:
			in.extra = append(in.extra, e)
		case map[string]any:
			in.extra = append(in.extra, e["kernel"].(string))
		}
	}
	var chart struct {
		Build struct {
			OSDefaults map[string]struct{ BaseImage, Headers, Kmod string } `json:"osDefaults"`
		} `json:"build"`
	}
	readYAML(t, filepath.Join(chartDir, "values.yaml"), &chart)
	in.osDefaults = chart.Build.OSDefaults
	return in
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// osFamilies are the OS images the examples' nodes report, by prefix, and the family of build
// defaults each one gets.
var osFamilies = []struct{ prefix, family string }{
	{"Amazon Linux 2023", "al2023"},
	{"Amazon Linux 2", "al2"},
	{"Ubuntu", "ubuntu"},
	{"Container-Optimized OS", "cos"},
}

// osDefaultProblems checks that a build of kernel k (env: its build container's environment)
// got the build defaults of the OS of the nodes that run k: KMM_OS, the release the base image
// or dnf needs, the base image and both recipes.
func (in buildInputs) osDefaultProblems(m *render.Module, what, k string, env map[string]string) []string {
	osImage := ""
	for _, n := range in.nodes {
		if n.Kernel == k {
			osImage = n.OSImage
			break
		}
	}
	if osImage == "" && strings.Contains(k, ".amzn2023.") { // an extra kernel
		osImage = "Amazon Linux 2023"
	}
	family := ""
	for _, f := range osFamilies {
		if strings.HasPrefix(osImage, f.prefix) {
			family = f.family
			break
		}
	}
	if family == "" {
		return []string{fmt.Sprintf("%s: %s: kernel %s: the test knows no OS family for %q", m.ID(), what, k, osImage)}
	}
	release := ""
	switch fields := strings.Fields(osImage); {
	case family == "al2023" && len(fields) > 2 && strings.HasPrefix(fields[2], "2023."):
		release = fields[2] // Amazon Linux 2023.6.20241010; an extra kernel's bare 2023 names none
	case family == "ubuntu" && len(fields) > 1:
		release = strings.Join(strings.SplitN(fields[1], ".", 3)[:2], ".") // Ubuntu 22.04.2 LTS
	}
	d := in.osDefaults[family]
	args := strings.Split(env["KMM_BUILD_ARGS"], "\n")
	want := []string{"KMM_OS=" + family, "KMM_BASE_IMAGE=" + strings.ReplaceAll(d.BaseImage, "${KMM_OS_RELEASE}", release)}
	if release != "" {
		want = append(want, "KMM_OS_RELEASE="+release)
	}
	var out []string
	for _, w := range want {
		if !slices.Contains(args, w) {
			out = append(out, fmt.Sprintf("%s: %s: kernel %s: build args %q lack %s", m.ID(), what, k, env["KMM_BUILD_ARGS"], w))
		}
	}
	if env["KMM_OS_HEADERS"] != d.Headers || env["KMM_OS_KMOD"] != d.Kmod || d.Headers == "" {
		out = append(out, fmt.Sprintf("%s: %s: kernel %s: the recipes are not build.osDefaults.%s's", m.ID(), what, k, family))
	}
	return out
}
