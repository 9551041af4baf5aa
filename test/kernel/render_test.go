package kernel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/kio"
	sigsyaml "sigs.k8s.io/yaml"

	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/postrender"
)

// envVar is one entry of a container's env.
type envVar struct{ name, value string }

// rendered is what the test takes from the chart's output, through kmm-render, for one kernel.
// Nothing here is written by hand: it is all read from the rendered objects.
type rendered struct {
	// The chart's scripts, from the ConfigMap the loader (load.sh, unload.sh) and the build Job
	// (sign.sh) mount.
	loadSh, unloadSh, signSh string
	// loaderScripts is the whole ConfigMap the loader mounts at its scripts folder, file name to
	// content: load.sh and unload.sh source common.sh from it, so the VM gets all of it.
	loaderScripts map[string]string
	// loaderEnv is the env of the loader DaemonSet's module-loader container, in order.
	loaderEnv []envVar
	// loader and build name the DaemonSet and the Job, for messages.
	loader, build string
	// buildEnv is the env of the build Job's kmm-build container.
	buildEnv map[string]string
	// upgradeEnv is the env of the module-loader container of the loader DaemonSet of
	// upgradeModuleName, which mounts the same scripts; upgradeLoader names that DaemonSet.
	upgradeEnv    []envVar
	upgradeLoader string
}

// loaderValue returns the loader env's value of name, or "".
func (r *rendered) loaderValue(name string) string { return valueOf(r.loaderEnv, name) }

// upgradeValue returns the upgrade module's loader env's value of name, or "".
func (r *rendered) upgradeValue(name string) string { return valueOf(r.upgradeEnv, name) }

func valueOf(env []envVar, name string) string {
	for _, e := range env {
		if e.name == name {
			return e.value
		}
	}
	return ""
}

