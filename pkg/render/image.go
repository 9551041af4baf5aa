package render

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

var (
	kernelSplit      = regexp.MustCompile(`[.,-]`)
	notImageTagChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)
)

// SubstitutionVars returns the variables KMM substitutes in image names for a module and a node
// kernel. Kernel-derived values have every character outside [A-Za-z0-9._-] replaced by '_',
// since image tags cannot hold them. KERNEL_XYZ, KERNEL_X, KERNEL_Y and KERNEL_Z are only
// defined for kernels that split on [.,-] into at least three parts.
func SubstitutionVars(kernel, modName, modNamespace string) map[string]string {
	k := notImageTagChars.ReplaceAllString(MatchKernel(kernel), "_")
	vars := map[string]string{
		"KERNEL_FULL_VERSION": k,
		"KERNEL_VERSION":      k,
		"MOD_NAME":            modName,
		"MOD_NAMESPACE":       modNamespace,
	}
	if parts := kernelSplit.Split(k, -1); len(parts) >= 3 {
		vars["KERNEL_X"] = parts[0]
		vars["KERNEL_Y"] = parts[1]
		vars["KERNEL_Z"] = parts[2]
		vars["KERNEL_XYZ"] = strings.Join(parts[:3], ".")
	}
	return vars
}

// SubstituteImage expands ${VAR} and $VAR in image with vars. A variable that vars does not
// define is an error that names it, rather than a silently emptied image reference.
func SubstituteImage(image string, vars map[string]string) (string, error) {
	var unknown []string
	out := os.Expand(image, func(name string) string {
		v, ok := vars[name]
		if !ok {
			unknown = append(unknown, name)
		}
		return v
	})
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return "", fmt.Errorf("image %q uses undefined variable(s) %s (defined: %s)",
			image, strings.Join(unknown, ", "), strings.Join(sortedKeys(vars), ", "))
	}
	return out, nil
}

// CheckImageReference reports whether image names a tag or a digest, as KMM requires: a
// reference without one would silently mean ":latest".
func CheckImageReference(image string) error {
	if image == "" {
		return fmt.Errorf("image is empty")
	}
	if strings.Contains(image, "@") {
		return nil
	}
	lastSlash := strings.LastIndex(image, "/")
	if !strings.Contains(image[lastSlash+1:], ":") {
		return fmt.Errorf("image %q has neither a tag nor a digest", image)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
