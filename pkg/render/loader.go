package render

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/module"
)

// LoaderEnv is the environment of a loader container: the chart's load.sh and unload.sh
// (charts/kmm/files) read it and run modprobe the way KMM's worker does (contract.KMMVersion):
//
//   - KMM_KERNEL: the kernel the loader is for (load.sh refuses another);
//   - KMM_ROOT: where the module tree is (empty: the image; node builds: the build's output);
//   - KMM_DIR_NAME, KMM_MODULE, KMM_PARAMETERS, KMM_LOAD_ARGS, KMM_UNLOAD_ARGS,
//     KMM_LOADING_ORDER: `modprobe -v -d <dir> <args.load> <moduleName> <parameters>`, with the
//     modules of modulesLoadingOrder [m, d1, d2] loaded d2 first, then d1, then m, and unloaded
//     in the order m, d1, d2;
//   - KMM_RAW, KMM_RAW_LOAD, KMM_RAW_UNLOAD: rawArgs, the whole modprobe command lines;
//   - KMM_FIRMWARE_PATH: the image's firmware folder, copied where the kernel finds it;
//   - KMM_IN_TREE_REMOVE: in-tree modules unloaded first, the kernel mapping's list when it
//     sets one, else the container's.
//
// Lists are newline-separated. Variables with nothing to say are left out, so that the same
// module gives the same pod template.
func LoaderEnv(c *kmmv1beta1.ModuleLoaderContainerSpec, km *kmmv1beta1.KernelMapping, kernel, root string) []corev1.EnvVar {
	mp := c.Modprobe
	dir := mp.DirName
	if dir == "" {
		dir = module.DefaultDirName
	}
	var env []corev1.EnvVar
	add := func(name string, values ...string) {
		if v := strings.Join(values, "\n"); v != "" {
			env = append(env, corev1.EnvVar{Name: name, Value: v})
		}
	}
	add("KMM_KERNEL", kernel)
	add("KMM_ROOT", root)
	add("KMM_DIR_NAME", path.Clean(dir))
	if mp.RawArgs != nil {
		add("KMM_RAW", "true")
		add("KMM_RAW_LOAD", mp.RawArgs.Load...)
		add("KMM_RAW_UNLOAD", mp.RawArgs.Unload...)
	} else {
		add("KMM_MODULE", mp.ModuleName)
		add("KMM_PARAMETERS", mp.Parameters...)
		if mp.Args != nil {
			add("KMM_LOAD_ARGS", mp.Args.Load...)
			add("KMM_UNLOAD_ARGS", mp.Args.Unload...)
		}
		add("KMM_LOADING_ORDER", mp.ModulesLoadingOrder...)
	}
	if mp.FirmwarePath != "" {
		add("KMM_FIRMWARE_PATH", path.Clean(mp.FirmwarePath))
	}
	add("KMM_IN_TREE_REMOVE", inTreeModules(c, km)...)
	return env
}

// inTreeModules are the in-tree modules to unload before loading: the kernel mapping's list
// when it sets one, else the container's (KMM's deprecated single-module fields included).
//
//nolint:staticcheck // InTreeModuleToRemove is deprecated, and still KMM's API.
func inTreeModules(c *kmmv1beta1.ModuleLoaderContainerSpec, km *kmmv1beta1.KernelMapping) []string {
	if km != nil {
		if km.InTreeModulesToRemove != nil {
			return km.InTreeModulesToRemove
		}
		if km.InTreeModuleToRemove != "" {
			return []string{km.InTreeModuleToRemove}
		}
	}
	if c.InTreeModulesToRemove != nil {
		return c.InTreeModulesToRemove
	}
	if c.InTreeModuleToRemove != "" {
		return []string{c.InTreeModuleToRemove}
	}
	return nil
}

