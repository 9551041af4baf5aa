// Package contract is the interface between the chart (charts/kmm) and kmm-render: the names
// both sides write and read, the format of the module list the chart hands kmm-render, and the
// rules on names that both enforce. It is the one place these are defined; the chart's
// templates spell the same strings, and pkg/contract's tests read the chart to check that they
// do.
//
// # What the chart renders for kmm-render
//
// One ConfigMap, in the release namespace, annotated
//
//	render.kmm.dev/modules: v1
//
// whose data key "modules.json" holds every module of the values (`modules:`), helm-managed and
// `via: operator` alike, as a JSON list in the shape of pkg/module.Module, each with its
// namespace filled in (the release namespace when the values name none). kmm-render decodes it
// strictly and refuses the whole release when any module breaks a rule of KMM's admission
// webhook (pkg/module.Validate). The ConfigMap stays in the release: it records what the release
// declared.
//
// One loader DaemonSet template per helm-managed module, annotated
//
//	render.kmm.dev/expand: module-loader
//	render.kmm.dev/module: <namespace>/<name>
//
// that kmm-render replaces by one DaemonSet per node kernel that the module's selector picks and
// a kernel mapping matches. The template's pod spec must hold a container named "module-loader":
// kmm-render sets its image and its load and unload commands. Rendered without kmm-render, the
// template selects no node: its nodeSelector names LabelPostRendererRequired.
//
// # What kmm-render adds to each generated DaemonSet
//
// Labels LabelModuleName, LabelModuleNamespace, LabelRole (KMM's own pod labels), LabelKernel
// and LabelKernelHash; annotations AnnotationKernel (the raw kernel), AnnotationMapping,
// AnnotationPlatform and AnnotationOS.
package contract

const (
	// KMMVersion is the upstream Kernel Module Management release whose controller, webhook, CRDs
	// and admission rules kmm ships and enforces. The chart pins the same version: Chart.yaml's
	// annotation kmm.dev/kmm-version and the suffix of every controller image tag in values.yaml
	// (a test checks both). Bump them together, and read that release's
	// internal/webhook/module.go for changed rules.
	KMMVersion = "v2.6.0"

	// MaxModuleNameNamespace is KMM v2.6.0's limit on len(name)+len(namespace) of a Module
	// (maxCombinedLength in internal/webhook/module.go; upstream's main later allows 41).
	MaxModuleNameNamespace = 40
)

// The module list.
const (
	// AnnotationModules marks the ConfigMap that lists the release's modules. Its value is the
	// format version, ModulesFormat.
	AnnotationModules = "render.kmm.dev/modules"
	// ModulesFormat is the only format this kmm-render reads.
	ModulesFormat = "v1"
	// ModulesKey is the ConfigMap data key that holds the JSON list.
	ModulesKey = "modules.json"
	// SettingsKey is the ConfigMap data key that holds the release's settings as JSON
	// (render.Settings): the chart's build.osDefaults, extraKernels and extraKernelLoaders.
	// Optional.
	SettingsKey = "settings.json"
)

// Loader templates.
const (
	// AnnotationExpand marks a DaemonSet template to expand per kernel. Its value is the role,
	// ExpandModuleLoader.
	AnnotationExpand = "render.kmm.dev/expand"
	// ExpandModuleLoader is AnnotationExpand's value on a loader template.
	ExpandModuleLoader = "module-loader"
	// AnnotationModule names the template's module as "<namespace>/<name>" in the module list.
	AnnotationModule = "render.kmm.dev/module"
	// LoaderContainer is the template's container that kmm-render fills in.
	LoaderContainer = "module-loader"
	// LabelPostRendererRequired is the node label a template selects before kmm-render
	// replaces its nodeSelector: no node carries it, so nothing runs without kmm-render.
	LabelPostRendererRequired = "render.kmm.dev/post-renderer"
)

// What kmm-render writes on generated objects.
const (
	// AnnotationKernel keeps the raw node kernel: names and label values are sanitized and can
	// fold distinct kernels together.
	AnnotationKernel = "render.kmm.dev/kernel-version"
	// AnnotationMapping records which kernel mapping picked the image: "<index>: <mapping>".
	AnnotationMapping = "render.kmm.dev/kernel-mapping"
	// AnnotationPlatform and AnnotationOS record where the kernel's nodes run (eks, gke, ubuntu,
	// generic; al2, al2023, cos, ubuntu, ...).
	AnnotationPlatform = "render.kmm.dev/platform"
	AnnotationOS       = "render.kmm.dev/os"

	// LabelPlatform and LabelOS carry, as labels of generated objects and their pods (not their
	// selectors), where the objects' nodes run: the platform and OS family when they all agree,
	// PlatformMixed when they span several (the annotations list them), "other" for an OS
	// family that is no label value. The module list's AnnotationPlatformLabels: "false" turns
	// them off.
	LabelPlatform = "render.kmm.dev/platform"
	LabelOS       = "render.kmm.dev/os"
	PlatformMixed = "mixed"
	// AnnotationPlatformLabels, on the module list ConfigMap, is "false" when the chart's
	// platformLabels value turns the platform labels off.
	AnnotationPlatformLabels = "render.kmm.dev/platform-labels"

	// LabelKernel carries the kernel label value on generated objects and their pods.
	LabelKernel = "render.kmm.dev/kernel"
	// LabelKernelHash tells generated objects' pods apart when label values fold kernels.
	LabelKernelHash = "render.kmm.dev/kernel-hash"

	// KMM's own pod labels.
	LabelModuleName      = "kmm.node.kubernetes.io/module.name"
	LabelModuleNamespace = "kmm.node.kubernetes.io/module.namespace"
	LabelRole            = "kmm.node.kubernetes.io/role"
	RoleModuleLoader     = "module-loader"
)

const (
	// ExpandModuleBuild is AnnotationExpand's value on a build Job template (registry builds):
	// kmm-render makes one Job per module and kernel that needs a build or a signature.
	ExpandModuleBuild = "module-build"
	// ExpandDevicePlugin is AnnotationExpand's value on a device plugin DaemonSet template:
	// kmm-render restricts it to the nodes of the kernels the module has a loader for.
	ExpandDevicePlugin = "device-plugin"

	// The containers of the loader and build templates that kmm-render fills in or removes.
	ContainerBuild     = "kmm-build"      // BuildKit: builds (and, registry, signs) the image
	ContainerCheck     = "kmm-check"      // build Job: is the image there already?
	ContainerWaitImage = "kmm-wait-image" // loader: waits for the build Job's image
	ContainerSign      = "kmm-sign"       // loader, node builds: signs the built modules

	// AnnotationNodeLoaderImage, on a loader template, is the image (with sh and modprobe) that
	// runs the loader container of node builds, whose module tree comes from the build.
	AnnotationNodeLoaderImage = "render.kmm.dev/node-loader-image"
	// AnnotationBuildJob, on a loader DaemonSet, names the Job that builds its image.
	AnnotationBuildJob = "render.kmm.dev/build-job"

	// NodeBuildRoot is where node builds export the built image's file system, in an emptyDir
	// the loader container mounts at NodeBuildMount.
	NodeBuildMount = "/kmm/build"
	NodeBuildRoot  = NodeBuildMount + "/rootfs"

	// DockerfileConfigMapSuffix names the ConfigMap the chart renders from a module's inline
	// builder.dockerfile: "<module>" + DockerfileConfigMapSuffix.
	DockerfileConfigMapSuffix = "-dockerfile"

	// Roles of generated objects (LabelRole).
	RoleBuild        = "build"
	RoleDevicePlugin = "device-plugin"
)
