package module

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/contract"
)

// DefaultDirName is modprobe.dirName when a module sets none (the Module CRD's default).
const DefaultDirName = "/opt"

// Paths say where a module's fields stand in the document that holds it, so that errors name
// them as the user wrote them.
type Paths struct {
	Name, Namespace, Spec *field.Path
}

// ValuesPaths are the paths of the i-th module of the chart's `modules:` list.
func ValuesPaths(i int) Paths {
	root := field.NewPath("modules").Index(i)
	return Paths{Name: root.Child("name"), Namespace: root.Child("namespace"), Spec: root}
}

// ObjectPaths are the paths of a KMM Module object's fields.
var ObjectPaths = Paths{
	Name:      field.NewPath("metadata", "name"),
	Namespace: field.NewPath("metadata", "namespace"),
	Spec:      field.NewPath("spec"),
}

// Validate checks m against every rule of KMM's Module admission webhook (contract.KMMVersion:
// internal/webhook/module.go), for helm-managed and operator modules alike, and against kmm's
// own rules: a valid name and namespace, a non-empty selector of valid labels, and, for
// helm-managed modules, images that are valid references with a tag or a digest once KMM's
// variables are substituted, a module loader with at least one kernel mapping and none of the
// fields only the KMM controller implements. An operator module's images get KMM's rule only (a
// tag or a digest), as the KMM controller is what pulls them.
func (m *Module) Validate(p Paths) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateNames(m.Name, m.Namespace, p)...)
	switch m.Via {
	case "", ViaHelm, ViaOperator:
	default:
		errs = append(errs, field.NotSupported(p.Spec.Child("via"), m.Via, []Via{ViaHelm, ViaOperator}))
	}
	spec := p.Spec
	if len(m.Selector) == 0 {
		errs = append(errs, field.Required(spec.Child("selector"), "name at least one node label; an empty selector would pick every node"))
	} else {
		errs = append(errs, metav1validation.ValidateLabels(m.Selector, spec.Child("selector"))...)
	}
	errs = append(errs, validateTolerations(m.Tolerations, spec.Child("tolerations"))...)
	if !m.Operator() {
		errs = append(errs, helmOnly(m, spec)...)
	} else {
		if m.Builder != nil {
			errs = append(errs, field.Forbidden(spec.Child("builder"), "builder configures kmm's own builds; the KMM controller builds `via: operator` modules with its own settings"))
		}
		if m.AllowCOS {
			errs = append(errs, field.Forbidden(spec.Child("allowCOS"), "allowCOS places kmm's own loaders; the KMM controller places `via: operator` modules itself"))
		}
		if m.Upgrade != nil {
			errs = append(errs, field.Forbidden(spec.Child("upgrade"), "upgrade is the policy of kmm's upgrade controller; the KMM controller upgrades `via: operator` modules by moduleLoader.container.version and node labels"))
		}
		if m.AllowEKSAutoMode {
			errs = append(errs, field.Forbidden(spec.Child("allowEKSAutoMode"), "allowEKSAutoMode places kmm's own loaders; the KMM controller places `via: operator` modules itself"))
		}
	}
	c := m.Container()
	if c == nil {
		return errs
	}
	cp := spec.Child("moduleLoader", "container")
	errs = append(errs, validateContainer(c, cp, m)...)
	errs = append(errs, validateModprobe(&c.Modprobe, cp.Child("modprobe"))...)
	errs = append(errs, validateFilesToSign(c, cp)...)
	return errs
}

// ValidateUpdate is KMM's rule on changing a Module: the loader's version can change, but not
// from or to empty (the Module must be deleted and created again).
func ValidateUpdate(old, m *Module, p Paths) field.ErrorList {
	oc, nc := old.Container(), m.Container()
	if oc == nil || nc == nil || (oc.Version == "") == (nc.Version == "") {
		return nil
	}
	return field.ErrorList{field.Forbidden(p.Spec.Child("moduleLoader", "container", "version"),
		fmt.Sprintf("cannot change from %q to %q: KMM refuses updates to or from an empty version; delete the Module and create it again", oc.Version, nc.Version))}
}

