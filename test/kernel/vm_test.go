package kernel

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kmm.dev/kmm/internal/ldd"
)

// File modes of a newc cpio archive.
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// initramfs is the VM's root file system, written as a gzip-compressed newc cpio archive (the
// kernel's initramfs format, Documentation/driver-api/early-userspace/buffer-format.rst).
type initramfs struct {
	entries map[string]*cpioEntry // by path, without the leading slash
}

type cpioEntry struct {
	mode         uint32
	data         []byte // regular files: the content; symbolic links: the target
	hostPath     string // regular files: read from here when data is nil
	major, minor uint32 // device nodes
}

func newInitramfs() *initramfs { return &initramfs{entries: map[string]*cpioEntry{}} }

// add records e at p, and p's folders.
func (r *initramfs) add(p string, e *cpioEntry) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := r.entries[d]; !ok {
			r.entries[d] = &cpioEntry{mode: modeDir | 0o755}
		}
	}
	r.entries[p] = e
}

func (r *initramfs) dir(p string) { r.add(p, &cpioEntry{mode: modeDir | 0o755}) }

func (r *initramfs) text(p string, perm uint32, s string) {
	r.add(p, &cpioEntry{mode: modeRegular | perm, data: []byte(s)})
}

func (r *initramfs) hostFile(p string, perm uint32, host string) {
	r.add(p, &cpioEntry{mode: modeRegular | perm, hostPath: host})
}

func (r *initramfs) symlink(p, target string) {
	r.add(p, &cpioEntry{mode: modeSymlink | 0o777, data: []byte(target)})
}

func (r *initramfs) charDev(p string, major, minor uint32) {
	r.add(p, &cpioEntry{mode: modeCharDev | 0o600, major: major, minor: minor})
}

// tree copies the host folder dir to p: folders, regular files and symbolic links.
func (r *initramfs) tree(p, dir string) error {
	return filepath.WalkDir(dir, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, host)
		if err != nil {
			return err
		}
		target := path.Join(p, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			r.add(target, &cpioEntry{mode: modeDir | uint32(info.Mode().Perm())})
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(host)
			if err != nil {
				return err
			}
			r.symlink(target, link)
		case d.Type().IsRegular():
			r.hostFile(target, uint32(info.Mode().Perm()), host)
		default:
			return fmt.Errorf("%s: cannot put a %s in the initramfs", host, d.Type())
		}
		return nil
	})
}

// binary copies the host program prog to p, with the shared libraries and the dynamic loader
// ldd lists, at the paths ldd prints.
func (r *initramfs) binary(ctx context.Context, p, prog string) error {
	r.hostFile(p, 0o755, prog)
	libs, err := ldd.Libraries(ctx, prog)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		r.hostFile(lib.Path, 0o755, lib.File)
	}
	return nil
}

