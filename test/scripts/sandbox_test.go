package scripts_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"kmm.dev/kmm/internal/busybox"
)

// filesDir is the chart's script folder, relative to this package.
const filesDir = "../../charts/kmm/files"

// kernel is what the fake uname -r prints unless a test says otherwise.
const kernel = "6.1.0-test"

// patience bounds every wait on a script running in the background.
const patience = 30 * time.Second

// argSep separates the arguments in the fake commands' log lines.
const argSep = "\x1f"

// applets are the utilities the scripts use that alpine provides as busybox
// applets; the busybox runs get them from busybox too.
var applets = []string{"cat", "cp", "mkdir", "mv", "rm", "sleep", "tr", "rmdir"}

// shell is one interpreter the scripts are run with.
type shell struct {
	name    string
	argv    []string // the command that runs a script given as the next argument
	binary  string   // what "sh" is in the sandbox (load.sh runs unload.sh with sh)
	applets string   // busybox binary whose applets replace the system utilities, or ""
}

// shells lists /bin/sh and busybox sh (internal/busybox: one that looks commands up on PATH
// before its applets, as Alpine's does), each proven by TestMain to run the fakes.
func shells(t *testing.T) []shell {
	t.Helper()
	if shellsErr != nil {
		t.Fatal(shellsErr)
	}
	return scriptShells
}

// scriptShells are the shells of shells; shellsErr says why there are none.
var (
	scriptShells []shell
	shellsErr    error
)

// findShells returns /bin/sh and busybox sh after proving that each runs every fake of fakeDir
// rather than a command or applet of the same name.
func findShells(fakeDir string, fakes []string) ([]shell, error) {
	bb, err := busybox.Find()
	if err != nil {
		return nil, fmt.Errorf("the scripts are run with busybox sh as the Alpine-based loader image runs them: %w", err)
	}
	out := []shell{
		{name: "sh", argv: []string{"/bin/sh"}, binary: "/bin/sh"},
		{name: "busybox", argv: []string{bb.Path, "sh"}, binary: bb.Path, applets: bb.Path},
	}
	for _, sh := range out {
		if err := busybox.Resolves(sh.argv, fakeDir+":/usr/bin:/bin", fakeDir, fakes); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// forShells runs f as a parallel subtest per shell.
func forShells(t *testing.T, f func(t *testing.T, sh shell)) {
	for _, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			t.Parallel()
			f(t, sh)
		})
	}
}

// sandbox is a temporary folder with the fake commands first on PATH.
type sandbox struct {
	t   *testing.T
	sh  shell
	dir string
	log string
	env map[string]string
	n   atomic.Int32
}

// fakeBin holds the fake commands, made executable once by TestMain: writing
// an executable while parallel tests fork can make its exec fail with "text
// file busy", so the sandboxes only make symbolic links.
var fakeBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kmm-script-fakes-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	fakes, err := filepath.Glob("testdata/bin/*")
	if err != nil || len(fakes) == 0 {
		fmt.Fprintln(os.Stderr, "no fake command in testdata/bin", err)
		return 1
	}
	for _, f := range fakes {
		data, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o755)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fakeBin = dir
	var names []string
	for _, f := range fakes {
		names = append(names, filepath.Base(f))
	}
	scriptShells, shellsErr = findShells(dir, names)
	return m.Run()
}

func newSandbox(t *testing.T, sh shell) *sandbox {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.Symlink(sh.binary, filepath.Join(bin, "sh")))
	path := bin + ":" + fakeBin
	if sh.applets != "" {
		appletDir := filepath.Join(dir, "applets")
		require.NoError(t, os.MkdirAll(appletDir, 0o755))
		for _, a := range applets {
			require.NoError(t, os.Symlink(sh.applets, filepath.Join(appletDir, a)))
		}
		path += ":" + appletDir
	}
	path += ":/usr/local/bin:/usr/bin:/bin"
	s := &sandbox{t: t, sh: sh, dir: dir, log: filepath.Join(dir, "calls.log")}
	s.env = map[string]string{
		"PATH":           path,
		"HOME":           dir,
		"FAKE_LOG":       s.log,
		"FAKE_KERNEL":    kernel,
		"KMM_SYS_MODULE": s.path("sys/module"),
		"KMM_STATE":      s.path("state"),
		// Never the host's /dev/termination-log.
		"KMM_TERMINATION_LOG": s.path("termination-log"),
	}
	s.mkdir("sys/module")
	return s
}

// path is rel inside the sandbox.
func (s *sandbox) path(rel string) string { return filepath.Join(s.dir, rel) }

