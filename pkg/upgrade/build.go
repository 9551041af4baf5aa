package upgrade

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"kmm.dev/kmm/pkg/contract"
)

// The states of the build Job of a node's new loader (registry builds: kmm-render names the
// Job on the loader DaemonSet, contract.AnnotationBuildJob).
const (
	BuildNone     = ""         // a prebuilt image: nothing to wait for
	BuildComplete = "complete" // the Job succeeded: the image is there
	BuildRunning  = "running"  // the Job is still building
	BuildMissing  = "missing"  // no such Job (yet) in the module's namespace
	BuildFailed   = "failed"   // the Job gave up
)

// BuildJob is the name of the Job that builds the image of the node's new loader: the
// AnnotationBuildJob of the DaemonSet of its outdated loader pod, else "" (no upgrade due, or a
// prebuilt image).
func (v *ModuleView) BuildJob(nv *NodeView) string {
	old := v.Outdated(nv)
	if old == nil {
		return ""
	}
	if ds := v.DaemonSets[OwnerDaemonSet(old)]; ds != nil {
		return ds.Annotations[contract.AnnotationBuildJob]
	}
	return ""
}

// Kernel is the kernel of the node's loader DaemonSet ("" when unknown).
func (v *ModuleView) Kernel(nv *NodeView) string {
	for _, p := range nv.Loaders {
		if ds := v.DaemonSets[OwnerDaemonSet(p)]; ds != nil {
			return ds.Annotations[contract.AnnotationKernel]
		}
	}
	return ""
}

// ListBuildJobs lists the module's build Jobs in its namespace (kmm-render labels them with
// the module and the build role), by name.
func ListBuildJobs(ctx context.Context, c kubernetes.Interface, namespace, name string) (map[string]*batchv1.Job, error) {
	sel := labels.SelectorFromSet(labels.Set{
		contract.LabelModuleName: name, contract.LabelModuleNamespace: namespace, contract.LabelRole: contract.RoleBuild,
	}).String()
	list, err := c.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing the build Jobs of module %s/%s: %w", namespace, name, err)
	}
	out := make(map[string]*batchv1.Job, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// JobState is a build Job's state (nil: BuildMissing).
func JobState(j *batchv1.Job) string {
	if j == nil {
		return BuildMissing
	}
	if jobCondition(j, batchv1.JobComplete) != nil || j.Status.Succeeded > 0 {
		return BuildComplete
	}
	if jobCondition(j, batchv1.JobFailed) != nil {
		return BuildFailed
	}
	return BuildRunning
}

// jobCondition is the Job's condition of that type when it is True, else nil.
func jobCondition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if c := &j.Status.Conditions[i]; c.Type == typ && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// buildText says what a node's upgrade waits for, or "" when its image is there (or prebuilt).
func buildText(namespace, job, state string, j *batchv1.Job) string {
	switch state {
	case BuildRunning:
		return fmt.Sprintf("waiting for build Job %s/%s", namespace, job)
	case BuildMissing:
		return fmt.Sprintf("waiting for build Job %s/%s (not found)", namespace, job)
	case BuildFailed:
		s := fmt.Sprintf("build Job %s/%s failed", namespace, job)
		if c := jobCondition(j, batchv1.JobFailed); c != nil && (c.Reason != "" || c.Message != "") {
			s += " (" + c.Reason
			if c.Message != "" {
				if c.Reason != "" {
					s += ": "
				}
				s += c.Message
			}
			s += ")"
		}
		return s
	}
	return ""
}

// buildJobs lists a module's build Jobs at most once per pass, when a node needs them.
type buildJobs struct {
	c               kubernetes.Interface
	namespace, name string
	listed          bool
	jobs            map[string]*batchv1.Job
	err             error
	errReturned     bool // the list's error is the pass's once, not once per node
}

func (b *buildJobs) get(ctx context.Context, job string) (*batchv1.Job, error) {
	if !b.listed {
		b.listed = true
		b.jobs, b.err = ListBuildJobs(ctx, b.c, b.namespace, b.name)
	}
	if b.err != nil {
		return nil, b.err
	}
	return b.jobs[job], nil
}

// buildReady reports whether the node's upgrade may start as far as the image of its new
// loader goes: at once for prebuilt images; for registry builds once the build Job named on
// the loader DaemonSet is complete. Until then the node is left alone (not cordoned, its old
// loader running), and the wait is logged once per Job and state; a failed Job is recorded
// once as a Warning Event on the node.
func (c *Controller) buildReady(ctx context.Context, m ModuleConfig, v *ModuleView, nv *NodeView, jobs *buildJobs) (bool, error) {
	name := v.BuildJob(nv)
	if name == "" {
		return true, nil
	}
	j, err := jobs.get(ctx, name)
	if err != nil {
		if jobs.errReturned {
			return false, nil
		}
		jobs.errReturned = true
		return false, fmt.Errorf("checking the build Job %s/%s before upgrading node %s: %w", m.Namespace, name, nv.Node.Name, err)
	}
	state := JobState(j)
	if state == BuildComplete {
		return true, nil
	}
	key := "build/" + nv.Node.Name + "/" + name + "/" + state
	if j != nil {
		key += "/" + string(j.UID)
	}
	if c.reported[key] {
		return false, nil
	}
	c.reported[key] = true
	text := buildText(m.Namespace, name, state, j)
	if state == BuildFailed {
		c.event(ctx, m, nv.Node, corev1.EventTypeWarning, ReasonBuildFailed, fmt.Sprintf("%s: the image of module %s for kernel %s (version %s) was not built. The node is not upgraded: version %s stays loaded. Fix the build and run helm upgrade again (a changed build is a new Job; to retry an unchanged one, raise the module's imageRebuildTriggerGeneration)", text, m.ID(), v.Kernel(nv), v.WantedVersion(nv), versionOf(v.Outdated(nv))))
		return false, nil
	}
	c.logf("%s %s: %s; the upgrade starts once the image is built", m.ID(), nv.Node.Name, text)
	return false, nil
}
