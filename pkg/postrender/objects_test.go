package postrender

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunOutputIndependentOfCPUs: expanded objects are written out on every CPU at once, yet the
// output is the same bytes on one CPU and on several, run after run, with objects in the order
// they were planned in.
func TestRunOutputIndependentOfCPUs(t *testing.T) {
	in, ns := benchInput(6, 300, 12)
	r := New(Options{Nodes: StaticNodes(ns)})
	run := func(procs int) []byte {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		out, err := r.Run(context.Background(), in)
		require.NoError(t, err)
		return out
	}
	one := run(1)
	require.Equal(t, 6*12, strings.Count(string(one), "\nkind: DaemonSet\n"), "a loader per module and kernel")
	for _, procs := range []int{2, 4, 8} {
		for range 3 {
			assert.Equal(t, string(one), string(run(procs)), "GOMAXPROCS=%d", procs)
		}
	}
	// One CPU writes the objects one after the other, in planned order: each module's loaders
	// together, modules in the order of the module list.
	var modules []string
	for _, line := range strings.Split(string(one), "\n") {
		if name, ok := strings.CutPrefix(line, "  name: mod"); ok && strings.Contains(name, "-loader-") {
			m := "mod" + name[:strings.Index(name, "-")]
			if len(modules) == 0 || modules[len(modules)-1] != m {
				modules = append(modules, m)
			}
		}
	}
	assert.Equal(t, []string{"mod0", "mod1", "mod2", "mod3", "mod4", "mod5"}, modules)
}