// list splits a rendered list value (one entry a line, empty lines ignored, as the scripts read
// them).
func list(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// nodeSnapshot is a one-node snapshot: the VM, running kernel.
func nodeSnapshot(kernel string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: qemu-vm
    labels:
      kubernetes.io/os: linux
      kubernetes.io/arch: amd64
      kubernetes.io/hostname: qemu-vm
      feature.node.kubernetes.io/kernel-version.full: %q
  status:
    nodeInfo:
      kernelVersion: %q
      osImage: Debian GNU/Linux 12 (bookworm)
      operatingSystem: linux
      architecture: amd64
`, kernel, kernel)
}

// renderFor renders charts/kmm with testdata/values.yaml through kmm-render, in process, for a
// cluster of one node running kernel, and extracts what the test runs.
func renderFor(t *testing.T, kernel string) *rendered {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	nodes := filepath.Join(t.TempDir(), "nodes.yaml")
	require.NoError(t, os.WriteFile(nodes, []byte(nodeSnapshot(kernel)), 0o644))

	chart, err := chartrender.Render(ctx, chartrender.Options{
		ChartDir:    filepath.Join(repoRoot, "charts", "kmm"),
		ReleaseName: "kmm",
		Namespace:   "kmm-system",
		ValueFiles:  []string{valuesFile},
	})
	require.NoError(t, err, "rendering the chart with %s", valuesFile)
	out, err := postrender.New(postrender.Options{Nodes: postrender.FileNodes(nodes)}).Run(ctx, []byte(chart.Manifests))
	require.NoError(t, err, "kmm-render")

	objs, err := kio.FromBytes(out)
	require.NoError(t, err)
	var loaders, upgradeLoaders []appsv1.DaemonSet
	var builds []batchv1.Job
	configMaps := map[string]corev1.ConfigMap{} // namespace/name
	for _, o := range objs {
		labels := o.GetLabels()
		forKernel := labels[contract.LabelModuleNamespace] == moduleNamespace && o.GetAnnotations()[contract.AnnotationKernel] == kernel
		ours := forKernel && labels[contract.LabelModuleName] == moduleName
		upgrade := forKernel && labels[contract.LabelModuleName] == upgradeModuleName
		s, err := o.String()
		require.NoError(t, err)
		switch {
		case o.GetKind() == "ConfigMap":
			var cm corev1.ConfigMap
			require.NoError(t, sigsyaml.Unmarshal([]byte(s), &cm))
			configMaps[cm.Namespace+"/"+cm.Name] = cm
		case o.GetKind() == "DaemonSet" && ours && labels[contract.LabelRole] == contract.RoleModuleLoader:
			var ds appsv1.DaemonSet
			require.NoError(t, sigsyaml.Unmarshal([]byte(s), &ds))
			loaders = append(loaders, ds)
		case o.GetKind() == "DaemonSet" && upgrade && labels[contract.LabelRole] == contract.RoleModuleLoader:
			var ds appsv1.DaemonSet
			require.NoError(t, sigsyaml.Unmarshal([]byte(s), &ds))
			upgradeLoaders = append(upgradeLoaders, ds)
		case o.GetKind() == "Job" && ours && labels[contract.LabelRole] == contract.RoleBuild:
			var job batchv1.Job
			require.NoError(t, sigsyaml.Unmarshal([]byte(s), &job))
			builds = append(builds, job)
		}
	}
	require.Len(t, loaders, 1, "kmm-render writes one loader DaemonSet of %s/%s for kernel %s", moduleNamespace, moduleName, kernel)
	require.Len(t, builds, 1, "kmm-render writes one build Job of %s/%s for kernel %s", moduleNamespace, moduleName, kernel)
	ds, job := loaders[0], builds[0]

	r := &rendered{loader: ds.Name, build: job.Name, buildEnv: map[string]string{}}
	loader := container(t, ds.Spec.Template.Spec.Containers, contract.LoaderContainer, "DaemonSet "+ds.Name)
	for _, e := range loader.Env {
		require.Nil(t, e.ValueFrom, "%s env %s uses valueFrom: the VM cannot reproduce it", ds.Name, e.Name)
		r.loaderEnv = append(r.loaderEnv, envVar{e.Name, e.Value})
	}
	scripts := scriptsOf(t, loader, ds.Spec.Template.Spec.Volumes, ds.Namespace, configMaps, "load.sh", "DaemonSet "+ds.Name)
	r.loadSh, r.unloadSh, r.loaderScripts = scripts["load.sh"], scripts["unload.sh"], scripts
	require.True(t, strings.HasPrefix(scripts["common.sh"], "#!/bin/sh\n"), "DaemonSet %s mounts common.sh, which load.sh and unload.sh source", ds.Name)

	builder := container(t, job.Spec.Template.Spec.Containers, contract.ContainerBuild, "Job "+job.Name)
	for _, e := range builder.Env {
		r.buildEnv[e.Name] = e.Value
	}
	r.signSh = scriptsOf(t, builder, job.Spec.Template.Spec.Volumes, job.Namespace, configMaps, "build.sh", "Job "+job.Name)["sign.sh"]
	for name, s := range map[string]string{"load.sh": r.loadSh, "unload.sh": r.unloadSh, "sign.sh": r.signSh} {
		require.True(t, strings.HasPrefix(s, "#!/bin/sh\n"), "the rendered %s is a shell script", name)
	}
	for _, name := range []string{"KMM_BUILD_ARGS", "KMM_DIR_NAME", "KMM_FILES_TO_SIGN"} {
		require.NotEmpty(t, r.buildEnv[name], "Job %s: container %s has no %s", job.Name, contract.ContainerBuild, name)
	}
	require.Equal(t, "true", r.buildEnv["KMM_SIGN"], "Job %s signs", job.Name)

	require.Len(t, upgradeLoaders, 1, "kmm-render writes one loader DaemonSet of %s/%s for kernel %s", moduleNamespace, upgradeModuleName, kernel)
	up := upgradeLoaders[0]
	r.upgradeLoader = up.Name
	upLoader := container(t, up.Spec.Template.Spec.Containers, contract.LoaderContainer, "DaemonSet "+up.Name)
	for _, e := range upLoader.Env {
		require.Nil(t, e.ValueFrom, "%s env %s uses valueFrom: the VM cannot reproduce it", up.Name, e.Name)
		r.upgradeEnv = append(r.upgradeEnv, envVar{e.Name, e.Value})
	}
	upScripts := scriptsOf(t, upLoader, up.Spec.Template.Spec.Volumes, up.Namespace, configMaps, "load.sh", "DaemonSet "+up.Name)
	require.Equal(t, r.loadSh, upScripts["load.sh"], "DaemonSets %s and %s mount the same load.sh", ds.Name, up.Name)
	require.Equal(t, r.unloadSh, upScripts["unload.sh"], "DaemonSets %s and %s mount the same unload.sh", ds.Name, up.Name)
	require.Equal(t, r.loaderScripts, upScripts, "DaemonSets %s and %s mount the same scripts", ds.Name, up.Name)
	return r
}

func container(t *testing.T, cs []corev1.Container, name, where string) corev1.Container {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("%s has no container %s", where, name)
	return corev1.Container{}
}

// scriptsOf follows c's command, `/bin/sh <folder>/<script>`, to the ConfigMap mounted at that
// folder, and returns its data: the scripts exactly as the pod sees them.
func scriptsOf(t *testing.T, c corev1.Container, volumes []corev1.Volume, namespace string, cms map[string]corev1.ConfigMap, script, where string) map[string]string {
	t.Helper()
	require.Len(t, c.Command, 2, "%s: container %s runs /bin/sh <script>", where, c.Name)
	require.Equal(t, "/bin/sh", c.Command[0], where)
	dir, base := filepath.Split(c.Command[1])
	require.Equal(t, script, base, "%s: container %s runs %s", where, c.Name, script)
	dir = filepath.Clean(dir)
	for _, m := range c.VolumeMounts {
		if filepath.Clean(m.MountPath) != dir {
			continue
		}
		for _, v := range volumes {
			if v.Name == m.Name {
				require.NotNil(t, v.ConfigMap, "%s: volume %s is a ConfigMap", where, v.Name)
				cm, ok := cms[namespace+"/"+v.ConfigMap.Name]
				require.True(t, ok, "%s mounts ConfigMap %s/%s, which is not rendered", where, namespace, v.ConfigMap.Name)
				return cm.Data
			}
		}
	}
	t.Fatalf("%s: nothing is mounted at %s", where, dir)
	return nil
}
