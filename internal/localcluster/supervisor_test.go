package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStateFile(t *testing.T) {
	full := &State{
		Supervisor: Process{Name: "kmm-cluster", Pid: 10, StartTime: 100},
		Ready:      true,
		Kubeconfig: "/d/run/kubeconfig",
		WorkDir:    "/d/run",
		Nodes:      "/repo/examples/eks/nodes.yaml",
		Log:        "/d/kmm-cluster.log",
		Processes: []Process{
			{Name: "etcd", Pid: 11, StartTime: 101, Log: "/d/run/logs/etcd.log"},
			{Name: "kwok", Pid: 12, StartTime: 102, Log: "/d/run/logs/kwok.log", Group: true},
		},
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) // what is in dir before ReadState
		want    *State
		wantErr []string
		notExit bool // the error wraps fs.ErrNotExist
	}{
		{
			name:  "round trip",
			setup: func(t *testing.T, dir string) { require.NoError(t, WriteState(dir, full)) },
			want:  full,
		},
		{
			name:  "an error state",
			setup: func(t *testing.T, dir string) { require.NoError(t, WriteState(dir, &State{Error: "boom"})) },
			want:  &State{Error: "boom"},
		},
		{
			name: "the JSON of an older kmm-cluster",
			setup: func(t *testing.T, dir string) {
				write(t, StatePath(dir), `{"supervisor":{"name":"kmm-cluster","pid":10,"startTime":100},"ready":true,"workDir":"/d/run","log":"/d/kmm-cluster.log","processes":[{"name":"kwok","pid":12,"startTime":102,"group":true}],"started":"2026-01-02T03:04:05Z"}`)
			},
			want: &State{
				Supervisor: Process{Name: "kmm-cluster", Pid: 10, StartTime: 100}, Ready: true, WorkDir: "/d/run", Log: "/d/kmm-cluster.log",
				Processes: []Process{{Name: "kwok", Pid: 12, StartTime: 102, Group: true}},
				Started:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			},
		},
		{
			name:    "nothing recorded",
			setup:   func(t *testing.T, dir string) {},
			wantErr: []string{"reading the cluster state", "state.json"},
			notExit: true,
		},
		{
			name:    "malformed",
			setup:   func(t *testing.T, dir string) { write(t, StatePath(dir), `{"supervisor": `) },
			wantErr: []string{"reading the cluster state", "state.json", "unexpected end of JSON input"},
		},
		{
			name:    "a folder where the file should be",
			setup:   func(t *testing.T, dir string) { require.NoError(t, os.Mkdir(StatePath(dir), 0o755)) },
			wantErr: []string{"reading the cluster state", "state.json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			got, err := ReadState(dir)
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				assert.Equal(t, tt.notExit, errors.Is(err, fs.ErrNotExist))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			_, err = os.Stat(StatePath(dir) + ".tmp")
			assert.True(t, os.IsNotExist(err), "no temporary file left")
		})
	}
}

func TestWriteStateErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		dir     string
		wantErr string
	}{
		{name: "missing folder", dir: filepath.Join(dir, "missing"), wantErr: "missing/state.json.tmp"},
		{name: "state.json is a non-empty folder", dir: func() string {
			d := filepath.Join(dir, "blocked")
			require.NoError(t, os.MkdirAll(filepath.Join(StatePath(d), "x"), 0o755))
			return d
		}(), wantErr: "blocked/state.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteState(tt.dir, &State{Ready: true})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "writing the cluster state")
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

// TestDown runs Down on recorded real processes.
func TestDown(t *testing.T) {
	type rec struct {
		start    func(t *testing.T) *child
		reused   bool             // recorded with another start time: the pid is someone else's now
		wantSigs []syscall.Signal // signals Down sends it
		wantExit syscall.Signal   // 0: still runs after Down
	}
	tests := []struct {
		name       string
		supervisor *rec // nil: recorded, but gone
		procs      []rec
		timeout    time.Duration
		wantLog    []string
	}{
		{
			name: "supervisor gone: the processes it left get SIGTERM, then SIGKILL",
			procs: []rec{
				{start: func(t *testing.T) *child { return sleeper(t, "kube-scheduler") }, wantSigs: []syscall.Signal{syscall.SIGTERM}, wantExit: syscall.SIGTERM},
				{start: func(t *testing.T) *child { return termIgnoring(t, "kwok") }, wantSigs: []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}, wantExit: syscall.SIGKILL},
			},
			wantLog: []string{"sending SIGTERM to kube-scheduler (pid ", "sending SIGTERM to kwok (pid ", "sending SIGKILL to kwok (pid ", "cluster stopped"},
		},
		{
			name: "a recorded pid now runs another process: it is not killed",
			procs: []rec{
				{start: func(t *testing.T) *child { return sleeper(t, "etcd") }, reused: true},
				{start: func(t *testing.T) *child { return sleeper(t, "kwok") }, wantSigs: []syscall.Signal{syscall.SIGTERM}, wantExit: syscall.SIGTERM},
			},
			wantLog: []string{"sending SIGTERM to kwok (pid ", "cluster stopped"},
		},
		{
			name:       "supervisor runs and stops on SIGTERM",
			supervisor: &rec{start: func(t *testing.T) *child { return sleeper(t, "kmm-cluster") }, wantSigs: []syscall.Signal{syscall.SIGTERM}, wantExit: syscall.SIGTERM},
			procs: []rec{
				{start: func(t *testing.T) *child { return sleeper(t, "kwok") }, wantSigs: []syscall.Signal{syscall.SIGTERM}, wantExit: syscall.SIGTERM},
			},
			timeout: time.Hour,
			wantLog: []string{"stopping the supervisor (pid ", "cluster stopped"},
		},
		{
			name:       "supervisor ignores SIGTERM: SIGKILL after Timeout",
			supervisor: &rec{start: func(t *testing.T) *child { return termIgnoring(t, "kmm-cluster") }, wantSigs: []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}, wantExit: syscall.SIGKILL},
			timeout:    20 * time.Millisecond,
			wantLog:    []string{"stopping the supervisor (pid ", "the supervisor did not stop within 20ms; killing it", "cluster stopped"},
		},
		{
			name:       "supervisor pid reused: not signalled",
			supervisor: &rec{start: func(t *testing.T) *child { return sleeper(t, "kmm-cluster") }, reused: true},
			wantLog:    []string{"cluster stopped"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			record := func(r rec) (*child, Process) {
				c := r.start(t)
				p := c.p
				if r.reused {
					p.StartTime++
				}
				return c, p
			}
			s := &State{Supervisor: Process{Name: "kmm-cluster", Pid: 1 << 30, StartTime: 1}, WorkDir: RunDir(dir)}
			var supChild *child
			if tt.supervisor != nil {
				supChild, s.Supervisor = record(*tt.supervisor)
			}
			var children []*child
			for _, r := range tt.procs {
				c, p := record(r)
				children = append(children, c)
				s.Processes = append(s.Processes, p)
			}
			require.NoError(t, WriteState(dir, s))
			write(t, filepath.Join(RunDir(dir), "logs", "etcd.log"), "x")

			signals := &recorder{}
			var log bytes.Buffer
			err := Down(context.Background(), DownOptions{
				Dir: dir, Timeout: tt.timeout, Grace: 20 * time.Millisecond, Log: &log,
				stop: StopOptions{interval: 5 * time.Millisecond, kill: signals.kill},
			})
			require.NoError(t, err)

			check := func(r rec, c *child) {
				var got []syscall.Signal
				for _, s := range signals.signals() {
					if s.Pid == c.p.Pid || s.Pid == -c.p.Pid {
						got = append(got, s.Sig)
					}
				}
				assert.Equal(t, r.wantSigs, got, "signals to %s", c.p.Name)
				if r.wantExit == 0 {
					c.stillRuns(t)
				} else {
					assert.Equal(t, r.wantExit, c.exitSignal(t), "what ended %s", c.p.Name)
				}
			}
			if supChild != nil {
				check(*tt.supervisor, supChild)
			}
			for i, r := range tt.procs {
				check(r, children[i])
			}
			for _, want := range tt.wantLog {
				assert.Contains(t, log.String(), want)
			}
			_, err = os.Stat(StatePath(dir))
			assert.True(t, os.IsNotExist(err), "state file removed")
			_, err = os.Stat(RunDir(dir))
			assert.True(t, os.IsNotExist(err), "work folder removed")
		})
	}
}

