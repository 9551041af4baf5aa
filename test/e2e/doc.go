// Package e2e runs the kmm chart and kmm-render against a real local control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok nodes from the examples'
// node snapshots; see kmm.dev/kmm/internal/localcluster), through Helm 3 and Helm 4.
//
// The tests need the binaries `make tools` builds into bin/assets (or $KUBEBUILDER_ASSETS); they
// fail, not skip, without them. One control plane serves the whole package.
//
//	go test ./test/e2e -count=1 -v
package e2e
