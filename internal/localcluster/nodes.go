package localcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kmm.dev/kmm/pkg/nodes"
	"kmm.dev/kmm/pkg/render"
)

// NFD's kernel labels.
const (
	LabelKernelFull     = "feature.node.kubernetes.io/kernel-version.full"
	LabelKernelMajor    = "feature.node.kubernetes.io/kernel-version.major"
	LabelKernelMinor    = "feature.node.kubernetes.io/kernel-version.minor"
	LabelKernelRevision = "feature.node.kubernetes.io/kernel-version.revision"
)

// NodeReadyTimeout bounds how long CreateNodes and AddNode wait for nodes to be Ready.
var NodeReadyTimeout = 90 * time.Second

// CreateNodes creates every Node of a snapshot file (read with nodes.LoadObjects; see AddNodes).
func (c *Cluster) CreateNodes(ctx context.Context, path string) error {
	ns, err := nodes.LoadObjects(path)
	if err != nil {
		return err
	}
	return c.AddNodes(ctx, ns...)
}

// AddNode creates one Node (see AddNodes).
func (c *Cluster) AddNode(ctx context.Context, node corev1.Node) error {
	return c.AddNodes(ctx, node)
}

// AddNodes creates Nodes with their labels, annotations, taints, provider ID and pod CIDRs,
// sets their status (nodeInfo, addresses, capacity and allocatable, with room for at least 110
// pods; conditions are left to kwok) through the status subresource, and waits until each is
// Ready and free of the node.kubernetes.io/not-ready and unreachable taints.
func (c *Cluster) AddNodes(ctx context.Context, list ...corev1.Node) error {
	t0 := time.Now()
	var names []string
	for i := range list {
		n := prepareNode(list[i])
		status := n.Status
		created, err := c.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating node %s: %w", n.Name, err)
		}
		if err := c.patchNodeStatus(ctx, created.Name, status); err != nil {
			return err
		}
		names = append(names, n.Name)
	}
	if err := c.WaitNodesReady(ctx, names...); err != nil {
		return err
	}
	c.logf("%d node(s) Ready (%.1fs)", len(names), time.Since(t0).Seconds())
	return nil
}

// prepareNode strips what the API server owns, keeps what a test needs, and puts the status
// the harness sets aside in the returned Node's Status.
func prepareNode(in corev1.Node) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        in.Name,
			Labels:      in.Labels,
			Annotations: in.Annotations,
		},
		Spec: corev1.NodeSpec{
			PodCIDR:       in.Spec.PodCIDR,
			PodCIDRs:      in.Spec.PodCIDRs,
			ProviderID:    in.Spec.ProviderID,
			Unschedulable: in.Spec.Unschedulable,
		},
	}
	for _, t := range in.Spec.Taints {
		if strings.HasPrefix(t.Key, "node.kubernetes.io/") {
			continue // node-condition taints: the node lifecycle controller owns them
		}
		t.TimeAdded = nil
		n.Spec.Taints = append(n.Spec.Taints, t)
	}
	capacity := in.Status.Capacity.DeepCopy()
	allocatable := in.Status.Allocatable.DeepCopy()
	minPods := resource.MustParse("110")
	for _, rl := range []*corev1.ResourceList{&capacity, &allocatable} {
		if *rl == nil {
			*rl = corev1.ResourceList{}
		}
		if q, ok := (*rl)[corev1.ResourcePods]; !ok || q.Cmp(minPods) < 0 {
			(*rl)[corev1.ResourcePods] = minPods
		}
		if _, ok := (*rl)[corev1.ResourceCPU]; !ok {
			(*rl)[corev1.ResourceCPU] = resource.MustParse("8")
		}
		if _, ok := (*rl)[corev1.ResourceMemory]; !ok {
			(*rl)[corev1.ResourceMemory] = resource.MustParse("32Gi")
		}
	}
	n.Status = corev1.NodeStatus{
		Capacity:        capacity,
		Allocatable:     allocatable,
		Addresses:       in.Status.Addresses,
		DaemonEndpoints: in.Status.DaemonEndpoints,
		NodeInfo:        in.Status.NodeInfo,
	}
	return n
}

