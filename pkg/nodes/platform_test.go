package nodes

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDetectOSFamilyRunsDaemonSets(t *testing.T) {
	tests := []struct {
		name         string
		node         Node
		wantPlatform Platform
		wantOS       string
		wantDS       bool
	}{
		{
			name:         "EKS AL2 by providerID",
			node:         Node{ProviderID: "aws:///us-west-2a/i-01fb99d674c823c78", OSImage: "Amazon Linux 2"},
			wantPlatform: PlatformEKS, wantOS: "al2", wantDS: true,
		},
		{
			name:         "EKS AL2023 by nodegroup label",
			node:         Node{Labels: map[string]string{LabelEKSNodegroup: "al2023-ng"}, OSImage: "Amazon Linux 2023.6.20241010"},
			wantPlatform: PlatformEKS, wantOS: "al2023", wantDS: true,
		},
		{
			name:         "EKS Fargate: compute-type label, no DaemonSets",
			node:         Node{Labels: map[string]string{LabelEKSComputeType: "fargate"}, OSImage: "Amazon Linux 2"},
			wantPlatform: PlatformEKS, wantOS: "al2", wantDS: false,
		},
		{
			name:         "EKS compute-type ec2 runs DaemonSets",
			node:         Node{Labels: map[string]string{LabelEKSComputeType: "ec2"}, OSImage: "Amazon Linux 2"},
			wantPlatform: PlatformEKS, wantOS: "al2", wantDS: true,
		},
		{
			name:         "EKS with an Ubuntu AMI is still EKS",
			node:         Node{ProviderID: "aws:///us-west-2a/i-1", OSImage: "Ubuntu 22.04.4 LTS"},
			wantPlatform: PlatformEKS, wantOS: "ubuntu", wantDS: true,
		},
		{
			name:         "GKE COS by providerID",
			node:         Node{ProviderID: "gce://my-project/us-central1-a/gke-x", OSImage: "Container-Optimized OS from Google"},
			wantPlatform: PlatformGKE, wantOS: "cos", wantDS: true,
		},
		{
			name:         "GKE Ubuntu by nodepool label",
			node:         Node{Labels: map[string]string{LabelGKENodepool: "ubuntu-pool"}, OSImage: "Ubuntu 22.04.2 LTS"},
			wantPlatform: PlatformGKE, wantOS: "ubuntu", wantDS: true,
		},
		{
			name:         "bare-metal Ubuntu",
			node:         Node{OSImage: "Ubuntu 24.04.1 LTS"},
			wantPlatform: PlatformUbuntu, wantOS: "ubuntu", wantDS: true,
		},
		{
			name:         "generic: other OS",
			node:         Node{OSImage: "Red Hat Enterprise Linux CoreOS 416.94"},
			wantPlatform: PlatformGeneric, wantOS: "Red Hat Enterprise Linux CoreOS 416.94", wantDS: true,
		},
		{
			name:         "generic: nothing known",
			node:         Node{},
			wantPlatform: PlatformGeneric, wantOS: "unknown", wantDS: true,
		},
		{
			name:         "other cloud provider is generic",
			node:         Node{ProviderID: "azure:///subscriptions/x", OSImage: "CBL-Mariner/Linux"},
			wantPlatform: PlatformGeneric, wantOS: "CBL-Mariner/Linux", wantDS: true,
		},
		{
			name:         "Fargate-like label value of another key does not stop DaemonSets",
			node:         Node{Labels: map[string]string{"compute-type": "fargate"}},
			wantPlatform: PlatformGeneric, wantOS: "unknown", wantDS: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.wantPlatform, Detect(tt.node))
			assert.Equal(t, tt.wantPlatform, tt.node.Platform())
			assert.Equal(t, tt.wantOS, OSFamily(tt.node))
			assert.Equal(t, tt.wantDS, RunsDaemonSets(tt.node))
		})
	}
}

func TestDetectExamples(t *testing.T) {
	tests := []struct {
		example  string
		platform Platform
		families map[string]int
	}{
		{example: "eks", platform: PlatformEKS, families: map[string]int{"al2": 6, "al2023": 3}},
		{example: "gke", platform: PlatformGKE, families: map[string]int{"cos": 4, "ubuntu": 3}},
		{example: "ubuntu", platform: PlatformUbuntu, families: map[string]int{"ubuntu": 5}},
	}
	for _, tt := range tests {
		t.Run(tt.example, func(t *testing.T) {
			ns, err := LoadFile(filepath.Join("..", "..", "examples", tt.example, "nodes.yaml"))
			require.NoError(t, err)
			fam := map[string]int{}
			for _, n := range ns {
				assert.Equal(t, tt.platform, Detect(n), n.Name)
				assert.True(t, RunsDaemonSets(n), n.Name)
				fam[OSFamily(n)]++
			}
			assert.Equal(t, tt.families, fam)
		})
	}
}

