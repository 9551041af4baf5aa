package postrender

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/module"
	"kmm.dev/kmm/pkg/render"
)

// KMMGroup is the API group of KMM's Module.
const KMMGroup = "kmm.sigs.x-k8s.io"

func isKMMModule(n *yaml.RNode) bool {
	return n.GetKind() == "Module" && strings.HasPrefix(n.GetApiVersion(), KMMGroup+"/")
}

func isModuleList(n *yaml.RNode) bool {
	_, ok := n.GetAnnotations()[contract.AnnotationModules]
	return ok
}

// readModuleList reads the module list document.
func readModuleList(d *document) ([]*render.Module, error) {
	ms, err := ModuleList(d.node)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	return ms, nil
}

// ModuleList decodes and validates the chart's module list, a ConfigMap annotated
// contract.AnnotationModules (see pkg/contract): every module, helm-managed or not, must pass
// KMM's admission rules. The modules come back compiled, in the list's order.
func ModuleList(n *yaml.RNode) ([]*render.Module, error) {
	if n.GetKind() != "ConfigMap" {
		return nil, fmt.Errorf("annotated %s but is a %s, not a ConfigMap", contract.AnnotationModules, n.GetKind())
	}
	if v := n.GetAnnotations()[contract.AnnotationModules]; v != contract.ModulesFormat {
		return nil, fmt.Errorf("module list format %s=%q; this kmm-render reads %q (use the kmm-render of the chart's release)", contract.AnnotationModules, v, contract.ModulesFormat)
	}
	data, ok := n.GetDataMap()[contract.ModulesKey]
	if !ok {
		return nil, fmt.Errorf("no data key %s", contract.ModulesKey)
	}
	list, err := module.DecodeList([]byte(data))
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	for i := range list {
		if prev, dup := seen[list[i].ID()]; dup {
			return nil, fmt.Errorf("modules[%d] and modules[%d] are both module %s", prev, i, list[i].ID())
		}
		seen[list[i].ID()] = i
	}
	out := make([]*render.Module, 0, len(list))
	for i := range list {
		m := &list[i]
		if err := module.Refused(m.ID(), m.Validate(module.ValuesPaths(i))); err != nil {
			return nil, err
		}
		rm, err := render.NewModule(m)
		if err != nil {
			return nil, err
		}
		out = append(out, rm)
	}
	return out, nil
}

// readModuleObject decodes a KMM Module object strictly and applies KMM's admission rules.
func readModuleObject(d *document) (*render.Module, error) {
	b, err := d.node.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	var o kmmv1beta1.Module
	if err := module.Decode(b, &o); err != nil {
		return nil, fmt.Errorf("%s: not a valid Module: %w", d.name(), err)
	}
	m := module.FromObject(&o)
	if err := module.Refused(m.ID(), append(crdRequired(d.node), m.Validate(module.ObjectPaths)...)); err != nil {
		return nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	rm, err := render.NewModule(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	return rm, nil
}

// crdRequired applies the Module CRD's one required field that decoding cannot see: every kernel
// mapping names containerImage (it may be "", for the container's image).
func crdRequired(n *yaml.RNode) field.ErrorList {
	maps, err := n.Pipe(yaml.Lookup("spec", "moduleLoader", "container", "kernelMappings"))
	if err != nil || maps == nil || maps.YNode().Kind != yaml.SequenceNode {
		return nil
	}
	var errs field.ErrorList
	for i, km := range maps.Content() {
		if yaml.NewRNode(km).Field("containerImage") == nil {
			errs = append(errs, field.Required(module.ObjectPaths.Spec.Child("moduleLoader", "container", "kernelMappings").Index(i).Child("containerImage"),
				"the Module CRD requires it on every kernel mapping (\"\" uses moduleLoader.container.containerImage)"))
		}
	}
	return errs
}
