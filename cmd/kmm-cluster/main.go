// Command kmm-cluster starts and stops a local Kubernetes control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok, from bin/assets) with the Nodes of a node
// snapshot, for demos and manual testing of the kmm chart and kmm-render.
//
//	kmm-cluster up --nodes examples/eks/nodes.yaml   # returns once the nodes are Ready
//	export KUBECONFIG=$PWD/bin/cluster/run/kubeconfig
//	kmm-cluster down
//
// `up` re-executes itself as a detached supervisor (its own session) that owns the cluster and
// records its pid and its processes' pids in DIR/state.json; `down` stops exactly those.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"kmm.dev/kmm/test/cluster"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kmm-cluster:", err)
		os.Exit(1)
	}
}

// state is DIR/state.json.
type state struct {
	Supervisor cluster.Process   `json:"supervisor"`
	Ready      bool              `json:"ready"`
	Error      string            `json:"error,omitempty"`
	Kubeconfig string            `json:"kubeconfig,omitempty"`
	WorkDir    string            `json:"workDir"`
	Nodes      string            `json:"nodes,omitempty"`
	Log        string            `json:"log"`
	Processes  []cluster.Process `json:"processes,omitempty"`
	Started    time.Time         `json:"started"`
}

type dirFlag struct{ dir string }

func (d *dirFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.dir, "dir", "", "folder of the cluster's state, data and logs (default <repo>/bin/cluster)")
}

func (d *dirFlag) resolve() (string, error) {
	if d.dir != "" {
		return filepath.Abs(d.dir)
	}
	root, err := cluster.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%w (or pass --dir)", err)
	}
	return filepath.Join(root, "bin", "cluster"), nil
}

// state resolves the folder and reads the cluster recorded there; s is nil when none is.
func (d *dirFlag) state() (dir string, s *state, err error) {
	if dir, err = d.resolve(); err != nil {
		return "", nil, err
	}
	s, err = readState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return dir, nil, nil
	}
	return dir, s, err
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(statePath(dir))
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", statePath(dir), err)
	}
	return &s, nil
}

func writeState(dir string, s *state) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(dir) + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(dir))
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "kmm-cluster",
		Short:         "Start and stop a local control plane with kwok nodes from a node snapshot",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newUpCommand(), newDownCommand(), newStatusCommand(), newDemoCommand(), newServeCommand())
	return root
}

