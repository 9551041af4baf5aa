package render

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"

	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/nodes"
)

func TestDecodeSettings(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    *Settings
		wantErr string
	}{
		{name: "empty", data: "", want: &Settings{}},
		{name: "kernel strings and objects",
			data: `{"osDefaults":{"al2023":{"baseImage":"amazonlinux:2023","headers":"dnf install -y kernel-devel","kmod":"dnf install -y kmod"}},
				"extraKernels":["6.1.0-40-cloud-amd64",{"kernel":"6.12.40-64.114.amzn2023.x86_64","osImage":"Amazon Linux 2023.8.20250707","architecture":"amd64"}],
				"extraKernelLoaders":true}`,
			want: &Settings{
				OSDefaults: map[string]OSDefaults{"al2023": {BaseImage: "amazonlinux:2023", Headers: "dnf install -y kernel-devel", Kmod: "dnf install -y kmod"}},
				ExtraKernels: []ExtraKernel{{Kernel: "6.1.0-40-cloud-amd64"},
					{Kernel: "6.12.40-64.114.amzn2023.x86_64", OSImage: "Amazon Linux 2023.8.20250707", Architecture: "amd64"}},
				ExtraKernelLoaders: true,
			}},
		{name: "unknown setting", data: `{"osDefault":{}}`, wantErr: `unknown field "osDefault"`},
		{name: "unknown extra kernel field", data: `{"extraKernels":[{"kernel":"6.1.0","os":"x"}]}`, wantErr: `unknown field "os"`},
		{name: "empty kernel", data: `{"extraKernels":[{"osImage":"Ubuntu 22.04.4 LTS"}]}`, wantErr: "extraKernels[0]: no kernel"},
		{name: "kernel twice", data: `{"extraKernels":["6.1.0-40-cloud-amd64","6.1.0-40-cloud-amd64"]}`, wantErr: "extraKernels[1]: kernel 6.1.0-40-cloud-amd64 is listed twice"},
		{name: "blank in a kernel", data: `{"extraKernels":["6.1.0 x"]}`, wantErr: `extraKernels[0]: "6.1.0 x" is not a kernel release`},
		{name: "NUL in a kernel", data: `{"extraKernels":["6.1.0\u0000"]}`, wantErr: `is not a kernel release`},
		{name: "no label value", data: `{"extraKernels":["` + strings.Repeat("9", 70) + `"]}`, wantErr: "has no valid kernel label value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSettings(tt.data)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// osSettings has defaults for Debian (the base image needs the variant) and Ubuntu (the
// release).
var osSettings = &Settings{OSDefaults: map[string]OSDefaults{
	"debian": {BaseImage: "debian:${KMM_OS_VARIANT}", Headers: "apt-get install -y linux-headers-$KERNEL_VERSION", Kmod: "apt-get install -y kmod"},
	"ubuntu": {BaseImage: "ubuntu:${KMM_OS_RELEASE}", Headers: "ubuntu headers", Kmod: "ubuntu kmod"},
}}

func osNodes() []nodes.Node {
	deb := func(n nodes.Node) nodes.Node {
		n.OSImage, n.Architecture = "Debian GNU/Linux 12 (bookworm)", "amd64"
		return n
	}
	jammy := node("jammy-1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic")
	jammy.OSImage, jammy.Architecture = "Ubuntu 22.04.4 LTS", "arm64"
	return []nodes.Node{
		deb(node("deb-1", "6.1.0-28-cloud-amd64", linux, kl+"=6.1.0-28-cloud-amd64")),
		deb(node("deb-2", "6.1.0-28-cloud-amd64", linux, kl+"=6.1.0-28-cloud-amd64")),
		jammy,
	}
}

func TestBuildOSDefaults(t *testing.T) {
	m := compile(t, buildModuleJSON)
	p, err := NewPlan(m, osNodes(), kl)
	require.NoError(t, err)
	out, err := templateFor(t, jobTemplateYAML, m).Expand(p, ExpandOptions{KernelLabel: kl, BuildJobs: map[string]string{}, Settings: osSettings})
	require.NoError(t, err)
	require.Len(t, out, 2)
	want := map[string]map[string]string{
		"6.1.0-28-cloud-amd64": {
			"KMM_BUILD_ARGS": "KMM_OS=debian\nKMM_OS_RELEASE=12\nKMM_OS_VARIANT=bookworm\nKMM_ARCH=x86_64\nKMM_BASE_IMAGE=debian:bookworm\n" +
				"X=1\nKERNEL_FULL_VERSION=6.1.0-28-cloud-amd64\nKERNEL_VERSION=6.1.0-28-cloud-amd64\nMOD_NAME=kmod\nMOD_NAMESPACE=kmm-demo",
			"KMM_OS_HEADERS": "apt-get install -y linux-headers-$KERNEL_VERSION",
			"KMM_OS_KMOD":    "apt-get install -y kmod",
		},
		"5.15.0-105-generic": {
			"KMM_BUILD_ARGS": "KMM_OS=ubuntu\nKMM_OS_RELEASE=22.04\nKMM_ARCH=aarch64\nKMM_BASE_IMAGE=ubuntu:22.04\n" +
				"X=2\nKERNEL_FULL_VERSION=5.15.0-105-generic\nKERNEL_VERSION=5.15.0-105-generic\nMOD_NAME=kmod\nMOD_NAMESPACE=kmm-demo",
			"KMM_OS_HEADERS": "ubuntu headers",
			"KMM_OS_KMOD":    "ubuntu kmod",
		},
	}
	for _, n := range out {
		j := decode[batchv1.Job](t, n)
		env := envMap(container(t, j.Spec.Template.Spec.Containers, contract.ContainerBuild))
		w := want[j.Annotations[contract.AnnotationKernel]]
		require.NotNil(t, w, j.Annotations[contract.AnnotationKernel])
		for k, v := range w {
			assert.Equal(t, v, env[k], "%s of kernel %s", k, j.Annotations[contract.AnnotationKernel])
		}
	}
	assert.Empty(t, osSettings.Check(p), "every built kernel has defaults")
}

func TestBuildOSDefaultsModuleArgsWin(t *testing.T) {
	mod := strings.Replace(buildModuleJSON, `"buildArgs":[{"name":"X","value":"1"}]`, `"buildArgs":[{"name":"KMM_BASE_IMAGE","value":"mirror.local/debian:12"},{"name":"KMM_OS_RELEASE","value":"12.8"}]`, 1)
	m := compile(t, mod)
	p, err := NewPlan(m, osNodes()[:2], kl)
	require.NoError(t, err)
	out, err := templateFor(t, jobTemplateYAML, m).Expand(p, ExpandOptions{KernelLabel: kl, BuildJobs: map[string]string{}, Settings: osSettings})
	require.NoError(t, err)
	require.Len(t, out, 1)
	j := decode[batchv1.Job](t, out[0])
	assert.Equal(t, "KMM_OS=debian\nKMM_OS_VARIANT=bookworm\nKMM_ARCH=x86_64\nKMM_BASE_IMAGE=mirror.local/debian:12\nKMM_OS_RELEASE=12.8\n"+
		"KERNEL_FULL_VERSION=6.1.0-28-cloud-amd64\nKERNEL_VERSION=6.1.0-28-cloud-amd64\nMOD_NAME=kmod\nMOD_NAMESPACE=kmm-demo",
		envMap(container(t, j.Spec.Template.Spec.Containers, contract.ContainerBuild))["KMM_BUILD_ARGS"])
}

func TestBuildOSDefaultsMissing(t *testing.T) {
	m := compile(t, buildModuleJSON)
	ns := osNodes()
	mixed := node("deb-3", "6.1.0-28-cloud-amd64", linux, kl+"=6.1.0-28-cloud-amd64")
	mixed.OSImage = "Ubuntu 24.04.1 LTS"
	noRelease := ns[2]
	noRelease.OSImage = "Ubuntu"
	p, err := NewPlan(m, []nodes.Node{ns[0], mixed, noRelease}, kl)
	require.NoError(t, err)
	warnings := osSettings.Check(p)
	require.Len(t, warnings, 2, "%q", warnings)
	assert.Contains(t, warnings[0], "kernel 5.15.0-105-generic: no build defaults (build.osDefaults.ubuntu needs the OS release, which its nodes' osImage does not give)")
	assert.Contains(t, warnings[1], "kernel 6.1.0-28-cloud-amd64: no build defaults (its nodes run several OS families (debian,ubuntu))")
	out, err := templateFor(t, jobTemplateYAML, m).Expand(p, ExpandOptions{KernelLabel: kl, BuildJobs: map[string]string{}, Settings: osSettings})
	require.NoError(t, err)
	for _, n := range out {
		env := envMap(container(t, decode[batchv1.Job](t, n).Spec.Template.Spec.Containers, contract.ContainerBuild))
		assert.NotContains(t, env["KMM_BUILD_ARGS"], "KMM_BASE_IMAGE")
		assert.NotContains(t, env, "KMM_OS_HEADERS")
	}

	other := &Settings{OSDefaults: map[string]OSDefaults{"al2": {BaseImage: "amazonlinux:2"}}}
	warnings = other.Check(p)
	require.Len(t, warnings, 2)
	assert.Contains(t, warnings[0], `its nodes run OS "ubuntu", which build.osDefaults does not name`)
	assert.Empty(t, (&Settings{}).Check(p), "no defaults at all: nothing to warn about")
}

func TestAddExtraKernels(t *testing.T) {
	m := compile(t, buildModuleJSON)
	p, err := NewPlan(m, osNodes(), kl)
	require.NoError(t, err)
	require.NoError(t, p.AddExtraKernels([]ExtraKernel{
		{Kernel: "6.1.0-28-cloud-amd64"}, // a node runs it already
		{Kernel: "6.1.0-40-cloud-amd64"},
		{Kernel: "6.1.0-41-cloud-arm64", OSImage: "Debian GNU/Linux 12 (bookworm)"},
		{Kernel: "4.19.0-27-amd64"}, // no mapping matches
	}, kl, false))
	var got []Target
	for _, tg := range p.Targets {
		if tg.Extra {
			got = append(got, tg)
		}
	}
	assert.Equal(t, []Target{
		{Kernel: "6.1.0-40-cloud-amd64", LabelValue: "6.1.0-40-cloud-amd64", Mapping: 0, Image: "r.example.com/kmod:6.1.0-40-cloud-amd64",
			Platform: "generic", OS: "debian", Arch: "x86_64", Extra: true},
		{Kernel: "6.1.0-41-cloud-arm64", LabelValue: "6.1.0-41-cloud-arm64", Mapping: 0, Image: "r.example.com/kmod:6.1.0-41-cloud-arm64",
			Platform: "generic", OS: "debian", OSRelease: "12", OSVariant: "bookworm", Arch: "aarch64", Extra: true},
	}, got)
	assert.Len(t, p.Targets, 4, "two kernels nodes run, two extra")
	for i := 1; i < len(p.Targets); i++ {
		assert.Less(t, p.Targets[i-1].Kernel, p.Targets[i].Kernel, "targets stay sorted by kernel")
	}
	assert.Len(t, p.LoaderTargets(false), 2)
	assert.Len(t, p.LoaderTargets(true), 4)

	// A module that builds nothing gets extra kernels only for their loaders.
	pre := compile(t, `{"name":"pre","namespace":"kmm","selector":{"kubernetes.io/os":"linux"},
		"moduleLoader":{"container":{"containerImage":"r/pre:${KERNEL_FULL_VERSION}","modprobe":{"moduleName":"pre"},"kernelMappings":[{"regexp":"^6\\."}]}}}`)
	for _, loaders := range []bool{false, true} {
		pp, err := NewPlan(pre, osNodes(), kl)
		require.NoError(t, err)
		require.NoError(t, pp.AddExtraKernels([]ExtraKernel{{Kernel: "6.1.0-40-cloud-amd64"}}, kl, loaders))
		want := 1
		if loaders {
			want = 2
		}
		assert.Len(t, pp.Targets, want, "loaders %v", loaders)
	}

	err = p.AddExtraKernels([]ExtraKernel{{Kernel: "6.1.0-28-cloud-amd64+"}}, kl, false)
	require.Error(t, err, "folds onto the label value of a kernel nodes run")
	assert.Contains(t, err.Error(), `extra kernel "6.1.0-28-cloud-amd64+" and kernel "6.1.0-28-cloud-amd64"`)

	op := compile(t, `{"name":"op","namespace":"kmm","via":"operator","selector":{"a":"b"},
		"moduleLoader":{"container":{"modprobe":{"moduleName":"op"},"kernelMappings":[{"regexp":".","containerImage":"r/op:${KERNEL_FULL_VERSION}"}]}}}`)
	po := &Plan{Module: op}
	require.NoError(t, po.AddExtraKernels([]ExtraKernel{{Kernel: "6.1.0-40-cloud-amd64"}}, kl, true))
	assert.Empty(t, po.Targets, "the KMM controller builds operator modules itself")
}

func TestExtraKernelLoaders(t *testing.T) {
	mod := strings.Replace(buildModuleJSON, `"imageRepoSecret":{"name":"push"},`, `"imageRepoSecret":{"name":"push"},"devicePlugin":{"container":{"image":"dp:1"}},`, 1)
	m := compile(t, mod)
	p, err := NewPlan(m, osNodes()[:2], kl)
	require.NoError(t, err)
	require.NoError(t, p.AddExtraKernels([]ExtraKernel{{Kernel: "6.1.0-40-cloud-amd64"}}, kl, true))
	for _, loaders := range []bool{false, true} {
		o := ExpandOptions{KernelLabel: kl, BuildJobs: map[string]string{}, Settings: &Settings{ExtraKernelLoaders: loaders}}
		jobs, err := templateFor(t, jobTemplateYAML, m).Expand(p, o)
		require.NoError(t, err)
		assert.Len(t, jobs, 2, "extra kernels are always built")
		ds, err := templateFor(t, loaderTemplateYAML(""), m).Expand(p, o)
		require.NoError(t, err)
		var kernels []string
		for _, n := range ds {
			d := decode[appsv1.DaemonSet](t, n)
			kernels = append(kernels, d.Annotations[contract.AnnotationKernel])
			if d.Annotations[contract.AnnotationKernel] == "6.1.0-40-cloud-amd64" {
				assert.Equal(t, "6.1.0-40-cloud-amd64", d.Spec.Template.Spec.NodeSelector[kl], "selects the nodes that will boot it")
			}
		}
		dp, err := templateFor(t, devicePluginTemplateYAML, m).Expand(p, o)
		require.NoError(t, err)
		require.Len(t, dp, 1)
		values := decode[appsv1.DaemonSet](t, dp[0]).Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Values
		if loaders {
			assert.Equal(t, []string{"6.1.0-28-cloud-amd64", "6.1.0-40-cloud-amd64"}, kernels)
			assert.Equal(t, []string{"6.1.0-28-cloud-amd64", "6.1.0-40-cloud-amd64"}, values)
		} else {
			assert.Equal(t, []string{"6.1.0-28-cloud-amd64"}, kernels, "no loader for a kernel no node runs")
			assert.Equal(t, []string{"6.1.0-28-cloud-amd64"}, values)
		}
	}
}
