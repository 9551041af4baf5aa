package amikernels

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const goodRow = "v20240315\t1.29\t1.29.0-20240315\tAL2023_x86_64_STANDARD\tkernel\t6.1.79-99.164.amzn2023"

// row builds a tab-separated row from a valid one with some fields replaced.
func row(replace map[int]string) string {
	f := strings.Split(goodRow, "\t")
	for i, v := range replace {
		f[i] = v
	}
	return strings.Join(f, "\t")
}

func TestParse(t *testing.T) {
	want := Release{AMIRelease: "v20240315", KubernetesMinor: "1.29", ReleaseVersion: "1.29.0-20240315", AMIType: "AL2023_x86_64_STANDARD", KernelPackage: "kernel", Kernel: "6.1.79-99.164.amzn2023"}
	tests := []struct {
		name    string
		in      string
		want    []Release
		wantErr string
	}{
		{name: "row", in: goodRow + "\n", want: []Release{want}},
		{name: "comments, blank lines, CRLF and no final newline", in: "# header\n\n# columns: ...\r\n" + goodRow + "\r\n\n", want: []Release{want}},
		{name: "kernel not listed", in: row(map[int]string{3: "AL2023_ARM_64_NVIDIA", 5: NotListed}), want: []Release{{AMIRelease: "v20240315", KubernetesMinor: "1.29", ReleaseVersion: "1.29.0-20240315", AMIType: "AL2023_ARM_64_NVIDIA", KernelPackage: "kernel"}}},
		{name: "two builds in one AMI release", in: goodRow + "\n" + row(map[int]string{2: "1.29.0-20240311"}), want: []Release{want, {AMIRelease: "v20240315", KubernetesMinor: "1.29", ReleaseVersion: "1.29.0-20240311", AMIType: "AL2023_x86_64_STANDARD", KernelPackage: "kernel", Kernel: "6.1.79-99.164.amzn2023"}}},
		{name: "empty input", in: "# nothing\n", want: nil},

		{name: "too few fields", in: "# c\n" + "v20240315\t1.29\t1.29.0-20240315\tAL2_x86_64\tkernel", wantErr: "line 2: want 6 tab-separated fields"},
		{name: "too many fields", in: goodRow + "\textra", wantErr: "line 1: want 6 tab-separated fields (ami_release, kubernetes_minor, release_version, ami_type, kernel_package, kernel), got 7"},
		{name: "spaces instead of tabs", in: strings.ReplaceAll(goodRow, "\t", " "), wantErr: "line 1: want 6 tab-separated fields"},
		{name: "empty ami_release", in: row(map[int]string{0: ""}), wantErr: "line 1: empty ami_release"},
		{name: "empty kubernetes_minor", in: row(map[int]string{1: ""}), wantErr: "line 1: empty kubernetes_minor"},
		{name: "empty release_version", in: row(map[int]string{2: ""}), wantErr: "line 1: empty release_version"},
		{name: "empty ami_type", in: row(map[int]string{3: ""}), wantErr: "line 1: empty ami_type"},
		{name: "empty kernel_package", in: row(map[int]string{4: ""}), wantErr: "line 1: empty kernel_package"},
		{name: "empty kernel", in: row(map[int]string{5: ""}), wantErr: `line 1: empty kernel (write - when the CHANGELOG names none)`},
		{name: "field with spaces", in: row(map[int]string{3: " AL2_x86_64"}), wantErr: "surrounding spaces"},
		{name: "ami_release without v", in: row(map[int]string{0: "20240315"}), wantErr: `ami_release "20240315" is not v<YYYYMMDD>`},
		{name: "ami_release not a date", in: row(map[int]string{0: "v20241399"}), wantErr: `ami_release "v20241399"`},
		{name: "minor with patch", in: row(map[int]string{1: "1.29.0"}), wantErr: `kubernetes_minor "1.29.0"`},
		{name: "minor of release_version differs", in: row(map[int]string{1: "1.30"}), wantErr: `release_version "1.29.0-20240315" is not of Kubernetes 1.30`},
		{name: "release_version without date", in: row(map[int]string{2: "1.29.0"}), wantErr: `release_version "1.29.0" is not`},
		{name: "release_version not a date", in: row(map[int]string{2: "1.29.0-20240230"}), wantErr: `release_version "1.29.0-20240230"`},
		{name: "ami_type without architecture", in: row(map[int]string{3: "AL2_GPU"}), wantErr: `ami_type "AL2_GPU" names neither x86_64 nor ARM_64`},
		{name: "ami_type of the CHANGELOG's prose", in: row(map[int]string{3: "AL2(all)"}), wantErr: `ami_type "AL2(all)" is not an EKS AMI type`},
		{name: "kernel_package unknown", in: row(map[int]string{4: "linux"}), wantErr: `kernel_package "linux"`},
		{name: "kernel of another package", in: row(map[int]string{4: "kernel6.12"}), wantErr: `kernel "6.1.79-99.164.amzn2023" is not a 6.12 kernel (package kernel6.12)`},
		{name: "kernel with architecture", in: row(map[int]string{5: "6.1.79-99.164.amzn2023.x86_64"}), wantErr: "carries an architecture"},
		{name: "kernel prose", in: row(map[int]string{5: "* Kubernetes 1.23 and below: 5.4.257-170.359.amzn2"}), wantErr: "is not <version>-<release>"},
		{name: "kernel em dash", in: row(map[int]string{5: "—"}), wantErr: `kernel "—" is not <version>-<release>`},
		{name: "duplicate", in: goodRow + "\n# c\n" + row(map[int]string{5: "6.1.79-99.165.amzn2023"}), wantErr: "line 3: v20240315 1.29.0-20240315 AL2023_x86_64_STANDARD kernel is already on line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestWriteTSVRoundTrips(t *testing.T) {
	in := []Release{
		{AMIRelease: "v20250419", KubernetesMinor: "1.31", ReleaseVersion: "1.31.5-20250419", AMIType: "AL2023_ARM_64_NVIDIA", KernelPackage: "kernel"},
		{AMIRelease: "v20240315", KubernetesMinor: "1.29", ReleaseVersion: "1.29.0-20240315", AMIType: "AL2_x86_64", KernelPackage: "kernel", Kernel: "5.10.210-201.852.amzn2"},
		{AMIRelease: "v20240315", KubernetesMinor: "1.9", ReleaseVersion: "1.9.0-20240315", AMIType: "AL2_x86_64", KernelPackage: "kernel", Kernel: "5.10.210-201.852.amzn2"},
	}
	var buf bytes.Buffer
	require.NoError(t, WriteTSV(&buf, in))
	assert.Equal(t, "v20240315\t1.9\t1.9.0-20240315\tAL2_x86_64\tkernel\t5.10.210-201.852.amzn2\n"+
		"v20240315\t1.29\t1.29.0-20240315\tAL2_x86_64\tkernel\t5.10.210-201.852.amzn2\n"+
		"v20250419\t1.31\t1.31.5-20250419\tAL2023_ARM_64_NVIDIA\tkernel\t-\n", buf.String(), "oldest first, minors by version, unknown kernel as -")
	back, err := Parse(&buf)
	require.NoError(t, err)
	assert.ElementsMatch(t, in, back)

	bad := in[0]
	bad.AMIType = "AL2"
	assert.ErrorContains(t, WriteTSV(&bytes.Buffer{}, []Release{bad}), `ami_type "AL2" names neither`)
}

func TestNodeKernel(t *testing.T) {
	tests := []struct{ amiType, kernel, want string }{
		{"AL2_x86_64", "5.10.210-201.852.amzn2", "5.10.210-201.852.amzn2.x86_64"},
		{"AL2_x86_64_GPU", "5.10.192-183.736.amzn2", "5.10.192-183.736.amzn2.x86_64"},
		{"AL2_ARM_64", "5.10.210-201.852.amzn2", "5.10.210-201.852.amzn2.aarch64"},
		{"AL2023_x86_64_STANDARD", "6.1.79-99.164.amzn2023", "6.1.79-99.164.amzn2023.x86_64"},
		{"AL2023_x86_64_NEURON", "6.12.94-123.180.amzn2023", "6.12.94-123.180.amzn2023.x86_64"},
		{"AL2023_x86_64_NVIDIA", "6.12.94-123.180.amzn2023", "6.12.94-123.180.amzn2023.x86_64"},
		{"AL2023_ARM_64_STANDARD", "6.1.79-99.164.amzn2023", "6.1.79-99.164.amzn2023.aarch64"},
		{"AL2023_ARM_64_NVIDIA", "6.12.94-123.180.amzn2023", "6.12.94-123.180.amzn2023.aarch64"},
		{"AL2023_ARM_64_NVIDIA", "", ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Release{AMIType: tt.amiType, Kernel: tt.kernel}.NodeKernel(), "%s %s", tt.amiType, tt.kernel)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"5.10.9", "5.10.10", -1},
		{"5.10.10", "5.10.9", 1},
		{"5.4.268-181.368.amzn2", "5.10.209-198.812.amzn2", -1},
		{"6.1.97-104.177.amzn2023", "6.1.102-108.177.amzn2023", -1},
		{"6.1.79-99.164.amzn2023", "6.1.79-99.1000.amzn2023", -1},
		{"6.1.176-221.360.amzn2023", "6.12.22-27.96.amzn2023", -1},
		{"6.1.79-99.164.amzn2023.aarch64", "6.1.79-99.164.amzn2023.x86_64", -1},
		{"5.10", "5.10.1", -1},
		{"1.9", "1.29", -1},
		{"kernel", "kernel6.12", -1},
		{"kernel6.12", "kernel6.18", -1},
		{"6.1.79", "6.1.79", 0},
		{"6.01", "6.1", -1}, // equal as numbers: byte order decides, so the order is total
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, CompareVersions(tt.a, tt.b), "%s vs %s", tt.a, tt.b)
		assert.Equal(t, -tt.want, CompareVersions(tt.b, tt.a), "%s vs %s", tt.b, tt.a)
	}
}

