package module

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
)

// valid is a module every rule accepts; each case breaks one rule of it.
func valid(via Via) *Module {
	return &Module{
		Name:      "ptp",
		Namespace: "kmm-demo",
		Via:       via,
		ModuleSpec: kmmv1beta1.ModuleSpec{
			Selector: map[string]string{"kubernetes.io/os": "linux"},
			ModuleLoader: &kmmv1beta1.ModuleLoaderSpec{Container: kmmv1beta1.ModuleLoaderContainerSpec{
				ContainerImage: "registry.example.com/ptp:${KERNEL_FULL_VERSION}",
				Modprobe:       kmmv1beta1.ModprobeSpec{ModuleName: "ptp"},
				KernelMappings: []kmmv1beta1.KernelMapping{{Regexp: `^6\.1\.`}},
			}},
		},
	}
}

type ruleCase struct {
	name   string
	via    Via // both when empty
	mutate func(m *Module)
	// want are substrings of the one error line expected (path and message); nil: valid.
	want []string
}

func runRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		vias := []Via{ViaHelm, ViaOperator}
		if tc.via != "" {
			vias = []Via{tc.via}
		}
		for _, via := range vias {
			t.Run(tc.name+"/"+string(via), func(t *testing.T) {
				m := valid(via)
				tc.mutate(m)
				errs := m.Validate(ValuesPaths(3))
				if tc.want == nil {
					assert.Empty(t, errs)
					return
				}
				require.Len(t, errs, 1, "errors: %v", errs)
				for _, w := range tc.want {
					assert.Contains(t, errs[0].Error(), w)
				}
			})
		}
	}
}

func container(m *Module) *kmmv1beta1.ModuleLoaderContainerSpec { return &m.ModuleLoader.Container }

func TestValidateValid(t *testing.T) {
	for _, via := range []Via{"", ViaHelm, ViaOperator} {
		assert.Empty(t, valid(via).Validate(ValuesPaths(0)), "via %q", via)
	}
}

// KMM v2.6.0: "module name and namespace have a combined length of %d characters, which exceeds
// the maximum of 40"; kmm also wants DNS-1123 labels, which loader names and namespaces need.
func TestValidateNames(t *testing.T) {
	runRules(t, []ruleCase{
		{name: "40 characters together", mutate: func(m *Module) { m.Name, m.Namespace = strings.Repeat("a", 20), strings.Repeat("b", 20) }},
		{name: "41 characters together", mutate: func(m *Module) { m.Name, m.Namespace = strings.Repeat("a", 21), strings.Repeat("b", 20) },
			want: []string{"modules[3].name", "are 41 characters together", "allows at most 40"}},
		{name: "upper case name", mutate: func(m *Module) { m.Name = "PTP" },
			want: []string{"modules[3].name", `"PTP"`, "RFC 1123"}},
		{name: "no namespace", mutate: func(m *Module) { m.Namespace = "" },
			want: []string{"modules[3].namespace: Required value"}},
		{name: "namespace with a dot", mutate: func(m *Module) { m.Namespace = "kmm.demo" },
			want: []string{"modules[3].namespace", `"kmm.demo"`}},
		{name: "unknown via", mutate: func(m *Module) { m.Via = "kubectl" }, via: ViaHelm,
			want: []string{"modules[3].via", `Unsupported value: "kubectl"`}},
	})
}

// kmm's rule: a selector that names at least one valid label.
func TestValidateSelector(t *testing.T) {
	runRules(t, []ruleCase{
		{name: "empty", mutate: func(m *Module) { m.Selector = nil },
			want: []string{"modules[3].selector: Required value"}},
		{name: "invalid label value", mutate: func(m *Module) { m.Selector = map[string]string{"kernel": "5.10.109+"} },
			want: []string{"modules[3].selector", `"5.10.109+"`}},
	})
}

