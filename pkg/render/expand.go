package render

import (
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Template is a loader DaemonSet template, as the chart renders it.
type Template struct {
	Node   *yaml.RNode
	Module *ModuleSpec
	// Tolerations are the pod template's: what the scheduler will see, so what selects nodes.
	Tolerations []corev1.Toleration
}

// ParseTemplate reads the module and the pod tolerations off a marked DaemonSet template.
func ParseTemplate(n *yaml.RNode) (*Template, error) {
	if n.GetKind() != "DaemonSet" {
		return nil, fmt.Errorf("%s is marked %s=%s but is a %s, not a DaemonSet", n.GetName(), AnnotationExpand, ExpandModuleLoader, n.GetKind())
	}
	raw, ok := n.GetAnnotations()[AnnotationModule]
	if !ok {
		return nil, fmt.Errorf("template %s has no %s annotation", n.GetName(), AnnotationModule)
	}
	m, err := ParseModuleSpec(raw)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", n.GetName(), err)
	}
	t := &Template{Node: n, Module: m}
	tol, err := n.Pipe(yaml.Lookup("spec", "template", "spec", "tolerations"))
	if err != nil {
		return nil, fmt.Errorf("template %s: reading tolerations: %w", n.GetName(), err)
	}
	if tol != nil {
		b, err := tol.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("template %s: reading tolerations: %w", n.GetName(), err)
		}
		if err := json.Unmarshal(b, &t.Tolerations); err != nil {
			return nil, fmt.Errorf("template %s: tolerations: %w", n.GetName(), err)
		}
	}
	containers, err := n.Pipe(yaml.Lookup("spec", "template", "spec", "containers", "[name="+LoaderContainer+"]"))
	if err != nil || containers == nil {
		return nil, fmt.Errorf("template %s has no container named %q", n.GetName(), LoaderContainer)
	}
	return t, nil
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
		LabelModuleName:      m.Name,
		LabelModuleNamespace: m.Namespace,
		LabelRole:            RoleModuleLoader,
		LabelKernel:          tg.LabelValue,
		LabelKernelHash:      hash,
	}
	// Each filter on its own: a pipe hands each filter the previous one's result.
	for _, f := range []yaml.Filter{
		yaml.ClearAnnotation(AnnotationExpand),
		yaml.ClearAnnotation(AnnotationModule),
		yaml.SetAnnotation(AnnotationKernel, tg.Kernel),
		yaml.SetAnnotation(AnnotationMapping, strconv.Itoa(tg.Mapping)+": "+m.KernelMappings[tg.Mapping].Describe()),
		yaml.SetAnnotation(AnnotationPlatform, tg.Platform),
		yaml.SetAnnotation(AnnotationOS, tg.OS),
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
	c, err := ds.Pipe(yaml.Lookup("spec", "template", "spec", "containers", "[name="+LoaderContainer+"]"))
	if err != nil {
		return nil, err
	}
	if err := c.PipeE(yaml.SetField("image", yaml.NewStringRNode(tg.Image))); err != nil {
		return nil, fmt.Errorf("setting the image: %w", err)
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
