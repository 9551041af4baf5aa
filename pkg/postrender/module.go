package postrender

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"kmm.dev/kmm/pkg/render"
)

// KMMGroup is the API group of KMM's Module.
const KMMGroup = "kmm.sigs.x-k8s.io"

func isKMMModule(n *yaml.RNode) bool {
	return n.GetKind() == "Module" && strings.HasPrefix(n.GetApiVersion(), KMMGroup+"/")
}

// moduleObject is the part of a KMM Module kmm-render checks.
type moduleObject struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Selector     map[string]string   `json:"selector"`
		Tolerations  []corev1.Toleration `json:"tolerations"`
		ModuleLoader *struct {
			Container struct {
				ContainerImage string          `json:"containerImage"`
				KernelMappings render.Mappings `json:"kernelMappings"`
			} `json:"container"`
		} `json:"moduleLoader"`
	} `json:"spec"`
}

// checkModule applies KMM's rules to a Module handed to the KMM controller, and reports the
// kernels its selected nodes run that no mapping matches. The Module passes through as it is.
func (r *Renderer) checkModule(ctx context.Context, d *document, inv *inventory) ([]string, error) {
	b, err := d.node.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	var mo moduleObject
	if err := json.Unmarshal(b, &mo); err != nil {
		return nil, fmt.Errorf("%s: not a valid Module: %w", d.name(), err)
	}
	if mo.Spec.ModuleLoader == nil {
		return nil, nil // a device-plugin-only Module loads nothing
	}
	m := &render.ModuleSpec{
		Name:           mo.Metadata.Name,
		Namespace:      mo.Metadata.Namespace,
		Selector:       mo.Spec.Selector,
		ContainerImage: mo.Spec.ModuleLoader.Container.ContainerImage,
		KernelMappings: mo.Spec.ModuleLoader.Container.KernelMappings,
	}
	if m.Namespace == "" {
		return nil, fmt.Errorf("%s: Module has no metadata.namespace", d.name())
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	ns, err := inv.get(ctx)
	if err != nil {
		return nil, err
	}
	// KMM's controller selects nodes itself, without a kernel label: plan without one.
	p, err := render.NewPlanForGroups(m, mo.Spec.Tolerations, ns, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	r.warn(p)
	return unmatchedLines(p), nil
}
