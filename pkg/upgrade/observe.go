package upgrade

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kmm.dev/kmm/pkg/contract"
)

// ModuleView is what the cluster says of one module: its loader DaemonSets (one per kernel), and
// per node its loader and device plugin pods. Observe reads it; it reads nothing else.
type ModuleView struct {
	Namespace, Name string
	// DaemonSets by name, and the pod template hash of each one's newest revision ("" while the
	// DaemonSet controller has not caught up with a change: such a DaemonSet is left alone).
	DaemonSets map[string]*appsv1.DaemonSet
	Current    map[string]string
	// Nodes by name: every node with a loader or device plugin pod of the module, or with one of
	// its upgrade labels.
	Nodes map[string]*NodeView
}

// NodeView is one node of a module.
type NodeView struct {
	Node *corev1.Node
	// Loaders are the node's loader pods of the module (several while one terminates).
	Loaders []*corev1.Pod
	// Plugins are its device plugin pods of the module.
	Plugins []*corev1.Pod
}

// Observe reads a module's view: DaemonSets, ControllerRevisions and pods in the module's
// namespace (list), and the nodes given (the caller lists them once for all modules).
func Observe(ctx context.Context, c kubernetes.Interface, namespace, name string, nodes []corev1.Node) (*ModuleView, error) {
	v := &ModuleView{Namespace: namespace, Name: name, DaemonSets: map[string]*appsv1.DaemonSet{}, Current: map[string]string{}, Nodes: map[string]*NodeView{}}
	mod := labels.Set{contract.LabelModuleName: name, contract.LabelModuleNamespace: namespace}
	loaderSel := labels.SelectorFromSet(labels.Merge(mod, labels.Set{contract.LabelRole: contract.RoleModuleLoader})).String()

	dss, err := c.AppsV1().DaemonSets(namespace).List(ctx, metav1.ListOptions{LabelSelector: loaderSel})
	if err != nil {
		return nil, fmt.Errorf("listing the loader DaemonSets of module %s/%s: %w", namespace, name, err)
	}
	revs, err := c.AppsV1().ControllerRevisions(namespace).List(ctx, metav1.ListOptions{LabelSelector: loaderSel})
	if err != nil {
		return nil, fmt.Errorf("listing the loader revisions of module %s/%s: %w", namespace, name, err)
	}
	for i := range dss.Items {
		ds := &dss.Items[i]
		v.DaemonSets[ds.Name] = ds
		if ds.Status.ObservedGeneration < ds.Generation {
			continue
		}
		var newest *appsv1.ControllerRevision
		for j := range revs.Items {
			r := &revs.Items[j]
			if !ownedBy(r.OwnerReferences, ds.UID) {
				continue
			}
			if newest == nil || r.Revision > newest.Revision {
				newest = r
			}
		}
		if newest != nil {
			v.Current[ds.Name] = newest.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
		}
	}

	pods, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(mod).String()})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of module %s/%s: %w", namespace, name, err)
	}
	byName := make(map[string]*corev1.Node, len(nodes))
	for i := range nodes {
		byName[nodes[i].Name] = &nodes[i]
	}
	nodeView := func(n string) *NodeView {
		if nv := v.Nodes[n]; nv != nil {
			return nv
		}
		node := byName[n]
		if node == nil {
			return nil
		}
		nv := &NodeView{Node: node}
		v.Nodes[n] = nv
		return nv
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" {
			continue
		}
		nv := nodeView(p.Spec.NodeName)
		if nv == nil {
			continue
		}
		switch p.Labels[contract.LabelRole] {
		case contract.RoleModuleLoader:
			nv.Loaders = append(nv.Loaders, p)
		case contract.RoleDevicePlugin:
			nv.Plugins = append(nv.Plugins, p)
		}
	}
	keys := []string{
		contract.ModuleNodeLabel(namespace, name, contract.SuffixUpgradeState),
		contract.ModuleNodeLabel(namespace, name, contract.SuffixReady),
		contract.ModuleNodeLabel(namespace, name, contract.SuffixDevicePluginPaused),
	}
	for i := range nodes {
		for _, k := range keys {
			if _, ok := nodes[i].Labels[k]; ok {
				nodeView(nodes[i].Name)
				break
			}
		}
	}
	return v, nil
}

func ownedBy(refs []metav1.OwnerReference, uid types.UID) bool {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller && r.UID == uid {
			return true
		}
	}
	return false
}

// SortedNodes is the view's node names in order.
func (v *ModuleView) SortedNodes() []string {
	out := make([]string, 0, len(v.Nodes))
	for n := range v.Nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Loader is the node's live loader pod: not terminating, the current revision's first.
func (v *ModuleView) Loader(nv *NodeView) *corev1.Pod {
	var found *corev1.Pod
	for _, p := range nv.Loaders {
		if p.DeletionTimestamp != nil {
			continue
		}
		if v.IsCurrent(p) {
			return p
		}
		if found == nil {
			found = p
		}
	}
	return found
}

// Terminating reports whether a loader pod of the node is being deleted (unloading).
func (nv *NodeView) Terminating() bool {
	for _, p := range nv.Loaders {
		if p.DeletionTimestamp != nil {
			return true
		}
	}
	return false
}

// OwnerDaemonSet is the name of the DaemonSet that controls the pod, or "".
func OwnerDaemonSet(p *corev1.Pod) string {
	for _, r := range p.OwnerReferences {
		if r.Controller != nil && *r.Controller && r.Kind == "DaemonSet" {
			return r.Name
		}
	}
	return ""
}

// IsCurrent reports whether the loader pod is of its DaemonSet's newest revision. A pod whose
// DaemonSet's revision is not known yet counts as current (nothing to upgrade yet).
func (v *ModuleView) IsCurrent(p *corev1.Pod) bool {
	cur := v.Current[OwnerDaemonSet(p)]
	return cur == "" || p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == cur
}

// Outdated is the node's live loader pod when it is of an older revision, else nil.
func (v *ModuleView) Outdated(nv *NodeView) *corev1.Pod {
	for _, p := range nv.Loaders {
		if p.DeletionTimestamp == nil && !v.IsCurrent(p) {
			return p
		}
	}
	return nil
}

// WantedVersion is the version the node's loader DaemonSet's template loads ("" when the node
// has no loader).
func (v *ModuleView) WantedVersion(nv *NodeView) string {
	for _, p := range nv.Loaders {
		if ds := v.DaemonSets[OwnerDaemonSet(p)]; ds != nil {
			return ds.Spec.Template.Annotations[contract.AnnotationModuleVersion]
		}
	}
	return ""
}

// PodReady reports whether a pod is Ready and not terminating.
func PodReady(p *corev1.Pod) bool {
	if p == nil || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// LoadedVersion is the version the node's Ready loader pod loaded and verified, and whether
// there is one.
func (v *ModuleView) LoadedVersion(nv *NodeView) (string, bool) {
	for _, p := range nv.Loaders {
		if PodReady(p) {
			return p.Annotations[contract.AnnotationModuleVersion], true
		}
	}
	return "", false
}

// FailureMessage is what the node's loader container said when it last failed (its termination
// message, which load.sh writes), or "".
func FailureMessage(p *corev1.Pod) string {
	if p == nil {
		return ""
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != contract.LoaderContainer {
			continue
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return t.Message
		}
		if t := cs.LastTerminationState.Terminated; t != nil && t.ExitCode != 0 && !cs.Ready {
			return t.Message
		}
	}
	return ""
}
