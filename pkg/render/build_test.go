package render

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/nodes"
)

// A module that builds and signs at the container level; its 5.15 mapping overrides a build arg.
const buildModuleJSON = `{"name":"kmod","namespace":"kmm-demo","selector":{"kubernetes.io/os":"linux"},
 "imageRepoSecret":{"name":"push"},
 "moduleLoader":{"container":{"containerImage":"r.example.com/kmod:${KERNEL_FULL_VERSION}",
  "modprobe":{"moduleName":"kmm_a","parameters":["answer=42"]},
  "build":{"dockerfileConfigMap":{"name":"kmod-src"},"buildArgs":[{"name":"X","value":"1"}],"secrets":[{"name":"git"}],"selector":{"pool":"build"}},
  "sign":{"keySecret":{"name":"sb-key"},"certSecret":{"name":"sb-cert"},"filesToSign":["/opt/lib/modules/${KERNEL_FULL_VERSION}/extra/kmm_a.ko"]},
  "kernelMappings":[{"regexp":"^6\\.1\\."},{"regexp":"^5\\.15\\.","build":{"buildArgs":[{"name":"X","value":"2"}]}}]}}}`

// jobTemplateYAML and loaderTemplateYAML are shaped like charts/kmm/templates/module-build.yaml
// and module-loader.yaml render them for a module that builds.
const jobTemplateYAML = `apiVersion: batch/v1
kind: Job
metadata:
  name: kmod-build
  namespace: kmm-demo
  annotations:
    render.kmm.dev/expand: module-build
    render.kmm.dev/module: kmm-demo/kmod
spec:
  template:
    spec:
      restartPolicy: Never
      nodeSelector:
        render.kmm.dev/post-renderer: required
      initContainers:
        - name: kmm-check
          image: crane:debug
      containers:
        - name: kmm-build
          image: buildkit:rootless
          env:
            - name: BUILDKITD_FLAGS
              value: --oci-worker-no-process-sandbox
          volumeMounts:
            - name: kmm-work
              mountPath: /kmm/work
      volumes:
        - name: kmm-work
          emptyDir: {}
`

func loaderTemplateYAML(nodeLoaderImage string) string {
	ann := ""
	if nodeLoaderImage != "" {
		ann = "\n    render.kmm.dev/node-loader-image: " + nodeLoaderImage
	}
	return `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kmod-loader
  namespace: kmm-demo
  annotations:
    render.kmm.dev/expand: module-loader
    render.kmm.dev/module: kmm-demo/kmod` + ann + `
spec:
  template:
    spec:
      nodeSelector:
        render.kmm.dev/post-renderer: required
      initContainers:
        - name: kmm-build
          image: buildkit:rootless
          volumeMounts:
            - name: kmm-build
              mountPath: /kmm/build
        - name: kmm-sign
          image: signimage:1
          volumeMounts:
            - name: kmm-build
              mountPath: /kmm/build
        - name: kmm-wait-image
          image: crane:debug
          volumeMounts:
            - name: kmm-docker
              mountPath: /kmm/docker
      containers:
        - name: module-loader
          image: placeholder:1
          env:
            - name: KMM_UNLOAD_ON_STOP
              value: "true"
      volumes:
        - name: kmm-build
          emptyDir: {}
        - name: kmm-docker
          secret:
            secretName: push
`
}

func buildNodes() []nodes.Node {
	return []nodes.Node{
		node("deb-1", "6.1.0-28-cloud-amd64", linux, kl+"=6.1.0-28-cloud-amd64"),
		node("deb-2", "6.1.0-28-cloud-amd64", linux, kl+"=6.1.0-28-cloud-amd64"),
		node("jammy-1", "5.15.0-105-generic", linux, kl+"=5.15.0-105-generic"),
	}
}

func templateFor(t *testing.T, s string, m *Module) *Template {
	t.Helper()
	n, err := yaml.Parse(s)
	require.NoError(t, err)
	tpl, err := NewTemplate(n, m)
	require.NoError(t, err)
	return tpl
}

