package golden

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"kmm.dev/kmm/pkg/chartrender"
	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/postrender"
	"kmm.dev/kmm/pkg/render"
	"kmm.dev/kmm/pkg/report"
)

// `kmm-render nodes` and the post-renderer plan through the same code: on every example, the
// loaders the table promises are exactly the DaemonSets kmm-render writes.
func TestNodesTableAgreesWithDaemonSets(t *testing.T) {
	for _, example := range []string{"eks", "gke", "ubuntu"} {
		t.Run(example, func(t *testing.T) {
			dir := filepath.Join("..", "..", "examples", example)
			rendered, err := chartrender.Render(context.Background(), chartrender.Options{
				ChartDir: chartDir, Namespace: "kmm-system", ValueFiles: []string{filepath.Join(dir, "values.yaml")},
			})
			require.NoError(t, err)
			r := postrender.New(postrender.Options{Nodes: postrender.FileNodes(filepath.Join(dir, "nodes.yaml"))})

			// What the table says: one row per kernel and module.
			res, err := r.Plan(context.Background(), []byte(rendered.Manifests))
			require.NoError(t, err)
			var plans []*render.Plan
			var promised []string
			for _, mp := range res.Plans {
				plans = append(plans, mp.Plan)
				if mp.Module.Operator() {
					continue
				}
				for _, tg := range mp.Plan.LoaderTargets(false) { // extra kernels: built, not loaded
					promised = append(promised, strings.Join([]string{mp.Module.ID(), tg.Kernel, tg.LabelValue, report.ImageOf(mp.Module, tg)}, " "))
				}
			}
			var table bytes.Buffer
			require.NoError(t, report.KernelTable(&table, res.Kernels, plans, render.DefaultKernelLabel))

			// What the post-renderer writes.
			out, err := r.Run(context.Background(), []byte(rendered.Manifests))
			require.NoError(t, err)
			objs, err := kio.FromBytes(out)
			require.NoError(t, err)
			var written []string
			for _, o := range objs {
				if o.GetKind() != "DaemonSet" || o.GetLabels()[contract.LabelRole] != contract.RoleModuleLoader {
					continue
				}
				img, err := o.Pipe(yaml.Lookup("spec", "template", "spec", "containers", "[name="+contract.LoaderContainer+"]", "image"))
				require.NoError(t, err)
				label, err := o.Pipe(yaml.Lookup("spec", "template", "spec", "nodeSelector", render.DefaultKernelLabel))
				require.NoError(t, err)
				id := o.GetLabels()[contract.LabelModuleNamespace] + "/" + o.GetLabels()[contract.LabelModuleName]
				kernel := o.GetAnnotations()[contract.AnnotationKernel]
				image := yaml.GetValue(img)
				// A loader that builds its module on the node loads no image of the module.
				if build, err := o.Pipe(yaml.Lookup("spec", "template", "spec", "initContainers", "[name="+contract.ContainerBuild+"]")); err == nil && build != nil {
					image = report.NodeBuilt
				}
				written = append(written, strings.Join([]string{id, kernel, yaml.GetValue(label), image}, " "))
				assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(kernel)+`\s.*\s`+regexp.QuoteMeta(id)+`\s.*\s`+regexp.QuoteMeta(image)+`$`, table.String(),
					"the table has a row for DaemonSet %s", o.GetName())
			}
			sort.Strings(promised)
			sort.Strings(written)
			require.NotEmpty(t, written)
			assert.Equal(t, promised, written)
		})
	}
}
