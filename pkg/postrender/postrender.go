// Package postrender is kmm-render's side of Helm's post-renderer contract: manifests in,
// manifests out. Loader templates the chart marks are expanded, one DaemonSet per module and
// node kernel; everything else passes through byte for byte, in order.
package postrender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/module"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/render"
)

// PostRenderer turns the manifests Helm rendered into the ones it applies.
type PostRenderer interface {
	Run(ctx context.Context, manifests []byte) ([]byte, error)
}

// NodeSource lists the nodes to expand against: a snapshot file or a live cluster.
type NodeSource func(ctx context.Context) ([]nodes.Node, error)

// FileNodes reads nodes from a snapshot file.
func FileNodes(path string) NodeSource {
	return func(context.Context) ([]nodes.Node, error) { return nodes.LoadFile(path) }
}

// ClusterNodes lists a live cluster's nodes.
func ClusterNodes(o nodes.ClusterOptions) NodeSource {
	return func(ctx context.Context) ([]nodes.Node, error) { return nodes.FromCluster(ctx, o) }
}

// StaticNodes serves a fixed list.
func StaticNodes(ns []nodes.Node) NodeSource {
	return func(context.Context) ([]nodes.Node, error) { return ns, nil }
}

// Options configure a Renderer.
type Options struct {
	// Nodes lists the nodes. It is called at most once per Run, and only when the input holds
	// something that depends on nodes.
	Nodes NodeSource
	// KernelLabel is the node label key that carries the kernel; empty means
	// render.DefaultKernelLabel.
	KernelLabel string
	// Existing looks up the Modules the cluster already holds, to apply KMM's rule on updates
	// (the loader version cannot change from or to empty). Nil skips that rule, as offline
	// renders (--nodes) must.
	Existing ModuleLookup
	// Strict makes kernels that selected nodes run and no mapping matches an error.
	Strict bool
	// Warnings receives one line per warning; nil discards them.
	Warnings io.Writer
	// ExtraKernels are kernels to build for ahead of time, on top of the chart's extraKernels.
	ExtraKernels []render.ExtraKernel
	// ExtraKernelLoaders gives extra kernels loaders too, whatever the chart says.
	ExtraKernelLoaders bool
}

// Renderer is the PostRenderer of kmm.
type Renderer struct{ o Options }

// New returns a Renderer.
func New(o Options) *Renderer {
	if o.KernelLabel == "" {
		o.KernelLabel = render.DefaultKernelLabel
	}
	if o.Warnings == nil {
		o.Warnings = io.Discard
	}
	return &Renderer{o: o}
}

var _ PostRenderer = (*Renderer)(nil)

// ErrUnmatched is wrapped by the error of a strict run that found kernels no mapping matches.
var ErrUnmatched = errors.New("kernels without a kernel mapping")

// ModulePlan is what one module gets on the nodes: loader DaemonSets (helm-managed modules) or
// what the KMM controller will load (operator modules).
type ModulePlan struct {
	Module *render.Module
	Plan   *render.Plan
	// Source names the document the module came from.
	Source string
}

// Result is what Plan found: every module's plan, in input order, and the nodes by kernel.
type Result struct {
	Plans   []ModulePlan
	Kernels []nodes.KernelGroup
}

// input is the parsed manifests: the documents, the chart's module list, and which document
// stands for which module.
type input struct {
	docs     []*document
	listed   []*render.Module          // the module list, in order
	byID     map[string]*render.Module // the module list by "<namespace>/<name>"
	listDoc  *document
	settings *render.Settings  // the module list's settings, with Options' extra kernels
	plans    map[*document]int // templates and Module objects: index into Result.Plans
	template map[*document]*render.Template
	// configMaps holds the rendered ConfigMaps' data by "<namespace>/<name>".
	configMaps map[string]string
}

// configMapData is a ConfigMap's data and binaryData as one string, for hashing.
func configMapData(n *yaml.RNode) string {
	var b strings.Builder
	for _, f := range []string{"data", "binaryData"} {
		if v := n.Field(f); v != nil {
			s, _ := v.Value.String()
			b.WriteString(f + "\x00" + s)
		}
	}
	return b.String()
}