func decode[T any](t *testing.T, n *yaml.RNode) T {
	t.Helper()
	s, err := n.String()
	require.NoError(t, err)
	var v T
	require.NoError(t, sigsyaml.UnmarshalStrict([]byte(s), &v), s)
	return v
}

func container(t *testing.T, cs []corev1.Container, name string) corev1.Container {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	require.Failf(t, "no container", "%s", name)
	return corev1.Container{}
}

func envMap(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func volumeNames(vs []corev1.Volume) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

func expandBuildJobs(t *testing.T, moduleJSON string, cms map[string]string) ([]batchv1.Job, map[string]string) {
	t.Helper()
	m := compile(t, moduleJSON)
	p, err := NewPlan(m, buildNodes(), kl)
	require.NoError(t, err)
	jobs := map[string]string{}
	out, err := templateFor(t, jobTemplateYAML, m).Expand(p, ExpandOptions{KernelLabel: kl, ConfigMaps: cms, BuildJobs: jobs})
	require.NoError(t, err)
	var decoded []batchv1.Job
	for _, n := range out {
		decoded = append(decoded, decode[batchv1.Job](t, n))
	}
	return decoded, jobs
}

var jobName = regexp.MustCompile(`^kmod-build-[0-9a-f]{10}$`)

func TestExpandBuildJobs(t *testing.T) {
	jobs, names := expandBuildJobs(t, buildModuleJSON, nil)
	require.Len(t, jobs, 2, "one Job per kernel")
	want := map[string]struct{ args, image string }{
		"5.15.0-105-generic": {
			args:  "X=2\nKERNEL_FULL_VERSION=5.15.0-105-generic\nKERNEL_VERSION=5.15.0-105-generic\nMOD_NAME=kmod\nMOD_NAMESPACE=kmm-demo",
			image: "r.example.com/kmod:5.15.0-105-generic",
		},
		"6.1.0-28-cloud-amd64": {
			args:  "X=1\nKERNEL_FULL_VERSION=6.1.0-28-cloud-amd64\nKERNEL_VERSION=6.1.0-28-cloud-amd64\nMOD_NAME=kmod\nMOD_NAMESPACE=kmm-demo",
			image: "r.example.com/kmod:6.1.0-28-cloud-amd64",
		},
	}
	for _, j := range jobs {
		kernel := j.Annotations[contract.AnnotationKernel]
		w, ok := want[kernel]
		require.True(t, ok, "kernel %q", kernel)
		t.Run(kernel, func(t *testing.T) {
			assert.Regexp(t, jobName, j.Name)
			assert.Equal(t, j.Name, names[BuildJobKey("kmm-demo/kmod", kernel)])
			assert.Equal(t, map[string]string{"pool": "build"}, j.Spec.Template.Spec.NodeSelector, "build.selector keeps builds off the target nodes")
			assert.Equal(t, contract.RoleBuild, j.Labels[contract.LabelRole])
			assert.Equal(t, contract.RoleBuild, j.Spec.Template.Labels[contract.LabelRole])
			assert.NotContains(t, j.Annotations, contract.AnnotationExpand)

			build := container(t, j.Spec.Template.Spec.Containers, contract.ContainerBuild)
			assert.Equal(t, map[string]string{
				"BUILDKITD_FLAGS":    "--oci-worker-no-process-sandbox",
				"KMM_OUTPUT":         "registry",
				"KMM_IMAGE":          w.image,
				"KMM_BUILD_ARGS":     w.args,
				"KMM_SECRETS":        "git",
				"KMM_SIGN":           "true",
				"KMM_UNSIGNED_IMAGE": w.image + "_kmm-demo_kmod_kmm_unsigned",
				"KMM_DIR_NAME":       "/opt",
				"KMM_FILES_TO_SIGN":  "/opt/lib/modules/" + kernel + "/extra/kmm_a.ko",
			}, envMap(build))
			mounts := map[string]string{}
			for _, vm := range build.VolumeMounts {
				mounts[vm.MountPath] = vm.Name
			}
			assert.Equal(t, map[string]string{"/kmm/work": "kmm-work", "/kmm/context": "kmm-context", "/run/secrets/git": "kmm-build-secret-0",
				"/kmm/sign/key": "kmm-sign-key", "/kmm/sign/cert": "kmm-sign-cert"}, mounts)
			assert.Equal(t, []string{"kmm-work", "kmm-context", "kmm-build-secret-0", "kmm-sign-key", "kmm-sign-cert"}, volumeNames(j.Spec.Template.Spec.Volumes))
			vols := j.Spec.Template.Spec.Volumes
			assert.Equal(t, "kmod-src", vols[1].ConfigMap.Name)
			assert.Equal(t, "git", vols[2].Secret.SecretName)
			assert.Equal(t, &corev1.SecretVolumeSource{SecretName: "sb-key", Items: []corev1.KeyToPath{{Key: "key", Path: "key.pem"}}}, vols[3].Secret)
			assert.Equal(t, &corev1.SecretVolumeSource{SecretName: "sb-cert", Items: []corev1.KeyToPath{{Key: "cert", Path: "cert.pem"}}}, vols[4].Secret)
			assert.Equal(t, map[string]string{"KMM_IMAGE": w.image}, envMap(container(t, j.Spec.Template.Spec.InitContainers, contract.ContainerCheck)))
		})
	}
}

// The Job's name is a hash of its inputs: unchanged inputs give the same Job (helm upgrade
// leaves it alone), a changed input a new one for the kernels it affects.
func TestExpandBuildInsecureRegistries(t *testing.T) {
	mod := strings.Replace(buildModuleJSON, `"selector":{"pool":"build"}}`, `"selector":{"pool":"build"},"baseImageRegistryTLS":{"insecure":true}}`, 1)
	mod = strings.Replace(mod, `"certSecret":{"name":"sb-cert"},`, `"certSecret":{"name":"sb-cert"},"unsignedImageRegistryTLS":{"insecureSkipTLSVerify":true},`, 1)
	jobs, _ := expandBuildJobs(t, mod, nil)
	require.NotEmpty(t, jobs)
	env := envMap(container(t, jobs[0].Spec.Template.Spec.Containers, contract.ContainerBuild))
	assert.Equal(t, "true", env["KMM_INSECURE_BASE_IMAGES"])
	assert.Equal(t, "r.example.com", env["KMM_INSECURE_REGISTRIES"], "the unsigned image's registry")
}

// registryTLS (KMM: the module image's registry) makes the build push over plain HTTP and the
// image checks use crane --insecure, in the build Job and in the loader's wait; the 5.15
// mapping's own registryTLS wins over the container's (KMM's rule). One registry is listed once
// when the unsigned image is there too.
func TestExpandBuildRegistryTLS(t *testing.T) {
	mod := strings.Replace(buildModuleJSON, `"modprobe":`, `"registryTLS":{"insecure":true},"modprobe":`, 1)
	mod = strings.Replace(mod, `"certSecret":{"name":"sb-cert"},`, `"certSecret":{"name":"sb-cert"},"unsignedImageRegistryTLS":{"insecure":true},`, 1)
	mod = strings.Replace(mod, `{"regexp":"^5\\.15\\.","build"`, `{"regexp":"^5\\.15\\.","registryTLS":{},"build"`, 1)
	require.Contains(t, mod, `"registryTLS":{},`)
	jobs, names := expandBuildJobs(t, mod, nil)
	require.Len(t, jobs, 2)
	for _, j := range jobs {
		kernel := j.Annotations[contract.AnnotationKernel]
		build := envMap(container(t, j.Spec.Template.Spec.Containers, contract.ContainerBuild))
		check := envMap(container(t, j.Spec.Template.Spec.InitContainers, contract.ContainerCheck))
		if kernel == "6.1.0-28-cloud-amd64" {
			assert.Equal(t, "r.example.com", build["KMM_INSECURE_REGISTRIES"], "%s: the image's and the unsigned image's registry, once", kernel)
			assert.Equal(t, map[string]string{"KMM_IMAGE": "r.example.com/kmod:" + kernel, "KMM_INSECURE": "true"}, check, kernel)
		} else {
			assert.Equal(t, "r.example.com", build["KMM_INSECURE_REGISTRIES"], "%s: the unsigned image's registry only", kernel)
			assert.Equal(t, map[string]string{"KMM_IMAGE": "r.example.com/kmod:" + kernel}, check, "%s: the mapping's registryTLS is secure", kernel)
		}
	}

	m := compile(t, mod)
	p, err := NewPlan(m, buildNodes(), kl)
	require.NoError(t, err)
	out, err := templateFor(t, loaderTemplateYAML(""), m).Expand(p, ExpandOptions{KernelLabel: kl, BuildJobs: names})
	require.NoError(t, err)
	waits := map[string]map[string]string{}
	for _, n := range out[1:] {
		ds := decode[appsv1.DaemonSet](t, n)
		waits[ds.Annotations[contract.AnnotationKernel]] = envMap(ds.Spec.Template.Spec.InitContainers[0])
	}
	assert.Equal(t, "true", waits["6.1.0-28-cloud-amd64"]["KMM_INSECURE"])
	assert.NotContains(t, waits["5.15.0-105-generic"], "KMM_INSECURE")
}

func TestBuildJobNames(t *testing.T) {
	base, _ := expandBuildJobs(t, buildModuleJSON, map[string]string{"kmm-demo/kmod-src": "FROM a"})
	names := func(jobs []batchv1.Job) map[string]string {
		out := map[string]string{}
		for _, j := range jobs {
			out[j.Annotations[contract.AnnotationKernel]] = j.Name
		}
		return out
	}
	before := names(base)
	require.Len(t, before, 2)
	tests := []struct {
		name    string
		module  string
		cms     map[string]string
		changed []string // kernels whose Job changes
	}{
		{name: "same inputs", module: buildModuleJSON, cms: map[string]string{"kmm-demo/kmod-src": "FROM a"}},
		{name: "a modprobe parameter is not a build input", module: strings.Replace(buildModuleJSON, "answer=42", "answer=43", 1),
			cms: map[string]string{"kmm-demo/kmod-src": "FROM a"}},
		{name: "the rendered Dockerfile changed", module: buildModuleJSON, cms: map[string]string{"kmm-demo/kmod-src": "FROM b"},
			changed: []string{"5.15.0-105-generic", "6.1.0-28-cloud-amd64"}},
		{name: "the 5.15 mapping's build arg changed", module: strings.Replace(buildModuleJSON, `"value":"2"`, `"value":"3"`, 1),
			cms: map[string]string{"kmm-demo/kmod-src": "FROM a"}, changed: []string{"5.15.0-105-generic"}},
		{name: "rebuild trigger", module: strings.Replace(buildModuleJSON, `"selector":{"kubernetes.io/os":"linux"},`, `"selector":{"kubernetes.io/os":"linux"},"imageRebuildTriggerGeneration":2,`, 1),
			cms: map[string]string{"kmm-demo/kmod-src": "FROM a"}, changed: []string{"5.15.0-105-generic", "6.1.0-28-cloud-amd64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs, _ := expandBuildJobs(t, tt.module, tt.cms)
			after := names(jobs)
			require.Len(t, after, 2)
			var changed []string
			for _, k := range []string{"5.15.0-105-generic", "6.1.0-28-cloud-amd64"} {
				if after[k] != before[k] {
					changed = append(changed, k)
				}
			}
			assert.Equal(t, tt.changed, changed)
		})
	}
}

func TestExpandLoaderWaitsForTheBuild(t *testing.T) {
	m := compile(t, buildModuleJSON)
	p, err := NewPlan(m, buildNodes(), kl)
	require.NoError(t, err)
	tpl := templateFor(t, loaderTemplateYAML(""), m)

	_, err = tpl.Expand(p, ExpandOptions{KernelLabel: kl, BuildJobs: map[string]string{}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds no build Job template")

	jobs := map[string]string{
		BuildJobKey("kmm-demo/kmod", "6.1.0-28-cloud-amd64"): "kmod-build-aaaaaaaaaa",
		BuildJobKey("kmm-demo/kmod", "5.15.0-105-generic"):   "kmod-build-bbbbbbbbbb",
	}
	out, err := tpl.Expand(p, ExpandOptions{KernelLabel: kl, BuildJobs: jobs})
	require.NoError(t, err)
	require.Len(t, out, 2)
	ds := decode[appsv1.DaemonSet](t, out[1])
	assert.Equal(t, "6.1.0-28-cloud-amd64", ds.Annotations[contract.AnnotationKernel])
	assert.Equal(t, "kmod-build-aaaaaaaaaa", ds.Annotations[contract.AnnotationBuildJob])
	spec := ds.Spec.Template.Spec
	require.Len(t, spec.InitContainers, 1, "only the wait for the image")
	assert.Equal(t, map[string]string{"KMM_IMAGE": "r.example.com/kmod:6.1.0-28-cloud-amd64", "KMM_BUILD_JOB": "kmm-demo/kmod-build-aaaaaaaaaa"},
		envMap(spec.InitContainers[0]))
	loader := container(t, spec.Containers, contract.LoaderContainer)
	assert.Equal(t, "r.example.com/kmod:6.1.0-28-cloud-amd64", loader.Image)
	assert.Equal(t, []string{"kmm-docker"}, volumeNames(spec.Volumes), "the node build's emptyDir is pruned")
}

func TestExpandLoaderWithoutBuild(t *testing.T) {
	// The 5.15 mapping of this module has its own prebuilt image and builds nothing.
	mod := `{"name":"kmod","namespace":"kmm-demo","selector":{"kubernetes.io/os":"linux"},
 "moduleLoader":{"container":{"containerImage":"r.example.com/kmod:${KERNEL_FULL_VERSION}","modprobe":{"moduleName":"kmm_a"},
  "kernelMappings":[{"regexp":"^6\\.1\\.","build":{"dockerfileConfigMap":{"name":"kmod-src"}}},{"regexp":"^5\\.15\\.","containerImage":"r.example.com/prebuilt:1"}]}}}`
	m := compile(t, mod)
	p, err := NewPlan(m, buildNodes(), kl)
	require.NoError(t, err)
	jobs, _ := expandBuildJobs(t, mod, nil)
	require.Len(t, jobs, 1, "a Job for the kernel whose mapping builds only")
	assert.Equal(t, "6.1.0-28-cloud-amd64", jobs[0].Annotations[contract.AnnotationKernel])

	out, err := templateFor(t, loaderTemplateYAML(""), m).Expand(p, ExpandOptions{KernelLabel: kl,
		BuildJobs: map[string]string{BuildJobKey("kmm-demo/kmod", "6.1.0-28-cloud-amd64"): jobs[0].Name}})
	require.NoError(t, err)
	ds := decode[appsv1.DaemonSet](t, out[0])
	require.Equal(t, "5.15.0-105-generic", ds.Annotations[contract.AnnotationKernel])
	assert.Empty(t, ds.Spec.Template.Spec.InitContainers)
	assert.Empty(t, ds.Spec.Template.Spec.Volumes)
	assert.NotContains(t, ds.Annotations, contract.AnnotationBuildJob)
	assert.Equal(t, "r.example.com/prebuilt:1", ds.Spec.Template.Spec.Containers[0].Image)
}

func TestExpandNodeBuild(t *testing.T) {
	mod := strings.Replace(buildModuleJSON, `"imageRepoSecret":{"name":"push"},`, `"builder":{"strategy":"node"},`, 1)
	m := compile(t, mod)
	p, err := NewPlan(m, buildNodes(), kl)
	require.NoError(t, err)

	jobs, _ := expandBuildJobs(t, mod, nil)
	assert.Empty(t, jobs, "node builds make no Job")

	_, err = templateFor(t, loaderTemplateYAML(""), m).Expand(p, ExpandOptions{KernelLabel: kl})
	require.Error(t, err)
	assert.Contains(t, err.Error(), contract.AnnotationNodeLoaderImage)

	out, err := templateFor(t, loaderTemplateYAML("worker:1"), m).Expand(p, ExpandOptions{KernelLabel: kl})
	require.NoError(t, err)
	require.Len(t, out, 2)
	ds := decode[appsv1.DaemonSet](t, out[1])
	require.Equal(t, "6.1.0-28-cloud-amd64", ds.Annotations[contract.AnnotationKernel])
	assert.NotContains(t, ds.Annotations, contract.AnnotationNodeLoaderImage)
	spec := ds.Spec.Template.Spec
	require.Len(t, spec.InitContainers, 2)
	build, sign := spec.InitContainers[0], spec.InitContainers[1]
	assert.Equal(t, map[string]string{
		"KMM_OUTPUT":     "local",
		"KMM_LOCAL_DIR":  "/kmm/build/rootfs",
		"KMM_BUILD_ARGS": "X=1\nKERNEL_FULL_VERSION=6.1.0-28-cloud-amd64\nKERNEL_VERSION=6.1.0-28-cloud-amd64\nMOD_NAME=kmod\nMOD_NAMESPACE=kmm-demo",
		"KMM_SECRETS":    "git",
	}, envMap(build), "nothing is pushed: no image, no registry")
	assert.Equal(t, map[string]string{
		"KMM_ROOT":          "/kmm/build/rootfs",
		"KMM_DIR_NAME":      "/opt",
		"KMM_FILES_TO_SIGN": "/opt/lib/modules/6.1.0-28-cloud-amd64/extra/kmm_a.ko",
	}, envMap(sign))
	signMounts := map[string]string{}
	for _, vm := range sign.VolumeMounts {
		signMounts[vm.MountPath] = vm.Name
	}
	assert.Equal(t, map[string]string{"/kmm/build": "kmm-build", "/kmm/sign/key": "kmm-sign-key", "/kmm/sign/cert": "kmm-sign-cert"}, signMounts)
	loader := container(t, spec.Containers, contract.LoaderContainer)
	assert.Equal(t, "worker:1", loader.Image)
	assert.Equal(t, "/kmm/build/rootfs", envMap(loader)["KMM_ROOT"])
	assert.Contains(t, loader.VolumeMounts, corev1.VolumeMount{Name: "kmm-build", MountPath: "/kmm/build", ReadOnly: true})
	assert.Equal(t, []string{"kmm-build", "kmm-context", "kmm-build-secret-0", "kmm-sign-key", "kmm-sign-cert"}, volumeNames(spec.Volumes))
	assert.Equal(t, map[string]string{"kubernetes.io/os": "linux", kl: "6.1.0-28-cloud-amd64"}, spec.NodeSelector, "node builds run on the target nodes")
}

const devicePluginTemplateYAML = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kmod-device-plugin
  namespace: kmm-demo
  annotations:
    render.kmm.dev/expand: device-plugin
    render.kmm.dev/module: kmm-demo/kmod
spec:
  selector:
    matchLabels:
      app.kubernetes.io/component: device-plugin
  template:
    metadata:
      labels:
        app.kubernetes.io/component: device-plugin
    spec:
      nodeSelector:
        render.kmm.dev/post-renderer: required
      containers:
        - name: device-plugin
          image: dp:1
`

func TestExpandDevicePlugin(t *testing.T) {
	mod := strings.Replace(buildModuleJSON, `"imageRepoSecret":{"name":"push"},`, `"devicePlugin":{"container":{"image":"dp:1"}},`, 1)
	m := compile(t, mod)
	tpl := templateFor(t, devicePluginTemplateYAML, m)
	p, err := NewPlan(m, append(buildNodes(), node("other", "6.6.0-1", linux, kl+"=6.6.0-1")), kl)
	require.NoError(t, err)
	require.Len(t, p.Unmatched, 1)
	out, err := tpl.Expand(p, ExpandOptions{KernelLabel: kl})
	require.NoError(t, err)
	require.Len(t, out, 1)
	ds := decode[appsv1.DaemonSet](t, out[0])
	assert.Equal(t, "kmod-device-plugin", ds.Name)
	assert.Empty(t, ds.Annotations)
	assert.Equal(t, map[string]string{"kubernetes.io/os": "linux"}, ds.Spec.Template.Spec.NodeSelector)
	assert.Equal(t, &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: kl, Operator: corev1.NodeSelectorOpIn, Values: []string{"5.15.0-105-generic", "6.1.0-28-cloud-amd64"}},
			{Key: "kmm.node.kubernetes.io/kmm-demo.kmod.device-plugin-paused", Operator: corev1.NodeSelectorOpDoesNotExist},
		}}}}}}, ds.Spec.Template.Spec.Affinity, "only the kernels that have a loader, and not where an upgrade paused the plugin")
	assert.Equal(t, contract.RoleDevicePlugin, ds.Spec.Selector.MatchLabels[contract.LabelRole])
	assert.Equal(t, "kmod", ds.Spec.Template.Labels[contract.LabelModuleName])

	none, err := tpl.Expand(&Plan{Module: m}, ExpandOptions{KernelLabel: kl})
	require.NoError(t, err)
	assert.Empty(t, none, "no loader anywhere: no device plugin")
}

func TestPlatformLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		"eks": "eks", "al2023": "al2023", "eks,gke": "mixed", "al2,al2023": "mixed", "": "unknown",
		"Debian GNU/Linux 12 (bookworm)": "other",
	} {
		assert.Equal(t, want, PlatformLabelValue(in), in)
	}
}

// Platform labels go on the objects and their pods, never on the (immutable) selector.
func TestExpandPlatformLabels(t *testing.T) {
	tpl := parseTemplate(t, templateYAML("DaemonSet", goodAnnotations, goodContainers))
	p := &Plan{Module: tpl.Module, Targets: []Target{{Kernel: "5.15.0-105-generic", LabelValue: "5.15.0-105-generic", Image: "r/kmm-ci-a:1",
		Platform: "ubuntu", OS: "Ubuntu 22.04,ubuntu"}}}
	for _, on := range []bool{true, false} {
		out, err := tpl.Expand(p, ExpandOptions{KernelLabel: kl, PlatformLabels: on})
		require.NoError(t, err)
		ds := decodeDS(t, out[0])
		for _, labels := range []map[string]string{ds.Labels, ds.Spec.Template.Labels} {
			if on {
				assert.Equal(t, "ubuntu", labels[contract.LabelPlatform])
				assert.Equal(t, "mixed", labels[contract.LabelOS], "nodes of two OS families")
			} else {
				assert.NotContains(t, labels, contract.LabelPlatform)
				assert.NotContains(t, labels, contract.LabelOS)
			}
		}
		assert.NotContains(t, ds.Spec.Selector.MatchLabels, contract.LabelPlatform)
		assert.Equal(t, "Ubuntu 22.04,ubuntu", ds.Annotations[contract.AnnotationOS], "the annotation lists them")
	}
}
