package render

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestKernelLabelValue(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	long64 := strings.Repeat("a", 64)
	tests := []struct {
		name   string
		kernel string
		want   string
		wantOK bool
	}{
		{name: "COS trailing + dropped", kernel: "5.10.109+", want: "5.10.109", wantOK: true},
		{name: "COS 6.1", kernel: "6.1.100+", want: "6.1.100", wantOK: true},
		{name: "EKS AL2 unchanged", kernel: "5.4.196-108.356.amzn2.x86_64", want: "5.4.196-108.356.amzn2.x86_64", wantOK: true},
		{name: "EKS AL2023 unchanged", kernel: "6.1.112-122.189.amzn2023.aarch64", want: "6.1.112-122.189.amzn2023.aarch64", wantOK: true},
		{name: "Ubuntu unchanged", kernel: "5.15.0-105-generic", want: "5.15.0-105-generic", wantOK: true},
		{name: "leading and trailing -_. trimmed", kernel: "-_.5.10.109._-", want: "5.10.109", wantOK: true},
		{name: "inner -_. kept", kernel: "5.10_1-2.3", want: "5.10_1-2.3", wantOK: true},
		{name: "invalid chars become _", kernel: "5.10.0+rt~1 x/y", want: "5.10.0_rt_1_x_y", wantOK: true},
		{name: "invalid char at the end becomes _ then trimmed", kernel: "5.10.109~", want: "5.10.109", wantOK: true},
		{name: "invalid char at the start becomes _ then trimmed", kernel: "+5.10.109", want: "5.10.109", wantOK: true},
		{name: "non-ASCII becomes _", kernel: "5.10.109é1", want: "5.10.109_1", wantOK: true},
		{name: "upper case kept", kernel: "5.10.109-ABC", want: "5.10.109-ABC", wantOK: true},
		{name: "exactly 63 chars ok", kernel: long63, want: long63, wantOK: true},
		{name: "64 chars dropped, not truncated", kernel: long64, want: "", wantOK: false},
		{name: "over 63 before trimming, 63 after", kernel: long63 + "+++", want: long63, wantOK: true},
		{name: "empty", kernel: "", want: "", wantOK: false},
		{name: "only separators", kernel: "-_.", want: "", wantOK: false},
		{name: "only invalid chars", kernel: "+++", want: "", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := KernelLabelValue(tt.kernel)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, got)
			if ok {
				assert.Empty(t, validation.IsValidLabelValue(got), "not a valid label value: %q", got)
				assert.NotEmpty(t, got)
			}
		})
	}
}

func TestKernelHash(t *testing.T) {
	tests := []struct{ kernel string }{
		{"5.10.109+"}, {"5.10.109"}, {""}, {"5.4.196-108.356.amzn2.x86_64"},
	}
	for _, tt := range tests {
		t.Run(tt.kernel, func(t *testing.T) {
			sum := sha256.Sum256([]byte(tt.kernel))
			want := hex.EncodeToString(sum[:])[:8]
			got := KernelHash(tt.kernel)
			assert.Equal(t, want, got)
			assert.Len(t, got, 8)
			assert.Equal(t, got, KernelHash(tt.kernel), "deterministic")
		})
	}
	assert.NotEqual(t, KernelHash("5.10.109+"), KernelHash("5.10.109"))
	assert.NotEqual(t, KernelHash("6.1.100+"), KernelHash("6.1.100"))
}

func assertValidName(t *testing.T, name string) {
	t.Helper()
	assert.Empty(t, validation.IsDNS1123Label(name), "not a DNS-1123 label: %q", name)
	assert.LessOrEqual(t, len(name), 63, "too long: %q", name)
}

