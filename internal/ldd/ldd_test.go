package ldd

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f2)\n"
	paths, err := parse(out)
	require.NoError(t, err)
	assert.Equal(t, []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}, paths)

	_, err = parse("\tlibkmod.so.2 => not found\n")
	require.Error(t, err)
	assert.Equal(t, "libkmod.so.2 => not found", err.Error())
}

// TestLibrariesOfTheShell: the host's /bin/sh is dynamically linked against libc, which
// Libraries lists with a file that exists.
func TestLibrariesOfTheShell(t *testing.T) {
	libs, err := Libraries(context.Background(), "/bin/sh")
	require.NoError(t, err)
	var libc bool
	for _, l := range libs {
		assert.FileExists(t, l.File)
		if l.Path == "/lib/x86_64-linux-gnu/libc.so.6" {
			libc = true
		}
	}
	assert.True(t, libc, "libc among %v", libs)
}
