package render

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"kmm.dev/kmm/pkg/contract"
)

// Template is a template the chart marked for kmm-render (contract.AnnotationExpand), and its
// module: a loader DaemonSet, a build Job or a device plugin DaemonSet.
type Template struct {
	Node   *yaml.RNode
	Module *Module
	// Kind is the marker's value: contract.ExpandModuleLoader, ExpandModuleBuild or
	// ExpandDevicePlugin.
	Kind string

	// envNodes caches the YAML of the environment variables the template's objects get: most
	// are the same for every kernel (see envCache).
	envNodes envCache
}

// ExpandOptions is what expanding needs besides the template and the plan.
type ExpandOptions struct {
	// KernelLabel is the node label key that carries the kernel.
	KernelLabel string
	// ConfigMaps holds the data of the ConfigMaps the input renders, by "<namespace>/<name>",
	// as one string each: a build Job's name covers its Dockerfile when the chart renders it.
	ConfigMaps map[string]string
	// PlatformLabels puts the contract.LabelPlatform and LabelOS labels on generated objects.
	PlatformLabels bool
	// BuildJobs is filled by expanding build templates and read by expanding loaders: the name
	// of the Job that builds a module's image for a kernel, by BuildJobKey. Expand build
	// templates first.
	BuildJobs map[string]string
	// Settings are the release's settings (build defaults per OS); nil: none.
	Settings *Settings
}

// BuildJobKey keys ExpandOptions.BuildJobs.
func BuildJobKey(moduleID, kernel string) string { return moduleID + "\x00" + kernel }

var expandKinds = map[string]string{
	contract.ExpandModuleLoader: "DaemonSet",
	contract.ExpandModuleBuild:  "Job",
	contract.ExpandDevicePlugin: "DaemonSet",
}

// TemplateModule returns the marker of a marked template and the "<namespace>/<name>" of the
// module it expands.
func TemplateModule(n *yaml.RNode) (kind, id string, err error) {
	kind = n.GetAnnotations()[contract.AnnotationExpand]
	want, ok := expandKinds[kind]
	if !ok {
		return "", "", fmt.Errorf("%s: unknown %s=%q (this kmm-render knows %q, %q and %q)", n.GetName(), contract.AnnotationExpand, kind,
			contract.ExpandModuleLoader, contract.ExpandModuleBuild, contract.ExpandDevicePlugin)
	}
	if n.GetKind() != want {
		return "", "", fmt.Errorf("%s is marked %s=%s but is a %s, not a %s", n.GetName(), contract.AnnotationExpand, kind, n.GetKind(), want)
	}
	id = n.GetAnnotations()[contract.AnnotationModule]
	if ns, name, ok := strings.Cut(id, "/"); !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Label(name)) > 0 {
		return "", "", fmt.Errorf("template %s: annotation %s=%q does not name a module as <namespace>/<name>", n.GetName(), contract.AnnotationModule, id)
	}
	return kind, id, nil
}

// NewTemplate pairs a marked template with its module, and checks that it holds the
// containers kmm-render fills in.
func NewTemplate(n *yaml.RNode, m *Module) (*Template, error) {
	kind, _, err := TemplateModule(n)
	if err != nil {
		return nil, err
	}
	t := &Template{Node: n, Module: m, Kind: kind}
	var need string
	switch kind {
	case contract.ExpandModuleLoader:
		if m.Container() == nil {
			return nil, fmt.Errorf("template %s: module %s has no moduleLoader", n.GetName(), m.ID())
		}
		need = contract.LoaderContainer
	case contract.ExpandModuleBuild:
		need = contract.ContainerBuild
	case contract.ExpandDevicePlugin:
		if m.DevicePlugin == nil {
			return nil, fmt.Errorf("template %s: module %s has no devicePlugin", n.GetName(), m.ID())
		}
		return t, nil
	}
	if c, err := podContainer(n, "containers", need); err != nil || c == nil {
		return nil, fmt.Errorf("template %s has no container named %q", n.GetName(), need)
	}
	return t, nil
}

// Expand makes the objects of the template for plan; the template is left unchanged.
//   - A loader: one DaemonSet per target kernel, selecting the module's nodes on that kernel,
//     running the resolved image (or, for node builds, building it first).
//   - A build: one Job per target kernel whose mapping builds or signs (registry builds).
//   - A device plugin: the DaemonSet, restricted to the kernels that have a loader; nothing when
//     none has.
func (t *Template) Expand(p *Plan, o ExpandOptions) ([]*yaml.RNode, error) {
	switch t.Kind {
	case contract.ExpandModuleBuild:
		return t.expandBuilds(p, o)
	case contract.ExpandDevicePlugin:
		return t.expandDevicePlugin(p, o)
	}
	loaded := p.LoaderTargets(o.Settings != nil && o.Settings.ExtraKernelLoaders)
	out := make([]*yaml.RNode, 0, len(loaded))
	for _, tg := range loaded {
		ds, err := t.expandLoader(tg, o)
		if err != nil {
			return nil, fmt.Errorf("template %s, kernel %s: %w", t.Node.GetName(), tg.Kernel, err)
		}
		out = append(out, ds)
	}
	return out, nil
}

