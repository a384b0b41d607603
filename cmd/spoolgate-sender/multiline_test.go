package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"spoolgate/internal/bench"
	"spoolgate/internal/e2e"
)

// TestWriterPausesLongerThanSettle is issue 10's defect 1 with the real
// binaries: a file written in place whose writer pauses (holding it open)
// longer than sender.settle after its 3rd line, then writes 7 more and
// closes it. All 10 lines must be stored exactly once; before the fix 3
// were, and the file was deleted.
func TestWriterPausesLongerThanSettle(t *testing.T) {
	r := startSink(t, "")
	e := newEnv(t, r.addr(), nil)
	e.startSender(t)
	f, err := os.OpenFile(filepath.Join(e.spool, "upload.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	write := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := fmt.Fprintf(f, "%s\n", body(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(1, 3)
	e2e.WaitFor(t, 20*time.Second, "3 lines stored", func() bool { return len(r.messages(t)) >= 3 })
	write(4, 10)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, 20*time.Second, "file done", func() bool {
		return count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
	})
	times := map[string]int{}
	for _, m := range r.messages(t) {
		times[processNo(m)]++
	}
	for i := 1; i <= 10; i++ {
		if n := times[fmt.Sprintf("%09d", i)]; n != 1 {
			t.Errorf("line %d stored %d times, want once", i, n)
		}
	}
	if n := count(t, e.failed); n != 0 {
		t.Fatalf("%d failed files", n)
	}
}

// ackBound is what a crash may resend of one multi-line file at
// sender.window = 1 with line_order strict: the lines acknowledged since
// the last progress record (sender.ackEveryLines = 100, at most 99 of
// them) plus the line in flight. With line_order parallel (lanes) it is
// ackBound + 2 × sender.workers: no line is handed out further past the
// record (the lines acknowledged since it, those in flight on the lanes
// and those done beyond the first line not done).
const ackBound = 100

// TestKillMidFile SIGKILLs the sender in the middle of a 20,000-line file
// and restarts it: every line arrives, and no more than the bound arrive
// twice, counted at the remote (every message it read): ackBound at
// window 1, where progress is recorded every 100 lines or second, not
// after every line (issue 10: a 100,000-line file took 85 s), plus
// 2 × sender.workers with lanes (issue 24: line_order parallel, where the
// env's 4 workers send lines of the file at once); 2W at window W = 8
// (issue 12, then 24: no line is written more than 2W lines past the
// record, which is written before the refill that would go past it, once
// per W lines of a window that slides with each reply). After the restart
// the test also counts the writes of the record (fsnotify): at most one
// per 100 lines or second at window 1, per W lines at window 8.
func TestKillMidFile(t *testing.T) {
	for _, tc := range []struct {
		window     int
		order      string
		bound, per int
	}{{1, "strict", ackBound, ackBound}, {1, "parallel", ackBound + 2*4, ackBound}, {8, "parallel", 16, 8}} {
		t.Run(fmt.Sprintf("window=%d,%s", tc.window, tc.order), func(t *testing.T) { killMidFile(t, tc.window, tc.order, tc.bound, tc.per) })
	}
}

func killMidFile(t *testing.T, window int, order string, bound, per int) {
	const n = 20000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := serveFake(t, ln, nil)
	e := newEnv(t, r.addr(), map[string]string{"sender.window": fmt.Sprint(window), "sender.line_order": order})
	dropLines(t, e.spool, "big.txt", n)
	p := e.startSender(t)
	e2e.WaitFor(t, 60*time.Second, "a quarter delivered", func() bool { return len(r.messages(t)) >= n/4 })
	p.Signal(t, syscall.SIGKILL)
	p.ExitCode(t, 10*time.Second)
	before := len(r.Messages())
	side, _ := os.ReadFile(filepath.Join(e.spool, ".inflight", ".big.txt.ack"))
	t.Logf("killed with %d read by the remote, %d answered 200; progress record: %s", before, len(r.messages(t)), strings.Fields(strings.ReplaceAll(string(side), "\x00", "")))
	if before == n {
		t.Fatal("the whole file was sent before the kill")
	}
	w, err := fsnotify.NewBufferedWatcher(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(filepath.Join(e.spool, ".inflight")); err != nil {
		t.Fatal(err)
	}
	records := 0
	t0 := time.Now()
	e.startSender(t)
	e2e.WaitFor(t, 120*time.Second, "file done", func() bool {
		for more := true; more; {
			select {
			case ev := <-w.Events:
				if ev.Has(fsnotify.Create|fsnotify.Write) && filepath.Base(ev.Name) == ".big.txt.ack" {
					records++
				}
			case err := <-w.Errors:
				t.Fatalf("watching .inflight: %v (progress recorded far too often?)", err)
			default:
				more = false
			}
		}
		return count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
	})
	elapsed := time.Since(t0)
	t.Logf("after the restart: %d writes of the progress record for %d lines in %s", records, n-before, elapsed.Round(time.Millisecond))
	if limit := (n-before)/per + int(elapsed/time.Second) + 2; records > limit {
		t.Errorf("%d progress records for %d lines in %s, want at most %d (one per %d lines or second)", records, n-before, elapsed, limit, per)
	}
	dups := e2e.StoredOnce(t, r.Messages(), n)
	t.Logf("%d lines sent twice", dups)
	if dups > bound {
		t.Fatalf("%d lines sent twice, want at most %d", dups, bound)
	}
	if d := len(r.messages(t)); d < n {
		t.Fatalf("%d lines answered 200, want %d", d, n)
	}
	if f := count(t, e.failed); f != 0 {
		t.Fatalf("%d files failed", f)
	}
}

// TestNotOwnerOfSpoolFiles runs the sender as an unprivileged user on files
// another user owns, as in production (producers drop files; the sender
// runs as spoolgate without CAP_LEASE): the kernel will not say whether a
// writer holds a file open, the sender says so once at warn, and files are
// still delivered (the fstat comparison is what is left).
func TestNotOwnerOfSpoolFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the sender as nobody on files root owns")
	}
	const uid, gid = 65534, 65534 // nobody
	r := startSink(t, "")
	e := newEnv(t, r.addr(), nil)
	for _, d := range []string{filepath.Dir(e.dir), e.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{e.spool, e.failed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(e.dir, "spoolgate-sender")
	src, err := os.ReadFile(senderBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", e.conf)
	cmd.Env = append(os.Environ(), "SPOOLGATE_CONFIG=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	p := e2e.Start(t, "spoolgate-sender (nobody)", cmd, t.Output())
	e2e.WaitFor(t, 20*time.Second, "sender started", func() bool {
		if p.Exited() {
			t.Fatalf("sender exited: %v", p.Err())
		}
		return e.ready() == 200
	})
	for i := 1; i <= 2; i++ {
		tmp := filepath.Join(e.spool, fmt.Sprintf(".f%d.tmp", i))
		if err := os.WriteFile(tmp, []byte(body(2*i)+"\n"+body(2*i+1)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(e.spool, fmt.Sprintf("f%d.txt", i))); err != nil {
			t.Fatal(err)
		}
	}
	e2e.WaitFor(t, 20*time.Second, "both files done", func() bool {
		return len(r.messages(t)) >= 4 && count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
	})
	if n := len(r.messages(t)); n != 4 {
		t.Fatalf("%d messages stored, want 4", n)
	}
	if n := p.Log.Count("cannot tell whether a writer still holds spool files open"); n != 1 {
		t.Fatalf("the warning about leases was logged %d times, want once", n)
	}
}

// TestMultiLineRate measures how long the sender takes over one file of
// many lines into the receiver (fsync=never, so that the sender's own
// syncs show) and into the null reference. It is a measurement, not part of
// the default run:
//
//	SPOOLGATE_MULTILINE_LINES=100000 go test -run MultiLineRate -v ./cmd/spoolgate-sender
func TestMultiLineRate(t *testing.T) {
	spec := os.Getenv("SPOOLGATE_MULTILINE_LINES")
	if spec == "" {
		t.Skip("set SPOOLGATE_MULTILINE_LINES=100000 to measure")
	}
	var n int
	if _, err := fmt.Sscan(spec, &n); err != nil || n < 1 {
		t.Fatalf("SPOOLGATE_MULTILINE_LINES=%q: want a number of lines", spec)
	}
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(body(i) + "\n")
	}
	for _, target := range []string{"receiver", "null"} {
		t.Run(target, func(t *testing.T) {
			addr := e2e.FreeAddr(t)
			switch {
			case target == "null":
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- bench.ServeNull(ctx, ln, nil) }()
				t.Cleanup(func() { cancel(); <-done })
			default:
				dir := t.TempDir()
				conf := filepath.Join(dir, "receiver.properties")
				writeProps(t, conf, map[string]string{
					"receiver.listen": addr, "receiver.admin_listen": "", "receiver.data_dir": filepath.Join(dir, "request"),
					"receiver.fsync": "never", "receiver.dedup_window": "0s", "log.dir": "", "log.level": "warn",
				})
				start(t, receiverBin, "-config", conf)
				e2e.WaitFor(t, 20*time.Second, "receiver listening", func() bool {
					c, err := net.Dial("tcp", addr)
					if err == nil {
						c.Close()
					}
					return err == nil
				})
			}
			e := newEnv(t, addr, map[string]string{"log.level": "warn"})
			tmp := filepath.Join(e.spool, ".big.txt.tmp")
			e2e.WriteFile(t, tmp, b.String())
			if err := os.Rename(tmp, filepath.Join(e.spool, "big.txt")); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			p := e.startSender(t)
			e2e.WaitFor(t, 30*time.Minute, "file delivered", func() bool {
				time.Sleep(50 * time.Millisecond) // polling interval
				return count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
			})
			d := time.Since(t0)
			t.Logf("%d lines into %s in %s: %.0f lines/s", n, target, d.Round(time.Millisecond), float64(n)/d.Seconds())
			p.Signal(t, syscall.SIGTERM)
			p.ExitCode(t, 30*time.Second)
		})
	}
}

// dropLines drops name into spool holding n lines, process_nos 0 to n-1,
// written under a dot name and renamed in.
func dropLines(t *testing.T, spool, name string, n int) {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(body(i) + "\n")
	}
	tmp := filepath.Join(spool, "."+name+".tmp")
	e2e.WriteFile(t, tmp, b.String())
	if err := os.Rename(tmp, filepath.Join(spool, name)); err != nil {
		t.Fatal(err)
	}
}
