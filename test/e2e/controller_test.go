package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var (
	crdGVR    = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	moduleGVR = schema.GroupVersionResource{Group: "kmm.sigs.x-k8s.io", Version: "v1beta1", Resource: "modules"}
	kmmCRDs   = []string{
		"modules.kmm.sigs.x-k8s.io", "nodemodulesconfigs.kmm.sigs.x-k8s.io", "moduleimagesconfigs.kmm.sigs.x-k8s.io",
		"modulebuildsignconfigs.kmm.sigs.x-k8s.io", "preflightvalidations.kmm.sigs.x-k8s.io",
	}
)

// TestController: one `helm install` with an example's values as they are brings the KMM
// controller to a Running pod (on a worker where the cluster shows no control plane, on the
// control plane where there is one), the next `helm upgrade` creates the example's Modules
// under the chart's CRDs, and `helm uninstall` keeps the CRDs (crds.keep) or removes them.
func TestController(t *testing.T) {
	for _, name := range []string{"eks", "gke", "ubuntu"} {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t, 4*time.Minute)
			ex := loadExample(t, name)
			useExample(t, ctx, ex)
			dyn, err := dynamic.NewForConfig(kc.Config)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cleanupRelease(t, context.Background())
				deleteCRDs(t, context.Background(), dyn)
			})
			keep := name != "ubuntu" // the last one checks that crds.keep=false removes them
			args := func(verb string) []string {
				a := []string{verb, release, chartDir, "-n", releaseNamespace, "-f", ex.values,
					// kwok's pods serve nothing: no webhook can answer the API server here.
					"--set", "webhook.enabled=false", "--set", fmt.Sprintf("crds.keep=%v", keep)}
				if verb == "install" {
					a = append(a, "--create-namespace")
				}
				return append(append(a, helmArgs(3)...), "--wait", "--timeout", "3m")
			}
			helm(t, ctx, 3, args("install")...)

			pod := controllerPod(t, ctx)
			node, err := kc.Client.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, onControlPlane := node.Labels["node-role.kubernetes.io/control-plane"]
			switch name {
			case "ubuntu":
				if !onControlPlane {
					t.Errorf("controller on %s: the kubeadm cluster has a control-plane node, which the chart prefers", node.Name)
				}
			default:
				if onControlPlane {
					t.Errorf("controller on control-plane node %s of a managed cluster snapshot", node.Name)
				}
				if name == "eks" && (node.Labels["kubernetes.io/arch"] != "amd64" || node.Labels["eks.amazonaws.com/compute-type"] == "fargate") {
					t.Errorf("controller on %s, which the EKS example's affinity excludes", node.Name)
				}
			}
			t.Logf("controller pod %s Running on %s", pod.Name, node.Name)

			// The first revision created the CRDs; the second creates the Modules.
			helm(t, ctx, 3, args("upgrade")...)
			mods, err := dyn.Resource(moduleGVR).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(mods.Items), len(ex.operatorModules()); got != want {
				t.Errorf("%d Module object(s) in the cluster, want %d", got, want)
			}

			if len(mods.Items) > 0 {
				// KMM's finalizers need a running controller, and kwok runs none: release them
				// so that uninstall can delete the Modules.
				for _, m := range mods.Items {
					m.SetFinalizers(nil)
					if _, err := dyn.Resource(moduleGVR).Namespace(m.GetNamespace()).Update(ctx, &m, metav1.UpdateOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Not --wait: whether the API server finishes removing a deleted CRD promptly is its own
			// business (it can retry "storage is (re)initializing" for minutes); that Helm deleted
			// it, or left it, is the chart's.
			helm(t, ctx, 3, "uninstall", release, "-n", releaseNamespace)
			for _, crd := range kmmCRDs {
				obj, err := dyn.Resource(crdGVR).Get(ctx, crd, metav1.GetOptions{})
				deleted := err != nil || obj.GetDeletionTimestamp() != nil
				if keep && deleted {
					t.Errorf("crds.keep: CRD %s is deleted by uninstall (%v)", crd, err)
				}
				if !keep && !deleted {
					t.Errorf("crds.keep=false: CRD %s is left by uninstall", crd)
				}
			}
		})
	}
}

func controllerPod(t *testing.T, ctx context.Context) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := poll(ctx, 90*time.Second, func() (bool, error) {
		pods, err := kc.Client.CoreV1().Pods(releaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=controller"})
		if err != nil {
			return false, err
		}
		for i := range pods.Items {
			if pods.Items[i].Status.Phase == corev1.PodRunning {
				pod = &pods.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no Running controller pod: %v", err)
	}
	return pod
}

func deleteCRDs(t *testing.T, ctx context.Context, dyn dynamic.Interface) {
	for _, crd := range kmmCRDs {
		_ = dyn.Resource(crdGVR).Delete(ctx, crd, metav1.DeleteOptions{})
	}
	_ = poll(ctx, 60*time.Second, func() (bool, error) {
		for _, crd := range kmmCRDs {
			if _, err := dyn.Resource(crdGVR).Get(ctx, crd, metav1.GetOptions{}); err == nil {
				return false, nil
			}
		}
		return true, nil
	})
}
