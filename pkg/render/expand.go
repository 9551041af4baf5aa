package render

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"kmm.dev/kmm/pkg/contract"
)

// Template is a loader DaemonSet template, as the chart renders it, and its module.
type Template struct {
	Node   *yaml.RNode
	Module *Module
}

// TemplateModule returns the "<namespace>/<name>" of the module a marked template expands.
func TemplateModule(n *yaml.RNode) (string, error) {
	if n.GetKind() != "DaemonSet" {
		return "", fmt.Errorf("%s is marked %s=%s but is a %s, not a DaemonSet", n.GetName(), contract.AnnotationExpand, contract.ExpandModuleLoader, n.GetKind())
	}
	id := n.GetAnnotations()[contract.AnnotationModule]
	if ns, name, ok := strings.Cut(id, "/"); !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Label(name)) > 0 {
		return "", fmt.Errorf("template %s: annotation %s=%q does not name a module as <namespace>/<name>", n.GetName(), contract.AnnotationModule, id)
	}
	return id, nil
}

// NewTemplate pairs a marked DaemonSet template with its module, and checks that it holds the
// loader container kmm-render fills in.
func NewTemplate(n *yaml.RNode, m *Module) (*Template, error) {
	if m.Container() == nil {
		return nil, fmt.Errorf("template %s: module %s has no moduleLoader", n.GetName(), m.ID())
	}
	c, err := n.Pipe(yaml.Lookup("spec", "template", "spec", "containers", "[name="+contract.LoaderContainer+"]"))
	if err != nil || c == nil {
		return nil, fmt.Errorf("template %s has no container named %q", n.GetName(), contract.LoaderContainer)
	}
	return &Template{Node: n, Module: m}, nil
}

// Expand makes one DaemonSet per target of plan from the template: named after the template and
// the kernel, selecting the module's nodes on that kernel, running the resolved image, with
// KMM's pod labels and the raw kernel in an annotation. The template is left unchanged.
func (t *Template) Expand(p *Plan, kernelLabel string) ([]*yaml.RNode, error) {
	out := make([]*yaml.RNode, 0, len(p.Targets))
	for _, tg := range p.Targets {
		ds, err := t.expandOne(tg, kernelLabel)
		if err != nil {
			return nil, fmt.Errorf("template %s, kernel %s: %w", t.Node.GetName(), tg.Kernel, err)
		}
		out = append(out, ds)
	}
	return out, nil
}

func (t *Template) expandOne(tg Target, kernelLabel string) (*yaml.RNode, error) {
	m := t.Module
	ds := t.Node.Copy()
	name, err := ObjectName(t.Node.GetName(), tg.Kernel)
	if err != nil {
		return nil, err
	}
	if err := ds.SetName(name); err != nil {
		return nil, err
	}
	hash := KernelHash(tg.Kernel)
	labels := map[string]string{
		contract.LabelModuleName:      m.Name,
		contract.LabelModuleNamespace: m.Namespace,
		contract.LabelRole:            contract.RoleModuleLoader,
		contract.LabelKernel:          tg.LabelValue,
		contract.LabelKernelHash:      hash,
	}
	// Each filter on its own: a pipe hands each filter the previous one's result.
	for _, f := range []yaml.Filter{
		yaml.ClearAnnotation(contract.AnnotationExpand),
		yaml.ClearAnnotation(contract.AnnotationModule),
		yaml.SetAnnotation(contract.AnnotationKernel, tg.Kernel),
		yaml.SetAnnotation(contract.AnnotationMapping, strconv.Itoa(tg.Mapping)+": "+m.Mappings[tg.Mapping].Describe()),
		yaml.SetAnnotation(contract.AnnotationPlatform, tg.Platform),
		yaml.SetAnnotation(contract.AnnotationOS, tg.OS),
	} {
		if err := ds.PipeE(f); err != nil {
			return nil, err
		}
	}
	for _, path := range [][]string{
		{"metadata", "labels"},
		{"spec", "selector", "matchLabels"},
		{"spec", "template", "metadata", "labels"},
	} {
		if err := setStrings(ds, path, labels, false); err != nil {
			return nil, fmt.Errorf("setting %v: %w", path, err)
		}
	}
	selector := make(map[string]string, len(m.Selector)+1)
	for k, v := range m.Selector {
		selector[k] = v
	}
	selector[kernelLabel] = tg.LabelValue
	if err := setStrings(ds, []string{"spec", "template", "spec", "nodeSelector"}, selector, true); err != nil {
		return nil, fmt.Errorf("setting the nodeSelector: %w", err)
	}
	c, err := ds.Pipe(yaml.Lookup("spec", "template", "spec", "containers", "[name="+contract.LoaderContainer+"]"))
	if err != nil {
		return nil, err
	}
	if err := c.PipeE(yaml.SetField("image", yaml.NewStringRNode(tg.Image))); err != nil {
		return nil, fmt.Errorf("setting the image: %w", err)
	}
	load, unload := LoaderScripts(m.Container(), &m.Container().KernelMappings[tg.Mapping])
	for _, h := range []struct{ hook, script string }{{"postStart", load}, {"preStop", unload}} {
		cmd := yaml.NewListRNode("/bin/sh", "-c", h.script)
		if err := c.PipeE(yaml.LookupCreate(yaml.MappingNode, "lifecycle", h.hook, "exec"), yaml.SetField("command", cmd)); err != nil {
			return nil, fmt.Errorf("setting the %s command: %w", h.hook, err)
		}
	}
	return ds, nil
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
		if err := m.PipeE(yaml.SetField(k, yaml.NewStringRNode(kv[k]))); err != nil {
			return err
		}
	}
	return nil
}
