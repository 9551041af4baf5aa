package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/module"
	"kmm.dev/kmm/pkg/nodes"
)

// Settings are the release-wide settings the chart hands kmm-render next to the module list
// (contract.SettingsKey): build defaults per OS, and kernels to build for ahead of time.
type Settings struct {
	// OSDefaults are the chart's build.osDefaults: per OS family (nodes.OSFamily), the base
	// image and the recipes a build of a kernel of that family gets.
	OSDefaults map[string]OSDefaults `json:"osDefaults,omitempty"`
	// ExtraKernels are kernels no node runs yet (the chart's extraKernels): every helm-managed
	// module whose mapping matches one gets its build ahead of time.
	ExtraKernels []ExtraKernel `json:"extraKernels,omitempty"`
	// ExtraKernelLoaders gives extra kernels loaders too: DaemonSets that select no node until
	// one boots that kernel (the chart's extraKernelLoaders).
	ExtraKernelLoaders bool `json:"extraKernelLoaders,omitempty"`
}

// OSDefaults are one OS family's build defaults.
type OSDefaults struct {
	// BaseImage is the image the builder and the final stage start from; ${KMM_OS_RELEASE} and
	// ${KMM_OS_VARIANT} are replaced by the kernel's nodes' release and variant.
	BaseImage string `json:"baseImage,omitempty"`
	// Headers is a sh script that installs the compiler and the kernel's headers and writes
	// /etc/kmm-build.env (KERNEL_SRC, MAKE_ARGS).
	Headers string `json:"headers,omitempty"`
	// Kmod is a sh script that installs modprobe in the final image.
	Kmod string `json:"kmod,omitempty"`
}

// ExtraKernel is a kernel to build for before any node runs it. In values it is the kernel
// string, or an object that also names the OS image of the nodes that will run it (for the
// build defaults and dnf's --releasever).
type ExtraKernel struct {
	Kernel       string `json:"kernel"`
	OSImage      string `json:"osImage,omitempty"`
	Architecture string `json:"architecture,omitempty"` // amd64 or arm64, as nodes report it
}

// UnmarshalJSON takes a plain string too.
func (e *ExtraKernel) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*e = ExtraKernel{Kernel: s}
		return nil
	}
	type plain ExtraKernel
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*e = ExtraKernel(p)
	return nil
}

// DecodeSettings reads the settings JSON strictly.
func DecodeSettings(data string) (*Settings, error) {
	s := &Settings{}
	if strings.TrimSpace(data) == "" {
		return s, nil
	}
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return nil, err
	}
	return s, s.Validate()
}

// Validate checks the extra kernels: each names a kernel, once, that a label value can express.
func (s *Settings) Validate() error {
	seen := map[string]bool{}
	for i, e := range s.ExtraKernels {
		switch {
		case e.Kernel == "":
			return fmt.Errorf("extraKernels[%d]: no kernel", i)
		case strings.ContainsAny(e.Kernel, " \t\r\n\x00") || len(e.Kernel) > 256:
			return fmt.Errorf("extraKernels[%d]: %q is not a kernel release (uname -r)", i, e.Kernel)
		case seen[e.Kernel]:
			return fmt.Errorf("extraKernels[%d]: kernel %s is listed twice", i, e.Kernel)
		}
		if _, ok := KernelLabelValue(e.Kernel); !ok {
			return fmt.Errorf("extraKernels[%d]: kernel %q has no valid kernel label value, so no loader could select its nodes", i, e.Kernel)
		}
		seen[e.Kernel] = true
	}
	return nil
}

// node is a stand-in for the nodes that will run the extra kernel: its OS image, or the OS
// the kernel string names.
func (e ExtraKernel) node() nodes.Node {
	n := nodes.Node{Kernel: e.Kernel, OSImage: e.OSImage, Architecture: e.Architecture}
	if n.OSImage == "" {
		n.OSImage = nodes.OSImageOfKernel(e.Kernel)
	}
	if n.Architecture == "" {
		n.Architecture = nodes.ArchOfKernel(e.Kernel)
	}
	return n
}

// AddExtraKernels gives the plan a target for each extra kernel the module's mappings match
// and none of its nodes runs: a build ahead of time (registry builds), and a loader when loaders
// is true. Without loaders, a kernel whose mapping builds nothing in a Job gets no target.
func (p *Plan) AddExtraKernels(extras []ExtraKernel, kernelLabel string, loaders bool) error {
	m := p.Module
	if m.Operator() || kernelLabel == "" || len(extras) == 0 {
		return nil
	}
	have := map[string]bool{}
	byLabel := map[string]string{}
	for _, tg := range p.Targets {
		have[tg.Kernel] = true
		byLabel[tg.LabelValue] = tg.Kernel
	}
	for _, e := range extras {
		if have[e.Kernel] {
			continue
		}
		idx := m.Mappings.Match(e.Kernel)
		if idx < 0 {
			continue
		}
		img, err := m.ImageFor(idx, e.Kernel)
		if err != nil {
			return err
		}
		if !loaders {
			bp, err := m.BuildPlanFor(idx, e.Kernel, img)
			if err != nil {
				return err
			}
			if bp == nil || bp.Strategy != module.StrategyRegistry {
				continue
			}
		}
		value, _ := KernelLabelValue(e.Kernel)
		if other, ok := byLabel[value]; ok {
			return fmt.Errorf("module %s: extra kernel %q and kernel %q both have the label value %s=%s; a nodeSelector cannot tell their nodes apart (drop the extra kernel)", m.ID(), e.Kernel, other, kernelLabel, value)
		}
		byLabel[value] = e.Kernel
		n := e.node()
		tg := Target{Kernel: e.Kernel, LabelValue: value, Mapping: idx, Image: img, Extra: true,
			OS: nodes.OSFamily(n), Arch: nodes.Arch(n)}
		tg.Platform = string(nodes.Detect(n))
		if p := nodes.PlatformOfOS(tg.OS); tg.Platform == string(nodes.PlatformGeneric) && p != "" {
			tg.Platform = string(p)
		}
		tg.OSRelease, tg.OSVariant = nodes.OSRelease(n)
		p.Targets = append(p.Targets, tg)
	}
	sort.SliceStable(p.Targets, func(i, j int) bool { return p.Targets[i].Kernel < p.Targets[j].Kernel })
	return nil
}