func TestObjectName(t *testing.T) {
	longBase := "kmm-ci-a-loader-with-a-really-very-long-release-name-prefix" // 59 chars
	longKernel := "6.12.40-64.114.amzn2023.x86_64-extra-long-local-version-string"
	tests := []struct {
		name     string
		base     string
		kernel   string
		want     string   // exact, if set
		contains []string // substrings
		wantHash bool     // ends with "-" + KernelHash(kernel)
		wantErr  string
	}{
		{
			name: "plain Ubuntu kernel has no hash", base: "kmm-ci-a", kernel: "5.15.0-105-generic",
			want: "kmm-ci-a-5-15-0-105-generic",
		},
		{
			name: "plain kernel without +, no hash", base: "kmm-ci-a", kernel: "5.10.109",
			want: "kmm-ci-a-5-10-109",
		},
		{
			name: "COS + kernel: lossy, hash added", base: "kmm-ci-a", kernel: "5.10.109+",
			want: "kmm-ci-a-5-10-109-" + KernelHash("5.10.109+"), wantHash: true,
		},
		{
			name: "COS 6.1 + kernel: lossy, hash added", base: "kmm-ci-a", kernel: "6.1.100+",
			want: "kmm-ci-a-6-1-100-" + KernelHash("6.1.100+"), wantHash: true,
		},
		{
			name: "EKS kernel has _ : lossy, hash added", base: "kmm-ci-a", kernel: "5.4.196-108.356.amzn2.x86_64",
			want: "kmm-ci-a-5-4-196-108-356-amzn2-x86-64-" + KernelHash("5.4.196-108.356.amzn2.x86_64"), wantHash: true,
		},
		{
			name: "upper case in kernel is lossy", base: "kmm", kernel: "5.10.109-Custom",
			want: "kmm-5-10-109-custom-" + KernelHash("5.10.109-Custom"), wantHash: true,
		},
		{
			name: "runs of separators are lossy", base: "kmm", kernel: "5.10..109",
			want: "kmm-5-10-109-" + KernelHash("5.10..109"), wantHash: true,
		},
		{
			name: "trailing separator is lossy", base: "kmm", kernel: "5.10.109.",
			want: "kmm-5-10-109-" + KernelHash("5.10.109."), wantHash: true,
		},
		{
			name: "leading separator is lossy", base: "kmm", kernel: "-5.10.109",
			want: "kmm-5-10-109-" + KernelHash("-5.10.109"), wantHash: true,
		},
		{
			name: "kernel without letters or digits: base and hash", base: "kmm", kernel: "+++",
			want: "kmm-" + KernelHash("+++"), wantHash: true,
		},
		{
			name: "empty kernel: base and hash", base: "kmm", kernel: "",
			want: "kmm-" + KernelHash(""), wantHash: true,
		},
		{
			name: "base sanitized: upper case and _ folded", base: "KMM_CI__A.loader", kernel: "5.10.109",
			want: "kmm-ci-a-loader-5-10-109",
		},
		{
			name: "base trimmed of separators", base: "--kmm--", kernel: "5.10.109",
			want: "kmm-5-10-109",
		},
		{
			name: "long base + long kernel: truncated to 63 with hash", base: longBase, kernel: longKernel,
			contains: []string{"kmm-ci-a-loader"}, wantHash: true,
		},
		{
			name: "long base + plain long kernel: truncation adds a hash", base: longBase, kernel: "5.15.0-105-generic",
			contains: []string{"kmm-ci-a-loader"}, wantHash: true,
		},
		{
			name: "exactly 63 characters: no hash needed", base: strings.Repeat("a", 63-len("-5-10-109")), kernel: "5.10.109",
			want: strings.Repeat("a", 63-len("-5-10-109")) + "-5-10-109",
		},
		{
			name: "64 characters: truncated with hash", base: strings.Repeat("a", 64-len("-5-10-109")), kernel: "5.10.109",
			wantHash: true,
		},
		{
			name: "truncation never leaves -- before the hash", base: strings.Repeat("a", 53) + "-b", kernel: "5.10.109",
			wantHash: true,
		},
		{name: "base without letters or digits", base: "---", kernel: "5.10.109", wantErr: "no letters or digits"},
		{name: "empty base", base: "", kernel: "5.10.109", wantErr: "no letters or digits"},
		{name: "base of symbols only", base: "+._", kernel: "5.10.109", wantErr: "no letters or digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ObjectName(tt.base, tt.kernel)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assertValidName(t, got)
			assert.NotContains(t, got, "--")
			if tt.want != "" {
				assert.Equal(t, tt.want, got)
			}
			for _, s := range tt.contains {
				assert.Contains(t, got, s)
			}
			hasHash := strings.HasSuffix(got, "-"+KernelHash(tt.kernel))
			assert.Equal(t, tt.wantHash, hasHash, "hash suffix in %q", got)
			again, err := ObjectName(tt.base, tt.kernel)
			require.NoError(t, err)
			assert.Equal(t, got, again, "deterministic")
		})
	}
}

func TestObjectNameLongIsExactly63(t *testing.T) {
	name, err := ObjectName(strings.Repeat("x", 80), "6.12.40-64.114.amzn2023.x86_64")
	require.NoError(t, err)
	assert.Len(t, name, 63)
	assert.True(t, strings.HasSuffix(name, "-"+KernelHash("6.12.40-64.114.amzn2023.x86_64")))
}

