package render

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"kmm.dev/kmm/pkg/contract"
)

// expandDevicePlugin restricts the device plugin DaemonSet to the module's nodes whose kernel
// has a loader: the module's selector, and a node affinity on the kernel label values of the
// plan's targets. Its pods start on a node only once the module is loaded there: the chart
// gives them an init container that waits for /sys/module/<moduleName>. With no target there is
// nothing to plug, and no DaemonSet.
func (t *Template) expandDevicePlugin(p *Plan, o ExpandOptions) ([]*yaml.RNode, error) {
	targets := p.LoaderTargets(o.Settings != nil && o.Settings.ExtraKernelLoaders)
	if len(targets) == 0 {
		return nil, nil
	}
	m := t.Module
	ds := t.Node.Copy()
	for _, f := range []yaml.Filter{yaml.ClearAnnotation(contract.AnnotationExpand), yaml.ClearAnnotation(contract.AnnotationModule)} {
		if err := ds.PipeE(f); err != nil {
			return nil, err
		}
	}
	if len(ds.GetAnnotations()) == 0 {
		if err := ds.PipeE(yaml.Lookup("metadata"), yaml.Clear("annotations")); err != nil {
			return nil, err
		}
	}
	labels := map[string]string{
		contract.LabelModuleName:      m.Name,
		contract.LabelModuleNamespace: m.Namespace,
		contract.LabelRole:            contract.RoleDevicePlugin,
	}
	for _, path := range [][]string{{"metadata", "labels"}, {"spec", "template", "metadata", "labels"}, {"spec", "selector", "matchLabels"}} {
		if err := setStrings(ds, path, labels, false); err != nil {
			return nil, err
		}
	}
	platforms, oses := map[string]bool{}, map[string]bool{}
	for _, tg := range targets {
		for _, v := range strings.Split(tg.Platform, ",") {
			platforms[v] = v != ""
		}
		for _, v := range strings.Split(tg.OS, ",") {
			oses[v] = v != ""
		}
	}
	if err := setPlatformLabels(ds, joinSet(platforms), joinSet(oses), o); err != nil {
		return nil, err
	}
	if err := setStrings(ds, append(append([]string{}, podSpecPath...), "nodeSelector"), m.Selector, true); err != nil {
		return nil, err
	}
	// One term for the kernels whose every selected node has a loader; one more per kernel whose
	// loader is restricted further (terms are ORed).
	var values []string
	var terms []corev1.NodeSelectorTerm
	for _, tg := range targets {
		if len(tg.Require) == 0 {
			values = append(values, tg.LabelValue)
			continue
		}
		terms = append(terms, corev1.NodeSelectorTerm{MatchExpressions: append([]corev1.NodeSelectorRequirement{
			{Key: o.KernelLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{tg.LabelValue}}}, tg.Require...)})
	}
	if len(values) > 0 {
		sort.Strings(values)
		terms = append([]corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: o.KernelLabel, Operator: corev1.NodeSelectorOpIn, Values: values}}}}, terms...)
	}
	// Every term also needs the module's device-plugin-paused node label absent: the upgrade
	// controller sets it to take the plugin off a node before the module is unloaded there.
	paused := corev1.NodeSelectorRequirement{Key: contract.ModuleNodeLabel(m.Namespace, m.Name, contract.SuffixDevicePluginPaused), Operator: corev1.NodeSelectorOpDoesNotExist}
	for i := range terms {
		terms[i].MatchExpressions = append(terms[i].MatchExpressions, paused)
	}
	affinity, err := toRNode(corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
	}})
	if err != nil {
		return nil, err
	}
	if err := ds.PipeE(yaml.Lookup(podSpecPath...), yaml.SetField("affinity", affinity)); err != nil {
		return nil, err
	}
	return []*yaml.RNode{ds}, nil
}

// joinSet is the sorted, comma-separated set of the keys that are true.
func joinSet(set map[string]bool) string {
	var out []string
	for k, ok := range set {
		if ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
