package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
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
// control plane where there is one) and creates the example's Modules under the chart's CRDs;
// the next `helm upgrade` adopts them; `helm uninstall` keeps the CRDs (crds.keep) or removes
// them.
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
			waitNoCRDs(t, ctx, dyn)
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

			// The install created the CRDs and, after them, the Modules; the upgrade adopts them.
			mods, err := dyn.Resource(moduleGVR).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(mods.Items), len(ex.operatorModules()); got != want {
				t.Errorf("after one helm install, %d Module object(s) in the cluster, want %d", got, want)
			}
			uids := checkOperatorModules(t, ctx, ex)
			helm(t, ctx, 3, args("upgrade")...)
			checkModulesAdopted(t, ctx, 3, ex, uids)

			// KMM refuses to give a Module a loader version it did not have: kmm-render reads the
			// cluster's Module and refuses first, before Helm applies anything.
			for i, m := range ex.modules {
				if !m.Operator() {
					continue
				}
				set := fmt.Sprintf("modules[%d].moduleLoader.container.version=v2", i)
				stdout, stderr, err := kc.Helm(ctx, 3, append(args("upgrade"), "--set", set)...)
				if err == nil {
					t.Errorf("upgrade with %s succeeded; KMM refuses it\n%s", set, stdout)
				} else if want := "spec.moduleLoader.container.version: Forbidden"; !strings.Contains(stderr, want) {
					t.Errorf("upgrade with %s: the error does not say %q:\n%s", set, want, stderr)
				}
				break
			}
			checkModulesAdopted(t, ctx, 3, ex, uids)
			if mods, err = dyn.Resource(moduleGVR).List(ctx, metav1.ListOptions{}); err != nil {
				t.Fatal(err)
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
	return runningPod(t, ctx, "controller")
}

// runningPod waits for a Running pod of a chart component in the release namespace.
func runningPod(t *testing.T, ctx context.Context, component string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := poll(ctx, 90*time.Second, func() (bool, error) {
		pods, err := kc.Client.CoreV1().Pods(releaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=" + component})
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
		t.Fatalf("no Running %s pod: %v", component, err)
	}
	return pod
}

// waitNoCRDs waits until no KMM CRD is left from an earlier test, deleted or being deleted: the
// API server can take a minute to finish deleting a CRD, and a test that installs meanwhile
// would find the old one terminating.
func waitNoCRDs(t *testing.T, ctx context.Context, dyn dynamic.Interface) {
	t.Helper()
	err := poll(ctx, 2*time.Minute, func() (bool, error) { return crdsGone(ctx, dyn), nil })
	if err != nil {
		t.Fatalf("KMM CRDs of an earlier test are still there: %v", err)
	}
}

func deleteCRDs(t *testing.T, ctx context.Context, dyn dynamic.Interface) {
	for _, crd := range kmmCRDs {
		_ = dyn.Resource(crdGVR).Delete(ctx, crd, metav1.DeleteOptions{})
	}
	_ = poll(ctx, 60*time.Second, func() (bool, error) { return crdsGone(ctx, dyn), nil })
}

// crdsGone reports whether no KMM CRD is left. A CRD deleted right after it was created can
// meet "storage is (re)initializing" in the API server's CRD finalizer, which then retries with
// a growing backoff (minutes); an update of the terminating CRD requeues it at once, so each
// call nudges the terminating ones with an annotation.
func crdsGone(ctx context.Context, dyn dynamic.Interface) bool {
	gone := true
	for _, crd := range kmmCRDs {
		obj, err := dyn.Resource(crdGVR).Get(ctx, crd, metav1.GetOptions{})
		if err != nil {
			continue
		}
		gone = false
		if obj.GetDeletionTimestamp() != nil {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{"kmm.dev/e2e-nudge":"%d"}}}`, time.Now().UnixNano())
			_, _ = dyn.Resource(crdGVR).Patch(ctx, crd, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		}
	}
	return gone
}

// TestHelmTest runs `helm test`, as the README and the install notes advertise, on a release with
// the webhook and a chart-generated certificate. kwok runs no container, so the test pod's curl
// never runs here; what Helm and the chart do is checked: `helm test` creates the pod, the pod
// trusts exactly the CA of the webhook configuration's caBundle and meets the restricted Pod
// Security level; the test then completes the pod as a kubelet would, and `helm test` must
// report it passed.
func TestHelmTest(t *testing.T) {
	ctx := testContext(t, 4*time.Minute)
	ex := loadExample(t, "ubuntu")
	useExample(t, ctx, ex)
	waitNoCRDs(t, ctx, mustDynamic(t))
	cleanupInstall(t)
	helm(t, ctx, 3, append([]string{"install", release, chartDir, "-n", releaseNamespace, "--create-namespace",
		"--set", "crds.keep=false"}, append(helmArgs(3), "--wait", "--timeout", "3m")...)...)

	type result struct {
		stdout, stderr string
		err            error
	}
	done := make(chan result, 1)
	go func() {
		stdout, stderr, err := kc.Helm(ctx, 3, "test", release, "-n", releaseNamespace, "--timeout", "2m")
		done <- result{stdout, stderr, err}
	}()

	pod := runningPod(t, ctx, "test") // created by helm test
	if pod.Annotations["helm.sh/hook"] != "test" {
		t.Errorf("test pod %s: helm.sh/hook=%q", pod.Name, pod.Annotations["helm.sh/hook"])
	}
	if sc := pod.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("test pod %s does not run as non-root", pod.Name)
	}
	var secret string
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil {
			secret = v.Secret.SecretName
		}
	}
	s, err := kc.Client.CoreV1().Secrets(releaseNamespace).Get(ctx, secret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the test pod's CA Secret %q: %v", secret, err)
	}
	vwcs, err := kc.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
	if err != nil || len(vwcs.Items) != 1 || len(vwcs.Items[0].Webhooks) == 0 {
		t.Fatalf("the release's ValidatingWebhookConfiguration: %v (%d found)", err, len(vwcs.Items))
	}
	for _, w := range vwcs.Items[0].Webhooks {
		if string(w.ClientConfig.CABundle) != string(s.Data["ca.crt"]) {
			t.Errorf("webhook %s trusts another CA than the test pod's (Secret %s)", w.Name, secret)
		}
	}

	// What a kubelet would report once curl exits 0.
	pod.Status.Phase = corev1.PodSucceeded
	for i := range pod.Status.ContainerStatuses {
		pod.Status.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}
		pod.Status.ContainerStatuses[i].Ready = false
	}
	if _, err := kc.Client.CoreV1().Pods(releaseNamespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("helm test: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Succeeded") {
		t.Errorf("helm test did not report the test as succeeded:\n%s", r.stdout)
	}
}

func mustDynamic(t *testing.T) dynamic.Interface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}
