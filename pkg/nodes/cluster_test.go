package nodes

import (
	"context"
	"encoding/json"
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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeAPI serves GET /api/v1/nodes from a fixed node list, paginated like the API server:
// ?limit=N&continue=<offset>.
type fakeAPI struct {
	*httptest.Server
	nodes []corev1.Node

	mu       sync.Mutex
	requests []apiRequest
}

type apiRequest struct {
	Limit, Continue, UserAgent, Auth string
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
	f.requests = append(f.requests, apiRequest{Limit: q.Get("limit"), Continue: q.Get("continue"), UserAgent: r.UserAgent(), Auth: r.Header.Get("Authorization")})
	f.mu.Unlock()

	start := 0
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
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			api := newFakeAPI(t, tt.nodes...)
			kc := writeKubeconfig(t, api.URL, "http://"+closedAddr(t))
			ns, err := FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, PageSize: tt.pageSize, Timeout: 10 * time.Second})
			require.NoError(t, err)

			want := append([]string{}, tt.nodes...)
			sortStrings(want)
			assert.Equal(t, want, names(ns), "every page read, sorted by name")
			for _, n := range ns {
				assert.NotEmpty(t, n.Kernel)
				assert.Equal(t, "linux", n.Labels["kubernetes.io/os"])
			}

			reqs := api.seen()
			var continues []string
			for _, r := range reqs {
				continues = append(continues, r.Continue)
				assert.Equal(t, tt.wantLimit, r.Limit)
				assert.Equal(t, "kmm-render", r.UserAgent)
			}
			assert.Equal(t, tt.wantContinues, continues)
		})
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
		maxTime time.Duration
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
			wantErr: []string{"listing nodes from http://127.0.0.1:"},
			maxTime: 5*time.Second + 2*time.Second,
		},
		{
			name: "server that hangs: error within the timeout",
			setup: func(t *testing.T) string {
				srv := hangingServer(t)
				return writeKubeconfig(t, srv.URL, srv.URL)
			},
			timeout: 500 * time.Millisecond,
			wantErr: []string{"listing nodes from " + "http://127.0.0.1:"},
			maxTime: 500*time.Millisecond + time.Second,
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
			start := time.Now()
			ns, err := FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, Timeout: tt.timeout})
			elapsed := time.Since(start)
			require.Error(t, err, "nodes: %v", ns)
			assert.Nil(t, ns)
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
			if tt.maxTime > 0 {
				assert.Less(t, elapsed, tt.maxTime, "took %s", elapsed)
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

// FromCluster promises a "no answer within <Timeout>" error when the cluster does not answer.
// Whether it keeps that promise depends on a race (see the report), so the test makes many
// attempts: rounds of concurrent listings against a server that never answers.
func TestFromClusterTimeoutMessage(t *testing.T) {
	isolate(t)
	srv := hangingServer(t)
	kc := writeKubeconfig(t, srv.URL, srv.URL)
	const (
		rounds   = 8
		parallel = 20
		timeout  = 100 * time.Millisecond
	)
	bad := 0
	for round := 0; round < rounds; round++ {
		errs := make([]error, parallel)
		took := make([]time.Duration, parallel)
		var wg sync.WaitGroup
		for i := 0; i < parallel; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				start := time.Now()
				_, errs[i] = FromCluster(context.Background(), ClusterOptions{Kubeconfig: kc, Timeout: timeout})
				took[i] = time.Since(start)
			}(i)
		}
		wg.Wait()
		for i, err := range errs {
			require.Error(t, err)
			assert.Less(t, took[i], timeout+time.Second)
			if !strings.Contains(err.Error(), "no answer within 100ms") {
				bad++
				if bad == 1 {
					t.Errorf("round %d, attempt %d: timeout error without \"no answer within 100ms\": %v", round, i, err)
				}
			}
		}
	}
	assert.Zero(t, bad, "%d of %d timed-out listings lack the timeout message", bad, rounds*parallel)
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
}
