package render

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"kmm.dev/kmm/pkg/module"
)

// runeCounter is an io.RuneReader that counts the runes a regexp reads.
type runeCounter struct {
	r     *strings.Reader
	reads int
}

func (c *runeCounter) ReadRune() (rune, int, error) {
	c.reads++
	return c.r.ReadRune()
}

// Kernel mappings are Go regexps, which are RE2: matching takes time linear in the kernel,
// whatever the pattern. Patterns that send backtracking engines (PCRE, Python, Java) into
// exponential time against a long run of a's are valid mappings here, and cost nothing
// special. A test cannot time this without a wall clock; it counts the work instead:
//   - the mapping's compiled regexp reads each rune of the kernel exactly once (plus the end
//     of the input), for a kernel of n and of 4n characters: no backtracking;
//   - matching through the mapping code allocates no more for 4n characters than for n (none,
//     once warm): no state grows with the input;
//   - and the result is the same for both lengths.
//
// Node kernels cannot be this long (nodes.MaxKernelLen); the mapping code has no such limit.
func TestCatastrophicRegexpsStayLinear(t *testing.T) {
	tests := []struct {
		name, re   string
		unit, tail string
		want       bool
	}{
		{name: "nested quantifier, failing at the end", re: `(a+)+$`, unit: "a", tail: "!", want: false},
		{name: "nested quantifier, matching", re: `(a+)+$`, unit: "a", want: true},
		{name: "overlapping alternation, no b", re: `(a|aa)*b`, unit: "a", want: false},
		{name: "overlapping alternation, b at the end", re: `(a|aa)*b`, unit: "a", tail: "b", want: true},
		{name: "anchored overlapping alternation", re: `^(a|aa)*c$`, unit: "a", tail: "c", want: true},
		{name: "adjacent quantifiers", re: `(x+x+)+y`, unit: "x", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Mappings{{Literal: "5.4.1"}, {Regexp: tt.re}}
			require.NoError(t, m.Compile())
			var allocs []float64
			for _, n := range []int{10000, 40000} {
				kernel := strings.Repeat(tt.unit, n) + tt.tail
				want := -1
				if tt.want {
					want = 1
				}
				assert.Equal(t, want, m.Match(kernel), "%d characters", len(kernel))

				rc := &runeCounter{r: strings.NewReader(module.MatchKernel(kernel))}
				assert.Equal(t, tt.want, m[1].re.MatchReader(rc))
				assert.Equal(t, len(kernel)+1, rc.reads, "%d characters: each read once, then the end", len(kernel))

				allocs = append(allocs, testing.AllocsPerRun(20, func() { m.Match(kernel) }))
			}
			if raceEnabled {
				return // regexp pools its machines in a sync.Pool, which -race empties at random
			}
			assert.LessOrEqual(t, allocs[1], allocs[0], "allocations grow with the kernel: %v", allocs)
			assert.LessOrEqual(t, allocs[1], 1.0, "allocations per match: %v", allocs)
		})
	}
}