// KMM v2.6.0's toleration rules: key a qualified name; empty key only with Exists;
// tolerationSeconds only with NoExecute; Equal (or empty) with a label value; Exists with no
// value; no other operator; effect one of NoSchedule, PreferNoSchedule, NoExecute.
func TestValidateTolerations(t *testing.T) {
	secs := int64(30)
	tol := func(t corev1.Toleration) func(m *Module) {
		return func(m *Module) {
			m.Tolerations = []corev1.Toleration{{Key: "ok", Operator: corev1.TolerationOpExists}, t}
		}
	}
	runRules(t, []ruleCase{
		{name: "valid Equal", mutate: tol(corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule})},
		{name: "valid empty operator", mutate: tol(corev1.Toleration{Key: "gpu", Value: "true"})},
		{name: "valid Exists, no key", mutate: tol(corev1.Toleration{Operator: corev1.TolerationOpExists})},
		{name: "valid NoExecute with seconds", mutate: tol(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs})},
		{name: "invalid key", mutate: tol(corev1.Toleration{Key: "bad key!", Operator: corev1.TolerationOpExists}),
			want: []string{"modules[3].tolerations[1].key", `"bad key!"`}},
		{name: "empty key with Equal", mutate: tol(corev1.Toleration{Operator: corev1.TolerationOpEqual}),
			want: []string{"modules[3].tolerations[1].operator", "must be Exists when key is empty"}},
		{name: "seconds without NoExecute", mutate: tol(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: &secs}),
			want: []string{"modules[3].tolerations[1].effect", "must be NoExecute when tolerationSeconds is set"}},
		{name: "Equal with an invalid value", mutate: tol(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpEqual, Value: "a b"}),
			want: []string{"modules[3].tolerations[1].value", `"a b"`}},
		{name: "Exists with a value", mutate: tol(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Value: "v"}),
			want: []string{"modules[3].tolerations[1].value", "must be empty when operator is Exists"}},
		{name: "operator Gt", mutate: tol(corev1.Toleration{Key: "k", Operator: "Gt", Value: "1"}),
			want: []string{"modules[3].tolerations[1].operator", `Unsupported value: "Gt"`, `"Equal", "Exists"`}},
		{name: "unknown effect", mutate: tol(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: "NoRun"}),
			want: []string{"modules[3].tolerations[1].effect", `Unsupported value: "NoRun"`}},
	})
}

