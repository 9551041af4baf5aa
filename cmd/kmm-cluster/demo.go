package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kmm.dev/kmm/pkg/render"
	"kmm.dev/kmm/pkg/report"
	"kmm.dev/kmm/test/cluster"
)

// newDemoCommand installs charts/kmm with an example's values into the cluster `up` started,
// through kmm-render, and shows which loader runs on which node.
func newDemoCommand() *cobra.Command {
	var d dirFlag
	var example, release, namespace string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "demo --example eks [--dir DIR]",
		Short: "Install the chart with an example's values through kmm-render and print the loaders per kernel",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, s, err := d.state()
			if err != nil {
				return err
			}
			if s == nil || !s.Ready {
				return fmt.Errorf("no ready cluster in %s: run `kmm-cluster up --nodes examples/%s/nodes.yaml` first", dir, example)
			}
			root, err := cluster.RepoRoot()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return runDemo(ctx, cmd.OutOrStdout(), demoOptions{
				root: root, kubeconfig: s.Kubeconfig, workDir: dir,
				example: example, release: release, namespace: namespace,
			})
		},
	}
	d.register(cmd)
	cmd.Flags().StringVar(&example, "example", "eks", "example to install: eks, gke or ubuntu")
	cmd.Flags().StringVar(&release, "release", "kmm", "Helm release name")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "kmm-system", "release namespace")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long installing and waiting for the loaders may take")
	return cmd
}

type demoOptions struct {
	root, kubeconfig, workDir   string
	example, release, namespace string
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	values := filepath.Join(o.root, "examples", o.example, "values.yaml")
	renderer := filepath.Join(o.root, "bin", "kmm-render")
	helm := filepath.Join(o.root, "bin", "assets", "helm3")
	for _, f := range []string{values, renderer, helm} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s is missing (make build tools)", f)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", o.kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	data, err := os.ReadFile(values)
	if err != nil {
		return err
	}
	modules, err := render.ModulesFromValues(data, o.namespace)
	if err != nil {
		return fmt.Errorf("%s: %w", values, err)
	}
	c := &cluster.Cluster{Client: client, Kubeconfig: o.kubeconfig, WorkDir: o.workDir, AssetsDir: filepath.Dir(helm)}
	for _, m := range modules {
		if err := c.EnsureNamespace(ctx, m.Spec.Namespace); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "==> kernels on the cluster's nodes, and the mapping each module hits (kmm-render nodes):\n\n")
	nodesCmd := exec.CommandContext(ctx, renderer, "nodes", "--kubeconfig", o.kubeconfig, "-f", values, "-n", o.namespace)
	nodesCmd.Stdout, nodesCmd.Stderr = out, os.Stderr
	if err := nodesCmd.Run(); err != nil {
		return fmt.Errorf("kmm-render nodes: %w", err)
	}

	// kwok's pods serve nothing, so the KMM webhook could never answer the API server: the
	// local cluster runs without it (on a real cluster it stays on).
	helmArgs := []string{"upgrade", "--install", o.release, filepath.Join(o.root, "charts", "kmm"),
		"-n", o.namespace, "--create-namespace", "-f", values, "--set", "webhook.enabled=false",
		"--post-renderer", renderer, "--post-renderer-args=--kubeconfig", "--post-renderer-args=" + o.kubeconfig,
		"--wait", "--timeout", "3m"}
	fmt.Fprintf(out, "\n==> helm upgrade --install %s charts/kmm -n %s -f examples/%s/values.yaml --set webhook.enabled=false --post-renderer bin/kmm-render\n", o.release, o.namespace, o.example)
	if stdout, stderr, err := c.Helm(ctx, 3, helmArgs...); err != nil {
		return fmt.Errorf("%w\n%s%s", err, stdout, stderr)
	}
	fmt.Fprintf(out, "    release %s deployed: KMM controller, CRDs, loader templates expanded per kernel\n", o.release)
	operator := 0
	for _, m := range modules {
		if m.Via == "operator" {
			operator++
		}
	}
	if operator > 0 {
		fmt.Fprintf(out, "\n==> helm upgrade (same command): the cluster now serves the Module CRD, so the %d via: operator module(s) are created\n", operator)
		if stdout, stderr, err := c.Helm(ctx, 3, helmArgs...); err != nil {
			return fmt.Errorf("%w\n%s%s", err, stdout, stderr)
		}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := printControlPlane(ctx, out, c, dyn, o.namespace); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n==> waiting for loader pods to run (kwok simulates the kubelets)\n\n")
	var rows []report.LoaderRow
	for {
		rows, err = report.Loaders(ctx, client)
		if err != nil {
			return err
		}
		if len(rows) > 0 && allRunning(rows) {
			break
		}
		select {
		case <-ctx.Done():
			report.LoaderTable(out, rows)
			return fmt.Errorf("loader pods not all Running in time: %w", ctx.Err())
		case <-time.After(time.Second):
		}
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
`, o.kubeconfig, o.example)
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
func printControlPlane(ctx context.Context, out io.Writer, c *cluster.Cluster, dyn dynamic.Interface, namespace string) error {
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
