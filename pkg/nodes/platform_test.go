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