func TestObjectNameDistinct(t *testing.T) {
	longBase := "kmm-ci-a-loader-with-a-really-very-long-release-name-prefix"
	tests := []struct {
		name   string
		base   string
		k1, k2 string
	}{
		{name: "COS 5.10.109+ vs 5.10.109", base: "kmm-ci-a", k1: "5.10.109+", k2: "5.10.109"},
		{name: "COS 6.1.100+ vs 6.1.100", base: "kmm-ci-a", k1: "6.1.100+", k2: "6.1.100"},
		{name: "upper vs lower case", base: "kmm", k1: "5.10.109-Custom", k2: "5.10.109-custom"},
		{name: "trailing dot", base: "kmm", k1: "5.10.109.", k2: "5.10.109"},
		{name: "_ vs -", base: "kmm", k1: "5.10_109", k2: "5.10-109"},
		{name: "arch suffixes", base: "kmm", k1: "6.1.112-122.189.amzn2023.x86_64", k2: "6.1.112-122.189.amzn2023.aarch64"},
		{name: "truncated: kernels differing after the cut", base: longBase, k1: "6.12.40-64.114.amzn2023.x86_64", k2: "6.12.40-64.114.amzn2023.aarch64"},
		{name: "truncated: + vs none", base: longBase, k1: "5.10.109+", k2: "5.10.109"},
		{name: "truncated plain kernels", base: longBase, k1: "5.15.0-105-generic", k2: "5.15.0-106-generic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n1, err := ObjectName(tt.base, tt.k1)
			require.NoError(t, err)
			n2, err := ObjectName(tt.base, tt.k2)
			require.NoError(t, err)
			assertValidName(t, n1)
			assertValidName(t, n2)
			assert.NotEqual(t, n1, n2)
		})
	}
}

var eksKernel = regexp.MustCompile(`^\d+\.\d+\.\d+-[\d.]+\.amzn2(023)?$`)

// sampleKernels reads the kernel column (6) of the EKS AMI kernel sample, a copy of part of
// /work/shared/data/eks-ami-kernels.tsv kept in testdata so that CI has it. It keeps the
// malformed CHANGELOG rows the real file holds: names must be valid whatever the kernel string.
func sampleKernels(t *testing.T) (all []string, wellFormed map[string]bool) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "eks-ami-kernels-sample.tsv"))
	require.NoError(t, err)
	defer f.Close()
	wellFormed = map[string]bool{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		require.GreaterOrEqual(t, len(cols), 6, "line %q", line)
		k := cols[5]
		if seen[k] {
			continue
		}
		seen[k] = true
		all = append(all, k)
		if eksKernel.MatchString(k) {
			wellFormed[k] = true
		}
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, len(all), 100, "sample too small")
	require.GreaterOrEqual(t, len(wellFormed), 100, "sample has too few well-formed kernels")
	return all, wellFormed
}

func TestObjectNameEKSKernelsProperty(t *testing.T) {
	kernels, wellFormed := sampleKernels(t)
	bases := []string{"kmm-ci-a", "kmm-demo-kmm-ci-a-module-loader", strings.Repeat("long-base-", 6)}
	for _, base := range bases {
		byName := map[string]string{}
		for _, k := range kernels {
			for _, arch := range []string{".x86_64", ".aarch64"} {
				raw := k + arch
				name, err := ObjectName(base, raw)
				require.NoError(t, err, "base %q kernel %q", base, raw)
				if len(validation.IsDNS1123Label(name)) > 0 || len(name) > 63 {
					t.Errorf("base %q kernel %q: invalid name %q: %v", base, raw, name, validation.IsDNS1123Label(name))
				}
				again, _ := ObjectName(base, raw)
				if again != name {
					t.Errorf("base %q kernel %q: not deterministic: %q then %q", base, raw, name, again)
				}
				if prev, dup := byName[name]; dup {
					t.Errorf("base %q: kernels %q and %q both named %q", base, prev, raw, name)
				}
				byName[name] = raw
			}
		}
	}
	// Label values of the well-formed kernels: valid, unchanged, and pairwise distinct.
	byValue := map[string]string{}
	for k := range wellFormed {
		for _, arch := range []string{".x86_64", ".aarch64"} {
			raw := k + arch
			v, ok := KernelLabelValue(raw)
			if !assert.True(t, ok, "kernel %q has no label value", raw) {
				continue
			}
			assert.Empty(t, validation.IsValidLabelValue(v), "kernel %q", raw)
			assert.Equal(t, raw, v, "an EKS kernel needs no sanitizing")
			if prev, dup := byValue[v]; dup {
				t.Errorf("kernels %q and %q share label value %q", prev, raw, v)
			}
			byValue[v] = raw
		}
	}
	// Every kernel string, even malformed: the label value is either dropped or valid.
	for _, k := range kernels {
		if v, ok := KernelLabelValue(k); ok {
			assert.Empty(t, validation.IsValidLabelValue(v), "kernel %q", k)
		}
	}
}
