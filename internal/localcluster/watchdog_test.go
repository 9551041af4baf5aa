package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunWatchdog runs the watchdog's loop in process, on what the harness would write.
func TestRunWatchdog(t *testing.T) {
	reused := func(p Process) Process { p.StartTime++; return p }
	tests := []struct {
		name string
		// input writes the messages, given the processes and the folder to remove.
		input func(procs []Process, dir string) string
		// recordAs changes how the third process is recorded.
		recordAs    func(Process) Process
		wantStopped bool // the sleeper and the stubborn process are stopped
		wantRemoved bool // the folder is removed
		wantLog     string
	}{
		{
			name: "harness gone: stops every watched process, then removes the folder",
			input: func(procs []Process, dir string) string {
				return lines(watchdogMessage{RemoveDir: dir}, watchdogMessage{Watch: &procs[0]}, watchdogMessage{Watch: &procs[1]})
			},
			wantStopped: true,
			wantRemoved: true,
			wantLog:     "watchdog: the harness is gone; stopping 2 process(es)\n",
		},
		{
			name: "disarmed: stops nothing, removes nothing",
			input: func(procs []Process, dir string) string {
				return lines(watchdogMessage{RemoveDir: dir}, watchdogMessage{Watch: &procs[0]}, watchdogMessage{Watch: &procs[1]}, watchdogMessage{Disarm: true})
			},
		},
		{
			name: "torn last message: acts as if the harness is gone",
			input: func(procs []Process, dir string) string {
				return lines(watchdogMessage{RemoveDir: dir}, watchdogMessage{Watch: &procs[0]}, watchdogMessage{Watch: &procs[1]}) + `{"watch":{"name":"x","pi`
			},
			wantStopped: true,
			wantRemoved: true,
			wantLog:     "stopping 2 process(es)",
		},
		{
			name: "no folder given: only stops",
			input: func(procs []Process, dir string) string {
				return lines(watchdogMessage{Watch: &procs[0]}, watchdogMessage{Watch: &procs[1]})
			},
			wantStopped: true,
			wantLog:     "stopping 2 process(es)",
		},
		{
			name: "a watched pid reused by another process is left alone",
			input: func(procs []Process, dir string) string {
				return lines(watchdogMessage{Watch: &procs[0]}, watchdogMessage{Watch: &procs[1]}, watchdogMessage{Watch: &procs[2]})
			},
			recordAs:    reused,
			wantStopped: true,
			wantLog:     "stopping 3 process(es)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "work")
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "logs"), 0o755))
			children := []*child{sleeper(t, "sleeper"), termIgnoring(t, "stubborn"), sleeper(t, "other")}
			procs := []Process{children[0].p, children[1].p, children[2].p}
			if tt.recordAs != nil {
				procs[2] = tt.recordAs(procs[2])
			}
			rec := &recorder{}
			var log bytes.Buffer
			err := runWatchdog(context.Background(), strings.NewReader(tt.input(procs, dir)), &log,
				StopOptions{Grace: 20 * time.Millisecond, interval: 5 * time.Millisecond, kill: rec.kill})
			require.NoError(t, err)

			if tt.wantStopped {
				assert.Equal(t, syscall.SIGTERM, children[0].exitSignal(t))
				assert.Equal(t, syscall.SIGKILL, children[1].exitSignal(t))
			} else {
				children[0].stillRuns(t)
				children[1].stillRuns(t)
			}
			for _, s := range rec.signals() {
				assert.NotEqual(t, children[2].p.Pid, s.Pid, "never signals a process it was not told of")
			}
			children[2].stillRuns(t)
			_, statErr := os.Stat(dir)
			assert.Equal(t, tt.wantRemoved, os.IsNotExist(statErr), "folder removed: %v", statErr)
			if tt.wantLog == "" {
				assert.Empty(t, log.String())
			} else {
				assert.Contains(t, log.String(), tt.wantLog)
			}
		})
	}
}

func lines(msgs ...watchdogMessage) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, m := range msgs {
		_ = enc.Encode(m)
	}
	return b.String()
}

// TestWatchdogProcess runs the real watchdog: this test binary again (see watchdogEnv).
func TestWatchdogProcess(t *testing.T) {
	tests := []struct {
		name string
		// end ends the harness's side: closing the pipe as a dying harness does, or disarming.
		end         func(d *watchdog)
		wantStopped bool
	}{
		{
			name: "the harness dies: the watchdog stops the processes and removes the folder",
			end: func(d *watchdog) {
				d.w.Close() // what the kernel does when the harness process dies
				<-d.done
			},
			wantStopped: true,
		},
		{
			name:        "disarmed: the watchdog exits and leaves everything",
			end:         func(d *watchdog) { d.disarm() },
			wantStopped: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			work := filepath.Join(base, "work")
			require.NoError(t, os.MkdirAll(work, 0o755))
			logPath := filepath.Join(base, "watchdog.log")
			d, err := startWatchdog(logPath, work)
			require.NoError(t, err)
			t.Cleanup(func() {
				if d.cmd.ProcessState == nil {
					_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
				}
			})
			wp := d.process()
			assert.Equal(t, "watchdog", wp.Name)
			assert.True(t, wp.Group)
			assert.True(t, wp.Running())
			wst, err := readProcStat(wp.Pid)
			require.NoError(t, err)
			assert.Equal(t, os.Getpid(), wst.Ppid)

			c := sleeper(t, "sleeper")
			d.watch(c.p)
			tt.end(d)

			select {
			case <-d.done:
			default:
				t.Fatal("the watchdog still runs")
			}
			assert.True(t, d.cmd.ProcessState.Success(), "watchdog exit: %v; log:\n%s", d.cmd.ProcessState, readFile(logPath))
			_, statErr := os.Stat(work)
			if tt.wantStopped {
				assert.Equal(t, syscall.SIGTERM, c.exitSignal(t))
				assert.True(t, os.IsNotExist(statErr), "work folder removed: %v", statErr)
				assert.Contains(t, readFile(logPath), "stopping 1 process(es)")
			} else {
				c.stillRuns(t)
				assert.NoError(t, statErr, "work folder kept")
				assert.Empty(t, readFile(logPath))
			}
		})
	}
}

func readFile(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	return string(data)
}
