package render

import (
	"testing"

	"github.com/stretchr/testify/assert"

	kmmv1beta1 "kmm.dev/kmm/api/v1beta1"
)

func TestLoaderScripts(t *testing.T) {
	tests := []struct {
		name         string
		c            kmmv1beta1.ModuleLoaderContainerSpec
		km           *kmmv1beta1.KernelMapping
		load, unload string
	}{
		{
			name:   "module name, default dirName",
			c:      kmmv1beta1.ModuleLoaderContainerSpec{Modprobe: kmmv1beta1.ModprobeSpec{ModuleName: "ptp"}},
			load:   "set -eu\nmodprobe -v -d '/opt' 'ptp'",
			unload: "set -eu\nmodprobe -r -v -d '/opt' 'ptp'",
		},
		{
			name: "args go before the module name, parameters after it",
			c: kmmv1beta1.ModuleLoaderContainerSpec{Modprobe: kmmv1beta1.ModprobeSpec{
				ModuleName: "ptp", DirName: "/mods/", Parameters: []string{"debug=1", "name=it's"},
				Args: &kmmv1beta1.ModprobeArgs{Load: []string{"--first-time"}, Unload: []string{"--wait=5000"}},
			}},
			load:   "set -eu\nmodprobe -v -d '/mods' '--first-time' 'ptp' 'debug=1' 'name=it'\\''s'",
			unload: "set -eu\nmodprobe -r -v -d '/mods' '--wait=5000' 'ptp'",
		},
		{
			name: "rawArgs are the whole command",
			c: kmmv1beta1.ModuleLoaderContainerSpec{Modprobe: kmmv1beta1.ModprobeSpec{
				RawArgs: &kmmv1beta1.ModprobeArgs{Load: []string{"-d", "/x", "ptp"}, Unload: []string{"-r", "-d", "/x", "ptp"}},
			}},
			load:   "set -eu\nmodprobe '-d' '/x' 'ptp'",
			unload: "set -eu\nmodprobe '-r' '-d' '/x' 'ptp'",
		},
		{
			name: "loading order [a, b, c]: load c, b, a; unload a, b, c",
			c: kmmv1beta1.ModuleLoaderContainerSpec{Modprobe: kmmv1beta1.ModprobeSpec{
				ModuleName: "a", ModulesLoadingOrder: []string{"a", "b", "c"},
			}},
			load:   "set -eu\nmodprobe -v -d '/opt' 'c'\nmodprobe -v -d '/opt' 'b'\nmodprobe -v -d '/opt' 'a'",
			unload: "set -eu\nmodprobe -r -v -d '/opt' 'a' 'b' 'c'",
		},
		{
			name: "firmware and in-tree modules of the container",
			c: kmmv1beta1.ModuleLoaderContainerSpec{
				InTreeModulesToRemove: []string{"ice", "irdma-x"},
				Modprobe:              kmmv1beta1.ModprobeSpec{ModuleName: "ice", FirmwarePath: "/firmware/"},
			},
			load: "set -eu\nmkdir -p /var/lib/firmware\ncp -R '/firmware/.' /var/lib/firmware/\n" +
				"if grep -q '^ice ' /proc/modules; then modprobe -r -v 'ice'; fi\n" +
				"if grep -q '^irdma_x ' /proc/modules; then modprobe -r -v 'irdma-x'; fi\n" +
				"modprobe -v -d '/opt' 'ice'",
			unload: "set -eu\nmodprobe -r -v -d '/opt' 'ice'",
		},
		{
			name: "the kernel mapping's in-tree modules win over the container's",
			c: kmmv1beta1.ModuleLoaderContainerSpec{
				InTreeModulesToRemove: []string{"ice"},
				Modprobe:              kmmv1beta1.ModprobeSpec{ModuleName: "ice"},
			},
			km:     &kmmv1beta1.KernelMapping{Regexp: ".", InTreeModulesToRemove: []string{"i40e"}},
			load:   "set -eu\nif grep -q '^i40e ' /proc/modules; then modprobe -r -v 'i40e'; fi\nmodprobe -v -d '/opt' 'ice'",
			unload: "set -eu\nmodprobe -r -v -d '/opt' 'ice'",
		},
		{
			name: "deprecated single in-tree module",
			c: kmmv1beta1.ModuleLoaderContainerSpec{
				InTreeModuleToRemove: "ice", //nolint:staticcheck
				Modprobe:             kmmv1beta1.ModprobeSpec{ModuleName: "ice"},
			},
			load:   "set -eu\nif grep -q '^ice ' /proc/modules; then modprobe -r -v 'ice'; fi\nmodprobe -v -d '/opt' 'ice'",
			unload: "set -eu\nmodprobe -r -v -d '/opt' 'ice'",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			load, unload := LoaderScripts(&tt.c, tt.km)
			assert.Equal(t, tt.load, load)
			assert.Equal(t, tt.unload, unload)
		})
	}
}
