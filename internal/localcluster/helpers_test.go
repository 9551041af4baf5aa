package localcluster

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// child is a real process a test starts and reaps itself.
type child struct {
	cmd    *exec.Cmd
	p      Process
	reaped bool
	said   []string // the lines it printed before "ready"
}

// startChild starts argv (in its own process group when group is set). With ready set,
// startChild returns only once argv printed a line "ready" (the lines before it go to
// child.said): such children print it once their signal handling is set up, so that no signal
// can come too early.
func startChild(t *testing.T, name string, group, ready bool, argv ...string) *child {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(func() {
		if !c.reaped { // an unreaped pid cannot have been reused: safe to kill
			target := cmd.Process.Pid
			if group {
				target = -target
			}
			_ = syscall.Kill(target, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	})
	p, err := ProcessOf(name, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	p.Group = group
	c.p = p
	if ready {
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: no ready line (%v)", name, err)
			}
			if line == "ready\n" {
				break
			}
			c.said = append(c.said, strings.TrimSuffix(line, "\n"))
		}
	}
	return c
}

// termIgnoring is a process that ignores SIGTERM (and says so before it could get one).
func termIgnoring(t *testing.T, name string) *child {
	return startChild(t, name, false, true, "/bin/sh", "-c", `trap "" TERM; echo ready; exec sleep 1000`)
}

// sleeper is a process that exits on SIGTERM.
func sleeper(t *testing.T, name string) *child {
	return startChild(t, name, false, false, "sleep", "1000")
}

// exitSignal returns the signal that ended the child (0 if none did). The child must have
// exited already (a zombie): a test calls it once what should have stopped the child returned.
func (c *child) exitSignal(t *testing.T) syscall.Signal {
	t.Helper()
	if c.p.Running() {
		t.Fatalf("%s (pid %d) still runs", c.p.Name, c.p.Pid)
	}
	return c.reap(t)
}

// reap waits for the child to exit, and returns the signal that ended it (0 if none did).
func (c *child) reap(t *testing.T) syscall.Signal {
	t.Helper()
	err := c.cmd.Wait()
	c.reaped = true
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("%s: exited without a signal: %v", c.p.Name, err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		return 0
	}
	return ws.Signal()
}

// stillRuns checks, without waiting, that the child has not exited: it is killed now with
// SIGKILL, and must die of that SIGKILL. (Linux fixes a process's exit signal when a fatal
// signal is sent, so a SIGTERM sent before would show instead.)
func (c *child) stillRuns(t *testing.T) {
	t.Helper()
	if !c.p.Running() {
		t.Fatalf("%s (pid %d) no longer runs", c.p.Name, c.p.Pid)
	}
	if err := syscall.Kill(c.p.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if sig := c.reap(t); sig != syscall.SIGKILL {
		t.Fatalf("%s (pid %d) was ended by %v before the test ended it", c.p.Name, c.p.Pid, sig)
	}
}

// sent is one signal a test's kill function saw.
type sent struct {
	Pid int // negative: a process group
	Sig syscall.Signal
}

// recorder records the signals StopProcesses sends, and sends them (unless dry).
type recorder struct {
	mu  sync.Mutex
	log []sent
	dry bool
}

func (r *recorder) kill(pid int, sig syscall.Signal) error {
	r.mu.Lock()
	r.log = append(r.log, sent{pid, sig})
	r.mu.Unlock()
	if r.dry {
		return nil
	}
	return syscall.Kill(pid, sig)
}

func (r *recorder) signals() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.log...)
}

// untilGone waits for a process that is not the test's child to exit: it fails only if the
// process still runs after a minute, a bound on a broken test, not a timing assertion.
func untilGone(t *testing.T, p Process) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return !p.Running(), nil
	})
	if err != nil {
		t.Fatalf("%s (pid %d) still runs", p.Name, p.Pid)
	}
}

// waitFor polls cond until it holds; it gives up after a minute, a bound on a broken test.
func waitFor(cond func() bool) error {
	return wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
}
