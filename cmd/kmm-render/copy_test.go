package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCopy(t *testing.T) {
	dir := t.TempDir()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"copy", dir})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "kmm-render")
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the running executable %s", dst, self)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("%s has mode %v, want 0755", dst, fi.Mode().Perm())
	}
	if !strings.Contains(out.String(), dst) {
		t.Errorf("output %q does not name %s", out.String(), dst)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only kmm-render (no temporary file left)", dir, len(entries))
	}

	for _, bad := range []string{filepath.Join(dir, "missing"), dst} {
		cmd := newRootCommand()
		cmd.SetArgs([]string{"copy", bad})
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), "copy:") {
			t.Errorf("copy %s: got %v, want an error naming the copy", bad, err)
		}
	}
}
