package nodes

import (
	"sync"
	"sync/atomic"

	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// labelsPath is where a node's labels are, for validation messages.
var labelsPath = field.NewPath("metadata", "labels")

// validateLabels is metav1validation.ValidateLabels(labels, metadata.labels), remembering the
// label keys and values it found valid. A cluster's nodes carry the same dozen or so keys and
// mostly the same values, and checking each of them with ValidateLabels' regular expressions,
// node after node, was a tenth of kmm-render's work on a cluster of 5,000 nodes. ValidateLabels
// checks each key (ValidateLabelName) and each value (IsValidLabelValue) on its own, so a key
// or value found valid once is valid on every node; any other comes back with ValidateLabels'
// own errors.
func validateLabels(labels map[string]string) field.ErrorList {
	for k, v := range labels {
		if !validLabelKeys.known(k, func() bool { return len(metav1validation.ValidateLabelName(k, labelsPath)) == 0 }) ||
			!validLabelValues.known(v, func() bool { return len(validation.IsValidLabelValue(v)) == 0 }) {
			return metav1validation.ValidateLabels(labels, labelsPath)
		}
	}
	return nil
}

// validSet remembers strings found valid, up to maxValid of them, so that a long-lived
// caller's memory stays bounded; past that, strings are checked every time.
type validSet struct {
	m sync.Map // string -> struct{}
	n atomic.Int64
}

const maxValid = 1 << 16

var validLabelKeys, validLabelValues validSet

// known reports whether s is valid: remembered, or valid by check (and then remembered).
func (vs *validSet) known(s string, check func() bool) bool {
	if _, ok := vs.m.Load(s); ok {
		return true
	}
	if !check() {
		return false
	}
	if vs.n.Add(1) <= maxValid {
		vs.m.Store(s, struct{}{})
	}
	return true
}
