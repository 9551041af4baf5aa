// Package drift compares a deployed kmm release with the cluster's live nodes: which (module,
// kernel) pairs the nodes need a loader for and the release has none (drift: a node group rolled
// to a new kernel since the last helm upgrade), and which of the release's loaders serve a kernel
// no node runs any more (stale: harmless, gone at the next upgrade). It plans with the code the
// post-renderer expands with (pkg/render), from the module list the release itself holds, so the
// answer is what `helm upgrade` would change.
package drift

import (
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/postrender"
	"kmm.dev/kmm/pkg/render"
)

// Pair is one module and kernel.
type Pair struct {
	Module string   `json:"module"` // <namespace>/<name>
	Kernel string   `json:"kernel"`
	Nodes  []string `json:"nodes,omitempty"` // the live nodes that run the kernel and that the module selects
	// DaemonSet is the release's loader for the pair (stale pairs).
	DaemonSet string `json:"daemonSet,omitempty"`
}

// Report is what Check found.
type Report struct {
	Release  string `json:"release"`
	Revision int    `json:"revision"`
	// Missing are pairs the live nodes need and the release has no loader for.
	Missing []Pair `json:"missing"`
	// Stale are the release's loaders whose kernel no selected node runs (and that are not
	// extra kernels with loaders).
	Stale []Pair `json:"stale"`
	// Warnings are the planner's (nodes without the kernel label, traps), as the post-renderer
	// would print them.
	Warnings []string `json:"warnings,omitempty"`
}

// InSync is true when no pair is missing. Stale loaders do not count: they select no node.
func (r *Report) InSync() bool { return len(r.Missing) == 0 }

// Check compares a release manifest (as `helm get manifest` prints it: post-rendered) with the
// live nodes. kernelLabel is the node label that carries the kernel (the post-renderer's
// --kernel-label).
func Check(manifest string, live []nodes.Node, kernelLabel string) (*Report, error) {
	docs, err := kio.FromBytes([]byte(manifest))
	if err != nil {
		return nil, fmt.Errorf("reading the release manifest: %w", err)
	}
	var list *yaml.RNode
	have := map[string]map[string]string{} // module -> kernel -> DaemonSet
	for _, d := range docs {
		if _, ok := d.GetAnnotations()[contract.AnnotationModules]; ok {
			if list != nil {
				return nil, fmt.Errorf("the release holds two module lists (%s and %s)", list.GetName(), d.GetName())
			}
			list = d
			continue
		}
		l := d.GetLabels()
		if d.GetKind() != "DaemonSet" || l[contract.LabelRole] != contract.RoleModuleLoader {
			continue
		}
		id := l[contract.LabelModuleNamespace] + "/" + l[contract.LabelModuleName]
		if have[id] == nil {
			have[id] = map[string]string{}
		}
		have[id][d.GetAnnotations()[contract.AnnotationKernel]] = d.GetNamespace() + "/" + d.GetName()
	}
	if list == nil {
		return nil, fmt.Errorf("the release holds no module list (a ConfigMap annotated %s): is it a kmm release?", contract.AnnotationModules)
	}
	modules, err := postrender.ModuleList(list)
	if err != nil {
		return nil, fmt.Errorf("the release's module list %s: %w", list.GetName(), err)
	}
	settings, err := render.DecodeSettings(list.GetDataMap()[contract.SettingsKey])
	if err != nil {
		return nil, fmt.Errorf("the release's module list %s: %s: %w", list.GetName(), contract.SettingsKey, err)
	}
	groups := nodes.ByKernel(live)
	r := &Report{Missing: []Pair{}, Stale: []Pair{}}
	for _, m := range modules {
		if m.Operator() {
			continue // the KMM controller follows kernels itself
		}
		p, err := render.NewPlanForGroups(m, groups, kernelLabel)
		if err == nil {
			err = p.AddExtraKernels(settings.ExtraKernels, kernelLabel, settings.ExtraKernelLoaders)
		}
		if err != nil {
			// The next helm upgrade would be refused for the same reason: that is drift too,
			// and the user must hear why.
			return nil, fmt.Errorf("planning module %s against the live nodes: %w", m.ID(), err)
		}
		r.Warnings = append(r.Warnings, p.Warnings...)
		needed := map[string]bool{}
		for _, tg := range p.LoaderTargets(settings.ExtraKernelLoaders) {
			needed[tg.Kernel] = true
			if _, ok := have[m.ID()][tg.Kernel]; !ok {
				r.Missing = append(r.Missing, Pair{Module: m.ID(), Kernel: tg.Kernel, Nodes: tg.Nodes})
			}
		}
		for kernel, ds := range have[m.ID()] {
			if !needed[kernel] {
				r.Stale = append(r.Stale, Pair{Module: m.ID(), Kernel: kernel, DaemonSet: ds})
			}
		}
	}
	for _, ps := range [][]Pair{r.Missing, r.Stale} {
		sort.Slice(ps, func(i, j int) bool {
			if ps[i].Module != ps[j].Module {
				return ps[i].Module < ps[j].Module
			}
			return ps[i].Kernel < ps[j].Kernel
		})
	}
	return r, nil
}

// Text writes the report for people: one line per missing and stale pair.
func (r *Report) Text() string {
	var b strings.Builder
	switch {
	case r.InSync() && len(r.Stale) == 0:
		fmt.Fprintf(&b, "release %s (revision %d) is in sync with the nodes: every kernel they run has its loaders\n", r.Release, r.Revision)
	case r.InSync():
		fmt.Fprintf(&b, "release %s (revision %d) is in sync with the nodes (%d stale loader(s), removed by the next upgrade)\n", r.Release, r.Revision, len(r.Stale))
	default:
		fmt.Fprintf(&b, "release %s (revision %d) has drifted: %d module and kernel pair(s) that nodes need have no loader; run helm upgrade\n", r.Release, r.Revision, len(r.Missing))
	}
	for _, p := range r.Missing {
		fmt.Fprintf(&b, "missing  %s  kernel %s  on %s\n", p.Module, p.Kernel, strings.Join(p.Nodes, ", "))
	}
	for _, p := range r.Stale {
		fmt.Fprintf(&b, "stale    %s  kernel %s  (DaemonSet %s: no node runs it)\n", p.Module, p.Kernel, p.DaemonSet)
	}
	return b.String()
}
