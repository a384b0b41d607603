package sender

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/internal/tlsutil/tlstest"
	"spoolgate/protocol"
)

// pipeRemote is the shared fake receiver (e2e.Remote), which reads each
// connection's messages as they arrive (so that it sees how far ahead the
// sender writes) and answers them in order as its script says. Lines are
// numbered by their process_no.
type pipeRemote struct{ *e2e.Remote }

// line returns the number of a message: its process_no.
func line(m e2e.Msg) int {
	n, _ := strconv.Atoi(m.ProcessNo())
	return n
}

func startPipeRemote(t *testing.T, script func(m e2e.Msg) e2e.Action) *pipeRemote {
	t.Helper()
	return &pipeRemote{e2e.StartRemote(t, script)}
}

// stats returns the highest line read, the most lines read and not
// answered on a connection, the connections accepted and the 200s sent
// per line.
func (r *pipeRemote) stats() (maxRead, maxOut, conns int, ok map[int]int) {
	for _, l := range r.Read() {
		maxRead = max(maxRead, line(e2e.Msg{Line: []byte(l)}))
	}
	ok = map[int]int{}
	for _, l := range r.Delivered() {
		ok[line(e2e.Msg{Line: []byte(l)})]++
	}
	return maxRead, r.MaxAhead(), r.Accepted(), ok
}

func (r *pipeRemote) addr() string { return r.Addr() }

// TestWindow: sender.window = 8 against a remote that answers the 3rd line
// 400, drops the connection when the 6th line's turn comes (after the 5th
// reply; the lines written behind it are lost), and answers the rest, but
// holds the 14th line's first reply until the test has looked at the
// progress record. Every line ends answered 200 exactly once or in
// failed_dir with its reason; the sender never had more than 8 lines
// unanswered on a connection, nor wrote a line more than the bound
// (progressBound: 8) past the progress recorded, which never claims an
// unanswered line.
func TestWindow(t *testing.T) {
	const n, w = 40, 8
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	var held atomic.Bool
	r := startPipeRemote(t, func(m e2e.Msg) e2e.Action {
		switch n := line(m); {
		case n == 3:
			return e2e.Answer(protocol.CodeInvalid)
		case m.Conn == 1 && n == 6:
			return e2e.Action{Close: true} // drops what is in flight
		case n == 14 && held.CompareAndSwap(false, true):
			return e2e.Action{Wait: release, Code: protocol.CodeOK}
		}
		return e2e.Answer(protocol.CodeOK)
	})
	c := testConf(t, r.addr())
	c.Window = w
	c.Workers = 1
	c.Timeout = 60 * time.Second // the hold is not a timeout
	s, _ := runSender(t, c, nil)
	var b strings.Builder
	starts := []int{0} // byte offset of each line, from line 1
	for i := 1; i <= n; i++ {
		b.WriteString(body(i) + "\n")
		starts = append(starts, b.Len())
	}
	drop(t, c.SpoolDir, "multi.txt", b.String(), time.Time{})
	e2e.WaitFor(t, 20*time.Second, "the 14th line held", func() bool {
		maxRead, _, _, _ := r.stats()
		return held.Load() && maxRead >= 14
	})
	// The sender may still be writing: what the remote has read is read
	// before the record, which only moves on.
	maxRead, _, _, _ := r.stats()
	a := recorded(t, c.SpoolDir, "multi.txt")
	t.Logf("held at line 14: the remote has read up to line %d; progress record: %d lines", maxRead, a.lines)
	switch {
	case a.lines > 13:
		t.Fatalf("progress record claims %d lines done; line 14 is unanswered", a.lines)
	case int(a.offset) != starts[a.lines]:
		t.Fatalf("progress record: %d lines at offset %d, want offset %d", a.lines, a.offset, starts[a.lines])
	case maxRead > a.lines+progressBound(w):
		t.Fatalf("line %d written with the progress at %d lines: more than %d past it", maxRead, a.lines, progressBound(w))
	}
	once.Do(func() { close(release) })
	e2e.WaitFor(t, 20*time.Second, "file done", func() bool {
		return len(visible(t, c.SpoolDir)) == 0 && len(listDir(t, filepath.Join(c.SpoolDir, InflightDir))) == 0
	})
	_, maxOut, conns, answered := r.stats()
	for i := 1; i <= n; i++ {
		want := 1
		if i == 3 {
			want = 0
		}
		if answered[i] != want {
			t.Errorf("line %d answered 200 %d times, want %d", i, answered[i], want)
		}
	}
	if maxOut > w || maxOut < 2 {
		t.Errorf("at most %d lines unanswered on a connection, want 2 to %d", maxOut, w)
	}
	if conns < 2 {
		t.Errorf("%d connections: the dropped one was not replaced", conns)
	}
	if got, want := listDir(t, c.FailedDir), []string{"multi.txt.line-3", "multi.txt.line-3.reason"}; !slices.Equal(got, want) {
		t.Fatalf("failed_dir = %v, want %v", got, want)
	}
	if got, _ := os.ReadFile(filepath.Join(c.FailedDir, "multi.txt.line-3")); string(got) != body(3)+"\n" {
		t.Fatalf("failed line holds %q", got)
	}
	reason, _ := os.ReadFile(filepath.Join(c.FailedDir, "multi.txt.line-3.reason"))
	for _, want := range []string{"code: 400", "lines: 3 ", "attempts: 1"} {
		if !strings.Contains(string(reason), want) {
			t.Errorf("reason lacks %q:\n%s", want, reason)
		}
	}
	if d, rj, ce := value(s.m.delivered), value(s.m.rejected), value(s.m.attempts[resultConnError]); d != n-1 || rj != 1 || ce != 1 {
		t.Errorf("delivered %v, rejected %v, conn_error attempts %v; want %d, 1, 1", d, rj, ce, n-1)
	}
}