func TestKernels(t *testing.T) {
	rel := func(amiType, kernel string) Release { return Release{AMIType: amiType, Kernel: kernel} }
	got := Kernels([]Release{
		rel("AL2023_x86_64_STANDARD", "6.1.102-108.177.amzn2023"),
		rel("AL2023_x86_64_STANDARD", "6.1.97-104.177.amzn2023"),
		rel("AL2023_ARM_64_STANDARD", "6.1.97-104.177.amzn2023"),
		rel("AL2023_x86_64_NVIDIA", "6.1.97-104.177.amzn2023"), // same node kernel as STANDARD's
		rel("AL2023_ARM_64_NVIDIA", ""),                        // not listed: adds nothing
		rel("AL2_x86_64", "5.10.9-1.amzn2"),
		rel("AL2_x86_64", "5.10.10-1.amzn2"),
		rel("AL2023_x86_64_STANDARD", "6.12.9-1.amzn2023"),
		rel("AL2023_x86_64_STANDARD", "6.12.10-1.amzn2023"),
	})
	assert.Equal(t, []string{
		"5.10.9-1.amzn2.x86_64",
		"5.10.10-1.amzn2.x86_64",
		"6.1.97-104.177.amzn2023.aarch64",
		"6.1.97-104.177.amzn2023.x86_64",
		"6.1.102-108.177.amzn2023.x86_64",
		"6.12.9-1.amzn2023.x86_64",
		"6.12.10-1.amzn2023.x86_64",
	}, got)
	assert.Empty(t, Kernels(nil))
}

