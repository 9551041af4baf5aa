package render

import (
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
)

func env(kv ...string) []corev1.EnvVar {
	var out []corev1.EnvVar
	for i := 0; i < len(kv); i += 2 {
		out = append(out, corev1.EnvVar{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// What the loader scripts do with this environment is tested on the scripts (test/scripts) and
// on a real kernel; here: that each KMM field lands in its variable.
func TestLoaderEnv(t *testing.T) {
	const k = "6.1.0-28-cloud-amd64"
	tests := []struct {
		name string
		c    kmmv1beta1.ModuleLoaderContainerSpec
		km   *kmmv1beta1.KernelMapping
		root string
		want []corev1.EnvVar
	}{
		{
			name: "module name, default dirName",
			c:    kmmv1beta1.ModuleLoaderContainerSpec{Modprobe: kmmv1beta1.ModprobeSpec{ModuleName: "ptp"}},
			want: env("KMM_KERNEL", k, "KMM_DIR_NAME", "/opt", "KMM_MODULE", "ptp"),
		},
		{
			name: "args, parameters, loading order, firmware; node build root",
			c: kmmv1beta1.ModuleLoaderContainerSpec{Modprobe: kmmv1beta1.ModprobeSpec{
				ModuleName: "a", DirName: "/mods/", Parameters: []string{"debug=1", "name=it's me"},
				Args:                &kmmv1beta1.ModprobeArgs{Load: []string{"--first-time"}, Unload: []string{"--wait=5000", "-q"}},
				ModulesLoadingOrder: []string{"a", "b", "c"}, FirmwarePath: "/firmware/",
			}},
			root: "/kmm/build/rootfs",
			want: env("KMM_KERNEL", k, "KMM_ROOT", "/kmm/build/rootfs", "KMM_DIR_NAME", "/mods", "KMM_MODULE", "a",
				"KMM_PARAMETERS", "debug=1\nname=it's me", "KMM_LOAD_ARGS", "--first-time", "KMM_UNLOAD_ARGS", "--wait=5000\n-q",
				"KMM_LOADING_ORDER", "a\nb\nc", "KMM_FIRMWARE_PATH", "/firmware"),
		},
		{
			name: "rawArgs are the whole command",
			c: kmmv1beta1.ModuleLoaderContainerSpec{Modprobe: kmmv1beta1.ModprobeSpec{
				RawArgs: &kmmv1beta1.ModprobeArgs{Load: []string{"-d", "/x", "ptp"}, Unload: []string{"-r", "-d", "/x", "ptp"}},
			}},
			want: env("KMM_KERNEL", k, "KMM_DIR_NAME", "/opt", "KMM_RAW", "true", "KMM_RAW_LOAD", "-d\n/x\nptp", "KMM_RAW_UNLOAD", "-r\n-d\n/x\nptp"),
		},
		{
			name: "the container's in-tree modules",
			c: kmmv1beta1.ModuleLoaderContainerSpec{InTreeModulesToRemove: []string{"ice", "irdma-x"},
				Modprobe: kmmv1beta1.ModprobeSpec{ModuleName: "ice"}},
			km:   &kmmv1beta1.KernelMapping{Regexp: "."},
			want: env("KMM_KERNEL", k, "KMM_DIR_NAME", "/opt", "KMM_MODULE", "ice", "KMM_IN_TREE_REMOVE", "ice\nirdma-x"),
		},
		{
			name: "the kernel mapping's in-tree modules win over the container's",
			c: kmmv1beta1.ModuleLoaderContainerSpec{InTreeModulesToRemove: []string{"ice"},
				Modprobe: kmmv1beta1.ModprobeSpec{ModuleName: "ice"}},
			km:   &kmmv1beta1.KernelMapping{Regexp: ".", InTreeModulesToRemove: []string{"i40e"}},
			want: env("KMM_KERNEL", k, "KMM_DIR_NAME", "/opt", "KMM_MODULE", "ice", "KMM_IN_TREE_REMOVE", "i40e"),
		},
		{
			name: "deprecated single in-tree module",
			c: kmmv1beta1.ModuleLoaderContainerSpec{InTreeModuleToRemove: "ice", //nolint:staticcheck
				Modprobe: kmmv1beta1.ModprobeSpec{ModuleName: "ice"}},
			want: env("KMM_KERNEL", k, "KMM_DIR_NAME", "/opt", "KMM_MODULE", "ice", "KMM_IN_TREE_REMOVE", "ice"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, LoaderEnv(&tt.c, tt.km, k, tt.root))
		})
	}
}
