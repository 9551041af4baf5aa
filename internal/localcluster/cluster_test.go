package localcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPoll: the harness's waits end when the condition holds, with the first process of the
// cluster that exits, or at the timeout naming the last error.
func TestPoll(t *testing.T) {
	boom := errors.New("connection refused")
	tests := []struct {
		name    string
		cond    func(calls int) (bool, error)
		exited  bool // a process of the harness has exited
		timeout time.Duration
		wantErr []string
		calls   int // at least this many calls
	}{
		{name: "holds at once", cond: func(int) (bool, error) { return true, nil }, timeout: time.Hour, calls: 1},
		{name: "holds on the third call", cond: func(n int) (bool, error) { return n == 3, nil }, timeout: time.Hour, calls: 3},
		{
			name: "errors do not end the wait",
			cond: func(n int) (bool, error) {
				if n < 3 {
					return false, boom
				}
				return true, nil
			},
			timeout: time.Hour,
			calls:   3,
		},
		{
			name:    "a process exited",
			cond:    func(int) (bool, error) { return false, nil },
			exited:  true,
			timeout: time.Hour,
			wantErr: []string{"waiting for the thing: kwok exited (exit status 7); see ", "kwok.log:\n# /bin/sh -c", "\ngoodbye"},
			calls:   1,
		},
		{
			name:    "timeout names the last error",
			cond:    func(int) (bool, error) { return false, boom },
			timeout: 20 * time.Millisecond,
			wantErr: []string{"waiting for the thing: timed out after 20ms (last error: connection refused)"},
			calls:   1,
		},
		{
			name:    "timeout without error",
			cond:    func(int) (bool, error) { return false, nil },
			timeout: 20 * time.Millisecond,
			wantErr: []string{"waiting for the thing: timed out after 20ms"},
			calls:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Cluster{WorkDir: t.TempDir()}
			require.NoError(t, os.MkdirAll(filepath.Join(c.WorkDir, "logs"), 0o755))
			if tt.exited {
				p, err := startProc("kwok", "/bin/sh", []string{"-c", "echo goodbye; exit 7"}, c.logPath("kwok"))
				require.NoError(t, err)
				<-p.done
				c.procs = append(c.procs, p)
			}
			calls := 0
			err := c.poll(context.Background(), tt.timeout, "the thing", func(context.Context) (bool, error) {
				calls++
				return tt.cond(calls)
			})
			assert.GreaterOrEqual(t, calls, tt.calls)
			if tt.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.calls, calls, "no call after the condition held")
				return
			}
			require.Error(t, err)
			for _, s := range tt.wantErr {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestCheckAssets(t *testing.T) {
	full := fakeAssets(t)
	noKwok := fakeAssets(t)
	require.NoError(t, os.Remove(filepath.Join(noKwok, "kwok")))
	require.NoError(t, os.Remove(filepath.Join(noKwok, "kwok-stages", "pod-ready.yaml")))
	notExec := fakeAssets(t)
	require.NoError(t, os.Chmod(filepath.Join(notExec, "etcd"), 0o644))
	tests := []struct {
		name    string
		dir     string
		wantErr string
	}{
		{name: "complete", dir: full},
		{name: "kwok and a stage missing", dir: noKwok, wantErr: "lacks kwok, kwok-stages/pod-ready.yaml: run `make tools`"},
		{name: "etcd not executable", dir: notExec, wantErr: "lacks etcd: run `make tools`"},
		{name: "empty", dir: t.TempDir(), wantErr: "lacks etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kwok-stages/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckAssets(tt.dir)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "assets folder "+tt.dir+" "+tt.wantErr)
		})
	}
}

func TestRepoRootAndDefaultDir(t *testing.T) {
	root, err := RepoRoot()
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(root, "go.mod"))
	assert.Equal(t, filepath.Join(root, "internal", "localcluster"), mustGetwd(t))
	dir, err := DefaultDir()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(root, "bin", "cluster"), dir)

	t.Chdir(t.TempDir())
	_, err = RepoRoot()
	assert.ErrorContains(t, err, "cannot find the kmm repository root")
	_, err = DefaultDir()
	assert.Error(t, err)
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	require.NoError(t, err)
	return wd
}
