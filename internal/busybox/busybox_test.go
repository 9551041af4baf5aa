package busybox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFind runs wherever the script tests run: the busybox it finds must pass the probe, and the
// probe must tell a PATH-first busybox from the fake cat not being run.
func TestFind(t *testing.T) {
	b, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.Version, "BusyBox v") {
		t.Errorf("version %q", b.Version)
	}
	if err := CheckPathFirst(b.Path); err != nil {
		t.Errorf("Find returned a busybox that fails the probe: %v", err)
	}
}

// TestCheckPathFirstRefusesApplets makes a "busybox" whose sh ignores PATH (a script that runs
// the real busybox's own cat applet by full name) and shows the probe refuses it.
func TestCheckPathFirstRefusesApplets(t *testing.T) {
	b, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(t.TempDir(), "busybox")
	script := "#!/bin/sh\n[ $# -eq 0 ] && exec " + b.Path + "\nexec " + b.Path + " cat </dev/null\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err = CheckPathFirst(fake)
	if err == nil || !strings.Contains(err.Error(), "runs its own applets") || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("CheckPathFirst of an applet-first busybox: %v", err)
	}
}

func TestResolves(t *testing.T) {
	b, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []string{"tar", "sha512sum"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shells := [][]string{{b.Path, "sh"}}
	if dash, err := exec.LookPath("dash"); err == nil {
		shells = append(shells, []string{dash})
	}
	for _, sh := range shells {
		if err := Resolves(sh, dir+":/usr/bin:/bin", dir, []string{"tar", "sha512sum"}); err != nil {
			t.Errorf("%v", err)
		}
		// cat is not in dir: the shell finds another one, which Resolves must report.
		err := Resolves(sh, dir+":/usr/bin:/bin", dir, []string{"tar", "cat"})
		if err == nil || !strings.Contains(err.Error(), "cat: ") || strings.Contains(err.Error(), "tar: ") {
			t.Errorf("Resolves with cat outside %s: %v", dir, err)
		}
	}
}
