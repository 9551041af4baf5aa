package module

import (
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Upgrade modes (UpgradePolicy.Mode).
const (
	// UpgradeAuto: the upgrade controller upgrades every outdated node, within the policy's bounds.
	UpgradeAuto = "auto"
	// UpgradeManual: it upgrades a node only once someone labels it
	// kmm.node.kubernetes.io/<ns>.<name>.upgrade-requested (KMM's ordered upgrade, by node).
	UpgradeManual = "manual"
)

// UpgradePolicy is how the upgrade controller (cmd/kmm-upgrade) changes the loaded version of a
// helm-managed module: the chart's `upgrade.policy`, which a module's own `upgrade:` overrides
// key by key.
type UpgradePolicy struct {
	// Mode is UpgradeAuto or UpgradeManual.
	Mode string `json:"mode,omitempty"`
	// MaxParallel bounds the nodes upgrading at once, across all kernels of the module.
	MaxParallel *int32 `json:"maxParallel,omitempty"`
	// MaxUnavailable bounds the nodes of the module without a Ready loader (upgrading or
	// failed), across all its kernels: a number or a percentage of its nodes (rounded up).
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// Drain says which pods consume the module and leave the node before the unload.
	Drain *DrainPolicy `json:"drain,omitempty"`
	// LoadTimeout is how long the new loader has to become Ready (Go duration).
	LoadTimeout string `json:"loadTimeout,omitempty"`
}

// DrainPolicy selects the module's consumers on a node being upgraded. They are evicted (PDBs
// are respected); after Timeout, Force deletes them, else the node's upgrade fails and is rolled
// back (plugin back, node uncordoned, old version still loaded).
type DrainPolicy struct {
	// PodSelector is a label selector (kubectl syntax, e.g. "app=gpu-burn"); empty: no consumers.
	PodSelector string `json:"podSelector,omitempty"`
	// Namespaces the consumers run in. Default: the module's namespace. The controller gets
	// pod rights in these namespaces only.
	Namespaces []string `json:"namespaces,omitempty"`
	// Timeout for the device plugin and the consumers to be gone (Go duration).
	Timeout string `json:"timeout,omitempty"`
	// Force deletes the consumers still there after Timeout (grace period 0).
	Force bool `json:"force,omitempty"`
}

// ValidateUpgrade checks a policy, naming each bad field under p.
func ValidateUpgrade(u *UpgradePolicy, p *field.Path) field.ErrorList {
	if u == nil {
		return nil
	}
	var errs field.ErrorList
	switch u.Mode {
	case "", UpgradeAuto, UpgradeManual:
	default:
		errs = append(errs, field.NotSupported(p.Child("mode"), u.Mode, []string{UpgradeAuto, UpgradeManual}))
	}
	if u.MaxParallel != nil && *u.MaxParallel < 1 {
		errs = append(errs, field.Invalid(p.Child("maxParallel"), *u.MaxParallel, "must be at least 1"))
	}
	if u.MaxUnavailable != nil {
		if _, err := intstr.GetScaledValueFromIntOrPercent(u.MaxUnavailable, 100, true); err != nil {
			errs = append(errs, field.Invalid(p.Child("maxUnavailable"), u.MaxUnavailable.String(), "a number or a percentage, e.g. 1 or 25%"))
		} else if v, _ := intstr.GetScaledValueFromIntOrPercent(u.MaxUnavailable, 100, true); v < 1 {
			errs = append(errs, field.Invalid(p.Child("maxUnavailable"), u.MaxUnavailable.String(), "must allow at least one node (1 or more, or a percentage above 0%)"))
		}
	}
	errs = append(errs, validDuration(u.LoadTimeout, p.Child("loadTimeout"))...)
	if d := u.Drain; d != nil {
		dp := p.Child("drain")
		if _, err := labels.Parse(d.PodSelector); err != nil {
			errs = append(errs, field.Invalid(dp.Child("podSelector"), d.PodSelector, err.Error()))
		}
		for i, ns := range d.Namespaces {
			for _, msg := range validation.IsDNS1123Label(ns) {
				errs = append(errs, field.Invalid(dp.Child("namespaces").Index(i), ns, msg))
			}
		}
		errs = append(errs, validDuration(d.Timeout, dp.Child("timeout"))...)
	}
	return errs
}

func validDuration(s string, p *field.Path) field.ErrorList {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return field.ErrorList{field.Invalid(p, s, "a positive Go duration, e.g. 5m or 90s")}
	}
	return nil
}
