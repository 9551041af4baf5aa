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
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"

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
	// Strict makes kernels that selected nodes run and no mapping matches an error.
	Strict bool
	// Warnings receives one line per warning; nil discards them.
	Warnings io.Writer
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

// Run expands the loader templates in manifests and returns the result. On error it returns
// no manifests at all.
func (r *Renderer) Run(ctx context.Context, manifests []byte) ([]byte, error) {
	if len(bytes.TrimSpace(manifests)) == 0 {
		return nil, errors.New("no manifests on standard input: nothing to post-render (is kmm-render run by helm?)")
	}
	docs, err := split(manifests)
	if err != nil {
		return nil, err
	}
	inv := &inventory{source: r.o.Nodes}
	var out bytes.Buffer
	seen := map[string]string{} // identity -> document name
	var unmatched []string
	objects := 0
	emit := func(d *document, n *yaml.RNode, raw string) error {
		id := identity(n)
		if prev, dup := seen[id]; dup {
			return fmt.Errorf("%s: %s is already defined by %s", d.name(), describeID(n), prev)
		}
		seen[id] = d.name()
		objects++
		out.WriteString(raw)
		return nil
	}
	for _, d := range docs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if d.node == nil {
			out.WriteString(d.sep + d.body)
			continue
		}
		switch {
		case d.node.GetAnnotations()[render.AnnotationExpand] != "":
			generated, um, err := r.expand(ctx, d, inv)
			if err != nil {
				return nil, err
			}
			unmatched = append(unmatched, um...)
			for _, g := range generated {
				s, err := g.String()
				if err != nil {
					return nil, fmt.Errorf("%s: writing %s: %w", d.name(), g.GetName(), err)
				}
				if err := emit(d, g, "---\n"+s); err != nil {
					return nil, fmt.Errorf("expanding %s: %w", d.name(), err)
				}
			}
		case isKMMModule(d.node):
			um, err := r.checkModule(ctx, d, inv)
			if err != nil {
				return nil, err
			}
			unmatched = append(unmatched, um...)
			if err := emit(d, d.node, d.sep+d.body); err != nil {
				return nil, err
			}
		default:
			if err := emit(d, d.node, d.sep+d.body); err != nil {
				return nil, err
			}
		}
	}
	if len(unmatched) > 0 && r.o.Strict {
		return nil, fmt.Errorf("%w (--strict):\n  %s", ErrUnmatched, strings.Join(unmatched, "\n  "))
	}
	for _, u := range unmatched {
		fmt.Fprintf(r.o.Warnings, "warning: %s\n", u)
	}
	if objects == 0 {
		return nil, errors.New("the result holds no object: every document was a loader template that matched no node; refusing to print an empty release (Helm would delete everything it manages)")
	}
	return out.Bytes(), nil
}

func (r *Renderer) expand(ctx context.Context, d *document, inv *inventory) ([]*yaml.RNode, []string, error) {
	if v := d.node.GetAnnotations()[render.AnnotationExpand]; v != render.ExpandModuleLoader {
		return nil, nil, fmt.Errorf("%s: unknown %s=%q (this kmm-render knows %q)", d.name(), render.AnnotationExpand, v, render.ExpandModuleLoader)
	}
	t, err := render.ParseTemplate(d.node)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	ns, err := inv.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	p, err := render.NewPlanForGroups(t.Module, t.Tolerations, ns, r.o.KernelLabel)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	r.warn(p)
	generated, err := t.Expand(p, r.o.KernelLabel)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	if len(p.Targets) == 0 {
		fmt.Fprintf(r.o.Warnings, "warning: module %s: no selected node runs a kernel that a mapping matches; no loader is rendered\n", t.Module.ID())
	}
	return generated, unmatchedLines(p), nil
}

func (r *Renderer) warn(p *render.Plan) {
	for _, w := range p.Warnings {
		fmt.Fprintf(r.o.Warnings, "warning: %s\n", w)
	}
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
		if ns, i.err = i.source(ctx); i.err == nil {
			i.groups = nodes.ByKernel(ns)
		}
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
	return n.GetKind() + " " + qualified(n.GetNamespace(), n.GetName())
}
