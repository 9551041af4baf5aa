package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"kmm.dev/kmm/internal/localcluster"
)

// TestBenchNodeShape: the nodes are shaped as the benchmark says, and carry the kernel label
// kmm-render selects on, so that it plans every node and warns about none.
func TestBenchNodeShape(t *testing.T) {
	n := benchNode(7, 50)
	assert.Equal(t, "bench-node-00007", n.Name)
	assert.Len(t, n.Labels, nodeLabels)
	assert.Len(t, n.Annotations, nodeAnnotations)
	assert.Len(t, n.Status.Conditions, nodeConditions)
	assert.Len(t, n.Status.Addresses, nodeAddresses)
	assert.Len(t, n.Status.Images, nodeImages)
	assert.Equal(t, "6.1.107-127.187.amzn2023.x86_64", n.Status.NodeInfo.KernelVersion)
	assert.Equal(t, "6.1.107-127.187.amzn2023.x86_64", n.Labels[localcluster.LabelKernelFull])
	assert.Equal(t, "linux", n.Labels["kubernetes.io/os"])
	assert.NotEmpty(t, n.Status.Capacity)

	kernels := map[string]bool{}
	for i := range 500 {
		kernels[kernelOf(i, 50)] = true
	}
	assert.Len(t, kernels, 50)
}

func TestMedian(t *testing.T) {
	assert.Equal(t, int64(3), median([]int64{5, 3, 1}))
	assert.Equal(t, 3*time.Second, median([]time.Duration{4 * time.Second, time.Second, 2 * time.Second, 9 * time.Second}))
	assert.Equal(t, int64(0), median([]int64(nil)))
}

func TestThousands(t *testing.T) {
	assert.Equal(t, "999", thousands(999))
	assert.Equal(t, "15,000", thousands(15000))
	assert.Equal(t, "1,234,567", thousands(1234567))
}

func row3(nodes int, floor, render time.Duration, floorMiB, renderMiB int64) row {
	return row{nodes: nodes, objects: 1000, floor: stats{wall: floor, rss: floorMiB * 1024}, render: stats{wall: render, rss: renderMiB * 1024}}
}

func verdicts(r *results) []string {
	var out []string
	for _, v := range r.targets() {
		out = append(out, v.String())
	}
	return out
}

// TestTargets: each target is PASS or MISS by the numbers.
func TestTargets(t *testing.T) {
	ms := time.Millisecond
	objects := func(cpu1, cpu2, cpu4 time.Duration) []objectsRow {
		return []objectsRow{
			{modules: 20, objects: 1000, render: stats{cpu: cpu1}},
			{modules: 40, objects: 2000, render: stats{cpu: cpu2}},
			{modules: 80, objects: 4000, render: stats{cpu: cpu4}},
		}
	}
	r := &results{opts: options{target: 5000}, rows: []row{
		row3(1000, 200*ms, 300*ms, 45, 50),
		row3(5000, 500*ms, 600*ms, 110, 90),
		row3(15000, 1400*ms, 1500*ms, 300, 150),
	}, objects: objects(1000*ms, 2000*ms, 4000*ms)}
	assert.Equal(t, []string{
		"PASS speed: at 5,000 nodes kmm-render takes 1.20x the floor's wall time (target: at most 1.2x)",
		"PASS memory: at 5,000 nodes kmm-render peaks at 90 MiB RSS (target: under 100 MiB)",
		"PASS linear in nodes (time): kmm-render takes 1.50x the floor's wall time at 1,000 nodes, 1.20x at 5,000 (target: at most 1.5x the smaller size's)",
		"PASS linear in nodes (time): kmm-render takes 1.20x the floor's wall time at 5,000 nodes, 1.07x at 15,000 (target: at most 1.5x the smaller size's)",
		"PASS linear in nodes (memory): from 1,000 to 5,000 nodes, each 1,000 nodes cost kmm-render 10.0 MiB of peak RSS, the floor 16.2 MiB (target: no more than the floor)",
		"PASS linear in nodes (memory): from 5,000 to 15,000 nodes, each 1,000 nodes cost kmm-render 6.0 MiB of peak RSS, the floor 19.0 MiB (target: no more than the floor)",
		"PASS linear in generated objects: at 5,000 nodes, each 1,000 DaemonSets cost kmm-render 1.00 s of CPU from 1,000 to 2,000, 1.00 s from 2,000 to 4,000 (target: at most 1.5x the first)",
	}, verdicts(r))

	// Slower than 1.2x, 100 MiB, a ratio to the floor that triples with the nodes, memory that
	// grows faster than the floor's, objects whose cost grows with their number.
	r.rows[1] = row3(5000, 500*ms, 610*ms, 110, 100)
	r.rows[2] = row3(15000, 1400*ms, 5000*ms, 300, 400)
	r.objects = objects(1000*ms, 2000*ms, 8000*ms)
	got := verdicts(r)
	require.Len(t, got, 7)
	assert.Equal(t, "MISS speed: at 5,000 nodes kmm-render takes 1.22x the floor's wall time (target: at most 1.2x)", got[0])
	assert.Equal(t, "MISS memory: at 5,000 nodes kmm-render peaks at 100 MiB RSS (target: under 100 MiB)", got[1])
	assert.True(t, strings.HasPrefix(got[2], "PASS linear in nodes (time)"), got[2])
	assert.True(t, strings.HasPrefix(got[3], "MISS linear in nodes (time)"), got[3])
	assert.True(t, strings.HasPrefix(got[4], "PASS linear in nodes (memory)"), got[4])
	assert.True(t, strings.HasPrefix(got[5], "MISS linear in nodes (memory)"), got[5])
	assert.True(t, strings.HasPrefix(got[6], "MISS linear in generated objects"), got[6])
}

func TestUpdateDoc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	require.NoError(t, os.WriteFile(path, []byte("# Title\n\nprose\n\n"+docBegin+"\n\nold table\n\n"+docEnd+"\n\nmore prose\n"), 0o644))
	r := &results{opts: options{target: 5000, runs: 5, largeRuns: 3, kernels: 50, modules: 20}, kubectlNote: "not built",
		rows: []row{row3(5000, 500*time.Millisecond, 550*time.Millisecond, 100, 80)}}
	require.NoError(t, r.updateDoc(path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	doc := string(b)
	assert.True(t, strings.HasPrefix(doc, "# Title\n\nprose\n\n"+docBegin+"\n\nMachine: "), doc)
	assert.True(t, strings.HasSuffix(doc, "\n"+docEnd+"\n\nmore prose\n"), doc)
	assert.NotContains(t, doc, "old table")
	assert.Contains(t, doc, "| 5,000 | 0.50 s, 100 MiB (CPU 0.00 s) |")
	assert.Contains(t, doc, "PASS speed: at 5,000 nodes kmm-render takes 1.10x the floor's wall time")

	require.NoError(t, os.WriteFile(path, []byte("no markers\n"), 0o644))
	assert.ErrorContains(t, r.updateDoc(path), "has no section between")
}
