package drift

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
	helmrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kustomize/kyaml/kio"

	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/nodes"
)

// ReleaseOptions say which release to read and how to reach its cluster.
type ReleaseOptions struct {
	// Name is the release name.
	Name string
	// Namespace is the release namespace. Empty: $HELM_NAMESPACE, then the kubeconfig
	// context's namespace, then "default" (Helm's order).
	Namespace string
	// Cluster says how to reach the cluster (kubeconfig, context, timeout).
	Cluster nodes.ClusterOptions
	// Driver is Helm's storage driver: secret (Helm's default), configmap or sql. Empty:
	// $HELM_DRIVER, then secret.
	Driver string
}

// Release is the deployed release as `helm get manifest` reads it.
type Release struct {
	Name, Namespace string
	Revision        int
	Manifest        string
}

// ReadRelease reads the deployed release through Helm's own storage packages, read only: the
// release's last revision, as `helm get manifest` (action.Get) picks it.
//
// It does what action.Configuration.Init and action.Get do, without package action, which
// links kubectl, cli-runtime and the registry clients into every kmm-render start
// (docs/benchmarks.md): the kubeconfig loaded as Helm's flags load it, the storage driver
// chosen as Init chooses it, the cluster's reachability checked first, then the release read.
func ReadRelease(ctx context.Context, o ReleaseOptions) (*Release, error) {
	timeout := o.Cluster.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	kubeconfig := helmKubeconfig(o.Cluster, timeout)
	ns := o.Namespace
	if ns == "" {
		ns = os.Getenv("HELM_NAMESPACE")
	}
	if ns == "" {
		if cfgNS, _, err := kubeconfig.Namespace(); err == nil && cfgNS != "" {
			ns = cfgNS
		} else {
			ns = "default"
		}
	}
	driverName := o.Driver
	if driverName == "" {
		driverName = os.Getenv("HELM_DRIVER")
	}
	open, err := releaseStorage(driverName, ns)
	if err != nil {
		return nil, fmt.Errorf("reaching the release storage of namespace %s: %w", ns, err)
	}
	rel, err := readRelease(ctx, kubeconfig, open, o.Name)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up: say so rather than how the request ended.
			err = ctx.Err()
		} else {
			err = nodes.ExplainAPIError(err, "list", "secrets (Helm's release storage) in namespace "+ns)
		}
		return nil, fmt.Errorf("reading release %s in namespace %s: %w", o.Name, ns, err)
	}
	return &Release{Name: rel.Name, Namespace: rel.Namespace, Revision: rel.Version, Manifest: rel.Manifest}, nil
}