// fixture is a small data set for the query tests, in the shipped file's format.
const fixture = `# test data
v20240315	1.29	1.29.0-20240315	AL2_x86_64	kernel	5.10.210-201.852.amzn2
v20240315	1.29	1.29.0-20240315	AL2_ARM_64	kernel	5.10.210-201.852.amzn2
v20240315	1.29	1.29.0-20240315	AL2023_x86_64_STANDARD	kernel	6.1.79-99.164.amzn2023
v20240315	1.30	1.30.0-20240315	AL2023_x86_64_STANDARD	kernel	6.1.79-99.164.amzn2023
v20250419	1.29	1.29.13-20250419	AL2023_ARM_64_NVIDIA	kernel	-
v20250419	1.29	1.29.13-20250419	AL2023_x86_64_STANDARD	kernel	6.1.132-147.221.amzn2023
v20260318	1.29	1.29.15-20260311	AL2023_x86_64_STANDARD	kernel	6.1.163-186.299.amzn2023
v20260318	1.29	1.29.15-20260318	AL2023_x86_64_STANDARD	kernel	6.1.163-186.299.amzn2023
v20260318	1.29	1.29.15-20260318	AL2023_ARM_64_NVIDIA	kernel6.12	6.12.73-95.123.amzn2023
v20260318	1.33	1.33.8-20260318	AL2023_x86_64_STANDARD	kernel6.12	6.12.73-95.123.amzn2023
`

