package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one process the harness started.
type Process struct {
	Name string `json:"name"`
	Pid  int    `json:"pid"`
	// StartTime is the process start time in clock ticks since boot (/proc/PID/stat field 22).
	// Together with Pid it identifies the process: a recycled pid has another start time.
	StartTime uint64 `json:"startTime"`
	// Log is the file its standard output and error go to.
	Log string `json:"log,omitempty"`
	// Group is true when the process leads its own process group (the harness signals the group).
	Group bool `json:"group,omitempty"`
}

// proc is a process the harness started itself and waits for.
type proc struct {
	Process
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProc starts path with args in its own process group, stdout and stderr to logPath.
func startProc(name, path string, args []string, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
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
	p := &proc{cmd: cmd, done: make(chan struct{})}
	p.Name, p.Pid, p.Log, p.Group = name, cmd.Process.Pid, logPath, true
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

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.Pid)
	}
}

// ProcStartTime reads a process's start time (clock ticks since boot) from /proc/PID/stat.
func ProcStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	_, fields, err := parseStat(data)
	if err != nil {
		return 0, err
	}
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// parseStat splits /proc/PID/stat into the command name and the fields after it.
func parseStat(data []byte) (comm string, fields []string, err error) {
	open := bytes.IndexByte(data, '(')
	closing := bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return "", nil, errors.New("malformed /proc stat")
	}
	return string(data[open+1 : closing]), strings.Fields(string(data[closing+1:])), nil
}

// Alive reports whether the process pid still exists and is the one that started at startTime
// (so a recycled pid is never mistaken for it). Zombies count as gone.
func Alive(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, fields, err := parseStat(data)
	if err != nil || len(fields) < 20 || fields[0] == "Z" {
		return false
	}
	st, err := strconv.ParseUint(fields[19], 10, 64)
	return err == nil && (startTime == 0 || st == startTime)
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
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		_, fields, err := parseStat(data)
		if err != nil || len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid != self {
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

// watchdogScript reads "pid starttime" lines from standard input; when standard input closes
// (the harness process exited, however it exited) it sends SIGTERM, then SIGKILL five seconds
// later, to every listed process that is still the process it was (same start time), and
// removes the folder given as $1, if any (a work folder the harness created).
const watchdogScript = `
trap '' INT HUP
list=""
while read -r pid st; do list="$list $pid:$st"; done
same() {
  want=$2
  s=$(cat /proc/$1/stat 2>/dev/null) || return 1
  s=${s##*) }
  set -- $s
  [ "${20}" = "$want" ]
}
for e in $list; do same "${e%%:*}" "${e##*:}" && kill -TERM "${e%%:*}" 2>/dev/null; done
sleep 5
for e in $list; do same "${e%%:*}" "${e##*:}" && kill -KILL "${e%%:*}" 2>/dev/null; done
if [ -n "$1" ]; then sleep 1; rm -rf -- "$1"; fi
exit 0
`

// watchdog kills the harness's processes if the harness process dies without stopping them
// (a panic in a test, go test's -timeout, SIGKILL).
type watchdog struct {
	cmd *exec.Cmd
	w   *os.File
}

func startWatchdog(logPath, removeDir string) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "kmm-cluster-watchdog", removeDir)
	cmd.Stdin = r
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		logf.Close()
		return nil, fmt.Errorf("starting the watchdog: %w", err)
	}
	r.Close()
	logf.Close()
	go func() { _ = cmd.Wait() }()
	return &watchdog{cmd: cmd, w: w}, nil
}

func (d *watchdog) watch(p Process) {
	if d == nil || p.Pid <= 0 {
		return
	}
	_, _ = io.WriteString(d.w, fmt.Sprintf("%d %d\n", p.Pid, p.StartTime))
}

// disarm stops the watchdog without letting it kill anything.
func (d *watchdog) disarm() {
	if d == nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	d.w.Close()
}

func (d *watchdog) process() Process {
	st, _ := ProcStartTime(d.cmd.Process.Pid)
	return Process{Name: "watchdog", Pid: d.cmd.Process.Pid, StartTime: st, Group: true}
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
