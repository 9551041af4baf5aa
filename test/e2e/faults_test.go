package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kmm.dev/kmm/internal/faultproxy"
	"kmm.dev/kmm/pkg/contract"
)

// faultPageSize is the page size the fault proxy lowers kmm-render's node list pages to (from
// 500), so that the real API server hands out a continue token for the example's few nodes.
const faultPageSize = 2

// TestClusterFaults: kmm-render against a real API server that misbehaves, through
// internal/faultproxy (hangs, 500, 429 with Retry-After, a continue token expiring mid-list) or
// directly (refused and revoked credentials). Where the cluster cannot give the whole node list,
// kmm-render fails within its --timeout, names the API server and what happened, exits non-zero
// and prints nothing on stdout, and helm install (Helm 3 and Helm 4) aborts with nothing
// applied. Where client-go's pager recovers (the continue token expired, the full list
// succeeded), the output is byte-identical to a render without faults: never half a list.
func TestClusterFaults(t *testing.T) {
	ex := loadExample(t, "gke")
	ctx := testContext(t, 10*time.Minute)
	useExample(t, ctx, ex)
	manifests := rawManifests(t, ctx, ex)

	// What a render from the whole node list is; and the precondition that a render from the
	// first page alone would differ, so that comparing with it can catch half a list.
	baseline := renderBinaryOK(t, ctx, manifests, "--kubeconfig", kc.Kubeconfig)
	checkLoaders(t, baseline, ex)
	byName := slices.Clone(ex.nodes)
	sort.Slice(byName, func(i, j int) bool { return byName[i].Name < byName[j].Name })
	firstPage := expected(ex.helmModules(), byName[:faultPageSize])
	all := expected(ex.helmModules(), ex.nodes)
	same := true
	for _, m := range ex.helmModules() {
		same = same && slices.Equal(kernelsOf(firstPage[m.ID()]), kernelsOf(all[m.ID()]))
	}
	if same {
		t.Fatalf("examples/%s: its first %d nodes by name give the same loaders as all its nodes; the test could not tell half a list", ex.name, faultPageSize)
	}

	p, err := faultproxy.Start(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("closing the fault proxy: %v", err)
		}
	})
	proxied := filepath.Join(t.TempDir(), "faultproxy.kubeconfig")
	if err := p.WriteKubeconfig(proxied); err != nil {
		t.Fatal(err)
	}

	t.Run("no fault: the proxy is faithful", func(t *testing.T) {
		p.Reset()
		got := renderBinaryOK(t, ctx, manifests, "--kubeconfig", proxied)
		if !bytes.Equal(baseline, got) {
			t.Errorf("through the proxy without fault, kmm-render renders differently:\n%s", lineDiff(string(baseline), string(got)))
		}
		if n := countFault(p, "pass", 200); n == 0 {
			t.Errorf("no node list went through the proxy: %+v", p.Requests())
		}
	})

	t.Run("continue token expires, the full relist succeeds", func(t *testing.T) {
		p.Reset()
		p.Set(faultproxy.NodeList, faultproxy.ExpireContinue(faultPageSize, faultproxy.Pass))
		got := renderBinaryOK(t, ctx, manifests, "--kubeconfig", proxied)
		if !bytes.Equal(baseline, got) {
			t.Errorf("after an expired continue token kmm-render renders differently from the full list:\n%s", lineDiff(string(baseline), string(got)))
		}
		checkExpired(t, p, "relist: pass", 200)

		// Through helm too, template rendering with the proxy and without must agree.
		for _, version := range []int{3, 4} {
			tmpl := func(kubeconfig string) string {
				return helm(t, ctx, version, "template", release, chartDir, "-n", releaseNamespace, "-f", ex.values,
					"--set", "certManager.enabled=true", "--post-renderer", postRendererFor(version),
					"--post-renderer-args=--kubeconfig", "--post-renderer-args="+kubeconfig)
			}
			direct := tmpl(kc.Kubeconfig)
			p.Reset()
			p.Set(faultproxy.NodeList, faultproxy.ExpireContinue(faultPageSize, faultproxy.Pass))
			if got := tmpl(proxied); got != direct {
				t.Errorf("helm%d template after an expired continue token differs from one without faults:\n%s", version, lineDiff(direct, got))
			}
			checkExpired(t, p, "relist: pass", 200)
		}
	})

	// The revoked token: a ServiceAccount's token that worked, then its ServiceAccount deleted.
	// The API server answers it 401 Unauthorized, as it answers an expired token (it says no
	// more to the client); a TokenRequest cannot make a token expire sooner than 10 minutes, so
	// revocation stands in for expiry.
	role := applyRBAC(t, ctx)
	const revokedSA = "kmm-render-e2e-revoked"
	revoked := newServiceAccount(t, ctx, revokedSA)
	bindClusterRole(t, ctx, revokedSA, role.Name)
	waitAllowed(t, ctx, exampleSANamespace, revokedSA, role.Rules)
	if got := renderBinaryOK(t, ctx, manifests, "--kubeconfig", revoked); !bytes.Equal(baseline, got) {
		t.Fatalf("the token renders differently before it is revoked:\n%s", lineDiff(string(baseline), string(got)))
	}
	if err := kc.Client.CoreV1().ServiceAccounts(exampleSANamespace).Delete(ctx, revokedSA, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUnauthorized(t, ctx, revoked)
	refused := badTokenKubeconfig(t)
	host := serverURL(t, kc.Kubeconfig)

	cases := []struct {
		name   string
		fault  faultproxy.Fault // through the proxy; else kubeconfig talks to the API server
		kc     string
		args   []string
		says   []string
		checks func(t *testing.T)
	}{
		{
			name: "accepts and never answers", fault: faultproxy.Hang(), kc: proxied, args: []string{"--timeout", "3s"},
			says:   []string{"listing nodes from " + p.URL, "no answer within 3s"},
			checks: func(t *testing.T) { expectFault(t, p, "hang", 0, 1) },
		},
		{
			name: "answers 500", fault: faultproxy.ServerError(), kc: proxied,
			says:   []string{"listing nodes from " + p.URL, "the server returned 500 Internal Server Error", "faultproxy: injected internal error"},
			checks: func(t *testing.T) { expectFault(t, p, "500", 500, 1) },
		},
		{
			// Always 429 with Retry-After: 1, so client-go's retries (10, a second apart) run
			// out well within kmm-render's default 30 s --timeout.
			name: "answers 429 with Retry-After, always", fault: faultproxy.Throttle(1), kc: proxied,
			says:   []string{"listing nodes from " + p.URL, "the server answered 429 Too Many Requests, and again on every retry it asked for (Retry-After)"},
			checks: func(t *testing.T) { expectFault(t, p, "429", 429, 2) },
		},
		{
			name: "continue token expires, the full relist fails too", fault: faultproxy.ExpireContinue(faultPageSize, faultproxy.ServerError()), kc: proxied,
			says: []string{"listing nodes from " + p.URL,
				"the continue token expired between pages (410 Expired), and listing every node at once failed",
				"the server returned 500 Internal Server Error"},
			checks: func(t *testing.T) { checkExpired(t, p, "relist: 500", 500) },
		},
		{
			name: "credentials refused (401)", kc: refused,
			says: []string{"listing nodes from " + host, "credentials refused (401): check the kubeconfig's user/token", "Unauthorized"},
		},
		{
			name: "revoked token (401)", kc: revoked,
			says: []string{"listing nodes from " + host, "credentials refused (401): check the kubeconfig's user/token", "Unauthorized"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--kubeconfig", tc.kc}, tc.args...)
			setFault := func() {
				p.Reset()
				if tc.kc == proxied {
					p.Set(faultproxy.NodeList, tc.fault)
				}
			}
			setFault()
			stdout, stderr, err := renderBinary(ctx, manifests, args...)
			expectRenderRefused(t, stdout, stderr, err, tc.says)
			if tc.checks != nil {
				tc.checks(t)
			}
			for _, version := range []int{3, 4} {
				t.Run(fmt.Sprintf("helm%d install", version), func(t *testing.T) {
					setFault()
					expectInstallRefused(t, ctx, version, ex.values, args, tc.says)
					if tc.checks != nil {
						tc.checks(t)
					}
				})
			}
		})
	}
}

