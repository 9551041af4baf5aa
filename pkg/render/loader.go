package render

import (
	"path"
	"strings"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
	"kmm.dev/kmm/pkg/module"
)

// FirmwareMountPath is where loader pods mount the host's firmware folder.
const FirmwareMountPath = "/var/lib/firmware"

// LoaderScripts are the /bin/sh scripts a loader container runs after it starts (load) and
// before it stops (unload), made from the module's container spec the way KMM's worker
// (contract.KMMVersion, internal/worker) runs modprobe:
//
//   - firmware: the image's modprobe.firmwarePath is copied to FirmwareMountPath;
//   - in-tree modules to remove are unloaded first, each only if it is loaded;
//   - rawArgs, when set, are the whole modprobe command lines;
//   - otherwise `modprobe -v -d <dirName> <args.load...> <moduleName> <parameters...>`, and
//     `modprobe -r -v -d <dirName> <args.unload...> <moduleName>`;
//   - modulesLoadingOrder [m, d1, d2] means m needs d1 loaded first and d1 needs d2 (KMM writes
//     softdep lines for it): load d2, d1, then m; unload m, d1, d2.
func LoaderScripts(c *kmmv1beta1.ModuleLoaderContainerSpec, kernelMapping *kmmv1beta1.KernelMapping) (load, unload string) {
	mp := c.Modprobe
	dir := mp.DirName
	if dir == "" {
		dir = module.DefaultDirName
	}
	lines := []string{"set -eu"}
	if mp.FirmwarePath != "" {
		lines = append(lines, "mkdir -p "+FirmwareMountPath,
			"cp -R "+shquote(strings.TrimSuffix(mp.FirmwarePath, "/")+"/.")+" "+FirmwareMountPath+"/")
	}
	for _, m := range inTreeModules(c, kernelMapping) {
		lines = append(lines, "if grep -q "+shquote("^"+strings.ReplaceAll(m, "-", "_")+" ")+" /proc/modules; then modprobe -r -v "+shquote(m)+"; fi")
	}
	if mp.RawArgs != nil {
		return strings.Join(append(lines, "modprobe "+shwords(mp.RawArgs.Load...)), "\n"),
			"set -eu\nmodprobe " + shwords(mp.RawArgs.Unload...)
	}
	base := "modprobe -v -d " + shquote(path.Clean(dir))
	deps := []string{}
	if len(mp.ModulesLoadingOrder) > 1 {
		deps = mp.ModulesLoadingOrder[1:]
	}
	for i := len(deps) - 1; i >= 0; i-- {
		lines = append(lines, base+" "+shquote(deps[i]))
	}
	var loadArgs, unloadArgs []string
	if mp.Args != nil {
		loadArgs, unloadArgs = mp.Args.Load, mp.Args.Unload
	}
	main := append(append(append([]string{}, loadArgs...), mp.ModuleName), mp.Parameters...)
	lines = append(lines, base+" "+shwords(main...))
	un := append(append(append([]string{}, unloadArgs...), mp.ModuleName), deps...)
	unload = "set -eu\nmodprobe -r -v -d " + shquote(path.Clean(dir)) + " " + shwords(un...)
	return strings.Join(lines, "\n"), unload
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

// shquote quotes s for /bin/sh: single quotes, with each ' written as '\”.
func shquote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shwords(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shquote(w)
	}
	return strings.Join(q, " ")
}
