// Package module is kmm's one module type: a module as the chart's values declare it, helm-managed
// or handed to the KMM controller, decoded strictly into KMM's own API types (api/v1beta1), and
// checked against every rule of KMM's admission webhook (contract.KMMVersion) before anything is
// applied.
package module

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/contract"
)

// Via says who loads a module.
type Via string

const (
	// ViaHelm (the default): loader DaemonSets rendered by the chart and expanded per kernel by
	// kmm-render.
	ViaHelm Via = "helm"
	// ViaOperator: a KMM Module object that the KMM controller reconciles.
	ViaOperator Via = "operator"
)

// Module is one entry of the chart's `modules:` list. KMM's ModuleSpec (selector, tolerations,
// imageRepoSecret, moduleLoader with its build, sign, modprobe and kernel mappings, devicePlugin)
// is inlined; only what kmm adds stands beside it.
type Module struct {
	// Name is the Module's (or the loader's) name.
	Name string `json:"name"`
	// Namespace is where the loader or the Module lives. The chart fills in the release
	// namespace when the values name none.
	Namespace string `json:"namespace,omitempty"`
	// Via is ViaHelm (also when empty) or ViaOperator.
	Via Via `json:"via,omitempty"`

	kmmv1beta1.ModuleSpec `json:",inline"`

	// Loader overrides the chart's `loader:` defaults for this module's loader pods (via: helm).
	Loader *LoaderOverrides `json:"loader,omitempty"`
	// Builder says how a helm-managed module's builds run (via: helm).
	Builder *Builder `json:"builder,omitempty"`
	// Upgrade overrides the chart's `upgrade.policy` for this module (via: helm): how the upgrade
	// controller moves its nodes to a new version.
	Upgrade *UpgradePolicy `json:"upgrade,omitempty"`
	// AllowCOS lets a helm-managed module's loaders run on Container-Optimized OS CPU and TPU
	// nodes, whose LoadPin refuses out-of-tree modules unless it is turned off there. Without
	// it those nodes get no loader.
	AllowCOS bool `json:"allowCOS,omitempty"`
	// AllowEKSAutoMode lets a helm-managed module's loaders run on EKS Auto Mode nodes, whose
	// AWS-managed Bottlerocket image and kernel change on AWS's schedule. Without it those nodes
	// get no loader.
	AllowEKSAutoMode bool `json:"allowEKSAutoMode,omitempty"`
}

// LoaderOverrides are the per-module overrides of the chart's `loader:` values.
type LoaderOverrides struct {
	Resources                     *corev1.ResourceRequirements `json:"resources,omitempty"`
	PriorityClassName             string                       `json:"priorityClassName,omitempty"`
	TerminationGracePeriodSeconds *int64                       `json:"terminationGracePeriodSeconds,omitempty"`
	MaxUnavailable                *intstr.IntOrString          `json:"maxUnavailable,omitempty"`
	PodLabels                     map[string]string            `json:"podLabels,omitempty"`
	PodAnnotations                map[string]string            `json:"podAnnotations,omitempty"`
	FirmwareHostPath              string                       `json:"firmwareHostPath,omitempty"`
	UnloadOnStop                  *bool                        `json:"unloadOnStop,omitempty"`
	UnloadWaitSeconds             *int64                       `json:"unloadWaitSeconds,omitempty"`
	VerifyVersion                 *bool                        `json:"verifyVersion,omitempty"`
	ToolsImage                    *ImageRef                    `json:"toolsImage,omitempty"`
}

// ImageRef is an image as the chart's values name one.
type ImageRef struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag,omitempty"`
	Digest     string `json:"digest,omitempty"`
}

// ID is "namespace/name", how messages name a module.
func (m *Module) ID() string { return m.Namespace + "/" + m.Name }

// Operator reports whether the KMM controller loads the module (via: operator).
func (m *Module) Operator() bool { return m.Via == ViaOperator }

// Container is the module's loader container, or nil when it has no moduleLoader.
func (m *Module) Container() *kmmv1beta1.ModuleLoaderContainerSpec {
	if m.ModuleLoader == nil {
		return nil
	}
	return &m.ModuleLoader.Container
}

// DecodeList decodes a JSON list of modules (the chart's module list) strictly: an unknown,
// misspelled or repeated field is an error that names its path, e.g.
// `modules[1] (kmm-demo/foo): unknown field "moduleLoader.container.kernelMapping"`.
func DecodeList(data []byte) ([]Module, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("modules: not a JSON list: %w", err)
	}
	out := make([]Module, len(raw))
	for i, r := range raw {
		if err := Decode(r, &out[i]); err != nil {
			return nil, fmt.Errorf("modules[%d]%s: %w", i, peekName(r), err)
		}
	}
	return out, nil
}

// Decode decodes one JSON object into v strictly (see DecodeList). v is a *Module, a
// *kmmv1beta1.Module or any other API type.
func Decode(data []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(data, v)
	if err != nil {
		return describeDecodeError(err)
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// describeDecodeError turns encoding/json's type errors, which name Go struct fields, into ones
// that name the JSON path.
func describeDecodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("field %q: a JSON %s cannot be a %s", jsonPath(te.Field), te.Value, te.Type)
	}
	return err
}

// jsonPath drops the Go names of inlined structs from an UnmarshalTypeError field path
// ("ModuleSpec.moduleLoader.container" -> "moduleLoader.container").
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	out := parts[:0]
	for _, p := range parts {
		if p == "ModuleSpec" {
			continue
		}
		out = append(out, p)
	}
	return strings.Join(out, ".")
}

// peekName returns " (namespace/name)" of a raw module, for messages, or "".
func peekName(r json.RawMessage) string {
	var id struct {
		Name      any `json:"name"`
		Namespace any `json:"namespace"`
	}
	if json.Unmarshal(r, &id) != nil || id.Name == nil {
		return ""
	}
	if ns, ok := id.Namespace.(string); ok && ns != "" {
		return fmt.Sprintf(" (%s/%v)", ns, id.Name)
	}
	return fmt.Sprintf(" (%v)", id.Name)
}

// FromObject returns the module of a KMM Module object (via: operator).
func FromObject(o *kmmv1beta1.Module) *Module {
	return &Module{Name: o.Name, Namespace: o.Namespace, Via: ViaOperator, ModuleSpec: o.Spec}
}

// DescribeMapping names a kernel mapping for people: `literal 5.4.1` or `regexp ^5\.4`.
func DescribeMapping(km *kmmv1beta1.KernelMapping) string {
	if km.Literal != "" && km.Regexp == "" {
		return "literal " + km.Literal
	}
	if km.Regexp != "" && km.Literal == "" {
		return "regexp " + km.Regexp
	}
	return fmt.Sprintf("literal %q and regexp %q", km.Literal, km.Regexp)
}

// Refused turns a module's validation errors into one error that names the module and lists
// each field, or returns nil when there are none.
func Refused(id string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return fmt.Errorf("module %s breaks KMM %s's admission rules:\n  %s", id, contract.KMMVersion, strings.Join(lines, "\n  "))
}
