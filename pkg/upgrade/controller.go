package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kmm.dev/kmm/pkg/contract"
)

// Event reasons the controller records on Nodes. The API server keeps the Events of
// cluster-scoped objects in namespace "default", where the kubelet records its own.
const (
	ReasonLoaded          = "ModuleLoaded"
	ReasonUnloaded        = "ModuleUnloaded"
	ReasonLoadFailed      = "ModuleLoadFailed"
	ReasonVersionMismatch = "ModuleVersionMismatch"
	ReasonUpgrading       = "ModuleUpgrading"
	ReasonUpgraded        = "ModuleUpgraded"
	ReasonUpgradeFailed   = "ModuleUpgradeFailed"
	ReasonBuildFailed     = "ModuleBuildFailed"
)

// Component is the Events' source.
const Component = "kmm-upgrade"

// Options configure a Controller.
type Options struct {
	Client  kubernetes.Interface
	Modules []ModuleConfig
	// Now is the clock (default time.Now); tests pass their own.
	Now func() time.Time
	// Log receives one line per action (default: discarded).
	Log io.Writer
}

// Controller reconciles every module of its configuration. Reconcile is one pass; Run repeats it.
type Controller struct {
	o        Options
	policies map[string]Policy
	// reported remembers the loader failures already recorded as Events (pod UID/restarts), and
	// the build waits and failures already logged or recorded (node, Job, state).
	reported map[string]bool
	seq      int // tells apart the names of Events recorded in one instant
}

