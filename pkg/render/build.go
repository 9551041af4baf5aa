package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/module"
)

// Where build containers find what kmm-render mounts (the chart's build.sh and sign.sh read
// these paths).
const (
	contextMountPath = "/kmm/context"
	secretsMountRoot = "/run/secrets"
	signKeyMountPath = "/kmm/sign/key"
	signCrtMountPath = "/kmm/sign/cert"
)

// buildParts are the environment, volumes and mounts of the container that builds (and, for
// registry builds, signs) bp, and of the one that signs node builds.
type buildParts struct {
	buildEnv, signEnv       []corev1.EnvVar
	buildMounts, signMounts []corev1.VolumeMount
	volumes                 []corev1.Volume
}

func newBuildParts(m *Module, bp *module.BuildPlan) buildParts {
	var p buildParts
	add := func(env *[]corev1.EnvVar, name string, values ...string) {
		if v := strings.Join(values, "\n"); v != "" {
			*env = append(*env, corev1.EnvVar{Name: name, Value: v})
		}
	}
	node := bp.Strategy == module.StrategyNode
	if node {
		add(&p.buildEnv, "KMM_OUTPUT", "local")
		add(&p.buildEnv, "KMM_LOCAL_DIR", contract.NodeBuildRoot)
	} else {
		add(&p.buildEnv, "KMM_OUTPUT", "registry")
		add(&p.buildEnv, "KMM_IMAGE", bp.Image)
	}
	insecure := insecureRegistries(bp)
	if b := bp.Build; b != nil {
		args := make([]string, len(bp.Args))
		for i, a := range bp.Args {
			args[i] = a.Name + "=" + a.Value
		}
		add(&p.buildEnv, "KMM_BUILD_ARGS", args...)
		add(&p.buildEnv, "KMM_OS_HEADERS", bp.OSHeaders)
		add(&p.buildEnv, "KMM_OS_KMOD", bp.OSKmod)
		p.volumes = append(p.volumes, corev1.Volume{Name: "kmm-context", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: bp.DockerfileConfigMap}}}})
		p.buildMounts = append(p.buildMounts, corev1.VolumeMount{Name: "kmm-context", MountPath: contextMountPath, ReadOnly: true})
		var names []string
		for i, s := range b.Secrets {
			vol := "kmm-build-secret-" + strconv.Itoa(i)
			names = append(names, s.Name)
			p.volumes = append(p.volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: s.Name}}})
			p.buildMounts = append(p.buildMounts, corev1.VolumeMount{Name: vol, MountPath: secretsMountRoot + "/" + s.Name, ReadOnly: true})
		}
		add(&p.buildEnv, "KMM_SECRETS", names...)
		if b.BaseImageRegistryTLS.Insecure || b.BaseImageRegistryTLS.InsecureSkipTLSVerify {
			add(&p.buildEnv, "KMM_INSECURE_BASE_IMAGES", "true")
		}
	} else {
		add(&p.buildEnv, "KMM_BUILD", "false")
	}
	s := bp.Sign
	if s == nil {
		add(&p.buildEnv, "KMM_INSECURE_REGISTRIES", insecure...)
		return p
	}
	dir := module.DefaultDirName
	if d := m.Container().Modprobe.DirName; d != "" {
		dir = d
	}
	signEnv, signMounts := &p.buildEnv, &p.buildMounts
	if node {
		signEnv, signMounts = &p.signEnv, &p.signMounts
		add(signEnv, "KMM_ROOT", contract.NodeBuildRoot)
	} else {
		add(signEnv, "KMM_SIGN", "true")
		add(signEnv, "KMM_UNSIGNED_IMAGE", bp.UnsignedImage)
		add(signEnv, "KMM_INSECURE_REGISTRIES", insecure...)
	}
	add(signEnv, "KMM_DIR_NAME", dir)
	add(signEnv, "KMM_FILES_TO_SIGN", s.FilesToSign...)
	p.volumes = append(p.volumes,
		corev1.Volume{Name: "kmm-sign-key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: s.KeySecret.Name, Items: []corev1.KeyToPath{{Key: "key", Path: "key.pem"}}}}},
		corev1.Volume{Name: "kmm-sign-cert", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: s.CertSecret.Name, Items: []corev1.KeyToPath{{Key: "cert", Path: "cert.pem"}}}}})
	*signMounts = append(*signMounts,
		corev1.VolumeMount{Name: "kmm-sign-key", MountPath: signKeyMountPath, ReadOnly: true},
		corev1.VolumeMount{Name: "kmm-sign-cert", MountPath: signCrtMountPath, ReadOnly: true})
	return p
}