// Run expands the loader templates in manifests and returns the result. On error it returns
// no manifests at all.
func (r *Renderer) Run(ctx context.Context, manifests []byte) ([]byte, error) {
	in, res, err := r.plan(ctx, manifests, false)
	if err != nil {
		return nil, err
	}
	res.Kernels = nil // the plans hold what expanding needs: let the nodes go (memory)
	// Build Jobs first: loaders name the Job that builds their image.
	o := render.ExpandOptions{KernelLabel: r.o.KernelLabel, ConfigMaps: in.configMaps, BuildJobs: map[string]string{},
		PlatformLabels: in.listDoc == nil || in.listDoc.node.GetAnnotations()[contract.AnnotationPlatformLabels] != "false",
		Settings:       in.settings}
	generated := map[*document][]generatedObject{} // written out as each template is expanded
	for _, pass := range []func(kind string) bool{
		func(kind string) bool { return kind == contract.ExpandModuleBuild },
		func(kind string) bool { return kind != contract.ExpandModuleBuild },
	} {
		for _, d := range in.docs {
			t, ok := in.template[d]
			if !ok || !pass(t.Kind) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			g, err := t.Expand(res.Plans[in.plans[d]].Plan, o)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.name(), err)
			}
			if generated[d], err = writeObjects(d, g); err != nil {
				return nil, err
			}
		}
	}
	var out bytes.Buffer
	out.Grow(outputSize(in.docs, generated))
	seen := map[string]*document{} // identity -> the document that defines it; named on error only
	emit := func(d *document, id string, desc func() string, raw string) error {
		if prev, dup := seen[id]; dup {
			return fmt.Errorf("%s: %s is already defined by %s", d.name(), desc(), prev.name())
		}
		seen[id] = d
		out.WriteString(raw)
		return nil
	}
	for _, d := range in.docs {
		if d.node == nil {
			out.WriteString(d.sep + d.body)
			continue
		}
		if _, ok := in.template[d]; !ok {
			if err := emit(d, identity(d.node), func() string { return describeID(d.node) }, d.sep+d.body); err != nil {
				return nil, err
			}
			continue
		}
		for _, g := range generated[d] {
			if err := emit(d, g.id, g.desc, g.text); err != nil {
				return nil, fmt.Errorf("expanding %s: %w", d.name(), err)
			}
		}
	}
	if err := r.report(res); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Plan reads manifests as Run does and plans every module against the nodes, through exactly
// the code Run expands with, without expanding: what `kmm-render nodes` shows. It always lists
// the nodes (Result.Kernels). Warnings go to Options.Warnings; with Options.Strict, kernels no
// mapping matches are an error.
func (r *Renderer) Plan(ctx context.Context, manifests []byte) (*Result, error) {
	_, res, err := r.plan(ctx, manifests, true)
	if err != nil {
		return nil, err
	}
	if err := r.report(res); err != nil {
		return nil, err
	}
	return res, nil
}

// plan parses manifests, validates every module, and plans each loader template, each KMM
// Module object, and each operator module of the list that no Module object stands for (Helm 3
// holds Modules back as hooks, or the chart did not render them).
func (r *Renderer) plan(ctx context.Context, manifests []byte, listNodes bool) (*input, *Result, error) {
	in, err := read(manifests)
	if err != nil {
		return nil, nil, err
	}
	if err := in.readSettings(r.o); err != nil {
		return nil, nil, err
	}
	inv := &inventory{source: r.o.Nodes}
	res := &Result{}
	planned := map[*render.Module]int{} // helm-managed modules: one plan for all their templates
	add := func(d *document, m *render.Module, kernelLabel string) error {
		if i, ok := planned[m]; ok && d != nil {
			in.plans[d] = i
			return nil
		}
		groups, err := inv.get(ctx)
		if err != nil {
			return err
		}
		p, err := render.NewPlanForGroups(m, groups, kernelLabel)
		src := "the module list"
		if d != nil {
			src = d.name()
		}
		if err == nil && in.settings != nil {
			err = p.AddExtraKernels(in.settings.ExtraKernels, kernelLabel, in.settings.ExtraKernelLoaders)
			if err == nil && d != nil {
				p.Warnings = append(p.Warnings, in.settings.Check(p)...)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		res.Plans = append(res.Plans, ModulePlan{Module: m, Plan: p, Source: src})
		if d != nil {
			in.plans[d] = len(res.Plans) - 1
			planned[m] = len(res.Plans) - 1
		}
		return nil
	}
	objects := map[string]bool{}
	for _, d := range in.docs {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		switch {
		case d.node == nil:
		case d.node.GetAnnotations()[contract.AnnotationExpand] != "":
			t, err := in.templateOf(d)
			if err != nil {
				return nil, nil, err
			}
			in.template[d] = t
			if err := add(d, t.Module, r.o.KernelLabel); err != nil {
				return nil, nil, err
			}
		case isKMMModule(d.node):
			m, err := readModuleObject(d)
			if err != nil {
				return nil, nil, err
			}
			if err := r.checkUpdate(ctx, m, module.ObjectPaths, d.name()); err != nil {
				return nil, nil, err
			}
			objects[m.ID()] = true
			// KMM's controller selects nodes itself, without a kernel label.
			if err := add(d, m, ""); err != nil {
				return nil, nil, err
			}
		}
	}
	for i, m := range in.listed {
		if !m.Operator() || objects[m.ID()] {
			continue
		}
		if err := r.checkUpdate(ctx, m, module.ValuesPaths(i), in.listDoc.name()); err != nil {
			return nil, nil, err
		}
		if m.Container() != nil {
			if err := add(nil, m, ""); err != nil {
				return nil, nil, err
			}
		}
	}
	in.sortPlans(res)
	if listNodes || inv.done {
		if res.Kernels, err = inv.get(ctx); err != nil {
			return nil, nil, err
		}
	}
	return in, res, nil
}

// sortPlans orders the plans as the module list orders the modules (the order of the chart's
// templates says nothing), keeping the documents' indexes into them right.
func (in *input) sortPlans(res *Result) {
	rank := make(map[string]int, len(in.listed))
	for i, m := range in.listed {
		rank[m.ID()] = i
	}
	order := make([]int, len(res.Plans))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ra, oka := rank[res.Plans[order[a]].Module.ID()]
		rb, okb := rank[res.Plans[order[b]].Module.ID()]
		if oka != okb {
			return oka // listed modules first
		}
		return ra < rb
	})
	newIndex := make([]int, len(order))
	plans := make([]ModulePlan, len(order))
	for to, from := range order {
		plans[to] = res.Plans[from]
		newIndex[from] = to
	}
	res.Plans = plans
	for d, i := range in.plans {
		in.plans[d] = newIndex[i]
	}
}