// New checks the options and the policies.
func New(o Options) (*Controller, error) {
	if o.Client == nil {
		return nil, errors.New("upgrade controller: no client")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	c := &Controller{o: o, policies: map[string]Policy{}, reported: map[string]bool{}}
	for _, m := range o.Modules {
		p, err := m.Resolve()
		if err != nil {
			return nil, err
		}
		c.policies[m.ID()] = p
	}
	return c, nil
}

// Run reconciles every interval until ctx ends. A failed pass is logged and retried.
func (c *Controller) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := c.Reconcile(ctx); err != nil && ctx.Err() == nil {
			c.logf("reconcile: %v", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (c *Controller) logf(format string, args ...any) {
	fmt.Fprintf(c.o.Log, format+"\n", args...)
}

// Reconcile makes one pass over all modules: node status labels and Events, then each module's
// upgrade, one step per node.
func (c *Controller) Reconcile(ctx context.Context) error {
	nodes, err := c.o.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing the nodes: %w", err)
	}
	var errs []error
	for _, m := range c.o.Modules {
		if err := c.reconcileModule(ctx, m, nodes.Items); err != nil {
			errs = append(errs, fmt.Errorf("module %s: %w", m.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// nodePatch is a change of a node's labels, annotations (nil value: remove) and cordon.
type nodePatch struct {
	labels      map[string]*string
	annotations map[string]*string
	cordon      *bool
}

func (p *nodePatch) setLabel(k, v string)      { p.lbl()[k] = &v }
func (p *nodePatch) delLabel(k string)         { p.lbl()[k] = nil }
func (p *nodePatch) setAnnotation(k, v string) { p.ann()[k] = &v }
func (p *nodePatch) delAnnotation(k string)    { p.ann()[k] = nil }
func (p *nodePatch) lbl() map[string]*string {
	if p.labels == nil {
		p.labels = map[string]*string{}
	}
	return p.labels
}
func (p *nodePatch) ann() map[string]*string {
	if p.annotations == nil {
		p.annotations = map[string]*string{}
	}
	return p.annotations
}

// apply patches the node when the patch changes something, and updates the node in memory.
func (c *Controller) apply(ctx context.Context, n *corev1.Node, p *nodePatch) error {
	meta := map[string]any{}
	changed := false
	diff := func(have map[string]string, want map[string]*string) map[string]*string {
		out := map[string]*string{}
		for k, v := range want {
			old, ok := have[k]
			if (v == nil && ok) || (v != nil && (!ok || old != *v)) {
				out[k] = v
			}
		}
		return out
	}
	if d := diff(n.Labels, p.labels); len(d) > 0 {
		meta["labels"], changed = d, true
	}
	if d := diff(n.Annotations, p.annotations); len(d) > 0 {
		meta["annotations"], changed = d, true
	}
	body := map[string]any{}
	if len(meta) > 0 {
		body["metadata"] = meta
	}
	if p.cordon != nil && n.Spec.Unschedulable != *p.cordon {
		body["spec"], changed = map[string]any{"unschedulable": *p.cordon}, true
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	out, err := c.o.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, b, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("patching node %s: %w", n.Name, err)
	}
	*n = *out
	return nil
}

func (c *Controller) event(ctx context.Context, m ModuleConfig, n *corev1.Node, typ, reason, msg string) {
	now := metav1.NewTime(c.o.Now())
	c.seq++
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x.%d", n.Name, now.UnixNano(), c.seq), Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Node", APIVersion: "v1", Name: n.Name, UID: n.UID,
		},
		Reason: reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: Component, Host: n.Name},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "kmm.dev/" + Component, ReportingInstance: Component,
	}
	if _, err := c.o.Client.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.logf("recording event %s on node %s: %v", reason, n.Name, err)
	}
	c.logf("%s %s: %s: %s", m.ID(), n.Name, reason, msg)
}

func (c *Controller) reconcileModule(ctx context.Context, m ModuleConfig, nodes []corev1.Node) error {
	pol := c.policies[m.ID()]
	v, err := Observe(ctx, c.o.Client, m.Namespace, m.Name, nodes)
	if err != nil {
		return err
	}
	names := v.SortedNodes()
	var errs []error

	// Status: the ready and version labels follow the Ready loader pod; failures become Events.
	for _, name := range names {
		nv := v.Nodes[name]
		if err := c.status(ctx, m, v, nv); err != nil {
			errs = append(errs, err)
		}
	}

	// Upgrades already under way go on; their count and the unavailable nodes bound new ones.
	stateKey := contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixUpgradeState)
	inProgress, unavailable, total := 0, 0, 0
	for _, name := range names {
		nv := v.Nodes[name]
		if err := c.advance(ctx, m, pol, v, nv); err != nil {
			errs = append(errs, err)
		}
		if len(nv.Loaders) > 0 || nv.Node.Labels[stateKey] != "" {
			total++
		}
		switch st := nv.Node.Labels[stateKey]; {
		case st == contract.UpgradeDraining || st == contract.UpgradeRestarting || st == contract.UpgradeValidating:
			inProgress++
			unavailable++
		case len(nv.Loaders) > 0 && !PodReady(v.Loader(nv)):
			unavailable++
		}
	}
	budget := pol.Budget(total)
	jobs := &buildJobs{c: c.o.Client, namespace: m.Namespace, name: m.Name}

	// New upgrades, in node name order, while the bounds allow. A node whose new image is still
	// being built (or whose build failed) waits outside the bounds, its old version loaded.
	for _, name := range names {
		nv := v.Nodes[name]
		old := v.Outdated(nv)
		st := nv.Node.Labels[stateKey]
		if old == nil {
			if st == contract.UpgradeRequired {
				// Upgraded by someone else (its pod was deleted): nothing left to do.
				if err := c.apply(ctx, nv.Node, c.clearState(m, &nodePatch{})); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		switch st {
		case contract.UpgradeDraining, contract.UpgradeRestarting, contract.UpgradeValidating, contract.UpgradeFailed:
			continue
		}
		if skipped(m, nv.Node) {
			continue
		}
		if st != contract.UpgradeRequired {
			p := &nodePatch{}
			p.setLabel(stateKey, contract.UpgradeRequired)
			if err := c.apply(ctx, nv.Node, p); err != nil {
				errs = append(errs, err)
				continue
			}
			c.logf("%s %s: %s (loader pod %s is of an older revision)", m.ID(), name, contract.UpgradeRequired, old.Name)
		}
		if pol.Manual {
			if _, ok := nv.Node.Labels[contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixUpgradeRequested)]; !ok {
				continue
			}
		}
		if ok, err := c.buildReady(ctx, m, v, nv, jobs); err != nil || !ok {
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		extra := 1
		if !PodReady(v.Loader(nv)) {
			extra = 0 // already unavailable
		}
		if inProgress >= pol.MaxParallel || unavailable+extra > budget {
			continue
		}
		if err := c.start(ctx, m, v, nv); err != nil {
			errs = append(errs, err)
			continue
		}
		// The drain's first step at once: evictions start in this pass.
		if err := c.advance(ctx, m, pol, v, nv); err != nil {
			errs = append(errs, err)
		}
		inProgress++
		unavailable += extra
	}
	return errors.Join(errs...)
}

func skipped(m ModuleConfig, n *corev1.Node) bool {
	if n.Labels[contract.LabelUpgradeSkip] == "true" {
		return true
	}
	return n.Labels[contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixUpgradeSkip)] == "true"
}

// status keeps the node's ready and version.ready labels on its Ready loader, records Events
// when they change, and one Event per loader failure.
func (c *Controller) status(ctx context.Context, m ModuleConfig, v *ModuleView, nv *NodeView) error {
	readyKey := contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixReady)
	versionKey := contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixVersionReady)
	_, wasReady := nv.Node.Labels[readyKey]
	wasVersion := nv.Node.Labels[versionKey]
	version, ready := v.LoadedVersion(nv)
	p := &nodePatch{}
	if ready {
		p.setLabel(readyKey, "")
		p.setLabel(versionKey, contract.VersionLabelValue(version))
	} else {
		p.delLabel(readyKey)
		p.delLabel(versionKey)
	}
	if err := c.apply(ctx, nv.Node, p); err != nil {
		return err
	}
	switch {
	case ready && (!wasReady || wasVersion != contract.VersionLabelValue(version)):
		c.event(ctx, m, nv.Node, corev1.EventTypeNormal, ReasonLoaded, fmt.Sprintf("module %s version %s is loaded (loader pod %s)", m.ID(), version, readyPod(nv).Name))
	case !ready && wasReady:
		c.event(ctx, m, nv.Node, corev1.EventTypeNormal, ReasonUnloaded, fmt.Sprintf("module %s has no Ready loader on the node: it is unloaded or being reloaded", m.ID()))
	}
	for _, pod := range nv.Loaders {
		msg := FailureMessage(pod)
		if msg == "" {
			continue
		}
		key := string(pod.UID) + "/" + fmt.Sprint(restarts(pod))
		if c.reported[key] {
			continue
		}
		c.reported[key] = true
		reason := ReasonLoadFailed
		if strings.Contains(msg, " is loaded at ") {
			reason = ReasonVersionMismatch
		}
		c.event(ctx, m, nv.Node, corev1.EventTypeWarning, reason, fmt.Sprintf("loader pod %s: %s", pod.Name, msg))
	}
	return nil
}

func readyPod(nv *NodeView) *corev1.Pod {
	for _, p := range nv.Loaders {
		if PodReady(p) {
			return p
		}
	}
	return &corev1.Pod{}
}

func restarts(p *corev1.Pod) int32 {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == contract.LoaderContainer {
			return cs.RestartCount
		}
	}
	return 0
}

