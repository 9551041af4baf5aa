// Package chart checks what charts/kmm renders against the project's security and availability
// rules, from the rendered objects: the controller's RBAC against what upstream KMM's code calls,
// the pod security of every component, the PodDisruptionBudgets, and the Pod Security labels.
// Loaders and builds are rendered through kmm-render (in process) for every example.
package chart

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/yaml"

	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/postrender"
)

const chartDir = "../../charts/kmm"

// objects renders the chart (values files relative to the repository, --set pairs), through
// kmm-render against nodesFile when it is not empty, and returns the objects by kind.
func objects(t *testing.T, nodesFile string, files []string, set ...string) map[string][]string {
	t.Helper()
	o := chartrender.Options{ChartDir: chartDir, Namespace: "kmm-system", Values: set}
	for _, f := range files {
		o.ValueFiles = append(o.ValueFiles, filepath.Join("..", "..", f))
	}
	if nodesFile != "" {
		o.PostRenderer = postrender.HelmV3(context.Background(), postrender.New(postrender.Options{Nodes: postrender.FileNodes(filepath.Join("..", "..", nodesFile))}))
	}
	r, err := chartrender.Render(context.Background(), o)
	require.NoError(t, err)
	nodes, err := kio.FromBytes([]byte(r.Manifests))
	require.NoError(t, err)
	out := map[string][]string{}
	for _, n := range nodes {
		s, err := n.String()
		require.NoError(t, err)
		out[n.GetKind()] = append(out[n.GetKind()], s)
	}
	return out
}

func decodeAll[T any](t *testing.T, docs []string) []T {
	t.Helper()
	out := make([]T, 0, len(docs))
	for _, d := range docs {
		var v T
		require.NoError(t, yaml.Unmarshal([]byte(d), &v))
		out = append(out, v)
	}
	return out
}

// permission is one verb on one resource (of one name, or "*").
type permission struct{ group, resource, name, verb string }

func flatten(rules []rbacv1.PolicyRule) []permission {
	var out []permission
	for _, r := range rules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{"*"}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, n := range names {
					for _, v := range r.Verbs {
						out = append(out, permission{g, res, n, v})
					}
				}
			}
		}
	}
	return out
}

// upstreamRBAC reads testdata/upstream-rbac.tsv (hack/upstreamrbac): the permissions KMM v2.6.0
// gives its controller, generated from the +kubebuilder:rbac markers next to its API calls.
func upstreamRBAC(t *testing.T) map[permission]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "upstream-rbac.tsv"))
	require.NoError(t, err)
	defer f.Close()
	out := map[permission]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") || sc.Text() == "" {
			continue
		}
		c := strings.Split(sc.Text(), "\t")
		require.Len(t, c, 5, sc.Text())
		out[permission{c[1], c[2], c[3], c[4]}] = c[0]
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out)
	return out
}

// notGranted are upstream permissions the chart leaves out on purpose, and why.
var notGranted = map[string]string{
	"cluster.open-cluster-management.io/clusterclaims": "only used when KMM runs as an open-cluster-management spoke (KMM_MANAGED=true), which the chart does not set up",
	"/configmaps:create":                "upstream's leader-election Role; controller-runtime takes its lock with a Lease",
	"/configmaps:update":                "upstream's leader-election Role; controller-runtime takes its lock with a Lease",
	"/configmaps:patch":                 "upstream's leader-election Role; controller-runtime takes its lock with a Lease",
	"/configmaps:delete":                "upstream's leader-election Role; controller-runtime takes its lock with a Lease",
	"coordination.k8s.io/leases:list":   "controller-runtime's lease lock only gets, creates and updates its one Lease",
	"coordination.k8s.io/leases:watch":  "controller-runtime's lease lock only gets, creates and updates its one Lease",
	"coordination.k8s.io/leases:delete": "controller-runtime's lease lock only gets, creates and updates its one Lease",
}

func leftOut(p permission) bool {
	_, all := notGranted[p.group+"/"+p.resource]
	_, verb := notGranted[p.group+"/"+p.resource+":"+p.verb]
	return all || verb
}

