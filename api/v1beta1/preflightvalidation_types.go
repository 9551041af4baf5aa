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
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/conversion"

	"kmm.dev/kmm/api/v1beta2"
)

const (
	VerificationSuccess    = v1beta2.VerificationSuccess
	VerificationFailure    = v1beta2.VerificationFailure
	VerificationInProgress = v1beta2.VerificationInProgress
	VerificationStageImage = v1beta2.VerificationStageImage
	VerificationStageDone  = v1beta2.VerificationStageDone
)

// PreflightValidationSpec describes the desired state of the resource, such as the kernel version
// that Module CRs need to be verified against as well as the debug configuration of the logs
// More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status
// +kubebuilder:validation:Required
// +kubebuilder:object:generate=false
type PreflightValidationSpec = v1beta2.PreflightValidationSpec

// CRStatus is the per-Module verification status; it is shared with v1beta2.
// +kubebuilder:object:generate=false
type CRStatus = v1beta2.CRBaseStatus

// PreflightValidationStatus is the most recently observed status of the PreflightValidation.
// It is populated by the system and is read-only.
// More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status
type PreflightValidationStatus struct {
	// CRStatuses contain observations about each Module's preflight upgradability validation
	// +patchMergeKey=type
	// +patchStrategy=merge
	// +optional
	CRStatuses map[string]*CRStatus `json:"crStatuses,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status

// PreflightValidation initiates a preflight validations for all Modules on the current Kubernetes cluster.
// Deprecated in favor of v1beta2.
// +kubebuilder:resource:path=preflightvalidations,scope=Cluster,shortName=pfv
// +kubebuilder:deprecatedversion
// +operator-sdk:csv:customresourcedefinitions:displayName="Preflight Validation"
type PreflightValidation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +kubebuilder:validation:Required

	Spec   PreflightValidationSpec   `json:"spec,omitempty"`
	Status PreflightValidationStatus `json:"status,omitempty"`
}

var _ conversion.Convertible = &PreflightValidation{}

// ConvertTo converts this PreflightValidation to the v1beta2 hub version.
// Status entries are keyed "namespace/name" in v1beta1; entries whose key does not have that
// form, or whose value is nil, cannot be represented in v1beta2 and are dropped.
func (p *PreflightValidation) ConvertTo(dstRaw conversion.Hub) error {
	dst := dstRaw.(*v1beta2.PreflightValidation)

	dst.ObjectMeta = p.ObjectMeta
	dst.Spec = p.Spec
	dst.Status = v1beta2.PreflightValidationStatus{}

	if len(p.Status.CRStatuses) == 0 {
		return nil
	}

	keys := make([]string, 0, len(p.Status.CRStatuses))
	for key := range p.Status.CRStatuses {
		keys = append(keys, key)
	}
	// Sorted keys give a stable order of the v1beta2 list.
	sort.Strings(keys)

	dst.Status.Modules = make([]v1beta2.PreflightValidationModuleStatus, 0, len(keys))

	for _, key := range keys {
		status := p.Status.CRStatuses[key]
		namespace, name, ok := strings.Cut(key, "/")
		if !ok || status == nil {
			continue
		}

		dst.Status.Modules = append(dst.Status.Modules, v1beta2.PreflightValidationModuleStatus{
			CRBaseStatus: *status,
			Namespace:    namespace,
			Name:         name,
		})
	}

	return nil
}

// ConvertFrom converts the v1beta2 hub version into this PreflightValidation.
// Every module status is stored under "namespace/name" and, for compatibility with clients
// that look statuses up by Module name only, also under "name" (names may collide across
// namespaces there).
func (p *PreflightValidation) ConvertFrom(srcRaw conversion.Hub) error {
	src := srcRaw.(*v1beta2.PreflightValidation)

	p.ObjectMeta = src.ObjectMeta
	p.Spec = src.Spec
	p.Status = PreflightValidationStatus{}

	if len(src.Status.Modules) == 0 {
		return nil
	}

	p.Status.CRStatuses = make(map[string]*CRStatus, 2*len(src.Status.Modules))

	for i := range src.Status.Modules {
		m := src.Status.Modules[i]
		base := m.CRBaseStatus

		p.Status.CRStatuses[m.Namespace+"/"+m.Name] = &base
		p.Status.CRStatuses[m.Name] = &base
	}

	return nil
}

// +kubebuilder:object:root=true

// PreflightValidationList is a list of PreflightValidation objects.
type PreflightValidationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// List of PreflightValidation. More info:
	// https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md
	Items []PreflightValidation `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PreflightValidation{}, &PreflightValidationList{})
}
