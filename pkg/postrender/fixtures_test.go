package postrender

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The inputs are what helm 3.22 and helm 4.3 really hand a post-renderer for
// `helm template kmm charts/kmm -n kmm-system -f examples/eks/values.yaml
// --set controller.enabled=false,crds.enabled=false`, captured with a post-renderer that tees its
// standard input (`#!/bin/sh` `tee "$CAPTURE"`). Recapture them when the chart's contract with
// kmm-render changes.
func TestCapturedHelmInputs(t *testing.T) {
	for _, name := range []string{"helm3-eks", "helm4-eks"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name+".input.yaml"))
			require.NoError(t, err)
			r := New(Options{Nodes: FileNodes("../../examples/eks/nodes.yaml")})
			out, err := r.Run(context.Background(), in)
			require.NoError(t, err)

			golden := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				require.NoError(t, os.WriteFile(golden, out, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			require.Equal(t, string(want), string(out))

			objs := parseAll(t, string(out))
			helm4 := strings.HasPrefix(name, "helm4")
			for _, o := range objs {
				_, has := o.GetAnnotations()[AnnotationHelm4Filename]
				assert.Equal(t, helm4, has, "%s %s: Helm 4's filename annotation is on every document it handed over, and only then", o.GetKind(), o.GetName())
			}
			assert.Equal(t, !helm4, strings.Contains(string(out), "# Source: kmm/templates/module-loader.yaml"))
		})
	}
}

// The chart's platformLabels value reaches kmm-render through the module list's annotation.
func TestPlatformLabelsCanBeTurnedOff(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "helm3-eks.input.yaml"))
	require.NoError(t, err)
	const marker = "    render.kmm.dev/modules: v1\n"
	require.Contains(t, string(in), marker)
	for _, tt := range []struct {
		name   string
		input  string
		labels bool
	}{
		{"default", string(in), true},
		{"off", strings.Replace(string(in), marker, marker+"    render.kmm.dev/platform-labels: \"false\"\n", 1), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := New(Options{Nodes: FileNodes("../../examples/eks/nodes.yaml")}).Run(context.Background(), []byte(tt.input))
			require.NoError(t, err)
			loaders := 0
			for _, o := range parseAll(t, string(out)) {
				if o.GetLabels()["kmm.node.kubernetes.io/role"] != "module-loader" {
					continue
				}
				loaders++
				_, has := o.GetLabels()["render.kmm.dev/os"]
				assert.Equal(t, tt.labels, has, o.GetName())
				if tt.labels {
					assert.Equal(t, "eks", o.GetLabels()["render.kmm.dev/platform"], o.GetName())
				}
			}
			assert.NotZero(t, loaders)
		})
	}
}
