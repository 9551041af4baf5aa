// Package ldd lists the shared libraries a host program needs, as ldd prints them, for the
// tests that copy host programs into a VM's initramfs (test/kernel) or an image layer
// (test/node).
package ldd

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Library is one shared library (or the dynamic loader) a program needs.
type Library struct {
	// Path is where the program looks for it, as ldd prints it.
	Path string
	// File is that path with symbolic links resolved: the file to copy.
	File string
}

// Libraries runs ldd on prog. A static program needs none; a library ldd cannot find is an
// error naming it.
func Libraries(ctx context.Context, prog string) ([]Library, error) {
	out, err := exec.CommandContext(ctx, "ldd", prog).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") || strings.Contains(string(out), "statically linked") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", prog, err, out)
	}
	paths, err := parse(string(out))
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", prog, err)
	}
	libs := make([]Library, 0, len(paths))
	for _, p := range paths {
		file, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %w", prog, err)
		}
		libs = append(libs, Library{Path: p, File: file})
	}
	return libs, nil
}

// parse reads ldd's output: "name => /path (addr)" and "/path (addr)" lines name a library;
// "name => not found" is an error; the vDSO line names no file.
func parse(out string) ([]string, error) {
	var paths []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			paths = append(paths, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			paths = append(paths, f[0])
		case len(f) >= 3 && f[1] == "=>" && f[2] == "not":
			return nil, fmt.Errorf("%s", strings.TrimSpace(line))
		}
	}
	return paths, nil
}