func (s *sandbox) mkdir(rel string) {
	s.t.Helper()
	require.NoError(s.t, os.MkdirAll(s.path(rel), 0o755))
}

// write creates the file rel (and its folders) holding content.
func (s *sandbox) write(rel, content string) {
	s.t.Helper()
	require.NoError(s.t, os.MkdirAll(filepath.Dir(s.path(rel)), 0o755))
	require.NoError(s.t, os.WriteFile(s.path(rel), []byte(content), 0o644))
}

// symlink creates the symbolic link rel pointing to target.
func (s *sandbox) symlink(target, rel string) {
	s.t.Helper()
	require.NoError(s.t, os.MkdirAll(filepath.Dir(s.path(rel)), 0o755))
	require.NoError(s.t, os.Symlink(target, s.path(rel)))
}

func (s *sandbox) read(rel string) string {
	s.t.Helper()
	data, err := os.ReadFile(s.path(rel))
	require.NoError(s.t, err)
	return string(data)
}

func (s *sandbox) exists(rel string) bool {
	_, err := os.Lstat(s.path(rel))
	return err == nil
}

// proc is a script started in the background.
type proc struct {
	s    *sandbox
	cmd  *exec.Cmd
	out  string
	done chan struct{}
	err  error
}

// start runs script (a file of filesDir) with the sandbox's environment plus
// env; its output goes to a file, so that nothing it leaves behind can hold a
// pipe open.
func (s *sandbox) start(script string, env map[string]string) *proc {
	s.t.Helper()
	abs, err := filepath.Abs(filepath.Join(filesDir, script))
	require.NoError(s.t, err)
	return s.startFile(abs, env)
}

// startFile is start of the script at the absolute path abs, which need not be in filesDir.
func (s *sandbox) startFile(abs string, env map[string]string) *proc {
	s.t.Helper()
	outPath := s.path(fmt.Sprintf("output-%d", s.n.Add(1)))
	out, err := os.Create(outPath)
	require.NoError(s.t, err)
	defer out.Close()
	merged := map[string]string{}
	for k, v := range s.env {
		merged[k] = v
	}
	for k, v := range env {
		merged[k] = v
	}
	var list []string
	for k, v := range merged {
		list = append(list, k+"="+v)
	}
	args := append(append([]string{}, s.sh.argv[1:]...), abs)
	cmd := exec.Command(s.sh.argv[0], args...)
	cmd.Env = list
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	require.NoError(s.t, cmd.Start())
	p := &proc{s: s, cmd: cmd, out: outPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// output is what the script printed so far.
func (p *proc) output() string {
	data, err := os.ReadFile(p.out)
	require.NoError(p.s.t, err)
	return string(data)
}

// wait waits (at most patience) for the script to end and returns its exit
// code and output, checking that every line it printed is a kmm message or
// comes from a fake command.
func (p *proc) wait() (int, string) {
	t := p.s.t
	t.Helper()
	code, out := p.waitAny()
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		assert.True(t, strings.HasPrefix(line, "kmm: ") || strings.HasPrefix(line, "fake-"),
			"a line that is neither a kmm message nor a fake command's: %q\noutput:\n%s", line, out)
	}
	return code, out
}

// waitAny is wait without the check of the lines printed, for a script given a message that
// spans lines.
func (p *proc) waitAny() (int, string) {
	t := p.s.t
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(patience):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not end within %s; output:\n%s", p.cmd.Args, patience, p.output())
	}
	code := 0
	if p.err != nil {
		exitErr, ok := p.err.(*exec.ExitError)
		require.True(t, ok, "running %s: %v", p.cmd.Args, p.err)
		code = exitErr.ExitCode()
	}
	return code, p.output()
}

// run runs script to its end.
func (s *sandbox) run(script string, env map[string]string) (int, string) {
	s.t.Helper()
	return s.start(script, env).wait()
}

// calls returns the fake commands' logged invocations (command name first),
// only those of the named commands when names are given.
func (s *sandbox) calls(names ...string) [][]string {
	s.t.Helper()
	data, err := os.ReadFile(s.log)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(s.t, err)
	var out [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		call := strings.Split(line, argSep)
		if len(names) == 0 || slices.Contains(names, call[0]) {
			out = append(out, call)
		}
	}
	return out
}

// eventually polls cond every 10 ms until it holds, for at most patience.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", patience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lines joins entries into a newline-separated list the way the chart sets them.
func lines(entries ...string) string { return strings.Join(entries, "\n") + "\n" }

// call builds an expected logged invocation.
func call(args ...string) []string { return args }