// TestWindowOneAgainstOneMessagePerConnection: with sender.window = 1 (the
// default) a remote that reads one message, answers it and closes gets a
// multi-line file one line per connection, as before windows existed:
// every line delivered once, no attempt failed (a kept-alive connection
// the remote closed is not an attempt), one connection per line.
func TestWindowOneAgainstOneMessagePerConnection(t *testing.T) {
	const n = 20
	r := startRemote(t, func(r *remote) { r.closeAfterEach = true })
	c := testConf(t, r.addr())
	c.Window = 1
	c.Workers = 1
	c.Retries = 0 // any failed attempt fails a line
	s, _ := runSender(t, c, nil)
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(body(i) + "\n")
	}
	drop(t, c.SpoolDir, "multi.txt", b.String(), time.Time{})
	e2e.WaitFor(t, 20*time.Second, "file done", func() bool {
		return len(visible(t, c.SpoolDir)) == 0 && len(listDir(t, filepath.Join(c.SpoolDir, InflightDir))) == 0
	})
	got := r.messages()
	if len(got) != n {
		t.Fatalf("the remote read %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if want := fmt.Sprintf("%09d", i+1); processNo(m) != want {
			t.Fatalf("message %d has process_no %s, want %s (in order)", i, processNo(m), want)
		}
	}
	if f := listDir(t, c.FailedDir); len(f) != 0 {
		t.Fatalf("failed: %v", f)
	}
	_, maxBusy, accepted := r.stats()
	if accepted < n || maxBusy != 1 {
		t.Errorf("%d connections, at most %d messages at once; want %d or more, 1", accepted, maxBusy, n)
	}
	for _, res := range []attemptResult{resultConnError, resultTimeout, resultBadReply} {
		if v := value(s.m.attempts[res]); v != 0 {
			t.Errorf("%v %s attempts, want none", v, res)
		}
	}
	if v := value(s.m.attempts[resultOK]); v != n {
		t.Errorf("%v ok attempts, want %d", v, n)
	}
}

