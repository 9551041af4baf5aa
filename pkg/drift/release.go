package drift

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"helm.sh/helm/v3/pkg/action"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
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

// ReadRelease reads the deployed release through Helm's own packages and storage, read only.
func ReadRelease(ctx context.Context, o ReleaseOptions) (*Release, error) {
	flags := genericclioptions.NewConfigFlags(false)
	if o.Cluster.Kubeconfig != "" {
		flags.KubeConfig = &o.Cluster.Kubeconfig
	}
	kubeContext := o.Cluster.Context
	if kubeContext == "" {
		kubeContext = os.Getenv("HELM_KUBECONTEXT")
	}
	if kubeContext != "" {
		flags.Context = &kubeContext
	}
	timeout := o.Cluster.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	t := timeout.String()
	flags.Timeout = &t
	ns := o.Namespace
	if ns == "" {
		ns = os.Getenv("HELM_NAMESPACE")
	}
	if ns == "" {
		if cfgNS, _, err := flags.ToRawKubeConfigLoader().Namespace(); err == nil && cfgNS != "" {
			ns = cfgNS
		} else {
			ns = "default"
		}
	}
	flags.Namespace = &ns
	driver := o.Driver
	if driver == "" {
		driver = os.Getenv("HELM_DRIVER")
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, ns, driver, func(string, ...any) {}); err != nil {
		return nil, fmt.Errorf("reaching the release storage of namespace %s: %w", ns, err)
	}
	type result struct {
		rel *Release
		err error
	}
	done := make(chan result, 1)
	go func() {
		rel, err := action.NewGet(cfg).Run(o.Name)
		if err != nil {
			done <- result{err: nodes.ExplainAPIError(err, "list", "secrets (Helm's release storage) in namespace "+ns)}
			return
		}
		done <- result{rel: &Release{Name: rel.Name, Namespace: rel.Namespace, Revision: rel.Version, Manifest: rel.Manifest}}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("reading release %s in namespace %s: %w", o.Name, ns, r.err)
		}
		return r.rel, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("reading release %s in namespace %s: %w", o.Name, ns, ctx.Err())
	}
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