func validateNames(name, namespace string, p Paths) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(name) {
		errs = append(errs, field.Invalid(p.Name, name, msg))
	}
	if namespace == "" {
		errs = append(errs, field.Required(p.Namespace, "the module's namespace"))
	}
	for _, msg := range validation.IsDNS1123Label(namespace) {
		if namespace != "" {
			errs = append(errs, field.Invalid(p.Namespace, namespace, msg))
		}
	}
	if n := len(name) + len(namespace); n > contract.MaxModuleNameNamespace {
		errs = append(errs, field.Invalid(p.Name, name, fmt.Sprintf(
			"name and namespace (%q) are %d characters together; KMM %s allows at most %d (its node labels kmm.node.kubernetes.io/<namespace>.<name>.ready must fit in 63)",
			namespace, n, contract.KMMVersion, contract.MaxModuleNameNamespace)))
	}
	return errs
}

// validateTolerations applies KMM's toleration rules, which are stricter than the API server's
// for pods: only the Equal and Exists operators.
func validateTolerations(tolerations []corev1.Toleration, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, t := range tolerations {
		p := path.Index(i)
		if t.Key != "" {
			for _, msg := range validation.IsQualifiedName(t.Key) {
				errs = append(errs, field.Invalid(p.Child("key"), t.Key, msg))
			}
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(p.Child("operator"), t.Operator, "must be Exists when key is empty"))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(p.Child("effect"), t.Effect, "must be NoExecute when tolerationSeconds is set"))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				errs = append(errs, field.Invalid(p.Child("value"), t.Value, msg))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(p.Child("value"), t.Value, "must be empty when operator is Exists"))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("operator"), t.Operator,
				[]corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}))
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect,
				[]corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}))
		}
	}
	return errs
}

func validateContainer(c *kmmv1beta1.ModuleLoaderContainerSpec, cp *field.Path, m *Module) field.ErrorList {
	var errs field.ErrorList
	// The images of a helm-managed module are pulled by kmm's own pods, so kmm checks that each is
	// a valid reference; those of an operator module are the KMM controller's, checked by KMM's
	// rule alone, so that a Module KMM accepts (its lab documents' placeholders included) renders.
	checkImage := func(image string) error { return CheckImageTemplate(image, m.Name, m.Namespace) }
	if m.Operator() {
		checkImage = CheckKMMImageFormat
	}
	//nolint:staticcheck // InTreeModuleToRemove is deprecated, and still KMM's API.
	if c.InTreeModulesToRemove != nil && c.InTreeModuleToRemove != "" {
		errs = append(errs, field.Forbidden(cp.Child("inTreeModuleToRemove"), "set either inTreeModulesToRemove or inTreeModuleToRemove (deprecated), not both"))
	}
	if c.ContainerImage != "" {
		if err := checkImage(c.ContainerImage); err != nil {
			errs = append(errs, field.Invalid(cp.Child("containerImage"), c.ContainerImage, err.Error()))
		}
	}
	for i := range c.KernelMappings {
		km := &c.KernelMappings[i]
		p := cp.Child("kernelMappings").Index(i)
		switch {
		case km.Literal != "" && km.Regexp != "":
			errs = append(errs, field.Invalid(p, DescribeMapping(km), "literal and regexp are mutually exclusive; set exactly one"))
		case km.Literal == "" && km.Regexp == "":
			errs = append(errs, field.Required(p, "set exactly one of literal or regexp"))
		}
		if km.Regexp != "" {
			if _, err := regexp.Compile(km.Regexp); err != nil {
				errs = append(errs, field.Invalid(p.Child("regexp"), km.Regexp, err.Error()))
			}
		}
		switch {
		case km.ContainerImage == "" && c.ContainerImage == "":
			errs = append(errs, field.Required(p.Child("containerImage"), "the mapping has no containerImage and moduleLoader.container sets none"))
		case km.ContainerImage != "":
			if err := checkImage(km.ContainerImage); err != nil {
				errs = append(errs, field.Invalid(p.Child("containerImage"), km.ContainerImage, err.Error()))
			}
		}
		//nolint:staticcheck // see above
		if km.InTreeModulesToRemove != nil && km.InTreeModuleToRemove != "" {
			errs = append(errs, field.Forbidden(p.Child("inTreeModuleToRemove"), "set either inTreeModulesToRemove or inTreeModuleToRemove (deprecated), not both"))
		}
		//nolint:staticcheck // see above
		if (km.InTreeModulesToRemove != nil && c.InTreeModuleToRemove != "") || (km.InTreeModuleToRemove != "" && c.InTreeModulesToRemove != nil) {
			errs = append(errs, field.Forbidden(p, "the mapping and moduleLoader.container must use the same field: both inTreeModulesToRemove, or both inTreeModuleToRemove (deprecated)"))
		}
	}
	return errs
}

