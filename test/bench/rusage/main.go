// Command rusage runs a command and reports, as JSON on file descriptor 3, its wall time, peak
// resident set size and CPU time: {"wall_ns":..., "maxrss_kib":..., "cpu_ns":...}. Standard
// input, output and error are the command's own.
//
// The cluster benchmark (test/bench/cluster) runs every measured program through it because a
// child's ru_maxrss is at least the resident set of the process that started it: Go starts
// children with vfork (CLONE_VM), so the child execs from its parent's memory, and Linux carries
// that memory's high-water mark into the child's maxrss at exec. The benchmark holds a chart
// render and an API client in memory; this program holds almost nothing, so the maxrss of what
// it starts is that program's own.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rusage COMMAND [ARG...] 3>result.json")
		os.Exit(2)
	}
	result := os.NewFile(3, "result")
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rusage: %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(os.Stderr, "rusage: no rusage for the child (Linux only)")
		os.Exit(1)
	}
	err = json.NewEncoder(result).Encode(map[string]int64{
		"wall_ns":    int64(wall),
		"maxrss_kib": ru.Maxrss,
		"cpu_ns":     int64(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "rusage: writing the result: %v\n", err)
		os.Exit(1)
	}
}
