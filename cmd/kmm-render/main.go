// Command kmm-render is kmm's Helm post-renderer: it reads the manifests Helm rendered on
// standard input and writes them back on standard output with every module's loader template
// expanded into one DaemonSet per node kernel that a kernel mapping matches.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		var quiet *exitError
		if !errors.As(err, &quiet) || quiet.err != nil {
			reportError(err)
		}
		os.Exit(exitCode(err))
	}
}

// reportError writes the error to stderr. Helm 4 does not show a post-renderer plugin's stderr
// (only "plugin exited with error"), so as a plugin kmm-render also writes it to the terminal,
// when there is one, and to a file whose path the README gives.
func reportError(err error) {
	msg := fmt.Sprintf("kmm-render: error: %v\n", err)
	fmt.Fprint(os.Stderr, msg)
	if os.Getenv("HELM_PLUGIN_NAME") == "" {
		return
	}
	if tty, terr := os.OpenFile("/dev/tty", os.O_WRONLY, 0); terr == nil {
		fmt.Fprint(tty, msg)
		tty.Close()
	}
	if path := errorLogPath(); path != "" {
		if os.MkdirAll(filepath.Dir(path), 0o755) == nil {
			_ = os.WriteFile(path, []byte(msg), 0o644)
		}
	}
}

// errorLogPath is where a Helm 4 plugin run leaves its last error:
// $HELM_CACHE_HOME/kmm-render/last-error.txt, else the user cache dir.
func errorLogPath() string {
	base := os.Getenv("HELM_CACHE_HOME")
	if base == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(dir, "helm")
	}
	return filepath.Join(base, "kmm-render", "last-error.txt")
}