func validateModprobe(mp *kmmv1beta1.ModprobeSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	named := mp.ModuleName != ""
	rawLoad := mp.RawArgs != nil && len(mp.RawArgs.Load) > 0
	rawUnload := mp.RawArgs != nil && len(mp.RawArgs.Unload) > 0
	if named {
		if rawLoad || rawUnload {
			errs = append(errs, field.Forbidden(p.Child("rawArgs"), "rawArgs replace the whole modprobe command: set either moduleName or rawArgs, not both"))
		}
	} else {
		if !rawLoad {
			errs = append(errs, field.Required(p.Child("rawArgs", "load"), "set moduleName, or both rawArgs.load and rawArgs.unload"))
		}
		if !rawUnload {
			errs = append(errs, field.Required(p.Child("rawArgs", "unload"), "set moduleName, or both rawArgs.load and rawArgs.unload"))
		}
	}
	order := mp.ModulesLoadingOrder
	if order == nil {
		return errs
	}
	op := p.Child("modulesLoadingOrder")
	if len(order) < 2 {
		errs = append(errs, field.Invalid(op, order, "list at least two modules: moduleName first, then the modules it needs loaded before it"))
	}
	if !named {
		errs = append(errs, field.Required(p.Child("moduleName"), "a loading order needs moduleName"))
	} else if len(order) > 0 && order[0] != mp.ModuleName {
		errs = append(errs, field.Invalid(op.Index(0), order[0], fmt.Sprintf("the first module of the loading order must be moduleName (%q)", mp.ModuleName)))
	}
	seen := sets.New[string]()
	for i, name := range order {
		if seen.Has(name) {
			errs = append(errs, field.Duplicate(op.Index(i), name))
		}
		seen.Insert(name)
	}
	return errs
}

func validateFilesToSign(c *kmmv1beta1.ModuleLoaderContainerSpec, cp *field.Path) field.ErrorList {
	dir := c.Modprobe.DirName
	if dir == "" {
		dir = DefaultDirName
	}
	errs := validateSign(c.Sign, dir, cp.Child("sign"))
	for i := range c.KernelMappings {
		errs = append(errs, validateSign(c.KernelMappings[i].Sign, dir, cp.Child("kernelMappings").Index(i).Child("sign"))...)
	}
	return errs
}

func validateSign(s *kmmv1beta1.Sign, dir string, p *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	if len(s.FilesToSign) == 0 {
		return field.ErrorList{field.Required(p.Child("filesToSign"), "list the module files to sign")}
	}
	var errs field.ErrorList
	for i, f := range s.FilesToSign {
		if !strings.HasPrefix(f, dir+"/") {
			errs = append(errs, field.Invalid(p.Child("filesToSign").Index(i), f, fmt.Sprintf("must be under modprobe.dirName %q", dir)))
		}
	}
	return errs
}

