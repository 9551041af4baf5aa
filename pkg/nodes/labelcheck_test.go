package nodes

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TestValidateLabels: validateLabels says what ValidateLabels says, the first time and once it
// remembers keys and values, and a key or value found invalid is never taken for valid.
func TestValidateLabels(t *testing.T) {
	sets := []map[string]string{
		nil,
		{},
		{"kubernetes.io/os": "linux", "kubernetes.io/hostname": "node-1", "empty": ""},
		{"kubernetes.io/os": "linux", "bad key!": "x"},
		{"kubernetes.io/os": "linux v2"},
		{"kubernetes.io/os": strings.Repeat("a", 64)},
		{"kubernetes.io/os": "linux", "kubernetes.io/hostname": "node-2"},
		{"-leading-dash": "linux"},
		{"kubernetes.io/os": "linux", "kubernetes.io/hostname": "node 3"},
	}
	for round := range 2 {
		for _, ls := range sets {
			want := metav1validation.ValidateLabels(ls, field.NewPath("metadata", "labels"))
			got := validateLabels(ls)
			assert.Equal(t, want.ToAggregate(), got.ToAggregate(), "round %d, labels %v", round, ls)
			assert.Equal(t, len(want) == 0, len(got) == 0, "round %d, labels %v", round, ls)
		}
	}
	_, bad := validLabelValues.m.Load("linux v2")
	assert.False(t, bad, "invalid values are not remembered")
	_, good := validLabelValues.m.Load("linux")
	assert.True(t, good)
}