// KMM v2.6.0's kernel mapping rules: exactly one of regexp and literal; the regexp compiles;
// an image at the mapping or the container, with a tag or a digest.
func TestValidateKernelMappings(t *testing.T) {
	mapping := func(km kmmv1beta1.KernelMapping) func(m *Module) {
		return func(m *Module) {
			container(m).KernelMappings = []kmmv1beta1.KernelMapping{{Literal: "6.1.0"}, km}
		}
	}
	runRules(t, []ruleCase{
		{name: "literal and regexp", mutate: mapping(kmmv1beta1.KernelMapping{Literal: "6.1.0", Regexp: "^6"}),
			want: []string{"modules[3].moduleLoader.container.kernelMappings[1]", "literal and regexp are mutually exclusive"}},
		{name: "neither", mutate: mapping(kmmv1beta1.KernelMapping{ContainerImage: "r/x:1"}),
			want: []string{"modules[3].moduleLoader.container.kernelMappings[1]: Required value", "exactly one of literal or regexp"}},
		{name: "regexp that does not compile", mutate: mapping(kmmv1beta1.KernelMapping{Regexp: "^6.1.(0"}),
			want: []string{"modules[3].moduleLoader.container.kernelMappings[1].regexp", "missing closing )"}},
		{name: "no image anywhere", mutate: func(m *Module) {
			container(m).ContainerImage = ""
			container(m).KernelMappings = []kmmv1beta1.KernelMapping{{Literal: "6.1.0", ContainerImage: "r/x:1"}, {Regexp: "^6"}}
		}, want: []string{"modules[3].moduleLoader.container.kernelMappings[1].containerImage: Required value"}},
		{name: "mapping image without tag", mutate: mapping(kmmv1beta1.KernelMapping{Regexp: "^6", ContainerImage: "registry.example.com/ptp"}),
			want: []string{"modules[3].moduleLoader.container.kernelMappings[1].containerImage", "neither a tag nor a digest"}},
		// kmm pulls a helm-managed module's images itself: each must be a valid reference.
		{name: "container image without tag, registry port", via: ViaHelm, mutate: func(m *Module) { container(m).ContainerImage = "registry:5000/ptp" },
			want: []string{"modules[3].moduleLoader.container.containerImage", "neither a tag nor a digest"}},
		{name: "image with a bad digest", via: ViaHelm, mutate: func(m *Module) { container(m).ContainerImage = "r/ptp@sha256:xyz" },
			want: []string{"modules[3].moduleLoader.container.containerImage", "not a valid image reference"}},
		{name: "image with an unknown variable", via: ViaHelm, mutate: func(m *Module) { container(m).ContainerImage = "r/ptp:${KERNEL}" },
			want: []string{"modules[3].moduleLoader.container.containerImage", "undefined variable(s) KERNEL"}},
		{name: "image with a placeholder", via: ViaHelm, mutate: func(m *Module) {
			container(m).ContainerImage = "<aws-account-id>.dkr.ecr.<aws-region>.amazonaws.com/lab:kmm-2.3"
		},
			want: []string{"modules[3].moduleLoader.container.containerImage", "not a valid image reference"}},
		// An operator module's images are the KMM controller's: KMM's rule alone (a ':' or an '@').
		{name: "container image without tag, registry port", via: ViaOperator, mutate: func(m *Module) { container(m).ContainerImage = "registry:5000/ptp" }},
		{name: "image with a bad digest", via: ViaOperator, mutate: func(m *Module) { container(m).ContainerImage = "r/ptp@sha256:xyz" }},
		{name: "image with an unknown variable", via: ViaOperator, mutate: func(m *Module) { container(m).ContainerImage = "r/ptp:${KERNEL}" }},
		{name: "image with a placeholder", via: ViaOperator, mutate: func(m *Module) {
			container(m).ContainerImage = "<aws-account-id>.dkr.ecr.<aws-region>.amazonaws.com/lab:kmm-2.3"
		}},
		{name: "image with neither ':' nor '@'", via: ViaOperator, mutate: func(m *Module) { container(m).ContainerImage = "registry.example.com/ptp" },
			want: []string{"modules[3].moduleLoader.container.containerImage", "sets neither a tag nor a digest: KMM requires one"}},
		{name: "image with a digest", mutate: func(m *Module) {
			container(m).ContainerImage = "r/ptp@sha256:" + strings.Repeat("a", 64)
		}},
	})
}

// KMM v2.6.0: only one of inTreeModulesToRemove and inTreeModuleToRemove, at the container, at a
// mapping, and the same one at both levels.
func TestValidateInTreeModules(t *testing.T) {
	runRules(t, []ruleCase{
		{name: "both at the container", mutate: func(m *Module) {
			container(m).InTreeModulesToRemove = []string{"a"}
			container(m).InTreeModuleToRemove = "a" //nolint:staticcheck
		}, want: []string{"modules[3].moduleLoader.container.inTreeModuleToRemove: Forbidden", "not both"}},
		{name: "both at a mapping", mutate: func(m *Module) {
			container(m).KernelMappings[0].InTreeModulesToRemove = []string{"a"}
			container(m).KernelMappings[0].InTreeModuleToRemove = "a" //nolint:staticcheck
		}, want: []string{"modules[3].moduleLoader.container.kernelMappings[0].inTreeModuleToRemove: Forbidden"}},
		{name: "list at the container, single at a mapping", mutate: func(m *Module) {
			container(m).InTreeModulesToRemove = []string{"a"}
			container(m).KernelMappings[0].InTreeModuleToRemove = "a" //nolint:staticcheck
		}, want: []string{"modules[3].moduleLoader.container.kernelMappings[0]: Forbidden", "the same field"}},
		{name: "single at the container, list at a mapping", mutate: func(m *Module) {
			container(m).InTreeModuleToRemove = "a" //nolint:staticcheck
			container(m).KernelMappings[0].InTreeModulesToRemove = []string{}
		}, want: []string{"modules[3].moduleLoader.container.kernelMappings[0]: Forbidden"}},
		{name: "lists at both", mutate: func(m *Module) {
			container(m).InTreeModulesToRemove = []string{"a"}
			container(m).KernelMappings[0].InTreeModulesToRemove = []string{"b"}
		}},
	})
}