func TestDownNothingToStop(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantLog string
		wantErr string
	}{
		{name: "nothing recorded", setup: func(*testing.T, string) {}, wantLog: "no cluster recorded in %s; nothing to stop\n"},
		{
			name:    "malformed state: an error, and nothing removed",
			setup:   func(t *testing.T, dir string) { write(t, StatePath(dir), "{") },
			wantErr: "stopping the cluster: reading the cluster state",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			write(t, filepath.Join(RunDir(dir), "kubeconfig"), "x")
			var log bytes.Buffer
			err := Down(context.Background(), DownOptions{Dir: dir, Log: &log})
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				_, statErr := os.Stat(StatePath(dir))
				assert.NoError(t, statErr, "state kept")
			} else {
				require.NoError(t, err)
				assert.Equal(t, fmt.Sprintf(tt.wantLog, dir), log.String())
			}
			_, statErr := os.Stat(filepath.Join(RunDir(dir), "kubeconfig"))
			assert.NoError(t, statErr, "work folder kept")
		})
	}
	err := Down(context.Background(), DownOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no folder given")
}

func TestReadStatus(t *testing.T) {
	dir := t.TempDir()
	st, err := ReadStatus(dir)
	require.NoError(t, err)
	assert.Equal(t, &Status{Dir: dir}, st, "nothing recorded")

	running := sleeper(t, "kwok")
	gone := startChild(t, "etcd", false, false, "true")
	require.NoError(t, gone.cmd.Wait())
	gone.reaped = true
	reused := sleeper(t, "kube-scheduler")
	reusedP := reused.p
	reusedP.StartTime++
	self, err := ProcessOf("kmm-cluster", os.Getpid())
	require.NoError(t, err)
	s := &State{Supervisor: self, Ready: true, Processes: []Process{running.p, gone.p, reusedP}}
	require.NoError(t, WriteState(dir, s))

	st, err = ReadStatus(dir)
	require.NoError(t, err)
	assert.Equal(t, s, st.State)
	assert.Equal(t, []ProcessStatus{
		{Process: self, Running: true},
		{Process: running.p, Running: true},
		{Process: gone.p, Running: false},
		{Process: reusedP, Running: false},
	}, st.Processes)

	write(t, StatePath(dir), "[")
	_, err = ReadStatus(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), StatePath(dir))
}

