package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/postrender"
	"kmm.dev/kmm/pkg/render"
	"kmm.dev/kmm/pkg/report"
	"kmm.dev/kmm/pkg/version"
)

// sourceFlags say where nodes come from: a snapshot file or the cluster.
type sourceFlags struct {
	nodesFile    string
	kubeconfig   string
	context      string
	timeout      time.Duration
	kernelLabel  string
	extraKernels []string
	extraLoaders bool
}

func (f *sourceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.nodesFile, "nodes", "", "read nodes from this file (kubectl get nodes -o yaml|json) instead of the cluster")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fl.StringVar(&f.context, "context", "", "kubeconfig context (default: $HELM_KUBECONTEXT, then the current context)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long listing the cluster's nodes may take")
	fl.StringVar(&f.kernelLabel, "kernel-label", render.DefaultKernelLabel, "node label that carries the kernel version")
	fl.StringArrayVar(&f.extraKernels, "extra-kernel", nil, "a kernel no node runs yet to build for ahead of time, as the chart's extraKernels (repeatable)")
	fl.BoolVar(&f.extraLoaders, "extra-kernel-loaders", false, "render loaders for the extra kernels too, as the chart's extraKernelLoaders")
}

// options are the post-renderer options the flags give.
func (f *sourceFlags) options(o postrender.Options) postrender.Options {
	o.Nodes = f.source()
	o.KernelLabel = f.kernelLabel
	for _, k := range f.extraKernels {
		o.ExtraKernels = append(o.ExtraKernels, render.ExtraKernel{Kernel: k})
	}
	o.ExtraKernelLoaders = f.extraLoaders
	return o
}

// existing looks up the cluster's Modules, for KMM's update rule; offline (--nodes) it cannot.
func (f *sourceFlags) existing() postrender.ModuleLookup {
	if f.nodesFile != "" {
		return nil
	}
	return postrender.ClusterModules(f.cluster())
}

func (f *sourceFlags) cluster() nodes.ClusterOptions {
	return nodes.ClusterOptions{Kubeconfig: f.kubeconfig, Context: f.context, Timeout: f.timeout}
}

func (f *sourceFlags) source() postrender.NodeSource {
	if f.nodesFile != "" {
		return postrender.FileNodes(f.nodesFile)
	}
	return postrender.ClusterNodes(f.cluster())
}

func newRootCommand() *cobra.Command {
	var src sourceFlags
	var strict bool
	cmd := &cobra.Command{
		Use:   "kmm-render [flags] < manifests.yaml",
		Short: "Helm post-renderer: one kernel-module loader DaemonSet per module and node kernel",
		Long: `kmm-render reads the manifests Helm rendered for charts/kmm on standard input, finds
each module's loader template, and writes the manifests back on standard output with the
template replaced by one DaemonSet per node kernel that the module's selector picks and a
kernel mapping matches. Everything else passes through unchanged.

Nodes come from the cluster (read only) or, for helm template and GitOps, from --nodes FILE.

  helm install kmm charts/kmm -f examples/eks/values.yaml --post-renderer kmm-render
  helm template kmm charts/kmm -f examples/gke/values.yaml --post-renderer kmm-render \
      --post-renderer-args=--nodes --post-renderer-args=examples/gke/nodes.yaml`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("reading standard input: %w", err)
			}
			r := postrender.New(src.options(postrender.Options{
				Existing: src.existing(),
				Strict:   strict,
				Warnings: cmd.ErrOrStderr(),
			}))
			out, err := r.Run(cmd.Context(), in)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	src.register(cmd)
	cmd.Flags().BoolVar(&strict, "strict", false, "fail when selected nodes run a kernel that no kernel mapping matches")
	cmd.AddCommand(newNodesCommand(), newKernelsCommand(), newDriftCommand(), newStatusCommand(), newVersionCommand(), newCopyCommand())
	return cmd
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kmm-render's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "kmm-render %s\n", version.Version)
		},
	}
}

func newNodesCommand() *cobra.Command {
	var src sourceFlags
	var o chartrender.Options
	cmd := &cobra.Command{
		Use:   "nodes [--nodes FILE | cluster flags] [-f values.yaml] [--set k=v]",
		Short: "Show the cluster's kernels, and which mapping of which module each one hits",
		Long: `nodes renders the chart as helm template does (its defaults, every -f, --set and
--set-string; the chart built into kmm-render unless --chart names another), then plans every
module through exactly the code the post-renderer expands with, and prints one row per kernel and
module: the table and the DaemonSets cannot disagree.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rendered, err := chartrender.Render(cmd.Context(), o)
			if err != nil {
				return err
			}
			r := postrender.New(src.options(postrender.Options{Warnings: cmd.ErrOrStderr()}))
			res, err := r.Plan(cmd.Context(), []byte(rendered.Manifests))
			if err != nil {
				return err
			}
			plans := make([]*render.Plan, len(res.Plans))
			for i := range res.Plans {
				plans[i] = res.Plans[i].Plan
			}
			if err := report.KernelTable(cmd.OutOrStdout(), res.Kernels, plans, src.kernelLabel); err != nil {
				return err
			}
			report.FixLabels(cmd.ErrOrStderr(), res.Kernels, src.kernelLabel)
			return nil
		},
	}
	src.register(cmd)
	fl := cmd.Flags()
	fl.StringArrayVarP(&o.ValueFiles, "values", "f", nil, "chart values file (repeatable, as helm's -f)")
	fl.StringArrayVar(&o.Values, "set", nil, "set a chart value (repeatable, as helm's --set)")
	fl.StringArrayVar(&o.StringValues, "set-string", nil, "set a chart value as a string (repeatable, as helm's --set-string)")
	fl.StringVarP(&o.Namespace, "namespace", "n", "default", "release namespace (the namespace of modules that set none)")
	fl.StringVar(&o.ReleaseName, "release-name", "kmm", "release name")
	fl.StringVar(&o.ChartDir, "chart", "", "chart folder (default: the chart built into kmm-render)")
	return cmd
}
