package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"kmm.dev/kmm/pkg/nodes"
)

// State is what a supervisor (Serve) records in <dir>/state.json: itself, and once the
// cluster is ready its processes and kubeconfig, or why it did not start.
type State struct {
	Supervisor Process   `json:"supervisor"`
	Ready      bool      `json:"ready"`
	Error      string    `json:"error,omitempty"`
	Kubeconfig string    `json:"kubeconfig,omitempty"`
	WorkDir    string    `json:"workDir"`
	Nodes      string    `json:"nodes,omitempty"`
	Log        string    `json:"log"`
	Processes  []Process `json:"processes,omitempty"`
	Started    time.Time `json:"started"`
}

// StatePath is the state file of the cluster recorded in dir.
func StatePath(dir string) string { return filepath.Join(dir, "state.json") }

// RunDir is the cluster's work folder (etcd data, certificates, logs, kubeconfig) in dir.
func RunDir(dir string) string { return filepath.Join(dir, "run") }

// SupervisorLog is the log file of the supervisor of dir.
func SupervisorLog(dir string) string { return filepath.Join(dir, "kmm-cluster.log") }

// ReadState reads the cluster recorded in dir. When none is, the error wraps fs.ErrNotExist.
func ReadState(dir string) (*State, error) {
	path := StatePath(dir)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("reading the cluster state %s: %w", path, err)
	}
	return &s, nil
}

// WriteState records s in dir, replacing the state file at once (readers never see half of it).
func WriteState(dir string, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("writing the cluster state: %w", err)
	}
	tmp := StatePath(dir) + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the cluster state: %w", err)
	}
	if err := os.Rename(tmp, StatePath(dir)); err != nil {
		return fmt.Errorf("writing the cluster state: %w", err)
	}
	return nil
}

