package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/kernels-NAME.golden, or writes it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "kernels-"+name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/kmm-render -update to write it")
	assert.Equal(t, string(want), got, "%s (run go test ./cmd/kmm-render -update after an intended change)", path)
}

func TestKernelsGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"table", []string{"--eks", "1.31", "--ami-type", "AL2023_x86_64_STANDARD", "--since", "v20260101"}},
		{"table-all-types", []string{"--eks", "1.35", "--since", "1.35.2-20260311"}},
		{"table-not-listed", []string{"--eks", "1.25", "--ami-type", "AL2023_ARM_64_NVIDIA"}},
		{"values", []string{"--eks", "1.29", "--ami-type", "AL2023_x86_64_STANDARD", "--since", "v20240729", "-o", "values"}},
		{"values-not-listed", []string{"--eks", "1.25", "--ami-type", "AL2023_ARM_64_NVIDIA,AL2023_ARM_64_STANDARD", "--since", "v20250403", "-o", "values"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := runBinary(t, "", nil, append([]string{"kernels"}, tt.args...)...)
			require.Equal(t, 0, code, stderr)
			assert.Empty(t, stderr)
			golden(t, tt.name, out)
		})
	}
}

func TestKernelsErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // also checked here, so that the golden file cannot drift from it unseen
	}{
		{"error-no-eks", nil, "--eks is required: the cluster's Kubernetes minor version (known: 1.21, 1.22,"},
		{"error-unknown-minor", []string{"--eks", "1.99"}, `unknown Kubernetes minor version "1.99" (known: 1.21,`},
		{"error-unknown-type", []string{"--eks", "1.31", "--ami-type", "AL2023_x86_64"}, `unknown AMI type "AL2023_x86_64" (known: AL2023_ARM_64_NVIDIA, AL2023_ARM_64_STANDARD, AL2023_x86_64_NEURON, AL2023_x86_64_NVIDIA, AL2023_x86_64_STANDARD, AL2_ARM_64, AL2_x86_64, AL2_x86_64_GPU)`},
		{"error-type-not-for-minor", []string{"--eks", "1.33", "--ami-type", "AL2_x86_64"}, "no AL2_x86_64 AMI for Kubernetes 1.33 (its AMI types: AL2023_ARM_64_NVIDIA, AL2023_ARM_64_STANDARD, AL2023_x86_64_NEURON, AL2023_x86_64_NVIDIA, AL2023_x86_64_STANDARD)"},
		{"error-malformed-since", []string{"--eks", "1.31", "--since", "2024-03-15"}, `malformed since "2024-03-15": want an AMI release (v20240315) or a release version (1.31.2-20240315)`},
		{"error-since-other-minor", []string{"--eks", "1.31", "--since", "1.30.2-20240315"}, "since 1.30.2-20240315 is a release version of Kubernetes 1.30, not 1.31"},
		{"error-no-match", []string{"--eks", "1.31", "--since", "v20990101"}, "no EKS AMI release matches Kubernetes 1.31, every AMI type, since v20990101 (the data ends at v20260714)"},
		{"error-output", []string{"--eks", "1.31", "-o", "json"}, `unknown output "json": want table or values`},
		{"error-stray-argument", []string{"1.31"}, `unknown command "1.31"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := runBinary(t, "", nil, append([]string{"kernels"}, tt.args...)...)
			assert.NotEqual(t, 0, code)
			assert.Empty(t, out, "nothing on stdout")
			assert.True(t, strings.HasPrefix(stderr, "kmm-render: error: "), stderr)
			assert.Contains(t, stderr, tt.want)
			golden(t, tt.name, stderr)
		})
	}
}

// amiRow is a row of pkg/amikernels/eks-ami-kernels.tsv, read here on its own.
type amiRow struct{ release, minor, version, amiType, pkg, kernel string }

func shippedAMIRows(t *testing.T) []amiRow {
	t.Helper()
	b, err := os.ReadFile("../../pkg/amikernels/eks-ami-kernels.tsv")
	require.NoError(t, err)
	var rows []amiRow
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, "\t")
		require.Len(t, f, 6, l)
		rows = append(rows, amiRow{f[0], f[1], f[2], f[3], f[4], f[5]})
	}
	return rows
}

// selectRows filters the rows as the command's flags say: since is an AMI release (v...) or a
// release version, compared by date.
func selectRows(rows []amiRow, minor string, types []string, since string) []amiRow {
	var out []amiRow
	for _, r := range rows {
		if r.minor != minor || (len(types) > 0 && !slices.Contains(types, r.amiType)) {
			continue
		}
		if strings.HasPrefix(since, "v") && r.release < since {
			continue
		}
		if _, date, ok := strings.Cut(since, "-"); ok {
			if _, rdate, _ := strings.Cut(r.version, "-"); rdate < date {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

func nodeKernel(r amiRow) string {
	if r.kernel == "-" {
		return ""
	}
	if strings.Contains(r.amiType, "ARM_64") {
		return r.kernel + ".aarch64"
	}
	return r.kernel + ".x86_64"
}

var cellGap = regexp.MustCompile(`\s{2,}`)

// tableRows splits the table into its header and rows of cells.
func tableRows(t *testing.T, out string) ([]string, [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.NotEmpty(t, lines)
	var rows [][]string
	for _, l := range lines[1:] {
		cells := cellGap.Split(strings.TrimRight(l, " "), -1)
		require.Len(t, cells, 4, l)
		rows = append(rows, cells)
	}
	return cellGap.Split(strings.TrimRight(lines[0], " "), -1), rows
}

// The table shows exactly the file's rows the flags select, newest first.
func TestKernelsTableAgreesWithTheFile(t *testing.T) {
	all := shippedAMIRows(t)
	tests := []struct {
		minor string
		types []string
		since string
	}{
		{"1.31", []string{"AL2023_x86_64_STANDARD"}, "v20260101"},
		{"1.35", nil, "1.35.2-20260311"},
		{"1.25", []string{"AL2023_ARM_64_NVIDIA"}, ""},
		{"1.29", []string{"AL2_x86_64", "AL2_x86_64_GPU"}, "v20250101"},
		{"1.22", nil, ""},
	}
	for _, tt := range tests {
		args := []string{"kernels", "--eks", tt.minor}
		for _, ty := range tt.types {
			args = append(args, "--ami-type", ty)
		}
		if tt.since != "" {
			args = append(args, "--since", tt.since)
		}
		t.Run(strings.Join(args[1:], " "), func(t *testing.T) {
			out, stderr, code := runBinary(t, "", nil, args...)
			require.Equal(t, 0, code, stderr)
			header, got := tableRows(t, out)
			assert.Equal(t, []string{"AMI RELEASE", "AMI TYPE", "KERNEL PACKAGE", "NODE KERNEL"}, header)
			var want [][]string
			for _, r := range selectRows(all, tt.minor, tt.types, tt.since) {
				kernel := nodeKernel(r)
				if kernel == "" {
					kernel = "(not listed)"
				}
				row := []string{r.release, r.amiType, r.pkg, kernel}
				if !slices.ContainsFunc(want, func(w []string) bool { return slices.Equal(w, row) }) {
					want = append(want, row)
				}
			}
			require.NotEmpty(t, want)
			assert.ElementsMatch(t, want, got)
			for i := 1; i < len(got); i++ {
				assert.GreaterOrEqual(t, got[i-1][0], got[i][0], "newest first")
			}
		})
	}
}

// Facts read off ../shared/data/eks-ami-kernels.tsv (the CHANGELOG table) by hand.
func TestKernelsKnownReleases(t *testing.T) {
	out, stderr, code := runBinary(t, "", nil, "kernels", "--eks", "1.29", "--ami-type", "AL2023_x86_64_STANDARD", "--since", "v20240315")
	require.Equal(t, 0, code, stderr)
	_, rows := tableRows(t, out)
	require.NotEmpty(t, rows)
	assert.Equal(t, []string{"v20240315", "AL2023_x86_64_STANDARD", "kernel", "6.1.79-99.164.amzn2023.x86_64"}, rows[len(rows)-1], "the oldest row is the since release")

	out, stderr, code = runBinary(t, "", nil, "kernels", "--eks", "1.35", "--ami-type", "AL2023_ARM_64_STANDARD", "--since", "v20260714")
	require.Equal(t, 0, code, stderr)
	_, rows = tableRows(t, out)
	assert.Equal(t, [][]string{{"v20260714", "AL2023_ARM_64_STANDARD", "kernel6.12", "6.12.94-123.180.amzn2023.aarch64"}}, rows)

	out, stderr, code = runBinary(t, "", nil, "kernels", "--eks", "1.27", "--ami-type", "AL2_x86_64_GPU,AL2_x86_64", "--since", "v20240315")
	require.Equal(t, 0, code, stderr)
	_, rows = tableRows(t, out)
	assert.Contains(t, rows, []string{"v20240315", "AL2_x86_64", "kernel", "5.10.210-201.852.amzn2.x86_64"})
	assert.Contains(t, rows, []string{"v20240315", "AL2_x86_64_GPU", "kernel", "5.10.192-183.736.amzn2.x86_64"}, "the GPU AMI kept an older kernel")

	out, stderr, code = runBinary(t, "", nil, "kernels", "--eks", "1.31", "--ami-type", "AL2023_ARM_64_NVIDIA", "--since", "v20250419")
	require.Equal(t, 0, code, stderr)
	_, rows = tableRows(t, out)
	assert.Equal(t, []string{"v20250419", "AL2023_ARM_64_NVIDIA", "kernel", "(not listed)"}, rows[len(rows)-1])
}

// -o values lists the distinct node kernels of the selected rows, by version.
func TestKernelsValues(t *testing.T) {
	all := shippedAMIRows(t)
	out, stderr, code := runBinary(t, "", nil, "kernels", "--eks", "1.29", "--ami-type", "AL2023_x86_64_STANDARD", "--since", "v20240729", "-o", "values")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "\n# From: kmm-render kernels --eks 1.29 --ami-type AL2023_x86_64_STANDARD --since v20240729 -o values\n")
	assert.Contains(t, out, "\n# Data: the amazon-eks-ami CHANGELOG, AMI releases v20240213 to v20260714.\n")

	var values struct {
		ExtraKernels []string `json:"extraKernels"`
	}
	require.NoError(t, yaml.UnmarshalStrict([]byte(out), &values))
	var want []string
	for _, r := range selectRows(all, "1.29", []string{"AL2023_x86_64_STANDARD"}, "v20240729") {
		if k := nodeKernel(r); k != "" && !slices.Contains(want, k) {
			want = append(want, k)
		}
	}
	assert.ElementsMatch(t, want, values.ExtraKernels)
	require.GreaterOrEqual(t, len(values.ExtraKernels), 2)
	// v20240729 ships 6.1.97-104.177, v20240817 6.1.102-108.177: by version, not by bytes.
	assert.Equal(t, []string{"6.1.97-104.177.amzn2023.x86_64", "6.1.102-108.177.amzn2023.x86_64"}, values.ExtraKernels[:2])

	out, stderr, code = runBinary(t, "", nil, "kernels", "--eks", "1.25", "--ami-type", "AL2023_ARM_64_NVIDIA", "-o", "values")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "# The CHANGELOG names no kernel for v20250419 AL2023_ARM_64_NVIDIA (1.25.16-20250419).\n")
	require.NoError(t, yaml.UnmarshalStrict([]byte(out), &values))
	assert.Equal(t, []string{"6.1.131-143.221.amzn2023.aarch64"}, values.ExtraKernels)
}

func TestKernelsHelp(t *testing.T) {
	out, stderr, code := runBinary(t, "", nil, "kernels", "--help")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "AMI releases v20240213 to v20260714")
	assert.Contains(t, out, "kmm-render kernels --eks MINOR [--ami-type TYPE]... [--since RELEASE] [-o table|values]")

	out, _, code = runBinary(t, "", nil, "--help")
	require.Equal(t, 0, code)
	assert.Regexp(t, `(?m)^\s+kernels\s+List the kernels`, out)
}