func moduleKey(m ModuleConfig) string { return m.Namespace + "." + m.Name }

// start begins a node's upgrade: cordon (recording that this module did), pause the device
// plugin, and enter draining.
func (c *Controller) start(ctx context.Context, m ModuleConfig, v *ModuleView, nv *NodeView) error {
	p := &nodePatch{}
	n := nv.Node
	// Cordon, unless someone other than an upgrade cordoned the node: then it is theirs to
	// uncordon. Another module's upgrade shares the cordon: the last one done uncordons.
	if by := cordoners(n); !n.Spec.Unschedulable || len(by) > 0 {
		by = append(by, moduleKey(m))
		slices.Sort(by)
		p.setAnnotation(contract.AnnotationCordonedBy, strings.Join(slices.Compact(by), ","))
		t := true
		p.cordon = &t
	}
	if m.DevicePlugin {
		p.setLabel(contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixDevicePluginPaused), "true")
	}
	c.enter(m, p, contract.UpgradeDraining)
	if err := c.apply(ctx, n, p); err != nil {
		return err
	}
	c.event(ctx, m, n, corev1.EventTypeNormal, ReasonUpgrading, fmt.Sprintf("upgrading module %s from %s to %s: node cordoned, device plugin and consumers leaving", m.ID(), versionOf(v.Outdated(nv)), v.WantedVersion(nv)))
	return nil
}

func versionOf(p *corev1.Pod) string {
	if p == nil {
		return "?"
	}
	return p.Annotations[contract.AnnotationModuleVersion]
}