// KMM v2.6.0's modprobe rules: rawArgs never with moduleName; without moduleName both rawArgs
// load and unload; a loading order has two or more entries, needs moduleName, starts with it,
// and repeats none.
func TestValidateModprobe(t *testing.T) {
	mp := func(f func(mp *kmmv1beta1.ModprobeSpec)) func(m *Module) {
		return func(m *Module) { f(&container(m).Modprobe) }
	}
	runRules(t, []ruleCase{
		{name: "moduleName and rawArgs", mutate: mp(func(mp *kmmv1beta1.ModprobeSpec) {
			mp.RawArgs = &kmmv1beta1.ModprobeArgs{Load: []string{"ptp"}}
		}), want: []string{"modules[3].moduleLoader.container.modprobe.rawArgs: Forbidden", "either moduleName or rawArgs"}},
		{name: "no moduleName, no rawArgs.unload", mutate: mp(func(mp *kmmv1beta1.ModprobeSpec) {
			mp.ModuleName = ""
			mp.RawArgs = &kmmv1beta1.ModprobeArgs{Load: []string{"ptp"}}
		}), want: []string{"modules[3].moduleLoader.container.modprobe.rawArgs.unload: Required value"}},
		{name: "no moduleName, no rawArgs.load", mutate: mp(func(mp *kmmv1beta1.ModprobeSpec) {
			mp.ModuleName = ""
			mp.RawArgs = &kmmv1beta1.ModprobeArgs{Unload: []string{"-r", "ptp"}}
		}), want: []string{"modules[3].moduleLoader.container.modprobe.rawArgs.load: Required value"}},
		{name: "rawArgs only", mutate: mp(func(mp *kmmv1beta1.ModprobeSpec) {
			mp.ModuleName = ""
			mp.RawArgs = &kmmv1beta1.ModprobeArgs{Load: []string{"ptp"}, Unload: []string{"-r", "ptp"}}
		})},
		{name: "loading order of one", mutate: mp(func(mp *kmmv1beta1.ModprobeSpec) { mp.ModulesLoadingOrder = []string{"ptp"} }),
			want: []string{"modules[3].moduleLoader.container.modprobe.modulesLoadingOrder", "at least two modules"}},
		{name: "loading order without moduleName", mutate: mp(func(mp *kmmv1beta1.ModprobeSpec) {
			mp.ModuleName = ""
			mp.RawArgs = &kmmv1beta1.ModprobeArgs{Load: []string{"ptp"}, Unload: []string{"-r", "ptp"}}
			mp.ModulesLoadingOrder = []string{"ptp", "pps_core"}
		}), want: []string{"modules[3].moduleLoader.container.modprobe.moduleName: Required value", "loading order needs moduleName"}},
		{name: "loading order not starting with moduleName", mutate: mp(func(mp *kmmv1beta1.ModprobeSpec) {
			mp.ModulesLoadingOrder = []string{"pps_core", "ptp"}
		}), want: []string{"modules[3].moduleLoader.container.modprobe.modulesLoadingOrder[0]", `must be moduleName ("ptp")`}},
		{name: "loading order with a duplicate", mutate: mp(func(mp *kmmv1beta1.ModprobeSpec) {
			mp.ModulesLoadingOrder = []string{"ptp", "pps_core", "pps_core"}
		}), want: []string{"modules[3].moduleLoader.container.modprobe.modulesLoadingOrder[2]: Duplicate value", `"pps_core"`}},
		{name: "valid loading order", mutate: mp(func(mp *kmmv1beta1.ModprobeSpec) {
			mp.ModulesLoadingOrder = []string{"ptp", "pps_core"}
		})},
	})
}

