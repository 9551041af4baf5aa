package render

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMappingsMatch(t *testing.T) {
	tests := []struct {
		name     string
		mappings Mappings
		kernel   string
		want     int
	}{
		{
			name:     "literal exact match",
			mappings: Mappings{{Literal: "5.15.0-105-generic"}},
			kernel:   "5.15.0-105-generic",
			want:     0,
		},
		{
			name:     "literal is not a prefix match",
			mappings: Mappings{{Literal: "5.15.0-105"}},
			kernel:   "5.15.0-105-generic",
			want:     -1,
		},
		{
			name:     "literal is not a substring match",
			mappings: Mappings{{Literal: "0-105-generic"}},
			kernel:   "5.15.0-105-generic",
			want:     -1,
		},
		{
			name:     "literal is case sensitive",
			mappings: Mappings{{Literal: "5.15.0-105-GENERIC"}},
			kernel:   "5.15.0-105-generic",
			want:     -1,
		},
		{
			name:     "literal dot is not a wildcard",
			mappings: Mappings{{Literal: "5.10.109"}},
			kernel:   "5x10x109",
			want:     -1,
		},
		{
			name:     "regexp is unanchored: matches inside the kernel",
			mappings: Mappings{{Regexp: `5\.10`}},
			kernel:   "x5.10y",
			want:     0,
		},
		{
			name:     "regexp anchored does not match inside",
			mappings: Mappings{{Regexp: `^5\.10$`}},
			kernel:   "x5.10y",
			want:     -1,
		},
		{
			name:     "regexp Go syntax \\d",
			mappings: Mappings{{Regexp: `^5\.4\.\d+-\d+\.\d+\.amzn2\.x86_64$`}},
			kernel:   "5.4.190-107.353.amzn2.x86_64",
			want:     0,
		},
		{
			name:     "regexp no match",
			mappings: Mappings{{Regexp: `^6\.1\.`}},
			kernel:   "5.10.109",
			want:     -1,
		},
		{
			name: "first match wins: literal before regexp",
			mappings: Mappings{
				{Literal: "5.4.196-108.356.amzn2.x86_64"},
				{Regexp: `^5\.4\.`},
			},
			kernel: "5.4.196-108.356.amzn2.x86_64",
			want:   0,
		},
		{
			name: "first match wins: regexp before literal",
			mappings: Mappings{
				{Regexp: `^5\.4\.`},
				{Literal: "5.4.196-108.356.amzn2.x86_64"},
			},
			kernel: "5.4.196-108.356.amzn2.x86_64",
			want:   0,
		},
		{
			name: "first match wins among regexps",
			mappings: Mappings{
				{Regexp: `^6\.`},
				{Regexp: `^5\.`},
				{Regexp: `.*`},
			},
			kernel: "5.10.109",
			want:   1,
		},
		{
			name: "falls through non-matching to a later one",
			mappings: Mappings{
				{Literal: "5.15.0-105-generic"},
				{Literal: "6.8.0-51-generic"},
			},
			kernel: "6.8.0-51-generic",
			want:   1,
		},
		{
			name:     "empty mapping list matches nothing",
			mappings: Mappings{},
			kernel:   "5.10.109",
			want:     -1,
		},
		{
			name:     "trailing + trimmed before literal match",
			mappings: Mappings{{Literal: "5.10.109"}},
			kernel:   "5.10.109+",
			want:     0,
		},
		{
			name:     "trailing + trimmed before anchored regexp match",
			mappings: Mappings{{Regexp: `^5\.10\.109$`}},
			kernel:   "5.10.109+",
			want:     0,
		},
		{
			name:     "literal with + does not match once the kernel's + is trimmed",
			mappings: Mappings{{Literal: "5.10.109+"}},
			kernel:   "5.10.109+",
			want:     -1,
		},
		{
			name:     "regexp requiring \\+ does not match after trimming",
			mappings: Mappings{{Regexp: `^5\.10\.109\+$`}},
			kernel:   "5.10.109+",
			want:     -1,
		},
		{
			name:     "only one trailing + is trimmed",
			mappings: Mappings{{Literal: "5.10.109"}},
			kernel:   "5.10.109++",
			want:     -1,
		},
		{
			name:     "a + in the middle is kept",
			mappings: Mappings{{Literal: "5.10+.109"}},
			kernel:   "5.10+.109",
			want:     0,
		},
		{
			name:     "GKE COS 6.1 regexp from the example",
			mappings: Mappings{{Regexp: `^5\.10\.109$`}, {Regexp: `^6\.1\.\d+$`}},
			kernel:   "6.1.100+",
			want:     1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, tt.mappings.Compile())
			assert.Equal(t, tt.want, tt.mappings.Match(tt.kernel))
		})
	}
}