// TestWindowRejectedClientCert: with a window the TLS 1.3 alert rejecting
// our certificate, read after the lines were written, opens the circuit
// and fails no line, as at window 1.
func TestWindowRejectedClientCert(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	srv := ca.Issue(t, "server", tlstest.Opts{})
	expired := ca.Issue(t, "client", tlstest.Opts{Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	r := mtlsRemote(t, ca, srv, tls.VersionTLS13, 0)
	c := testConf(t, r.addr())
	c.Window = 8
	c.TLS.CA, c.TLS.Cert, c.TLS.Key = ca.File, expired.CertFile, expired.KeyFile
	s, _ := runSender(t, c, nil)
	drop(t, c.SpoolDir, "multi.txt", body(1)+"\n"+body(2)+"\n"+body(3)+"\n", time.Time{})
	e2e.WaitFor(t, 20*time.Second, "circuit open, saying why", func() bool {
		err := s.Ready()
		return err != nil && strings.Contains(err.Error(), "the remote rejects our client certificate")
	})
	if len(r.messages()) != 0 || len(visible(t, c.FailedDir)) != 0 {
		t.Fatalf("messages %v, failed %v", r.messages(), visible(t, c.FailedDir))
	}
	for _, res := range []attemptResult{resultConnError, resultTimeout, resultBadReply} {
		if v := value(s.m.attempts[res]); v != 0 {
			t.Errorf("%v %s attempts, want none", v, res)
		}
	}
}

// TestWindowDrain: a drain with lines in flight in a window lets them be
// answered, writes no new line, and puts the file back holding exactly the
// lines the remote never got.
func TestWindowDrain(t *testing.T) {
	const n = 30
	r := startRemote(t, func(r *remote) {
		r.answer = func(line []byte) int {
			if processNo(string(line)) == "000000005" {
				time.Sleep(300 * time.Millisecond) // a slow remote, not synchronisation
			}
			return protocol.CodeOK
		}
	})
	c := testConf(t, r.addr())
	c.Window = 8
	c.Workers = 1
	c.Timeout = 10 * time.Second
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(body(i) + "\n")
	}
	drop(t, c.SpoolDir, "multi.txt", b.String(), time.Now().Add(-time.Hour))
	_, stop := runSender(t, c, func(o *Options) { o.ShutdownTimeout = 5 * time.Second })
	e2e.WaitFor(t, 20*time.Second, "line 5 in flight", func() bool { return len(r.messages()) >= 5 })
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("drain took %s", d)
	}
	got := r.messages()
	back, err := os.ReadFile(filepath.Join(c.SpoolDir, "multi.txt"))
	if err != nil {
		t.Fatalf("file not put back: %v (got %d lines)", err, len(got))
	}
	var want strings.Builder
	for i := len(got) + 1; i <= n; i++ {
		want.WriteString(body(i) + "\n")
	}
	for i, m := range got {
		if p := fmt.Sprintf("%09d", i+1); processNo(m) != p {
			t.Fatalf("message %d is %s, want %s", i, processNo(m), p)
		}
	}
	t.Logf("%d lines delivered before the drain ended, %d put back", len(got), n-len(got))
	if len(got) < 5 || len(got) > 5+8 || string(back) != want.String() {
		t.Fatalf("%d lines delivered; put back %q, want %q", len(got), back, want.String())
	}
	if l := listDir(t, filepath.Join(c.SpoolDir, InflightDir)); len(l) != 0 {
		t.Fatalf(".inflight after drain: %v", l)
	}
}

// TestWindowReload: sender.window is live: raised by a reload in the
// middle of a file, the rest of the file goes through a window.
func TestWindowReload(t *testing.T) {
	const n = 40
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	r := startPipeRemote(t, func(m e2e.Msg) e2e.Action {
		if line(m) == 3 {
			return e2e.Action{Wait: release, Code: protocol.CodeOK}
		}
		return e2e.Answer(protocol.CodeOK)
	})
	c := testConf(t, r.addr())
	c.Workers = 1
	c.Timeout = 60 * time.Second
	s, _ := runSender(t, c, nil)
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(body(i) + "\n")
	}
	drop(t, c.SpoolDir, "multi.txt", b.String(), time.Time{})
	e2e.WaitFor(t, 20*time.Second, "line 3 held", func() bool {
		maxRead, _, _, _ := r.stats()
		return maxRead >= 3
	})
	if maxRead, maxOut, _, _ := r.stats(); maxRead != 3 || maxOut != 1 {
		t.Fatalf("at window 1: read up to line %d, %d unanswered at most; want 3, 1", maxRead, maxOut)
	}
	c.Window = 8
	s.Reload(c)
	once.Do(func() { close(release) })
	e2e.WaitFor(t, 20*time.Second, "file done", func() bool {
		return len(visible(t, c.SpoolDir)) == 0 && len(listDir(t, filepath.Join(c.SpoolDir, InflightDir))) == 0
	})
	_, maxOut, _, answered := r.stats()
	if maxOut < 2 || maxOut > 8 {
		t.Errorf("after the reload at most %d lines unanswered, want 2 to 8", maxOut)
	}
	for i := 1; i <= n; i++ {
		if answered[i] != 1 {
			t.Errorf("line %d answered %d times, want once", i, answered[i])
		}
	}
}
