// Command kmm-upgrade is kmm's upgrade controller (package upgrade): it moves each helm-managed
// module's nodes to a new loader revision one safe step at a time, within the policy's bound,
// and keeps per-node module status (labels, Events) on the Nodes. The chart runs it as a
// Deployment when `upgrade.enabled`; it is not the post-renderer (kmm-render never writes to
// the cluster).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/upgrade"
	"kmm.dev/kmm/pkg/version"
)

type options struct {
	config, kubeconfig, kubeContext string
	interval                        time.Duration
	once                            bool
	leaderElect                     bool
	leaseNamespace, leaseName       string
	identity                        string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmm-upgrade: error: %v\n", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	o := options{}
	cmd := &cobra.Command{
		Use:   "kmm-upgrade --config FILE",
		Short: "kmm's upgrade controller: safe, bounded module upgrades and per-node module status",
		Long: `kmm-upgrade upgrades the nodes of each module its configuration lists (the chart's
ConfigMap <release>-upgrade) from one loader revision to the next: cordon, device plugin away,
consumers evicted, old loader deleted (it unloads), new loader Ready (its version verified),
device plugin back, uncordon; never more nodes at once than the policy's maxParallel and
maxUnavailable allow, counted across all kernels of the module. It labels each node with the
module's ready, version.ready and upgrade-state labels and records Events on the Node.`,
		Version:       version.Version,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "the upgrade configuration (JSON: the chart's ConfigMap key config.json)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	f.StringVar(&o.kubeContext, "kube-context", "", "kubeconfig context")
	f.DurationVar(&o.interval, "interval", 5*time.Second, "time between passes")
	f.BoolVar(&o.once, "once", false, "make one pass and exit")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "hold a Lease while working, so one controller acts at a time (the bound counts on it)")
	f.StringVar(&o.leaseNamespace, "lease-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Lease (default $POD_NAMESPACE)")
	f.StringVar(&o.leaseName, "lease-name", "kmm-upgrade", "name of the Lease")
	f.StringVar(&o.identity, "identity", os.Getenv("POD_NAME"), "this controller's name in the Lease (default $POD_NAME, else the host name)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func run(ctx context.Context, o options) error {
	cfg, err := upgrade.LoadConfig(o.config)
	if err != nil {
		return err
	}
	rc, err := nodes.RESTConfig(nodes.ClusterOptions{Kubeconfig: o.kubeconfig, Context: o.kubeContext})
	if err != nil {
		return err
	}
	rc.UserAgent = "kmm-upgrade"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("creating the client: %w", err)
	}
	c, err := upgrade.New(upgrade.Options{Client: client, Modules: cfg.Modules, Log: os.Stderr})
	if err != nil {
		return err
	}
	if o.once {
		return c.Reconcile(ctx)
	}
	if !o.leaderElect {
		return c.Run(ctx, o.interval)
	}
	if o.leaseNamespace == "" {
		return errors.New("--lease-namespace (or $POD_NAMESPACE) is required with --leader-elect")
	}
	if o.identity == "" {
		if o.identity, err = os.Hostname(); err != nil {
			return fmt.Errorf("naming this controller: %w", err)
		}
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: o.leaseNamespace, Name: o.leaseName},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: o.identity},
	}
	var runErr error
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		ReleaseOnCancel: true,
		Name:            o.leaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				fmt.Fprintf(os.Stderr, "kmm-upgrade: %s leads (Lease %s/%s)\n", o.identity, o.leaseNamespace, o.leaseName)
				runErr = c.Run(ctx, o.interval)
			},
			OnStoppedLeading: func() {
				fmt.Fprintf(os.Stderr, "kmm-upgrade: %s stopped leading\n", o.identity)
			},
		},
	})
	if runErr == nil && ctx.Err() == nil {
		return errors.New("lost the Lease")
	}
	return runErr
}