func fixtureData(t *testing.T) *data {
	t.Helper()
	rs, err := Parse(strings.NewReader(fixture))
	require.NoError(t, err)
	return index(rs)
}

// ids names releases compactly: AMI release, release version date and type.
func ids(rs []Release) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.AMIRelease + " " + r.ReleaseVersion + " " + r.AMIType
	}
	return out
}

func TestQuery(t *testing.T) {
	d := fixtureData(t)
	tests := []struct {
		name    string
		q       Query
		want    []string
		wantErr string
	}{
		{name: "minor, newest first, types by name", q: Query{KubernetesMinor: "1.29"}, want: []string{
			"v20260318 1.29.15-20260318 AL2023_ARM_64_NVIDIA",
			"v20260318 1.29.15-20260318 AL2023_x86_64_STANDARD",
			"v20260318 1.29.15-20260311 AL2023_x86_64_STANDARD",
			"v20250419 1.29.13-20250419 AL2023_ARM_64_NVIDIA",
			"v20250419 1.29.13-20250419 AL2023_x86_64_STANDARD",
			"v20240315 1.29.0-20240315 AL2023_x86_64_STANDARD",
			"v20240315 1.29.0-20240315 AL2_ARM_64",
			"v20240315 1.29.0-20240315 AL2_x86_64",
		}},
		{name: "other minor", q: Query{KubernetesMinor: "1.30"}, want: []string{"v20240315 1.30.0-20240315 AL2023_x86_64_STANDARD"}},
		{name: "one type", q: Query{KubernetesMinor: "1.29", AMITypes: []string{"AL2_ARM_64"}}, want: []string{"v20240315 1.29.0-20240315 AL2_ARM_64"}},
		{name: "two types", q: Query{KubernetesMinor: "1.29", AMITypes: []string{"AL2_ARM_64", "AL2023_ARM_64_NVIDIA"}}, want: []string{
			"v20260318 1.29.15-20260318 AL2023_ARM_64_NVIDIA",
			"v20250419 1.29.13-20250419 AL2023_ARM_64_NVIDIA",
			"v20240315 1.29.0-20240315 AL2_ARM_64",
		}},
		{name: "since an AMI release, inclusive", q: Query{KubernetesMinor: "1.29", AMITypes: []string{"AL2023_x86_64_STANDARD"}, Since: "v20250419"}, want: []string{
			"v20260318 1.29.15-20260318 AL2023_x86_64_STANDARD",
			"v20260318 1.29.15-20260311 AL2023_x86_64_STANDARD",
			"v20250419 1.29.13-20250419 AL2023_x86_64_STANDARD",
		}},
		{name: "since between AMI releases", q: Query{KubernetesMinor: "1.29", AMITypes: []string{"AL2023_x86_64_STANDARD"}, Since: "v20250420"}, want: []string{
			"v20260318 1.29.15-20260318 AL2023_x86_64_STANDARD",
			"v20260318 1.29.15-20260311 AL2023_x86_64_STANDARD",
		}},
		{name: "since an AMI release's second build", q: Query{KubernetesMinor: "1.29", AMITypes: []string{"AL2023_x86_64_STANDARD"}, Since: "1.29.15-20260318"}, want: []string{
			"v20260318 1.29.15-20260318 AL2023_x86_64_STANDARD",
		}},
		{name: "since a release version", q: Query{KubernetesMinor: "1.29", AMITypes: []string{"AL2023_x86_64_STANDARD"}, Since: "1.29.15-20260311"}, want: []string{
			"v20260318 1.29.15-20260318 AL2023_x86_64_STANDARD",
			"v20260318 1.29.15-20260311 AL2023_x86_64_STANDARD",
		}},
		{name: "since after the data", q: Query{KubernetesMinor: "1.29", Since: "v20990101"}, want: []string{}},

		{name: "no minor", q: Query{}, wantErr: "the Kubernetes minor version is required (known: 1.29, 1.30, 1.33)"},
		{name: "unknown minor", q: Query{KubernetesMinor: "1.31"}, wantErr: `unknown Kubernetes minor version "1.31" (known: 1.29, 1.30, 1.33)`},
		{name: "minor with patch", q: Query{KubernetesMinor: "1.29.0"}, wantErr: `unknown Kubernetes minor version "1.29.0"`},
		{name: "unknown type", q: Query{KubernetesMinor: "1.29", AMITypes: []string{"AL2_x86_64", "al2_arm_64"}}, wantErr: `unknown AMI type "al2_arm_64" (known: AL2023_ARM_64_NVIDIA, AL2023_x86_64_STANDARD, AL2_ARM_64, AL2_x86_64)`},
		{name: "type not built for the minor", q: Query{KubernetesMinor: "1.33", AMITypes: []string{"AL2_x86_64"}}, wantErr: "no AL2_x86_64 AMI for Kubernetes 1.33 (its AMI types: AL2023_x86_64_STANDARD)"},
		{name: "since a date", q: Query{KubernetesMinor: "1.29", Since: "2024-03-15"}, wantErr: `malformed since "2024-03-15": want an AMI release (v20240315) or a release version (1.29.2-20240315)`},
		{name: "since without v", q: Query{KubernetesMinor: "1.29", Since: "20240315"}, wantErr: `malformed since "20240315"`},
		{name: "since not a date", q: Query{KubernetesMinor: "1.29", Since: "v20240231"}, wantErr: `malformed since "v20240231"`},
		{name: "since a release version without date", q: Query{KubernetesMinor: "1.29", Since: "1.29.15"}, wantErr: `malformed since "1.29.15"`},
		{name: "since another minor's release version", q: Query{KubernetesMinor: "1.29", Since: "1.30.0-20240315"}, wantErr: "since 1.30.0-20240315 is a release version of Kubernetes 1.30, not 1.29"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.query(tt.q)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, ids(got))
		})
	}
}