// helmOnly refuses, on a helm-managed module, what only the KMM controller implements, and
// checks what kmm builds, signs and runs itself.
func helmOnly(m *Module, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	c := m.Container()
	if c == nil {
		errs = append(errs, field.Required(spec.Child("moduleLoader"), "a helm-managed module needs moduleLoader.container (its image, modprobe and kernel mappings)"))
		return errs
	}
	cp := spec.Child("moduleLoader", "container")
	if len(c.KernelMappings) == 0 {
		errs = append(errs, field.Required(cp.Child("kernelMappings"), "list at least one kernel mapping: a kernel no mapping matches gets no loader"))
	}
	// A helm-managed module's version names what its loaders load: the node label
	// kmm.node.kubernetes.io/<ns>.<name>.version.ready carries it, as KMM's ordered upgrade does.
	for _, msg := range validation.IsValidLabelValue(c.Version) {
		errs = append(errs, field.Invalid(cp.Child("version"), c.Version, "the version is a node label value: "+msg))
	}
	errs = append(errs, ValidateUpgrade(m.Upgrade, spec.Child("upgrade"))...)
	// registryTLS is how kmm reaches the image's registry where it does so itself: the build
	// Job's push and the image checks of registry builds (as KMM's builds do). Nodes pull the
	// image through their container runtime, whose registry configuration it cannot change.
	registryBuild := func(i int) bool {
		if m.BuildStrategy() != StrategyRegistry {
			return false
		}
		km := &c.KernelMappings[i]
		return c.Build != nil || c.Sign != nil || km.Build != nil || km.Sign != nil
	}
	insecureTLS := func(p *field.Path) {
		errs = append(errs, field.Forbidden(p, "registryTLS applies to the image's registry where kmm reaches it itself, "+
			"the push and image checks of registry builds, and this module builds nothing there; nodes pull through their container runtime's "+
			"own registry configuration (containerd: /etc/containerd/certs.d/<registry>/hosts.toml). Remove it, or use `via: operator`"))
	}
	if c.RegistryTLS.Insecure || c.RegistryTLS.InsecureSkipTLSVerify {
		any := false
		for i := range c.KernelMappings {
			any = any || registryBuild(i)
		}
		if !any {
			insecureTLS(cp.Child("registryTLS"))
		}
	}
	for i := range c.KernelMappings {
		km := &c.KernelMappings[i]
		if km.RegistryTLS != nil && (km.RegistryTLS.Insecure || km.RegistryTLS.InsecureSkipTLSVerify) && !registryBuild(i) {
			insecureTLS(cp.Child("kernelMappings").Index(i).Child("registryTLS"))
		}
	}
	errs = append(errs, validateBuilds(m, spec)...)
	errs = append(errs, validateDevicePlugin(m, spec)...)
	return errs
}

