package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// src builds a source table from rows of space-separated fields ("" for an empty field: '_').
func src(rows ...string) string {
	var b strings.Builder
	b.WriteString("# EKS optimized AMI releases and the kernel each ships\n# columns: ...\n")
	for _, r := range rows {
		f := strings.Fields(r)
		for i := range f {
			if f[i] == "_" {
				f[i] = ""
			}
		}
		b.WriteString(strings.Join(f, "\t") + "\n")
	}
	return b.String()
}

// dataRows is the output without its header.
func dataRows(out []byte) []string {
	var rows []string
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if !strings.HasPrefix(l, "#") {
			rows = append(rows, strings.ReplaceAll(l, "\t", " "))
		}
	}
	return rows
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		want       []string
		wantHeader []string
		wantErr    string
	}{
		{
			name: "sorted oldest first, minors by version",
			in: src(
				"v20250419 1.31 1.31.5-20250419 AL2023_x86_64_STANDARD kernel 6.1.132-147.221.amzn2023",
				"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2",
				"v20240315 1.9 1.9.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2",
			),
			want: []string{
				"v20240315 1.9 1.9.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2",
				"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2",
				"v20250419 1.31 1.31.5-20250419 AL2023_x86_64_STANDARD kernel 6.1.132-147.221.amzn2023",
			},
			wantHeader: []string{"# 3 rows: AMI releases v20240315 to v20250419, Kubernetes 1.9 to 1.31.", `# kernel "-" (0 rows)`},
		},
		{
			name: "a package the AMI type does not use is dropped, an AMI type with no kernel at all stays as -",
			in: src(
				"v20250501 1.31 1.31.7-20250501 AL2023_ARM_64_NVIDIA kernel —",
				"v20250501 1.31 1.31.7-20250501 AL2023_ARM_64_NVIDIA kernel6.12 6.12.22-27.96.amzn2023",
				"v20250501 1.31 1.31.7-20250501 AL2023_x86_64_STANDARD kernel6.12 _",
				"v20250501 1.31 1.31.7-20250501 AL2023_x86_64_STANDARD kernel 6.1.134-152.225.amzn2023",
				"v20250419 1.31 1.31.5-20250419 AL2023_ARM_64_NVIDIA kernel —",
				"v20250419 1.31 1.31.5-20250419 AL2023_ARM_64_STANDARD kernel -",
				"v20250419 1.31 1.31.5-20250419 AL2023_ARM_64_STANDARD kernel6.12 -",
			),
			want: []string{
				"v20250419 1.31 1.31.5-20250419 AL2023_ARM_64_NVIDIA kernel -",
				"v20250419 1.31 1.31.5-20250419 AL2023_ARM_64_STANDARD kernel -",
				"v20250419 1.31 1.31.5-20250419 AL2023_ARM_64_STANDARD kernel6.12 -",
				"v20250501 1.31 1.31.7-20250501 AL2023_ARM_64_NVIDIA kernel6.12 6.12.22-27.96.amzn2023",
				"v20250501 1.31 1.31.7-20250501 AL2023_x86_64_STANDARD kernel 6.1.134-152.225.amzn2023",
			},
			wantHeader: []string{`# kernel "-" (3 rows)`, `# Left out of the source: 2 (v20250501): kernel cells "—" (or empty) of a kernel package the AMI type does not use`},
		},
		{
			name: "two builds in one AMI release both stay",
			in: src(
				"v20260318 1.35 1.35.2-20260318 AL2023_x86_64_STANDARD kernel6.12 6.12.73-95.123.amzn2023",
				"v20260318 1.35 1.35.2-20260311 AL2023_x86_64_STANDARD kernel6.12 6.12.73-95.123.amzn2023",
			),
			want: []string{
				"v20260318 1.35 1.35.2-20260311 AL2023_x86_64_STANDARD kernel6.12 6.12.73-95.123.amzn2023",
				"v20260318 1.35 1.35.2-20260318 AL2023_x86_64_STANDARD kernel6.12 6.12.73-95.123.amzn2023",
			},
		},
		{
			name: "release-wide notes and rows without an AMI type are left out and counted",
			in: "v20231027\t*\t\tAL2(all)\tkernel\t* Kubernetes 1.23 and below: 5.4.257-170.359.amzn2    * Kubernetes 1.24 and above: 5.10.197-186.748.amzn2\n" +
				"v20210519\t*\t\tAL2(all)\tkernel\t5.4.110-54.189.amzn2.x86_64 (1.19 and above), 4.14.231-173.361.amzn2.x86_64 (1.18 and below)\n" +
				src(
					"v20240209 1.29 1.29.0-20240209 Version kernel 5.10.209-198.812.amzn2",
					"v20231106 1.23 1.23.17-20231106 Version kernel 5.4.258-171.360.amzn2",
					"v20240213 1.29 1.29.0-20240213 AL2_x86_64 kernel 5.10.209-198.812.amzn2",
				),
			want: []string{"v20240213 1.29 1.29.0-20240213 AL2_x86_64 kernel 5.10.209-198.812.amzn2"},
			wantHeader: []string{
				`# Left out of the source: 2 (v20210519 to v20231027): release-wide notes (ami_type "AL2(all)"`,
				`# Left out of the source: 2 (v20231106 to v20240209): rows whose CHANGELOG table names no AMI type (ami_type "Version")`,
			},
		},
		{
			name: "exact duplicates are dropped",
			in: src(
				"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2",
				"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2",
			),
			want:       []string{"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2"},
			wantHeader: []string{"# Left out of the source: 1 (v20240315): exact duplicate rows."},
		},

		{name: "no rows", in: src(), wantErr: "test.tsv: no release rows"},
		{name: "too few fields", in: src("v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel"), wantErr: "test.tsv:3: want 6 tab-separated fields"},
		{name: "too many fields", in: src("v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2 x"), wantErr: "test.tsv:3: want 6 tab-separated fields"},
		{name: "empty ami_release", in: src("_ 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2"), wantErr: "test.tsv:3: empty ami_release"},
		{name: "empty kubernetes_minor", in: src("v20240315 _ 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2"), wantErr: "test.tsv:3: empty kubernetes_minor"},
		{name: "empty release_version", in: src("v20240315 1.29 _ AL2_x86_64 kernel 5.10.210-201.852.amzn2"), wantErr: "test.tsv:3: empty release_version"},
		{name: "empty ami_type", in: src("v20240315 1.29 1.29.0-20240315 _ kernel 5.10.210-201.852.amzn2"), wantErr: "test.tsv:3: empty ami_type"},
		{name: "empty kernel_package", in: src("v20240315 1.29 1.29.0-20240315 AL2_x86_64 _ 5.10.210-201.852.amzn2"), wantErr: "test.tsv:3: empty kernel_package"},
		{name: "bad release tag", in: src("v2024031 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2"), wantErr: `test.tsv:3: ami_release "v2024031"`},
		{name: "release version of another minor", in: src("v20240315 1.29 1.28.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2"), wantErr: `test.tsv:3: release_version "1.28.0-20240315" is not of Kubernetes 1.29`},
		{name: "unknown AMI type shape", in: src("v20240315 1.29 1.29.0-20240315 AL2_GPU kernel 5.10.210-201.852.amzn2"), wantErr: `test.tsv:3: ami_type "AL2_GPU" names neither x86_64 nor ARM_64`},
		{name: "kernel prose in a typed row", in: "v20240315\t1.29\t1.29.0-20240315\tAL2_x86_64\tkernel\t5.10.210 (1.19 and above)\n", wantErr: "test.tsv:1: kernel"},
		{name: "kernel of another package", in: src("v20240315 1.29 1.29.0-20240315 AL2023_x86_64_STANDARD kernel6.12 6.1.79-99.164.amzn2023"), wantErr: "test.tsv:3: kernel \"6.1.79-99.164.amzn2023\" is not a 6.12 kernel"},
		{name: "release-wide note with a minor", in: "v20231027\t1.28\t\tAL2(all)\tkernel\tprose\n", wantErr: `test.tsv:1: release-wide note (ami_type AL2(all)) with kubernetes_minor "1.28"`},
		{name: "release-wide note with a bad tag", in: "20220526\t*\t\tAL2(all)\tkernel\t5.4.190-107.353.amzn2\n", wantErr: `test.tsv:1: release-wide note: ami_release "20220526"`},
		{name: "row without AMI type, malformed otherwise", in: src("v20240209 1.29 1.29.0 Version kernel 5.10.209-198.812.amzn2"), wantErr: `test.tsv:3: release_version "1.29.0"`},
		{
			name: "conflicting rows",
			in: src(
				"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2",
				"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.211-201.852.amzn2",
			),
			wantErr: `test.tsv:4: v20240315 1.29.0-20240315 AL2_x86_64 kernel: kernel "5.10.211-201.852.amzn2", but line 3 says "5.10.210-201.852.amzn2"`,
		},
		{
			name: "kernel named and not named for one package",
			in: src(
				"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2",
				"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel —",
			),
			wantErr: `test.tsv:4: v20240315 1.29.0-20240315 AL2_x86_64 kernel: kernel "", but line 3 says "5.10.210-201.852.amzn2"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := generate(strings.NewReader(tt.in), "test.tsv")
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, dataRows(out))
			for _, h := range tt.wantHeader {
				assert.Contains(t, string(out), h)
			}
			assert.True(t, strings.HasPrefix(string(out), "# EKS optimized AMI releases"), "header first")
		})
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	in := src(
		"v20250419 1.31 1.31.5-20250419 AL2023_x86_64_STANDARD kernel 6.1.132-147.221.amzn2023",
		"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2",
		"v20240315 1.29 1.29.0-20240315 AL2_ARM_64 kernel 5.10.210-201.852.amzn2",
	)
	reversed := src(
		"v20240315 1.29 1.29.0-20240315 AL2_ARM_64 kernel 5.10.210-201.852.amzn2",
		"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2",
		"v20250419 1.31 1.31.5-20250419 AL2023_x86_64_STANDARD kernel 6.1.132-147.221.amzn2023",
	)
	a, _, err := generate(strings.NewReader(in), "a")
	require.NoError(t, err)
	b, _, err := generate(strings.NewReader(reversed), "b")
	require.NoError(t, err)
	assert.Equal(t, string(a), string(b), "the source's order and name leave no trace")
}

func TestRunWritesTheFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.tsv")
	out := filepath.Join(dir, "out.tsv")
	require.NoError(t, os.WriteFile(in, []byte(src("v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2")), 0o644))
	require.NoError(t, os.WriteFile(out, []byte("old"), 0o644))
	var log bytes.Buffer
	require.NoError(t, run(in, out, &log))
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, []string{"v20240315 1.29 1.29.0-20240315 AL2_x86_64 kernel 5.10.210-201.852.amzn2"}, dataRows(b))
	assert.Contains(t, log.String(), "1 rows, AMI releases v20240315 to v20240315")

	// A malformed source leaves the old file alone.
	require.NoError(t, os.WriteFile(in, []byte(src("v20240315 1.29")), 0o644))
	err = run(in, out, &log)
	require.ErrorContains(t, err, "in.tsv:3: want 6 tab-separated fields")
	after, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, b, after)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "no temporary file left behind")
}

// The shipped file is what the generator makes of the shared source, when the source is here.
func TestShippedFileIsUpToDate(t *testing.T) {
	source := filepath.Join("..", "..", "..", "shared", "data", "eks-ami-kernels.tsv")
	f, err := os.Open(source)
	if os.IsNotExist(err) {
		t.Skipf("%s is not here", source)
	}
	require.NoError(t, err)
	defer f.Close()
	want, _, err := generate(f, source)
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join("..", "..", "pkg", "amikernels", "eks-ami-kernels.tsv"))
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "pkg/amikernels/eks-ami-kernels.tsv is stale: run make eks-kernels")
}
