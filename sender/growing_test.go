package sender

import (
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// TestFileGrowsAfterClaim writes a file in place into the spool (as scp and
// sftp do) and pauses, holding it open, until the sender has claimed it and
// sent what was there: the lines the writer appends afterwards must be sent
// too, each exactly once and whole, before the file is disposed of
// (issue 10, defect 1: the tail was lost, the file deleted).
func TestFileGrowsAfterClaim(t *testing.T) {
	lines := make([]string, 10)
	for i := range lines {
		lines[i] = body(i+1) + "FILLER" + strings.Repeat("x", i) // a cut in the filler is still a valid message
	}
	all := strings.Join(lines, "\n") + "\n"
	cut3 := len(strings.Join(lines[:3], "\n")) + 1 // after line 3's LF
	cut4 := cut3 + len(body(4)) + len("FIL")       // inside line 4's filler
	for _, tc := range []struct {
		name     string
		cut      int    // bytes written before the pause
		seen     int    // messages the remote has before the writer goes on
		noLeases bool   // as for a file the sender does not own
		sentDir  bool   // archive delivered files
		block    string // the remote holds its reply to this process_no until the writer went on
	}{
		{name: "pause after a line", cut: cut3, seen: 3},
		{name: "pause inside a line", cut: cut4, seen: 3},
		{name: "archived to sent_dir", cut: cut3, seen: 3, sentDir: true},
		// Without leases the kernel cannot say whether a writer holds the
		// file open: what it appends while lines are being sent is caught by
		// the fstat before disposal.
		{name: "no leases, appended while sending", cut: cut3, seen: 3, noLeases: true, block: "000000003"},
		// Without leases a pause inside the last line must not get that
		// line sent cut: a last line without LF waits for tailQuiet.
		{name: "no leases, pause inside a line", cut: cut4, seen: 3, noLeases: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wentOn := make(chan struct{})
			r := startRemote(t, func(r *remote) {
				r.answer = func(line []byte) int {
					if tc.block != "" && processNo(string(line)) == tc.block {
						select {
						case <-wentOn:
						case <-time.After(20 * time.Second):
						}
					}
					return protocol.CodeOK
				}
			})
			c := testConf(t, r.addr())
			if tc.sentDir {
				c.SentDir = filepath.Join(t.TempDir(), "sent")
			}
			runSender(t, c, func(o *Options) { o.noLeases = tc.noLeases })
			f, err := os.OpenFile(filepath.Join(c.SpoolDir, "upload.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString(all[:tc.cut]); err != nil {
				t.Fatal(err)
			}
			// The pause: longer than settle, since the sender has sent what
			// was there.
			e2e.WaitFor(t, 10*time.Second, "first lines sent", func() bool { return len(r.messages()) >= tc.seen })
			if _, err := f.WriteString(all[tc.cut:]); err != nil {
				t.Fatal(err)
			}
			close(wentOn)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			inflight := filepath.Join(c.SpoolDir, InflightDir)
			e2e.WaitFor(t, 10*time.Second, "file disposed of", func() bool {
				return len(listDir(t, inflight)) == 0 && len(visible(t, c.SpoolDir)) == 0
			})
			var want []string
			for _, l := range lines {
				want = append(want, string(must(protocol.DefaultDialect().AppendResult(nil, []byte(l))))[:len(l)+5])
			}
			got := r.messages()
			slices.Sort(got) // lanes: lines complete out of order
			if slices.Sort(want); !slices.Equal(got, want) {
				t.Fatalf("remote got %d messages:\n%s\nwant each of the 10 lines once, whole", len(got), strings.Join(got, "\n"))
			}
			if l := listDir(t, c.FailedDir); len(l) != 0 {
				t.Fatalf("failed_dir: %v", l)
			}
			if tc.sentDir {
				if b, _ := os.ReadFile(filepath.Join(c.SentDir, "upload.txt")); string(b) != all {
					t.Fatalf("archived %q, want %q", b, all)
				}
			}
		})
	}
}

// TestFileRewrittenAfterClaim: a writer that truncates the claimed file it
// holds open and writes it anew (longer) is not mistaken for one that
// appended: the file goes back to the spool whole and its new content is
// sent, never a piece of a line.
func TestFileRewrittenAfterClaim(t *testing.T) {
	r := startRemote(t, nil)
	c := testConf(t, r.addr())
	runSender(t, c, nil)
	f, err := os.OpenFile(filepath.Join(c.SpoolDir, "upload.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(body(1) + "\n" + body(2) + "\n"); err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, 10*time.Second, "first lines sent", func() bool { return len(r.messages()) >= 2 })
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(body(11)+"\n"+body(12)+"\n"+body(13)+"\n"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, 10*time.Second, "file done", func() bool {
		return len(r.messages()) >= 5 && len(listDir(t, filepath.Join(c.SpoolDir, InflightDir))) == 0 && len(visible(t, c.SpoolDir)) == 0
	})
	var got []string
	for _, m := range r.messages() {
		got = append(got, processNo(m))
	}
	slices.Sort(got) // lanes: lines complete out of order
	if want := []string{"000000001", "000000002", "000000011", "000000012", "000000013"}; !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
}

// TestDrainWhileWriterHoldsFile: a drain that finds a claim's writer still
// holding it open leaves the claim in .inflight (a copy of its unsent
// lines would miss what the writer appends) with its progress; the next
// start sends what the writer wrote meanwhile, and only that: the record
// still matches the grown file by the CRC of what was done.
func TestDrainWhileWriterHoldsFile(t *testing.T) {
	r := startRemote(t, nil)
	c := testConf(t, r.addr())
	_, stop := runSender(t, c, nil)
	f, err := os.OpenFile(filepath.Join(c.SpoolDir, "upload.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(body(1) + "\n" + body(2) + "\n" + body(3) + "\n"); err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, 10*time.Second, "first lines sent", func() bool { return len(r.messages()) >= 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	inflight := filepath.Join(c.SpoolDir, InflightDir)
	if got := listDir(t, inflight); !slices.Equal(got, []string{".upload.txt.ack", "upload.txt"}) {
		t.Fatalf(".inflight after the drain = %v, want the claim and its progress", got)
	}
	if _, err := f.WriteString(body(4) + "\n" + body(5) + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	runSender(t, c, nil)
	e2e.WaitFor(t, 10*time.Second, "file done", func() bool {
		return len(listDir(t, inflight)) == 0 && len(visible(t, c.SpoolDir)) == 0
	})
	seen := map[string]int{}
	for _, m := range r.messages() {
		seen[processNo(m)]++
	}
	for i := 1; i <= 5; i++ {
		if seen[fmt.Sprintf("%09d", i)] != 1 {
			t.Errorf("line %d sent %d times, want once (the progress record covers lines 1-3 of the grown file)", i, seen[fmt.Sprintf("%09d", i)])
		}
	}
}

// lockedLog is a log sink for a test to read while the sender writes it.
type lockedLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestSlowWriter: a file written in place a line at a time, slower than
// the sender sends, grows many times after its claim: every line is sent
// once, and the log says so at warn once, not per growth.
func TestSlowWriter(t *testing.T) {
	const n = 20
	r := startRemote(t, nil)
	c := testConf(t, r.addr())
	var log lockedLog
	runSender(t, c, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&log, t.Output()), &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	f, err := os.OpenFile(filepath.Join(c.SpoolDir, "slow.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 1; i <= n; i++ {
		if _, err := f.WriteString(body(i) + "\n"); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			e2e.WaitFor(t, 10*time.Second, "first line sent", func() bool { return len(r.messages()) == 1 })
		}
		time.Sleep(30 * time.Millisecond) // the writer's pace, not synchronisation
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, 10*time.Second, "file done", func() bool {
		return len(listDir(t, filepath.Join(c.SpoolDir, InflightDir))) == 0 && len(visible(t, c.SpoolDir)) == 0
	})
	var got []string
	for _, m := range r.messages() {
		got = append(got, processNo(m))
	}
	slices.Sort(got) // lanes: lines complete out of order
	for i := 1; i <= n; i++ {
		if c := slices.Index(got, fmt.Sprintf("%09d", i)); c != i-1 {
			t.Fatalf("sent %v, want lines 1 to %d once each", got, n)
		}
	}
	if len(got) != n {
		t.Fatalf("sent %v, want %d lines", got, n)
	}
	logs := log.String()
	for _, msg := range []string{"file still open for writing", "file grew after it was claimed"} {
		if k := strings.Count(logs, msg); k != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", msg, k, logs)
		}
	}
}

// TestSidecarOfGrownFile: a claim restored at start whose file grew since
// its progress record (size and mtime differ) resumes after the recorded
// lines when the CRC of what they covered matches, and is sent whole when
// it does not.
func TestSidecarOfGrownFile(t *testing.T) {
	l1, l2, l3 := body(1)+"\n", body(2)+"\n", body(3)+"\n"
	for _, tc := range []struct {
		name string
		crc  uint32
		want []string
	}{
		{"crc matches", crc32.Checksum([]byte(l1+l2), crcTable), []string{"000000003"}},
		{"crc differs", crc32.Checksum([]byte(l1+l1), crcTable), []string{"000000001", "000000002", "000000003"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRemote(t, nil)
			c := testConf(t, r.addr())
			inflight := filepath.Join(c.SpoolDir, InflightDir)
			writeFile(t, filepath.Join(inflight, "m.txt"), l1+l2+l3, time.Time{})
			a := ack{lines: 2, offset: int64(len(l1 + l2)), size: int64(len(l1 + l2)), mtime: 1, crc: tc.crc, hasCRC: true}
			writeFile(t, filepath.Join(inflight, ackName("m.txt")), a.String(), time.Time{})
			runSender(t, c, nil)
			e2e.WaitFor(t, 10*time.Second, ".inflight empty", func() bool { return len(listDir(t, inflight)) == 0 })
			var got []string
			for _, m := range r.messages() {
				got = append(got, processNo(m))
			}
			slices.Sort(got) // lanes: lines complete out of order
			if !slices.Equal(got, tc.want) {
				t.Fatalf("sent %v, want %v", got, tc.want)
			}
		})
	}
}

// TestFileRewrittenInPlace: a writer that rewrites the start of a claimed
// file in place, without truncating it, before the last 256 bytes and at
// the same size, is caught before disposal (the file goes back to the
// spool whole and its new content is sent), with a lease telling that the
// writer is done and without one (issue 10, left for later: only the last
// 256 bytes were compared, the file was deleted with line 1 never sent).
func TestFileRewrittenInPlace(t *testing.T) {
	for _, noLeases := range []bool{false, true} {
		t.Run(fmt.Sprintf("noLeases=%v", noLeases), func(t *testing.T) {
			rewritten := make(chan struct{})
			r := startRemote(t, func(r *remote) {
				r.answer = func(line []byte) int {
					if noLeases && processNo(string(line)) == "000000006" {
						select { // without a lease the sender does not wait for the writer: hold the last reply
						case <-rewritten:
						case <-time.After(20 * time.Second):
						}
					}
					return protocol.CodeOK
				}
			})
			c := testConf(t, r.addr())
			s, _ := runSender(t, c, func(o *Options) { o.noLeases = noLeases })
			var content string
			for i := 1; i <= 6; i++ {
				content += body(i) + "\n"
			}
			if len(content)-len(body(1)+"\n") < tailCheck {
				t.Fatalf("file of %d bytes: line 1 must lie before the last %d", len(content), tailCheck)
			}
			w := openWriter(t, c.SpoolDir, "upload.txt", content)
			e2e.WaitFor(t, 20*time.Second, "lines sent", func() bool {
				if noLeases {
					return len(r.messages()) == 6
				}
				return len(r.messages()) == 6 && value(s.m.waiting) == 1
			})
			if _, err := w.WriteAt([]byte(body(7)), 0); err != nil { // same length as body(1)
				t.Fatal(err)
			}
			close(rewritten)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			e2e.WaitFor(t, 20*time.Second, "the new content sent", func() bool {
				return sentCounts(r)["000000007"] == 1 && spoolEmpty(t, c.SpoolDir)
			})
			if got := sentCounts(r); got["000000001"] != 1 || got["000000006"] != 2 {
				t.Errorf("sent %v, want line 1 once, then the rewritten file whole (lines 2-6 twice)", got)
			}
		})
	}
}

// TestDrainAfterRewriteInPlace: a drain that stops a claim after some
// lines puts back only its unsent lines, from what it read; if the file
// was rewritten in place meanwhile (before its last 256 bytes, same size)
// it goes back whole, as it is now.
func TestDrainAfterRewriteInPlace(t *testing.T) {
	release := make(chan struct{})
	r := startRemote(t, func(r *remote) {
		r.answer = func(line []byte) int {
			if processNo(string(line)) == "000000003" {
				select {
				case <-release:
				case <-time.After(20 * time.Second):
				}
			}
			return protocol.CodeOK
		}
	})
	c := testConf(t, r.addr())
	c.LineOrder = conf.LineOrderStrict // line 3 in flight alone
	var log lockedLog
	_, stop := runSender(t, c, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&log, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var content string
	for i := 1; i <= 6; i++ {
		content += body(i) + "\n"
	}
	drop(t, c.SpoolDir, "upload.txt", content, time.Time{})
	e2e.WaitFor(t, 20*time.Second, "line 3 in flight", func() bool { return len(r.messages()) == 3 })
	f, err := os.OpenFile(filepath.Join(c.SpoolDir, InflightDir, "upload.txt"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(body(7)), 0); err != nil { // same length as body(1)
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	e2e.WaitFor(t, 20*time.Second, "draining", func() bool { return strings.Contains(log.String(), "sender draining") })
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(c.SpoolDir, "upload.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := body(7) + content[len(body(1)):]; string(b) != want {
		t.Fatalf("put back %q, want the rewritten file whole %q", b, want)
	}
}

// TestGrowthBetweenLookAndLease: a writer that appends to a claimed file
// and closes it between awaitEnd's look (the fstat finds it as read) and
// the lease that then tells that no writer holds it open. The check under
// the lease reads what it grew by: that must be reported as grew, so that
// its lines are sent. Before, it was reported as done (the next look found
// the file as read, the growth being in data already): with the last line,
// without LF, sent already, the claim was disposed of and the appended
// line never sent (issue 24, item 0).
func TestGrowthBetweenLookAndLease(t *testing.T) {
	c := testConf(t, "127.0.0.1:1")
	s, err := New(Options{Config: c, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.SpoolDir, InflightDir, "upload.txt")
	writeFile(t, path, body(1)+"\n"+body(2), time.Time{}) // its last line, without LF, is sent already
	cf, data, err := openClaim(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	cl := &claim{s: s, ctx: ctx, hard: ctx, wb: new(workBuf), name: "upload.txt", cf: cf, data: data, off: len(data), no: 3, final: true}
	defer cf.close()
	if res, _, found := cl.look(); found {
		t.Fatalf("look found %v, want the file as read", res)
	}
	// The writer appends and closes, after the look and before the lease.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\n" + body(3) + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if ws := cl.writer(); ws != noWriter {
		t.Skipf("no lease on this file system (%v): the race needs one", ws)
	}
	res, again := cl.noWriter(false)
	if again { // as awaitEnd goes on: look once more
		res = cl.awaitEnd()
	}
	if res != endGrew {
		t.Fatalf("the wait ended %v, want %v: the appended line would never be sent", res, endGrew)
	}
	if want := body(1) + "\n" + body(2) + "\n" + body(3) + "\n"; string(cl.data) != want {
		t.Fatalf("data %q, want %q", cl.data, want)
	}
}
