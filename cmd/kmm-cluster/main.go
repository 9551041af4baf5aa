// Command kmm-cluster starts and stops a local Kubernetes control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok, from bin/assets) with the Nodes of a node
// snapshot, for demos and manual testing of the kmm chart and kmm-render.
//
//	kmm-cluster up --nodes examples/eks/nodes.yaml   # returns once the nodes are Ready
//	export KUBECONFIG=$PWD/bin/cluster/run/kubeconfig
//	kmm-cluster down
//
// `up` re-executes itself as a detached supervisor (`serve`, its own session) that owns the
// cluster and records its pid and its processes' pids in DIR/state.json; `down` stops exactly
// those. The work is kmm.dev/kmm/internal/localcluster's; this command parses flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"kmm.dev/kmm/internal/demo"
	"kmm.dev/kmm/internal/localcluster"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kmm-cluster:", err)
		os.Exit(1)
	}
}

type dirFlag struct{ dir string }

func (d *dirFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.dir, "dir", "", "folder of the cluster's state, data and logs (default <repo>/bin/cluster)")
}

func (d *dirFlag) resolve() (string, error) {
	if d.dir != "" {
		return filepath.Abs(d.dir)
	}
	dir, err := localcluster.DefaultDir()
	if err != nil {
		return "", fmt.Errorf("%w (or pass --dir)", err)
	}
	return dir, nil
}

// status reads the status of the cluster recorded in the flag's folder.
func (d *dirFlag) status() (string, *localcluster.Status, error) {
	dir, err := d.resolve()
	if err != nil {
		return "", nil, err
	}
	st, err := localcluster.ReadStatus(dir)
	return dir, st, err
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
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			s, err := localcluster.Up(cmd.Context(), localcluster.UpOptions{
				Dir: dir, Nodes: nodes, AssetsDir: assets, CertManagerCRDs: certManager, Timeout: timeout,
				Log:               cmd.ErrOrStderr(),
				SupervisorCommand: func(o localcluster.ServeOptions) []string { return serveCommandLine(exe, o) },
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kubeconfig: %s\nexport KUBECONFIG=%s\n", s.Kubeconfig, s.Kubeconfig)
			return nil
		},
	}
	d.register(cmd)
	cmd.Flags().StringVar(&nodes, "nodes", "", "node snapshot whose Nodes to create (kubectl get nodes -o yaml)")
	cmd.Flags().StringVar(&assets, "assets", "", "folder with the control plane binaries (default $KUBEBUILDER_ASSETS, else <repo>/bin/assets)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the cluster and its nodes")
	cmd.Flags().BoolVar(&certManager, "cert-manager-crds", true, "create cert-manager's CRDs (no controller), which the examples' certManager.enabled needs")
	return cmd
}

// serveCommandLine runs `kmm-cluster serve` with o: what `up` starts detached.
func serveCommandLine(exe string, o localcluster.ServeOptions) []string {
	return []string{exe, "serve", "--dir", o.Dir, "--nodes", o.Nodes, "--assets", o.AssetsDir,
		fmt.Sprintf("--cert-manager-crds=%t", o.CertManagerCRDs)}
}

// newServeCommand is the detached supervisor `up` starts: it runs the cluster until SIGTERM.
func newServeCommand() *cobra.Command {
	var d dirFlag
	var o localcluster.ServeOptions
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
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			o.Dir, o.Log = dir, cmd.ErrOrStderr()
			return localcluster.Serve(ctx, o)
		},
	}
	d.register(cmd)
	cmd.Flags().StringVar(&o.Nodes, "nodes", "", "node snapshot whose Nodes to create")
	cmd.Flags().StringVar(&o.AssetsDir, "assets", "", "folder with the control plane binaries")
	cmd.Flags().BoolVar(&o.CertManagerCRDs, "cert-manager-crds", true, "create cert-manager's CRDs")
	return cmd
}

func newDownCommand() *cobra.Command {
	var d dirFlag
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "down [--dir DIR]",
		Short: "Stop the cluster `up` started (only the processes recorded in DIR/state.json)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := d.resolve()
			if err != nil {
				return err
			}
			return localcluster.Down(cmd.Context(), localcluster.DownOptions{Dir: dir, Timeout: timeout, Log: cmd.ErrOrStderr()})
		},
	}
	d.register(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long the supervisor may take to stop the cluster")
	return cmd
}

func newStatusCommand() *cobra.Command {
	var d dirFlag
	cmd := &cobra.Command{
		Use:   "status [--dir DIR]",
		Short: "Show the recorded cluster and which of its processes run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, st, err := d.status()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if st.State == nil {
				fmt.Fprintf(out, "no cluster recorded in %s\n", dir)
				return nil
			}
			s := st.State
			fmt.Fprintf(out, "nodes:      %s\nkubeconfig: %s\nready:      %v\nlog:        %s\n", s.Nodes, s.Kubeconfig, s.Ready, s.Log)
			for _, p := range st.Processes {
				state := "stopped"
				if p.Running {
					state = "running"
				}
				fmt.Fprintf(out, "  %-24s pid %-7d %s  %s\n", p.Name, p.Pid, state, p.Log)
			}
			return nil
		},
	}
	d.register(cmd)
	return cmd
}

// newDemoCommand installs charts/kmm with an example's values into the cluster `up` started,
// through kmm-render, and shows which loader runs on which node (internal/demo).
func newDemoCommand() *cobra.Command {
	var d dirFlag
	var example, release, namespace string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "demo --example eks [--dir DIR]",
		Short: "Install the chart with an example's values through kmm-render and print the loaders per kernel",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, st, err := d.status()
			if err != nil {
				return err
			}
			if st.State == nil || !st.State.Ready {
				return fmt.Errorf("no ready cluster in %s: run `kmm-cluster up --nodes examples/%s/nodes.yaml` first", dir, example)
			}
			root, err := localcluster.RepoRoot()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return demo.Run(ctx, cmd.OutOrStdout(), demo.Options{
				Root: root, Kubeconfig: st.State.Kubeconfig, WorkDir: dir,
				Example: example, Release: release, Namespace: namespace,
			})
		},
	}
	d.register(cmd)
	cmd.Flags().StringVar(&example, "example", "eks", "example to install: eks, gke or ubuntu")
	cmd.Flags().StringVar(&release, "release", "kmm", "Helm release name")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "kmm-system", "release namespace")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long installing and waiting for the loaders may take")
	return cmd
}
