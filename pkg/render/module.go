package render

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Annotations and labels of the chart <-> kmm-render contract.
const (
	// AnnotationExpand marks a chart-rendered object as a template that kmm-render expands per
	// kernel. Its value names the role: ExpandModuleLoader.
	AnnotationExpand = "render.kmm.dev/expand"
	// AnnotationModule holds the module, as JSON (ModuleSpec), on a template.
	AnnotationModule = "render.kmm.dev/module"
	// AnnotationKernel keeps the raw node kernel on every generated object: names and label
	// values are sanitized and can fold distinct kernels together.
	AnnotationKernel = "render.kmm.dev/kernel-version"
	// AnnotationMapping records which kernel mapping picked the image.
	AnnotationMapping = "render.kmm.dev/kernel-mapping"
	// AnnotationPlatform and AnnotationOS record where the kernel's nodes run (eks, gke, ubuntu,
	// generic; al2, al2023, cos, ubuntu, ...), for people and policies reading the cluster.
	AnnotationPlatform = "render.kmm.dev/platform"
	AnnotationOS       = "render.kmm.dev/os"

	// LabelKernel carries the kernel label value on generated objects and their pods.
	LabelKernel = "render.kmm.dev/kernel"
	// LabelKernelHash tells generated objects' pods apart when label values fold kernels.
	LabelKernelHash = "render.kmm.dev/kernel-hash"

	// KMM's own pod labels.
	LabelModuleName      = "kmm.node.kubernetes.io/module.name"
	LabelModuleNamespace = "kmm.node.kubernetes.io/module.namespace"
	LabelRole            = "kmm.node.kubernetes.io/role"
	RoleModuleLoader     = "module-loader"

	// ExpandModuleLoader is AnnotationExpand's value on a loader DaemonSet template.
	ExpandModuleLoader = "module-loader"
	// LoaderContainer is the name of the container whose image kmm-render resolves.
	LoaderContainer = "module-loader"

	// MaxModuleNameNamespace is KMM's limit on len(name)+len(namespace): node labels
	// kmm.node.kubernetes.io/<namespace>.<name>.ready must fit in 63 characters.
	MaxModuleNameNamespace = 41
)

// ModuleSpec is what kmm-render needs to know of a module: the chart writes it, as JSON, in
// AnnotationModule on the module's loader template.
type ModuleSpec struct {
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	Selector       map[string]string `json:"selector"`
	ContainerImage string            `json:"containerImage,omitempty"`
	KernelMappings Mappings          `json:"kernelMappings"`
}

// ParseModuleSpec decodes and validates a ModuleSpec from AnnotationModule's value.
func ParseModuleSpec(data string) (*ModuleSpec, error) {
	var m ModuleSpec
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("annotation %s is not a module: %w", AnnotationModule, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ID is "namespace/name", how messages name a module.
func (m *ModuleSpec) ID() string { return m.Namespace + "/" + m.Name }

// Validate applies KMM's rules: a DNS-1123 name and namespace that together fit in 41
// characters, a non-empty selector, at least one kernel mapping, compiling regexps, and
// images with a tag or digest. It compiles the mappings.
func (m *ModuleSpec) Validate() error {
	if errs := validation.IsDNS1123Label(m.Name); len(errs) > 0 {
		return fmt.Errorf("module name %q: %s", m.Name, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(m.Namespace); len(errs) > 0 {
		return fmt.Errorf("module %s: namespace %q: %s", m.Name, m.Namespace, strings.Join(errs, "; "))
	}
	if n := len(m.Name) + len(m.Namespace); n > MaxModuleNameNamespace {
		return fmt.Errorf("module %s: name and namespace are %d characters together; KMM allows at most %d", m.ID(), n, MaxModuleNameNamespace)
	}
	if len(m.Selector) == 0 {
		return fmt.Errorf("module %s: selector is empty; it must name at least one node label", m.ID())
	}
	if len(m.KernelMappings) == 0 {
		return fmt.Errorf("module %s: no kernelMappings", m.ID())
	}
	if err := m.KernelMappings.Compile(); err != nil {
		return fmt.Errorf("module %s: %w", m.ID(), err)
	}
	for i, km := range m.KernelMappings {
		img := km.ContainerImage
		if img == "" {
			img = m.ContainerImage
		}
		if img == "" {
			return fmt.Errorf("module %s: kernelMappings[%d] (%s) has no containerImage and the module sets none", m.ID(), i, km.Describe())
		}
		if err := CheckImageReference(img); err != nil {
			return fmt.Errorf("module %s: kernelMappings[%d]: %w", m.ID(), i, err)
		}
	}
	return nil
}

// ImageFor resolves the image of mapping i for kernel: the mapping's image, else the module's,
// with KMM's variables substituted.
func (m *ModuleSpec) ImageFor(i int, kernel string) (string, error) {
	img := m.KernelMappings[i].ContainerImage
	if img == "" {
		img = m.ContainerImage
	}
	out, err := SubstituteImage(img, SubstitutionVars(kernel, m.Name, m.Namespace))
	if err != nil {
		return "", fmt.Errorf("module %s: kernelMappings[%d]: %w", m.ID(), i, err)
	}
	return out, nil
}

func sortedMapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
