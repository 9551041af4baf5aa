package localcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Binaries the harness needs in the assets folder (see `make tools`).
var requiredBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// RealNodeLabel marks a node that a real kubelet runs (test/node): kwok manages every node
// without it, and leaves that one to its kubelet.
const RealNodeLabel = "kmm.dev/real-node"

// KwokStages are the kwok stage files the harness loads from <assets>/kwok-stages.
var KwokStages = []string{"node-initialize.yaml", "node-heartbeat.yaml", "pod-ready.yaml", "pod-complete.yaml", "pod-delete.yaml"}

// RepoRoot finds the kmm module root: the nearest folder at or above the working directory whose
// go.mod declares module kmm.dev/kmm.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the kmm repository root: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(data) == "kmm.dev/kmm" {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the kmm repository root (a go.mod declaring module kmm.dev/kmm) at or above the working directory")
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// DefaultAssetsDir is $KUBEBUILDER_ASSETS when set, else <repo>/bin/assets.
func DefaultAssetsDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return filepath.Abs(d)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", "assets"), nil
}

// CheckAssets reports which binaries or kwok stage files are missing from dir, with a hint to
// run `make tools`.
func CheckAssets(dir string) error {
	var missing []string
	for _, b := range requiredBinaries {
		if !isExecutable(filepath.Join(dir, b)) {
			missing = append(missing, b)
		}
	}
	for _, s := range KwokStages {
		if _, err := os.Stat(filepath.Join(dir, "kwok-stages", s)); err != nil {
			missing = append(missing, "kwok-stages/"+s)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("assets folder %s lacks %s: run `make tools` (or point KUBEBUILDER_ASSETS at a folder that has them)", dir, strings.Join(missing, ", "))
	}
	return nil
}

// CheckHelm reports whether <dir>/helm3 and <dir>/helm4 are there.
func CheckHelm(dir string) error {
	var missing []string
	for _, b := range []string{"helm3", "helm4"} {
		if !isExecutable(filepath.Join(dir, b)) {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("assets folder %s lacks %s: run `make tools`", dir, strings.Join(missing, ", "))
	}
	return nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path) // follows the symlinks make tools creates
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// DefaultDir is the folder Up, Serve, Down and ReadStatus use when given none: <repo>/bin/cluster.
func DefaultDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", "cluster"), nil
}