// TestControllerRBACMatchesUpstream: the chart grants the controller every permission upstream
// KMM's code needs (bar the documented exceptions) and nothing it does not: each chart permission
// is one upstream grants, possibly narrowed to a resource name.
func TestControllerRBACMatchesUpstream(t *testing.T) {
	objs := objects(t, "", nil)
	var granted []permission
	for _, cr := range decodeAll[rbacv1.ClusterRole](t, objs["ClusterRole"]) {
		if cr.Labels["app.kubernetes.io/component"] == "controller" && !strings.HasSuffix(cr.Name, "metrics-reader") {
			granted = append(granted, flatten(cr.Rules)...)
		}
	}
	for _, r := range decodeAll[rbacv1.Role](t, objs["Role"]) {
		if r.Labels["app.kubernetes.io/component"] == "controller" {
			granted = append(granted, flatten(r.Rules)...)
		}
	}
	require.NotEmpty(t, granted)
	upstream := upstreamRBAC(t)

	for _, p := range granted {
		_, exact := upstream[p]
		_, anyName := upstream[permission{p.group, p.resource, "*", p.verb}]
		assert.True(t, exact || anyName, "the chart grants %s %s/%s (name %s), which KMM v2.6.0 does not use", p.verb, p.group, p.resource, p.name)
	}
	has := func(want permission) bool {
		for _, p := range granted {
			if p.group == want.group && p.resource == want.resource && p.verb == want.verb && (p.name == want.name || want.name == "*") {
				return true
			}
		}
		return false
	}
	var missing []string
	for p, src := range upstream {
		if !leftOut(p) && !has(p) {
			missing = append(missing, src+": "+p.verb+" "+p.group+"/"+p.resource)
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "KMM v2.6.0 needs these and the chart does not grant them")
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

// TestControllerAndWebhookRunRestricted: non-root, read-only root filesystem, no privilege
// escalation, every capability dropped, RuntimeDefault seccomp, liveness and readiness probes,
// and a PodDisruptionBudget that selects their pods.
func TestControllerAndWebhookRunRestricted(t *testing.T) {
	objs := objects(t, "", nil)
	deps := map[string]appsv1.Deployment{}
	for _, d := range decodeAll[appsv1.Deployment](t, objs["Deployment"]) {
		deps[d.Labels["app.kubernetes.io/component"]] = d
	}
	pdbs := map[string]policyv1.PodDisruptionBudget{}
	for _, p := range decodeAll[policyv1.PodDisruptionBudget](t, objs["PodDisruptionBudget"]) {
		pdbs[p.Labels["app.kubernetes.io/component"]] = p
	}
	for component, containerName := range map[string]string{"controller": "manager", "webhook": "webhook-server"} {
		t.Run(component, func(t *testing.T) {
			d, ok := deps[component]
			require.True(t, ok, "no %s Deployment", component)
			pod := d.Spec.Template.Spec
			require.NotNil(t, pod.SecurityContext)
			assert.Equal(t, ptr(true), pod.SecurityContext.RunAsNonRoot)
			require.NotNil(t, pod.SecurityContext.SeccompProfile)
			assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SecurityContext.SeccompProfile.Type)
			assert.False(t, pod.HostNetwork || pod.HostPID || pod.HostIPC)
			for _, v := range pod.Volumes {
				assert.Nil(t, v.HostPath, "volume %s", v.Name)
			}
			c := container(t, pod.Containers, containerName)
			require.NotNil(t, c.SecurityContext)
			assert.Equal(t, ptr(false), c.SecurityContext.AllowPrivilegeEscalation)
			assert.Equal(t, ptr(true), c.SecurityContext.ReadOnlyRootFilesystem)
			require.NotNil(t, c.SecurityContext.Capabilities)
			assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
			assert.Empty(t, c.SecurityContext.Capabilities.Add)
			assert.Nil(t, c.SecurityContext.Privileged)
			require.NotNil(t, c.LivenessProbe, "liveness probe")
			require.NotNil(t, c.ReadinessProbe, "readiness probe")
			assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
			assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)

			pdb, ok := pdbs[component]
			require.True(t, ok, "no PodDisruptionBudget for the %s", component)
			assert.Equal(t, d.Namespace, pdb.Namespace)
			assert.Equal(t, d.Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels, "the budget selects the Deployment's pods")
			require.NotNil(t, pdb.Spec.MaxUnavailable)
			assert.Equal(t, 1, pdb.Spec.MaxUnavailable.IntValue())
		})
	}
	assert.Equal(t, ptr(int32(2)), deps["webhook"].Spec.Replicas, "two webhook replicas: a drain or rollout leaves one to answer (failurePolicy Fail)")

	off := objects(t, "", nil, "controller.podDisruptionBudget.enabled=false", "webhook.podDisruptionBudget.enabled=false")
	assert.Empty(t, off["PodDisruptionBudget"])
}

