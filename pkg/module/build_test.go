package module

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
)

func args(kv ...string) []kmmv1beta1.BuildArg {
	var out []kmmv1beta1.BuildArg
	for i := 0; i < len(kv); i += 2 {
		out = append(out, kmmv1beta1.BuildArg{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func secrets(names ...string) []corev1.LocalObjectReference {
	var out []corev1.LocalObjectReference
	for _, n := range names {
		out = append(out, corev1.LocalObjectReference{Name: n})
	}
	return out
}

// KMM's ApplyBuildArgOverrides: in place by name, the rest appended in name order.
func TestOverrideBuildArgs(t *testing.T) {
	in := args("B", "user", "KERNEL_VERSION", "user", "A", "user")
	got := OverrideBuildArgs(in, args("MOD_NAME", "m", "KERNEL_VERSION", "6.1", "C", "c")...)
	assert.Equal(t, args("B", "user", "KERNEL_VERSION", "6.1", "A", "user", "C", "c", "MOD_NAME", "m"), got)
	assert.Equal(t, "user", in[1].Value, "the input is not modified")
}

func TestBuildPlanFor(t *testing.T) {
	const kernel = "6.1.0-28-cloud-amd64"
	const image = "registry.example.com/ptp:6.1.0-28-cloud-amd64"
	kmmArgs := []string{"KERNEL_FULL_VERSION", kernel, "KERNEL_VERSION", kernel, "MOD_NAME", "ptp", "MOD_NAMESPACE", "kmm-demo"}
	tests := []struct {
		name   string
		mutate func(m *Module)
		want   *BuildPlan
		err    string
	}{
		{name: "neither build nor sign", mutate: func(*Module) {}},
		{name: "container build", mutate: func(m *Module) {
			container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df"), BuildArgs: args("KERNEL_VERSION", "mine", "X", "1"), Secrets: secrets("git")}
		}, want: &BuildPlan{
			Build:               &kmmv1beta1.Build{DockerfileConfigMap: cm("df"), BuildArgs: args("KERNEL_VERSION", "mine", "X", "1"), Secrets: secrets("git")},
			Args:                args("KERNEL_VERSION", kernel, "X", "1", "KERNEL_FULL_VERSION", kernel, "MOD_NAME", "ptp", "MOD_NAMESPACE", "kmm-demo"),
			DockerfileConfigMap: "df", Image: image, Strategy: StrategyRegistry,
		}},
		{name: "mapping build merged over the container's", mutate: func(m *Module) {
			container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df"), BuildArgs: args("X", "1", "Y", "1"), Secrets: secrets("git"), Selector: map[string]string{"pool": "build"}}
			container(m).KernelMappings[0].Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df-6.1"), BuildArgs: args("Y", "2", "Z", "2"), Secrets: secrets("extra")}
			m.Builder = &Builder{Strategy: StrategyNode}
		}, want: &BuildPlan{
			Build: &kmmv1beta1.Build{DockerfileConfigMap: cm("df-6.1"), BuildArgs: args("X", "1", "Y", "2", "Z", "2"), Secrets: secrets("git", "extra"),
				Selector: map[string]string{"pool": "build"}},
			Args:                append(args("X", "1", "Y", "2", "Z", "2"), args(kmmArgs...)...),
			DockerfileConfigMap: "df-6.1", Image: image, Strategy: StrategyNode,
		}},
		{name: "inline Dockerfile", mutate: func(m *Module) {
			container(m).Build = &kmmv1beta1.Build{}
			m.Builder = &Builder{Dockerfile: "FROM scratch"}
		}, want: &BuildPlan{Build: &kmmv1beta1.Build{}, Args: args(kmmArgs...), DockerfileConfigMap: "ptp-dockerfile", Image: image, Strategy: StrategyRegistry}},
		{name: "build and sign: KMM's intermediate image, files appended and substituted", mutate: func(m *Module) {
			container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df")}
			container(m).Sign = &kmmv1beta1.Sign{KeySecret: cm("key"), CertSecret: cm("cert"), FilesToSign: []string{"/opt/lib/modules/${KERNEL_FULL_VERSION}/a.ko"}}
			container(m).KernelMappings[0].Sign = &kmmv1beta1.Sign{KeySecret: cm("key-6.1"), FilesToSign: []string{"/opt/b.ko"}}
		}, want: &BuildPlan{
			Build: &kmmv1beta1.Build{DockerfileConfigMap: cm("df")}, Args: args(kmmArgs...), DockerfileConfigMap: "df",
			Sign:          &kmmv1beta1.Sign{KeySecret: cm("key-6.1"), CertSecret: cm("cert"), FilesToSign: []string{"/opt/lib/modules/" + kernel + "/a.ko", "/opt/b.ko"}},
			Image:         image,
			UnsignedImage: image + "_kmm-demo_ptp_kmm_unsigned",
			Strategy:      StrategyRegistry,
		}},
		{name: "sign a prebuilt image", mutate: func(m *Module) {
			container(m).Sign = &kmmv1beta1.Sign{KeySecret: cm("key"), CertSecret: cm("cert"), UnsignedImage: "registry.example.com/ptp-unsigned:${KERNEL_X}.${KERNEL_Y}"}
		}, want: &BuildPlan{
			Sign:  &kmmv1beta1.Sign{KeySecret: cm("key"), CertSecret: cm("cert"), UnsignedImage: "registry.example.com/ptp-unsigned:${KERNEL_X}.${KERNEL_Y}", FilesToSign: []string{}},
			Image: image, UnsignedImage: "registry.example.com/ptp-unsigned:6.1", Strategy: StrategyRegistry,
		}},
		{name: "no Dockerfile anywhere", mutate: func(m *Module) { container(m).Build = &kmmv1beta1.Build{} },
			err: "module kmm-demo/ptp: kernelMappings[0]: the build names no dockerfileConfigMap and the module has no builder.dockerfile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid(ViaHelm)
			tt.mutate(m)
			got, err := m.BuildPlanFor(0, kernel, image)
			if tt.err != "" {
				require.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// filesToSign name the files the build installed: Debian's "6.12.117+deb12-cloud-amd64" keeps its
// '+' there, while the image tag gets "_" (KMM substitutes the tag form in both, and misses).
func TestBuildPlanFilesToSignKeepTheKernel(t *testing.T) {
	const kernel = "6.12.117+deb12-cloud-amd64"
	m := valid(ViaHelm)
	container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df")}
	container(m).Sign = &kmmv1beta1.Sign{KeySecret: cm("key"), CertSecret: cm("cert"), FilesToSign: []string{"/opt/lib/modules/${KERNEL_FULL_VERSION}/extra/a.ko"}}
	p, err := m.BuildPlanFor(0, kernel, "r/ptp:6.12.117_deb12-cloud-amd64")
	require.NoError(t, err)
	assert.Equal(t, []string{"/opt/lib/modules/6.12.117+deb12-cloud-amd64/extra/a.ko"}, p.Sign.FilesToSign)
	assert.Contains(t, p.Args, kmmv1beta1.BuildArg{Name: "KERNEL_VERSION", Value: "6.12.117+deb12-cloud-amd64"})
}

func TestIntermediateImage(t *testing.T) {
	assert.Equal(t, "r.example.com:5000/ptp:v1_ns_m_kmm_unsigned", IntermediateImage("r.example.com:5000/ptp:v1", "m", "ns"))
	assert.Equal(t, "r.example.com:5000/ptp:ns_m_kmm_unsigned", IntermediateImage("r.example.com:5000/ptp", "m", "ns"))
}
