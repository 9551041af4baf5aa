package nodes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// ClusterOptions say how to reach the cluster whose nodes to list.
type ClusterOptions struct {
	// Kubeconfig is an explicit kubeconfig path. Empty: the KUBECONFIG path list, then
	// ~/.kube/config, then the in-cluster config.
	Kubeconfig string
	// Context is the kubeconfig context. Empty: HELM_KUBECONTEXT, then the current context.
	Context string
	// Timeout bounds the whole listing, all pages together. Zero means 30 seconds.
	Timeout time.Duration
	// PageSize is the List page size. Zero means 500.
	PageSize int64
}

// FromCluster lists every node of the cluster, page by page. It only reads.
func FromCluster(ctx context.Context, o ClusterOptions) ([]Node, error) {
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.PageSize == 0 {
		o.PageSize = 500
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
	if overrides.CurrentContext == "" {
		overrides.CurrentContext = os.Getenv("HELM_KUBECONTEXT")
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.UserAgent = "kmm-render"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	var out []Node
	opts := metav1.ListOptions{Limit: o.PageSize}
	for {
		list, err := cs.CoreV1().Nodes().List(ctx, opts)
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("listing nodes from %s: no answer within %s: %w", cfg.Host, o.Timeout, err)
			}
			return nil, fmt.Errorf("listing nodes from %s: %w", cfg.Host, err)
		}
		for i := range list.Items {
			out = append(out, FromCoreV1(&list.Items[i]))
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the cluster at %s has no nodes", cfg.Host)
	}
	return Sort(out), nil
}