// Build args kmm-render passes every build, from the kernel's nodes (a module's build args of
// the same name win).
const (
	ArgOS        = "KMM_OS"
	ArgOSRelease = "KMM_OS_RELEASE"
	ArgOSVariant = "KMM_OS_VARIANT"
	ArgArch      = "KMM_ARCH"
	ArgBaseImage = "KMM_BASE_IMAGE"
)

// osBuild is what a target's build gets from the OS defaults: build args and the two recipes.
type osBuild struct {
	args          []kmmv1beta1.BuildArg
	headers, kmod string
	defaults      bool // the OS family's defaults apply
}

// forTarget picks the build defaults of the target's OS family. Nodes of several families, or
// a family the settings do not know, get the OS facts but no base image or recipes.
func (s *Settings) forTarget(tg Target) osBuild {
	var b osBuild
	add := func(name, value string) {
		if value != "" {
			b.args = append(b.args, kmmv1beta1.BuildArg{Name: name, Value: value})
		}
	}
	if tg.OS != "unknown" && !strings.ContainsAny(tg.OS, ", ") {
		add(ArgOS, tg.OS)
	}
	add(ArgOSRelease, tg.OSRelease)
	add(ArgOSVariant, tg.OSVariant)
	if !strings.Contains(tg.Arch, ",") {
		add(ArgArch, tg.Arch)
	}
	if s == nil || strings.Contains(tg.OS, ",") {
		return b
	}
	d, ok := s.OSDefaults[tg.OS]
	if !ok {
		return b
	}
	image, ok := baseImage(d.BaseImage, tg)
	if !ok {
		return b
	}
	add(ArgBaseImage, image)
	b.headers, b.kmod = d.Headers, d.Kmod
	b.defaults = true
	return b
}

// baseImage substitutes the target's OS release and variant in an OS default's base image; ok
// is false when the image needs one the target's nodes do not tell.
func baseImage(image string, tg Target) (string, bool) {
	for _, v := range []struct{ name, value string }{{ArgOSRelease, tg.OSRelease}, {ArgOSVariant, tg.OSVariant}} {
		ref := "${" + v.name + "}"
		if strings.Contains(image, ref) {
			if v.value == "" {
				return "", false
			}
			image = strings.ReplaceAll(image, ref, v.value)
		}
	}
	return image, true
}

// Check returns a warning for each target of the plan whose build gets no OS build defaults:
// nodes of several OS families, an OS family without defaults, or a base image that needs an OS
// release the nodes do not tell.
func (s *Settings) Check(p *Plan) []string {
	m := p.Module
	if s == nil || len(s.OSDefaults) == 0 || m.Operator() || !m.Builds() {
		return nil
	}
	var out []string
	for _, tg := range p.Targets {
		bp, err := m.BuildPlanFor(tg.Mapping, tg.Kernel, tg.Image)
		if err != nil || bp == nil || bp.Build == nil || s.forTarget(tg).defaults {
			continue
		}
		why := fmt.Sprintf("its nodes run OS %q, which build.osDefaults does not name", tg.OS)
		switch _, known := s.OSDefaults[tg.OS]; {
		case strings.Contains(tg.OS, ","):
			why = fmt.Sprintf("its nodes run several OS families (%s)", tg.OS)
		case known && tg.Extra:
			why = fmt.Sprintf("build.osDefaults.%s needs the OS release, which the extra kernel's osImage does not give", tg.OS)
		case known:
			why = fmt.Sprintf("build.osDefaults.%s needs the OS release, which its nodes' osImage does not give", tg.OS)
		}
		out = append(out, fmt.Sprintf("module %s: kernel %s: no build defaults (%s): a Dockerfile that uses %s or kmm-os-headers.sh will fail. Set build args %s, or put the recipes in the build ConfigMap",
			m.ID(), tg.Kernel, why, ArgBaseImage, ArgBaseImage))
	}
	return out
}

// buildPlanFor is the module's build plan for a target, with the target's OS defaults: their
// build args go first, and the module's (and KMM's own) of the same name replace them.
func buildPlanFor(m *Module, tg Target, o ExpandOptions) (*module.BuildPlan, error) {
	bp, err := m.BuildPlanFor(tg.Mapping, tg.Kernel, tg.Image)
	if err != nil || bp == nil || bp.Build == nil {
		return bp, err
	}
	ob := o.Settings.forTarget(tg)
	set := map[string]bool{}
	for _, a := range bp.Args {
		set[a.Name] = true
	}
	var args []kmmv1beta1.BuildArg
	for _, a := range ob.args {
		if !set[a.Name] {
			args = append(args, a)
		}
	}
	bp.Args = append(args, bp.Args...)
	bp.OSHeaders, bp.OSKmod = ob.headers, ob.kmod
	return bp, nil
}