// KMM v2.6.0: a sign section needs filesToSign, each under modprobe.dirName (default /opt).
func TestValidateFilesToSign(t *testing.T) {
	sign := func(files ...string) *kmmv1beta1.Sign {
		return &kmmv1beta1.Sign{FilesToSign: files, KeySecret: &corev1.LocalObjectReference{Name: "k"}, CertSecret: &corev1.LocalObjectReference{Name: "c"}}
	}
	runRules(t, []ruleCase{
		{name: "under the default dirName", via: ViaOperator, mutate: func(m *Module) { container(m).Sign = sign("/opt/lib/modules/x/ptp.ko") }},
		{name: "outside the default dirName", via: ViaOperator, mutate: func(m *Module) { container(m).Sign = sign("/lib/modules/x/ptp.ko") },
			want: []string{"modules[3].moduleLoader.container.sign.filesToSign[0]", `must be under modprobe.dirName "/opt"`}},
		{name: "dirName as a prefix but not a folder", via: ViaOperator, mutate: func(m *Module) {
			container(m).Modprobe.DirName = "/mods"
			container(m).Sign = sign("/mods2/ptp.ko")
		}, want: []string{"modules[3].moduleLoader.container.sign.filesToSign[0]", `"/mods"`}},
		{name: "mapping outside dirName", via: ViaOperator, mutate: func(m *Module) {
			container(m).KernelMappings[0].Sign = sign("/opt/a.ko", "/tmp/b.ko")
		}, want: []string{"modules[3].moduleLoader.container.kernelMappings[0].sign.filesToSign[1]"}},
		{name: "no files", via: ViaOperator, mutate: func(m *Module) { container(m).Sign = sign() },
			want: []string{"modules[3].moduleLoader.container.sign.filesToSign: Required value"}},
	})
}