// countFault counts the node list requests the proxy answered under fault with code.
func countFault(p *faultproxy.Proxy, fault string, code int) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Path == "/api/v1/nodes" && r.Fault == fault && r.Code == code {
			n++
		}
	}
	return n
}

// expectFault: the proxy answered at least min node list requests under fault with code, and
// every node list request it saw met the fault.
func expectFault(t *testing.T, p *faultproxy.Proxy, fault string, code, min int) {
	t.Helper()
	// A hanging request is recorded once its handler returns, just after the client left.
	_ = poll(context.Background(), 10*time.Second, func() (bool, error) { return countFault(p, fault, code) >= min, nil })
	if n := countFault(p, fault, code); n < min {
		t.Errorf("the proxy answered %d node list request(s) with %s/%d; want at least %d: %+v", n, fault, code, min, p.Requests())
	}
	for _, r := range p.Requests() {
		if r.Path == "/api/v1/nodes" && r.Fault != fault {
			t.Errorf("a node list request escaped the fault %s: %+v", fault, r)
		}
	}
}

// checkExpired: the node list went as the ExpireContinue fault makes it go: a first page of
// faultPageSize, a 410 for its continue token, then one full list, answered code.
func checkExpired(t *testing.T, p *faultproxy.Proxy, relist string, code int) {
	t.Helper()
	var got []string
	for _, r := range p.Requests() {
		if r.Path == "/api/v1/nodes" {
			got = append(got, fmt.Sprintf("%s -> %d", r.Action, r.Code))
		}
	}
	want := []string{
		fmt.Sprintf("limit 500 lowered to %d -> 200", faultPageSize),
		"410 expired continue -> 410",
		fmt.Sprintf("%s -> %d", relist, code),
	}
	if !slices.Equal(got, want) {
		t.Errorf("node list requests through the proxy:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// waitUnauthorized waits until the API server refuses the kubeconfig's credentials: it caches a
// token's successful authentication for a while (10 s by default), so a token whose
// ServiceAccount was just deleted may still pass for that long.
func waitUnauthorized(t *testing.T, ctx context.Context, kubeconfig string) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var last error
	err = poll(ctx, 60*time.Second, func() (bool, error) {
		_, last = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
		return apierrors.IsUnauthorized(last), nil
	})
	if err != nil {
		t.Fatalf("the API server still accepts the revoked token: %v (last answer: %v)", err, last)
	}
}

// serverURL is the API server address of the kubeconfig's current context.
func serverURL(t *testing.T, kubeconfig string) string {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Host
}

// badTokenKubeconfig is the admin kubeconfig with its user replaced by a token the API server
// never issued.
func badTokenKubeconfig(t *testing.T) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kc.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		*ai = *ai.DeepCopy()
		ai.ClientCertificate, ai.ClientCertificateData, ai.ClientKey, ai.ClientKeyData = "", nil, "", nil
		ai.Token = "not-a-token-this-cluster-issued"
	}
	path := filepath.Join(t.TempDir(), "refused.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkLoaders: out (kmm-render's output) holds, for each of the example's helm-managed modules,
// loader DaemonSets for exactly the kernels its nodes need, all expanded.
func checkLoaders(t *testing.T, out []byte, ex *example) {
	t.Helper()
	got := map[string][]string{} // module name -> kernels of its rendered loaders
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name        string            `json:"name"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("kmm-render output: %v", err)
		}
		if obj.Kind != "DaemonSet" || obj.Metadata.Labels[contract.LabelRole] != contract.RoleModuleLoader {
			continue
		}
		if _, unexpanded := obj.Metadata.Annotations[contract.AnnotationExpand]; unexpanded {
			t.Errorf("DaemonSet %s is an unexpanded loader template", obj.Metadata.Name)
		}
		mod := obj.Metadata.Labels[contract.LabelModuleName]
		got[mod] = append(got[mod], obj.Metadata.Annotations[contract.AnnotationKernel])
	}
	want := expected(ex.helmModules(), ex.nodes)
	for _, m := range ex.helmModules() {
		g := got[m.Name]
		sort.Strings(g)
		if w := kernelsOf(want[m.ID()]); !slices.Equal(g, w) {
			t.Errorf("module %s: kmm-render rendered loaders for kernels %v, want %v", m.ID(), g, w)
		}
	}
}
