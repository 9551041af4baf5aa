package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultKernelLabel is the node label that carries the kernel: Node Feature Discovery's, also
// used by the NVIDIA GPU operator.
const DefaultKernelLabel = "feature.node.kubernetes.io/kernel-version.full"

var notLabelChars = regexp.MustCompile(`[^-A-Za-z0-9_.]`)

// KernelLabelValue computes the kernel label value exactly as Node Feature Discovery does:
// characters outside [-A-Za-z0-9_.] become '_', then '-', '_' and '.' are trimmed from both
// ends. NFD drops (does not truncate) a value that is still not a valid label value; ok is
// false then, and no node carries the label for that kernel.
func KernelLabelValue(kernel string) (value string, ok bool) {
	v := strings.Trim(notLabelChars.ReplaceAllString(kernel, "_"), "-_.")
	if len(validation.IsValidLabelValue(v)) > 0 || v == "" {
		return "", false
	}
	return v, true
}

// KernelHash is a short, stable digest of the raw kernel string. It tells apart kernels that
// sanitizing folds together ("5.10.109+" and "5.10.109").
func KernelHash(kernel string) string {
	sum := sha256.Sum256([]byte(kernel))
	return hex.EncodeToString(sum[:])[:hashLen]
}

const (
	hashLen      = 8
	maxNameLen   = validation.DNS1123LabelMaxLength
	nameSafeKern = "abcdefghijklmnopqrstuvwxyz0123456789.-"
)

var notNameChars = regexp.MustCompile(`[^a-z0-9]+`)

// ObjectName names the object generated from base for kernel: "<base>-<kernel>", lower-cased,
// every run of characters outside [a-z0-9] turned into one '-'. It is a valid DNS-1123 label
// of at most 63 characters, the same on every run. A short hash of the raw kernel is appended
// whenever the sanitized form loses information beyond '.' becoming '-' (the kernel holds
// characters other than lower-case letters, digits, '.' and '-', or runs of separators) or the
// name must be shortened to fit, so kernels that sanitizing folds ("5.10.109+", "5.10.109")
// get different names. Kernels that differ only in '.' versus '-' ("5.10.109", "5-10-109"; no
// real kernel does) get the same name, which the post-renderer reports as a duplicate.
func ObjectName(base, kernel string) (string, error) {
	kpart := strings.Trim(notNameChars.ReplaceAllString(strings.ToLower(kernel), "-"), "-")
	bpart := strings.Trim(notNameChars.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if bpart == "" {
		return "", fmt.Errorf("cannot name an object after base %q: no letters or digits", base)
	}
	name := bpart
	if kpart != "" {
		name += "-" + kpart
	}
	if kpart == "" || hasForeign(kernel) || len(name) > maxNameLen {
		suffix := "-" + KernelHash(kernel)
		if len(name) > maxNameLen-len(suffix) {
			name = strings.TrimRight(name[:maxNameLen-len(suffix)], "-")
		}
		name += suffix
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return "", fmt.Errorf("generated name %q for kernel %q is invalid: %s", name, kernel, strings.Join(errs, "; "))
	}
	return name, nil
}

// hasForeign reports whether kernel holds a character that ObjectName's sanitizing rewrites
// or drops (anything but lower-case letters, digits, '.' and '-'), or a run of separators
// that it folds.
func hasForeign(kernel string) bool {
	for _, r := range kernel {
		if !strings.ContainsRune(nameSafeKern, r) {
			return true
		}
	}
	return strings.Contains(kernel, "..") || strings.Contains(kernel, "--") ||
		strings.Contains(kernel, ".-") || strings.Contains(kernel, "-.") ||
		strings.HasPrefix(kernel, ".") || strings.HasPrefix(kernel, "-") ||
		strings.HasSuffix(kernel, ".") || strings.HasSuffix(kernel, "-")
}