// kmm's rules for helm-managed modules: a module loader with kernel mappings, and nothing that
// only the KMM controller implements.
func TestValidateHelmOnly(t *testing.T) {
	gen := 1
	runRules(t, []ruleCase{
		{name: "no moduleLoader", via: ViaHelm, mutate: func(m *Module) { m.ModuleLoader = nil },
			want: []string{"modules[3].moduleLoader: Required value"}},
		{name: "no moduleLoader, operator", via: ViaOperator, mutate: func(m *Module) { m.ModuleLoader = nil }},
		{name: "no kernel mappings", via: ViaHelm, mutate: func(m *Module) { container(m).KernelMappings = nil },
			want: []string{"modules[3].moduleLoader.container.kernelMappings: Required value"}},
		{name: "no kernel mappings, operator", via: ViaOperator, mutate: func(m *Module) { container(m).KernelMappings = nil }},
		{name: "version", via: ViaHelm, mutate: func(m *Module) { container(m).Version = "2.1.0-rc1" }},
		{name: "version no label value", via: ViaHelm, mutate: func(m *Module) { container(m).Version = "v2 beta" },
			want: []string{`modules[3].moduleLoader.container.version: Invalid value: "v2 beta": the version is a node label value`}},
		{name: "upgrade, operator", via: ViaOperator, mutate: func(m *Module) { m.Upgrade = &UpgradePolicy{Mode: UpgradeManual} },
			want: []string{"modules[3].upgrade: Forbidden", "via: operator"}},
		{name: "upgrade mode", via: ViaHelm, mutate: func(m *Module) { m.Upgrade = &UpgradePolicy{Mode: "rolling"} },
			want: []string{`modules[3].upgrade.mode: Unsupported value: "rolling"`, `"auto"`, `"manual"`}},
		{name: "upgrade manual", via: ViaHelm, mutate: func(m *Module) { m.Upgrade = &UpgradePolicy{Mode: UpgradeManual} }},
		{name: "upgrade maxParallel 0", via: ViaHelm, mutate: func(m *Module) { m.Upgrade = &UpgradePolicy{MaxParallel: ptr.To[int32](0)} },
			want: []string{"modules[3].upgrade.maxParallel: Invalid value: 0: must be at least 1"}},
		{name: "upgrade maxUnavailable 0%", via: ViaHelm, mutate: func(m *Module) {
			m.Upgrade = &UpgradePolicy{MaxUnavailable: ptr.To(intstr.FromString("0%"))}
		}, want: []string{`modules[3].upgrade.maxUnavailable: Invalid value: "0%": must allow at least one node`}},
		{name: "upgrade maxUnavailable words", via: ViaHelm, mutate: func(m *Module) {
			m.Upgrade = &UpgradePolicy{MaxUnavailable: ptr.To(intstr.FromString("half"))}
		}, want: []string{`modules[3].upgrade.maxUnavailable: Invalid value: "half": a number or a percentage`}},
		{name: "upgrade maxUnavailable 30%", via: ViaHelm, mutate: func(m *Module) {
			m.Upgrade = &UpgradePolicy{MaxUnavailable: ptr.To(intstr.FromString("30%")), MaxParallel: ptr.To[int32](3)}
		}},
		{name: "upgrade loadTimeout", via: ViaHelm, mutate: func(m *Module) { m.Upgrade = &UpgradePolicy{LoadTimeout: "ten minutes"} },
			want: []string{`modules[3].upgrade.loadTimeout: Invalid value: "ten minutes": a positive Go duration`}},
		{name: "upgrade drain selector", via: ViaHelm, mutate: func(m *Module) { m.Upgrade = &UpgradePolicy{Drain: &DrainPolicy{PodSelector: "app in (a"}} },
			want: []string{`modules[3].upgrade.drain.podSelector: Invalid value: "app in (a"`}},
		{name: "upgrade drain namespace", via: ViaHelm, mutate: func(m *Module) {
			m.Upgrade = &UpgradePolicy{Drain: &DrainPolicy{Namespaces: []string{"ok", "Not_OK"}}}
		}, want: []string{`modules[3].upgrade.drain.namespaces[1]: Invalid value: "Not_OK"`}},
		{name: "upgrade drain timeout", via: ViaHelm, mutate: func(m *Module) { m.Upgrade = &UpgradePolicy{Drain: &DrainPolicy{Timeout: "-5m"}} },
			want: []string{`modules[3].upgrade.drain.timeout: Invalid value: "-5m"`}},
		{name: "upgrade drain", via: ViaHelm, mutate: func(m *Module) {
			m.Upgrade = &UpgradePolicy{Drain: &DrainPolicy{PodSelector: "app=gpu-burn,tier!=system", Namespaces: []string{"ml"}, Timeout: "5m", Force: true}}
		}},
		{name: "rebuild trigger", via: ViaHelm, mutate: func(m *Module) { m.ImageRebuildTriggerGeneration = &gen }},
		{name: "insecure registry", via: ViaHelm, mutate: func(m *Module) { container(m).RegistryTLS.Insecure = true },
			want: []string{"modules[3].moduleLoader.container.registryTLS: Forbidden", "builds nothing", "hosts.toml"}},
		{name: "insecure registry of a registry build", via: ViaHelm, mutate: func(m *Module) {
			container(m).RegistryTLS.Insecure = true
			container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: &corev1.LocalObjectReference{Name: "df"}}
		}},
		{name: "insecure registry of a node build", via: ViaHelm, mutate: func(m *Module) {
			container(m).RegistryTLS.InsecureSkipTLSVerify = true
			container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: &corev1.LocalObjectReference{Name: "df"}}
			m.Builder = &Builder{Strategy: StrategyNode}
		}, want: []string{"modules[3].moduleLoader.container.registryTLS: Forbidden"}},
		{name: "insecure registry of a mapping that builds", via: ViaHelm, mutate: func(m *Module) {
			km := &container(m).KernelMappings[0]
			km.RegistryTLS = &kmmv1beta1.TLSOptions{Insecure: true}
			km.Build = &kmmv1beta1.Build{DockerfileConfigMap: &corev1.LocalObjectReference{Name: "df"}}
		}},
		{name: "insecure registry of a mapping that does not build", via: ViaHelm, mutate: func(m *Module) {
			container(m).KernelMappings[0].RegistryTLS = &kmmv1beta1.TLSOptions{Insecure: true}
		}, want: []string{"modules[3].moduleLoader.container.kernelMappings[0].registryTLS: Forbidden"}},
	})
}

