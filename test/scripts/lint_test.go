package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scripts are the chart's shell scripts.
func scripts(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(filesDir, "*.sh"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no script in %s", filesDir)
	return files
}

func TestShellcheck(t *testing.T) {
	t.Parallel()
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck is not installed: apt-get install shellcheck")
	}
	files := scripts(t)
	fakes, err := filepath.Glob("testdata/bin/*")
	require.NoError(t, err)
	out, err := exec.Command(shellcheck, append([]string{"-s", "sh"}, append(files, fakes...)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck -s sh: %v\n%s", err, out)
	}
}

func TestScriptHeaders(t *testing.T) {
	t.Parallel()
	want := map[string]bool{
		"load.sh": true, "unload.sh": true, "wait-module.sh": true,
		"image-exists.sh": true, "build.sh": true, "sign.sh": true, "common.sh": true,
	}
	for _, f := range scripts(t) {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		text := string(data)
		name := filepath.Base(f)
		delete(want, name)
		assert.True(t, strings.HasPrefix(text, "#!/bin/sh\n# "+name+": "), "%s must start with #!/bin/sh and a comment naming it", name)
		header, _, found := strings.Cut(text, "\nset -eu\n")
		if assert.True(t, found, "%s has no set -eu line", name) {
			for _, line := range strings.Split(header, "\n")[1:] {
				assert.True(t, line == "" || strings.HasPrefix(line, "#"), "%s: code before set -eu: %q", name, line)
			}
			assert.Contains(t, header, "# Environment", "%s documents no environment", name)
		}
		// Every KMM_ variable the script reads is documented in its header.
		for _, v := range kmmVariables(text[len(header):]) {
			assert.Contains(t, header, "#   "+v+" ", "%s uses %s without documenting it", name, v)
		}
	}
	assert.Empty(t, want, "scripts missing from %s", filesDir)
}

// kmmVariables lists the KMM_* names in text.
func kmmVariables(text string) []string {
	seen := map[string]bool{}
	var out []string
	for i := strings.Index(text, "KMM_"); i >= 0; i = strings.Index(text, "KMM_") {
		j := i + len("KMM_")
		for j < len(text) && (text[j] == '_' || text[j] >= 'A' && text[j] <= 'Z' || text[j] >= '0' && text[j] <= '9') {
			j++
		}
		v := text[i:j]
		if !seen[v] && (i == 0 || text[i-1] != '/' && text[i-1] != '-') {
			seen[v] = true
			out = append(out, v)
		}
		text = text[j:]
	}
	return out
}

func TestSignDockerfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(filesDir, "sign.Dockerfile"))
	require.NoError(t, err)
	text := string(data)
	// build.sh names the context, the build arguments and the secrets.
	for _, s := range []string{
		"ARG SIGN_IMAGE\n", "FROM unsigned AS source\n", "FROM ${SIGN_IMAGE} AS signer\n",
		"id=kmm-sign-key,", "id=kmm-sign-cert,", "KMM_FILES_TO_SIGN_FILE=/kmm/ctx/files-to-sign",
		"/bin/sh /kmm/ctx/sign.sh", "FROM source\n", "COPY --from=signer /kmm/root${KMM_DIR_NAME} ${KMM_DIR_NAME}\n",
	} {
		assert.Contains(t, text, s)
	}
	// Every stage that uses KMM_DIR_NAME declares it.
	stages := strings.Split(text, "\nFROM ")[1:]
	for _, st := range stages {
		if strings.Contains(st, "${KMM_DIR_NAME}") {
			assert.Contains(t, st, "\nARG KMM_DIR_NAME\n", "stage FROM %s", strings.SplitN(st, "\n", 2)[0])
		}
	}
}
