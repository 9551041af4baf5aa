package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// TestPodSecurityRestricted: Pod Security Admission enforces `restricted` on the release
// namespace and `default`, and `privileged` only on the module namespaces (loaders need
// SYS_MODULE and host paths). Everything still installs: the controller and webhook pods are
// admitted and become ready, every loader lands where it belongs, and the chart's test pod is
// admitted (server-side dry run). A loader-like pod in the release namespace is refused, which
// shows the namespace really enforces `restricted`.
func TestPodSecurityRestricted(t *testing.T) {
	ex := loadExample(t, "gke")
	ctx := testContext(t, 4*time.Minute)
	useExample(t, ctx, ex)
	t.Cleanup(func() { // runs after cleanupInstall's (cleanups run last registered first)
		for _, ns := range []string{releaseNamespace, "default"} {
			_ = setPodSecurity(context.Background(), ns, "")
		}
	})
	cleanupInstall(t)
	for _, ns := range []string{releaseNamespace, "default"} {
		if err := kc.EnsureNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
		if err := setPodSecurity(ctx, ns, "restricted"); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range ex.namespaces() {
		if err := setPodSecurity(ctx, ns, "privileged"); err != nil {
			t.Fatal(err)
		}
	}

	// The namespace refuses what a loader is.
	loaderLike := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "psa-probe", Namespace: releaseNamespace},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.37",
			SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_MODULE"}}}}}},
	}
	_, err := kc.Client.CoreV1().Pods(releaseNamespace).Create(ctx, loaderLike, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "restricted") {
		t.Fatalf("namespace %s does not enforce restricted: a SYS_MODULE pod got %v", releaseNamespace, err)
	}

	helm(t, ctx, 4, append([]string{"install", release, chartDir, "-n", releaseNamespace, "-f", ex.values},
		append(helmArgs(4), "--wait", "--timeout", "3m")...)...)
	waitPlacement(t, ctx, ex.helmModules(), expected(ex.helmModules(), ex.nodes))
	deps, err := kc.Client.AppsV1().Deployments(releaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: instanceLabel})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) < 2 {
		t.Fatalf("want the controller and webhook Deployments in %s, have %d", releaseNamespace, len(deps.Items))
	}
	for _, d := range deps.Items {
		if d.Spec.Replicas == nil || d.Status.ReadyReplicas != *d.Spec.Replicas {
			t.Errorf("Deployment %s: %d of %v replicas ready under restricted", d.Name, d.Status.ReadyReplicas, d.Spec.Replicas)
		}
	}

	// helm test's pod, as the chart renders it, is admitted under restricted.
	out := helm(t, ctx, 4, "get", "hooks", release, "-n", releaseNamespace)
	admitted := 0
	for _, doc := range strings.Split(out, "\n---") {
		var pod corev1.Pod
		if err := yaml.Unmarshal([]byte(doc), &pod); err != nil || pod.Kind != "Pod" {
			continue
		}
		pod.Namespace = releaseNamespace
		if _, err := kc.Client.CoreV1().Pods(releaseNamespace).Create(ctx, &pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("the chart's test pod %s is refused under restricted: %v", pod.Name, err)
		}
		admitted++
	}
	if admitted == 0 {
		t.Errorf("the release has no test pod hook to check")
	}
}

// setPodSecurity labels a namespace to enforce (and warn about) a Pod Security level; "" removes
// the labels.
func setPodSecurity(ctx context.Context, ns, level string) error {
	var patch string
	if level == "" {
		patch = `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":null,"pod-security.kubernetes.io/warn":null}}}`
	} else {
		patch = `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"` + level + `","pod-security.kubernetes.io/warn":"` + level + `"}}}`
	}
	_, err := kc.Client.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}
