package drift

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	helmrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kmm.dev/kmm/pkg/nodes"
)

// releaseServer is an API server that holds Helm's release records, in Secrets and in
// ConfigMaps, as Helm's storage drivers write them, and answers what reading them asks: the
// server's version, and lists of Secrets or ConfigMaps by label.
type releaseServer struct {
	*httptest.Server
	secrets    []corev1.Secret
	configMaps []corev1.ConfigMap
	forbidden  bool // every list is refused (403)
}

func newReleaseServer(t *testing.T, ns string, rels ...*helmrelease.Release) *releaseServer {
	t.Helper()
	ctx := context.Background()
	cs := fake.NewClientset()
	secrets := storage.Init(driver.NewSecrets(cs.CoreV1().Secrets(ns)))
	configMaps := storage.Init(driver.NewConfigMaps(cs.CoreV1().ConfigMaps(ns)))
	for _, r := range rels {
		require.NoError(t, secrets.Create(r))
		require.NoError(t, configMaps.Create(r))
	}
	sl, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	cl, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	s := &releaseServer{secrets: sl.Items, configMaps: cl.Items}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var list any
		switch r.URL.Path {
		case "/version":
			list = map[string]string{"major": "1", "minor": "37", "gitVersion": "v1.37.2"}
		case "/api/v1/namespaces/" + ns + "/secrets":
			out := &corev1.SecretList{TypeMeta: metav1.TypeMeta{Kind: "SecretList", APIVersion: "v1"}}
			for _, o := range s.secrets {
				if sel.Matches(labels.Set(o.Labels)) {
					out.Items = append(out.Items, o)
				}
			}
			list = out
		case "/api/v1/namespaces/" + ns + "/configmaps":
			out := &corev1.ConfigMapList{TypeMeta: metav1.TypeMeta{Kind: "ConfigMapList", APIVersion: "v1"}}
			for _, o := range s.configMaps {
				if sel.Matches(labels.Set(o.Labels)) {
					out.Items = append(out.Items, o)
				}
			}
			list = out
		default:
			w.WriteHeader(http.StatusNotFound)
			list = metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound}
		}
		if s.forbidden && r.URL.Path != "/version" {
			w.WriteHeader(http.StatusForbidden)
			list = metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: http.StatusForbidden,
				Reason: metav1.StatusReasonForbidden, Message: `secrets is forbidden: User "system:serviceaccount:x:y" cannot list resource "secrets"`}
		}
		_ = json.NewEncoder(w).Encode(list)
	}))
	t.Cleanup(s.Close)
	return s
}

// kubeconfig writes a kubeconfig with two contexts on server: "main" (the current one, whose
// namespace is ns) and "other" (namespace elsewhere).
func kubeconfig(t *testing.T, server, ns string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: server}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["main"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: ns}
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "elsewhere"}
	cfg.CurrentContext = "main"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, path))
	return path
}

func helmRelease(name, ns string, version int, status helmrelease.Status) *helmrelease.Release {
	return &helmrelease.Release{
		Name: name, Namespace: ns, Version: version,
		Info:     &helmrelease.Info{Status: status},
		Manifest: "---\n# Source: kmm/templates/x.yaml\n# revision " + string(rune('0'+version)) + "\n",
	}
}