func ptr[T any](v T) *T { return &v }

// TestModulePodsLeastPrivilege renders every example through kmm-render and checks each pod it
// generates: loaders add SYS_MODULE and nothing else, are not privileged and cannot escalate;
// registry build Jobs have no host access at all; device plugins are the one privileged kind
// (KMM's own device plugin contract: the kubelet's device-plugins socket folder); and only the
// module namespaces are labelled privileged for Pod Security Admission.
func TestModulePodsLeastPrivilege(t *testing.T) {
	for _, ex := range []string{"eks", "gke", "ubuntu"} {
		t.Run(ex, func(t *testing.T) {
			objs := objects(t, "examples/"+ex+"/nodes.yaml", []string{"examples/" + ex + "/values.yaml"})
			loaders, plugins := 0, 0
			for _, ds := range decodeAll[appsv1.DaemonSet](t, objs["DaemonSet"]) {
				pod := ds.Spec.Template.Spec
				assert.False(t, pod.HostNetwork || pod.HostPID || pod.HostIPC, "DaemonSet %s shares a host namespace", ds.Name)
				switch ds.Labels[contract.LabelRole] {
				case contract.RoleModuleLoader:
					loaders++
					c := container(t, pod.Containers, contract.LoaderContainer)
					sc := c.SecurityContext
					require.NotNil(t, sc, ds.Name)
					assert.Equal(t, []corev1.Capability{"SYS_MODULE"}, sc.Capabilities.Add, "loader %s", ds.Name)
					assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "loader %s", ds.Name)
					assert.Equal(t, ptr(false), sc.Privileged, "loader %s", ds.Name)
					assert.Equal(t, ptr(false), sc.AllowPrivilegeEscalation, "loader %s", ds.Name)
					assert.Equal(t, ptr(true), sc.ReadOnlyRootFilesystem, "loader %s", ds.Name)
					// Host paths: the host's modules, read only; with firmware, the firmware
					// folder and the kernel's firmware search path parameter (written as root,
					// no capability needed).
					ro := map[string]bool{}
					for _, m := range c.VolumeMounts {
						ro[m.Name] = m.ReadOnly
					}
					for _, v := range pod.Volumes {
						if v.HostPath == nil {
							continue
						}
						switch v.HostPath.Path {
						case "/lib/modules":
							assert.True(t, ro[v.Name], "loader %s mounts /lib/modules writable", ds.Name)
						case "/var/lib/firmware", "/sys/module/firmware_class/parameters":
							assert.Contains(t, c.Env, corev1.EnvVar{Name: "KMM_FIRMWARE_PATH", Value: "/firmware"},
								"loader %s mounts %s but loads no firmware", ds.Name, v.HostPath.Path)
						default:
							assert.Failf(t, "unexpected host path", "loader %s mounts %s", ds.Name, v.HostPath.Path)
						}
					}
					for _, ic := range pod.InitContainers {
						if ic.SecurityContext != nil && ic.SecurityContext.Capabilities != nil {
							assert.Empty(t, ic.SecurityContext.Capabilities.Add, "init container %s of %s", ic.Name, ds.Name)
						}
						if ic.SecurityContext != nil {
							assert.NotEqual(t, ptr(true), ic.SecurityContext.Privileged, "init container %s of %s", ic.Name, ds.Name)
						}
					}
				case contract.RoleDevicePlugin:
					plugins++
					var hostPaths []string
					for _, v := range pod.Volumes {
						if v.HostPath != nil {
							hostPaths = append(hostPaths, v.HostPath.Path)
						}
					}
					slices.Sort(hostPaths)
					// The kubelet's device-plugins folder (KMM's device plugin contract), and
					// /sys/module, read only, for the init container that waits for the module.
					assert.Equal(t, []string{"/sys/module", "/var/lib/kubelet/device-plugins"}, hostPaths, "device plugin %s", ds.Name)
					for _, c := range pod.InitContainers {
						for _, m := range c.VolumeMounts {
							if m.MountPath == "/host/sys/module" {
								assert.True(t, m.ReadOnly, "%s mounts /sys/module writable", c.Name)
							}
						}
					}
				}
			}
			assert.NotZero(t, loaders)
			assert.NotZero(t, plugins)
			jobs := decodeAll[batchv1.Job](t, objs["Job"])
			assert.NotEmpty(t, jobs)
			for _, j := range jobs {
				pod := j.Spec.Template.Spec
				assert.False(t, pod.HostNetwork || pod.HostPID || pod.HostIPC, "Job %s", j.Name)
				for _, v := range pod.Volumes {
					assert.Nil(t, v.HostPath, "build Job %s mounts host path %v", j.Name, v.HostPath)
				}
				for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
					sc := c.SecurityContext
					require.NotNil(t, sc, "container %s of Job %s", c.Name, j.Name)
					assert.NotEqual(t, ptr(true), sc.Privileged, "container %s of Job %s", c.Name, j.Name)
					if c.Name == contract.ContainerBuild {
						// Rootless BuildKit maps its user namespace with newuidmap/newgidmap, which
						// are setuid: the build may not forbid escalation (within that namespace).
						// It runs as uid 1000 with no capability added and no host access.
						assert.Equal(t, ptr(int64(1000)), sc.RunAsUser, "Job %s", j.Name)
					} else {
						assert.Equal(t, ptr(false), sc.AllowPrivilegeEscalation, "container %s of Job %s", c.Name, j.Name)
					}
					if sc.Capabilities != nil {
						assert.Empty(t, sc.Capabilities.Add, "container %s of Job %s", c.Name, j.Name)
					}
					assert.NotEqual(t, ptr(int64(0)), sc.RunAsUser, "container %s of Job %s runs as root", c.Name, j.Name)
				}
			}

			// Pod Security Admission: when the chart creates the module namespaces, they and
			// nothing else are privileged; the release namespace is left as the cluster has it.
			assert.Empty(t, objs["Namespace"], "moduleNamespaces.create is off by default")
			created := objects(t, "examples/"+ex+"/nodes.yaml", []string{"examples/" + ex + "/values.yaml"}, "moduleNamespaces.create=true")
			var privileged []string
			for _, ns := range decodeAll[corev1.Namespace](t, created["Namespace"]) {
				assert.Equal(t, "privileged", ns.Labels["pod-security.kubernetes.io/enforce"], "namespace %s", ns.Name)
				privileged = append(privileged, ns.Name)
			}
			slices.Sort(privileged)
			assert.Equal(t, moduleNamespaces(t, objs), privileged)
			assert.NotContains(t, privileged, "kmm-system")
		})
	}
}