// fakeAssets makes an assets folder CheckAssets accepts: empty executables and stage files.
func fakeAssets(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range requiredBinaries {
		require.NoError(t, os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\nexit 1\n"), 0o755))
	}
	for _, s := range KwokStages {
		write(t, filepath.Join(dir, "kwok-stages", s), "")
	}
	return dir
}

const twoNodes = `apiVersion: v1
kind: List
items:
- kind: Node
  metadata: {name: a}
  status: {nodeInfo: {kernelVersion: 6.8.0-51-generic}}
- kind: Node
  metadata: {name: b}
  status: {nodeInfo: {kernelVersion: 5.10.109+}}
`

// fakeSupervisor is a shell script standing in for `kmm-cluster serve`: $1 is the folder. It
// records itself (pid and start time from /proc) as Serve does, then does what tail says.
func fakeSupervisor(tail string) string {
	return `dir=$1
st=$(cut -d' ' -f22 /proc/$$/stat)
record() { printf '%s' "$1" > "$dir/state.json.tmp" && mv "$dir/state.json.tmp" "$dir/state.json"; }
sup="{\"name\":\"kmm-cluster\",\"pid\":$$,\"startTime\":$st}"
` + tail
}

func TestUp(t *testing.T) {
	tests := []struct {
		name    string
		script  string // fakeSupervisor's tail
		timeout time.Duration
		// before puts a state in the folder before Up; it returns a process that Up should stop.
		before  func(t *testing.T, dir string) *child
		wantErr []string
		wantLog []string
	}{
		{
			name:    "ready",
			script:  `echo serving; record "{\"supervisor\":$sup,\"ready\":true,\"kubeconfig\":\"$dir/run/kubeconfig\"}"; exec sleep 1000`,
			wantLog: []string{"starting the cluster (supervisor pid ", "kmm-cluster.log)...", "cluster is up: 2 node(s) from "},
		},
		{
			name:    "the supervisor records an error",
			script:  `record "{\"supervisor\":$sup,\"error\":\"etcd did not start\"}"; exec sleep 1000`,
			wantErr: []string{"the cluster did not start: etcd did not start", "(log: "},
		},
		{
			name:    "the supervisor exits first",
			script:  `echo no luck; exit 3`,
			wantErr: []string{"the supervisor exited (exit status 3) before the cluster was ready; log ", "  | no luck"},
		},
		{
			name:    "a state of another supervisor is not taken for this one's",
			script:  `record "{\"supervisor\":{\"pid\":1},\"ready\":true}"; exit 4`,
			wantErr: []string{"the supervisor exited (exit status 4)"},
		},
		{
			name:    "not ready in time: the supervisor gets SIGTERM",
			script:  `echo waiting; exec sleep 1000`,
			timeout: 50 * time.Millisecond,
			wantErr: []string{"the cluster was not ready after 50ms; stopping it; log "},
		},
		{
			name:   "a supervisor recorded in the folder still runs: refused",
			script: `exit 5`,
			before: func(t *testing.T, dir string) *child {
				self, err := ProcessOf("kmm-cluster", os.Getpid())
				require.NoError(t, err)
				require.NoError(t, WriteState(dir, &State{Supervisor: self}))
				return nil
			},
			wantErr: []string{"a cluster is already running from ", "(supervisor pid " + strconv.Itoa(os.Getpid()) + "); run `kmm-cluster down --dir "},
		},
		{
			name:   "a stale state: what its supervisor left is stopped first",
			script: `record "{\"supervisor\":$sup,\"ready\":true,\"kubeconfig\":\"k\"}"; exec sleep 1000`,
			before: func(t *testing.T, dir string) *child {
				left := sleeper(t, "kwok")
				require.NoError(t, WriteState(dir, &State{Supervisor: Process{Pid: 1 << 30, StartTime: 1}, Processes: []Process{left.p}}))
				return left
			},
			wantLog: []string{"sending SIGTERM to kwok (pid ", "cluster is up: 2 node(s)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			nodesFile := filepath.Join(t.TempDir(), "nodes.yaml")
			write(t, nodesFile, twoNodes)
			assets := fakeAssets(t)
			write(t, filepath.Join(RunDir(dir), "stale"), "from the last cluster")
			var left *child
			if tt.before != nil {
				left = tt.before(t, dir)
			}
			var got ServeOptions
			log := &catcher{}
			s, err := Up(context.Background(), UpOptions{
				Dir: dir, Nodes: nodesFile, AssetsDir: assets, CertManagerCRDs: true, Timeout: tt.timeout, Log: log,
				SupervisorCommand: func(o ServeOptions) []string {
					got = o
					return []string{"/bin/sh", "-c", fakeSupervisor(tt.script), "fake-supervisor", o.Dir}
				},
				interval: 5 * time.Millisecond,
			})
			// Stop the fake supervisor, whatever happened, as recorded by itself.
			t.Cleanup(func() {
				if rs, err := ReadState(dir); err == nil && rs.Supervisor.Pid != os.Getpid() {
					_ = StopProcesses(context.Background(), []Process{rs.Supervisor}, StopOptions{Grace: time.Second})
				}
			})
			if left != nil {
				assert.Equal(t, syscall.SIGTERM, left.exitSignal(t), "left-over process stopped")
			}
			for _, want := range tt.wantLog {
				assert.Contains(t, log.String(), want)
			}
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, want := range tt.wantErr {
					assert.Contains(t, err.Error(), want)
				}
				if strings.Contains(tt.name, "SIGTERM") {
					require.NotZero(t, log.supervisor.Pid)
					untilGone(t, log.supervisor)
				}
				return
			}
			require.NoError(t, err)
			assert.True(t, s.Ready)
			assert.True(t, s.Supervisor.Running())
			assert.Equal(t, ServeOptions{Dir: dir, Nodes: nodesFile, AssetsDir: assets, CertManagerCRDs: true}, got)
			_, err = os.Stat(filepath.Join(RunDir(dir), "stale"))
			assert.True(t, os.IsNotExist(err), "the last cluster's work folder is gone")
			assert.FileExists(t, SupervisorLog(dir))

			// Down stops the supervisor Up started, found through the state it recorded.
			var downLog bytes.Buffer
			require.NoError(t, Down(context.Background(), DownOptions{Dir: dir, Log: &downLog}))
			assert.Contains(t, downLog.String(), fmt.Sprintf("stopping the supervisor (pid %d)...", s.Supervisor.Pid))
			untilGone(t, s.Supervisor)
		})
	}
}

