package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// The watchdog stops the cluster's processes when the process that started them dies without
// stopping them (a panic in a test, go test's -timeout, SIGKILL). It is this same executable,
// started again with watchdogEnv set: this package's init then runs the watchdog instead of
// the program, so every binary that imports the package (kmm-cluster, test binaries) can be
// its own watchdog. It reads watchdogMessages on standard input, a pipe whose other end only
// the harness holds: when that closes (the harness exited, however it exited) and no disarm
// message came, the watchdog stops the recorded processes with StopProcesses and removes the
// folder it was given.
const watchdogEnv = "KMM_LOCALCLUSTER_WATCHDOG"

func init() {
	if os.Getenv(watchdogEnv) != "1" {
		return
	}
	os.Exit(watchdogMain())
}

func watchdogMain() int {
	// Its own process group keeps it out of the terminal's Ctrl-C; ignore INT and HUP anyway.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
	if err := runWatchdog(context.Background(), os.Stdin, os.Stderr, StopOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "watchdog: %v\n", err)
		return 1
	}
	return 0
}

// watchdogMessage is one line on the watchdog's standard input; one field is set.
type watchdogMessage struct {
	// Watch is a process to stop.
	Watch *Process `json:"watch,omitempty"`
	// RemoveDir is a folder to remove once the processes are stopped.
	RemoveDir string `json:"removeDir,omitempty"`
	// Disarm ends the watchdog without stopping anything: the harness stopped the cluster.
	Disarm bool `json:"disarm,omitempty"`
}

// runWatchdog reads messages from r until a disarm message (then it returns nil at once) or the
// end of r, however it ends (then it stops the processes and removes the folder, saying so on
// log).
func runWatchdog(ctx context.Context, r io.Reader, log io.Writer, o StopOptions) error {
	dec := json.NewDecoder(r)
	var procs []Process
	var removeDir string
	for {
		var m watchdogMessage
		if err := dec.Decode(&m); err != nil {
			// io.EOF: the harness is gone. Anything else (a torn message): act the same.
			break
		}
		switch {
		case m.Disarm:
			return nil
		case m.Watch != nil:
			procs = append(procs, *m.Watch)
		case m.RemoveDir != "":
			removeDir = m.RemoveDir
		}
	}
	var errs []error
	if len(procs) > 0 {
		fmt.Fprintf(log, "watchdog: the harness is gone; stopping %d process(es)\n", len(procs))
		if err := StopProcesses(ctx, procs, o); err != nil {
			errs = append(errs, err)
		}
	}
	if removeDir != "" {
		if err := os.RemoveAll(removeDir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", removeDir, err))
		}
	}
	return errors.Join(errs...)
}

// watchdog is the harness's end of a running watchdog.
type watchdog struct {
	cmd  *exec.Cmd
	w    *os.File
	enc  *json.Encoder
	done chan struct{}
}

// startWatchdog starts the watchdog (this executable again, in its own process group) with its
// output to logPath. removeDir, when set, is removed once the watchdog stopped the processes.
func startWatchdog(logPath, removeDir string) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting the watchdog: %w", err)
	}
	logf, err := openLog(logPath)
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("starting the watchdog: %w", err)
	}
	defer logf.Close()
	defer r.Close()
	// /proc/self/exe is this executable even if its file was replaced or removed meanwhile.
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"kmm-localcluster-watchdog"}
	cmd.Env = append(os.Environ(), watchdogEnv+"=1")
	cmd.Stdin = r
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("starting the watchdog: %w", err)
	}
	d := &watchdog{cmd: cmd, w: w, enc: json.NewEncoder(w), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.done)
	}()
	if removeDir != "" {
		if err := d.enc.Encode(watchdogMessage{RemoveDir: removeDir}); err != nil {
			d.disarm()
			return nil, fmt.Errorf("starting the watchdog: %w", err)
		}
	}
	return d, nil
}

// watch tells the watchdog to stop p should the harness die.
func (d *watchdog) watch(p Process) {
	if d == nil || p.Pid <= 0 {
		return
	}
	_ = d.enc.Encode(watchdogMessage{Watch: &p})
}

// disarm ends the watchdog without letting it stop anything, and waits until it has exited.
func (d *watchdog) disarm() {
	if d == nil {
		return
	}
	if err := d.enc.Encode(watchdogMessage{Disarm: true}); err != nil {
		// It cannot be told: end it. SIGKILL gives it no chance to act.
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	}
	d.w.Close()
	<-d.done
}

// process is the watchdog's own Process.
func (d *watchdog) process() Process {
	p := Process{Name: "watchdog", Pid: d.cmd.Process.Pid, Group: true}
	p.StartTime, _ = ProcStartTime(p.Pid)
	return p
}
