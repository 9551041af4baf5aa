package render

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// Small edits of the pod template of a DaemonSet or a Job (spec.template.spec), each keyed by
// name so that the chart's order and comments stay.

var podSpecPath = []string{"spec", "template", "spec"}

// podContainer returns the container name of list ("containers" or "initContainers"), or nil.
func podContainer(n *yaml.RNode, list, name string) (*yaml.RNode, error) {
	return n.Pipe(yaml.Lookup(append(append([]string{}, podSpecPath...), list, "[name="+name+"]")...))
}

// removeContainers drops the named containers from list, when there.
func removeContainers(n *yaml.RNode, list string, names ...string) error {
	l, err := n.Pipe(yaml.Lookup(append(append([]string{}, podSpecPath...), list)...))
	if err != nil || l == nil {
		return err
	}
	for _, name := range names {
		if err := l.PipeE(yaml.ElementSetter{Keys: []string{"name"}, Values: []string{name}}); err != nil {
			return fmt.Errorf("removing container %s: %w", name, err)
		}
	}
	if len(l.YNode().Content) == 0 {
		return n.PipeE(yaml.Lookup(podSpecPath...), yaml.Clear(list))
	}
	return nil
}

// toRNode turns an API value into a node: keys sorted, as sigs.k8s.io/yaml writes them, but
// "name" first, as people write list elements.
func toRNode(v any) (*yaml.RNode, error) {
	b, err := sigsyaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	n, err := yaml.Parse(string(b))
	if err != nil {
		return nil, err
	}
	if c := n.YNode().Content; n.YNode().Kind == yaml.MappingNode {
		for i := 0; i+1 < len(c); i += 2 {
			if c[i].Value == "name" && i > 0 {
				k, v := c[i], c[i+1]
				copy(c[2:i+2], c[:i])
				c[0], c[1] = k, v
				break
			}
		}
	}
	return n, nil
}

// setElements sets each element of list under parent (a container or the pod spec), replacing
// the one with the same value of key, else appending.
func setElements[T any](parent *yaml.RNode, list, key string, values []T, keyOf func(T) string) error {
	for _, v := range values {
		node, err := toRNode(v)
		if err != nil {
			return err
		}
		if err := parent.PipeE(yaml.LookupCreate(yaml.SequenceNode, list),
			yaml.ElementSetter{Keys: []string{key}, Values: []string{keyOf(v)}, Element: node.YNode()}); err != nil {
			return fmt.Errorf("setting %s %s: %w", list, keyOf(v), err)
		}
	}
	return nil
}

func setEnv(c *yaml.RNode, env []corev1.EnvVar) error {
	return setElements(c, "env", "name", env, func(e corev1.EnvVar) string { return e.Name })
}

// envCache holds the YAML of environment variables by name and value, as toRNode writes them.
// Turning a value into YAML (sigs.k8s.io/yaml, then parsing its output) was a large part of
// expanding a loader, once per variable and kernel, for variables most of which are the same
// for every kernel of a module. The zero value is ready to use; it is not safe for concurrent
// use.
type envCache map[corev1.EnvVar]*yaml.Node

// set does what setEnv does, through the cache; every object gets a copy of its own.
func (ec *envCache) set(c *yaml.RNode, env []corev1.EnvVar) error {
	for _, e := range env {
		if e.ValueFrom != nil {
			// A pointer: equal keys would not mean equal values. kmm sets none.
			if err := setEnv(c, []corev1.EnvVar{e}); err != nil {
				return err
			}
			continue
		}
		n, ok := (*ec)[e]
		if !ok {
			r, err := toRNode(e)
			if err != nil {
				return err
			}
			if *ec == nil {
				*ec = envCache{}
			}
			n = r.YNode()
			(*ec)[e] = n
		}
		if err := c.PipeE(yaml.LookupCreate(yaml.SequenceNode, "env"),
			yaml.ElementSetter{Keys: []string{"name"}, Values: []string{e.Name}, Element: yaml.CopyYNode(n)}); err != nil {
			return fmt.Errorf("setting env %s: %w", e.Name, err)
		}
	}
	return nil
}

func setMounts(c *yaml.RNode, mounts []corev1.VolumeMount) error {
	return setElements(c, "volumeMounts", "mountPath", mounts, func(m corev1.VolumeMount) string { return m.MountPath })
}

func setVolumes(n *yaml.RNode, vols []corev1.Volume) error {
	spec, err := n.Pipe(yaml.Lookup(podSpecPath...))
	if err != nil || spec == nil {
		return fmt.Errorf("no pod spec: %w", err)
	}
	return setElements(spec, "volumes", "name", vols, func(v corev1.Volume) string { return v.Name })
}

// pruneVolumes drops the pod's volumes that no container mounts any more (after containers
// were removed).
func pruneVolumes(n *yaml.RNode) error {
	spec, err := n.Pipe(yaml.Lookup(podSpecPath...))
	if err != nil || spec == nil {
		return err
	}
	used := map[string]bool{}
	for _, list := range []string{"initContainers", "containers"} {
		cs, err := spec.Pipe(yaml.Lookup(list))
		if err != nil {
			return err
		}
		if cs == nil {
			continue
		}
		for _, c := range cs.Content() {
			mounts, err := yaml.NewRNode(c).Pipe(yaml.Lookup("volumeMounts"))
			if err != nil {
				return err
			}
			if mounts == nil {
				continue
			}
			for _, m := range mounts.Content() {
				if name := yaml.NewRNode(m).Field("name"); name != nil {
					used[yaml.GetValue(name.Value)] = true
				}
			}
		}
	}
	vols, err := spec.Pipe(yaml.Lookup("volumes"))
	if err != nil || vols == nil {
		return err
	}
	kept := vols.YNode().Content[:0]
	for _, v := range vols.YNode().Content {
		if name := yaml.NewRNode(v).Field("name"); name != nil && used[yaml.GetValue(name.Value)] {
			kept = append(kept, v)
		}
	}
	vols.YNode().Content = kept
	if len(kept) == 0 {
		return spec.PipeE(yaml.Clear("volumes"))
	}
	return nil
}