// catcher is Up's log, and catches the supervisor's identity when Up names its pid. Up has not
// signalled it yet then, so a supervisor that never exits on its own (the one test that reads
// catcher.supervisor has such) still runs under that pid.
type catcher struct {
	bytes.Buffer
	supervisor Process
}

var supervisorPidRE = regexp.MustCompile(`supervisor pid (\d+),`)

func (c *catcher) Write(p []byte) (int, error) {
	if m := supervisorPidRE.FindSubmatch(p); m != nil && c.supervisor.Pid == 0 {
		pid, _ := strconv.Atoi(string(m[1]))
		c.supervisor, _ = ProcessOf("supervisor", pid)
	}
	return c.Buffer.Write(p)
}

func TestUpInvalid(t *testing.T) {
	nodesFile := filepath.Join(t.TempDir(), "nodes.yaml")
	write(t, nodesFile, twoNodes)
	assets := fakeAssets(t)
	cmd := func(ServeOptions) []string { return []string{"/bin/false"} }
	tests := []struct {
		name    string
		o       UpOptions
		wantErr []string
	}{
		{name: "no folder", o: UpOptions{Nodes: nodesFile, AssetsDir: assets, SupervisorCommand: cmd}, wantErr: []string{"no folder given"}},
		{name: "no nodes", o: UpOptions{Dir: t.TempDir(), AssetsDir: assets, SupervisorCommand: cmd}, wantErr: []string{"no node snapshot given"}},
		{name: "no supervisor command", o: UpOptions{Dir: t.TempDir(), Nodes: nodesFile, AssetsDir: assets}, wantErr: []string{"no supervisor command given"}},
		{
			name:    "bad node file",
			o:       UpOptions{Dir: t.TempDir(), Nodes: writeTemp(t, "pod.yaml", "kind: Pod\n"), AssetsDir: assets, SupervisorCommand: cmd},
			wantErr: []string{"node file ", "pod.yaml", "document 1 is kind Pod"},
		},
		{
			name:    "missing node file",
			o:       UpOptions{Dir: t.TempDir(), Nodes: "/nonexistent/nodes.yaml", AssetsDir: assets, SupervisorCommand: cmd},
			wantErr: []string{"reading node file", "/nonexistent/nodes.yaml"},
		},
		{
			name:    "assets missing",
			o:       UpOptions{Dir: t.TempDir(), Nodes: nodesFile, AssetsDir: t.TempDir(), SupervisorCommand: cmd},
			wantErr: []string{"lacks etcd, kube-apiserver", "run `make tools`"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Up(context.Background(), tt.o)
			require.Error(t, err)
			for _, want := range tt.wantErr {
				assert.Contains(t, err.Error(), want)
			}
			if tt.o.Dir != "" {
				_, statErr := os.Stat(SupervisorLog(tt.o.Dir))
				assert.True(t, os.IsNotExist(statErr), "no supervisor started")
			}
		})
	}
}

func writeTemp(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	write(t, p, content)
	return p
}

// TestServeStartFails: Serve records itself, then the error when the cluster cannot start.
func TestServeStartFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cluster")
	err := Serve(context.Background(), ServeOptions{Dir: dir, Nodes: "/n.yaml", AssetsDir: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lacks etcd")
	s, rerr := ReadState(dir)
	require.NoError(t, rerr)
	assert.Equal(t, os.Getpid(), s.Supervisor.Pid)
	assert.True(t, s.Supervisor.Running(), "recorded with its start time")
	assert.False(t, s.Ready)
	assert.Equal(t, err.Error(), s.Error)
	assert.Equal(t, RunDir(dir), s.WorkDir)
	assert.Equal(t, "/n.yaml", s.Nodes)
	assert.Equal(t, SupervisorLog(dir), s.Log)

	require.ErrorContains(t, Serve(context.Background(), ServeOptions{}), "no folder given")
}
