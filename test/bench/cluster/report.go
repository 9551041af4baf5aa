package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Targets of issue 12.
const (
	targetWallRatio = 1.2 // kmm-render's wall time at the target size, as a multiple of the floor's
	targetRSSMiB    = 100 // kmm-render's peak RSS at the target size
	// linearSlack bounds how much a cost that should stay flat with the size (a ratio to the
	// floor, the cost of each further object) may grow: a quadratic one would grow with the size
	// ratio, 3x from 5,000 to 15,000 nodes, 2x from 2,000 to 4,000 objects.
	linearSlack = 1.5
)

// Markers of the section of docs/benchmarks.md that -doc rewrites.
const (
	docBegin = "<!-- BEGIN bench-cluster: written by `make bench-cluster BENCH_DOC=docs/benchmarks.md` -->"
	docEnd   = "<!-- END bench-cluster -->"
)

// machine describes where the benchmark ran.
type machine struct {
	CPU, Cores, Memory, Kernel, Go, Server string
	LoadBefore, LoadAfter                  string
}

func describeMachine() machine {
	m := machine{CPU: "unknown", Memory: "unknown", Kernel: "unknown", Go: runtime.Version(), LoadBefore: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.Cores = strconv.Itoa(runtime.NumCPU())
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
					m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return m
}

// loadAverage is the 1, 5 and 15 minute load averages: other work on the machine shows here.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}

// assetVersions asks the control plane's binaries their versions.
func assetVersions(dir string) string {
	version := func(bin, prefix string) string {
		out, err := exec.Command(filepath.Join(dir, bin), "--version").Output()
		if err != nil {
			return bin + " (version unknown)"
		}
		line, _, _ := strings.Cut(string(out), "\n")
		return bin + " " + strings.TrimSpace(strings.TrimPrefix(line, prefix))
	}
	return version("kube-apiserver", "Kubernetes ") + ", " + version("etcd", "etcd Version: ")
}

// row is one cluster size.
type row struct {
	nodes, created, objects int
	create                  time.Duration
	floor, floorPB          stats
	kubectl, render         stats
	outBytes                int
}

// objectsRow is kmm-render at the target size with a multiple of the modules.
type objectsRow struct {
	modules, objects int
	floor, render    stats
}

type results struct {
	opts        options
	machine     machine
	kubectlNote string
	rows        []row
	objects     []objectsRow // at the target size, by generated objects, ascending
	// baseline is another kmm-render build (-baseline) at the target size.
	baseline     *objectsRow
	baselineName string
}

type verdict struct {
	ok   bool
	text string
}

func (v verdict) String() string {
	if v.ok {
		return "PASS " + v.text
	}
	return "MISS " + v.text
}

// targets checks the targets: at the target size, kmm-render within 1.2x the floor's
// wall time and under 100 MiB; from size to size and from objects to more objects, costs that
// grow linearly. Linearity is judged against the floor, which only lists the nodes and keeps
// them (linear by construction), or on CPU time: wall times on a machine that does other work
// too are not steady enough for marginal costs.
func (r *results) targets() []verdict {
	var out []verdict
	for _, w := range r.rows {
		if w.nodes != r.opts.target {
			continue
		}
		q := ratio(w.render.wall, w.floor.wall)
		out = append(out, verdict{q <= targetWallRatio, fmt.Sprintf("speed: at %s nodes kmm-render takes %.2fx the floor's wall time (target: at most %.1fx)", thousands(w.nodes), q, targetWallRatio)})
		mib := float64(w.render.rss) / 1024
		out = append(out, verdict{mib < targetRSSMiB, fmt.Sprintf("memory: at %s nodes kmm-render peaks at %.0f MiB RSS (target: under %d MiB)", thousands(w.nodes), mib, targetRSSMiB)})
	}
	// Time: kmm-render's wall time as a multiple of the floor's must not grow with the nodes
	// (it would, were kmm-render's cost superlinear in them).
	for i := 1; i < len(r.rows); i++ {
		prev, cur := r.rows[i-1], r.rows[i]
		qPrev, qCur := ratio(prev.render.wall, prev.floor.wall), ratio(cur.render.wall, cur.floor.wall)
		out = append(out, verdict{qCur <= linearSlack*qPrev, fmt.Sprintf("linear in nodes (time): kmm-render takes %.2fx the floor's wall time at %s nodes, %.2fx at %s (target: at most %.1fx the smaller size's)",
			qPrev, thousands(prev.nodes), qCur, thousands(cur.nodes), linearSlack)})
	}
	// Memory: each further 1,000 nodes cost kmm-render no more memory than they cost the floor,
	// which holds every node as a typed object.
	for i := 1; i < len(r.rows); i++ {
		prev, cur := r.rows[i-1], r.rows[i]
		c := perThousand(float64(cur.render.rss-prev.render.rss), cur.nodes-prev.nodes) / 1024
		a := perThousand(float64(cur.floor.rss-prev.floor.rss), cur.nodes-prev.nodes) / 1024
		out = append(out, verdict{c <= a, fmt.Sprintf("linear in nodes (memory): from %s to %s nodes, each 1,000 nodes cost kmm-render %.1f MiB of peak RSS, the floor %.1f MiB (target: no more than the floor)",
			thousands(prev.nodes), thousands(cur.nodes), c, a)})
	}
	// Generated objects: the CPU time each further 1,000 objects cost must not grow.
	if len(r.objects) >= 3 {
		a, b, c := r.objects[0], r.objects[1], r.objects[2]
		first := perThousand(float64(b.render.cpu-a.render.cpu), b.objects-a.objects)
		last := perThousand(float64(c.render.cpu-b.render.cpu), c.objects-b.objects)
		out = append(out, verdict{last <= linearSlack*first, fmt.Sprintf("linear in generated objects: at %s nodes, each 1,000 DaemonSets cost kmm-render %s of CPU from %s to %s, %s from %s to %s (target: at most %.1fx the first)",
			thousands(r.opts.target), seconds(first), thousands(a.objects), thousands(b.objects), seconds(last), thousands(b.objects), thousands(c.objects), linearSlack)})
	}
	return out
}

func perThousand(v float64, nodes int) float64 { return v * 1000 / float64(nodes) }

// write prints the report: the machine, the table, the targets.
func (r *results) write(w io.Writer) {
	m := r.machine
	fmt.Fprintf(w, "Machine: %s, %s cores, %s memory, %s, %s.\n", m.CPU, m.Cores, m.Memory, m.Kernel, m.Go)
	fmt.Fprintf(w, "Server: %s.\n", m.Server)
	fmt.Fprintf(w, "Load average (1, 5, 15 min) before: %s; after: %s.\n", m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(w, "Nodes: %d labels, %d annotations, capacity/allocatable, %d conditions, %d addresses, nodeInfo, %d images; %d kernels. Chart: %d modules, one catch-all kernel mapping each.\n",
		nodeLabels, nodeAnnotations, nodeConditions, nodeAddresses, nodeImages, r.opts.kernels, r.opts.modules)
	fmt.Fprintf(w, "Medians of %d alternating runs (%d above %s nodes), after one warm-up run each whose output is checked: wall time, peak RSS (getrusage maxrss), CPU time (user+system).\n\n",
		r.opts.runs, min(r.opts.runs, r.opts.largeRuns), thousands(r.opts.target))
	fmt.Fprintln(w, "| nodes | (a) floor: client-go List, typed, JSON | (a') floor, protobuf | (b) `kubectl get nodes -o json` | (c) kmm-render end to end | c/a wall | c/a CPU | c/a' wall | DaemonSets | output | nodes created in |")
	fmt.Fprintln(w, "|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|")
	for _, x := range r.rows {
		kubectl := "not measured"
		if r.kubectlNote == "" {
			kubectl = cell(x.kubectl)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.2f | %.2f | %.2f | %s | %.1f MB | %.1f s |\n", thousands(x.nodes), cell(x.floor), cell(x.floorPB), kubectl, cell(x.render),
			ratio(x.render.wall, x.floor.wall), ratio(x.render.cpu, x.floor.cpu), ratio(x.render.wall, x.floorPB.wall),
			thousands(x.objects), float64(x.outBytes)/1e6, x.create.Seconds())
	}
	if r.kubectlNote != "" {
		fmt.Fprintf(w, "\n(b) %s.\n", r.kubectlNote)
	}
	if b := r.baseline; b != nil {
		fmt.Fprintf(w, "\nBaseline: the kmm-render given with -baseline (%s), at %s nodes, in the same run: floor %s, kmm-render %s, c/a wall %.2f, CPU %.2f.\n",
			filepath.Base(r.baselineName), thousands(r.opts.target), cell(b.floor), cell(b.render), ratio(b.render.wall, b.floor.wall), ratio(b.render.cpu, b.floor.cpu))
	}
	if len(r.objects) > 0 {
		fmt.Fprintf(w, "\nGenerated objects at %s nodes (more modules, the same nodes):\n\n", thousands(r.opts.target))
		fmt.Fprintln(w, "| modules | DaemonSets | (a) floor | (c) kmm-render | c/a wall | c/a CPU |")
		fmt.Fprintln(w, "|---:|---:|---|---|---:|---:|")
		for _, o := range r.objects {
			fmt.Fprintf(w, "| %d | %s | %s | %s | %.2f | %.2f |\n", o.modules, thousands(o.objects), cell(o.floor), cell(o.render),
				ratio(o.render.wall, o.floor.wall), ratio(o.render.cpu, o.floor.cpu))
		}
	}
	fmt.Fprintln(w)
	for _, v := range r.targets() {
		fmt.Fprintln(w, v.String()+"  ")
	}
}

func cell(s stats) string {
	return fmt.Sprintf("%s, %.0f MiB (CPU %s)", seconds(float64(s.wall)), float64(s.rss)/1024, seconds(float64(s.cpu)))
}

func seconds(ns float64) string { return fmt.Sprintf("%.2f s", ns/1e9) }

// thousands writes n with thousands separators: 15,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// updateDoc replaces the text between the markers of path with the report.
func (r *results) updateDoc(path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin := bytes.Index(doc, []byte(docBegin))
	end := bytes.Index(doc, []byte(docEnd))
	if begin < 0 || end < begin {
		return fmt.Errorf("%s has no section between %q and %q to rewrite", path, docBegin, docEnd)
	}
	var b bytes.Buffer
	b.Write(doc[:begin+len(docBegin)])
	b.WriteString("\n\n")
	r.write(&b)
	b.WriteString("\n")
	b.Write(doc[end:])
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return err
	}
	logf("wrote the results into %s", path)
	return nil
}
