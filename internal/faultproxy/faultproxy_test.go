package faultproxy

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

const upstreamToken = "upstream-secret"

// upstream is a stand-in API server behind the proxy: it serves GET /api/v1/nodes paginated as
// the API server does (?limit=N, continue token = offset) and GET /api/v1/namespaces/default,
// and answers 401 unless the request carries exactly upstreamToken.
type upstream struct {
	*httptest.Server
	nodes int

	mu   sync.Mutex
	seen []upstreamRequest
}

type upstreamRequest struct {
	path, limit, cont, auth string
	impersonate             bool
}

func newUpstream(t *testing.T, nodes int) *upstream {
	t.Helper()
	u := &upstream{nodes: nodes}
	u.Server = httptest.NewTLSServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	u.mu.Lock()
	u.seen = append(u.seen, upstreamRequest{
		path: r.URL.Path, limit: q.Get("limit"), cont: q.Get("continue"),
		auth: strings.Join(r.Header.Values("Authorization"), ","), impersonate: r.Header.Get("Impersonate-User") != "",
	})
	u.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+upstreamToken {
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/v1/namespaces/default":
		_ = json.NewEncoder(w).Encode(&corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: "default"},
		})
	case "/api/v1/nodes":
		start, end := 0, u.nodes
		if c := q.Get("continue"); c != "" {
			start, _ = strconv.Atoi(c)
		}
		if l, _ := strconv.Atoi(q.Get("limit")); l > 0 && start+l < end {
			end = start + l
		}
		list := corev1.NodeList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "NodeList"}, ListMeta: metav1.ListMeta{ResourceVersion: "7"}}
		for i := start; i < end; i++ {
			list.Items = append(list.Items, corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i)}})
		}
		if end < u.nodes {
			list.Continue = strconv.Itoa(end)
		}
		_ = json.NewEncoder(w).Encode(&list)
	default:
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "not found", nil)
	}
}

func (u *upstream) requests() []upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstreamRequest(nil), u.seen...)
}

// config is how the proxy reaches u: its CA and upstreamToken.
func (u *upstream) config() *rest.Config {
	return &rest.Config{
		Host:            u.URL,
		BearerToken:     upstreamToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.Certificate().Raw})},
	}
}

// start starts a proxy in front of u, stopped when the test ends.
func start(t *testing.T, u *upstream) *Proxy {
	t.Helper()
	p, err := Start(u.config())
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return p
}

// client is a clientset built from the proxy's kubeconfig, as written to disk, and read back the
// way kmm-render reads a kubeconfig.
func client(t *testing.T, p *Proxy) (kubernetes.Interface, *rest.Config) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, p.WriteKubeconfig(path))
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return cs, cfg
}

func nodeNames(t *testing.T, obj runtime.Object) []string {
	t.Helper()
	var out []string
	require.NoError(t, meta.EachListItem(obj, func(o runtime.Object) error {
		out = append(out, o.(*corev1.Node).Name)
		return nil
	}))
	return out
}

func allNodes(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("node-%d", i))
	}
	return out
}

// TestPass: with no fault the proxy forwards requests unchanged, over TLS with its own
// certificate, authenticated upstream with its own credentials, whatever the client sends.
func TestPass(t *testing.T) {
	u := newUpstream(t, 3)
	p := start(t, u)
	cs, cfg := client(t, p)

	list, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"node-0", "node-1"}, nodeNames(t, list))
	assert.Equal(t, "2", list.Continue, "the upstream's continue token comes through")

	// A client's own credentials and impersonation never reach the API server.
	cfg.BearerToken = "client-token"
	cfg.Impersonate.UserName = "someone-else"
	cs2, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	_, err = cs2.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{})
	require.NoError(t, err)

	for _, r := range u.requests() {
		assert.Equal(t, "Bearer "+upstreamToken, r.auth, "upstream request %s", r.path)
		assert.False(t, r.impersonate, "upstream request %s carries Impersonate-User", r.path)
	}
	got := p.Requests()
	require.Len(t, got, 2)
	assert.Equal(t, Request{Method: "GET", Path: "/api/v1/nodes", Query: got[0].Query, Fault: "pass", Code: 200}, got[0])
	assert.Equal(t, "2", got[0].Query.Get("limit"))
	assert.Equal(t, "/api/v1/namespaces/default", got[1].Path)
}

// TestTLS: the proxy's certificate is its own, for 127.0.0.1: a client that trusts only the
// system's roots, or the upstream's CA, refuses it.
func TestTLS(t *testing.T) {
	u := newUpstream(t, 1)
	p := start(t, u)

	block, _ := pem.Decode(p.CA)
	require.NotNil(t, block, "CA is PEM")
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"})
	require.NoError(t, err, "the certificate is valid for 127.0.0.1 under itself")

	for name, ca := range map[string][]byte{"system roots": nil, "the upstream's CA": u.config().CAData} {
		t.Run(name, func(t *testing.T) {
			cs, err := kubernetes.NewForConfig(&rest.Config{Host: p.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}})
			require.NoError(t, err)
			_, err = cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "certificate")
		})
	}
}

