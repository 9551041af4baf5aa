package upgrade

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// Every state the report can show, as a table and as JSON.
func TestStatusReport(t *testing.T) {
	objs := loaderDS("gpu-loader-k1", "v2", "new", 2)
	cordoned := node("d", map[string]string{stateKey: "draining", pausedKey: "true"})
	cordoned.Spec.Unschedulable = true
	failing := loader("l-e", "e", "gpu-loader-k1", "new", "v2", false)
	failing.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "module-loader",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "gpu is loaded at srcversion A, version 1\n"}}}}
	terminating := loader("l-f", "f", "gpu-loader-k1", "old1", "v1", true)
	terminating.DeletionTimestamp = ptr.To(metav1.NewTime(t0))
	objs = append(objs,
		node("a", nil), loader("l-a", "a", "gpu-loader-k1", "new", "v2", true), plugin("dp-a", "a", true),
		node("b", nil), loader("l-b", "b", "gpu-loader-k1", "old1", "v1", true), plugin("dp-b", "b", false),
		node("c", map[string]string{skipKey: "true"}), loader("l-c", "c", "gpu-loader-k1", "old1", "v1", true),
		cordoned, loader("l-d", "d", "gpu-loader-k1", "old1", "v1", true),
		node("e", map[string]string{stateKey: "restarting"}), failing,
		node("f", nil), terminating,
		node("g", map[string]string{stateKey: "upgrade-done"}), // its loader is gone
		node("h", nil), // no loader, no label: not in the report
	)
	r, err := Status(context.Background(), fake.NewClientset(objs...), "")
	require.NoError(t, err)
	var table strings.Builder
	require.NoError(t, r.Write(&table, "table"))
	assert.Equal(t, `MODULE        NODE  KERNEL                   WANTED  LOADED  READY  STATE         DEVICE-PLUGIN  CORDONED
kmm-demo/gpu  a     kernel-of-gpu-loader-k1  v2      v2      true   current       ready          false
kmm-demo/gpu  b     kernel-of-gpu-loader-k1  v2      v1      true   outdated      starting       false
kmm-demo/gpu  c     kernel-of-gpu-loader-k1  v2      v1      true   skipped       -              false
kmm-demo/gpu  d     kernel-of-gpu-loader-k1  v2      v1      true   draining      paused         true
kmm-demo/gpu  e     kernel-of-gpu-loader-k1  v2      -       false  restarting    -              false
kmm-demo/gpu  f     -                        v2      -       false  unloading     -              false
kmm-demo/gpu  g     -                        -       -       false  upgrade-done  -              false
kmm-demo/gpu on e: gpu is loaded at srcversion A, version 1
`, table.String())

	var js strings.Builder
	require.NoError(t, r.Write(&js, "json"))
	assert.Contains(t, js.String(), `"node": "e",
          "kernel": "kernel-of-gpu-loader-k1",
          "wanted": "v2",
          "loaded": "",
          "ready": false,
          "state": "restarting",
          "cordoned": false,
          "loaderPod": "l-e",
          "message": "gpu is loaded at srcversion A, version 1\n"`)
	assert.EqualError(t, r.Write(&js, "yaml"), `unknown output format "yaml": use table or json`)

	// One namespace only: another namespace's module is not listed.
	r, err = Status(context.Background(), fake.NewClientset(objs...), "other")
	require.NoError(t, err)
	assert.Empty(t, r.Modules)
}