// expandLoader makes the loader DaemonSet of one target: named after the template and the
// kernel, selecting the module's nodes on that kernel, running the resolved image with the
// module's modprobe settings in its environment. A target whose image is built gets, for
// registry builds, an init container that waits for the build Job's image (so a missing image
// shows as "waiting for the build", not as a pull error), and, for node builds, init containers
// that build (and sign) the module on the node into an emptyDir that the loader reads instead
// of an image.
func (t *Template) expandLoader(tg Target, o ExpandOptions) (*yaml.RNode, error) {
	m := t.Module
	ds := t.Node.Copy()
	name, err := ObjectName(t.Node.GetName(), tg.Kernel)
	if err != nil {
		return nil, err
	}
	if err := ds.SetName(name); err != nil {
		return nil, err
	}
	nodeLoaderImage := t.Node.GetAnnotations()[contract.AnnotationNodeLoaderImage]
	if err := ds.PipeE(yaml.ClearAnnotation(contract.AnnotationNodeLoaderImage)); err != nil {
		return nil, err
	}
	if err := t.stamp(ds, tg, contract.RoleModuleLoader, true, o); err != nil {
		return nil, err
	}
	selector := make(map[string]string, len(m.Selector)+1)
	for k, v := range m.Selector {
		selector[k] = v
	}
	selector[o.KernelLabel] = tg.LabelValue
	if err := setStrings(ds, append(append([]string{}, podSpecPath...), "nodeSelector"), selector, true); err != nil {
		return nil, fmt.Errorf("setting the nodeSelector: %w", err)
	}
	if len(tg.Require) > 0 {
		affinity, err := toRNode(corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: tg.Require}}}})
		if err != nil {
			return nil, err
		}
		if err := ds.PipeE(yaml.LookupCreate(yaml.MappingNode, append(append([]string{}, podSpecPath...), "affinity")...), yaml.SetField("nodeAffinity", affinity)); err != nil {
			return nil, fmt.Errorf("setting the node affinity: %w", err)
		}
	}
	c, err := podContainer(ds, "containers", contract.LoaderContainer)
	if err != nil {
		return nil, err
	}
	bp, err := buildPlanFor(m, tg, o)
	if err != nil {
		return nil, err
	}
	image, root := tg.Image, ""
	switch {
	case bp == nil:
		err = removeContainers(ds, "initContainers", contract.ContainerWaitImage, contract.ContainerBuild, contract.ContainerSign)
	case bp.Strategy == module.StrategyNode:
		if nodeLoaderImage == "" {
			return nil, fmt.Errorf("module %s builds on the node, but template %s has no %s annotation (render it with the chart this kmm-render belongs to)", m.ID(), t.Node.GetName(), contract.AnnotationNodeLoaderImage)
		}
		image, root = nodeLoaderImage, contract.NodeBuildRoot
		err = t.nodeBuild(ds, c, bp)
	default:
		err = t.waitForBuild(ds, tg, o)
	}
	if err != nil {
		return nil, err
	}
	if err := c.PipeE(yaml.SetField("image", yaml.NewStringRNode(image))); err != nil {
		return nil, fmt.Errorf("setting the image: %w", err)
	}
	// What the pods load, for the upgrade controller's node labels and `kmm-render status`: the
	// module's version, else the kernel's image (for node builds, the image the build names).
	version := m.Container().Version
	if version == "" {
		version = tg.Image
	}
	if err := setStrings(ds, []string{"spec", "template", "metadata", "annotations"}, map[string]string{contract.AnnotationModuleVersion: version}, false); err != nil {
		return nil, fmt.Errorf("setting the module version annotation: %w", err)
	}
	if err := t.envNodes.set(c, LoaderEnv(m.Container(), &m.Container().KernelMappings[tg.Mapping], tg.Kernel, root)); err != nil {
		return nil, err
	}
	if err := pruneVolumes(ds); err != nil {
		return nil, fmt.Errorf("pruning volumes: %w", err)
	}
	return ds, nil
}

// waitForBuild keeps the init container that waits for the build Job's image and tells it the
// image and the Job.
func (t *Template) waitForBuild(ds *yaml.RNode, tg Target, o ExpandOptions) error {
	job, ok := o.BuildJobs[BuildJobKey(t.Module.ID(), tg.Kernel)]
	if !ok {
		return fmt.Errorf("module %s builds its image for kernel %s, but the input holds no build Job template for it (%s=%s); render it with the chart this kmm-render belongs to",
			t.Module.ID(), tg.Kernel, contract.AnnotationExpand, contract.ExpandModuleBuild)
	}
	if err := removeContainers(ds, "initContainers", contract.ContainerBuild, contract.ContainerSign); err != nil {
		return err
	}
	if err := ds.PipeE(yaml.SetAnnotation(contract.AnnotationBuildJob, job)); err != nil {
		return err
	}
	w, err := podContainer(ds, "initContainers", contract.ContainerWaitImage)
	if err != nil || w == nil {
		return err
	}
	env := []corev1.EnvVar{{Name: "KMM_IMAGE", Value: tg.Image}, {Name: "KMM_BUILD_JOB", Value: t.Module.Namespace + "/" + job}}
	if t.Module.InsecureRegistry(tg.Mapping) {
		env = append(env, corev1.EnvVar{Name: "KMM_INSECURE", Value: "true"})
	}
	return t.envNodes.set(w, env)
}

// nodeBuild fills in the init containers that build (and sign) the module on the node, and
// mounts their output in the loader container.
func (t *Template) nodeBuild(ds, loader *yaml.RNode, bp *module.BuildPlan) error {
	if err := removeContainers(ds, "initContainers", contract.ContainerWaitImage); err != nil {
		return err
	}
	if bp.Sign == nil {
		if err := removeContainers(ds, "initContainers", contract.ContainerSign); err != nil {
			return err
		}
	}
	parts := newBuildParts(t.Module, bp)
	for _, x := range []struct {
		name   string
		env    []corev1.EnvVar
		mounts []corev1.VolumeMount
	}{
		{contract.ContainerBuild, parts.buildEnv, parts.buildMounts},
		{contract.ContainerSign, parts.signEnv, parts.signMounts},
	} {
		if x.name == contract.ContainerSign && bp.Sign == nil {
			continue
		}
		c, err := podContainer(ds, "initContainers", x.name)
		if err != nil || c == nil {
			return fmt.Errorf("template %s has no init container %s: %w", t.Node.GetName(), x.name, err)
		}
		if err := t.envNodes.set(c, x.env); err != nil {
			return err
		}
		if err := setMounts(c, x.mounts); err != nil {
			return err
		}
	}
	if err := setMounts(loader, []corev1.VolumeMount{{Name: "kmm-build", MountPath: contract.NodeBuildMount, ReadOnly: true}}); err != nil {
		return err
	}
	return setVolumes(ds, parts.volumes)
}