// shippedRows reads the shipped file on its own, without Parse: every non-comment line split
// on tabs.
func shippedRows(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("eks-ami-kernels.tsv")
	require.NoError(t, err)
	var rows [][]string
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, "\t")
		require.Len(t, f, 6, l)
		rows = append(rows, f)
	}
	return rows
}

func TestShippedDataHeader(t *testing.T) {
	b, err := os.ReadFile("eks-ami-kernels.tsv")
	require.NoError(t, err)
	head := string(b[:bytes.Index(b, []byte("\nv2"))])
	assert.Contains(t, head, "amazon-eks-ami CHANGELOG")
	assert.Contains(t, head, "hack/amikernels")
	assert.Contains(t, head, "make eks-kernels")
	assert.Contains(t, head, "# columns: ami_release\tkubernetes_minor\trelease_version\tami_type\tkernel_package\tkernel")
}

func TestShippedDataLoads(t *testing.T) {
	rows := shippedRows(t)
	d, err := load()
	require.NoError(t, err)
	assert.Len(t, d.releases, len(rows))

	oldest, newest, err := Coverage()
	require.NoError(t, err)
	assert.Equal(t, "v20240213", oldest)
	assert.Equal(t, "v20260714", newest)

	minors, err := KubernetesMinors()
	require.NoError(t, err)
	assert.Equal(t, []string{"1.21", "1.22", "1.23", "1.24", "1.25", "1.26", "1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36"}, minors)

	types, err := AMITypes("")
	require.NoError(t, err)
	assert.Equal(t, []string{"AL2023_ARM_64_NVIDIA", "AL2023_ARM_64_STANDARD", "AL2023_x86_64_NEURON", "AL2023_x86_64_NVIDIA", "AL2023_x86_64_STANDARD", "AL2_ARM_64", "AL2_x86_64", "AL2_x86_64_GPU"}, types)
	types, err = AMITypes("1.33")
	require.NoError(t, err)
	assert.Equal(t, []string{"AL2023_ARM_64_NVIDIA", "AL2023_ARM_64_STANDARD", "AL2023_x86_64_NEURON", "AL2023_x86_64_NVIDIA", "AL2023_x86_64_STANDARD"}, types, "AL2 AMIs end with 1.32")
}

