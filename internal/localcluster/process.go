package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Process identifies one process of the local cluster. Pid and StartTime together name it: a
// pid the kernel hands to another process later comes with another start time, so a recorded
// Process is never mistaken for whatever runs under its pid now.
type Process struct {
	Name string `json:"name"`
	Pid  int    `json:"pid"`
	// StartTime is the process start time in clock ticks since boot (/proc/PID/stat field 22).
	StartTime uint64 `json:"startTime"`
	// Log is the file its standard output and error go to.
	Log string `json:"log,omitempty"`
	// Group is true when the process leads its own process group: it is signalled as a group.
	Group bool `json:"group,omitempty"`
}

// Running reports whether p still runs (see Alive).
func (p Process) Running() bool { return Alive(p.Pid, p.StartTime) }

// ProcessOf returns the Process running as pid now, named name.
func ProcessOf(name string, pid int) (Process, error) {
	st, err := ProcStartTime(pid)
	if err != nil {
		return Process{}, fmt.Errorf("identifying %s (pid %d): %w", name, pid, err)
	}
	return Process{Name: name, Pid: pid, StartTime: st}, nil
}

// procStat holds the fields of /proc/PID/stat the package reads.
type procStat struct {
	Comm      string // field 2, without its parentheses
	State     byte   // field 3: R, S, D, Z, ...
	Ppid      int    // field 4
	StartTime uint64 // field 22
}

// parseProcStat parses /proc/PID/stat. The command name (field 2) is in parentheses and may
// itself hold spaces and parentheses, so it ends at the last ')'.
func parseProcStat(data []byte) (procStat, error) {
	open := bytes.IndexByte(data, '(')
	closing := bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return procStat{}, errors.New("malformed /proc stat: no (comm)")
	}
	// fields[0] is field 3 (state); field n is fields[n-3].
	fields := strings.Fields(string(data[closing+1:]))
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("malformed /proc stat: %d fields after (comm), want at least 20", len(fields))
	}
	if len(fields[0]) != 1 {
		return procStat{}, fmt.Errorf("malformed /proc stat: state %q", fields[0])
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: ppid: %w", err)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: start time: %w", err)
	}
	return procStat{Comm: string(data[open+1 : closing]), State: fields[0][0], Ppid: ppid, StartTime: start}, nil
}

func readProcStat(pid int) (procStat, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	st, err := parseProcStat(data)
	if err != nil {
		return procStat{}, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// ProcStartTime reads a process's start time (clock ticks since boot) from /proc/PID/stat.
func ProcStartTime(pid int) (uint64, error) {
	st, err := readProcStat(pid)
	if err != nil {
		return 0, err
	}
	return st.StartTime, nil
}

// Alive reports whether process pid exists and is the one that started at startTime. A zombie
// (exited, not yet reaped) counts as gone, and so does any process when startTime is 0: an
// unknown start time identifies nothing.
func Alive(pid int, startTime uint64) bool {
	if pid <= 0 || startTime == 0 {
		return false
	}
	st, err := readProcStat(pid)
	return err == nil && st.State != 'Z' && st.State != 'X' && st.StartTime == startTime
}

// StopOptions configure StopProcesses.
type StopOptions struct {
	// Grace is how long the processes get to exit after SIGTERM before SIGKILL. Zero means 5 s.
	Grace time.Duration
	// KillTimeout bounds the wait for the processes to exit after SIGKILL. Zero means 5 s.
	KillTimeout time.Duration
	// OnSignal, when set, is called before a signal is sent to a process.
	OnSignal func(p Process, sig syscall.Signal)

	// interval between checks whether the processes still run. Zero means 50 ms.
	interval time.Duration
	// kill sends the signals (syscall.Kill when nil); tests record them.
	kill func(pid int, sig syscall.Signal) error
}

func (o *StopOptions) defaults() {
	if o.Grace == 0 {
		o.Grace = 5 * time.Second
	}
	if o.KillTimeout == 0 {
		o.KillTimeout = 5 * time.Second
	}
	if o.interval == 0 {
		o.interval = 50 * time.Millisecond
	}
	if o.kill == nil {
		o.kill = syscall.Kill
	}
}

// StopProcesses stops processes: SIGTERM to each that still runs (to its process group when
// Group is set), then SIGKILL to those still running after Grace, or at once when ctx ends
// first. It returns once none of them runs, or with an error naming those still running
// KillTimeout after SIGKILL. Only processes that still run (see Process.Running: same pid and
// start time) are signalled, so a pid the kernel reused for another process is left alone.
func StopProcesses(ctx context.Context, procs []Process, o StopOptions) error {
	o.defaults()
	send := func(sig syscall.Signal) {
		for _, p := range procs {
			if !p.Running() {
				continue
			}
			if o.OnSignal != nil {
				o.OnSignal(p, sig)
			}
			target := p.Pid
			if p.Group {
				target = -p.Pid
			}
			_ = o.kill(target, sig) // ESRCH: it exited meanwhile
		}
	}
	gone := func(context.Context) (bool, error) {
		for _, p := range procs {
			if p.Running() {
				return false, nil
			}
		}
		return true, nil
	}
	send(syscall.SIGTERM)
	if err := wait.PollUntilContextTimeout(ctx, o.interval, o.Grace, true, gone); err == nil {
		return nil
	}
	send(syscall.SIGKILL)
	// The wait after SIGKILL does not end with ctx: the processes are going now.
	if err := wait.PollUntilContextTimeout(context.WithoutCancel(ctx), o.interval, o.KillTimeout, true, gone); err != nil {
		var left []string
		for _, p := range procs {
			if p.Running() {
				left = append(left, fmt.Sprintf("%s (pid %d)", p.Name, p.Pid))
			}
		}
		return fmt.Errorf("stopping processes: %s still running %s after SIGKILL", strings.Join(left, ", "), o.KillTimeout)
	}
	return nil
}

// proc is a process the harness started itself and waits for.
type proc struct {
	Process
	done chan struct{} // closed once the process exited and was reaped
	err  error         // what Wait returned; read after done
}

// startProc starts path with args in its own process group, stdout and stderr to logPath.
func startProc(name, path string, args []string, logPath string) (*proc, error) {
	logf, err := openLog(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(logf, "# %s %s\n", path, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{done: make(chan struct{})}
	p.Name, p.Pid, p.Log, p.Group = name, cmd.Process.Pid, logPath, true
	// Not reaped before Wait, so the start time is readable even if it exited already.
	p.StartTime, _ = ProcStartTime(p.Pid)
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop stops the process group (StopProcesses) and waits until the process is reaped.
func (p *proc) stop(ctx context.Context, o StopOptions) error {
	if p.exited() {
		return nil
	}
	if err := StopProcesses(ctx, []Process{p.Process}, o); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s (pid %d) to be reaped: %w", p.Name, p.Pid, ctx.Err())
	}
}

// childrenRunning finds this process's children whose executable is path (symlinks resolved):
// how the harness learns the pids of the etcd and kube-apiserver that envtest started.
func childrenRunning(path string) []int {
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil
	}
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.State == 'Z' || st.Ppid != self {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || exe != want {
			continue
		}
		out = append(out, pid)
	}
	return out
}

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
