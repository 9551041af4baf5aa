package localcluster

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// CertManagerCRDs stands in for cert-manager: the CRDs of Certificate, Issuer and ClusterIssuer
// (cert-manager.io/v1) without schema or controllers, so that the API server accepts the
// cert-manager objects a chart renders. Nothing issues certificates; kwok's pods need none.
//
//go:embed cert-manager-crds.yaml
var CertManagerCRDs []byte

// InstallCertManagerCRDs creates CertManagerCRDs and waits until the API server serves them.
func (c *Cluster) InstallCertManagerCRDs(ctx context.Context) error {
	if err := c.CreateObjects(ctx, CertManagerCRDs); err != nil {
		return err
	}
	return c.poll(ctx, 30*time.Second, "cert-manager.io/v1 to be served", func(ctx context.Context) (bool, error) {
		rl, err := c.Client.Discovery().ServerResourcesForGroupVersion("cert-manager.io/v1")
		if err != nil {
			return false, nil
		}
		kinds := map[string]bool{}
		for _, r := range rl.APIResources {
			if !strings.Contains(r.Name, "/") { // not a subresource
				kinds[r.Kind] = true
			}
		}
		return kinds["Certificate"] && kinds["Issuer"] && kinds["ClusterIssuer"], nil
	})
}

// CreateObjects creates the objects of a YAML (or JSON) stream, in order, leaving any that
// already exists as it is. An object whose kind the API server does not serve yet (the CRD
// earlier in the stream is not established) is retried for up to 30 s.
func (c *Cluster) CreateObjects(ctx context.Context, manifests []byte) error {
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for doc := 1; ; doc++ {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("document %d: %w", doc, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		what := fmt.Sprintf("%s %s", gvk.Kind, obj.GetName())
		err := c.poll(ctx, 30*time.Second, "the API server to serve "+gvk.String(), func(ctx context.Context) (bool, error) {
			groups, err := restmapper.GetAPIGroupResources(c.Client.Discovery())
			if err != nil {
				return false, err
			}
			mapping, err := restmapper.NewDiscoveryRESTMapper(groups).RESTMapping(gvk.GroupKind(), gvk.Version)
			if meta.IsNoMatchError(err) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			ri := dyn.Resource(mapping.Resource)
			var r dynamic.ResourceInterface = ri
			if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
				ns := obj.GetNamespace()
				if ns == "" {
					ns = metav1.NamespaceDefault
				}
				r = ri.Namespace(ns)
			}
			_, err = r.Create(ctx, &obj, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return true, nil
			}
			return err == nil, err
		})
		if err != nil {
			return fmt.Errorf("creating %s: %w", what, err)
		}
	}
}