// Facts read off ../shared/data/eks-ami-kernels.tsv (the CHANGELOG table) by hand.
func TestEKSKnownReleases(t *testing.T) {
	tests := []struct {
		name  string
		q     Query
		match func(Release) bool
		want  []string // NodeKernel of the matching releases
	}{
		{
			name:  "1.29 AL2023 x86_64 at v20240315 ships 6.1.79-99.164",
			q:     Query{KubernetesMinor: "1.29", AMITypes: []string{"AL2023_x86_64_STANDARD"}, Since: "v20240315"},
			match: func(r Release) bool { return r.AMIRelease == "v20240315" },
			want:  []string{"6.1.79-99.164.amzn2023.x86_64"},
		},
		{
			name:  "1.27's GPU AMI at v20240315 kept 5.10.192 while the others moved to 5.10.210",
			q:     Query{KubernetesMinor: "1.27", AMITypes: []string{"AL2_x86_64", "AL2_ARM_64", "AL2_x86_64_GPU"}, Since: "v20240315"},
			match: func(r Release) bool { return r.AMIRelease == "v20240315" },
			want:  []string{"5.10.210-201.852.amzn2.aarch64", "5.10.210-201.852.amzn2.x86_64", "5.10.192-183.736.amzn2.x86_64"},
		},
		{
			name:  "1.35 ARM at v20260714 ships kernel6.12 6.12.94-123.180",
			q:     Query{KubernetesMinor: "1.35", AMITypes: []string{"AL2023_ARM_64_STANDARD"}, Since: "1.35.6-20260714"},
			match: func(Release) bool { return true },
			want:  []string{"6.12.94-123.180.amzn2023.aarch64"},
		},
		{
			name:  "1.31 AL2023 x86_64 at v20260714 ships kernel 6.1.176-221.360, not kernel6.12",
			q:     Query{KubernetesMinor: "1.31", AMITypes: []string{"AL2023_x86_64_STANDARD"}, Since: "v20260714"},
			match: func(Release) bool { return true },
			want:  []string{"6.1.176-221.360.amzn2023.x86_64"},
		},
		{
			name:  "1.31 ARM NVIDIA at v20250419: the CHANGELOG names no kernel",
			q:     Query{KubernetesMinor: "1.31", AMITypes: []string{"AL2023_ARM_64_NVIDIA"}, Since: "v20250419"},
			match: func(r Release) bool { return r.AMIRelease == "v20250419" },
			want:  []string{""},
		},
		{
			name:  "v20260318 carries two 1.35 builds, 20260318 and 20260311",
			q:     Query{KubernetesMinor: "1.35", AMITypes: []string{"AL2023_x86_64_STANDARD"}, Since: "v20260318"},
			match: func(r Release) bool { return r.AMIRelease == "v20260318" },
			want:  []string{"6.12.73-95.123.amzn2023.x86_64", "6.12.73-95.123.amzn2023.x86_64"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := EKS(tt.q)
			require.NoError(t, err)
			var got []string
			for _, r := range rs {
				if tt.match(r) {
					got = append(got, r.NodeKernel())
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// The query's result agrees with the shipped file read on its own.
func TestEKSAgreesWithTheFile(t *testing.T) {
	rows := shippedRows(t)
	queries := []Query{
		{KubernetesMinor: "1.31"},
		{KubernetesMinor: "1.31", AMITypes: []string{"AL2023_x86_64_STANDARD", "AL2023_ARM_64_NVIDIA"}, Since: "v20250401"},
		{KubernetesMinor: "1.29", AMITypes: []string{"AL2_x86_64_GPU"}},
		{KubernetesMinor: "1.35", Since: "1.35.2-20260311"},
		{KubernetesMinor: "1.21"},
	}
	for _, q := range queries {
		var want []string
		for _, f := range rows {
			if f[1] != q.KubernetesMinor || (len(q.AMITypes) > 0 && !slices.Contains(q.AMITypes, f[3])) {
				continue
			}
			switch {
			case strings.HasPrefix(q.Since, "v") && f[0] < q.Since:
				continue
			case strings.Contains(q.Since, "-") && f[2][strings.Index(f[2], "-")+1:] < q.Since[strings.Index(q.Since, "-")+1:]:
				continue
			}
			want = append(want, strings.Join(f, " "))
		}
		rs, err := EKS(q)
		require.NoError(t, err)
		var got []string
		for i, r := range rs {
			kernel := r.Kernel
			if kernel == "" {
				kernel = "-"
			}
			got = append(got, strings.Join([]string{r.AMIRelease, r.KubernetesMinor, r.ReleaseVersion, r.AMIType, r.KernelPackage, kernel}, " "))
			if i > 0 {
				assert.GreaterOrEqual(t, rs[i-1].AMIRelease, r.AMIRelease, "newest first")
			}
		}
		require.NotEmpty(t, want, "%+v", q)
		assert.ElementsMatch(t, want, got, "%+v", q)
	}
}