// removeState removes dir's state file; a missing one is no error.
func removeState(dir string) error {
	if err := os.Remove(StatePath(dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the cluster state: %w", err)
	}
	return nil
}

// ServeOptions configure Serve.
type ServeOptions struct {
	// Dir holds the state file, the supervisor's log and the cluster's work folder (RunDir).
	// Required.
	Dir string
	// Nodes is the node snapshot whose Nodes to create.
	Nodes string
	// AssetsDir holds the binaries; see Options.AssetsDir.
	AssetsDir string
	// CertManagerCRDs installs cert-manager's CRDs; see Options.CertManagerCRDs.
	CertManagerCRDs bool
	// Log receives progress lines. Nil discards them.
	Log io.Writer
	// HealthInterval is how often Serve checks that the cluster's processes run (it reports
	// the first that exited, once, and keeps serving). Zero means 5 s.
	HealthInterval time.Duration
}

// Serve runs a cluster until ctx ends, then stops it: what the detached supervisor Up starts
// does. It records itself in the state file before starting the cluster, then the cluster's
// processes and kubeconfig once it is ready (or the error if it does not start), and removes
// the state file once the cluster is stopped.
func Serve(ctx context.Context, o ServeOptions) error {
	if o.Dir == "" {
		return errors.New("serving the cluster: no folder given")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = 5 * time.Second
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("serving the cluster: %w", err)
	}
	self, err := ProcessOf("kmm-cluster", os.Getpid())
	if err != nil {
		return fmt.Errorf("serving the cluster: %w", err)
	}
	s := &State{
		Supervisor: self,
		WorkDir:    RunDir(o.Dir),
		Nodes:      o.Nodes,
		Log:        SupervisorLog(o.Dir),
		Started:    time.Now().UTC().Truncate(time.Second),
	}
	if err := WriteState(o.Dir, s); err != nil {
		return err
	}
	c, err := Start(ctx, Options{AssetsDir: o.AssetsDir, Nodes: o.Nodes, WorkDir: s.WorkDir, Log: o.Log, CertManagerCRDs: o.CertManagerCRDs})
	if err != nil {
		s.Error = err.Error()
		_ = WriteState(o.Dir, s)
		return err
	}
	s.Ready, s.Kubeconfig, s.Processes = true, c.Kubeconfig, c.Processes()
	if err := WriteState(o.Dir, s); err != nil {
		return errors.Join(err, c.Stop())
	}
	fmt.Fprintf(o.Log, "cluster ready; kubeconfig %s\n", c.Kubeconfig)
	// Report (once) a process of the cluster that dies, and keep serving what is left.
	reported := false
	wait.UntilWithContext(ctx, func(context.Context) {
		if err := c.Healthy(); err != nil && !reported {
			fmt.Fprintf(o.Log, "cluster: %v\n", err)
			reported = true
		}
	}, o.HealthInterval)
	fmt.Fprintln(o.Log, "stopping the cluster")
	return errors.Join(c.Stop(), removeState(o.Dir))
}

// UpOptions configure Up.
type UpOptions struct {
	// Dir holds the state file, the supervisor's log and the cluster's work folder. Required.
	Dir string
	// Nodes is the node snapshot whose Nodes to create. Required.
	Nodes string
	// AssetsDir holds the binaries. Default: DefaultAssetsDir.
	AssetsDir string
	// CertManagerCRDs installs cert-manager's CRDs once the control plane is up.
	CertManagerCRDs bool
	// Timeout bounds the wait for the cluster and its nodes. Zero means 5 minutes.
	Timeout time.Duration
	// SupervisorCommand is the command line (program first) that runs Serve with the given
	// options until SIGTERM: kmm-cluster's hidden `serve` command. Required.
	SupervisorCommand func(ServeOptions) []string
	// Log receives progress lines. Nil discards them.
	Log io.Writer

	// interval between reads of the state file. Zero means 250 ms.
	interval time.Duration
}

// Up starts a cluster in the background and returns its state once it is ready. It checks the
// node snapshot and the assets first; refuses when a supervisor recorded in Dir still runs;
// stops what is left of a cluster recorded there whose supervisor is gone; starts
// SupervisorCommand in its own session (so it outlives the caller), output to SupervisorLog;
// and waits until the supervisor records the cluster ready. If the supervisor reports an
// error, exits, or is not ready within Timeout (then Up sends it SIGTERM), the error says so
// with the end of its log.
func Up(ctx context.Context, o UpOptions) (*State, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.interval == 0 {
		o.interval = 250 * time.Millisecond
	}
	switch {
	case o.Dir == "":
		return nil, errors.New("starting the cluster: no folder given")
	case o.Nodes == "":
		return nil, errors.New("starting the cluster: no node snapshot given (e.g. examples/eks/nodes.yaml)")
	case o.SupervisorCommand == nil:
		return nil, errors.New("starting the cluster: no supervisor command given")
	}
	var err error
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, fmt.Errorf("starting the cluster: %w", err)
	}
	if o.Nodes, err = filepath.Abs(o.Nodes); err != nil {
		return nil, fmt.Errorf("starting the cluster: %w", err)
	}
	snapshot, err := nodes.LoadObjects(o.Nodes)
	if err != nil {
		return nil, err
	}
	if o.AssetsDir == "" {
		if o.AssetsDir, err = DefaultAssetsDir(); err != nil {
			return nil, err
		}
	}
	if o.AssetsDir, err = filepath.Abs(o.AssetsDir); err != nil {
		return nil, fmt.Errorf("starting the cluster: %w", err)
	}
	if err := CheckAssets(o.AssetsDir); err != nil {
		return nil, err
	}
	if s, err := ReadState(o.Dir); err == nil {
		if s.Supervisor.Running() {
			return nil, fmt.Errorf("a cluster is already running from %s (supervisor pid %d); run `kmm-cluster down --dir %s` first", o.Dir, s.Supervisor.Pid, o.Dir)
		}
		// Stale state of a cluster that is gone: stop what may be left of it.
		if err := stopRecorded(ctx, o.Log, s.Processes, StopOptions{}); err != nil {
			return nil, fmt.Errorf("stopping what is left of the last cluster: %w", err)
		}
		if err := removeState(o.Dir); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting the cluster: %w", err)
	}
	if err := os.RemoveAll(RunDir(o.Dir)); err != nil {
		return nil, fmt.Errorf("starting the cluster: %w", err)
	}

	logPath := SupervisorLog(o.Dir)
	child, exited, err := startDetached(o.SupervisorCommand(ServeOptions{
		Dir: o.Dir, Nodes: o.Nodes, AssetsDir: o.AssetsDir, CertManagerCRDs: o.CertManagerCRDs,
	}), logPath)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "starting the cluster (supervisor pid %d, log %s)...\n", child.Pid, logPath)

	var ready *State
	err = wait.PollUntilContextTimeout(ctx, o.interval, o.Timeout, true, func(context.Context) (bool, error) {
		if s, err := ReadState(o.Dir); err == nil && s.Supervisor.Pid == child.Pid {
			if s.Ready {
				ready = s
				return true, nil
			}
			if s.Error != "" {
				return false, fmt.Errorf("the cluster did not start: %s\n(log: %s)", s.Error, logPath)
			}
		}
		select {
		case err := <-exited:
			return false, fmt.Errorf("the supervisor exited (%v) before the cluster was ready; log %s:\n%s", err, logPath, indentTail(logPath, 30))
		default:
			return false, nil
		}
	})
	if wait.Interrupted(err) {
		_ = child.Signal(syscall.SIGTERM)
		return nil, fmt.Errorf("the cluster was not ready after %s; stopping it; log %s:\n%s", o.Timeout, logPath, indentTail(logPath, 30))
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "cluster is up: %d node(s) from %s\n", len(snapshot), o.Nodes)
	return ready, nil
}