// cordoners is the node's AnnotationCordonedBy list.
func cordoners(n *corev1.Node) []string {
	s := n.Annotations[contract.AnnotationCordonedBy]
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func (c *Controller) enter(m ModuleConfig, p *nodePatch, state string) {
	p.setLabel(contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixUpgradeState), state)
	p.setAnnotation(contract.UpgradeSinceAnnotation(m.Namespace, m.Name), c.o.Now().UTC().Format(time.RFC3339))
}

func (c *Controller) since(m ModuleConfig, n *corev1.Node) time.Duration {
	t, err := time.Parse(time.RFC3339, n.Annotations[contract.UpgradeSinceAnnotation(m.Namespace, m.Name)])
	if err != nil {
		return 0
	}
	return c.o.Now().Sub(t)
}

// clearState removes the state and since, and the manual request.
func (c *Controller) clearState(m ModuleConfig, p *nodePatch) *nodePatch {
	p.delLabel(contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixUpgradeState))
	p.delAnnotation(contract.UpgradeSinceAnnotation(m.Namespace, m.Name))
	return p
}

// release brings the device plugin back and uncordons the node when this module's upgrade was
// the last one holding it.
func (c *Controller) release(m ModuleConfig, n *corev1.Node, p *nodePatch) {
	p.delLabel(contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixDevicePluginPaused))
	by := cordoners(n)
	if !slices.Contains(by, moduleKey(m)) {
		return
	}
	by = slices.DeleteFunc(by, func(s string) bool { return s == moduleKey(m) })
	if len(by) == 0 {
		p.delAnnotation(contract.AnnotationCordonedBy)
		f := false
		p.cordon = &f
		return
	}
	p.setAnnotation(contract.AnnotationCordonedBy, strings.Join(by, ","))
}

// advance takes one step of a node's upgrade under way.
func (c *Controller) advance(ctx context.Context, m ModuleConfig, pol Policy, v *ModuleView, nv *NodeView) error {
	n := nv.Node
	stateKey := contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixUpgradeState)
	switch n.Labels[stateKey] {
	case contract.UpgradeDraining:
		return c.drain(ctx, m, pol, v, nv)
	case contract.UpgradeRestarting:
		loader := v.Loader(nv)
		if old := v.Outdated(nv); old != nil {
			return c.deletePod(ctx, old, nil)
		}
		if loader != nil && v.IsCurrent(loader) && PodReady(loader) {
			p := &nodePatch{}
			p.delLabel(contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixDevicePluginPaused))
			c.enter(m, p, contract.UpgradeValidating)
			return c.apply(ctx, n, p)
		}
		if c.since(m, n) > pol.LoadTimeout {
			why := "no new loader pod"
			if loader != nil {
				why = "loader pod " + loader.Name + " is not Ready"
				if msg := FailureMessage(loader); msg != "" {
					why += ": " + msg
				}
			}
			return c.fail(ctx, m, n, &nodePatch{}, fmt.Sprintf("the new version of module %s did not load within %s (%s); the node stays cordoned and the device plugin paused until it loads", m.ID(), pol.LoadTimeout, why))
		}
	case contract.UpgradeValidating:
		if m.DevicePlugin && !anyReady(nv.Plugins) {
			return nil
		}
		return c.finish(ctx, m, v, nv)
	case contract.UpgradeFailed:
		// A failed load resumes by itself once the new loader is Ready (its holder went away).
		loader := v.Loader(nv)
		if v.Outdated(nv) == nil && loader != nil && PodReady(loader) {
			p := &nodePatch{}
			p.delLabel(contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixDevicePluginPaused))
			c.enter(m, p, contract.UpgradeValidating)
			return c.apply(ctx, n, p)
		}
	}
	return nil
}

func (c *Controller) finish(ctx context.Context, m ModuleConfig, v *ModuleView, nv *NodeView) error {
	p := &nodePatch{}
	c.release(m, nv.Node, p)
	p.setLabel(contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixUpgradeState), contract.UpgradeDone)
	p.delAnnotation(contract.UpgradeSinceAnnotation(m.Namespace, m.Name))
	p.delLabel(contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixUpgradeRequested))
	if err := c.apply(ctx, nv.Node, p); err != nil {
		return err
	}
	version, _ := v.LoadedVersion(nv)
	c.event(ctx, m, nv.Node, corev1.EventTypeNormal, ReasonUpgraded, fmt.Sprintf("module %s upgraded to %s; device plugin back, node uncordoned", m.ID(), version))
	return nil
}

