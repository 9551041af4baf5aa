// Command cluster is kmm-render's cluster benchmark (`make bench-cluster`): on a real local
// kube-apiserver and etcd (internal/localcluster, with no controller manager, scheduler or
// kwok, whose heartbeats and watches would compete for the CPUs), it creates kubelet-shaped
// nodes (see benchNode) at several cluster sizes and measures, in the same run against the same
// server, whole processes:
//
//	(a) the floor: test/bench/floor, a client-go paginated List of the nodes into typed objects;
//	(b) kubectl get nodes -o json, when a kubectl is given;
//	(c) kmm-render end to end: the chart's real output on stdin, the nodes from the cluster,
//	    the manifests on stdout.
//
// Each is run once to warm up (its output checked), then several times in alternation; the
// table gives the median wall time, peak RSS and CPU time of each, kmm-render's as multiples of
// the floor's, and PASS or MISS for each of the targets (see targets). With -doc it
// also rewrites the marked section of docs/benchmarks.md.
//
// It is no test: timing belongs here, not in `go test`.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"kmm.dev/kmm/internal/localcluster"
	"kmm.dev/kmm/pkg/chartrender"
)

// options are the benchmark's flags.
type options struct {
	sizes     []int
	runs      int
	largeRuns int // runs at sizes above target
	target    int // the size the speed and memory targets apply to
	modules   int
	kernels   int
	// objectsFactors multiply the modules for more kmm-render measurements at the target size:
	// the same nodes, that many times the generated objects. Empty skips them.
	objectsFactors []int
	kubectl        string
	// baseline is another kmm-render binary (an earlier build) to measure at the target size.
	baseline string
	doc      string
	workers  int
	keep     bool
	// serve creates the largest size's nodes, prints where the cluster and the inputs are, and
	// waits for SIGINT: for profiling kmm-render by hand against the benchmark's cluster.
	serve bool
}