// stamp sets what every object generated for a target carries: KMM's labels and the kernel's,
// on the object, its pods and (with selector) its selector, and annotations that record the
// raw kernel, the mapping and where the kernel's nodes run.
func (t *Template) stamp(n *yaml.RNode, tg Target, role string, selector bool, o ExpandOptions) error {
	m := t.Module
	labels := map[string]string{
		contract.LabelModuleName:      m.Name,
		contract.LabelModuleNamespace: m.Namespace,
		contract.LabelRole:            role,
		contract.LabelKernelHash:      KernelHash(tg.Kernel),
	}
	if tg.LabelValue != "" {
		labels[contract.LabelKernel] = tg.LabelValue
	}
	for _, f := range []yaml.Filter{
		yaml.ClearAnnotation(contract.AnnotationExpand),
		yaml.ClearAnnotation(contract.AnnotationModule),
		yaml.SetAnnotation(contract.AnnotationKernel, tg.Kernel),
		yaml.SetAnnotation(contract.AnnotationMapping, strconv.Itoa(tg.Mapping)+": "+m.Mappings[tg.Mapping].Describe()),
		yaml.SetAnnotation(contract.AnnotationPlatform, tg.Platform),
		yaml.SetAnnotation(contract.AnnotationOS, tg.OS),
	} {
		if err := n.PipeE(f); err != nil {
			return err
		}
	}
	paths := [][]string{{"metadata", "labels"}, {"spec", "template", "metadata", "labels"}}
	if selector {
		paths = append(paths, []string{"spec", "selector", "matchLabels"})
	}
	for _, path := range paths {
		if err := setStrings(n, path, labels, false); err != nil {
			return fmt.Errorf("setting %v: %w", path, err)
		}
	}
	return setPlatformLabels(n, tg.Platform, tg.OS, o)
}

// setPlatformLabels labels the object and its pods (not its selector, which is immutable) with
// where its nodes run, when o asks for it.
func setPlatformLabels(n *yaml.RNode, platforms, oses string, o ExpandOptions) error {
	if !o.PlatformLabels {
		return nil
	}
	labels := map[string]string{contract.LabelPlatform: PlatformLabelValue(platforms), contract.LabelOS: PlatformLabelValue(oses)}
	for _, path := range [][]string{{"metadata", "labels"}, {"spec", "template", "metadata", "labels"}} {
		if err := setStrings(n, path, labels, false); err != nil {
			return fmt.Errorf("setting %v: %w", path, err)
		}
	}
	return nil
}

// PlatformLabelValue is the label value of a comma-separated set of platforms or OS families:
// the one value, contract.PlatformMixed for several, "other" for one that is no label value,
// "unknown" for none.
func PlatformLabelValue(set string) string {
	switch {
	case set == "":
		return "unknown"
	case strings.Contains(set, ","):
		return contract.PlatformMixed
	case len(validation.IsValidLabelValue(set)) > 0:
		return "other"
	}
	return set
}

// setStrings sets string fields under path, keys in sorted order. With replace, the mapping at
// path is emptied first, keeping its place in the document.
func setStrings(n *yaml.RNode, path []string, kv map[string]string, replace bool) error {
	m, err := n.Pipe(yaml.LookupCreate(yaml.MappingNode, path...))
	if err != nil {
		return err
	}
	if replace {
		m.YNode().Content = nil
		m.YNode().Style = 0 // block style, even where the template wrote {}
	}
	for _, k := range sortedMapKeys(kv) {
		setStringField(m.YNode(), k, kv[k])
	}
	return nil
}

// setStringField does what m.PipeE(yaml.SetField(name, yaml.NewStringRNode(value))) does to the
// mapping m, to the byte, at a fraction of the cost: a field that exists takes the new value in
// the old one's style; a new field is appended, double-quoted when a YAML 1.1 parser would not
// read it as a string ("yes", "1.10"). kyaml decides the last by parsing every new value with
// yaml.v2 (yaml.IsValueNonString), which was most of the cost of expanding a loader; nonString
// asks it once per distinct value.
func setStringField(m *yaml.Node, name, value string) {
	v := yaml.NewStringRNode(value).YNode()
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k != nil && k.Value == name {
			v.Style = m.Content[i+1].Style
			*m.Content[i+1] = *v
			return
		}
	}
	if yaml.IsYNodeString(v) && v.Style == 0 && nonString(v.Value) {
		v.Style = yaml.DoubleQuotedStyle
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, v)
}

// nonStrings remembers yaml.IsValueNonString's answers, for nonString. It stops learning at
// maxNonStrings values, so that a long-lived caller's memory stays bounded.
var (
	nonStrings      sync.Map // string -> bool
	nonStringsCount atomic.Int64
)

const maxNonStrings = 1 << 14

// nonString is yaml.IsValueNonString(s), remembered.
func nonString(s string) bool {
	if v, ok := nonStrings.Load(s); ok {
		return v.(bool)
	}
	b := yaml.IsValueNonString(s)
	if nonStringsCount.Add(1) <= maxNonStrings {
		nonStrings.Store(s, b)
	}
	return b
}
