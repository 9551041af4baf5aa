package module

import (
	"fmt"
	"sort"
	"strings"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/contract"
)

// Strategy says how a helm-managed module's image is built.
type Strategy string

const (
	// StrategyRegistry is KMM's way: one build Job per module and kernel builds the Dockerfile
	// with BuildKit and pushes the kernel mapping's containerImage; loaders pull it.
	StrategyRegistry Strategy = "registry"
	// StrategyNode builds on each node, in the loader pod (init containers), and hands the
	// module tree to the loader through an emptyDir: nothing is pushed anywhere.
	StrategyNode Strategy = "node"
)

// DockerfileConfigMapSuffix names the ConfigMap the chart renders from a module's inline
// builder.dockerfile: "<module>" + DockerfileConfigMapSuffix.
const DockerfileConfigMapSuffix = contract.DockerfileConfigMapSuffix

// Builder is kmm's addition to a helm-managed module's builds: how they run, and an inline
// Dockerfile. KMM's own build settings (moduleLoader.container.build and each kernel
// mapping's) stay in KMM's shape.
type Builder struct {
	// Strategy is StrategyRegistry (also when empty) or StrategyNode. The chart fills in its
	// `build.strategy` default.
	Strategy Strategy `json:"strategy,omitempty"`
	// Dockerfile is an inline Dockerfile: the chart renders it into the ConfigMap
	// "<module>-dockerfile" (key `dockerfile`), which builds that name no dockerfileConfigMap use.
	Dockerfile string `json:"dockerfile,omitempty"`
}

// BuildStrategy is the module's build strategy, StrategyRegistry when unset.
func (m *Module) BuildStrategy() Strategy {
	if m.Builder == nil || m.Builder.Strategy == "" {
		return StrategyRegistry
	}
	return m.Builder.Strategy
}

// Builds reports whether the module builds or signs anything, at the container or at any kernel
// mapping.
func (m *Module) Builds() bool {
	c := m.Container()
	if c == nil {
		return false
	}
	if c.Build != nil || c.Sign != nil {
		return true
	}
	for i := range c.KernelMappings {
		if c.KernelMappings[i].Build != nil || c.KernelMappings[i].Sign != nil {
			return true
		}
	}
	return false
}

// BuildPlan is what kernel mapping i needs built and signed for one kernel, merged the way KMM
// merges a mapping's build and sign over the container's (contract.KMMVersion,
// internal/module/kernelmapper.go).
type BuildPlan struct {
	// Build is the merged build, or nil when the image is not built.
	Build *kmmv1beta1.Build
	// Sign is the merged sign with KMM's kernel variables substituted, or nil when nothing is
	// signed.
	Sign *kmmv1beta1.Sign
	// Args are the build args with KMM's own (KERNEL_VERSION, KERNEL_FULL_VERSION, MOD_NAME,
	// MOD_NAMESPACE) overriding the user's of the same name, in KMM's order.
	Args []kmmv1beta1.BuildArg
	// DockerfileConfigMap names the ConfigMap that holds the Dockerfile (key `dockerfile`).
	DockerfileConfigMap string
	// Image is the final image (the mapping's resolved containerImage).
	Image string
	// UnsignedImage is where the unsigned image is: pushed by the build (build and sign: KMM's
	// intermediate name), or the sign section's unsignedImage (sign only).
	UnsignedImage string
	// Strategy is the module's build strategy.
	Strategy Strategy
	// InsecureRegistry is the mapping's registryTLS (else the container's): the image's registry
	// is reached over plain HTTP or without verifying its certificate by the build's push and
	// the image checks (KMM's semantics for builds; nodes pull through their runtime's own
	// registry configuration).
	InsecureRegistry bool
	// OSHeaders and OSKmod are the build defaults' recipes for the kernel's OS (kmm-render's
	// Settings.OSDefaults): build.sh puts them in the build context as kmm-os-headers.sh and
	// kmm-os-kmod.sh unless the context has its own.
	OSHeaders, OSKmod string
}

