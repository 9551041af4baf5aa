package render

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"kmm.dev/kmm/pkg/module"
	"kmm.dev/kmm/pkg/nodes"
)

// scale is a synthetic release: modules loader templates, each module with one catch-all
// kernel mapping, against nodes nodes spread over kernels kernels.
type scale struct{ modules, kernels, nodes int }

// scaleInput builds the templates and the node inventory of s.
func scaleInput(t testing.TB, s scale) ([]*Template, []nodes.KernelGroup) {
	t.Helper()
	var tpls []*Template
	for i := range s.modules {
		name := fmt.Sprintf("mod-%d", i)
		var mm module.Module
		require.NoError(t, module.Decode(fmt.Appendf(nil, `{"name":%q,"namespace":"kmm-demo","selector":{"kubernetes.io/os":"linux"},`+
			`"moduleLoader":{"container":{"containerImage":"r/%s:${KERNEL_FULL_VERSION}","modprobe":{"moduleName":"m"},`+
			`"kernelMappings":[{"regexp":"^.+$"}]}}}`, name, name), &mm))
		m, err := NewModule(&mm)
		require.NoError(t, err)
		n, err := yaml.Parse(templateYAML("DaemonSet", strings.ReplaceAll(goodAnnotations, "kmm-ci-a", name), goodContainers))
		require.NoError(t, err)
		tpl, err := NewTemplate(n, m)
		require.NoError(t, err)
		tpls = append(tpls, tpl)
	}
	ns := make([]nodes.Node, s.nodes)
	for i := range ns {
		kernel := fmt.Sprintf("6.1.%d-1.amzn2023.x86_64", i%s.kernels)
		os := linux
		if (i/s.kernels)%8 == 7 { // on every kernel
			os = "kubernetes.io/os=windows" // not selected: planning copies the others
		}
		ns[i] = node(fmt.Sprintf("node-%06d", i), kernel, os, kl+"="+kernel, "kubernetes.io/hostname="+fmt.Sprintf("node-%06d", i))
	}
	return tpls, nodes.ByKernel(ns)
}

// planAll plans every module against the nodes, as kmm-render does for each release.
func planAll(tpls []*Template, groups []nodes.KernelGroup) ([]*Plan, error) {
	plans := make([]*Plan, len(tpls))
	for i, tpl := range tpls {
		p, err := NewPlanForGroups(tpl.Module, groups, kl)
		if err != nil {
			return nil, err
		}
		plans[i] = p
	}
	return plans, nil
}

// expandAll expands (and writes) every module's template for its plan, and returns how many
// objects it made.
func expandAll(tpls []*Template, plans []*Plan) (int, error) {
	made := 0
	for i, tpl := range tpls {
		out, err := tpl.Expand(plans[i], ExpandOptions{KernelLabel: kl, PlatformLabels: true})
		if err != nil {
			return 0, err
		}
		for _, o := range out {
			if _, err := o.String(); err != nil {
				return 0, err
			}
		}
		made += len(out)
	}
	return made, nil
}

// allocated is what f allocates, objects and bytes, averaged over a few runs after a first one
// (which warms the caches up, as a release's first template does).
func allocated(f func()) (allocs, bytes float64) {
	const runs = 3
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs = testing.AllocsPerRun(runs, f) // runs f runs+1 times
	runtime.ReadMemStats(&after)
	return allocs, float64(after.TotalAlloc-before.TotalAlloc) / (runs + 1)
}

type costs struct{ planAllocs, planBytes, expandAllocs, expandBytes float64 }

// cost is what planning and expanding s allocate.
func cost(t *testing.T, s scale) costs {
	t.Helper()
	tpls, groups := scaleInput(t, s)
	plans, err := planAll(tpls, groups)
	require.NoError(t, err)
	made, err := expandAll(tpls, plans)
	require.NoError(t, err)
	require.Equal(t, s.modules*s.kernels, made)
	var c costs
	c.planAllocs, c.planBytes = allocated(func() {
		if _, err := planAll(tpls, groups); err != nil {
			panic(err)
		}
	})
	c.expandAllocs, c.expandBytes = allocated(func() {
		if _, err := expandAll(tpls, plans); err != nil {
			panic(err)
		}
	})
	return c
}

// TestExpansionScalesLinearly guards against quadratic paths in planning and expansion: with
// each of modules, kernels (so generated objects) and nodes made four times larger on its own,
// what planning every module and expanding (and writing) its objects allocate grows less than
// five times, in objects and in bytes. A path quadratic in one of them would grow it about
// sixteen times. The counts are the runtime's, not the clock's: they do not vary with the
// machine's load. Each case also checks that its dimension is measured at all: that some cost
// grows at least three times.
func TestExpansionScalesLinearly(t *testing.T) {
	base := scale{modules: 3, kernels: 4, nodes: 400}
	tests := []struct {
		name string
		big  scale
		// grows picks the cost the dimension drives.
		grows func(costs) float64
	}{
		{name: "modules x4", big: scale{modules: 12, kernels: 4, nodes: 400}, grows: func(c costs) float64 { return c.expandBytes }},
		{name: "kernels x4", big: scale{modules: 3, kernels: 16, nodes: 400}, grows: func(c costs) float64 { return c.expandBytes }},
		{name: "nodes x4", big: scale{modules: 3, kernels: 4, nodes: 1600}, grows: func(c costs) float64 { return c.planBytes }},
	}
	b := cost(t, base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cost(t, tt.big)
			for _, r := range []struct {
				what      string
				base, big float64
			}{
				{"planning: allocations", b.planAllocs, c.planAllocs},
				{"planning: bytes", b.planBytes, c.planBytes},
				{"expanding: allocations", b.expandAllocs, c.expandAllocs},
				{"expanding: bytes", b.expandBytes, c.expandBytes},
			} {
				t.Logf("%s: %.0f -> %.0f (x%.2f)", r.what, r.base, r.big, r.big/r.base)
				assert.Less(t, r.big/r.base, 5.0, "%s grow faster than %s", r.what, tt.name)
			}
			if !raceEnabled { // -race adds allocations of its own (sync.Pool dropped at random) that hide the growth
				assert.GreaterOrEqual(t, tt.grows(c)/tt.grows(b), 3.0, "the dimension is not measured")
			}
		})
	}
}