// patchNodeStatus merges nodeInfo, addresses, capacity and allocatable into a node's status.
func (c *Cluster) patchNodeStatus(ctx context.Context, name string, st corev1.NodeStatus) error {
	patch := map[string]any{"status": map[string]any{
		"nodeInfo":        st.NodeInfo,
		"addresses":       st.Addresses,
		"capacity":        st.Capacity,
		"allocatable":     st.Allocatable,
		"daemonEndpoints": st.DaemonEndpoints,
	}}
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if _, err := c.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("setting the status of node %s: %w", name, err)
	}
	return nil
}

// NodeReady reports whether a node is Ready and carries none of the taints that keep
// DaemonSet pods off a node that is starting (not-ready, unreachable).
func NodeReady(n *corev1.Node) bool {
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	return true
}

// WaitNodesReady waits until the named nodes (all nodes if none is named) are Ready.
func (c *Cluster) WaitNodesReady(ctx context.Context, names ...string) error {
	var pending []string
	err := c.poll(ctx, NodeReadyTimeout, "nodes to be Ready", func(ctx context.Context) (bool, error) {
		list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		byName := map[string]*corev1.Node{}
		for i := range list.Items {
			byName[list.Items[i].Name] = &list.Items[i]
		}
		want := names
		if len(want) == 0 {
			for n := range byName {
				want = append(want, n)
			}
		}
		pending = pending[:0]
		for _, name := range want {
			if n, ok := byName[name]; !ok || !NodeReady(n) {
				pending = append(pending, name)
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		sort.Strings(pending)
		return fmt.Errorf("%w; not Ready: %s", err, strings.Join(pending, ", "))
	}
	return nil
}

// NFDKernelLabels are the labels Node Feature Discovery puts on a node running kernel:
// kernel-version.full, the kernel as a label value by NFD's rule (render.KernelLabelValue:
// "5.10.109+" becomes "5.10.109"), and .major, .minor and .revision, the leading digits of the
// first three dot-separated parts of that value. A kernel with no valid label value gets none.
func NFDKernelLabels(kernel string) map[string]string {
	out := map[string]string{}
	full, ok := render.KernelLabelValue(kernel)
	if !ok {
		return out
	}
	out[LabelKernelFull] = full
	parts := strings.SplitN(full, ".", 3)
	keys := []string{LabelKernelMajor, LabelKernelMinor, LabelKernelRevision}
	for i, p := range parts {
		j := 0
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			j++
		}
		if j > 0 {
			out[keys[i]] = p[:j]
		}
	}
	return out
}

// SetKernel moves a node to another kernel: status.nodeInfo.kernelVersion through the status
// subresource, and node labels through a normal patch. Nil labels means NFD's kernel labels
// for kernel (NFDKernelLabels).
func (c *Cluster) SetKernel(ctx context.Context, node, kernel string, labels map[string]string) error {
	if labels == nil {
		labels = NFDKernelLabels(kernel)
	}
	st, err := json.Marshal(map[string]any{"status": map[string]any{"nodeInfo": map[string]any{"kernelVersion": kernel}}})
	if err != nil {
		return err
	}
	if _, err := c.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, st, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("setting the kernel of node %s: %w", node, err)
	}
	if len(labels) > 0 {
		lb, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
		if err != nil {
			return err
		}
		if _, err := c.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, lb, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("labelling node %s: %w", node, err)
		}
	}
	return nil
}

// DeleteAllNodes deletes every Node and, first, force-deletes the pods bound to them (no
// kubelet would confirm their deletion once the node is gone), then waits until no Node is left.
func (c *Cluster) DeleteAllNodes(ctx context.Context) error {
	pods, err := c.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	zero := int64(0)
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" {
			continue
		}
		err := c.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	if err := c.Client.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("deleting nodes: %w", err)
	}
	return c.poll(ctx, 60*time.Second, "nodes to be deleted", func(ctx context.Context) (bool, error) {
		list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(list.Items) == 0, nil
	})
}

// ReplaceNodes deletes every Node (DeleteAllNodes) and creates those of a snapshot file.
func (c *Cluster) ReplaceNodes(ctx context.Context, path string) error {
	if err := c.DeleteAllNodes(ctx); err != nil {
		return err
	}
	return c.CreateNodes(ctx, path)
}
