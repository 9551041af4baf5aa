package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// PluginName is the name Helm 4 knows the post-renderer plugin by (--post-renderer kmm-render).
const PluginName = "kmm-render"

// HelmBinary is the path of helm3 or helm4 in the assets folder.
func (c *Cluster) HelmBinary(version int) (string, error) {
	if version != 3 && version != 4 {
		return "", fmt.Errorf("helm version %d: want 3 or 4", version)
	}
	return filepath.Join(c.AssetsDir, fmt.Sprintf("helm%d", version)), nil
}

func (c *Cluster) helmHome(version int) string {
	return filepath.Join(c.WorkDir, fmt.Sprintf("helm%d", version))
}

// HelmCacheHome is HELM_CACHE_HOME of helm3 or helm4 (see HelmEnv).
func (c *Cluster) HelmCacheHome(version int) string {
	return filepath.Join(c.helmHome(version), "cache")
}

// HelmEnv is the environment Helm runs with: this process's, minus HELM_* and KUBECONFIG,
// plus KUBECONFIG=c.Kubeconfig and HELM_DATA_HOME, HELM_CONFIG_HOME and HELM_CACHE_HOME in
// WorkDir/helm<version>/ (HELM_PLUGINS unset: Helm 4 installs plugins under HELM_DATA_HOME
// but looks them up in HELM_PLUGINS, so setting it elsewhere loses them).
func (c *Cluster) HelmEnv(version int) []string {
	base := c.helmHome(version)
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "HELM_") || k == "KUBECONFIG" {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"KUBECONFIG="+c.Kubeconfig,
		"HELM_DATA_HOME="+filepath.Join(base, "data"),
		"HELM_CONFIG_HOME="+filepath.Join(base, "config"),
		"HELM_CACHE_HOME="+c.HelmCacheHome(version),
	)
}

// Helm runs helm3 or helm4 against the cluster (see HelmEnv) and returns its output. err is
// non-nil when helm could not run or exited non-zero (wrapping an *exec.ExitError then).
func (c *Cluster) Helm(ctx context.Context, version int, args ...string) (stdout, stderr string, err error) {
	bin, err := c.HelmBinary(version)
	if err != nil {
		return "", "", err
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = c.HelmEnv(version)
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("helm%d %s: %w", version, strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), err
}

// PluginManifestPath is the repository's Helm 4 plugin manifest, <repoRoot>/plugin/plugin.yaml.
func PluginManifestPath(repoRoot string) string {
	return filepath.Join(repoRoot, "plugin", "plugin.yaml")
}

// PluginManifest reads the repository's plugin/plugin.yaml. A missing, unreadable or empty
// file is an error naming it.
func PluginManifest(repoRoot string) ([]byte, error) {
	path := PluginManifestPath(repoRoot)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the Helm 4 plugin manifest: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("reading the Helm 4 plugin manifest: %s is empty", path)
	}
	return data, nil
}

// WritePlugin lays out the kmm-render Helm 4 plugin in dir: dir/plugin.yaml (manifest, which
// must not be empty; see PluginManifest) and dir/bin/kmm-render (a copy of binary). Helm names
// an installed local plugin after its folder, so dir should end in "kmm-render".
func WritePlugin(dir, binary string, manifest []byte) error {
	if len(bytes.TrimSpace(manifest)) == 0 {
		return errors.New("writing the Helm 4 plugin: empty plugin manifest")
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return fmt.Errorf("writing the Helm 4 plugin: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plugin.yaml"), manifest, 0o644); err != nil {
		return fmt.Errorf("writing the Helm 4 plugin: %w", err)
	}
	if err := copyFile(binary, filepath.Join(dir, "bin", "kmm-render"), 0o755); err != nil {
		return fmt.Errorf("writing the Helm 4 plugin: %w", err)
	}
	return nil
}

// InstallPlugin installs a local plugin folder into Helm 4 (helm4 plugin install DIR).
func (c *Cluster) InstallPlugin(ctx context.Context, dir string) error {
	stdout, stderr, err := c.Helm(ctx, 4, "plugin", "install", dir)
	if err != nil {
		return fmt.Errorf("%w\n%s%s", err, stdout, stderr)
	}
	list, stderr, err := c.Helm(ctx, 4, "plugin", "list")
	if err != nil {
		return fmt.Errorf("%w\n%s", err, stderr)
	}
	if !strings.Contains(list, PluginName) {
		return fmt.Errorf("helm4 plugin list does not show %s after installing %s:\n%s", PluginName, dir, list)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
