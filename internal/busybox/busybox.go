// Package busybox finds the busybox that kmm's script tests run the chart's scripts with
// (test/scripts, test/dockerfiles, test/kernel), and proves it is of the shape they need: a
// busybox whose sh looks a command up on PATH before its own applets, as Alpine's does.
//
// Debian's busybox-static is built with FEATURE_SH_STANDALONE and FEATURE_PREFER_APPLETS: its sh
// runs its own tar, sha512sum or modprobe even when PATH names another one first, so a test's
// fake commands (or, in the kernel test's VM, kmod's modprobe) would silently not run. Debian's
// busybox package is built without them. `make apt-deps` leaves a busybox of the right shape at
// bin/tools/busybox (the system's when it is one, else unpacked from Debian's busybox package
// without touching the installed one); Find picks it up.
package busybox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Env names a busybox to use instead of the one Find would choose.
const Env = "KMM_BUSYBOX"

// probeTimeout bounds each run of busybox while it is probed.
const probeTimeout = 30 * time.Second

// Busybox is a busybox binary that runs PATH commands before its applets.
type Busybox struct {
	// Path is the binary.
	Path string
	// Version is the first line of its help text, e.g. "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1)".
	Version string
	// From says how it was chosen: $KMM_BUSYBOX, bin/tools/busybox or PATH.
	From string
}

func (b *Busybox) String() string { return fmt.Sprintf("%s (%s, from %s)", b.Path, b.Version, b.From) }

// Find returns the busybox the tests run: $KMM_BUSYBOX when set, else bin/tools/busybox of the
// repository around the working directory when `make apt-deps` made it, else busybox on PATH.
// It fails, saying what to install, when there is none or when the one chosen runs its own
// applets before PATH.
func Find() (*Busybox, error) {
	var path, from string
	if p := os.Getenv(Env); p != "" {
		path, from = p, "$"+Env
	} else if p := repoBusybox(); p != "" {
		path, from = p, "bin/tools/busybox"
	} else if p, err := exec.LookPath("busybox"); err == nil {
		path, from = p, "PATH"
	} else {
		return nil, errors.New("no busybox: install Debian's busybox package (make apt-deps does, as root) " +
			"or set " + Env + " to one; the chart's scripts are run with busybox sh as the Alpine-based images run them")
	}
	b := &Busybox{Path: path, From: from}
	v, err := version(path)
	if err != nil {
		return nil, fmt.Errorf("busybox %s (from %s): %w", path, from, err)
	}
	b.Version = v
	if err := CheckPathFirst(path); err != nil {
		return nil, fmt.Errorf("%s: %w", b, err)
	}
	return b, nil
}

// repoBusybox returns bin/tools/busybox of the kmm checkout that holds the working directory,
// or "".
func repoBusybox() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module kmm.dev/kmm\n")) {
			p := filepath.Join(dir, "bin", "tools", "busybox")
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// version returns the first line of busybox's help text.
func version(path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	// busybox with no arguments prints its help and exits 0 (1 on some builds): keep the output.
	out, _ := exec.CommandContext(ctx, path).CombinedOutput()
	first, _, _ := strings.Cut(string(out), "\n")
	if !strings.HasPrefix(first, "BusyBox ") {
		return "", fmt.Errorf("is not busybox: it printed %q", first)
	}
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(first), "multi-call binary.")), nil
}

// CheckPathFirst proves that `busybox sh` runs a command found on PATH rather than its applet
// of the same name: it runs `cat` with PATH holding only a fake cat.
func CheckPathFirst(path string) error {
	dir, err := os.MkdirTemp("", "kmm-busybox-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	const marker = "kmm-busybox-probe: the fake cat ran"
	if err := os.WriteFile(filepath.Join(dir, "cat"), []byte("#!/bin/sh\necho '"+marker+"'\n"), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "sh", "-c", "cat </dev/null")
	cmd.Env = []string{"PATH=" + dir}
	out, err := cmd.CombinedOutput()
	if strings.TrimSpace(string(out)) == marker {
		return nil
	}
	return fmt.Errorf("its sh runs its own applets before the commands on PATH (`cat` with PATH=%s ran busybox's cat: %v, %q). "+
		"Debian's busybox-static is built so; the tests' fake commands would not run. "+
		"Run `make apt-deps` (it unpacks Debian's busybox package into bin/tools/busybox, leaving the installed one), "+
		"or set %s to a busybox built without FEATURE_SH_STANDALONE (Debian package busybox)", dir, err, strings.TrimSpace(string(out)), Env)
}

// Resolves proves that a shell runs each of names from dir: argv is the shell (e.g. [busybox
// sh] or [/bin/dash]) and path the PATH the scripts get, which must name dir before any other
// folder that holds one of the names. It asks the shell with `type`, which both dash and busybox
// answer with "NAME is /dir/NAME" for a command found on PATH (and "NAME is NAME" for an applet).
func Resolves(argv []string, path, dir string, names []string) error {
	var script strings.Builder
	for _, n := range names {
		fmt.Fprintf(&script, "type '%s'\n", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], "-c", script.String())...)
	cmd.Env = []string{"PATH=" + path}
	out, _ := cmd.CombinedOutput()
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	var wrong []string
	for i, n := range names {
		want := n + " is " + filepath.Join(dir, n)
		if i >= len(got) || strings.TrimSpace(got[i]) != want {
			line := "(nothing)"
			if i < len(got) {
				line = strings.TrimSpace(got[i])
			}
			wrong = append(wrong, fmt.Sprintf("%s: %q, want %q", n, line, want))
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%s does not run the fake commands of %s:\n  %s", strings.Join(argv, " "), dir, strings.Join(wrong, "\n  "))
	}
	return nil
}
