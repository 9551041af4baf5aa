package render

import (
	"fmt"
	"sort"

	"kmm.dev/kmm/pkg/module"
)

// Module is a module ready to plan: kmm's one module type with its kernel mappings compiled.
type Module struct {
	*module.Module
	// Mappings are the loader's kernel mappings, compiled, in the module's order.
	Mappings Mappings
}

// NewModule compiles m's kernel mappings. m should have passed module.Validate; a module
// without a module loader (a device-plugin-only Module) has no mappings.
func NewModule(m *module.Module) (*Module, error) {
	rm := &Module{Module: m}
	if c := m.Container(); c != nil {
		for _, km := range c.KernelMappings {
			rm.Mappings = append(rm.Mappings, KernelMapping{Literal: km.Literal, Regexp: km.Regexp, ContainerImage: km.ContainerImage})
		}
	}
	if err := rm.Mappings.Compile(); err != nil {
		return nil, fmt.Errorf("module %s: %w", m.ID(), err)
	}
	return rm, nil
}

// ImageFor resolves the image of mapping i for kernel: the mapping's image, else the module's,
// with KMM's variables substituted; the result must be a valid reference with a tag or digest.
func (m *Module) ImageFor(i int, kernel string) (string, error) {
	img := m.Mappings[i].ContainerImage
	if img == "" && m.Container() != nil {
		img = m.Container().ContainerImage
	}
	resolve := module.ResolveImage
	if m.Operator() {
		// The KMM controller pulls an operator module's images and checks them by KMM's rule
		// alone (module.CheckKMMImageFormat); the planner warns about one no node can pull.
		resolve = func(image, kernel, name, namespace string) (string, error) {
			return module.SubstituteImage(image, module.SubstitutionVars(kernel, name, namespace))
		}
	}
	out, err := resolve(img, kernel, m.Name, m.Namespace)
	if err != nil {
		return "", fmt.Errorf("module %s: kernelMappings[%d], kernel %s: %w", m.ID(), i, kernel, err)
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
