package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kmm.dev/kmm/pkg/contract"
)

// TestGKEAutopilotRefused: a mixed GKE cluster, examples/gke's COS and Ubuntu pools plus an
// Autopilot node set. examples/gke's kmm-ci-a-cos selects every COS node, the Autopilot ones
// too: Helm 3 and 4 installs fail before anything is applied, and the message names the module,
// the node pool and the nodes. With the module narrowed to its Standard pool the same cluster
// installs, and no loader lands on an Autopilot node.
func TestGKEAutopilotRefused(t *testing.T) {
	ex := loadExample(t, "gke")
	ctx := testContext(t, 4*time.Minute)
	useExample(t, ctx, ex)
	autopilot := filepath.Join(repo, "test", "e2e", "testdata", "gke-autopilot-nodes.yaml")
	if err := kc.CreateNodes(ctx, autopilot); err != nil {
		t.Fatal(err)
	}
	for _, version := range []int{3, 4} {
		t.Run(fmt.Sprintf("helm%d", version), func(t *testing.T) {
			expectInstallRefused(t, ctx, version, ex.values, nil, []string{
				"module kmm-demo/kmm-ci-a-cos: its selector picks GKE Autopilot nodes",
				"node pool pool-2 (gk3-prod-pool-2-8a3f61c2-9xkz, gk3-prod-pool-2-8a3f61c2-tq4d)",
				"SYS_MODULE",
			})
		})
	}

	t.Run("narrowed to the Standard pool", func(t *testing.T) {
		values := editValues(t, ex.values, func(v map[string]any) {
			for _, m := range v["modules"].([]any) {
				if mod := m.(map[string]any); mod["name"] == "kmm-ci-a-cos" {
					mod["selector"].(map[string]any)["cloud.google.com/gke-nodepool"] = "cos-pool"
				}
			}
		})
		helm(t, ctx, 4, "install", release, chartDir, "-n", releaseNamespace, "--create-namespace", "-f", values,
			"--set", "webhook.enabled=false", "--post-renderer", "kmm-render", "--wait", "--timeout", "3m")
		defer func() {
			cleanupRelease(t, ctx)
			deleteCRDs(t, ctx, mustDynamic(t)) // the chart keeps its CRDs on uninstall
		}()
		// The pods kmm-render generates (loaders, device plugins, builds) carry KMM's role label.
		pods, err := kc.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: contract.LabelRole})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if strings.HasPrefix(p.Spec.NodeName, "gk3-") {
				t.Errorf("pod %s/%s runs on Autopilot node %s", p.Namespace, p.Name, p.Spec.NodeName)
			}
		}
		dss, _, err := releaseObjects(ctx, loaderLabel)
		if err != nil {
			t.Fatal(err)
		}
		if len(dss) == 0 {
			t.Errorf("no loader DaemonSet rendered; the Ubuntu pool's modules should have theirs")
		}
	})
}
