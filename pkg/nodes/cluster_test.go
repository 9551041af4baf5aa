package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fakeAPI serves GET /api/v1/nodes from a fixed node list, paginated like the API server:
// ?limit=N&continue=<offset>. With expireContinue set it answers every continue token with
// 410 Expired, as the API server does once etcd compacted the revision the token refers to.
// It answers JSON, or with protobuf set, protobuf to a client that accepts it, as the API
// server does.
type fakeAPI struct {
	*httptest.Server
	nodes          []corev1.Node
	expireContinue bool
	protobuf       bool

	mu       sync.Mutex
	requests []apiRequest
}

type apiRequest struct {
	Limit, Continue, UserAgent, Auth, Accept string
}

func newFakeAPI(t *testing.T, names ...string) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	for i, n := range names {
		f.nodes = append(f.nodes, corev1.Node{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
			ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"kubernetes.io/os": "linux"}},
			Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{
				KernelVersion: fmt.Sprintf("5.15.0-%d-generic", 100+i),
				OSImage:       "Ubuntu 22.04.4 LTS",
			}},
		})
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/api/v1/nodes" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	f.mu.Lock()
	f.requests = append(f.requests, apiRequest{Limit: q.Get("limit"), Continue: q.Get("continue"), UserAgent: r.UserAgent(), Auth: r.Header.Get("Authorization"), Accept: r.Header.Get("Accept")})
	f.mu.Unlock()

	start := 0
	if c := q.Get("continue"); c != "" && f.expireContinue {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGone)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"The provided continue parameter is too old to display a consistent list result.","reason":"Expired","code":410}`))
		return
	}
	if c := q.Get("continue"); c != "" {
		var err error
		if start, err = strconv.Atoi(c); err != nil || start > len(f.nodes) {
			http.Error(w, "bad continue", http.StatusBadRequest)
			return
		}
	}
	end := len(f.nodes)
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			http.Error(w, "bad limit", http.StatusBadRequest)
			return
		}
		if start+n < end {
			end = start + n
		}
	}
	list := corev1.NodeList{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "NodeList"},
		ListMeta: metav1.ListMeta{ResourceVersion: "42"},
		Items:    append([]corev1.Node{}, f.nodes[start:end]...),
	}
	if end < len(f.nodes) {
		list.Continue = strconv.Itoa(end)
	}
	if f.protobuf && strings.Contains(r.Header.Get("Accept"), runtime.ContentTypeProtobuf) {
		w.Header().Set("Content-Type", runtime.ContentTypeProtobuf)
		_, _ = w.Write(encodeProtobuf(&list))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&list)
}

func (f *fakeAPI) seen() []apiRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiRequest(nil), f.requests...)
}

// writeKubeconfig writes a kubeconfig with two contexts, ctx-a (current) and ctx-b.
func writeKubeconfig(t *testing.T, serverA, serverB string) string {
	t.Helper()
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: cluster-a
  cluster:
    server: %s
- name: cluster-b
  cluster:
    server: %s
users:
- name: user-a
  user:
    token: token-a
- name: user-b
  user:
    token: token-b
contexts:
- name: ctx-a
  context:
    cluster: cluster-a
    user: user-a
- name: ctx-b
  context:
    cluster: cluster-b
    user: user-b
current-context: ctx-a
`, serverA, serverB)
	p := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(p, []byte(cfg), 0o600))
	return p
}

// isolate keeps the caller's environment out of the kubeconfig loading rules: KUBECONFIG
// points at a config whose only server refuses connections, HELM_KUBECONTEXT is empty.
func isolate(t *testing.T) {
	t.Helper()
	closed := closedAddr(t)
	p := writeKubeconfig(t, "http://"+closed, "http://"+closed)
	t.Setenv("KUBECONFIG", p)
	t.Setenv("HELM_KUBECONTEXT", "")
}

// closedAddr returns a 127.0.0.1 address that nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func names(ns []Node) []string {
	out := []string{}
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

