package nodes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
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

// FromCluster lists every node of the cluster, page by page, as client-go's pager does: should
// a continue token expire between pages (410 Expired), it lists every node at once instead. It
// only reads, and it returns every node or an error, never part of a list. When the cluster
// does not answer within o.Timeout, the error says "no answer within <Timeout>"; the API
// server's refusals are explained as ExplainAPIError says.
//
// It asks for protobuf and decodes only what a Node keeps (see readNodeList), page by page,
// so that a large cluster's nodes never stand in memory as typed objects.
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
	client, err := nodeListClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
	}
	noAnswer := noAnswerError{o.Timeout}
	ctx, cancel := context.WithTimeoutCause(ctx, o.Timeout, noAnswer)
	defer cancel()

	out, expired, err := listNodes(ctx, client, o.PageSize)
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
	if len(out) == 0 {
		return nil, fmt.Errorf("the cluster at %s has no nodes", cfg.Host)
	}
	return Sort(out), nil
}

// nodeListClient is a client of the core API group for listing nodes: it prefers protobuf,
// which the API server encodes and kmm-render decodes far faster than JSON, and takes JSON from
// a server that answers that instead. Client-side rate limiting is off: one listing is a short
// series of requests, one after the other, which the token bucket's default (5 per second after
// a burst of 10) would only delay, by seconds for a cluster of more than 5,000 nodes; the API
// server's priority and fairness protects it from a client that asks too much.
func nodeListClient(cfg *rest.Config) (rest.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion() // decodes the server's Status errors
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	c.QPS, c.Burst, c.RateLimiter = -1, 0, nil
	return rest.RESTClientFor(c)
}

// listNodes lists every node, pageSize at a time, with client-go's pager's rules: a consistent
// list (no resourceVersion: as fresh as etcd, never a stale cache; kube-apiserver 1.31+ serves
// it from its watch cache once that has caught up), each page continuing the first one's
// snapshot, and one list of everything at once should a continue token expire, the pages read
// so far dropped. expired reports that the last happened. (resourceVersion=0 would be allowed
// to be stale, and is no faster: docs/benchmarks.md.)
func listNodes(ctx context.Context, client rest.Interface, pageSize int64) (out []Node, expired bool, err error) {
	in := interner{}
	br := bufio.NewReaderSize(nil, 64<<10) // every page is read through it
	limit, cont := pageSize, ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, expired, context.Cause(ctx)
		}
		page, next, err := listPage(ctx, client, limit, cont, br, in)
		if err != nil {
			if cont != "" && !expired && apierrors.IsResourceExpired(err) {
				// The snapshot the token refers to is compacted away: start over with one list.
				expired, out, limit, cont = true, nil, 0, ""
				continue
			}
			return nil, expired, err
		}
		out = append(out, page...)
		if next == "" {
			return out, expired, nil
		}
		if expired {
			// A list without a limit is the whole list; a server that pages it anyway cannot be
			// trusted to give every node.
			return nil, expired, errors.New("the server paginated a list kmm-render asked for all at once")
		}
		cont = next
	}
}

// listPage reads one page, limit nodes (all when 0) from where cont says, through br. It decodes
// the answer as it streams in (readNodeList) rather than let client-go read it whole first
// (Request.Do grows a new buffer from 512 bytes for every page, megabytes each for a large
// cluster). Errors are client-go's all the same: the server's Status, 429s retried as
// Retry-After asks, and, as Request.Do does for a GET, a connection that is reset or lost before
// the answer retried after a second, up to connRetries times.
func listPage(ctx context.Context, client rest.Interface, limit int64, cont string, br *bufio.Reader, in interner) ([]Node, string, error) {
	req := client.Get().Resource("nodes")
	if limit > 0 {
		req = req.Param("limit", strconv.FormatInt(limit, 10))
	}
	if cont != "" {
		req = req.Param("continue", cont)
	}
	for attempt := 1; ; attempt++ {
		body, err := req.Stream(ctx)
		if err != nil {
			if attempt > connRetries || !(utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) || utilnet.IsHTTP2ConnectionLost(err)) {
				return nil, "", err
			}
			select {
			case <-ctx.Done():
				return nil, "", err
			case <-time.After(connRetryWait):
			}
			continue
		}
		defer body.Close()
		br.Reset(body)
		return readNodeList(br, in)
	}
}

// connRetries and connRetryWait are client-go's for a GET whose connection fails (Request.Do).
const connRetries = 10

var connRetryWait = time.Second

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
