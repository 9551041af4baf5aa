package postrender

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/nodes"
)

// ModuleLookup returns the KMM Module the cluster holds under namespace/name, or nil when it
// holds none. kmm-render uses it to apply KMM's rule on updates (module.ValidateUpdate).
type ModuleLookup func(ctx context.Context, namespace, name string) (*kmmv1beta1.Module, error)

var moduleGVR = schema.GroupVersionResource{Group: KMMGroup, Version: "v1beta1", Resource: "modules"}

// ClusterModules looks Modules up in the cluster o names. It only reads; a cluster that does not
// serve the Module API yet holds no Module.
func ClusterModules(o nodes.ClusterOptions) ModuleLookup {
	return func(ctx context.Context, namespace, name string) (*kmmv1beta1.Module, error) {
		cfg, err := nodes.RESTConfig(o)
		if err != nil {
			return nil, err
		}
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
		}
		timeout := o.Timeout
		if timeout == 0 {
			timeout = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		u, err := dyn.Resource(moduleGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading Module %s/%s from %s: %w", namespace, name, cfg.Host, nodes.ExplainAPIError(err, "get", "modules.kmm.sigs.x-k8s.io"))
		}
		b, err := u.MarshalJSON()
		if err != nil {
			return nil, err
		}
		var m kmmv1beta1.Module
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("Module %s/%s in the cluster: %w", namespace, name, err)
		}
		return &m, nil
	}
}
