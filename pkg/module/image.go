package module

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/distribution/reference"
)

var (
	kernelSplit      = regexp.MustCompile(`[.,-]`)
	notImageTagChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)
)

// MatchKernel is the kernel string KMM matches mappings against and substitutes into images:
// status.nodeInfo.kernelVersion with a trailing '+' trimmed (GKE COS reports e.g. "5.10.109+").
func MatchKernel(kernel string) string {
	return strings.TrimSuffix(kernel, "+")
}

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

// ResolveImage substitutes KMM's variables for kernel into image and checks the result: a
// valid image reference with a tag or a digest.
func ResolveImage(image, kernel, modName, modNamespace string) (string, error) {
	out, err := SubstituteImage(image, SubstitutionVars(kernel, modName, modNamespace))
	if err != nil {
		return "", err
	}
	if err := CheckImageReference(out); err != nil {
		return "", err
	}
	return out, nil
}

// sampleKernel stands for any kernel when an image is checked before any node is known.
const sampleKernel = "1.2.3-4.kmm"

// CheckImageTemplate checks an image as a module declares it, before the kernel is known: its
// variables are all KMM's, and with them substituted it is a valid reference with a tag or a
// digest. KMM's own webhook only asks for a ':' or an '@' somewhere.
func CheckImageTemplate(image, modName, modNamespace string) error {
	_, err := ResolveImage(image, sampleKernel, modName, modNamespace)
	return err
}

// CheckKMMImageFormat is KMM's own admission rule on a Module's images (contract.KMMVersion,
// internal/webhook/module.go validateImageFormat): a ':' or an '@' somewhere, for a tag or a
// digest. It is all kmm checks of a `via: operator` module's images, which the KMM controller
// pulls.
func CheckKMMImageFormat(image string) error {
	if !strings.ContainsAny(image, ":@") {
		return fmt.Errorf("image %q sets neither a tag nor a digest: KMM requires one", image)
	}
	return nil
}

// CheckImageReference reports whether image is a valid reference that names a tag or a digest,
// as KMM requires: a reference without one would silently mean ":latest".
func CheckImageReference(image string) error {
	if image == "" {
		return fmt.Errorf("image is empty")
	}
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return fmt.Errorf("image %q is not a valid image reference: %w", image, err)
	}
	_, tagged := ref.(reference.Tagged)
	_, digested := ref.(reference.Digested)
	if !tagged && !digested {
		return fmt.Errorf("image %q has neither a tag nor a digest (it would mean :latest)", image)
	}
	return nil
}

// RegistryHost is the registry an image reference names ("docker.io" when it names none).
func RegistryHost(image string) string {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return ""
	}
	return reference.Domain(ref)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