// helmKubeconfig loads the kubeconfig as Helm's flags (cli-runtime's ConfigFlags) do: the
// loading rules with client-go's defaults (in-cluster, then $KUBERNETES_MASTER or
// localhost:8080), the context (o.Context, else $HELM_KUBECONTEXT, else the current one) and
// timeout as each request's.
func helmKubeconfig(o nodes.ClusterOptions, timeout time.Duration) clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.DefaultClientConfig = &clientcmd.DefaultClientConfig
	rules.ExplicitPath = o.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{ClusterDefaults: clientcmd.ClusterDefaults, Timeout: timeout.String()}
	overrides.CurrentContext = o.Context
	if overrides.CurrentContext == "" {
		overrides.CurrentContext = os.Getenv("HELM_KUBECONTEXT")
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// openStorage opens Helm's release storage over a clientset of the release's cluster.
type openStorage func(ctx context.Context, cs kubernetes.Interface) *storage.Storage

// releaseStorage chooses Helm's release storage as action.Configuration.Init does, by the
// driver's name (Init's names and errors); the SQL driver connects here, as Init's does. The
// Secrets and ConfigMaps drivers read through ctx: Helm's own calls use context.Background.
func releaseStorage(driverName, ns string) (openStorage, error) {
	nop := func(string, ...any) {}
	switch driverName {
	case "secret", "secrets", "":
		return func(ctx context.Context, cs kubernetes.Interface) *storage.Storage {
			d := driver.NewSecrets(secretsWithContext{cs.CoreV1().Secrets(ns), ctx})
			d.Log = nop
			return storage.Init(d)
		}, nil
	case "configmap", "configmaps":
		return func(ctx context.Context, cs kubernetes.Interface) *storage.Storage {
			d := driver.NewConfigMaps(configMapsWithContext{cs.CoreV1().ConfigMaps(ns), ctx})
			d.Log = nop
			return storage.Init(d)
		}, nil
	case "memory":
		// A new memory store is empty: every release is not found, as with helm.
		return func(context.Context, kubernetes.Interface) *storage.Storage {
			d := driver.NewMemory()
			d.SetNamespace(ns)
			return storage.Init(d)
		}, nil
	case "sql":
		d, err := driver.NewSQL(os.Getenv("HELM_DRIVER_SQL_CONNECTION_STRING"), nop, ns)
		if err != nil {
			return nil, fmt.Errorf("unable to instantiate SQL driver: %w", err)
		}
		return func(context.Context, kubernetes.Interface) *storage.Storage { return storage.Init(d) }, nil
	}
	return nil, fmt.Errorf("unknown driver %q", driverName)
}

// readRelease is action.Get.Run for the last revision: the cluster checked as
// kube.Client.IsReachable does (a clientset, then the server's version), the release name
// checked, then the release's last revision read from the storage. Its errors are Helm's, words
// and capitals included, so that kmm-render drift says what helm get would.
func readRelease(ctx context.Context, kubeconfig clientcmd.ClientConfig, open openStorage, name string) (*helmrelease.Release, error) {
	cfg, err := kubeconfig.ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		// Helm says only this, for want of a kubeconfig.
		return nil, errors.New("Kubernetes cluster unreachable")
	}
	if err != nil {
		return nil, fmt.Errorf("Kubernetes cluster unreachable: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("Kubernetes cluster unreachable: %w", err)
	}
	return lastRevision(ctx, cs, open, name)
}

// lastRevision checks that cs's cluster answers, then reads release name's last revision
// through the storage open gives, with Helm's errors ("release: not found").
func lastRevision(ctx context.Context, cs kubernetes.Interface, open openStorage, name string) (*helmrelease.Release, error) {
	if _, err := discovery.ToServerVersionInterfaceWithContext(cs.Discovery()).ServerVersionWithContext(ctx); err != nil {
		return nil, fmt.Errorf("Kubernetes cluster unreachable: %w", err)
	}
	if err := chartutil.ValidateReleaseName(name); err != nil {
		return nil, fmt.Errorf("releaseContent: Release name is invalid: %s", name)
	}
	return open(ctx, cs).Last(name)
}

// secretsWithContext and configMapsWithContext make the storage drivers' reads (List and Get,
// all that reading a release does) use ctx; every other call goes to the client as it is.
type secretsWithContext struct {
	typedcorev1.SecretInterface
	ctx context.Context
}

func (s secretsWithContext) Get(_ context.Context, name string, o metav1.GetOptions) (*corev1.Secret, error) {
	return s.SecretInterface.Get(s.ctx, name, o)
}

func (s secretsWithContext) List(_ context.Context, o metav1.ListOptions) (*corev1.SecretList, error) {
	return s.SecretInterface.List(s.ctx, o)
}

type configMapsWithContext struct {
	typedcorev1.ConfigMapInterface
	ctx context.Context
}

func (c configMapsWithContext) Get(_ context.Context, name string, o metav1.GetOptions) (*corev1.ConfigMap, error) {
	return c.ConfigMapInterface.Get(c.ctx, name, o)
}

func (c configMapsWithContext) List(_ context.Context, o metav1.ListOptions) (*corev1.ConfigMapList, error) {
	return c.ConfigMapInterface.List(c.ctx, o)
}

// EventReason is the reason of the Events RecordEvents writes.
const EventReason = "KernelDrift"

// RecordEvents writes a Warning Event for each missing pair on one of the module's loader
// DaemonSets in the release (the module's first, by name), or on the release's module list when
// the module has none: where `kubectl describe` and event exporters see it. It returns the number
// of Events written.
func RecordEvents(ctx context.Context, cs kubernetes.Interface, rel *Release, r *Report, now time.Time) (int, error) {
	docs, err := kio.FromBytes([]byte(rel.Manifest))
	if err != nil {
		return 0, err
	}
	type object struct{ kind, apiVersion, namespace, name string }
	var list *object
	loaders := map[string]*object{}
	for _, d := range docs {
		if _, ok := d.GetAnnotations()[contract.AnnotationModules]; ok {
			list = &object{"ConfigMap", "v1", d.GetNamespace(), d.GetName()}
			continue
		}
		l := d.GetLabels()
		if d.GetKind() != "DaemonSet" || l[contract.LabelRole] != contract.RoleModuleLoader {
			continue
		}
		id := l[contract.LabelModuleNamespace] + "/" + l[contract.LabelModuleName]
		if prev, ok := loaders[id]; !ok || d.GetName() < prev.name {
			loaders[id] = &object{"DaemonSet", "apps/v1", d.GetNamespace(), d.GetName()}
		}
	}
	n := 0
	var errs []error
	for _, p := range r.Missing {
		o := loaders[p.Module]
		if o == nil {
			o = list
		}
		if o == nil {
			continue
		}
		ev := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{GenerateName: o.name + ".kernel-drift.", Namespace: o.namespace},
			InvolvedObject: corev1.ObjectReference{Kind: o.kind, APIVersion: o.apiVersion, Namespace: o.namespace, Name: o.name},
			Reason:         EventReason,
			Type:           corev1.EventTypeWarning,
			Message: fmt.Sprintf("module %s: node(s) %v run kernel %s, which release %s (revision %d) has no loader for: run helm upgrade",
				p.Module, p.Nodes, p.Kernel, rel.Name, rel.Revision),
			Source:         corev1.EventSource{Component: "kmm-render-drift"},
			FirstTimestamp: metav1.NewTime(now),
			LastTimestamp:  metav1.NewTime(now),
			Count:          1,
		}
		if _, err := cs.CoreV1().Events(o.namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("recording an Event on %s %s/%s: %w", o.kind, o.namespace, o.name,
				nodes.ExplainAPIError(err, "create", "events in namespace "+o.namespace)))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
