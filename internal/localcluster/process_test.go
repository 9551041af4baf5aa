package localcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stat builds a /proc/PID/stat line: pid, (comm), state, ppid, then fields 5..21 as zeros, the
// start time (field 22) and a few more fields.
func stat(pid int, comm string, state string, ppid int, start string) string {
	return fmt.Sprintf("%d (%s) %s %d%s %s 0 0 0\n", pid, comm, state, ppid, strings.Repeat(" 0", 17), start)
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    procStat
		wantErr string
	}{
		{
			name: "plain command",
			data: stat(4242, "etcd", "S", 1, "123456"),
			want: procStat{Comm: "etcd", State: 'S', Ppid: 1, StartTime: 123456},
		},
		{
			name: "command with spaces",
			data: stat(7, "kube apiserver", "R", 2, "99"),
			want: procStat{Comm: "kube apiserver", State: 'R', Ppid: 2, StartTime: 99},
		},
		{
			name: "command with parentheses and a space after ')'",
			data: stat(8, "a) (b) S 1 2 (c", "S", 3, "77"),
			want: procStat{Comm: "a) (b) S 1 2 (c", State: 'S', Ppid: 3, StartTime: 77},
		},
		{
			name: "empty command",
			data: stat(9, "", "D", 4, "5"),
			want: procStat{Comm: "", State: 'D', Ppid: 4, StartTime: 5},
		},
		{
			name: "zombie",
			data: stat(10, "sleep", "Z", 1, "18446744073709551615"),
			want: procStat{Comm: "sleep", State: 'Z', Ppid: 1, StartTime: 18446744073709551615},
		},
		{name: "no parentheses", data: "10 sleep S 1 0 0", wantErr: "no (comm)"},
		{name: "closing before opening", data: "10 )sleep( S 1", wantErr: "no (comm)"},
		{name: "empty", data: "", wantErr: "no (comm)"},
		{name: "too few fields", data: "10 (sleep) S 1 0 0 0", wantErr: "5 fields after (comm), want at least 20"},
		{name: "start time not a number", data: stat(10, "x", "S", 1, "soon"), wantErr: "start time"},
		{name: "ppid not a number", data: strings.Replace(stat(10, "x", "S", 1, "5"), "S 1 ", "S one ", 1), wantErr: "ppid"},
		{name: "state of two letters", data: stat(10, "x", "SS", 1, "5"), wantErr: `state "SS"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.data))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestParseProcStatOfThisProcess reads the real /proc/self/stat of a process whose command
// name has spaces and parentheses: a copy of sleep named so.
func TestParseProcStatRealCommandName(t *testing.T) {
	sleepPath, err := exec.LookPath("sleep")
	require.NoError(t, err)
	data, err := os.ReadFile(sleepPath)
	require.NoError(t, err)
	odd := t.TempDir() + "/a (b) c"
	require.NoError(t, os.WriteFile(odd, data, 0o755))
	c := startChild(t, "odd", false, false, odd, "1000")

	st, err := readProcStat(c.p.Pid)
	require.NoError(t, err)
	assert.Equal(t, "a (b) c", st.Comm)
	assert.Equal(t, os.Getpid(), st.Ppid)
	assert.Equal(t, c.p.StartTime, st.StartTime)
	assert.True(t, c.p.Running())
}

func TestAlive(t *testing.T) {
	self, err := ProcessOf("self", os.Getpid())
	require.NoError(t, err)
	require.NotZero(t, self.StartTime)

	// A child that exited and is not reaped yet: a zombie.
	zombie := startChild(t, "zombie", false, false, "true")
	untilGone(t, zombie.p) // returns once /proc shows it as a zombie
	zst, err := readProcStat(zombie.p.Pid)
	require.NoError(t, err, "not reaped yet, so /proc still has it")
	require.Equal(t, byte('Z'), zst.State)

	// A child that exited and was reaped: its pid is free.
	reaped := startChild(t, "reaped", false, false, "true")
	_ = reaped.cmd.Wait()
	reaped.reaped = true

	tests := []struct {
		name      string
		pid       int
		startTime uint64
		want      bool
	}{
		{name: "this process", pid: self.Pid, startTime: self.StartTime, want: true},
		{name: "this pid with another start time (a reused pid)", pid: self.Pid, startTime: self.StartTime + 1, want: false},
		{name: "unknown start time identifies nothing", pid: self.Pid, startTime: 0, want: false},
		{name: "zombie", pid: zombie.p.Pid, startTime: zombie.p.StartTime, want: false},
		{name: "reaped", pid: reaped.p.Pid, startTime: reaped.p.StartTime, want: false},
		{name: "pid 0", pid: 0, startTime: 1, want: false},
		{name: "negative pid", pid: -1, startTime: 1, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Alive(tt.pid, tt.startTime))
			assert.Equal(t, tt.want, Process{Pid: tt.pid, StartTime: tt.startTime}.Running())
		})
	}
}

func TestProcessOf(t *testing.T) {
	c := sleeper(t, "sleeper")
	p, err := ProcessOf("sleeper", c.cmd.Process.Pid)
	require.NoError(t, err)
	assert.Equal(t, Process{Name: "sleeper", Pid: c.cmd.Process.Pid, StartTime: c.p.StartTime}, p)
	assert.True(t, p.Running())

	_, err = ProcessOf("nothing", 0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "identifying nothing (pid 0)")
}

// TestStopProcesses stops real processes and checks which signals went where and which signal
// ended each process.
func TestStopProcesses(t *testing.T) {
	type victim struct {
		start    func(t *testing.T) *child
		recordAs func(p Process) Process // how the caller recorded it (default: as it is)
	}
	reused := func(p Process) Process { p.StartTime++; return p }
	tests := []struct {
		name    string
		victims []victim
		grace   time.Duration
		// wantSignals per victim, in order; wantExit is the signal that ended each (0: still
		// runs when StopProcesses returns).
		wantSignals [][]syscall.Signal
		wantExit    []syscall.Signal
	}{
		{
			name:        "exits on SIGTERM: no SIGKILL",
			victims:     []victim{{start: func(t *testing.T) *child { return sleeper(t, "sleeper") }}},
			grace:       time.Hour, // it returns once the process is gone, not after the grace period
			wantSignals: [][]syscall.Signal{{syscall.SIGTERM}},
			wantExit:    []syscall.Signal{syscall.SIGTERM},
		},
		{
			name:        "ignores SIGTERM: SIGKILL after the grace period",
			victims:     []victim{{start: func(t *testing.T) *child { return termIgnoring(t, "stubborn") }}},
			grace:       20 * time.Millisecond,
			wantSignals: [][]syscall.Signal{{syscall.SIGTERM, syscall.SIGKILL}},
			wantExit:    []syscall.Signal{syscall.SIGKILL},
		},
		{
			name: "one of each: SIGKILL only to the one left",
			victims: []victim{
				{start: func(t *testing.T) *child { return sleeper(t, "sleeper") }},
				{start: func(t *testing.T) *child { return termIgnoring(t, "stubborn") }},
			},
			grace:       20 * time.Millisecond,
			wantSignals: [][]syscall.Signal{{syscall.SIGTERM}, {syscall.SIGTERM, syscall.SIGKILL}},
			wantExit:    []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL},
		},
		{
			name: "recorded pid now another process (start time differs): never signalled",
			victims: []victim{
				{start: func(t *testing.T) *child { return sleeper(t, "reused") }, recordAs: reused},
				{start: func(t *testing.T) *child { return sleeper(t, "sleeper") }},
			},
			grace:       time.Hour,
			wantSignals: [][]syscall.Signal{nil, {syscall.SIGTERM}},
			wantExit:    []syscall.Signal{0, syscall.SIGTERM},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var children []*child
			var procs []Process
			for _, v := range tt.victims {
				c := v.start(t)
				p := c.p
				if v.recordAs != nil {
					p = v.recordAs(p)
				}
				children = append(children, c)
				procs = append(procs, p)
			}
			rec := &recorder{}
			var announced []string
			err := StopProcesses(context.Background(), procs, StopOptions{
				Grace:    tt.grace,
				OnSignal: func(p Process, sig syscall.Signal) { announced = append(announced, fmt.Sprintf("%s %v", p.Name, sig)) },
				interval: 5 * time.Millisecond,
				kill:     rec.kill,
			})
			require.NoError(t, err)

			var wantAnnounced []string
			for i, c := range children {
				var got []syscall.Signal
				for _, s := range rec.signals() {
					if s.Pid == c.p.Pid {
						got = append(got, s.Sig)
					}
				}
				assert.Equal(t, tt.wantSignals[i], got, "signals sent to %s", c.p.Name)
				if tt.wantExit[i] == 0 {
					c.stillRuns(t)
				} else {
					assert.Equal(t, tt.wantExit[i], c.exitSignal(t), "signal that ended %s", c.p.Name)
				}
				for _, sig := range tt.wantSignals[i] {
					wantAnnounced = append(wantAnnounced, fmt.Sprintf("%s %v", c.p.Name, sig))
				}
			}
			assert.ElementsMatch(t, wantAnnounced, announced, "OnSignal saw every signal")
		})
	}
}

// TestStopProcessesGroup: a process group leader that ignores SIGTERM, and its child (which
// inherits that), both end with the SIGKILL sent to the group.
func TestStopProcessesGroup(t *testing.T) {
	// The leader prints the pid of its child, then "ready".
	leader := startChild(t, "leader", true, true, "/bin/sh", "-c", `trap "" TERM; sleep 1000 & echo $!; echo ready; wait`)
	require.Len(t, leader.said, 1)
	pid, err := strconv.Atoi(leader.said[0])
	require.NoError(t, err)
	member, err := ProcessOf("member", pid)
	require.NoError(t, err)
	t.Cleanup(func() {
		if member.Running() {
			_ = syscall.Kill(member.Pid, syscall.SIGKILL)
		}
	})

	rec := &recorder{}
	err = StopProcesses(context.Background(), []Process{leader.p}, StopOptions{Grace: 20 * time.Millisecond, interval: 5 * time.Millisecond, kill: rec.kill})
	require.NoError(t, err)
	assert.Equal(t, []sent{{-leader.p.Pid, syscall.SIGTERM}, {-leader.p.Pid, syscall.SIGKILL}}, rec.signals(), "both to the group")
	assert.Equal(t, syscall.SIGKILL, leader.exitSignal(t))
	untilGone(t, member) // the group's SIGKILL reached it too
}

// TestStopProcessesErrors: processes that outlive SIGKILL (here: the signals are recorded but
// never sent) are named in the error; a cancelled context skips the grace period.
func TestStopProcessesErrors(t *testing.T) {
	tests := []struct {
		name        string
		ctx         func() context.Context
		grace       time.Duration
		dry         bool
		wantSignals []syscall.Signal
		wantErr     string
	}{
		{
			name:        "still running after SIGKILL",
			ctx:         context.Background,
			grace:       time.Millisecond,
			dry:         true,
			wantSignals: []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL},
			wantErr:     "stopping processes: stubborn (pid %d) still running 10ms after SIGKILL",
		},
		{
			name: "cancelled context: SIGKILL without waiting for the grace period",
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			grace:       time.Hour,
			wantSignals: []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := termIgnoring(t, "stubborn")
			rec := &recorder{dry: tt.dry}
			err := StopProcesses(tt.ctx(), []Process{c.p}, StopOptions{Grace: tt.grace, KillTimeout: 10 * time.Millisecond, interval: 5 * time.Millisecond, kill: rec.kill})
			var got []syscall.Signal
			for _, s := range rec.signals() {
				require.Equal(t, c.p.Pid, s.Pid)
				got = append(got, s.Sig)
			}
			assert.Equal(t, tt.wantSignals, got)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Equal(t, fmt.Sprintf(tt.wantErr, c.p.Pid), err.Error())
				c.stillRuns(t)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, syscall.SIGKILL, c.exitSignal(t))
		})
	}
}

// TestProcStop: the harness's own children (startProc) stop through StopProcesses and are
// reaped; stopping one that exited already is no error.
func TestProcStop(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		wantExit string
	}{
		{name: "exits on SIGTERM", script: `echo ready; exec sleep 1000`, wantExit: "signal: terminated"},
		{name: "ignores SIGTERM", script: `trap "" TERM; echo ready; exec sleep 1000`, wantExit: "signal: killed"},
		{name: "exited already", script: `echo ready; exit 3`, wantExit: "exit status 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := t.TempDir() + "/proc.log"
			p, err := startProc("victim", "/bin/sh", []string{"-c", tt.script}, log)
			require.NoError(t, err)
			t.Cleanup(func() {
				if !p.exited() {
					_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
					<-p.done
				}
			})
			assert.True(t, p.Group)
			// The log shows a line "ready" once the script set up its signal handling (the
			// command line at its head holds "echo ready", never at the start of a line).
			require.NoError(t, waitFor(func() bool { return strings.Contains(tail(log, 5), "\nready") }))
			if tt.wantExit == "exit status 3" {
				<-p.done
			}
			require.NoError(t, p.stop(context.Background(), StopOptions{Grace: 20 * time.Millisecond, interval: 5 * time.Millisecond}))
			require.True(t, p.exited(), "reaped when stop returns")
			require.Error(t, p.err)
			assert.Equal(t, tt.wantExit, p.err.Error())
			assert.Contains(t, tail(log, 5), "# /bin/sh -c", "the command line heads the log")
		})
	}
}