func TestFromClusterPagination(t *testing.T) {
	tests := []struct {
		name          string
		nodes         []string
		pageSize      int64
		wantLimit     string
		wantContinues []string
	}{
		{
			name:          "five nodes, pages of two",
			nodes:         []string{"n-e", "n-c", "n-a", "n-d", "n-b"},
			pageSize:      2,
			wantLimit:     "2",
			wantContinues: []string{"", "2", "4"},
		},
		{
			name:          "exact multiple of the page size",
			nodes:         []string{"n-d", "n-c", "n-b", "n-a"},
			pageSize:      2,
			wantLimit:     "2",
			wantContinues: []string{"", "2"},
		},
		{
			name:          "page size one",
			nodes:         []string{"n-c", "n-b", "n-a"},
			pageSize:      1,
			wantLimit:     "1",
			wantContinues: []string{"", "1", "2"},
		},
		{
			name:          "default page size 500: one page",
			nodes:         []string{"n-b", "n-a"},
			pageSize:      0,
			wantLimit:     "500",
			wantContinues: []string{""},
		},
	}
	for _, tt := range tests {
		for _, protobuf := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/protobuf=%t", tt.name, protobuf), func(t *testing.T) {
				isolate(t)
				api := newFakeAPI(t, tt.nodes...)
				api.protobuf = protobuf
				kc := writeKubeconfig(t, api.URL, "http://"+closedAddr(t))
				ns, err := FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, PageSize: tt.pageSize, Timeout: 10 * time.Second})
				require.NoError(t, err)

				want := append([]string{}, tt.nodes...)
				sortStrings(want)
				assert.Equal(t, want, names(ns), "every page read, sorted by name")
				for _, n := range ns {
					assert.NotEmpty(t, n.Kernel)
					assert.Equal(t, "linux", n.Labels["kubernetes.io/os"])
					assert.Equal(t, "Ubuntu 22.04.4 LTS", n.OSImage)
				}

				reqs := api.seen()
				var continues []string
				for _, r := range reqs {
					continues = append(continues, r.Continue)
					assert.Equal(t, tt.wantLimit, r.Limit)
					assert.Equal(t, "kmm-render", r.UserAgent)
					assert.Equal(t, "application/vnd.kubernetes.protobuf,application/json", r.Accept, "protobuf preferred, JSON taken")
				}
				assert.Equal(t, tt.wantContinues, continues)
			})
		}
	}
}

// TestFromClusterContinueExpired: when a continue token expires between pages (410 Expired),
// the listing starts over as one full list, and every node is still listed once.
func TestFromClusterContinueExpired(t *testing.T) {
	tests := []struct {
		name     string
		nodes    []string
		pageSize int64
		want     []apiRequest // Limit and Continue of each request, in order
	}{
		{
			name:     "second page expired",
			nodes:    []string{"n-e", "n-c", "n-a", "n-d", "n-b"},
			pageSize: 2,
			want:     []apiRequest{{Limit: "2"}, {Limit: "2", Continue: "2"}, {}},
		},
		{
			name:     "one page: no continue token to expire",
			nodes:    []string{"n-b", "n-a"},
			pageSize: 5,
			want:     []apiRequest{{Limit: "5"}},
		},
	}
	for _, tt := range tests {
		for _, protobuf := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/protobuf=%t", tt.name, protobuf), func(t *testing.T) {
				isolate(t)
				api := newFakeAPI(t, tt.nodes...)
				api.expireContinue = true
				api.protobuf = protobuf
				kc := writeKubeconfig(t, api.URL, "http://"+closedAddr(t))
				ns, err := FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, PageSize: tt.pageSize, Timeout: 10 * time.Second})
				require.NoError(t, err)

				want := append([]string{}, tt.nodes...)
				sortStrings(want)
				assert.Equal(t, want, names(ns), "every node once, sorted by name")
				var got []apiRequest
				for _, r := range api.seen() {
					got = append(got, apiRequest{Limit: r.Limit, Continue: r.Continue})
				}
				assert.Equal(t, tt.want, got)
			})
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestFromClusterContext(t *testing.T) {
	tests := []struct {
		name      string
		context   string
		helmEnv   string
		wantNodes []string
		wantErr   string
	}{
		{name: "current context when none given", wantNodes: []string{"a-1", "a-2"}},
		{name: "Context option picks the second context", context: "ctx-b", wantNodes: []string{"b-1", "b-2", "b-3"}},
		{name: "HELM_KUBECONTEXT used when Context is empty", helmEnv: "ctx-b", wantNodes: []string{"b-1", "b-2", "b-3"}},
		{name: "Context option wins over HELM_KUBECONTEXT", context: "ctx-a", helmEnv: "ctx-b", wantNodes: []string{"a-1", "a-2"}},
		{name: "unknown context", context: "ctx-missing", wantErr: "loading kubeconfig"},
		{name: "unknown HELM_KUBECONTEXT", helmEnv: "ctx-missing", wantErr: "loading kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			a := newFakeAPI(t, "a-2", "a-1")
			b := newFakeAPI(t, "b-3", "b-1", "b-2")
			kc := writeKubeconfig(t, a.URL, b.URL)
			t.Setenv("HELM_KUBECONTEXT", tt.helmEnv)
			ns, err := FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, Context: tt.context, Timeout: 10 * time.Second})
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantNodes, names(ns))
		})
	}
}

