// Package demo is `kmm-cluster demo` (make demo): it installs charts/kmm with an example's
// values into the local cluster (kmm.dev/kmm/internal/localcluster) through kmm-render, and
// shows which loader runs on which node.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kmm.dev/kmm/internal/localcluster"
	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/render"
	"kmm.dev/kmm/pkg/report"
)

// Options configure Run.
type Options struct {
	// Root is the repository root: examples/, charts/kmm, bin/kmm-render and bin/assets/helm3.
	Root string
	// Kubeconfig reaches the cluster (localcluster.State.Kubeconfig).
	Kubeconfig string
	// WorkDir holds Helm's home folders (helm3/ in it).
	WorkDir string
	// Example is the examples/<Example> folder whose values to install.
	Example string
	// Release and Namespace are the Helm release's.
	Release, Namespace string
}

// Run installs the chart with the example's values through kmm-render in one command (helm3
// upgrade --install; `via: operator` Modules follow the CRDs as post-install hooks), prints the kernels and mappings, the KMM controller and Modules, and,
// once every loader pod runs, the loaders per kernel. ctx bounds all of it.
func Run(ctx context.Context, out io.Writer, o Options) error {
	values := filepath.Join(o.Root, "examples", o.Example, "values.yaml")
	renderer := filepath.Join(o.Root, "bin", "kmm-render")
	helm := filepath.Join(o.Root, "bin", "assets", "helm3")
	for _, f := range []string{values, renderer, helm} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s is missing (make build tools)", f)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", o.Kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
	}

	// The modules as the chart declares them (namespaces filled in): its own module list.
	rendered, err := chartrender.Render(ctx, chartrender.Options{ChartDir: filepath.Join(o.Root, "charts", "kmm"),
		ReleaseName: o.Release, Namespace: o.Namespace, ValueFiles: []string{values}})
	if err != nil {
		return fmt.Errorf("%s: %w", values, err)
	}
	modules, err := rendered.Modules()
	if err != nil {
		return fmt.Errorf("%s: %w", values, err)
	}
	c := &localcluster.Cluster{Client: client, Kubeconfig: o.Kubeconfig, WorkDir: o.WorkDir, AssetsDir: filepath.Dir(helm)}
	for _, ns := range namespaces(modules) {
		if err := c.EnsureNamespace(ctx, ns); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "==> kernels on the cluster's nodes, and the mapping each module hits (kmm-render nodes):\n\n")
	nodesCmd := exec.CommandContext(ctx, renderer, "nodes", "--kubeconfig", o.Kubeconfig, "-f", values, "-n", o.Namespace)
	nodesCmd.Stdout, nodesCmd.Stderr = out, os.Stderr
	if err := nodesCmd.Run(); err != nil {
		return fmt.Errorf("kmm-render nodes: %w", err)
	}

	if err := installChart(ctx, out, c, o, values, renderer, modules); err != nil {
		return err
	}

	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating a dynamic client for %s: %w", cfg.Host, err)
	}
	if err := printControlPlane(ctx, out, c, dyn, o.Namespace); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n==> waiting for loader pods to run (kwok simulates the kubelets)\n\n")
	var rows []report.LoaderRow
	var listErr error
	err = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		if rows, listErr = report.Loaders(ctx, client); listErr != nil {
			return false, listErr
		}
		return len(rows) > 0 && allRunning(rows), nil
	})
	switch {
	case listErr != nil:
		return listErr
	case wait.Interrupted(err):
		report.LoaderTable(out, rows)
		return fmt.Errorf("loader pods not all Running in time: %w", ctx.Err())
	case err != nil:
		return err
	}
	if err := report.LoaderTable(out, rows); err != nil {
		return err
	}
	fmt.Fprintf(out, `
Each module got one DaemonSet per kernel that its nodes run and a kernel mapping matches; each
DaemonSet's pods run on exactly the nodes with that kernel.

Explore:
  export KUBECONFIG=%s
  kubectl get nodes -L feature.node.kubernetes.io/kernel-version.full
  kubectl get daemonsets,pods -A -l kmm.node.kubernetes.io/role=module-loader -o wide
  bin/kmm-render nodes -f examples/%s/values.yaml
  bin/assets/helm3 list -A
Stop:
  make cluster-down
`, o.Kubeconfig, o.Example)
	return nil
}

// installChart is the demo's Helm install: one helm3 upgrade --install through kmm-render.
func installChart(ctx context.Context, out io.Writer, c *localcluster.Cluster, o Options, values, renderer string, modules []*render.Module) error {
	// kwok's pods serve nothing, so the KMM webhook could never answer the API server: the
	// local cluster runs without it (on a real cluster it stays on).
	helmArgs := []string{"upgrade", "--install", o.Release, filepath.Join(o.Root, "charts", "kmm"),
		"-n", o.Namespace, "--create-namespace", "-f", values, "--set", "webhook.enabled=false",
		"--post-renderer", renderer, "--post-renderer-args=--kubeconfig", "--post-renderer-args=" + o.Kubeconfig,
		"--wait", "--timeout", "3m"}
	fmt.Fprintf(out, "\n==> helm upgrade --install %s charts/kmm -n %s -f examples/%s/values.yaml --set webhook.enabled=false --post-renderer bin/kmm-render\n", o.Release, o.Namespace, o.Example)
	if stdout, stderr, err := c.Helm(ctx, 3, helmArgs...); err != nil {
		return fmt.Errorf("%w\n%s%s", err, stdout, stderr)
	}
	operator := 0
	for _, m := range modules {
		if m.Operator() {
			operator++
		}
	}
	fmt.Fprintf(out, "    release %s deployed in one command: KMM controller, CRDs, %d KMM Module(s) (created after the CRDs), loader templates expanded per kernel\n", o.Release, operator)
	return nil
}

func allRunning(rows []report.LoaderRow) bool {
	for _, r := range rows {
		if r.Desired == 0 || r.Running != r.Desired {
			return false
		}
	}
	return true
}

// printControlPlane shows where the KMM controller runs and the Modules the API server accepted.
func printControlPlane(ctx context.Context, out io.Writer, c *localcluster.Cluster, dyn dynamic.Interface, namespace string) error {
	pods, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=controller"})
	if err != nil {
		return fmt.Errorf("listing controller pods: %w", err)
	}
	for _, p := range pods.Items {
		fmt.Fprintf(out, "    KMM controller pod %s: %s on node %s\n", p.Name, p.Status.Phase, p.Spec.NodeName)
	}
	mods, err := dyn.Resource(schema.GroupVersionResource{Group: "kmm.sigs.x-k8s.io", Version: "v1beta1", Resource: "modules"}).
		List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing Modules: %w", err)
	}
	for _, m := range mods.Items {
		fmt.Fprintf(out, "    Module %s/%s accepted by the API server\n", m.GetNamespace(), m.GetName())
	}
	return nil
}
