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
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kmm.dev/kmm/api/v1beta2"
)

func TestPreflightValidationConversion(t *testing.T) {
	ts := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	base := func(status string) v1beta2.CRBaseStatus {
		return v1beta2.CRBaseStatus{
			VerificationStatus: status,
			StatusReason:       "reason " + status,
			VerificationStage:  v1beta2.VerificationStageDone,
			LastTransitionTime: ts,
		}
	}
	meta := metav1.ObjectMeta{Name: "pfv"}
	spec := v1beta2.PreflightValidationSpec{KernelVersion: "6.1.0", PushBuiltImage: true}

	hub := &v1beta2.PreflightValidation{
		ObjectMeta: meta,
		Spec:       spec,
		Status: v1beta2.PreflightValidationStatus{
			Modules: []v1beta2.PreflightValidationModuleStatus{
				{Namespace: "ns-a", Name: "mod-1", CRBaseStatus: base(VerificationSuccess)},
				{Namespace: "ns-b", Name: "mod-2", CRBaseStatus: base(VerificationFailure)},
			},
		},
	}

	tests := []struct {
		name     string
		spoke    *PreflightValidation
		wantMods []v1beta2.PreflightValidationModuleStatus
	}{
		{
			name: "namespace/name keys are converted, sorted",
			spoke: &PreflightValidation{
				ObjectMeta: meta,
				Spec:       spec,
				Status: PreflightValidationStatus{CRStatuses: map[string]*CRStatus{
					"ns-b/mod-2": ptrTo(base(VerificationFailure)),
					"ns-a/mod-1": ptrTo(base(VerificationSuccess)),
				}},
			},
			wantMods: hub.Status.Modules,
		},
		{
			name: "name-only keys and nil entries are dropped",
			spoke: &PreflightValidation{
				ObjectMeta: meta,
				Spec:       spec,
				Status: PreflightValidationStatus{CRStatuses: map[string]*CRStatus{
					"mod-1":      ptrTo(base(VerificationSuccess)),
					"ns-a/mod-1": ptrTo(base(VerificationSuccess)),
					"ns-c/mod-3": nil,
				}},
			},
			wantMods: hub.Status.Modules[:1],
		},
		{
			name:  "no statuses",
			spoke: &PreflightValidation{ObjectMeta: meta, Spec: spec},
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := &v1beta2.PreflightValidation{}
			require.NoError(t, tc.spoke.ConvertTo(dst))
			assert.Equal(t, meta, dst.ObjectMeta)
			assert.Equal(t, spec, dst.Spec)
			assert.Equal(t, tc.wantMods, dst.Status.Modules)
		})
	}

	t.Run("hub to spoke and back", func(t *testing.T) {
		spoke := &PreflightValidation{}
		require.NoError(t, spoke.ConvertFrom(hub))
		assert.Equal(t, spec, spoke.Spec)
		assert.Len(t, spoke.Status.CRStatuses, 4)
		assert.Equal(t, base(VerificationSuccess), *spoke.Status.CRStatuses["ns-a/mod-1"])
		assert.Equal(t, base(VerificationFailure), *spoke.Status.CRStatuses["mod-2"])

		back := &v1beta2.PreflightValidation{}
		require.NoError(t, spoke.ConvertTo(back))
		assert.Equal(t, hub, back)
	})
}
