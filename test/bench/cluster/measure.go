package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// sample is one whole-process run: wall time from start to exit, peak resident set size
// (getrusage's ru_maxrss, KiB on Linux) and CPU time (user + system).
type sample struct {
	wall time.Duration
	rss  int64 // KiB
	cpu  time.Duration
}

// program is one of the measured programs.
type program struct {
	name string
	// argv is the command line; stdin, when set, is the file fed on standard input.
	argv  []string
	stdin string
	// check verifies the standard output of a run (the warm-up run, whose output is kept); it
	// reads it as a stream, since kubectl's JSON for 15,000 nodes is some 150 MB.
	check func(stdout io.Reader) error
}

// run runs p once, with its standard output going to stdout, through the rusage program (see
// test/bench/rusage for why), and returns what rusage measured.
func (p program) run(ctx context.Context, rusage string, env []string, stdout io.Writer) (sample, error) {
	cmd := exec.CommandContext(ctx, rusage, p.argv...)
	cmd.Env = env
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if p.stdin != "" {
		f, err := os.Open(p.stdin)
		if err != nil {
			return sample{}, err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	resultR, resultW, err := os.Pipe()
	if err != nil {
		return sample{}, err
	}
	defer resultR.Close()
	cmd.ExtraFiles = []*os.File{resultW}
	err = cmd.Start()
	resultW.Close()
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w", p.name, err)
	}
	var got struct {
		Wall   int64 `json:"wall_ns"`
		MaxRSS int64 `json:"maxrss_kib"`
		CPU    int64 `json:"cpu_ns"`
	}
	decodeErr := json.NewDecoder(resultR).Decode(&got)
	if err := cmd.Wait(); err != nil {
		return sample{}, fmt.Errorf("%s: %w\n%s", p.name, err, tail(stderr.String(), 20))
	}
	if decodeErr != nil {
		return sample{}, fmt.Errorf("%s: reading rusage's result: %w", p.name, decodeErr)
	}
	if stderr.Len() > 0 {
		// Warnings would mean the benchmark's nodes or values are not what it means them to be.
		return sample{}, fmt.Errorf("%s wrote to stderr:\n%s", p.name, tail(stderr.String(), 20))
	}
	return sample{wall: time.Duration(got.Wall), rss: got.MaxRSS, cpu: time.Duration(got.CPU)}, nil
}

// warmUp runs p once, checking its output: it fills the page cache, the API server's caches
// and kubectl's discovery cache, and proves the program does what is measured.
func (p program) warmUp(ctx context.Context, rusage string, env []string) error {
	r, w := io.Pipe()
	checked := make(chan error, 1)
	go func() {
		err := p.check(r)
		_, _ = io.Copy(io.Discard, r) // let the program finish writing whatever check left
		checked <- err
	}()
	_, err := p.run(ctx, rusage, env, w)
	w.Close()
	if cerr := <-checked; err == nil && cerr != nil {
		err = fmt.Errorf("%s: %w", p.name, cerr)
	}
	return err
}

// countLines counts the lines of r that equal want once trimmed of blanks.
func countLines(r io.Reader, want string) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == want {
			n++
		}
	}
	return n, sc.Err()
}

// stats are the medians of several samples.
type stats struct {
	runs int
	wall time.Duration
	rss  int64
	cpu  time.Duration
}

func summarize(ss []sample) stats {
	walls := make([]time.Duration, len(ss))
	cpus := make([]time.Duration, len(ss))
	rsss := make([]int64, len(ss))
	for i, s := range ss {
		walls[i], cpus[i], rsss[i] = s.wall, s.cpu, s.rss
	}
	return stats{runs: len(ss), wall: median(walls), rss: median(rsss), cpu: median(cpus)}
}

// median is the middle value; of an even count, the mean of the two middle ones.
func median[T int64 | time.Duration](v []T) T {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
