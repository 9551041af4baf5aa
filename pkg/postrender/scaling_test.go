package postrender

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunScalesLinearly guards the whole post-render (reading the manifests, listing and
// checking the nodes, planning, expanding, writing and checking the output for duplicates)
// against quadratic paths: with each of modules, nodes and kernels made four times larger on its
// own, what Run allocates, in objects and in bytes, grows less than five times (a quadratic path
// would make it about sixteen), and, so that the dimension is measured at all, the bytes grow at
// least twice. Counts, not the clock: they do not vary with the machine's load.
func TestRunScalesLinearly(t *testing.T) {
	type size struct{ modules, nodes, kernels int }
	cost := func(t *testing.T, s size) (allocs, bytes float64) {
		t.Helper()
		in, ns := benchInput(s.modules, s.nodes, s.kernels)
		r := New(Options{Nodes: StaticNodes(ns)})
		out, err := r.Run(context.Background(), in)
		require.NoError(t, err)
		require.NotEmpty(t, out)
		const runs = 3
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		allocs = testing.AllocsPerRun(runs, func() {
			if _, err := r.Run(context.Background(), in); err != nil {
				panic(err)
			}
		})
		runtime.ReadMemStats(&after)
		return allocs, float64(after.TotalAlloc-before.TotalAlloc) / (runs + 1) // AllocsPerRun warms up once
	}
	// Each dimension from a base where it drives the cost.
	for _, tt := range []struct{ small, big size }{
		{small: size{modules: 2, nodes: 200, kernels: 4}, big: size{modules: 8, nodes: 200, kernels: 4}},
		{small: size{modules: 1, nodes: 1000, kernels: 2}, big: size{modules: 1, nodes: 4000, kernels: 2}},
		{small: size{modules: 2, nodes: 200, kernels: 4}, big: size{modules: 2, nodes: 200, kernels: 16}},
	} {
		t.Run(fmt.Sprintf("%+v to %+v", tt.small, tt.big), func(t *testing.T) {
			smallAllocs, smallBytes := cost(t, tt.small)
			allocs, bytes := cost(t, tt.big)
			t.Logf("allocations x%.2f, bytes x%.2f", allocs/smallAllocs, bytes/smallBytes)
			assert.Less(t, allocs/smallAllocs, 5.0, "allocations grow faster than the input")
			assert.Less(t, bytes/smallBytes, 5.0, "allocated bytes grow faster than the input")
			assert.GreaterOrEqual(t, bytes/smallBytes, 2.0, "the dimension is not measured")
		})
	}
}
