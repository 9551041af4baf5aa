package render

import (
	"fmt"
	"regexp"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/module"
)

// KernelMapping is one entry of a module's kernelMappings, shaped like KMM's Module API:
// exactly one of Literal and Regexp, and an optional image that overrides the module's.
type KernelMapping struct {
	Literal        string
	Regexp         string
	ContainerImage string

	re *regexp.Regexp
}

// Mappings is a module's ordered kernel mapping list. Compile it before matching.
type Mappings []KernelMapping

// Compile checks that every mapping names exactly one of literal and regexp and compiles the
// regexps (Go syntax, unanchored, as KMM does). Errors name the mapping by its index.
func (m Mappings) Compile() error {
	for i := range m {
		km := &m[i]
		switch {
		case km.Literal != "" && km.Regexp != "":
			return fmt.Errorf("kernelMappings[%d]: literal %q and regexp %q are both set; set exactly one", i, km.Literal, km.Regexp)
		case km.Literal == "" && km.Regexp == "":
			return fmt.Errorf("kernelMappings[%d]: neither literal nor regexp is set; set exactly one", i)
		case km.Regexp != "":
			re, err := regexp.Compile(km.Regexp)
			if err != nil {
				return fmt.Errorf("kernelMappings[%d]: invalid regexp %q: %w", i, km.Regexp, err)
			}
			km.re = re
		}
	}
	return nil
}

// Match returns the index of the first mapping that matches kernel, or -1. Like KMM, the
// kernel is matched with its trailing '+' trimmed (GKE COS reports e.g. "5.10.109+"): see
// module.MatchKernel. Compile must have been called.
func (m Mappings) Match(kernel string) int {
	k := module.MatchKernel(kernel)
	for i := range m {
		km := &m[i]
		if km.Literal != "" {
			if km.Literal == k {
				return i
			}
			continue
		}
		if km.re == nil {
			panic(fmt.Sprintf("render: kernelMappings[%d] matched before Compile", i))
		}
		if km.re.MatchString(k) {
			return i
		}
	}
	return -1
}

// Describe names a mapping for people: `literal "5.4.1"` or `regexp "^5\.4"`.
func (km KernelMapping) Describe() string {
	return module.DescribeMapping(&kmmv1beta1.KernelMapping{Literal: km.Literal, Regexp: km.Regexp})
}