// checkUpdate applies KMM's rule on updating a Module the cluster already holds.
func (r *Renderer) checkUpdate(ctx context.Context, m *render.Module, p module.Paths, source string) error {
	if r.o.Existing == nil {
		return nil
	}
	old, err := r.o.Existing(ctx, m.Namespace, m.Name)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if old == nil {
		return nil
	}
	if err := module.Refused(m.ID(), module.ValidateUpdate(module.FromObject(old), m.Module, p)); err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	return nil
}

// read splits the manifests and reads the module list.
func read(manifests []byte) (*input, error) {
	if len(bytes.TrimSpace(manifests)) == 0 {
		return nil, errors.New("no manifests on standard input: nothing to post-render (is kmm-render run by helm?)")
	}
	docs, err := split(manifests)
	if err != nil {
		return nil, err
	}
	// Separators and comments only: Helm never sends that for a chart that renders anything,
	// so it is refused like empty input rather than passed through as a release of nothing.
	if !slices.ContainsFunc(docs, func(d *document) bool { return d.node != nil }) {
		return nil, fmt.Errorf("no manifests on standard input, only %d empty document(s) (--- separators and comments): nothing to post-render (is kmm-render run by helm?)", len(docs))
	}
	in := &input{docs: docs, byID: map[string]*render.Module{}, plans: map[*document]int{}, template: map[*document]*render.Template{}, configMaps: map[string]string{}}
	for _, d := range docs {
		if d.node != nil && d.node.GetKind() == "ConfigMap" && d.node.GetApiVersion() == "v1" {
			in.configMaps[d.node.GetNamespace()+"/"+d.node.GetName()] = configMapData(d.node)
		}
		if d.node == nil || !isModuleList(d.node) {
			continue
		}
		if in.listDoc != nil {
			return nil, fmt.Errorf("%s: a second module list (%s=%s); the first is %s", d.name(), contract.AnnotationModules, contract.ModulesFormat, in.listDoc.name())
		}
		in.listDoc = d
		if in.listed, err = readModuleList(d); err != nil {
			return nil, err
		}
		for _, m := range in.listed {
			in.byID[m.ID()] = m
		}
	}
	return in, nil
}