func TestOSReleaseAndArch(t *testing.T) {
	tests := []struct {
		osImage, arch                string
		wantFamily, wantRel, wantVar string
		wantArch                     string
	}{
		{"Amazon Linux 2", "amd64", "al2", "2", "", "x86_64"},
		{"Amazon Linux 2023.6.20241010", "arm64", "al2023", "2023.6.20241010", "", "aarch64"},
		{"Amazon Linux 2023", "amd64", "al2023", "", "", "x86_64"},
		{"Ubuntu 22.04.2 LTS", "amd64", "ubuntu", "22.04", "", "x86_64"},
		{"Ubuntu 24.04 LTS", "amd64", "ubuntu", "24.04", "", "x86_64"},
		{"Debian GNU/Linux 12 (bookworm)", "amd64", "debian", "12", "bookworm", "x86_64"},
		{"Bottlerocket OS 1.26.1 (aws-k8s-1.31)", "arm64", "bottlerocket", "1.26.1", "aws-k8s-1.31", "aarch64"},
		{"Container-Optimized OS from Google", "amd64", "cos", "", "", "x86_64"},
		{"Flatcar Container Linux by Kinvolk 3510.2.0 (Oklo)", "s390x", "Flatcar Container Linux by Kinvolk 3510.2.0 (Oklo)", "", "", "s390x"},
		// What reaches build args and image references is only [A-Za-z0-9._-].
		{"Amazon Linux 2023.6;rm -rf /", "amd64", "al2023", "", "", "x86_64"},
		{"Bottlerocket OS 1.26.1 (aws k8s $(id))", "weird arch", "bottlerocket", "", "", ""},
		{"", "", "unknown", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.osImage, func(t *testing.T) {
			n := Node{OSImage: tt.osImage, Architecture: tt.arch}
			assert.Equal(t, tt.wantFamily, OSFamily(n))
			rel, variant := OSRelease(n)
			assert.Equal(t, tt.wantRel, rel, "release")
			assert.Equal(t, tt.wantVar, variant, "variant")
			assert.Equal(t, tt.wantArch, Arch(n))
		})
	}
}

func TestAutopilotAndEKSComputeTypes(t *testing.T) {
	tests := []struct {
		name      string
		node      Node
		autopilot bool
		compute   string
		pool      string
	}{
		{"GKE Standard node", Node{Name: "gke-c-default-pool-1", Labels: map[string]string{LabelGKENodepool: "default-pool"}}, false, "", "node pool default-pool"},
		{"GKE Autopilot cluster node", Node{Name: "gk3-c-pool-2-9f3a", Labels: map[string]string{LabelGKENodepool: "pool-2"}}, true, "", "node pool pool-2"},
		{"Autopilot ComputeClass in a Standard cluster", Node{Name: "gke-c-nap-1", Labels: map[string]string{LabelGKENodepool: "nap-1", LabelGKEComputeClass: "autopilot-spot"}}, true, "", "node pool nap-1"},
		{"custom ComputeClass is not Autopilot", Node{Name: "gke-c-nap-2", Labels: map[string]string{LabelGKENodepool: "nap-2", LabelGKEComputeClass: "my-class"}}, false, "", "node pool nap-2"},
		{"gk3- name outside GKE", Node{Name: "gk3-lab-1", OSImage: "Ubuntu 22.04.4 LTS"}, false, "", ""},
		{"EKS Auto Mode", Node{Name: "i-0abc", Labels: map[string]string{LabelEKSComputeType: EKSAutoMode}}, false, EKSAutoMode, "compute type auto"},
		{"EKS hybrid", Node{Name: "mi-0abc", Labels: map[string]string{LabelEKSComputeType: EKSHybrid}}, false, EKSHybrid, "compute type hybrid"},
		{"EKS managed node group", Node{Name: "ip-10-0-1-1", Labels: map[string]string{LabelEKSNodegroup: "ng-1"}}, false, "", "node group ng-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.autopilot, Autopilot(tt.node))
			assert.Equal(t, tt.compute, EKSComputeType(tt.node))
			assert.Equal(t, tt.pool, NodePool(tt.node))
		})
	}
}

func TestOSOfKernel(t *testing.T) {
	tests := []struct{ kernel, osImage, arch string }{
		{"6.1.112-122.189.amzn2023.x86_64", "Amazon Linux 2023", "amd64"},
		{"6.12.40-64.114.amzn2023.aarch64", "Amazon Linux 2023", "arm64"},
		{"5.4.196-108.356.amzn2.x86_64", "Amazon Linux 2", "amd64"},
		{"5.10.109+", "Container-Optimized OS from Google", ""},
		{"6.1.0-28-cloud-amd64", "Debian GNU/Linux", "amd64"},
		{"6.12.57+deb13-arm64", "Debian GNU/Linux", "arm64"},
		{"5.15.0-1034-gke", "Ubuntu", ""},
		{"6.8.0-51-generic", "Ubuntu", ""},
		{"6.1.119", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.kernel, func(t *testing.T) {
			assert.Equal(t, tt.osImage, OSImageOfKernel(tt.kernel))
			assert.Equal(t, tt.arch, ArchOfKernel(tt.kernel))
		})
	}
}

func TestNotLinux(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		os     string
		want   string
	}{
		{"linux by both", map[string]string{"kubernetes.io/os": "linux"}, "linux", ""},
		{"says nothing", nil, "", ""},
		{"windows by label", map[string]string{"kubernetes.io/os": "windows"}, "", "windows"},
		{"windows by nodeInfo", nil, "windows", "windows"},
		{"label wins", map[string]string{"kubernetes.io/os": "windows"}, "linux", "windows"},
		{"nodeInfo when the label says linux", map[string]string{"kubernetes.io/os": "linux"}, "freebsd", "freebsd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotLinux(Node{Name: "n", Labels: tt.labels, OperatingSystem: tt.os}); got != tt.want {
				t.Errorf("NotLinux = %q, want %q", got, tt.want)
			}
		})
	}
}
