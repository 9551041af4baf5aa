package node

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kmm.dev/kmm/internal/localcluster"
	"kmm.dev/kmm/pkg/contract"
	"kmm.dev/kmm/pkg/upgrade"
)

// The build: the chart's build Job, which kmm-render makes for the real node's kernel only (the
// kwok nodes' mapping builds nothing), runs on the real node with the test's builder image.

// srcConfigMap is the build ConfigMap of version (testdata/values.yaml names it).
func srcConfigMap(version string) string { return "kmm-kmod-src-" + version }

// moduleImage is the module image of version as the guest and the Job name it.
func moduleImage(kernel, version string) string {
	return fmt.Sprintf("%s/kmm-test/kmm-kmod:%s-%s", guestRegistry, kernel, version)
}

// applySources creates or updates the build ConfigMaps of versions 1.0.0 and 2.0.0.
func applySources(t *testing.T, c *localcluster.Cluster) {
	t.Helper()
	ctx := context.Background()
	for _, version := range []string{"1.0.0", "2.0.0"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: srcConfigMap(version), Namespace: moduleNamespace},
			Data: kmodSources(t, version)}
		_, err := c.Client.CoreV1().ConfigMaps(moduleNamespace).Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			_, err = c.Client.CoreV1().ConfigMaps(moduleNamespace).Update(ctx, cm, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatalf("the build ConfigMap %s: %v", cm.Name, err)
		}
	}
}

// buildJobs returns the module's build Jobs (the upgrade controller's list of them), by the
// image they build.
func buildJobs(ctx context.Context, c *localcluster.Cluster) (map[string]*batchv1.Job, error) {
	byName, err := upgrade.ListBuildJobs(ctx, c.Client, moduleNamespace, moduleName)
	if err != nil {
		return nil, err
	}
	out := map[string]*batchv1.Job{}
	for _, j := range byName {
		for _, ct := range j.Spec.Template.Spec.Containers {
			for _, e := range ct.Env {
				if e.Name == "KMM_IMAGE" {
					out[e.Value] = j
				}
			}
		}
	}
	return out, nil
}

// jobLogs is the log of each container (init containers first) of the Job's pods, read in the
// guest (the API server cannot reach the kubelet): the kubelet's files, without their CRI
// prefixes (time, stream, tag).
func jobLogs(ctx context.Context, c *localcluster.Cluster, v *vm, job string) string {
	pl, err := c.Client.CoreV1().Pods(moduleNamespace).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pl.Items {
		for _, ct := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			fmt.Fprintf(&b, "--- pod %s on %s, container %s:\n", p.Name, p.Spec.NodeName, ct.Name)
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			out, _, err := v.run(cctx, fmt.Sprintf("cat /var/log/pods/%s_%s_%s/%s/*.log | sed 's/^[^ ]* [^ ]* [^ ]* //'", moduleNamespace, p.Name, p.UID, ct.Name))
			cancel()
			if err != nil {
				fmt.Fprintf(&b, "(no log: %v)\n", err)
			}
			b.WriteString(out)
		}
	}
	return b.String()
}

// waitForBuild waits for the build Job of version's image to complete on the real node, and
// checks from its log that it built and pushed the image (built) or found it in the registry
// (not built: the image of an earlier run, which KMM never rebuilds). While the Job runs, when
// during is set, it is called (the upgrade: the old module must stay). It returns the Job's log.
func waitForBuild(t *testing.T, c *localcluster.Cluster, v *vm, kernel, version string, built bool, during func(), podDiag func() string) string {
	t.Helper()
	ctx := context.Background()
	img := moduleImage(kernel, version)
	var job *batchv1.Job
	start := time.Now()
	waitFor(t, 25*time.Minute, "the chart's build Job of "+img+" to complete on "+nodeName, func() (bool, error) {
		if during != nil {
			during()
		}
		jobs, err := buildJobs(ctx, c)
		if err != nil {
			return false, err
		}
		if len(jobs) != 1 {
			return false, fmt.Errorf("%d build Jobs, want 1, for the real node's kernel only: %v", len(jobs), slices.Sorted(maps.Keys(jobs)))
		}
		j, ok := jobs[img]
		if !ok {
			return false, fmt.Errorf("no build Job of %s: %v", img, slices.Sorted(maps.Keys(jobs)))
		}
		job = j
		state := upgrade.JobState(j)
		if state == upgrade.BuildFailed {
			t.Fatalf("the build Job %s failed:\n%s\n%s", j.Name, jobLogs(ctx, c, v, j.Name), podDiag())
		}
		return state == upgrade.BuildComplete, nil
	}, func() string {
		if job == nil {
			return podDiag()
		}
		return jobLogs(ctx, c, v, job.Name) + podDiag()
	})
	logs := jobLogs(ctx, c, v, job.Name)
	t.Logf("build Job %s complete after %s", job.Name, time.Since(start).Round(time.Second))
	pods, err := c.Client.CoreV1().Pods(moduleNamespace).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job.Name})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("the build Job %s's pods: %v", job.Name, err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != nodeName {
			t.Errorf("the build Job's pod %s ran on %s, not on the real node %s", p.Name, p.Spec.NodeName, nodeName)
		}
	}
	if built {
		for _, want := range []string{"kmm: building " + img + " for kernel " + kernel, "pushing layers", "kmm: built " + img} {
			if !strings.Contains(logs, want) {
				t.Errorf("the build Job's log has no %q: it did not build the image with BuildKit:\n%s", want, logs)
			}
		}
	} else if !strings.Contains(logs, "kmm: "+img+" exists: not rebuilt") {
		t.Errorf("the build Job's log does not say that %s exists already:\n%s", img, logs)
	}
	return logs
}

// checkPulled checks that the loader pod runs the module image the build pushed: its image ID
// is the digest of version's tag in the test's registry (hostRegistry: 127.0.0.1:PORT).
func checkPulled(t *testing.T, hostRegistry string, loader corev1.Pod, kernel, version string) {
	t.Helper()
	ref, err := name.ParseReference(fmt.Sprintf("%s/kmm-test/kmm-kmod:%s-%s", hostRegistry, kernel, version), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(ref)
	if err != nil {
		t.Fatalf("the built image %s in the registry: %v", ref, err)
	}
	var id string
	for _, cs := range loader.Status.ContainerStatuses {
		if cs.Name == contract.LoaderContainer {
			id = cs.ImageID
		}
	}
	if !strings.HasSuffix(id, "@"+d.Digest.String()) {
		t.Errorf("the loader %s runs image %q, want the build's %s@%s", loader.Name, id, ref, d.Digest)
	}
	t.Logf("the loader %s runs %s, which the build Job pushed", loader.Name, id)
}

// TestToolVersions holds the versions this test names the builder and image check tools by to
// the Makefile's, which builds them (make node-tools).
func TestToolVersions(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"BUILDKIT_VERSION": buildkitVersion, "ROOTLESSKIT_VERSION": rootlesskitVersion, "CRANE_VERSION": craneVersion} {
		m := regexp.MustCompile(`(?m)^` + name + ` := (\S+)$`).FindSubmatch(mk)
		if m == nil {
			t.Errorf("the Makefile sets no %s", name)
		} else if string(m[1]) != want {
			t.Errorf("the Makefile's %s is %s, this test's %s", name, m[1], want)
		}
	}
}