// moduleNamespaces are the namespaces the rendered loaders, plugins and Jobs run in.
func moduleNamespaces(t *testing.T, objs map[string][]string) []string {
	set := map[string]bool{}
	for _, ds := range decodeAll[appsv1.DaemonSet](t, objs["DaemonSet"]) {
		set[ds.Namespace] = true
	}
	var out []string
	for ns := range set {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}

// TestDriftCronJob: drift.enabled renders the CronJob as values.yaml documents it (every five
// minutes, kmm-render drift against this release, Events on), running restricted, and an
// identity that can list nodes, read the release namespace's Secrets (Helm's storage) and create
// Events, and nothing else. Off by default; on, it runs kmm's published image at the chart's
// appVersion unless told otherwise, and an empty repository is refused.
func TestDriftCronJob(t *testing.T) {
	assert.Empty(t, objects(t, "", []string{"examples/gke/values.yaml"})["CronJob"], "off by default")

	objs := objects(t, "", []string{"examples/gke/values.yaml"},
		"drift.enabled=true", "drift.image.repository=registry.example.com/kmm-render", "drift.image.tag=v1.2.3")
	jobs := decodeAll[batchv1.CronJob](t, objs["CronJob"])
	require.Len(t, jobs, 1)
	cj := jobs[0]
	assert.Equal(t, "kmm-drift", cj.Name)
	assert.Equal(t, "kmm-system", cj.Namespace)
	assert.Equal(t, "*/5 * * * *", cj.Spec.Schedule)
	assert.Equal(t, batchv1.ForbidConcurrent, cj.Spec.ConcurrencyPolicy)
	assert.Equal(t, ptr(int32(0)), cj.Spec.JobTemplate.Spec.BackoffLimit, "a drifted run fails its Job once")
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	assert.Equal(t, "kmm-drift", pod.ServiceAccountName)
	c := container(t, pod.Containers, "drift")
	assert.Equal(t, "registry.example.com/kmm-render:v1.2.3", c.Image)
	assert.Equal(t, []string{"drift", "--release=kmm", "--namespace=kmm-system",
		"--kernel-label=feature.node.kubernetes.io/kernel-version.full", "--timeout=30s", "--events"}, c.Args)
	assert.Equal(t, ptr(true), pod.SecurityContext.RunAsNonRoot)
	assert.Equal(t, ptr(false), c.SecurityContext.AllowPrivilegeEscalation)
	assert.Equal(t, ptr(true), c.SecurityContext.ReadOnlyRootFilesystem)
	assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)

	rules := map[string][]rbacv1.PolicyRule{}
	for _, cr := range decodeAll[rbacv1.ClusterRole](t, objs["ClusterRole"]) {
		if cr.Labels["app.kubernetes.io/component"] == "drift" {
			rules["ClusterRole "+cr.Name] = cr.Rules
		}
	}
	for _, r := range decodeAll[rbacv1.Role](t, objs["Role"]) {
		if r.Labels["app.kubernetes.io/component"] == "drift" {
			rules["Role "+r.Namespace+"/"+r.Name] = r.Rules
		}
	}
	assert.Equal(t, map[string][]rbacv1.PolicyRule{
		"ClusterRole kmm-drift": {{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list"}}},
		"Role kmm-system/kmm-drift": {
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
		},
		"Role kmm-demo/kmm-drift": {{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}}},
	}, rules)
	var subjects []string
	for _, b := range decodeAll[rbacv1.RoleBinding](t, objs["RoleBinding"]) {
		if b.Labels["app.kubernetes.io/component"] == "drift" {
			for _, s := range b.Subjects {
				subjects = append(subjects, b.Namespace+": "+s.Namespace+"/"+s.Name)
			}
		}
	}
	slices.Sort(subjects)
	assert.Equal(t, []string{"kmm-demo: kmm-system/kmm-drift", "kmm-system: kmm-system/kmm-drift"}, subjects)

}

// TestRenderImageDefaults: with drift and upgrade on and no image given, both run kmm's published
// kmm-render image at the chart's appVersion (read from Chart.yaml here, not from the chart's
// templates); a tag or digest given wins; an empty repository is refused, naming the value.
func TestRenderImageDefaults(t *testing.T) {
	chartYAML, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	require.NoError(t, err)
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	require.NoError(t, yaml.Unmarshal(chartYAML, &chart))
	require.NotEmpty(t, chart.AppVersion)

	images := func(set ...string) map[string]string {
		objs := objects(t, "", []string{"examples/gke/values.yaml"}, append([]string{"drift.enabled=true", "upgrade.enabled=true"}, set...)...)
		cj := decodeAll[batchv1.CronJob](t, objs["CronJob"])
		require.Len(t, cj, 1)
		out := map[string]string{"drift": container(t, cj[0].Spec.JobTemplate.Spec.Template.Spec.Containers, "drift").Image}
		for _, d := range decodeAll[appsv1.Deployment](t, objs["Deployment"]) {
			if d.Labels["app.kubernetes.io/component"] == "upgrade" {
				require.Len(t, d.Spec.Template.Spec.Containers, 1)
				out["upgrade"] = d.Spec.Template.Spec.Containers[0].Image
			}
		}
		return out
	}
	assert.Equal(t, map[string]string{
		"drift":   "ghcr.io/kmm-dev/kmm-render:" + chart.AppVersion,
		"upgrade": "ghcr.io/kmm-dev/kmm-render:" + chart.AppVersion,
	}, images())
	digest := "sha256:" + strings.Repeat("ab", 32)
	assert.Equal(t, map[string]string{
		"drift":   "mirror.example.com/kmm/kmm-render:v9",
		"upgrade": "mirror.example.com/kmm/kmm-render@" + digest,
	}, images("drift.image.repository=mirror.example.com/kmm/kmm-render", "drift.image.tag=v9",
		"upgrade.image.repository=mirror.example.com/kmm/kmm-render", "upgrade.image.digest="+digest))

	for _, component := range []string{"drift", "upgrade"} {
		_, err := chartrender.Render(context.Background(), chartrender.Options{ChartDir: chartDir, Namespace: "kmm-system",
			Values: []string{component + ".enabled=true", component + ".image.repository="}})
		require.Error(t, err, component)
		assert.Contains(t, err.Error(), "/"+component+"/image/repository': minLength", component)
	}
}
