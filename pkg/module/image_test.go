package module

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSubstitutionVars(t *testing.T) {
	tests := []struct {
		name   string
		kernel string
		want   map[string]string
	}{
		{
			name:   "EKS AL2 kernel",
			kernel: "5.4.196-108.356.amzn2.x86_64",
			want: map[string]string{
				"KERNEL_FULL_VERSION": "5.4.196-108.356.amzn2.x86_64",
				"KERNEL_VERSION":      "5.4.196-108.356.amzn2.x86_64",
				"KERNEL_XYZ":          "5.4.196",
				"KERNEL_X":            "5",
				"KERNEL_Y":            "4",
				"KERNEL_Z":            "196",
				"MOD_NAME":            "kmm-ci-a",
				"MOD_NAMESPACE":       "kmm-demo",
			},
		},
		{
			name:   "COS kernel: trailing + trimmed",
			kernel: "5.10.109+",
			want: map[string]string{
				"KERNEL_FULL_VERSION": "5.10.109",
				"KERNEL_VERSION":      "5.10.109",
				"KERNEL_XYZ":          "5.10.109",
				"KERNEL_X":            "5",
				"KERNEL_Y":            "10",
				"KERNEL_Z":            "109",
				"MOD_NAME":            "kmm-ci-a",
				"MOD_NAMESPACE":       "kmm-demo",
			},
		},
		{
			name:   "Ubuntu kernel splits on - too",
			kernel: "5.15.0-105-generic",
			want: map[string]string{
				"KERNEL_FULL_VERSION": "5.15.0-105-generic",
				"KERNEL_VERSION":      "5.15.0-105-generic",
				"KERNEL_XYZ":          "5.15.0",
				"KERNEL_X":            "5",
				"KERNEL_Y":            "15",
				"KERNEL_Z":            "0",
				"MOD_NAME":            "kmm-ci-a",
				"MOD_NAMESPACE":       "kmm-demo",
			},
		},
		{
			name:   "chars outside [A-Za-z0-9._-] become _",
			kernel: "5.10.0+rt~1 x/y",
			want: map[string]string{
				"KERNEL_FULL_VERSION": "5.10.0_rt_1_x_y",
				"KERNEL_VERSION":      "5.10.0_rt_1_x_y",
				"KERNEL_XYZ":          "5.10.0_rt_1_x_y",
				"KERNEL_X":            "5",
				"KERNEL_Y":            "10",
				"KERNEL_Z":            "0_rt_1_x_y",
				"MOD_NAME":            "kmm-ci-a",
				"MOD_NAMESPACE":       "kmm-demo",
			},
		},
		{
			name:   "two parts: no XYZ variables",
			kernel: "5.10",
			want: map[string]string{
				"KERNEL_FULL_VERSION": "5.10",
				"KERNEL_VERSION":      "5.10",
				"MOD_NAME":            "kmm-ci-a",
				"MOD_NAMESPACE":       "kmm-demo",
			},
		},
		{
			name:   "one part: no XYZ variables",
			kernel: "custom",
			want: map[string]string{
				"KERNEL_FULL_VERSION": "custom",
				"KERNEL_VERSION":      "custom",
				"MOD_NAME":            "kmm-ci-a",
				"MOD_NAMESPACE":       "kmm-demo",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SubstitutionVars(tt.kernel, "kmm-ci-a", "kmm-demo")
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSubstituteImage(t *testing.T) {
	tests := []struct {
		name    string
		image   string
		kernel  string
		want    string
		wantErr []string
	}{
		{name: "${KERNEL_FULL_VERSION}", image: "r/m:${KERNEL_FULL_VERSION}", kernel: "5.4.196-108.356.amzn2.x86_64", want: "r/m:5.4.196-108.356.amzn2.x86_64"},
		{name: "${KERNEL_VERSION}", image: "r/m:${KERNEL_VERSION}", kernel: "5.15.0-105-generic", want: "r/m:5.15.0-105-generic"},
		{name: "${KERNEL_XYZ}", image: "r/m:cos-${KERNEL_XYZ}", kernel: "6.1.100+", want: "r/m:cos-6.1.100"},
		{name: "${KERNEL_X}", image: "r/m:${KERNEL_X}", kernel: "6.1.100+", want: "r/m:6"},
		{name: "${KERNEL_Y}", image: "r/m:${KERNEL_Y}", kernel: "6.1.100+", want: "r/m:1"},
		{name: "${KERNEL_Z}", image: "r/m:${KERNEL_Z}", kernel: "6.1.100+", want: "r/m:100"},
		{name: "${MOD_NAME}", image: "r/${MOD_NAME}:v1", kernel: "5.10.109+", want: "r/kmm-ci-a:v1"},
		{name: "${MOD_NAMESPACE}", image: "r/${MOD_NAMESPACE}/m:v1", kernel: "5.10.109+", want: "r/kmm-demo/m:v1"},
		{name: "$VAR form", image: "r/$MOD_NAME:$KERNEL_X.$KERNEL_Y", kernel: "6.8.0-51-generic", want: "r/kmm-ci-a:6.8"},
		{name: "several variables", image: "r/${MOD_NAMESPACE}/${MOD_NAME}:${KERNEL_X}.${KERNEL_Y}-${KERNEL_FULL_VERSION}", kernel: "5.10.109+", want: "r/kmm-demo/kmm-ci-a:5.10-5.10.109"},
		{name: "no variables", image: "r/m:v1", kernel: "5.10.109+", want: "r/m:v1"},
		{name: "+ inside kernel sanitized in tag", image: "r/m:${KERNEL_FULL_VERSION}", kernel: "5.10.0+rt1", want: "r/m:5.10.0_rt1"},
		{
			name:    "XYZ undefined for 2-part kernel names the variable",
			image:   "r/m:${KERNEL_XYZ}",
			kernel:  "5.10",
			wantErr: []string{"KERNEL_XYZ", "undefined"},
		},
		{
			name:    "KERNEL_Z undefined for 2-part kernel names the variable",
			image:   "r/m:$KERNEL_Z",
			kernel:  "5.10",
			wantErr: []string{"KERNEL_Z"},
		},
		{
			name:    "unknown variable names it",
			image:   "r/m:${KERNEL_RELEASE}",
			kernel:  "5.10.109",
			wantErr: []string{"KERNEL_RELEASE", "undefined"},
		},
		{
			name:    "lower-case variable is unknown",
			image:   "r/m:${kernel_version}",
			kernel:  "5.10.109",
			wantErr: []string{"kernel_version"},
		},
		{
			name:    "all unknown variables named",
			image:   "r/${FOO}:${BAR}",
			kernel:  "5.10.109",
			wantErr: []string{"BAR, FOO"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SubstituteImage(tt.image, SubstitutionVars(tt.kernel, "kmm-ci-a", "kmm-demo"))
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				assert.Empty(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestCheckImageReference(t *testing.T) {
	tests := []struct {
		name    string
		image   string
		wantErr string
	}{
		{name: "tag", image: "quay.io/org/kmod:5.10.109"},
		{name: "short name with tag", image: "kmod:v1"},
		{name: "digest", image: "us-central1-docker.pkg.dev/p/kmm/kmm-ci-a@sha256:0f89b405db0de55cfa93b0641f6b23e878c0859bb25cda6f958c7be5b6f0033f"},
		{name: "tag and digest", image: "quay.io/org/kmod:v1@sha256:0f89b405db0de55cfa93b0641f6b23e878c0859bb25cda6f958c7be5b6f0033f"},
		{name: "registry with port and tag", image: "registry.lab.example.com:5000/kmm/kmod:v1"},
		{name: "registry with port, no tag", image: "registry.lab.example.com:5000/kmm/kmod", wantErr: "neither a tag nor a digest"},
		{name: "no tag", image: "quay.io/org/kmod", wantErr: "neither a tag nor a digest"},
		{name: "short name without tag", image: "kmod", wantErr: "neither a tag nor a digest"},
		{name: "empty", image: "", wantErr: "empty"},
		{name: "an @ alone is no digest", image: "quay.io/org/kmod@latest", wantErr: "not a valid image reference"},
		{name: "malformed digest", image: "quay.io/org/kmod@sha256:abc", wantErr: "not a valid image reference"},
		{name: "upper case repository", image: "quay.io/Org/kmod:v1", wantErr: "not a valid image reference"},
		{name: "tag with a plus", image: "quay.io/org/kmod:5.10.109+", wantErr: "not a valid image reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckImageReference(tt.image)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestResolveImage(t *testing.T) {
	tests := []struct {
		name, image, kernel, want, wantErr string
	}{
		{name: "COS kernel", image: "r/${MOD_NAME}:${KERNEL_FULL_VERSION}", kernel: "5.10.109+", want: "r/ptp:5.10.109"},
		{name: "a kernel that makes an invalid tag", image: "r/ptp:${KERNEL_XYZ}-x", kernel: "5-a", wantErr: "undefined variable(s) KERNEL_XYZ"},
		{name: "a variable in the repository", image: "r/${MOD_NAMESPACE}/ptp", kernel: "6.1.0", wantErr: "neither a tag nor a digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveImage(tt.image, tt.kernel, "ptp", "kmm-demo")
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

func TestMatchKernel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"5.10.109+", "5.10.109"},
		{"6.1.100+", "6.1.100"},
		{"5.10.109", "5.10.109"},
		{"5.10.109++", "5.10.109+"},
		{"+5.10.109", "+5.10.109"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, MatchKernel(tt.in))
		})
	}
}
