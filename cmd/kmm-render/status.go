package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/upgrade"
)

func newStatusCommand() *cobra.Command {
	var (
		cluster   nodes.ClusterOptions
		namespace string
		output    string
	)
	cmd := &cobra.Command{
		Use:   "status [-n NAMESPACE] [-o table|json]",
		Short: "Per module and node: the version wanted, the version loaded, the upgrade state",
		Long: `status lists every helm-managed module's loader DaemonSets, their revisions and pods, and the
nodes, and shows per module and node: the kernel, the version the node's loader DaemonSet loads
now (wanted), the version its Ready loader pod loaded and verified (loaded), the upgrade state
(kmm-upgrade's upgrade-state label; else current, outdated, skipped or no-loader), the device
plugin (ready, starting, paused) and whether the node is cordoned, then the last failure message
of each loader that failed, and the build Job each outdated node waits for (modules built in the
cluster; kmm-upgrade starts a node once its Job is complete). It only reads (list on DaemonSets,
ControllerRevisions, pods and nodes, and on Jobs when a module's loaders name a build Job).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("unknown output %q: want table or json", output)
			}
			cfg, err := nodes.RESTConfig(cluster)
			if err != nil {
				return err
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("creating the client: %w", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cluster.Timeout)
			defer cancel()
			r, err := upgrade.Status(ctx, cs, namespace)
			if err != nil {
				return err
			}
			return r.Write(cmd.OutOrStdout(), output)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&namespace, "namespace", "n", "", "the modules' namespace (default: all namespaces)")
	fl.StringVar(&cluster.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fl.StringVar(&cluster.Context, "context", "", "kubeconfig context (default: $HELM_KUBECONTEXT, then the current context)")
	fl.DurationVar(&cluster.Timeout, "timeout", 30*time.Second, "how long the reads of the cluster may take")
	fl.StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}