// validateBuilds checks, for each kernel mapping, the build and the signing KMM's merge gives
// it, as kmm runs them (contract.KMMVersion's semantics, BuildKit instead of Kaniko).
func validateBuilds(m *Module, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	c := m.Container()
	cp := spec.Child("moduleLoader", "container")
	bp := spec.Child("builder")
	if m.Builder != nil {
		switch m.Builder.Strategy {
		case "", StrategyRegistry, StrategyNode:
		default:
			errs = append(errs, field.NotSupported(bp.Child("strategy"), m.Builder.Strategy, []Strategy{StrategyRegistry, StrategyNode}))
		}
		if m.Builder.Dockerfile != "" && !m.Builds() {
			errs = append(errs, field.Invalid(bp.Child("dockerfile"), "(inline Dockerfile)", "nothing is built: add moduleLoader.container.build (or a kernel mapping's build) to use it"))
		}
	}
	errs = append(errs, checkBuild(c.Build, cp.Child("build"))...)
	for i := range c.KernelMappings {
		km := &c.KernelMappings[i]
		mp := cp.Child("kernelMappings").Index(i)
		errs = append(errs, checkBuild(km.Build, mp.Child("build"))...)
		b, s := mergeBuild(c.Build, km.Build), mergeSign(c.Sign, km.Sign)
		if b == nil && s == nil {
			continue
		}
		img := km.ContainerImage
		if img == "" {
			img = c.ContainerImage
		}
		if strings.Contains(img, "@") {
			errs = append(errs, field.Invalid(mp.Child("containerImage"), img, "a built or signed image is pushed to a tag: name a tag, not a digest"))
		}
		if b != nil && (b.DockerfileConfigMap == nil || b.DockerfileConfigMap.Name == "") && (m.Builder == nil || m.Builder.Dockerfile == "") {
			errs = append(errs, field.Required(mp.Child("build", "dockerfileConfigMap"), "name the ConfigMap that holds the Dockerfile (key `dockerfile`), at the mapping or the container, or set builder.dockerfile"))
		}
		if s == nil {
			continue
		}
		sp := mp.Child("sign")
		if s.KeySecret == nil || s.KeySecret.Name == "" {
			errs = append(errs, field.Required(sp.Child("keySecret"), "the Secret (key `key`) that holds the private signing key"))
		}
		if s.CertSecret == nil || s.CertSecret.Name == "" {
			errs = append(errs, field.Required(sp.Child("certSecret"), "the Secret (key `cert`) that holds the signing certificate"))
		}
		if b != nil {
			continue
		}
		if m.BuildStrategy() == StrategyNode {
			errs = append(errs, field.Forbidden(sp, "the node strategy signs what it builds on the node: add a build, or use builder.strategy: registry to sign a prebuilt unsignedImage"))
		} else if s.UnsignedImage == "" {
			errs = append(errs, field.Required(sp.Child("unsignedImage"), "signing without a build needs the image to sign"))
		} else if err := CheckImageTemplate(s.UnsignedImage, m.Name, m.Namespace); err != nil {
			errs = append(errs, field.Invalid(sp.Child("unsignedImage"), s.UnsignedImage, err.Error()))
		}
	}
	return errs
}

// checkBuild refuses what a KMM build may hold and kmm's BuildKit builds cannot honour.
func checkBuild(b *kmmv1beta1.Build, p *field.Path) field.ErrorList {
	if b == nil {
		return nil
	}
	var errs field.ErrorList
	if b.KanikoParams != nil {
		errs = append(errs, field.Forbidden(p.Child("kanikoParams"), "kmm builds with BuildKit, not Kaniko: set the chart's build.builderImage instead"))
	}
	for i, s := range b.Secrets {
		for _, msg := range validation.IsDNS1123Subdomain(s.Name) {
			errs = append(errs, field.Invalid(p.Child("secrets").Index(i).Child("name"), s.Name, msg))
		}
	}
	for i, a := range b.BuildArgs {
		if a.Name == "" {
			errs = append(errs, field.Required(p.Child("buildArgs").Index(i).Child("name"), ""))
		}
	}
	return errs
}

// validateDevicePlugin checks a helm-managed module's device plugin: an image kmm can pull, and
// a module name its pods wait for.
func validateDevicePlugin(m *Module, spec *field.Path) field.ErrorList {
	dp := m.DevicePlugin
	if dp == nil {
		return nil
	}
	var errs field.ErrorList
	p := spec.Child("devicePlugin")
	if err := CheckImageReference(dp.Container.Image); err != nil {
		errs = append(errs, field.Invalid(p.Child("container", "image"), dp.Container.Image, err.Error()))
	}
	if dp.InitContainer != nil {
		if err := CheckImageReference(dp.InitContainer.Image); err != nil {
			errs = append(errs, field.Invalid(p.Child("initContainer", "image"), dp.InitContainer.Image, err.Error()))
		}
	}
	if c := m.Container(); c != nil && c.Modprobe.ModuleName == "" {
		errs = append(errs, field.Required(spec.Child("moduleLoader", "container", "modprobe", "moduleName"), "a device plugin starts once its module is loaded: name the module (rawArgs give kmm no name to wait for)"))
	}
	return errs
}
