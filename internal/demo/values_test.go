package demo

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"kmm.dev/kmm/pkg/module"
	"kmm.dev/kmm/pkg/render"
)

func TestNamespaces(t *testing.T) {
	mod := func(ns string) *render.Module {
		return &render.Module{Module: &module.Module{Name: "m", Namespace: ns}}
	}
	assert.Equal(t, []string{"kmm-demo", "kmm-system"}, namespaces([]*render.Module{mod("kmm-demo"), mod("kmm-system"), mod("kmm-demo")}))
	assert.Empty(t, namespaces(nil))
}
