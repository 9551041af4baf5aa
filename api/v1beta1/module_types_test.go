/*
Copyright The kmm Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1beta1

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

func ptrTo[T any](v T) *T { return &v }

func minimalModule() *Module {
	return &Module{
		TypeMeta:   metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "Module"},
		ObjectMeta: metav1.ObjectMeta{Name: "minimal", Namespace: "default"},
		Spec: ModuleSpec{
			Selector: map[string]string{"kubernetes.io/os": "linux"},
			ModuleLoader: &ModuleLoaderSpec{
				Container: ModuleLoaderContainerSpec{
					KernelMappings: []KernelMapping{
						{Literal: "6.1.0-13-amd64", ContainerImage: "registry.example/kmod:6.1.0-13-amd64"},
					},
					Modprobe: ModprobeSpec{ModuleName: "kmm_ci_a"},
				},
			},
		},
	}
}

func fullModule() *Module {
	return &Module{
		TypeMeta: metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "Module"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      "full",
			Namespace: "kmm-system",
			Labels:    map[string]string{"app": "kmm"},
		},
		Spec: ModuleSpec{
			DevicePlugin: &DevicePluginSpec{
				Container: DevicePluginContainerSpec{
					Command:         []string{"/plugin"},
					Args:            []string{"--verbose"},
					Env:             []v1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}},
					Image:           "registry.example/device-plugin:v1",
					ImagePullPolicy: v1.PullIfNotPresent,
					Resources: v1.ResourceRequirements{
						Limits: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m")},
					},
					VolumeMounts: []v1.VolumeMount{{Name: "dev", MountPath: "/dev"}},
				},
				InitContainer:      &DevicePluginContainerSpec{Image: "registry.example/init:v1"},
				ServiceAccountName: "device-plugin",
				Volumes: []v1.Volume{{
					Name:         "dev",
					VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/dev"}},
				}},
			},
			ModuleLoader: &ModuleLoaderSpec{
				Container: ModuleLoaderContainerSpec{
					Build: &Build{
						BuildArgs:            []BuildArg{{Name: "KVER", Value: "6.1"}},
						DockerfileConfigMap:  &v1.LocalObjectReference{Name: "dockerfile"},
						BaseImageRegistryTLS: TLSOptions{InsecureSkipTLSVerify: true},
						Secrets:              []v1.LocalObjectReference{{Name: "git-token"}},
						KanikoParams:         &KanikoParams{Tag: "debug"},
						Selector:             map[string]string{"node-role.kubernetes.io/worker": ""},
					},
					Sign: &Sign{
						UnsignedImage: "registry.example/kmod-unsigned:6.1",
						KeySecret:     &v1.LocalObjectReference{Name: "signing-key"},
						CertSecret:    &v1.LocalObjectReference{Name: "signing-cert"},
						FilesToSign:   []string{"/opt/lib/modules/6.1/kmm_ci_a.ko"},
					},
					Version:         "v2",
					ContainerImage:  "registry.example/kmod:${KERNEL_FULL_VERSION}",
					ImagePullPolicy: v1.PullAlways,
					KernelMappings: []KernelMapping{
						{Regexp: `^.+\.el9\.x86_64$`, RegistryTLS: &TLSOptions{Insecure: true}},
						{Literal: "6.1.0", ContainerImage: "registry.example/kmod:6.1.0", InTreeModulesToRemove: []string{"intree"}},
					},
					Modprobe: ModprobeSpec{
						ModuleName:          "kmm_ci_a",
						Parameters:          []string{"debug=1"},
						DirName:             "/opt",
						Args:                &ModprobeArgs{Load: []string{"-v"}},
						FirmwarePath:        "/firmware",
						ModulesLoadingOrder: []string{"kmm_ci_a", "kmm_ci_b"},
					},
					RegistryTLS:          TLSOptions{Insecure: true},
					InTreeModuleToRemove: "legacy",
				},
				ServiceAccountName: "module-loader",
			},
			ImageRepoSecret:               &v1.LocalObjectReference{Name: "pull-secret"},
			Selector:                      map[string]string{"feature.node.kubernetes.io/pci-10de.present": "true"},
			Tolerations:                   []v1.Toleration{{Key: "gpu", Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}},
			ImageRebuildTriggerGeneration: ptrTo(3),
		},
		Status: ModuleStatus{
			DevicePlugin:                  DaemonSetStatus{NodesMatchingSelectorNumber: 2, DesiredNumber: 2, AvailableNumber: 1},
			ModuleLoader:                  DaemonSetStatus{NodesMatchingSelectorNumber: 2, DesiredNumber: 2, AvailableNumber: 2},
			ImageRebuildTriggerGeneration: ptrTo(2),
		},
	}
}

func TestModuleJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   *Module
		// wantKeys are JSON paths (as nested keys) that must be present in the encoded object.
		wantKeys [][]string
		// absentKeys are JSON paths that must not be present in the encoded object.
		absentKeys [][]string
	}{
		{
			name: "minimal module",
			in:   minimalModule(),
			wantKeys: [][]string{
				{"apiVersion"},
				{"spec", "selector"},
				{"spec", "moduleLoader", "container", "kernelMappings"},
				{"spec", "moduleLoader", "container", "modprobe", "moduleName"},
			},
			absentKeys: [][]string{
				{"spec", "imageRebuildTriggerGeneration"},
				{"spec", "imageRepoSecret"},
				{"spec", "tolerations"},
				{"spec", "moduleLoader", "container", "modprobe", "dirName"},
			},
		},
		{
			name: "module with every section set",
			in:   fullModule(),
			wantKeys: [][]string{
				{"spec", "devicePlugin", "initContainer", "image"},
				{"spec", "devicePlugin", "volumes"},
				{"spec", "moduleLoader", "container", "build", "dockerfileConfigMap", "name"},
				{"spec", "moduleLoader", "container", "build", "kanikoParams", "tag"},
				{"spec", "moduleLoader", "container", "sign", "filesToSign"},
				{"spec", "moduleLoader", "container", "modprobe", "modulesLoadingOrder"},
				{"spec", "moduleLoader", "container", "inTreeModuleToRemove"},
				{"spec", "imageRebuildTriggerGeneration"},
				{"status", "moduleLoader", "availableNumber"},
				{"status", "imageRebuildTriggerGeneration"},
			},
		},
		{
			name: "empty module",
			in:   &Module{},
			wantKeys: [][]string{
				{"spec", "selector"},
			},
			absentKeys: [][]string{
				{"spec", "moduleLoader"},
				{"status", "imageRebuildTriggerGeneration"},
			},
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y, err := yaml.Marshal(tc.in)
			require.NoError(t, err)

			var fromYAML Module
			require.NoError(t, yaml.UnmarshalStrict(y, &fromYAML))
			assert.True(t, apiequality.Semantic.DeepEqual(tc.in, &fromYAML),
				"YAML round trip changed the object:\n%s", y)

			j, err := yaml.YAMLToJSON(y)
			require.NoError(t, err)

			var fromJSON Module
			require.NoError(t, json.Unmarshal(j, &fromJSON))
			assert.True(t, apiequality.Semantic.DeepEqual(tc.in, &fromJSON),
				"JSON round trip changed the object:\n%s", j)

			var generic map[string]any
			require.NoError(t, json.Unmarshal(j, &generic))
			for _, path := range tc.wantKeys {
				_, ok := lookup(generic, path)
				assert.Truef(t, ok, "key %v missing from %s", path, j)
			}
			for _, path := range tc.absentKeys {
				_, ok := lookup(generic, path)
				assert.Falsef(t, ok, "key %v unexpectedly present in %s", path, j)
			}
		})
	}
}

func lookup(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, k := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func TestModuleDeepCopyIsIndependent(t *testing.T) {
	tests := []struct {
		name   string
		in     *Module
		mutate func(m *Module)
	}{
		{
			name: "selector map",
			in:   minimalModule(),
			mutate: func(m *Module) {
				m.Spec.Selector["kubernetes.io/os"] = "windows"
				m.Spec.Selector["extra"] = "label"
			},
		},
		{
			name: "kernel mappings slice",
			in:   minimalModule(),
			mutate: func(m *Module) {
				m.Spec.ModuleLoader.Container.KernelMappings[0].Literal = "changed"
				m.Spec.ModuleLoader.Container.KernelMappings = append(m.Spec.ModuleLoader.Container.KernelMappings, KernelMapping{})
			},
		},
		{
			name: "nested pointers",
			in:   fullModule(),
			mutate: func(m *Module) {
				*m.Spec.ImageRebuildTriggerGeneration = 42
				*m.Status.ImageRebuildTriggerGeneration = 41
				m.Spec.ImageRepoSecret.Name = "other"
				m.Spec.ModuleLoader.Container.Build.DockerfileConfigMap.Name = "other"
				m.Spec.ModuleLoader.Container.Build.KanikoParams.Tag = "other"
				m.Spec.ModuleLoader.Container.Sign.KeySecret.Name = "other"
				m.Spec.ModuleLoader.Container.KernelMappings[0].RegistryTLS.Insecure = false
				m.Spec.ModuleLoader.Container.Modprobe.Args.Load[0] = "-q"
				m.Spec.DevicePlugin.InitContainer.Image = "other"
			},
		},
		{
			name: "nested slices and maps",
			in:   fullModule(),
			mutate: func(m *Module) {
				m.Labels["app"] = "other"
				m.Spec.ModuleLoader.Container.Build.BuildArgs[0].Value = "other"
				m.Spec.ModuleLoader.Container.Build.Selector["new"] = "label"
				m.Spec.ModuleLoader.Container.Sign.FilesToSign[0] = "/other.ko"
				m.Spec.ModuleLoader.Container.KernelMappings[1].InTreeModulesToRemove[0] = "other"
				m.Spec.ModuleLoader.Container.Modprobe.ModulesLoadingOrder[1] = "other"
				m.Spec.DevicePlugin.Container.Env[0].Value = "other"
				m.Spec.DevicePlugin.Container.Resources.Limits[v1.ResourceCPU] = resource.MustParse("2")
				m.Spec.DevicePlugin.Volumes[0].HostPath.Path = "/other"
				m.Spec.Tolerations[0].Key = "other"
			},
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := json.Marshal(tc.in)
			require.NoError(t, err)

			cp := tc.in.DeepCopy()
			require.NotSame(t, tc.in, cp)
			require.True(t, apiequality.Semantic.DeepEqual(tc.in, cp), "a fresh copy must equal the original")

			tc.mutate(cp)

			after, err := json.Marshal(tc.in)
			require.NoError(t, err)
			assert.JSONEq(t, string(before), string(after), "mutating the copy changed the original")
			assert.False(t, apiequality.Semantic.DeepEqual(tc.in, cp), "the mutation must be visible on the copy")
		})
	}
}

func TestModuleIsRegisteredRuntimeObject(t *testing.T) {
	s := runtime.NewScheme()
	require.NoError(t, AddToScheme(s))

	for _, kind := range []string{
		"Module", "ModuleList",
		"NodeModulesConfig", "NodeModulesConfigList",
		"ModuleImagesConfig", "ModuleImagesConfigList",
		"ModuleBuildSignConfig", "ModuleBuildSignConfigList",
		"PreflightValidation", "PreflightValidationList",
	} {
		assert.Truef(t, s.Recognizes(GroupVersion.WithKind(kind)), "kind %s not registered", kind)
	}

	var obj runtime.Object = fullModule()
	cp := obj.DeepCopyObject()
	require.IsType(t, &Module{}, cp)
	assert.True(t, apiequality.Semantic.DeepEqual(obj, cp))
}