func (c *Controller) fail(ctx context.Context, m ModuleConfig, n *corev1.Node, p *nodePatch, msg string) error {
	p.setLabel(contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixUpgradeState), contract.UpgradeFailed)
	p.setAnnotation(contract.UpgradeSinceAnnotation(m.Namespace, m.Name), c.o.Now().UTC().Format(time.RFC3339))
	if err := c.apply(ctx, n, p); err != nil {
		return err
	}
	c.event(ctx, m, n, corev1.EventTypeWarning, ReasonUpgradeFailed, msg)
	return nil
}

func anyReady(pods []*corev1.Pod) bool {
	return slices.ContainsFunc(pods, PodReady)
}

// drain waits for the device plugin to leave (its DaemonSet takes it away once the node has the
// paused label) and evicts the consumers; when both are gone it deletes the old loader pod.
// After the drain timeout it forces (Force) or rolls the node back and fails.
func (c *Controller) drain(ctx context.Context, m ModuleConfig, pol Policy, v *ModuleView, nv *NodeView) error {
	n := nv.Node
	var consumers []*corev1.Pod
	if pol.Consumers != nil {
		for _, ns := range pol.Namespaces {
			list, err := c.o.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
				LabelSelector: pol.Consumers.String(),
				FieldSelector: fields.OneTermEqualSelector("spec.nodeName", n.Name).String(),
			})
			if err != nil {
				return fmt.Errorf("listing the consumers of module %s on node %s in namespace %s: %w", m.ID(), n.Name, ns, err)
			}
			for i := range list.Items {
				p := &list.Items[i]
				if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
					continue
				}
				consumers = append(consumers, p)
			}
		}
	}
	sort.Slice(consumers, func(i, j int) bool {
		return consumers[i].Namespace+"/"+consumers[i].Name < consumers[j].Namespace+"/"+consumers[j].Name
	})
	late := c.since(m, n) > pol.DrainTimeout
	var waiting []string
	for _, p := range consumers {
		waiting = append(waiting, "pod "+p.Namespace+"/"+p.Name)
		if p.DeletionTimestamp != nil && !(late && pol.Force) {
			continue
		}
		var err error
		if late && pol.Force {
			err = c.deletePod(ctx, p, new(int64))
		} else {
			err = c.evict(ctx, p)
		}
		if err != nil {
			return err
		}
	}
	for _, p := range nv.Plugins {
		waiting = append(waiting, "device plugin pod "+p.Name)
		if late && pol.Force {
			if err := c.deletePod(ctx, p, new(int64)); err != nil {
				return err
			}
		}
	}
	if len(waiting) > 0 {
		if late && !pol.Force {
			p := &nodePatch{}
			c.release(m, n, p)
			return c.fail(ctx, m, n, p, fmt.Sprintf("draining the node for module %s took longer than %s: %s still running. Rolled back: the old version stays loaded, the device plugin is back and the node uncordoned. Set upgrade drain.force, or stop them, then remove the label %s to retry", m.ID(), pol.DrainTimeout, strings.Join(waiting, ", "), contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixUpgradeState)))
		}
		return nil
	}
	old := v.Outdated(nv)
	if old != nil {
		if err := c.deletePod(ctx, old, nil); err != nil {
			return err
		}
		c.logf("%s %s: deleted the old loader pod %s (it unloads %s)", m.ID(), n.Name, old.Name, versionOf(old))
	}
	p := &nodePatch{}
	c.enter(m, p, contract.UpgradeRestarting)
	return c.apply(ctx, n, p)
}

func (c *Controller) evict(ctx context.Context, p *corev1.Pod) error {
	err := c.o.Client.PolicyV1().Evictions(p.Namespace).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsTooManyRequests(err):
		// A PodDisruptionBudget says not now: try again next pass.
		c.logf("evicting pod %s/%s: %v (retrying)", p.Namespace, p.Name, err)
		return nil
	}
	return fmt.Errorf("evicting pod %s/%s from node %s: %w", p.Namespace, p.Name, p.Spec.NodeName, err)
}

func (c *Controller) deletePod(ctx context.Context, p *corev1.Pod, grace *int64) error {
	err := c.o.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: grace, Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("deleting pod %s/%s on node %s: %w", p.Namespace, p.Name, p.Spec.NodeName, err)
}