// BuildPlanFor returns what mapping i needs built or signed for kernel, whose resolved image is
// image, or nil when it needs neither.
func (m *Module) BuildPlanFor(i int, kernel, image string) (*BuildPlan, error) {
	c := m.Container()
	if c == nil || i < 0 || i >= len(c.KernelMappings) {
		return nil, fmt.Errorf("module %s has no kernel mapping %d", m.ID(), i)
	}
	km := &c.KernelMappings[i]
	b := mergeBuild(c.Build, km.Build)
	s := mergeSign(c.Sign, km.Sign)
	if b == nil && s == nil {
		return nil, nil
	}
	p := &BuildPlan{Build: b, Image: image, Strategy: m.BuildStrategy()}
	p.InsecureRegistry = m.InsecureRegistry(i)
	vars := SubstitutionVars(kernel, m.Name, m.Namespace)
	if b != nil {
		k := MatchKernel(kernel)
		p.Args = OverrideBuildArgs(b.BuildArgs,
			kmmv1beta1.BuildArg{Name: "KERNEL_VERSION", Value: k},
			kmmv1beta1.BuildArg{Name: "KERNEL_FULL_VERSION", Value: k},
			kmmv1beta1.BuildArg{Name: "MOD_NAME", Value: m.Name},
			kmmv1beta1.BuildArg{Name: "MOD_NAMESPACE", Value: m.Namespace})
		switch {
		case b.DockerfileConfigMap != nil && b.DockerfileConfigMap.Name != "":
			p.DockerfileConfigMap = b.DockerfileConfigMap.Name
		case m.Builder != nil && m.Builder.Dockerfile != "":
			p.DockerfileConfigMap = m.Name + DockerfileConfigMapSuffix
		default:
			return nil, fmt.Errorf("module %s: kernelMappings[%d]: the build names no dockerfileConfigMap and the module has no builder.dockerfile", m.ID(), i)
		}
	}
	if s != nil {
		// filesToSign are paths, not image tags: the kernel goes in as the build got it (a '+'
		// inside, as in Debian's 6.12.117+deb12, stays), so that they name the files the build
		// installed. KMM substitutes the tag-safe form and misses such kernels' files.
		pathVars := make(map[string]string, len(vars))
		for k, v := range vars {
			pathVars[k] = v
		}
		pathVars["KERNEL_FULL_VERSION"] = MatchKernel(kernel)
		pathVars["KERNEL_VERSION"] = MatchKernel(kernel)
		files := make([]string, len(s.FilesToSign))
		for j, f := range s.FilesToSign {
			out, err := SubstituteImage(f, pathVars)
			if err != nil {
				return nil, fmt.Errorf("module %s: kernelMappings[%d]: filesToSign: %w", m.ID(), i, err)
			}
			files[j] = out
		}
		s.FilesToSign = files
		p.Sign = s
		switch {
		case b != nil:
			p.UnsignedImage = IntermediateImage(image, m.Name, m.Namespace)
		default:
			img, err := ResolveImage(s.UnsignedImage, kernel, m.Name, m.Namespace)
			if err != nil {
				return nil, fmt.Errorf("module %s: kernelMappings[%d]: sign.unsignedImage: %w", m.ID(), i, err)
			}
			p.UnsignedImage = img
		}
	}
	return p, nil
}

// InsecureRegistry reports whether kernel mapping i's image registry is reached over plain HTTP
// or without verifying its certificate: the mapping's registryTLS, else the container's (KMM's
// rule).
func (m *Module) InsecureRegistry(i int) bool {
	c := m.Container()
	if c == nil || i < 0 || i >= len(c.KernelMappings) {
		return false
	}
	tls := c.RegistryTLS
	if km := c.KernelMappings[i]; km.RegistryTLS != nil {
		tls = *km.RegistryTLS
	}
	return tls.Insecure || tls.InsecureSkipTLSVerify
}

// IntermediateImage is where KMM pushes a built image before signing it: the final image's tag
// with "_<namespace>_<name>_kmm_unsigned" appended.
func IntermediateImage(image, name, namespace string) string {
	sep := ":"
	if strings.Contains(image[strings.LastIndex(image, "/")+1:], ":") {
		sep = "_"
	}
	return image + sep + namespace + "_" + name + "_kmm_unsigned"
}

// mergeBuild is KMM's getRelevantBuild: the mapping's dockerfileConfigMap wins, build args are
// overridden by name, secrets are appended; the container's other fields stay.
func mergeBuild(container, mapping *kmmv1beta1.Build) *kmmv1beta1.Build {
	switch {
	case container == nil && mapping == nil:
		return nil
	case container == nil:
		return mapping.DeepCopy()
	case mapping == nil:
		return container.DeepCopy()
	}
	out := container.DeepCopy()
	if mapping.DockerfileConfigMap != nil {
		out.DockerfileConfigMap = mapping.DockerfileConfigMap.DeepCopy()
	}
	out.BuildArgs = OverrideBuildArgs(out.BuildArgs, mapping.BuildArgs...)
	out.Secrets = append(out.Secrets, mapping.Secrets...)
	return out
}

// mergeSign is KMM's getRelevantSign: the mapping's unsignedImage, keySecret and certSecret win
// when set; filesToSign are appended.
func mergeSign(container, mapping *kmmv1beta1.Sign) *kmmv1beta1.Sign {
	switch {
	case container == nil && mapping == nil:
		return nil
	case container == nil:
		return mapping.DeepCopy()
	case mapping == nil:
		return container.DeepCopy()
	}
	out := container.DeepCopy()
	if mapping.UnsignedImage != "" {
		out.UnsignedImage = mapping.UnsignedImage
	}
	if mapping.KeySecret != nil {
		out.KeySecret = mapping.KeySecret.DeepCopy()
	}
	if mapping.CertSecret != nil {
		out.CertSecret = mapping.CertSecret.DeepCopy()
	}
	out.FilesToSign = append(out.FilesToSign, mapping.FilesToSign...)
	return out
}

// OverrideBuildArgs is KMM's ApplyBuildArgOverrides: an override replaces the arg of the same
// name in place; overrides no arg names are appended in name order. args is not modified.
func OverrideBuildArgs(args []kmmv1beta1.BuildArg, overrides ...kmmv1beta1.BuildArg) []kmmv1beta1.BuildArg {
	out := append([]kmmv1beta1.BuildArg(nil), args...)
	byName := make(map[string]kmmv1beta1.BuildArg, len(overrides))
	for _, o := range overrides {
		byName[o.Name] = o
	}
	used := map[string]bool{}
	for i := range out {
		if o, ok := byName[out[i].Name]; ok {
			out[i] = o
			used[o.Name] = true
		}
	}
	var rest []string
	for name := range byName {
		if !used[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range rest {
		out = append(out, byName[name])
	}
	return out
}
