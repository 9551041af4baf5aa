package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"kmm.dev/kmm/pkg/drift"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/render"
)

// Exit codes of `kmm-render drift`, as diff's: in sync, drifted, trouble.
const (
	exitInSync  = 0
	exitDrift   = 1
	exitTrouble = 2
)

// exitError carries an exit code other than 1 out of a command.
type exitError struct {
	code int
	err  error // nil: nothing more to say
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func newDriftCommand() *cobra.Command {
	var (
		o           drift.ReleaseOptions
		kernelLabel string
		output      string
		events      bool
	)
	o.Name = "kmm"
	cmd := &cobra.Command{
		Use:   "drift [--release NAME] [-n NAMESPACE] [-o text|json] [--events]",
		Short: "Compare the deployed release with the live nodes: kernels that need a loader the release lacks",
		Long: `drift reads the deployed release the way helm get manifest does (Helm's storage, Secrets by
default), lists the live nodes, and plans every helm-managed module from the module list the
release holds, with the code the post-renderer expands with. It reports each module and kernel
pair that the nodes need and the release has no loader for (drift: run helm upgrade), and each
loader whose kernel no node runs any more (stale: harmless, removed by the next upgrade).
It only reads, unless --events is given: then it records a Warning Event (reason KernelDrift)
per missing pair on the module's loader DaemonSet. It never changes the release.

Exit codes: 0 in sync (stale loaders allowed), 1 drift, 2 error.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return &exitError{exitTrouble, fmt.Errorf("unknown output %q: want text or json", output)}
			}
			ctx := cmd.Context()
			rel, err := drift.ReadRelease(ctx, o)
			if err != nil {
				return &exitError{exitTrouble, err}
			}
			live, err := nodes.FromCluster(ctx, o.Cluster)
			if err != nil {
				return &exitError{exitTrouble, err}
			}
			r, err := drift.Check(rel.Manifest, live, kernelLabel)
			if err != nil {
				return &exitError{exitTrouble, fmt.Errorf("release %s in namespace %s: %w", rel.Name, rel.Namespace, err)}
			}
			r.Release, r.Revision = rel.Name, rel.Revision
			for _, w := range r.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			if output == "json" {
				b, err := json.MarshalIndent(struct {
					*drift.Report
					InSync bool `json:"inSync"`
				}{r, r.InSync()}, "", "  ")
				if err != nil {
					return &exitError{exitTrouble, err}
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			} else {
				fmt.Fprint(cmd.OutOrStdout(), r.Text())
			}
			if events && !r.InSync() {
				cfg, err := nodes.RESTConfig(o.Cluster)
				if err != nil {
					return &exitError{exitTrouble, err}
				}
				cs, err := kubernetes.NewForConfig(cfg)
				if err != nil {
					return &exitError{exitTrouble, err}
				}
				n, err := drift.RecordEvents(ctx, cs, rel, r, time.Now())
				fmt.Fprintf(cmd.ErrOrStderr(), "recorded %d %s Event(s)\n", n, drift.EventReason)
				if err != nil {
					return &exitError{exitTrouble, err}
				}
			}
			if !r.InSync() {
				return &exitError{code: exitDrift}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Name, "release", o.Name, "release name")
	fl.StringVarP(&o.Namespace, "namespace", "n", "", "release namespace (default: $HELM_NAMESPACE, the kubeconfig context's namespace, then default)")
	fl.StringVar(&o.Driver, "helm-driver", "", "Helm's release storage: secret, configmap or sql (default: $HELM_DRIVER, then secret)")
	fl.StringVar(&o.Cluster.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fl.StringVar(&o.Cluster.Context, "context", "", "kubeconfig context (default: $HELM_KUBECONTEXT, then the current context)")
	fl.DurationVar(&o.Cluster.Timeout, "timeout", 30*time.Second, "how long each read of the cluster may take")
	fl.StringVar(&kernelLabel, "kernel-label", render.DefaultKernelLabel, "node label that carries the kernel version (as given to the post-renderer)")
	fl.StringVarP(&output, "output", "o", "text", "output format: text or json")
	fl.BoolVar(&events, "events", false, "record a Warning Event (reason KernelDrift) per missing pair on the module's loader DaemonSet")
	return cmd
}

// exitCode is the process exit code for a command's error.
func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}