// startDetached starts argv in a new session, standard input from /dev/null and output to
// logPath (truncated). exited receives Wait's result.
func startDetached(argv []string, logPath string) (_ *os.Process, exited <-chan error, _ error) {
	if len(argv) == 0 {
		return nil, nil, errors.New("starting the supervisor: empty command")
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, fmt.Errorf("starting the supervisor: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, nil, fmt.Errorf("starting the supervisor: %w", err)
	}
	defer devnull.Close()
	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = devnull, logf, logf
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting the supervisor: %w", err)
	}
	ch := make(chan error, 1)
	go func() { ch <- child.Wait() }()
	return child.Process, ch, nil
}

// DownOptions configure Down.
type DownOptions struct {
	// Dir is the folder of the cluster to stop. Required.
	Dir string
	// Timeout is how long the supervisor may take to stop the cluster before it gets SIGKILL.
	// Zero means 1 minute.
	Timeout time.Duration
	// Grace is how long each process the supervisor left behind gets between SIGTERM and
	// SIGKILL. Zero means 5 s.
	Grace time.Duration
	// Log receives progress lines. Nil discards them.
	Log io.Writer

	// stop is the base of the StopOptions Down uses (tests record signals through it).
	stop StopOptions
}

// Down stops the cluster recorded in Dir: SIGTERM to its supervisor (which stops the cluster
// and removes the state file), SIGKILL should it not exit within Timeout; then SIGTERM and
// SIGKILL to any recorded process still running; then it removes the state file and the work
// folder. Only processes with the recorded pid and start time are signalled. With nothing
// recorded in Dir, Down says so and returns nil.
func Down(ctx context.Context, o DownOptions) error {
	if o.Dir == "" {
		return errors.New("stopping the cluster: no folder given")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	s, err := ReadState(o.Dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(o.Log, "no cluster recorded in %s; nothing to stop\n", o.Dir)
		return nil
	}
	if err != nil {
		return fmt.Errorf("stopping the cluster: %w", err)
	}
	sup := o.stop
	sup.Grace = o.Timeout
	sup.OnSignal = func(p Process, sig syscall.Signal) {
		if sig == syscall.SIGTERM {
			fmt.Fprintf(o.Log, "stopping the supervisor (pid %d)...\n", p.Pid)
		} else {
			fmt.Fprintf(o.Log, "the supervisor did not stop within %s; killing it\n", o.Timeout)
		}
	}
	if err := StopProcesses(ctx, []Process{s.Supervisor}, sup); err != nil {
		return fmt.Errorf("stopping the cluster: %w", err)
	}
	// The supervisor stops its processes; whatever it left behind goes now.
	rest := o.stop
	rest.Grace = o.Grace
	if err := stopRecorded(ctx, o.Log, s.Processes, rest); err != nil {
		return fmt.Errorf("stopping the cluster: %w", err)
	}
	if err := removeState(o.Dir); err != nil {
		return err
	}
	if err := os.RemoveAll(RunDir(o.Dir)); err != nil {
		return fmt.Errorf("stopping the cluster: %w", err)
	}
	fmt.Fprintln(o.Log, "cluster stopped")
	return nil
}

// stopRecorded stops the recorded processes that still run (StopProcesses), saying which
// signal goes to which.
func stopRecorded(ctx context.Context, log io.Writer, procs []Process, o StopOptions) error {
	o.OnSignal = func(p Process, sig syscall.Signal) {
		fmt.Fprintf(log, "sending %s to %s (pid %d)\n", signalName(sig), p.Name, p.Pid)
	}
	return StopProcesses(ctx, procs, o)
}

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	}
	return sig.String()
}

// ProcessStatus is a recorded process and whether it runs.
type ProcessStatus struct {
	Process
	Running bool
}

// Status is what ReadStatus finds in a folder.
type Status struct {
	// Dir is the folder.
	Dir string
	// State is the recorded cluster; nil when none is.
	State *State
	// Processes are the supervisor and the cluster's processes, in that order.
	Processes []ProcessStatus
}

// ReadStatus reads the cluster recorded in dir and checks which of its processes run. With
// nothing recorded, Status.State is nil and the error nil.
func ReadStatus(dir string) (*Status, error) {
	st := &Status{Dir: dir}
	s, err := ReadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	st.State = s
	for _, p := range append([]Process{s.Supervisor}, s.Processes...) {
		st.Processes = append(st.Processes, ProcessStatus{Process: p, Running: p.Running()})
	}
	return st, nil
}

// indentTail is the last n lines of a file, each indented with "  | ".
func indentTail(path string, n int) string {
	t := tail(path, n)
	if t == "" {
		return ""
	}
	return "  | " + strings.ReplaceAll(t, "\n", "\n  | ") + "\n"
}
