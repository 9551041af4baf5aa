package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// newCopyCommand copies the running kmm-render into a folder. The kmm-render image is
// FROM scratch (no shell, no cp): an init container runs `/kmm-render copy /tools` to hand the
// binary to another container through a shared emptyDir (deploy/argocd: the Argo CD Config
// Management Plugin sidecar).
func newCopyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "copy DIR",
		Short: "Copy this kmm-render binary to DIR/kmm-render (for init containers of shell-less images)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst, err := copySelf(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied kmm-render to %s\n", dst)
			return nil
		},
	}
}

func copySelf(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("copy: finding this executable: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("copy: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("copy: %s is not a folder", dir)
	}
	in, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("copy: %w", err)
	}
	defer in.Close()
	dst := filepath.Join(dir, "kmm-render")
	tmp, err := os.CreateTemp(dir, ".kmm-render-*")
	if err != nil {
		return "", fmt.Errorf("copy: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return "", fmt.Errorf("copy: writing %s: %w", dst, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", fmt.Errorf("copy: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("copy: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("copy: %w", err)
	}
	return dst, nil
}
