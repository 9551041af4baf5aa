package nodes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
// everything at once should a continue token expire between pages). It only reads, and it
// returns every node or an error, never part of a list. When the cluster does not answer within
// o.Timeout, the error says "no answer within <Timeout>"; the API server's refusals are
// explained as ExplainAPIError says.
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

	// expired records that a continue token expired between pages: the pager then lists every
	// node at once, and should that fail too, the error says both. The pager calls the page
	// function from this goroutine only.
	expired := false
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		list, err := cs.CoreV1().Nodes().List(ctx, opts)
		if err != nil && opts.Continue != "" && apierrors.IsResourceExpired(err) {
			expired = true
		}
		return list, err
	})
	p.PageSize = o.PageSize
	list, _, err := p.List(ctx, metav1.ListOptions{})
	if err != nil {
		err = ExplainAPIError(err, "list", "nodes")
		if expired {
			err = fmt.Errorf("the continue token expired between pages (410 Expired), and listing every node at once failed: %w", err)
		}
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

// RBACManifest is the file that grants kmm-render the rights it needs to read the cluster.
const RBACManifest = "deploy/kmm-render-rbac.yaml"

// ExplainAPIError puts the API server's refusal of kmm-render's request (verb on resource, as
// RBAC names them: "list", "nodes") into a sentence that says what happened and what to check,
// wrapping err, which keeps the server's own message. Errors that are no API status (a refused
// connection, a timeout) and statuses it has nothing to add to come back unchanged.
//
//   - 401: the credentials were refused. The API server does not say why: an expired token, a
//     revoked one (its ServiceAccount deleted) and one for another cluster look alike.
//   - 403: the identity lacks verb on resource; RBACManifest grants what kmm-render needs.
//   - 429: the server throttled kmm-render, and kept doing so through client-go's retries.
//   - 410: a list's resource version or continue token expired.
//   - 5xx: the server failed.
func ExplainAPIError(err error, verb, resource string) error {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return err
	}
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("credentials refused (401): check the kubeconfig's user/token (expired, revoked, or for another cluster?): %w", err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("forbidden (403): kmm-render needs %s on %s (%s): %w", verb, resource, RBACManifest, err)
	case apierrors.IsTooManyRequests(err):
		return fmt.Errorf("the server answered 429 Too Many Requests, and again on every retry it asked for (Retry-After): %w", err)
	case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
		return fmt.Errorf("the server answered 410 Gone (the list expired): %w", err)
	}
	if code := int(status.Status().Code); code >= 500 {
		return fmt.Errorf("the server returned %d %s: %w", code, http.StatusText(code), err)
	}
	return err
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