func main() {
	var o options
	sizes := flag.String("sizes", "1000,5000,15000", "cluster sizes (node counts), ascending")
	flag.IntVar(&o.runs, "runs", 5, "timed runs of each program per size")
	flag.IntVar(&o.largeRuns, "large-runs", 3, "timed runs per size above -target (they take longest)")
	flag.IntVar(&o.target, "target", 5000, "the size the 1.2x and 100 MiB targets apply to")
	flag.IntVar(&o.modules, "modules", 20, "modules in the chart's values, each with one catch-all kernel mapping")
	flag.IntVar(&o.kernels, "kernels", 50, "distinct kernels the nodes run")
	factors := flag.String("objects-factors", "2,4", "also measure kmm-render at -target with these multiples of the modules (empty: skip)")
	flag.StringVar(&o.kubectl, "kubectl", "", "kubectl binary for `kubectl get nodes -o json` (empty: that column is not measured)")
	flag.StringVar(&o.baseline, "baseline", "", "another kmm-render binary (say, an earlier build) to measure at -target too")
	flag.StringVar(&o.doc, "doc", "", "rewrite the benchmark section of this Markdown file (docs/benchmarks.md) with the results")
	flag.IntVar(&o.workers, "workers", 16, "node creations in flight")
	flag.BoolVar(&o.keep, "keep", false, "keep the work folder (cluster logs, inputs)")
	flag.BoolVar(&o.serve, "serve", false, "create the largest size's nodes, print the kubeconfig and inputs, and wait for Ctrl-C (for profiling)")
	flag.Parse()
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 || len(o.sizes) > 0 && n <= o.sizes[len(o.sizes)-1] {
			fmt.Fprintf(os.Stderr, "bench: -sizes %q: want ascending positive node counts\n", *sizes)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	// envtest logs through controller-runtime's logger, which complains (with a stack trace)
	// unless it is set; klog writes its few lines to stderr like the harness's own.
	ctrllog.SetLogger(klog.Background())
	for _, f := range strings.Split(*factors, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			fmt.Fprintf(os.Stderr, "bench: -objects-factors %q: want multiples of 2 or more\n", *factors)
			os.Exit(2)
		}
		o.objectsFactors = append(o.objectsFactors, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// run runs the whole benchmark and writes the report to out.
func run(ctx context.Context, o options, out io.Writer) (retErr error) {
	repo, err := localcluster.RepoRoot()
	if err != nil {
		return err
	}
	m := describeMachine()
	work, err := os.MkdirTemp("", "kmm-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || retErr != nil {
			logf("kept %s", work)
			return
		}
		os.RemoveAll(work)
	}()

	// The programs, built as `make build` builds kmm-render.
	bin := func(name, pkg string) (string, error) {
		path := filepath.Join(work, name)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", path+".built", pkg)
		cmd.Dir = repo
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		// Installed as cp and `helm plugin install` install files. Peak RSS counts the pages of
		// the executable a program maps, and how many it maps depends on how the file was written
		// (the page cache holds it in larger pieces after one large write): here the same
		// kmm-render starts at 46 MiB copied with cp, 60-70 MiB as the linker wrote it, 79 MiB
		// written with one os.WriteFile. Every program is installed the same way.
		return path, copyFile(path+".built", path)
	}
	t0 := time.Now()
	kmmRender, err := bin("kmm-render", "./cmd/kmm-render")
	if err != nil {
		return err
	}
	floor, err := bin("floor", "./test/bench/floor")
	if err != nil {
		return err
	}
	rusage, err := bin("rusage", "./test/bench/rusage")
	if err != nil {
		return err
	}
	baseline := ""
	if o.baseline != "" {
		// Installed as the others are (see bin).
		baseline = filepath.Join(work, "kmm-render-baseline")
		if err := copyInto(o.baseline, baseline); err != nil {
			return fmt.Errorf("installing the baseline: %w", err)
		}
	}
	logf("built kmm-render, the floor and rusage (%.1fs)", time.Since(t0).Seconds())
	kubectlNote := ""
	if o.kubectl == "" {
		kubectlNote = "not measured: no kubectl given (make bench-cluster builds one from k8s.io/kubectl into bin/tools)"
	} else if o.kubectl, err = filepath.Abs(o.kubectl); err != nil {
		return err
	}

	// The chart's real output, as Helm hands it to the post-renderer.
	input := func(modules int) (string, error) {
		values := filepath.Join(work, fmt.Sprintf("values-%d-modules.yaml", modules))
		if err := os.WriteFile(values, []byte(chartValues(modules)), 0o644); err != nil {
			return "", err
		}
		r, err := chartrender.Render(ctx, chartrender.Options{
			ChartDir: filepath.Join(repo, "charts", "kmm"), ReleaseName: "kmm", Namespace: "kmm-system",
			ValueFiles: []string{values},
		})
		if err != nil {
			return "", fmt.Errorf("rendering the chart for %d modules: %w", modules, err)
		}
		path := filepath.Join(work, fmt.Sprintf("chart-%d-modules.yaml", modules))
		return path, os.WriteFile(path, []byte(r.Manifests), 0o644)
	}
	chartIn, err := input(o.modules)
	if err != nil {
		return err
	}
	chartInMore := map[int]string{} // by factor
	for _, f := range o.objectsFactors {
		if chartInMore[f], err = input(o.modules * f); err != nil {
			return err
		}
	}

	t0 = time.Now()
	c, err := localcluster.Start(ctx, localcluster.Options{
		WorkDir: filepath.Join(work, "cluster"), Log: os.Stderr, APIServerOnly: true,
	})
	if err != nil {
		return err
	}
	// No StopOnSignal: SIGINT cancels ctx (see main), which ends the running program and returns
	// here, and the deferred Stop and removal of the work folder run.
	defer func() {
		c.Keep = o.keep || retErr != nil
		if err := c.Stop(); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	m.Server = fmt.Sprintf("local kube-apiserver + etcd (%s), started in %.1fs; no controller manager, scheduler or kwok", assetVersions(c.AssetsDir), time.Since(t0).Seconds())
	// Creating nodes is the slow part: no client-side rate limit, protobuf.
	cfg := *c.Config
	cfg.QPS, cfg.Burst = -1, 0
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	admin, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		return err
	}

	if o.serve {
		size := o.sizes[len(o.sizes)-1]
		if err := createNodes(ctx, admin, 0, size, o.kernels, o.workers); err != nil {
			return err
		}
		fmt.Fprintf(out, "%d nodes; Ctrl-C stops the cluster.\n  %s --kubeconfig %s < %s\n  %s --kubeconfig %s\n",
			size, kmmRender, c.Kubeconfig, chartIn, floor, c.Kubeconfig)
		<-ctx.Done()
		return nil
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(work, "home")}
	kcArgs := []string{"--kubeconfig", c.Kubeconfig}
	floorP := program{name: "floor", argv: append([]string{floor}, kcArgs...)}
	floorPB := program{name: "floor -protobuf", argv: append([]string{floor, "-protobuf"}, kcArgs...)}
	var outBytes int // kmm-render's output size, from its warm-up run
	renderP := func(in string, objects int) program {
		return program{name: "kmm-render", argv: append([]string{kmmRender}, kcArgs...), stdin: in,
			check: func(r io.Reader) (err error) { outBytes, err = checkRender(r, objects); return err }}
	}
	var kubectlP *program
	if o.kubectl != "" {
		kubectlP = &program{name: "kubectl", argv: append([]string{o.kubectl, "get", "nodes", "-o", "json"}, kcArgs...)}
	}

	res := &results{opts: o, machine: m, kubectlNote: kubectlNote}
	have := 0
	for _, size := range o.sizes {
		t0 := time.Now()
		if err := createNodes(ctx, admin, have, size, o.kernels, o.workers); err != nil {
			return err
		}
		row := row{nodes: size, objects: o.modules * o.kernels, create: time.Since(t0), created: size - have}
		have = size
		logf("%d nodes: created %d in %.1fs", size, row.created, row.create.Seconds())
		floorP.check = func(r io.Reader) error { return checkFloor(r, size) }
		floorPB.check = floorP.check
		if kubectlP != nil {
			kubectlP.check = func(r io.Reader) error { return checkKubectl(r, size) }
		}
		// In this order, round after round: the floors, kmm-render, kubectl.
		progs := []program{floorP, floorPB, renderP(chartIn, row.objects)}
		if kubectlP != nil {
			progs = append(progs, *kubectlP)
		}
		runs := o.runs
		if size > o.target {
			runs = min(o.runs, o.largeRuns)
		}
		samples, err := measure(ctx, rusage, env, progs, runs)
		if err != nil {
			return err
		}
		row.floor, row.floorPB, row.render = summarize(samples[0]), summarize(samples[1]), summarize(samples[2])
		if kubectlP != nil {
			row.kubectl = summarize(samples[3])
		}
		row.outBytes = outBytes
		logf("%d nodes: floor %s, kmm-render %s (%.2fx)", size, row.floor.wall.Round(time.Millisecond), row.render.wall.Round(time.Millisecond), ratio(row.render.wall, row.floor.wall))
		res.rows = append(res.rows, row)

		if size == o.target && baseline != "" {
			base := renderP(chartIn, row.objects)
			base.name, base.argv[0] = "baseline kmm-render", baseline
			samples, err := measure(ctx, rusage, env, []program{floorP, base}, runs)
			if err != nil {
				return err
			}
			res.baseline = &objectsRow{modules: o.modules, objects: row.objects, floor: summarize(samples[0]), render: summarize(samples[1])}
			res.baselineName = o.baseline
			logf("%d nodes: baseline kmm-render %s", size, res.baseline.render.wall.Round(time.Millisecond))
		}
		if size == o.target && len(o.objectsFactors) > 0 {
			res.objects = []objectsRow{{modules: o.modules, objects: row.objects, floor: row.floor, render: row.render}}
			for _, f := range o.objectsFactors {
				more := o.modules * f * o.kernels
				samples, err := measure(ctx, rusage, env, []program{floorP, renderP(chartInMore[f], more)}, runs)
				if err != nil {
					return err
				}
				res.objects = append(res.objects, objectsRow{modules: o.modules * f, objects: more,
					floor: summarize(samples[0]), render: summarize(samples[1])})
				logf("%d nodes, %d DaemonSets: kmm-render %s", size, more, res.objects[len(res.objects)-1].render.wall.Round(time.Millisecond))
			}
		}
	}
	res.machine.LoadAfter = loadAverage()
	res.write(out)
	if o.doc != "" {
		return res.updateDoc(filepath.Join(repo, o.doc))
	}
	return nil
}

// measure warms each program up once (checking its output), then runs them in turn, runs
// times each, and returns each one's samples.
func measure(ctx context.Context, rusage string, env []string, progs []program, runs int) ([][]sample, error) {
	for _, p := range progs {
		if err := p.warmUp(ctx, rusage, env); err != nil {
			return nil, err
		}
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer devNull.Close()
	samples := make([][]sample, len(progs))
	for range runs {
		for i, p := range progs {
			s, err := p.run(ctx, rusage, env, devNull)
			if err != nil {
				return nil, err
			}
			samples[i] = append(samples[i], s)
		}
	}
	return samples, nil
}

// copyFile copies the executable from to to (copyInto) and removes from.
func copyFile(from, to string) error {
	if err := copyInto(from, to); err != nil {
		return err
	}
	return os.Remove(from)
}

// copyInto copies the executable from to to, as cp and `helm plugin install` do (io.Copy
// between files is copy_file_range on Linux).
func copyInto(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// checkFloor: the floor prints how many nodes it listed.
func checkFloor(r io.Reader, nodes int) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(nodes) {
		return fmt.Errorf("listed %q nodes, want %d", got, nodes)
	}
	return nil
}

// checkKubectl: kubectl's JSON holds one `"kind": "Node",` line per node.
func checkKubectl(r io.Reader, nodes int) error {
	n, err := countLines(r, `"kind": "Node",`)
	if err != nil {
		return err
	}
	if n != nodes {
		return fmt.Errorf("printed %d nodes, want %d", n, nodes)
	}
	return nil
}

// checkRender: kmm-render writes one loader DaemonSet per module and kernel, and the chart
// renders no other DaemonSet with these values. It returns the output's size.
func checkRender(r io.Reader, objects int) (int, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	if n := bytes.Count(b, []byte("\nkind: DaemonSet\n")); n != objects {
		return 0, fmt.Errorf("wrote %d DaemonSets, want %d", n, objects)
	}
	return len(b), nil
}

// chartValues are values for modules modules, each loaded on every Linux node through one
// catch-all kernel mapping.
func chartValues(modules int) string {
	var b strings.Builder
	b.WriteString("certManager:\n  enabled: true\nmodules:\n")
	for i := range modules {
		name := fmt.Sprintf("bench-mod-%02d", i)
		fmt.Fprintf(&b, `  - name: %s
    namespace: kmm-bench
    selector:
      kubernetes.io/os: linux
    moduleLoader:
      container:
        containerImage: registry.example/kmm/%s:${KERNEL_FULL_VERSION}
        modprobe:
          moduleName: %s
        kernelMappings:
          - regexp: '^.+$'
`, name, name, strings.ReplaceAll(name, "-", "_"))
	}
	return b.String()
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
