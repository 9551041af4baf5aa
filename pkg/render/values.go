package render

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// ValuesModule is a module as a chart values file declares it, reduced to what matching needs.
type ValuesModule struct {
	Spec        ModuleSpec
	Tolerations []corev1.Toleration
	Via         string
}

type valuesFile struct {
	Modules []struct {
		Name         string              `json:"name"`
		Namespace    string              `json:"namespace"`
		Via          string              `json:"via"`
		Selector     map[string]string   `json:"selector"`
		Tolerations  []corev1.Toleration `json:"tolerations"`
		ModuleLoader struct {
			Container struct {
				ContainerImage string   `json:"containerImage"`
				KernelMappings Mappings `json:"kernelMappings"`
			} `json:"container"`
		} `json:"moduleLoader"`
	} `json:"modules"`
}

// ModulesFromValues reads the modules a chart values file declares. Modules without a
// namespace get defaultNamespace, as the chart gives them the release namespace.
func ModulesFromValues(data []byte, defaultNamespace string) ([]ValuesModule, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	var vf valuesFile
	if err := json.Unmarshal(j, &vf); err != nil {
		return nil, fmt.Errorf("values: modules: %w", err)
	}
	out := make([]ValuesModule, 0, len(vf.Modules))
	for i, m := range vf.Modules {
		spec := ModuleSpec{
			Name:           m.Name,
			Namespace:      m.Namespace,
			Selector:       m.Selector,
			ContainerImage: m.ModuleLoader.Container.ContainerImage,
			KernelMappings: m.ModuleLoader.Container.KernelMappings,
		}
		if spec.Namespace == "" {
			spec.Namespace = defaultNamespace
		}
		if err := spec.Validate(); err != nil {
			return nil, fmt.Errorf("values: modules[%d]: %w", i, err)
		}
		out = append(out, ValuesModule{Spec: spec, Tolerations: m.Tolerations, Via: m.Via})
	}
	return out, nil
}
