package nodes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/pager"
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

// RESTConfig is the client configuration of the cluster o names: the kubeconfig loading rules
// (o.Kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster) and the context (o.Context, else
// $HELM_KUBECONTEXT, else the current one).
func RESTConfig(o ClusterOptions) (*rest.Config, error) {
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
	return cfg, nil
}

// FromCluster lists every node of the cluster, page by page (client-go's pager, which lists
// everything at once should a continue token expire between pages). It only reads. When the
// cluster does not answer within o.Timeout, the error says "no answer within <Timeout>".
func FromCluster(ctx context.Context, o ClusterOptions) ([]Node, error) {
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.PageSize == 0 {
		o.PageSize = 500
	}
	cfg, err := RESTConfig(o)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
	}
	noAnswer := noAnswerError{o.Timeout}
	ctx, cancel := context.WithTimeoutCause(ctx, o.Timeout, noAnswer)
	defer cancel()

	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return cs.CoreV1().Nodes().List(ctx, opts)
	})
	p.PageSize = o.PageSize
	list, _, err := p.List(ctx, metav1.ListOptions{})
	if err != nil {
		if timedOut(ctx, noAnswer) && !errors.Is(err, noAnswer) {
			// The client gave up with an error of its own; say why.
			return nil, fmt.Errorf("listing nodes from %s: %w: %w", cfg.Host, noAnswer, err)
		}
		return nil, fmt.Errorf("listing nodes from %s: %w", cfg.Host, err)
	}
	var out []Node
	err = meta.EachListItem(list, func(obj runtime.Object) error {
		n, ok := obj.(*corev1.Node)
		if !ok {
			return fmt.Errorf("the node list holds a %T", obj)
		}
		out = append(out, FromCoreV1(n))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing nodes from %s: %w", cfg.Host, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the cluster at %s has no nodes", cfg.Host)
	}
	return Sort(out), nil
}

// noAnswerError is the cause of FromCluster's timeout. net/http reports a request's context
// cause, so the error then reads `Get "https://...": no answer within 30s`. It is a
// context.DeadlineExceeded.
type noAnswerError struct{ timeout time.Duration }

func (e noAnswerError) Error() string { return fmt.Sprintf("no answer within %s", e.timeout) }
func (e noAnswerError) Unwrap() error { return context.DeadlineExceeded }

// timedOut reports whether ctx ended with cause, its own timeout. The answer comes from ctx, not
// from the error: parts of the client (the dialer, client-go's rate limiter) compare ctx's
// deadline with the clock themselves and may give up a moment before ctx's timer fires. Once
// the deadline has passed that timer fires at once, so timedOut waits for it.
func timedOut(ctx context.Context, cause error) bool {
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		<-ctx.Done()
	}
	return errors.Is(context.Cause(ctx), cause)
}
