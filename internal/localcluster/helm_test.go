package localcluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPluginManifest(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, root string)
		want    string
		wantErr []string
	}{
		{
			name:  "the repository's manifest",
			setup: func(t *testing.T, root string) { write(t, PluginManifestPath(root), "name: kmm-render\n") },
			want:  "name: kmm-render\n",
		},
		{
			name:    "missing: an error naming the path",
			setup:   func(*testing.T, string) {},
			wantErr: []string{"reading the Helm 4 plugin manifest", "plugin/plugin.yaml", "no such file"},
		},
		{
			name:    "a folder: an error naming the path",
			setup:   func(t *testing.T, root string) { require.NoError(t, os.MkdirAll(PluginManifestPath(root), 0o755)) },
			wantErr: []string{"plugin/plugin.yaml", "is a directory"},
		},
		{
			name:    "empty: an error naming the path",
			setup:   func(t *testing.T, root string) { write(t, PluginManifestPath(root), "\n  \n") },
			wantErr: []string{"plugin/plugin.yaml is empty"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(t, root)
			got, err := PluginManifest(root)
			if tt.wantErr != nil {
				require.Error(t, err)
				assert.Nil(t, got)
				assert.Contains(t, err.Error(), root)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

// TestPluginManifestOfRepository: the e2e tests install the repository's own manifest.
func TestPluginManifestOfRepository(t *testing.T) {
	root, err := RepoRoot()
	require.NoError(t, err)
	got, err := PluginManifest(root)
	require.NoError(t, err)
	assert.Contains(t, string(got), "name: "+PluginName)
}

func TestWritePlugin(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "kmm-render")
	write(t, binary, "#!/bin/sh\n")
	tests := []struct {
		name     string
		manifest string
		binary   string
		wantErr  string
	}{
		{name: "lays out manifest and binary", manifest: "name: kmm-render\n", binary: binary},
		{name: "empty manifest", manifest: "", binary: binary, wantErr: "empty plugin manifest"},
		{name: "missing binary", manifest: "name: kmm-render\n", binary: filepath.Join(t.TempDir(), "missing"), wantErr: "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), PluginName)
			err := WritePlugin(dir, tt.binary, []byte(tt.manifest))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "writing the Helm 4 plugin")
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.manifest, readFile(filepath.Join(dir, "plugin.yaml")))
			fi, err := os.Stat(filepath.Join(dir, "bin", "kmm-render"))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
			assert.Equal(t, "#!/bin/sh\n", readFile(filepath.Join(dir, "bin", "kmm-render")))
		})
	}
}

func TestHelmEnv(t *testing.T) {
	t.Setenv("HELM_PLUGINS", "/elsewhere")
	t.Setenv("HELM_DRIVER", "memory")
	t.Setenv("KUBECONFIG", "/home/user/.kube/config")
	t.Setenv("KMM_TEST_KEEP", "yes")
	c := &Cluster{WorkDir: "/w", Kubeconfig: "/w/kubeconfig", AssetsDir: "/a"}
	env := c.HelmEnv(4)
	var helm []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "HELM_") || strings.HasPrefix(kv, "KUBECONFIG=") {
			helm = append(helm, kv)
		}
	}
	assert.Equal(t, []string{
		"KUBECONFIG=/w/kubeconfig",
		"HELM_DATA_HOME=/w/helm4/data",
		"HELM_CONFIG_HOME=/w/helm4/config",
		"HELM_CACHE_HOME=/w/helm4/cache",
	}, helm)
	assert.Contains(t, env, "KMM_TEST_KEEP=yes")

	bin, err := c.HelmBinary(3)
	require.NoError(t, err)
	assert.Equal(t, "/a/helm3", bin)
	_, err = c.HelmBinary(2)
	assert.ErrorContains(t, err, "helm version 2: want 3 or 4")
}