// write writes the archive to file, gzip-compressed.
func (r *initramfs) write(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(zw)
	names := make([]string, 0, len(r.entries))
	for p := range r.entries {
		names = append(names, p)
	}
	// Sorted, a folder comes before what it holds.
	sort.Strings(names)
	ino := uint32(1)
	written := 0
	put := func(name string, e *cpioEntry, data []byte) error {
		nlink := 1
		if e.mode&0o170000 == modeDir {
			nlink = 2
		}
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.mode, 0, 0, nlink, 0, len(data), 0, 0, e.major, e.minor, len(name)+1, 0)
		ino++
		for _, b := range [][]byte{[]byte(hdr), []byte(name), {0}} {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		written += len(hdr) + len(name) + 1
		if err := pad(w, &written); err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		written += len(data)
		return pad(w, &written)
	}
	for _, name := range names {
		e := r.entries[name]
		data := e.data
		if e.mode&0o170000 == modeRegular && data == nil && e.hostPath != "" {
			if data, err = os.ReadFile(e.hostPath); err != nil {
				return err
			}
		}
		if err := put(name, e, data); err != nil {
			return err
		}
	}
	if err := put("TRAILER!!!", &cpioEntry{}, nil); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func pad(w io.Writer, n *int) error {
	if k := (4 - *n%4) % 4; k > 0 {
		if _, err := w.Write(make([]byte, k)); err != nil {
			return err
		}
		*n += k
	}
	return nil
}

// shellQuote quotes s for sh: one word, newlines included.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// marker starts the lines the VM's /init prints around each report.
const marker = "@@KMM-TEST@@"

// report is one command the VM's /init ran: its output (stdout and stderr) and exit code.
type report struct {
	out string
	rc  int
}

// console is what the VM printed on its serial console.
type console struct {
	raw     string
	reports map[string]report
	done    bool
}

var (
	reportLine = regexp.MustCompile(marker + ` (begin|end) (\S+)(?: (\d+))?$`)
	// Terminal control sequences: qemu and the kernel reset the terminal on the way.
	escapes = regexp.MustCompile(`\x1b(?:\[[0-9;?]*[A-Za-z]|[A-Za-z])`)
)

// parseConsole reads the reports between "@@KMM-TEST@@ begin NAME" and
// "@@KMM-TEST@@ end NAME RC" lines.
func parseConsole(raw string) *console {
	raw = escapes.ReplaceAllString(strings.ReplaceAll(raw, "\r", ""), "")
	c := &console{raw: raw, reports: map[string]report{}}
	var cur string
	var body strings.Builder
	for _, line := range strings.Split(raw, "\n") {
		if strings.HasSuffix(line, marker+" done") {
			c.done = true
			continue
		}
		m := reportLine.FindStringSubmatch(line)
		switch {
		case m != nil && m[1] == "begin":
			cur = m[2]
			body.Reset()
		case m != nil && m[1] == "end" && m[2] == cur:
			rc, _ := strconv.Atoi(m[3])
			c.reports[cur] = report{out: body.String(), rc: rc}
			cur = ""
		case cur != "":
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	return c
}

// lockedBuffer collects qemu's output while the test may read it on a timeout.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// boot boots kernel with initrd in qemu (TCG: no KVM), and returns its serial console once the
// VM has powered off. qemu is killed when timeout passes.
func boot(t *testing.T, qemu, vmlinuz, initrd string, timeout time.Duration) *console {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-m", "512", "-smp", "1",
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", vmlinuz, "-initrd", initrd,
		// quiet and loglevel=3 keep the kernel's own messages off the console, between the
		// reports; dmesg in the VM still reads them all.
		"-append", "console=ttyS0 panic=-1 quiet loglevel=3")
	var out lockedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	c := parseConsole(out.String())
	t.Logf("qemu ran %s", time.Since(start).Round(100*time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("the VM did not power off within %s: qemu killed. Console:\n%s", timeout, tail(c.raw, 120))
	}
	if err != nil {
		t.Fatalf("qemu: %v. Console:\n%s", err, tail(c.raw, 120))
	}
	if !c.done {
		t.Fatalf("the VM stopped before its /init finished (a kernel panic?). Console:\n%s", tail(c.raw, 120))
	}
	return c
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func TestParseConsole(t *testing.T) {
	c := parseConsole("noise\r\n\x1bc\x1b[?7l\x1b[2J" + marker + " begin a\r\nline 1\r\n[ 1.0] kernel\r\nline 2\r\n" + marker + " end a 3\r\n" +
		marker + " begin b\n" + marker + " end b 0\n" + marker + " done\n")
	if !c.done {
		t.Error("done not seen")
	}
	if got := c.reports["a"]; got.out != "line 1\n[ 1.0] kernel\nline 2\n" || got.rc != 3 {
		t.Errorf("report a = %+v", got)
	}
	if got, ok := c.reports["b"]; !ok || got.out != "" || got.rc != 0 {
		t.Errorf("report b = %+v, %v", got, ok)
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote("a'b\nc"); got != `'a'\''b`+"\n"+`c'` {
		t.Errorf("shellQuote = %q", got)
	}
}