func TestMappingsCompileErrors(t *testing.T) {
	tests := []struct {
		name     string
		mappings Mappings
		wantErr  []string // substrings; empty means no error
	}{
		{
			name:     "valid literal and regexp",
			mappings: Mappings{{Literal: "5.10.109"}, {Regexp: `^6\.1\.\d+$`}},
		},
		{
			name:     "both set",
			mappings: Mappings{{Literal: "5.10.109", Regexp: `^5`}},
			wantErr:  []string{"kernelMappings[0]", "both set"},
		},
		{
			name:     "neither set",
			mappings: Mappings{{ContainerImage: "img:tag"}},
			wantErr:  []string{"kernelMappings[0]", "neither literal nor regexp"},
		},
		{
			name:     "invalid regexp names its index",
			mappings: Mappings{{Literal: "a"}, {Regexp: `^5\.(10`}},
			wantErr:  []string{"kernelMappings[1]", "invalid regexp", `^5\.(10`},
		},
		{
			name:     "both set at a later index names that index",
			mappings: Mappings{{Literal: "a"}, {Literal: "b"}, {Literal: "c", Regexp: "d"}},
			wantErr:  []string{"kernelMappings[2]"},
		},
		{
			name:     "neither set at a later index names that index",
			mappings: Mappings{{Literal: "a"}, {}},
			wantErr:  []string{"kernelMappings[1]"},
		},
		{
			name:     "PCRE-only syntax is invalid in Go",
			mappings: Mappings{{Regexp: `^(?=5)`}},
			wantErr:  []string{"kernelMappings[0]", "invalid regexp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.mappings.Compile()
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestMappingsMatchPanicsBeforeCompile(t *testing.T) {
	tests := []struct {
		name      string
		mappings  Mappings
		kernel    string
		wantPanic bool
	}{
		{name: "regexp not compiled", mappings: Mappings{{Regexp: `^5\.`}}, kernel: "5.10.109", wantPanic: true},
		{name: "regexp not compiled after a non-matching literal", mappings: Mappings{{Literal: "x"}, {Regexp: `^5\.`}}, kernel: "5.10.109", wantPanic: true},
		{name: "literal needs no compile", mappings: Mappings{{Literal: "5.10.109"}}, kernel: "5.10.109", wantPanic: false},
		{name: "a matching literal before an uncompiled regexp", mappings: Mappings{{Literal: "5.10.109"}, {Regexp: `^5\.`}}, kernel: "5.10.109", wantPanic: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantPanic {
				assert.Panics(t, func() { tt.mappings.Match(tt.kernel) })
			} else {
				assert.NotPanics(t, func() { tt.mappings.Match(tt.kernel) })
			}
		})
	}
}

func TestKernelMappingDescribe(t *testing.T) {
	tests := []struct {
		km   KernelMapping
		want string
	}{
		{KernelMapping{Literal: "5.4.1"}, "literal 5.4.1"},
		{KernelMapping{Regexp: `^5\.4`}, `regexp ^5\.4`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.km.Describe())
		})
	}
}
