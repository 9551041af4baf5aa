package contract

import (
	"crypto/sha256"
	"encoding/hex"

	"k8s.io/apimachinery/pkg/util/validation"
)

// The names of kmm's safe upgrades: what kmm-render stamps on loader pods, what the upgrade
// controller (cmd/kmm-upgrade, pkg/upgrade) writes on nodes, and what `kmm-render status` reads.
//
// Node labels are per module, KMM's shape: kmm.node.kubernetes.io/<namespace>.<name>.<suffix>.
// KMM's 40-character limit on name+namespace keeps every such key within 63 characters.
const (
	// AnnotationModuleVersion, on each loader DaemonSet's pod template, is the module version its
	// pods load: moduleLoader.container.version when the module sets one, else the loader image
	// of that kernel.
	AnnotationModuleVersion = "render.kmm.dev/module-version"

	// NodeLabelPrefix starts every node label kmm writes.
	NodeLabelPrefix = "kmm.node.kubernetes.io/"

	// SuffixReady: a Ready loader pod of the module runs on the node (KMM's `.ready` label; the
	// value is empty). Ready means the loader verified that the module in the kernel is its
	// image's (loader.verifyVersion).
	SuffixReady = "ready"
	// SuffixVersionReady: the version that Ready loader loaded, as VersionLabelValue spells it.
	SuffixVersionReady = "version.ready"
	// SuffixUpgradeState: where the node is in an upgrade of the module (the Upgrade* states).
	SuffixUpgradeState = "upgrade-state"
	// SuffixDevicePluginPaused: the module's device plugin must not run on the node. kmm-render
	// gives every device plugin DaemonSet a node affinity on its absence, so setting it makes the
	// DaemonSet controller take the plugin pod away, and removing it brings the pod back.
	SuffixDevicePluginPaused = "device-plugin-paused"
	// SuffixUpgradeSkip: the upgrade controller leaves the node's loader of this module alone.
	SuffixUpgradeSkip = "upgrade-skip"
	// SuffixUpgradeRequested: in manual mode, the node may be upgraded now.
	SuffixUpgradeRequested = "upgrade-requested"

	// LabelUpgradeSkip on a node makes the upgrade controller leave all its modules alone.
	LabelUpgradeSkip = NodeLabelPrefix + "upgrade-skip"

	// AnnotationCordonedBy, on a node, lists ("<ns>.<name>,...") the modules whose upgrade
	// cordoned it. The node is uncordoned when the last one is done; a node someone else cordoned
	// is never uncordoned by an upgrade.
	AnnotationCordonedBy = "upgrade.kmm.dev/cordoned-by"
	// AnnotationPrefixUpgrade starts the per-module node annotation
	// upgrade.kmm.dev/<ns>.<name>.since: when the node entered its current upgrade state (RFC 3339).
	AnnotationPrefixUpgrade = "upgrade.kmm.dev/"
)

// The upgrade states (SuffixUpgradeState's values), in the order a node goes through them.
const (
	UpgradeRequired   = "upgrade-required" // the loader pod is of an older revision
	UpgradeDraining   = "draining"         // cordoned; device plugin and consumers leaving
	UpgradeRestarting = "restarting"       // old loader pod deleted; waiting for the new one to be Ready
	UpgradeValidating = "validating"       // new module loaded; device plugin coming back
	UpgradeDone       = "upgrade-done"     // uncordoned, plugin back, new version loaded
	UpgradeFailed     = "upgrade-failed"   // see the node's Events; resumes when the new loader is Ready
)

// ModuleNodeLabel is the node label kmm.node.kubernetes.io/<namespace>.<name>.<suffix>.
func ModuleNodeLabel(namespace, name, suffix string) string {
	return NodeLabelPrefix + namespace + "." + name + "." + suffix
}

// UpgradeSinceAnnotation is the node annotation upgrade.kmm.dev/<namespace>.<name>.since.
func UpgradeSinceAnnotation(namespace, name string) string {
	return AnnotationPrefixUpgrade + namespace + "." + name + ".since"
}

// VersionLabelValue spells a module version as a label value: the version itself when it is
// one, else "sha256-" and the first 16 hex digits of its SHA-256 (an image reference has '/'
// and ':'). `kmm-render status` shows the full version.
func VersionLabelValue(version string) string {
	if version == "" {
		return ""
	}
	if len(validation.IsValidLabelValue(version)) == 0 {
		return version
	}
	sum := sha256.Sum256([]byte(version))
	return "sha256-" + hex.EncodeToString(sum[:8])
}