func newUpCommand() *cobra.Command {
	var d dirFlag
	var nodes, assets string
	var timeout time.Duration
	var certManager bool
	cmd := &cobra.Command{
		Use:   "up --nodes FILE [--dir DIR]",
		Short: "Start the cluster in the background and wait until its nodes are Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := d.resolve()
			if err != nil {
				return err
			}
			if nodes == "" {
				return errors.New("--nodes FILE is required (e.g. examples/eks/nodes.yaml)")
			}
			if nodes, err = filepath.Abs(nodes); err != nil {
				return err
			}
			if _, err := cluster.LoadNodes(nodes); err != nil {
				return err
			}
			if assets == "" {
				if assets, err = cluster.DefaultAssetsDir(); err != nil {
					return err
				}
			}
			if assets, err = filepath.Abs(assets); err != nil {
				return err
			}
			if err := cluster.CheckAssets(assets); err != nil {
				return err
			}
			if s, err := readState(dir); err == nil {
				if cluster.Alive(s.Supervisor.Pid, s.Supervisor.StartTime) {
					return fmt.Errorf("a cluster is already running from %s (supervisor pid %d); run `kmm-cluster down --dir %s` first", dir, s.Supervisor.Pid, dir)
				}
				// Stale state of a cluster that is gone: stop what may be left of it.
				stopRecorded(cmd, s)
				_ = os.Remove(statePath(dir))
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			_ = os.RemoveAll(filepath.Join(dir, "run"))
			logPath := filepath.Join(dir, "kmm-cluster.log")
			logf, err := os.Create(logPath)
			if err != nil {
				return err
			}
			defer logf.Close()
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			devnull, err := os.Open(os.DevNull)
			if err != nil {
				return err
			}
			defer devnull.Close()
			child := exec.Command(exe, "serve", "--dir", dir, "--nodes", nodes, "--assets", assets,
				fmt.Sprintf("--cert-manager-crds=%t", certManager))
			child.Stdin, child.Stdout, child.Stderr = devnull, logf, logf
			child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := child.Start(); err != nil {
				return fmt.Errorf("starting the supervisor: %w", err)
			}
			exited := make(chan error, 1)
			go func() { exited <- child.Wait() }()
			fmt.Fprintf(cmd.ErrOrStderr(), "starting the cluster (supervisor pid %d, log %s)...\n", child.Process.Pid, logPath)

			deadline := time.After(timeout)
			for {
				if s, err := readState(dir); err == nil && s.Supervisor.Pid == child.Process.Pid {
					if s.Ready {
						fmt.Fprintf(cmd.ErrOrStderr(), "cluster is up: %d node(s) from %s\n", countNodes(nodes), nodes)
						fmt.Fprintf(cmd.OutOrStdout(), "kubeconfig: %s\nexport KUBECONFIG=%s\n", s.Kubeconfig, s.Kubeconfig)
						return nil
					}
					if s.Error != "" {
						return fmt.Errorf("the cluster did not start: %s\n(log: %s)", s.Error, logPath)
					}
				}
				select {
				case err := <-exited:
					return fmt.Errorf("the supervisor exited (%v) before the cluster was ready; log %s:\n%s", err, logPath, tailFile(logPath, 30))
				case <-deadline:
					_ = child.Process.Signal(syscall.SIGTERM)
					return fmt.Errorf("the cluster was not ready after %s; stopping it; log %s:\n%s", timeout, logPath, tailFile(logPath, 30))
				case <-time.After(250 * time.Millisecond):
				}
			}
		},
	}
	d.register(cmd)
	cmd.Flags().StringVar(&nodes, "nodes", "", "node snapshot whose Nodes to create (kubectl get nodes -o yaml)")
	cmd.Flags().StringVar(&assets, "assets", "", "folder with the control plane binaries (default $KUBEBUILDER_ASSETS, else <repo>/bin/assets)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the cluster and its nodes")
	cmd.Flags().BoolVar(&certManager, "cert-manager-crds", true, "create cert-manager's CRDs (no controller), which the examples' certManager.enabled needs")
	return cmd
}

func countNodes(path string) int {
	ns, err := cluster.LoadNodes(path)
	if err != nil {
		return 0
	}
	return len(ns)
}

// newServeCommand is the detached supervisor `up` starts: it runs the cluster until SIGTERM.
func newServeCommand() *cobra.Command {
	var d dirFlag
	var nodes, assets string
	var certManager bool
	cmd := &cobra.Command{
		Use:    "serve",
		Short:  "Run the cluster in the foreground until SIGTERM or SIGINT (what `up` runs detached)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := d.resolve()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			self, err := selfProcess()
			if err != nil {
				return err
			}
			s := &state{
				Supervisor: self,
				WorkDir:    filepath.Join(dir, "run"),
				Nodes:      nodes,
				Log:        filepath.Join(dir, "kmm-cluster.log"),
				Started:    time.Now().UTC().Truncate(time.Second),
			}
			if err := writeState(dir, s); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			c, err := cluster.Start(ctx, cluster.Options{AssetsDir: assets, Nodes: nodes, WorkDir: s.WorkDir, Log: cmd.ErrOrStderr(), CertManagerCRDs: certManager})
			if err != nil {
				s.Error = err.Error()
				_ = writeState(dir, s)
				return err
			}
			s.Ready, s.Kubeconfig, s.Processes = true, c.Kubeconfig, c.Processes()
			if err := writeState(dir, s); err != nil {
				_ = c.Stop()
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "cluster ready; kubeconfig %s\n", c.Kubeconfig)
			// Report (once) a process of the cluster that dies, and keep serving what is left.
			ticker := time.NewTicker(5 * time.Second)
			defer ticker.Stop()
			reported := false
		loop:
			for {
				select {
				case <-ctx.Done():
					break loop
				case <-ticker.C:
					if err := c.Healthy(); err != nil && !reported {
						fmt.Fprintf(cmd.ErrOrStderr(), "cluster: %v\n", err)
						reported = true
					}
				}
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "stopping the cluster")
			err = c.Stop()
			if rmErr := os.Remove(statePath(dir)); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
				err = errors.Join(err, rmErr)
			}
			return err
		},
	}
	d.register(cmd)
	cmd.Flags().StringVar(&nodes, "nodes", "", "node snapshot whose Nodes to create")
	cmd.Flags().StringVar(&assets, "assets", "", "folder with the control plane binaries")
	cmd.Flags().BoolVar(&certManager, "cert-manager-crds", true, "create cert-manager's CRDs")
	return cmd
}

