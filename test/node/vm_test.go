package node

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// vm is the node's qemu guest: its console log, and the command channel (the guest's ttyS1,
// a unix socket here) on which its init runs one sh line at a time.
type vm struct {
	cmd     *exec.Cmd
	console string // file receiving the serial console (ttyS0)
	sock    string
	mu      sync.Mutex
	conn    net.Conn
	r       *bufio.Reader
	done    chan struct{}
}

// vmOptions are the inputs of startVM.
type vmOptions struct {
	qemu, kernel, initrd, rootfs, config string
	// forwards: guest port on 10.0.2.100 to host port on 127.0.0.1 (slirp guestfwd, each
	// connection relayed by `busybox nc`, spawned by qemu).
	forwards map[int]int
	busybox  string
	dir      string
	memoryMB int
}

// startVM boots the guest: Debian's cloud kernel and initramfs under TCG with 2 vCPUs, the
// rootfs image as /dev/vda (copy-on-write: snapshot=on, the image is never written), the config
// image as /dev/vdb, and user networking with restrict=on, so the guest reaches nothing but the
// forwarded ports; on the host, qemu only connects to 127.0.0.1.
func startVM(t *testing.T, o vmOptions) *vm {
	t.Helper()
	v := &vm{console: filepath.Join(o.dir, "console.log"), sock: filepath.Join(o.dir, "cmd.sock"), done: make(chan struct{})}
	netdev := "user,id=n0,restrict=on,net=10.0.2.0/24,host=10.0.2.2"
	for guest, host := range o.forwards {
		netdev += fmt.Sprintf(",guestfwd=tcp:10.0.2.100:%d-cmd:%s nc 127.0.0.1 %d", guest, o.busybox, host)
	}
	log, err := os.Create(v.console)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-accel", "tcg,thread=multi", "-smp", "2", "-m", strconv.Itoa(o.memoryMB),
		"-nographic", "-no-reboot",
		"-kernel", o.kernel, "-initrd", o.initrd,
		"-append", "root=/dev/vda rw init=/sbin/kmm-init console=ttyS0 quiet panic=-1",
		"-drive", "file=" + o.rootfs + ",if=virtio,format=raw,snapshot=on",
		"-drive", "file=" + o.config + ",if=virtio,format=raw,readonly=on",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
		"-serial", "file:" + v.console,
		"-serial", "unix:" + v.sock + ",server=on,wait=off",
		"-monitor", "none",
	}
	v.cmd = exec.Command(o.qemu, args...)
	v.cmd.Stdout, v.cmd.Stderr = log, log
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("starting qemu: %v", err)
	}
	go func() {
		_ = v.cmd.Wait()
		log.Close()
		close(v.done)
	}()
	t.Cleanup(v.stop)
	return v
}

func (v *vm) stop() {
	if v.cmd.Process == nil {
		return
	}
	select {
	case <-v.done:
		return
	default:
	}
	_ = v.cmd.Process.Kill()
	<-v.done
}

// consoleTail is the last n lines of the guest's console.
func (v *vm) consoleTail(n int) string {
	b, _ := os.ReadFile(v.console)
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var rcLine = regexp.MustCompile(`^@@KMM-NODE@@ rc (\d+)$`)

// run runs line (sh) in the guest and returns its output and exit code.
func (v *vm) run(ctx context.Context, line string) (string, int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.conn == nil {
		c, err := net.Dial("unix", v.sock)
		if err != nil {
			return "", 0, fmt.Errorf("connecting to the guest's command channel: %w", err)
		}
		v.conn, v.r = c, bufio.NewReader(c)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = v.conn.SetDeadline(d)
	} else {
		_ = v.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	}
	if strings.Contains(line, "\n") {
		return "", 0, fmt.Errorf("one line at a time: %q", line)
	}
	if _, err := fmt.Fprintf(v.conn, "%s\n", line); err != nil {
		return "", 0, err
	}
	var out strings.Builder
	for {
		l, err := v.r.ReadString('\n')
		if err != nil {
			v.conn.Close()
			v.conn = nil
			return out.String(), 0, fmt.Errorf("reading the guest's answer to %q: %w (console:\n%s)", line, err, v.consoleTail(30))
		}
		l = strings.TrimRight(l, "\r\n")
		if m := rcLine.FindStringSubmatch(l); m != nil {
			rc, _ := strconv.Atoi(m[1])
			return out.String(), rc, nil
		}
		out.WriteString(l)
		out.WriteByte('\n')
	}
}

// mustRun runs line in the guest and fails the test unless it exits 0.
func (v *vm) mustRun(t *testing.T, line string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, rc, err := v.run(ctx, line)
	if err != nil {
		t.Fatalf("guest: %v", err)
	}
	if rc != 0 {
		t.Fatalf("guest: %q exited %d:\n%s", line, rc, out)
	}
	return out
}