func TestReadRelease(t *testing.T) {
	const ns = "kmm-system"
	srv := newReleaseServer(t, ns,
		helmRelease("kmm", ns, 1, helmrelease.StatusSuperseded),
		helmRelease("kmm", ns, 2, helmrelease.StatusDeployed),
		helmRelease("kmm", ns, 3, helmrelease.StatusFailed),
		helmRelease("other", ns, 1, helmrelease.StatusDeployed),
	)
	kc := kubeconfig(t, srv.URL, ns)
	cluster := nodes.ClusterOptions{Kubeconfig: kc, Timeout: 10 * time.Second}
	tests := []struct {
		name string
		o    ReleaseOptions
		env  map[string]string
		// want is the revision read; 0 means an error that contains wantErr.
		want    int
		wantErr []string
	}{
		{name: "the last revision, as helm get manifest reads it", o: ReleaseOptions{Name: "kmm", Namespace: ns, Cluster: cluster}, want: 3},
		{name: "another release", o: ReleaseOptions{Name: "other", Namespace: ns, Cluster: cluster}, want: 1},
		{name: "ConfigMaps driver", o: ReleaseOptions{Name: "kmm", Namespace: ns, Cluster: cluster, Driver: "configmap"}, want: 3},
		{name: "$HELM_DRIVER", o: ReleaseOptions{Name: "kmm", Namespace: ns, Cluster: cluster}, env: map[string]string{"HELM_DRIVER": "configmaps"}, want: 3},
		{name: "namespace from the kubeconfig context", o: ReleaseOptions{Name: "kmm", Cluster: cluster}, want: 3},
		{name: "$HELM_NAMESPACE before the context's", o: ReleaseOptions{Name: "kmm", Cluster: cluster}, env: map[string]string{"HELM_NAMESPACE": ns}, want: 3},
		{
			name: "$HELM_KUBECONTEXT", o: ReleaseOptions{Name: "kmm", Cluster: cluster}, env: map[string]string{"HELM_KUBECONTEXT": "other"},
			wantErr: []string{"reading release kmm in namespace elsewhere: "},
		},
		{
			name: "not found", o: ReleaseOptions{Name: "nope", Namespace: ns, Cluster: cluster},
			wantErr: []string{"reading release nope in namespace kmm-system: release: not found"},
		},
		{
			name: "memory driver: empty", o: ReleaseOptions{Name: "kmm", Namespace: ns, Cluster: cluster, Driver: "memory"},
			wantErr: []string{"reading release kmm in namespace kmm-system: release: not found"},
		},
		{
			name: "unknown driver", o: ReleaseOptions{Name: "kmm", Namespace: ns, Cluster: cluster, Driver: "etcd"},
			wantErr: []string{`reaching the release storage of namespace kmm-system: unknown driver "etcd"`},
		},
		{
			name: "invalid release name", o: ReleaseOptions{Name: "Not_A_Name", Namespace: ns, Cluster: cluster},
			wantErr: []string{"releaseContent: Release name is invalid: Not_A_Name"},
		},
		{
			name: "unreachable", o: ReleaseOptions{Name: "kmm", Namespace: ns, Cluster: nodes.ClusterOptions{Kubeconfig: kubeconfig(t, "http://127.0.0.1:1", ns)}},
			wantErr: []string{"reading release kmm in namespace kmm-system: Kubernetes cluster unreachable: "},
		},
		{
			name: "missing kubeconfig", o: ReleaseOptions{Name: "kmm", Namespace: ns, Cluster: nodes.ClusterOptions{Kubeconfig: filepath.Join(t.TempDir(), "none")}},
			wantErr: []string{"Kubernetes cluster unreachable: ", "none"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"HELM_DRIVER", "HELM_NAMESPACE", "HELM_KUBECONTEXT"} {
				t.Setenv(k, tt.env[k])
			}
			rel, err := ReadRelease(context.Background(), tt.o)
			if tt.want == 0 {
				require.Error(t, err)
				for _, w := range tt.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.o.Name, rel.Name)
			assert.Equal(t, ns, rel.Namespace)
			assert.Equal(t, tt.want, rel.Revision)
			assert.True(t, strings.HasSuffix(rel.Manifest, "# revision "+string(rune('0'+tt.want))+"\n"), rel.Manifest)
		})
	}
}

func TestReadReleaseForbidden(t *testing.T) {
	const ns = "kmm-system"
	srv := newReleaseServer(t, ns, helmRelease("kmm", ns, 1, helmrelease.StatusDeployed))
	srv.forbidden = true
	_, err := ReadRelease(context.Background(), ReleaseOptions{Name: "kmm", Namespace: ns, Cluster: nodes.ClusterOptions{Kubeconfig: kubeconfig(t, srv.URL, ns)}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reading release kmm in namespace kmm-system: forbidden (403): kmm-render needs list on secrets (Helm's release storage) in namespace kmm-system")
	assert.Contains(t, err.Error(), "query: failed to query with labels")
}

func TestReadReleaseCancelled(t *testing.T) {
	const ns = "kmm-system"
	srv := newReleaseServer(t, ns, helmRelease("kmm", ns, 1, helmrelease.StatusDeployed))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := ReadRelease(ctx, ReleaseOptions{Name: "kmm", Namespace: ns, Cluster: nodes.ClusterOptions{Kubeconfig: kubeconfig(t, srv.URL, ns)}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "reading release kmm in namespace kmm-system: context canceled", err.Error())
}
