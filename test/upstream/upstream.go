// Package upstream holds KMM's own published Module examples (modules/, copied verbatim from
// kubernetes-sigs/kernel-module-management at contract.KMMVersion: its AWS and GKE Ubuntu lab
// documents and its CI build-and-sign Module), with what kmm must make of each, for the chart
// tests (in-process Helm engine) and the helm CLI tests (real Helm 3 and 4) to share.
package upstream

import (
	"embed"
	"fmt"
	"path"
	"strings"

	"sigs.k8s.io/yaml"
)

//go:embed modules/*.yaml
var files embed.FS

// Example is one published Module.
type Example struct {
	// File is its name under modules/.
	File string
	// Nodes is the node snapshot (relative to the repository) it is rendered against.
	Nodes string
	// HelmRefused are substrings of kmm-render's message when the spec is a `via: helm` module:
	// each field kmm cannot honour, named by its values path, and why.
	HelmRefused []string
}

// Examples are the published Modules.
var Examples = []Example{
	{File: "lab-aws-kmm-kmod.yaml", Nodes: "examples/eks/nodes.yaml", HelmRefused: []string{
		"module kmm-demo/kmm-ci-a breaks KMM v2.6.0's admission rules",
		`modules[0].moduleLoader.container.kernelMappings[0].containerImage: Invalid value: "<aws-account-id>.dkr.ecr.<aws-region>.amazonaws.com/kmmo-lab:kmm-2.3"`,
		"is not a valid image reference",
	}},
	{File: "lab-gke-ubuntu-nodes.yaml", Nodes: "examples/gke/nodes.yaml", HelmRefused: []string{
		"module kmm-demo/kmm-ci-a breaks KMM v2.6.0's admission rules",
		`modules[0].moduleLoader.container.kernelMappings[0].containerImage: Invalid value: "gcr.io/<myrepo>/kmmo-lab:1.22-gke"`,
		"is not a valid image reference",
	}},
	{File: "ci-module-kmm-ci-build-sign.yaml", Nodes: "examples/ubuntu/nodes.yaml", HelmRefused: []string{
		"module kmm-demo/kmm-ci breaks KMM v2.6.0's admission rules",
		"modules[0].moduleLoader.container.kernelMappings[0].build.kanikoParams: Forbidden: kmm builds with BuildKit, not Kaniko",
	}},
}

// Namespace is the namespace the examples' modules are put in.
const Namespace = "kmm-demo"

// Spec reads the example: the Module's name and its spec.
func (e Example) Spec() (string, map[string]any, error) {
	data, err := files.ReadFile(path.Join("modules", e.File))
	if err != nil {
		return "", nil, err
	}
	var obj struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec map[string]any `json:"spec"`
	}
	// The CI file starts with a "---" line; the others do not.
	if err := yaml.Unmarshal([]byte(strings.TrimPrefix(string(data), "---\n")), &obj); err != nil {
		return "", nil, fmt.Errorf("%s: %w", e.File, err)
	}
	if obj.Kind != "Module" || obj.Metadata.Name == "" || len(obj.Spec) == 0 {
		return "", nil, fmt.Errorf("%s: not a named Module with a spec", e.File)
	}
	return obj.Metadata.Name, obj.Spec, nil
}

// Values is a values file with one module: the example's spec pasted in, as a user would, with
// the given `via`.
func (e Example) Values(via string) ([]byte, error) {
	name, spec, err := e.Spec()
	if err != nil {
		return nil, err
	}
	m := map[string]any{"name": name, "namespace": Namespace, "via": via}
	for k, v := range spec {
		m[k] = v
	}
	return yaml.Marshal(map[string]any{"modules": []any{m}})
}