func cm(name string) *corev1.LocalObjectReference { return &corev1.LocalObjectReference{Name: name} }

// Builds, signing and device plugins of helm-managed modules: what kmm's builds can run.
func TestValidateBuilds(t *testing.T) {
	sign := func() *kmmv1beta1.Sign {
		return &kmmv1beta1.Sign{KeySecret: cm("key"), CertSecret: cm("cert"), FilesToSign: []string{"/opt/lib/modules/${KERNEL_FULL_VERSION}/ptp.ko"}}
	}
	runRules(t, []ruleCase{
		{name: "build", via: ViaHelm, mutate: func(m *Module) { container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df")} }},
		{name: "build without a Dockerfile", via: ViaHelm, mutate: func(m *Module) { container(m).Build = &kmmv1beta1.Build{} },
			want: []string{"modules[3].moduleLoader.container.kernelMappings[0].build.dockerfileConfigMap: Required value"}},
		{name: "build with an inline Dockerfile", via: ViaHelm, mutate: func(m *Module) {
			container(m).Build = &kmmv1beta1.Build{}
			m.Builder = &Builder{Dockerfile: "FROM scratch"}
		}},
		{name: "mapping build with the container's Dockerfile", via: ViaHelm, mutate: func(m *Module) {
			container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df")}
			container(m).KernelMappings[0].Build = &kmmv1beta1.Build{BuildArgs: []kmmv1beta1.BuildArg{{Name: "X", Value: "1"}}}
		}},
		{name: "inline Dockerfile, nothing built", via: ViaHelm, mutate: func(m *Module) { m.Builder = &Builder{Dockerfile: "FROM scratch"} },
			want: []string{"modules[3].builder.dockerfile: Invalid value", "nothing is built"}},
		{name: "unknown strategy", via: ViaHelm, mutate: func(m *Module) { m.Builder = &Builder{Strategy: "kaniko"} },
			want: []string{"modules[3].builder.strategy: Unsupported value: \"kaniko\""}},
		{name: "builder on an operator module", via: ViaOperator, mutate: func(m *Module) { m.Builder = &Builder{Strategy: StrategyNode} },
			want: []string{"modules[3].builder: Forbidden"}},
		{name: "kaniko params", via: ViaHelm, mutate: func(m *Module) {
			container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df"), KanikoParams: &kmmv1beta1.KanikoParams{Tag: "v1"}}
		}, want: []string{"modules[3].moduleLoader.container.build.kanikoParams: Forbidden", "BuildKit"}},
		{name: "built image named by digest", via: ViaHelm, mutate: func(m *Module) {
			container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df")}
			container(m).ContainerImage = "registry.example.com/ptp@sha256:" + strings.Repeat("a", 64)
		}, want: []string{"kernelMappings[0].containerImage: Invalid value", "not a digest"}},
		{name: "build and sign", via: ViaHelm, mutate: func(m *Module) {
			container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df")}
			container(m).Sign = sign()
		}},
		{name: "mapping sign without secrets", via: ViaHelm, mutate: func(m *Module) {
			container(m).Build = &kmmv1beta1.Build{DockerfileConfigMap: cm("df")}
			container(m).KernelMappings[0].Sign = &kmmv1beta1.Sign{FilesToSign: []string{"/opt/a.ko"}, CertSecret: cm("cert")}
		}, want: []string{"modules[3].moduleLoader.container.kernelMappings[0].sign.keySecret: Required value"}},
		{name: "sign a prebuilt image", via: ViaHelm, mutate: func(m *Module) {
			container(m).Sign = sign()
			container(m).Sign.UnsignedImage = "registry.example.com/ptp:${KERNEL_FULL_VERSION}-unsigned"
		}},
		{name: "sign without a build or an image", via: ViaHelm, mutate: func(m *Module) { container(m).Sign = sign() },
			want: []string{"kernelMappings[0].sign.unsignedImage: Required value"}},
		{name: "sign without a build, node strategy", via: ViaHelm, mutate: func(m *Module) {
			container(m).Sign = sign()
			container(m).Sign.UnsignedImage = "registry.example.com/ptp:1"
			m.Builder = &Builder{Strategy: StrategyNode}
		}, want: []string{"kernelMappings[0].sign: Forbidden", "add a build"}},
		{name: "device plugin", via: ViaHelm, mutate: func(m *Module) {
			m.DevicePlugin = &kmmv1beta1.DevicePluginSpec{Container: kmmv1beta1.DevicePluginContainerSpec{Image: "registry.example.com/ptp-dp:1.0"}}
		}},
		{name: "device plugin without a tag", via: ViaHelm, mutate: func(m *Module) {
			m.DevicePlugin = &kmmv1beta1.DevicePluginSpec{Container: kmmv1beta1.DevicePluginContainerSpec{Image: "registry.example.com/ptp-dp"}}
		}, want: []string{"modules[3].devicePlugin.container.image: Invalid value", "neither a tag nor a digest"}},
		{name: "device plugin of a rawArgs module", via: ViaHelm, mutate: func(m *Module) {
			m.DevicePlugin = &kmmv1beta1.DevicePluginSpec{Container: kmmv1beta1.DevicePluginContainerSpec{Image: "registry.example.com/ptp-dp:1.0"}}
			container(m).Modprobe = kmmv1beta1.ModprobeSpec{RawArgs: &kmmv1beta1.ModprobeArgs{Load: []string{"ptp"}, Unload: []string{"-r", "ptp"}}}
		}, want: []string{"modules[3].moduleLoader.container.modprobe.moduleName: Required value", "device plugin"}},
	})
}

// KMM v2.6.0 refuses updates of the loader's version to or from empty.
func TestValidateUpdate(t *testing.T) {
	tests := []struct {
		old, new string
		want     bool
	}{
		{"v1", "", true},
		{"", "v2", true},
		{"", "", false},
		{"v1", "v2", false},
	}
	for _, tt := range tests {
		old, m := valid(ViaOperator), valid(ViaOperator)
		container(old).Version = tt.old
		container(m).Version = tt.new
		errs := ValidateUpdate(old, m, ObjectPaths)
		if !tt.want {
			assert.Empty(t, errs, "%q -> %q", tt.old, tt.new)
			continue
		}
		require.Len(t, errs, 1)
		assert.Contains(t, errs[0].Error(), "spec.moduleLoader.container.version: Forbidden")
		assert.Contains(t, errs[0].Error(), "delete the Module and create it again")
	}
}

func TestObjectPaths(t *testing.T) {
	m := valid(ViaOperator)
	m.Name = strings.Repeat("n", 33) // + "kmm-demo": 41
	errs := m.Validate(ObjectPaths)
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "metadata.name: Invalid value")
}

func TestRefused(t *testing.T) {
	assert.NoError(t, Refused("a/b", nil))
	m := valid(ViaHelm)
	m.Selector = nil
	container(m).KernelMappings[0].Regexp = "("
	err := Refused(m.ID(), m.Validate(ValuesPaths(0)))
	require.Error(t, err)
	assert.Equal(t, "module kmm-demo/ptp breaks KMM v2.6.0's admission rules:\n"+
		"  modules[0].selector: Required value: name at least one node label; an empty selector would pick every node\n"+
		"  modules[0].moduleLoader.container.kernelMappings[0].regexp: Invalid value: \"(\": error parsing regexp: missing closing ): `(`",
		err.Error())
}