// TestHang: a hanging request gets no answer until the client gives up; other requests still
// pass; the API server never sees the hanging one.
func TestHang(t *testing.T) {
	u := newUpstream(t, 2)
	p := start(t, u)
	p.Set(NodeList, Hang())
	cs, _ := client(t, p)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	_, err = cs.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{})
	require.NoError(t, err, "requests the fault does not match pass")
	for _, r := range u.requests() {
		assert.NotEqual(t, "/api/v1/nodes", r.path, "the hanging request reached the API server")
	}
	// The hanging handler ends once the client's connection goes; then it is recorded.
	require.Eventually(t, func() bool {
		for _, r := range p.Requests() {
			if r.Path == "/api/v1/nodes" {
				return r.Fault == "hang" && r.Code == 0
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "requests: %+v", p.Requests())
}

// hanging is how many requests Hang holds now.
func (p *Proxy) hanging() int { return int(p.hangs.Load()) }

// TestHangEndsOnClose: Close ends a request that hangs for a client without a deadline.
func TestHangEndsOnClose(t *testing.T) {
	u := newUpstream(t, 1)
	p, err := Start(u.config())
	require.NoError(t, err)
	p.Set(nil, Hang())
	cs, _ := client(t, p)
	done := make(chan error, 1)
	go func() {
		_, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		done <- err
	}()
	require.Eventually(t, func() bool { return p.hanging() > 0 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Close())
	select {
	case err := <-done:
		require.Error(t, err, "a request the closed proxy never answered")
	case <-time.After(30 * time.Second):
		t.Fatal("the request still hangs after Close")
	}
}

// TestStatusFaults: error answers come back to client-go as the API errors they stand for, and
// only the throttled one is retried.
func TestStatusFaults(t *testing.T) {
	tests := []struct {
		name        string
		fault       Fault
		is          func(error) bool
		code        int
		wantRetries bool
	}{
		{name: "500", fault: ServerError(), is: apierrors.IsInternalError, code: 500},
		{name: "429 with Retry-After", fault: Throttle(0), is: apierrors.IsTooManyRequests, code: 429, wantRetries: true},
		{name: "401", fault: Unauthorized(), is: apierrors.IsUnauthorized, code: 401},
		{name: "403", fault: Status(403, metav1.StatusReasonForbidden, "nodes is forbidden", nil), is: apierrors.IsForbidden, code: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, 2)
			p := start(t, u)
			p.Set(NodeList, tt.fault)
			cs, _ := client(t, p)
			_, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
			require.Error(t, err)
			assert.True(t, tt.is(err), "%v", err)
			got := p.Requests()
			require.NotEmpty(t, got)
			for _, r := range got {
				assert.Equal(t, tt.code, r.Code)
				assert.Equal(t, tt.fault.String(), r.Fault)
			}
			if tt.wantRetries {
				assert.Greater(t, len(got), 1, "client-go retries a 429 with Retry-After")
			} else {
				assert.Len(t, got, 1, "no retry")
			}
			assert.Empty(t, u.requests(), "the API server saw a request the proxy answered")
		})
	}
}

// TestExpireContinue: client-go's pager (page size 500, as kmm-render's) gets a first page of
// two, a 410 Expired for the continue token, then lists everything at once: through the proxy
// when relist is Pass, failing when relist is a fault.
func TestExpireContinue(t *testing.T) {
	tests := []struct {
		name      string
		relist    Fault
		wantErr   func(error) bool
		wantNodes []string
	}{
		{name: "relist passes", relist: Pass, wantNodes: allNodes(5)},
		{name: "relist fails", relist: ServerError(), wantErr: apierrors.IsInternalError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, 5)
			p := start(t, u)
			p.Set(NodeList, ExpireContinue(2, tt.relist))
			cs, _ := client(t, p)
			pg := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
				return cs.CoreV1().Nodes().List(ctx, opts)
			})
			pg.PageSize = 500
			list, _, err := pg.List(context.Background(), metav1.ListOptions{})
			if tt.wantErr != nil {
				require.Error(t, err)
				assert.True(t, tt.wantErr(err), "%v", err)
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.wantNodes, nodeNames(t, list))
			}

			var actions []string
			for _, r := range p.Requests() {
				actions = append(actions, fmt.Sprintf("%s %d", r.Action, r.Code))
			}
			relistCode := 200
			if tt.wantErr != nil {
				relistCode = 500
			}
			assert.Equal(t, []string{
				"limit 500 lowered to 2 200",
				"410 expired continue 410",
				fmt.Sprintf("relist: %s %d", tt.relist, relistCode),
			}, actions)

			var limits []string
			for _, r := range u.requests() {
				limits = append(limits, r.limit+"/"+r.cont)
			}
			want := []string{"2/"}
			if tt.wantErr == nil {
				want = append(want, "/")
			}
			assert.Equal(t, want, limits, "what the API server saw: limit/continue")
		})
	}
}

// TestSetAndReset: the fault set last wins where two match; Reset removes faults and forgets
// requests.
func TestSetAndReset(t *testing.T) {
	u := newUpstream(t, 1)
	p := start(t, u)
	cs, _ := client(t, p)
	ctx := context.Background()

	p.Set(nil, ServerError())
	p.Set(Path("/api/v1/namespaces/default"), Pass)
	_, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	require.NoError(t, err, "the later, more specific Pass wins")
	_, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsInternalError(err), "%v", err)
	assert.Len(t, p.Requests(), 2)

	p.Reset()
	assert.Empty(t, p.Requests())
	_, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
}

func TestStartErrors(t *testing.T) {
	for _, host := range []string{"", "127.0.0.1:6443", "https://%zz"} {
		t.Run(host, func(t *testing.T) {
			p, err := Start(&rest.Config{Host: host})
			require.Error(t, err)
			assert.Nil(t, p)
			assert.Contains(t, err.Error(), "faultproxy")
		})
	}
}

// A forwarding failure (the API server is gone) is a 502 that names the cause.
func TestUpstreamDown(t *testing.T) {
	u := newUpstream(t, 1)
	p := start(t, u)
	u.Close()
	cs, _ := client(t, p)
	_, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	require.Error(t, err)
	var st apierrors.APIStatus
	require.True(t, errors.As(err, &st), "%v", err)
	assert.EqualValues(t, http.StatusBadGateway, st.Status().Code)
	assert.Contains(t, err.Error(), "forwarding to the API server")
}