// insecureRegistries are the registries a registry build pushes to over plain HTTP or
// unverified TLS, once each: the image's (registryTLS) and the unsigned image's
// (sign.unsignedImageRegistryTLS). Node builds push nothing.
func insecureRegistries(bp *module.BuildPlan) []string {
	if bp.Strategy == module.StrategyNode {
		return nil
	}
	var out []string
	addHost := func(image string) {
		if h := module.RegistryHost(image); !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if bp.InsecureRegistry {
		addHost(bp.Image)
	}
	if s := bp.Sign; s != nil && (s.UnsignedImageRegistryTLS.Insecure || s.UnsignedImageRegistryTLS.InsecureSkipTLSVerify) {
		addHost(bp.UnsignedImage)
	}
	return out
}

// expandBuilds makes one build Job per target whose mapping builds or signs, for registry
// builds. Its name ends in a hash of everything the build depends on: the Job as generated,
// the Dockerfile when the chart renders it, and the module's imageRebuildTriggerGeneration.
// Unchanged inputs give the same Job on `helm upgrade`; changed ones a new Job (Jobs are
// immutable), which finds the image there already unless its tag changed too (KMM never
// rebuilds an image that exists).
func (t *Template) expandBuilds(p *Plan, o ExpandOptions) ([]*yaml.RNode, error) {
	m := t.Module
	if m.BuildStrategy() != module.StrategyRegistry {
		return nil, nil
	}
	var out []*yaml.RNode
	for _, tg := range p.Targets {
		bp, err := buildPlanFor(m, tg, o)
		if err != nil {
			return nil, err
		}
		if bp == nil {
			continue
		}
		job, err := t.expandBuild(tg, bp, o)
		if err != nil {
			return nil, fmt.Errorf("template %s, kernel %s: %w", t.Node.GetName(), tg.Kernel, err)
		}
		if o.BuildJobs != nil {
			o.BuildJobs[BuildJobKey(m.ID(), tg.Kernel)] = job.GetName()
		}
		out = append(out, job)
	}
	return out, nil
}

func (t *Template) expandBuild(tg Target, bp *module.BuildPlan, o ExpandOptions) (*yaml.RNode, error) {
	m := t.Module
	job := t.Node.Copy()
	if err := t.stamp(job, tg, contract.RoleBuild, false, o); err != nil {
		return nil, err
	}
	// KMM builds on the build selector's nodes, else the module's: the kernel comes from the
	// Dockerfile's headers, not from the node.
	selector := m.Selector
	if bp.Build != nil && len(bp.Build.Selector) > 0 {
		selector = bp.Build.Selector
	}
	if err := setStrings(job, append(append([]string{}, podSpecPath...), "nodeSelector"), selector, true); err != nil {
		return nil, fmt.Errorf("setting the nodeSelector: %w", err)
	}
	parts := newBuildParts(m, bp)
	c, err := podContainer(job, "containers", contract.ContainerBuild)
	if err != nil || c == nil {
		return nil, fmt.Errorf("no container %s: %w", contract.ContainerBuild, err)
	}
	if err := t.envNodes.set(c, parts.buildEnv); err != nil {
		return nil, err
	}
	if err := setMounts(c, parts.buildMounts); err != nil {
		return nil, err
	}
	if check, err := podContainer(job, "initContainers", contract.ContainerCheck); err != nil {
		return nil, err
	} else if check != nil {
		env := []corev1.EnvVar{{Name: "KMM_IMAGE", Value: bp.Image}}
		if bp.InsecureRegistry {
			env = append(env, corev1.EnvVar{Name: "KMM_INSECURE", Value: "true"})
		}
		if err := t.envNodes.set(check, env); err != nil {
			return nil, err
		}
	}
	if err := setVolumes(job, parts.volumes); err != nil {
		return nil, err
	}
	name, err := t.buildJobName(job, bp, o)
	if err != nil {
		return nil, err
	}
	if err := job.SetName(name); err != nil {
		return nil, err
	}
	return job, nil
}

// buildJobName is "<template name>-<hash>", the hash over the generated Job and the build's
// other inputs.
func (t *Template) buildJobName(job *yaml.RNode, bp *module.BuildPlan, o ExpandOptions) (string, error) {
	s, err := job.String()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(s))
	if bp.Build != nil {
		h.Write([]byte("\x00dockerfile\x00" + o.ConfigMaps[t.Module.Namespace+"/"+bp.DockerfileConfigMap]))
	}
	if g := t.Module.ImageRebuildTriggerGeneration; g != nil {
		h.Write([]byte("\x00trigger\x00" + strconv.Itoa(*g)))
	}
	suffix := "-" + hex.EncodeToString(h.Sum(nil))[:10]
	base := t.Node.GetName()
	if len(base) > maxNameLen-len(suffix) {
		base = strings.TrimRight(base[:maxNameLen-len(suffix)], "-")
	}
	return base + suffix, nil
}