// templateOf pairs a marked template with its module from the list.
func (in *input) templateOf(d *document) (*render.Template, error) {
	_, id, err := render.TemplateModule(d.node)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	if in.listDoc == nil {
		return nil, fmt.Errorf("%s: the template names module %s, but the input holds no module list (a ConfigMap annotated %s: %s); render it with the chart this kmm-render belongs to", d.name(), id, contract.AnnotationModules, contract.ModulesFormat)
	}
	m, ok := in.byID[id]
	if !ok {
		return nil, fmt.Errorf("%s: the template names module %s, which %s does not list", d.name(), id, in.listDoc.name())
	}
	if m.Operator() {
		return nil, fmt.Errorf("%s: module %s is `via: operator`; the KMM controller loads it, not a template", d.name(), id)
	}
	t, err := render.NewTemplate(d.node, m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	return t, nil
}

// readSettings decodes the module list's settings and adds the options' extra kernels.
func (in *input) readSettings(o Options) error {
	s := &render.Settings{}
	if in.listDoc != nil {
		var err error
		if s, err = render.DecodeSettings(in.listDoc.node.GetDataMap()[contract.SettingsKey]); err != nil {
			return fmt.Errorf("%s: %s: %w", in.listDoc.name(), contract.SettingsKey, err)
		}
		// The chart's extraKernels follow the rule node kernels follow.
		for i, e := range s.ExtraKernels {
			if err := nodes.CheckKernel(e.Kernel); err != nil {
				return fmt.Errorf("%s: %s: extraKernels[%d]: kernel %s %w", in.listDoc.name(), contract.SettingsKey, i, nodes.Quote(e.Kernel), err)
			}
		}
	}
	have := map[string]bool{}
	for _, e := range s.ExtraKernels {
		have[e.Kernel] = true
	}
	for _, e := range o.ExtraKernels {
		if e.Kernel != "" {
			if err := nodes.CheckKernel(e.Kernel); err != nil {
				return fmt.Errorf("extra kernel %s (--extra-kernel) %w", nodes.Quote(e.Kernel), err)
			}
		}
		if !have[e.Kernel] {
			have[e.Kernel] = true
			s.ExtraKernels = append(s.ExtraKernels, e)
		}
	}
	s.ExtraKernelLoaders = s.ExtraKernelLoaders || o.ExtraKernelLoaders
	if err := s.Validate(); err != nil {
		return fmt.Errorf("extra kernels: %w", err)
	}
	in.settings = s
	return nil
}

// report writes each plan's warnings, and its unmatched kernels as warnings or, with Strict, as
// the error.
func (r *Renderer) report(res *Result) error {
	var unmatched []string
	for _, mp := range res.Plans {
		for _, w := range mp.Plan.Warnings {
			fmt.Fprintf(r.o.Warnings, "warning: %s\n", w)
		}
		unmatched = append(unmatched, unmatchedLines(mp.Plan)...)
		if !mp.Module.Operator() && len(mp.Plan.Targets) == 0 {
			fmt.Fprintf(r.o.Warnings, "warning: module %s: no selected node runs a kernel that a mapping matches; no loader is rendered\n", mp.Module.ID())
		}
	}
	if len(unmatched) > 0 && r.o.Strict {
		return fmt.Errorf("%w (--strict):\n  %s", ErrUnmatched, strings.Join(unmatched, "\n  "))
	}
	for _, u := range unmatched {
		fmt.Fprintf(r.o.Warnings, "warning: %s\n", u)
	}
	return nil
}

func unmatchedLines(p *render.Plan) []string {
	var out []string
	for _, u := range p.Unmatched {
		out = append(out, fmt.Sprintf("module %s: kernel %s (node(s) %s) matches no kernel mapping; those nodes get no loader",
			p.Module.ID(), u.Kernel, strings.Join(u.Nodes, ", ")))
	}
	return out
}

// inventory lists nodes once, on first use, and groups them by kernel once.
type inventory struct {
	source NodeSource
	groups []nodes.KernelGroup
	err    error
	done   bool
}

func (i *inventory) get(ctx context.Context) ([]nodes.KernelGroup, error) {
	if !i.done {
		i.done = true
		if i.source == nil {
			i.err = errors.New("no node source: pass --nodes FILE or let kmm-render reach the cluster")
			return nil, i.err
		}
		var ns []nodes.Node
		if ns, i.err = i.source(ctx); i.err != nil {
			return nil, i.err
		}
		// Snapshot files are checked as they are read; a cluster's nodes are checked here: a
		// kernel string reaches annotations, environment variables and messages.
		for _, n := range ns {
			if i.err = n.Check(); i.err != nil {
				return nil, i.err
			}
		}
		i.groups = nodes.ByKernel(ns)
	}
	return i.groups, i.err
}

// identity is what makes two objects the same object to the API server, for duplicate checks.
func identity(n *yaml.RNode) string {
	group := n.GetApiVersion()
	if i := strings.LastIndex(group, "/"); i >= 0 {
		group = group[:i]
	} else {
		group = ""
	}
	return strings.Join([]string{group, n.GetKind(), n.GetNamespace(), n.GetName()}, "\x00")
}

func describeID(n *yaml.RNode) string {
	return forMessage(n.GetKind()) + " " + forMessage(qualified(n.GetNamespace(), n.GetName()))
}