func selfProcess() (cluster.Process, error) {
	st, err := cluster.ProcStartTime(os.Getpid())
	if err != nil {
		return cluster.Process{}, err
	}
	return cluster.Process{Name: "kmm-cluster", Pid: os.Getpid(), StartTime: st}, nil
}

func newDownCommand() *cobra.Command {
	var d dirFlag
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "down [--dir DIR]",
		Short: "Stop the cluster `up` started (only the processes recorded in DIR/state.json)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, s, err := d.state()
			if err != nil {
				return err
			}
			if s == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "no cluster recorded in %s; nothing to stop\n", dir)
				return nil
			}
			sup := s.Supervisor
			if cluster.Alive(sup.Pid, sup.StartTime) {
				fmt.Fprintf(cmd.ErrOrStderr(), "stopping the supervisor (pid %d)...\n", sup.Pid)
				_ = syscall.Kill(sup.Pid, syscall.SIGTERM)
				if !waitGone(sup, timeout) {
					fmt.Fprintf(cmd.ErrOrStderr(), "the supervisor did not stop within %s; killing it\n", timeout)
					_ = syscall.Kill(sup.Pid, syscall.SIGKILL)
				}
			}
			// The supervisor stops its processes; whatever it left behind goes now.
			stopRecorded(cmd, s)
			if err := os.Remove(statePath(dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if err := os.RemoveAll(filepath.Join(dir, "run")); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "cluster stopped")
			return nil
		},
	}
	d.register(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long the supervisor may take to stop the cluster")
	return cmd
}

// stopRecorded stops the recorded processes that are still running: SIGTERM, then SIGKILL after
// 5 s. A pid counts only if its start time is the recorded one, so recycled pids are left alone.
func stopRecorded(cmd *cobra.Command, s *state) {
	var left []cluster.Process
	for _, p := range s.Processes {
		if cluster.Alive(p.Pid, p.StartTime) {
			left = append(left, p)
		}
	}
	if len(left) == 0 {
		return
	}
	signalAll := func(sig syscall.Signal) {
		for _, p := range left {
			if !cluster.Alive(p.Pid, p.StartTime) {
				continue
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "sending %s to %s (pid %d)\n", sig, p.Name, p.Pid)
			if p.Group {
				_ = syscall.Kill(-p.Pid, sig)
			} else {
				_ = syscall.Kill(p.Pid, sig)
			}
		}
	}
	signalAll(syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		alive := false
		for _, p := range left {
			alive = alive || cluster.Alive(p.Pid, p.StartTime)
		}
		if !alive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	signalAll(syscall.SIGKILL)
}

func waitGone(p cluster.Process, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !cluster.Alive(p.Pid, p.StartTime) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func newStatusCommand() *cobra.Command {
	var d dirFlag
	cmd := &cobra.Command{
		Use:   "status [--dir DIR]",
		Short: "Show the recorded cluster and which of its processes run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, s, err := d.state()
			if err != nil {
				return err
			}
			if s == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "no cluster recorded in %s\n", dir)
				return nil
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "nodes:      %s\nkubeconfig: %s\nready:      %v\nlog:        %s\n", s.Nodes, s.Kubeconfig, s.Ready, s.Log)
			for _, p := range append([]cluster.Process{s.Supervisor}, s.Processes...) {
				st := "stopped"
				if cluster.Alive(p.Pid, p.StartTime) {
					st = "running"
				}
				fmt.Fprintf(out, "  %-24s pid %-7d %s  %s\n", p.Name, p.Pid, st, p.Log)
			}
			return nil
		},
	}
	d.register(cmd)
	return cmd
}

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := splitLines(string(data))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := ""
	for _, l := range lines {
		out += "  | " + l + "\n"
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