func TestFromClusterKubeconfigFromEnv(t *testing.T) {
	// With no Kubeconfig option, the KUBECONFIG path is used.
	api := newFakeAPI(t, "env-1")
	kc := writeKubeconfig(t, api.URL, "http://"+closedAddr(t))
	t.Setenv("KUBECONFIG", kc)
	t.Setenv("HELM_KUBECONTEXT", "")
	ns, err := FromCluster(context.Background(), ClusterOptions{Timeout: 10 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, []string{"env-1"}, names(ns))
}

func TestFromClusterErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) (kubeconfig string)
		timeout time.Duration
		wantErr []string
	}{
		{
			name: "missing kubeconfig file",
			setup: func(t *testing.T) string {
				return filepath.Join(t.TempDir(), "missing")
			},
			timeout: 5 * time.Second,
			wantErr: []string{"loading kubeconfig"},
		},
		{
			name: "unreachable server (closed port)",
			setup: func(t *testing.T) string {
				addr := closedAddr(t)
				return writeKubeconfig(t, "http://"+addr, "http://"+addr)
			},
			timeout: 5 * time.Second,
			wantErr: []string{"listing nodes from http://127.0.0.1:", "connection refused"},
		},
		{
			name: "server that never answers",
			setup: func(t *testing.T) string {
				srv := hangingServer(t)
				return writeKubeconfig(t, srv.URL, srv.URL)
			},
			timeout: 50 * time.Millisecond,
			wantErr: []string{"listing nodes from http://127.0.0.1:", "no answer within 50ms"},
		},
		{
			name: "zero nodes",
			setup: func(t *testing.T) string {
				api := newFakeAPI(t)
				return writeKubeconfig(t, api.URL, api.URL)
			},
			timeout: 5 * time.Second,
			wantErr: []string{"has no nodes"},
		},
		{
			name: "server error",
			setup: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusForbidden)
					_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"nodes is forbidden: User \"x\" cannot list resource \"nodes\"","reason":"Forbidden","code":403}`))
				}))
				t.Cleanup(srv.Close)
				return writeKubeconfig(t, srv.URL, srv.URL)
			},
			timeout: 5 * time.Second,
			wantErr: []string{"listing nodes from", "forbidden"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			kc := tt.setup(t)
			ns, err := FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, Timeout: tt.timeout})
			require.Error(t, err, "nodes: %v", ns)
			assert.Nil(t, ns)
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

// hangingServer accepts requests and never answers them.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv
}

// TestFromClusterTimeoutMessage: a cluster that does not answer within Timeout gives the "no
// answer within <Timeout>" error, and only then: the message comes from the listing context's
// cause, whatever part of the client gave up first.
func TestFromClusterTimeoutMessage(t *testing.T) {
	tests := []struct {
		name      string
		server    func(t *testing.T) string // URL
		timeout   time.Duration
		wantErr   []string
		unwanted  string
		isTimeout bool
	}{
		{
			name:      "server that accepts and never answers",
			server:    func(t *testing.T) string { return hangingServer(t).URL },
			timeout:   20 * time.Millisecond,
			wantErr:   []string{"listing nodes from http://127.0.0.1:", "no answer within 20ms"},
			isTimeout: true,
		},
		{
			name:      "another timeout value is named as given",
			server:    func(t *testing.T) string { return hangingServer(t).URL },
			timeout:   1500 * time.Microsecond,
			wantErr:   []string{"no answer within 1.5ms"},
			isTimeout: true,
		},
		{
			name:      "timeout over before the first answer could come",
			server:    func(t *testing.T) string { return newFakeAPI(t, "n-1").URL },
			timeout:   time.Nanosecond,
			wantErr:   []string{"listing nodes from http://127.0.0.1:", "no answer within 1ns"},
			isTimeout: true,
		},
		{
			name:     "refused connection: not a timeout",
			server:   func(t *testing.T) string { return "http://" + closedAddr(t) },
			timeout:  time.Hour,
			wantErr:  []string{"listing nodes from http://127.0.0.1:", "connection refused"},
			unwanted: "no answer within",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			url := tt.server(t)
			kc := writeKubeconfig(t, url, url)
			_, err := FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, Timeout: tt.timeout})
			require.Error(t, err)
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
			if tt.unwanted != "" {
				assert.NotContains(t, err.Error(), tt.unwanted)
			}
			assert.Equal(t, tt.isTimeout, errors.Is(err, context.DeadlineExceeded), "wraps the deadline error: %v", err)
		})
	}
}

func TestFromClusterCallerContextCancelled(t *testing.T) {
	isolate(t)
	api := newFakeAPI(t, "n-1")
	kc := writeKubeconfig(t, api.URL, api.URL)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := FromCluster(ctx, ClusterOptions{Kubeconfig: kc, Timeout: 5 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listing nodes from")
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotContains(t, err.Error(), "no answer within", "the caller cancelled; nothing timed out")
	assert.Empty(t, api.seen(), "no request after the caller cancelled")
}

// statusServer answers every request with an API server Status of code and reason (and the
// header fields), and counts the requests.
func statusServer(t *testing.T, code int, reason metav1.StatusReason, message string, header http.Header) (url string, requests func() int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		writeStatus(w, code, reason, message, header)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, message string, header http.Header) {
	for k, vs := range header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: message, Reason: reason, Code: int32(code),
	})
}

// TestFromClusterRefusals: each way the API server can refuse the listing gives a sentence that
// says what happened and what to check, names the server, and keeps the server's own error.
func TestFromClusterRefusals(t *testing.T) {
	tests := []struct {
		name         string
		code         int
		reason       metav1.StatusReason
		message      string
		header       http.Header
		wantErr      []string
		wantRequests int // 0: more than one (retried)
	}{
		{
			name: "401 refused credentials", code: 401, reason: metav1.StatusReasonUnauthorized, message: "Unauthorized",
			wantErr:      []string{"credentials refused (401): check the kubeconfig's user/token", "Unauthorized"},
			wantRequests: 1,
		},
		{
			name: "403 forbidden", code: 403, reason: metav1.StatusReasonForbidden,
			message:      `nodes is forbidden: User "system:serviceaccount:ci:deployer" cannot list resource "nodes" in API group "" at the cluster scope`,
			wantErr:      []string{"forbidden (403): kmm-render needs list on nodes (deploy/kmm-render-rbac.yaml)", `User "system:serviceaccount:ci:deployer" cannot list resource "nodes"`},
			wantRequests: 1,
		},
		{
			// Retry-After: 0 makes client-go's retries run out at once.
			name: "429 every time", code: 429, reason: metav1.StatusReasonTooManyRequests, message: "too many requests, please try again later",
			header:  http.Header{"Retry-After": {"0"}},
			wantErr: []string{"the server answered 429 Too Many Requests, and again on every retry it asked for (Retry-After)", "too many requests"},
		},
		{
			name: "500", code: 500, reason: metav1.StatusReasonInternalError, message: "etcdserver: request timed out",
			wantErr:      []string{"the server returned 500 Internal Server Error", "etcdserver: request timed out"},
			wantRequests: 1,
		},
		{
			name: "503 without Status reason", code: 503, message: "apiserver is shutting down",
			wantErr:      []string{"the server returned 503 Service Unavailable", "apiserver is shutting down"},
			wantRequests: 1,
		},
		{
			name: "410 on the first page", code: 410, reason: metav1.StatusReasonExpired, message: "too old resource version: 1 (42)",
			wantErr:      []string{"the server answered 410 Gone (the list expired)", "too old resource version"},
			wantRequests: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			url, requests := statusServer(t, tt.code, tt.reason, tt.message, tt.header)
			kc := writeKubeconfig(t, url, url)
			ns, err := FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, Timeout: 10 * time.Second})
			require.Error(t, err)
			assert.Nil(t, ns)
			assert.Contains(t, err.Error(), "listing nodes from "+url+": ")
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
			var st apierrors.APIStatus
			require.True(t, errors.As(err, &st), "the server's error is kept: %v", err)
			assert.EqualValues(t, tt.code, st.Status().Code)
			assert.NotContains(t, err.Error(), "no answer within")
			if tt.wantRequests > 0 {
				assert.Equal(t, tt.wantRequests, requests())
			} else {
				assert.Greater(t, requests(), 1, "client-go retried as Retry-After asked")
			}
		})
	}
}

// TestFromClusterRelistFails: a continue token expires between pages, and the full list the
// pager then makes fails too: no node comes back, and the error says both.
func TestFromClusterRelistFails(t *testing.T) {
	isolate(t)
	api := newFakeAPI(t, "n-a", "n-b", "n-c")
	api.expireContinue = true
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		seen = append(seen, q.Get("limit")+"/"+q.Get("continue"))
		mu.Unlock()
		if q.Get("limit") == "" && q.Get("continue") == "" {
			writeStatus(w, 500, metav1.StatusReasonInternalError, "etcd is down", nil)
			return
		}
		api.serve(w, r)
	}))
	t.Cleanup(srv.Close)
	kc := writeKubeconfig(t, srv.URL, srv.URL)
	ns, err := FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, PageSize: 2, Timeout: 10 * time.Second})
	require.Error(t, err)
	assert.Nil(t, ns, "never part of a list")
	for _, s := range []string{
		"listing nodes from " + srv.URL,
		"the continue token expired between pages (410 Expired), and listing every node at once failed",
		"the server returned 500 Internal Server Error", "etcd is down",
	} {
		assert.Contains(t, err.Error(), s)
	}
	assert.True(t, apierrors.IsInternalError(err), "%v", err)
	assert.Equal(t, []string{"2/", "2/2", "/"}, seen, "first page, expired continue, full list")
}

func TestExplainAPIError(t *testing.T) {
	plain := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	assert.Same(t, plain, ExplainAPIError(plain, "list", "nodes"), "not an API status: unchanged")
	notFound := apierrors.NewNotFound(corev1.Resource("nodes"), "n-1")
	assert.Equal(t, error(notFound), ExplainAPIError(notFound, "get", "nodes"), "nothing to add to a 404")

	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "kmm.sigs.x-k8s.io", Resource: "modules"}, "m", errors.New("no RBAC rule"))
	err := ExplainAPIError(fmt.Errorf("reading Module a/m: %w", forbidden), "get", "modules.kmm.sigs.x-k8s.io")
	assert.Equal(t, `forbidden (403): kmm-render needs get on modules.kmm.sigs.x-k8s.io (deploy/kmm-render-rbac.yaml): reading Module a/m: modules.kmm.sigs.x-k8s.io "m" is forbidden: no RBAC rule`, err.Error())
	assert.True(t, apierrors.IsForbidden(err))
}

// TestFromClusterRetriesLostConnection: a connection the server drops before answering is
// retried, as client-go retries a GET, and the list is whole.
func TestFromClusterRetriesLostConnection(t *testing.T) {
	isolate(t)
	defer func(w time.Duration) { connRetryWait = w }(connRetryWait)
	connRetryWait = time.Millisecond
	api := newFakeAPI(t, "n-b", "n-a", "n-c")
	api.protobuf = true
	var mu sync.Mutex
	dropped := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		drop := r.URL.Query().Get("continue") == "2" && dropped < 2
		if drop {
			dropped++
		}
		mu.Unlock()
		if drop {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // no answer at all: the client reads EOF
			}
			return
		}
		api.serve(w, r)
	}))
	t.Cleanup(srv.Close)
	kc := writeKubeconfig(t, srv.URL, srv.URL)
	ns, err := FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, PageSize: 2, Timeout: 10 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, []string{"n-a", "n-b", "n-c"}, names(ns))
	assert.Equal(t, 2, dropped)
	var continues []string
	for _, r := range api.seen() {
		continues = append(continues, r.Continue)
	}
	assert.Equal(t, []string{"", "2"}, continues, "the dropped requests never reached the API")
}
