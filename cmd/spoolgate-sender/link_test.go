package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// The link fault suite (issue 24): the real sender sends one result file
// to the real receiver (dedup off, so a copy stored twice shows) through a
// simulated partner link (toxiproxy, e2e.Link) that stalls, resets,
// slices and cuts what crosses it; every line is counted at the receiver.
// Timeouts are short (sender.timeout 1 s), so each test takes seconds.

// linkRun is one file sent through a link to a receiver.
type linkRun struct {
	r    sink
	link *e2e.Link
	e    *env
	p    *e2e.Proc
	n    int
}

// startLinkRun starts a receiver, a link to it with latency each way, and
// a sender with props through the link, and drops an n-line file.
func startLinkRun(t *testing.T, n int, latency time.Duration, props map[string]string) *linkRun {
	t.Helper()
	r := startSink(t, "")
	link := e2e.NewLink(t, r.addr())
	link.SetLatency(e2e.Both, latency, 0)
	all := map[string]string{
		"sender.timeout": "1s", "sender.connect_timeout": "1s", "sender.retries": "3",
		"sender.retry_backoff": "100ms", "sender.retry_backoff_max": "500ms",
	}
	for k, v := range props {
		all[k] = v
	}
	e := newEnv(t, link.Addr(), all)
	p := e.startSender(t)
	dropLines(t, e.spool, "big.txt", n)
	return &linkRun{r: r, link: link, e: e, p: p, n: n}
}

// stored counts the lines the receiver has stored.
func (lr *linkRun) stored(t *testing.T) int { return len(lr.r.messages(t)) }

// finish waits for the file to be done and checks what the receiver
// stored: every line, each a whole message, at most dups of them twice;
// no failed file. It returns the copies stored twice.
func (lr *linkRun) finish(t *testing.T, within time.Duration, dups int) int {
	t.Helper()
	e := lr.e
	e2e.WaitFor(t, within, "the file done", func() bool {
		return count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
	})
	got := lr.r.messages(t)
	spec := protocol.DefaultRequestSpec()
	for _, m := range got {
		if _, err := spec.Parse([]byte(m)); err != nil {
			t.Errorf("the receiver stored %q, not a whole message: %v", m, err)
		}
	}
	d := e2e.StoredOnce(t, got, lr.n)
	t.Logf("%d lines stored, %d of them twice", len(got), d)
	if d > dups {
		t.Errorf("%d lines stored twice, want at most %d", d, dups)
	}
	if f := count(t, e.failed); f != 0 {
		t.Errorf("%d files failed", f)
	}
	return d
}

// TestLinkBlackhole: the link passes nothing, either way, for 10 s in the
// middle of a file sent through a window of 16 (no reset, no close: the
// VPN drops everything), then comes back. Nothing is lost or failed, no
// more lines than the window are stored twice, and the circuit opens
// (a timeout with not a byte from the remote) and closes (a trial send
// answered once the link is back).
func TestLinkBlackhole(t *testing.T) {
	const window = 16
	lr := startLinkRun(t, 3000, 5*time.Millisecond, map[string]string{"sender.window": fmt.Sprint(window)})
	e2e.WaitFor(t, 30*time.Second, "500 lines stored", func() bool { return lr.stored(t) >= 500 })
	lr.link.Blackhole(e2e.Both)
	hole := time.Now()
	e2e.WaitFor(t, 10*time.Second, "the circuit open", func() bool { return lr.e.ready() == 503 })
	e2e.WaitFor(t, 15*time.Second, "10 s of blackhole", func() bool { return time.Since(hole) >= 10*time.Second })
	if f := count(t, lr.e.failed); f != 0 {
		t.Fatalf("%d files failed during the blackhole", f)
	}
	lr.link.Remove(e2e.Blackhole)
	lr.finish(t, 60*time.Second, window)
	if !lr.p.Log.Contains("circuit open") || !lr.p.Log.Contains("circuit closed") {
		t.Error("the circuit did not open and close")
	}
	if got := lr.e.metric(t, `spoolgate_sender_attempts_total{result="timeout"}`); got == 0 {
		t.Error("no timeout counted")
	}
}

// TestLinkReset: the link resets every connection while lines are in
// flight (lanes at the defaults: one line on each of 4 connections; a
// window of 16 on one) and goes on resetting new ones for a second.
// Nothing is lost or failed, no more lines than are in flight are stored
// twice, and the circuit opens (new connections closed before a byte) and
// closes.
func TestLinkReset(t *testing.T) {
	for _, tc := range []struct {
		window, inFlight int
	}{{1, 4}, {16, 16}} {
		t.Run(fmt.Sprintf("window=%d", tc.window), func(t *testing.T) {
			lr := startLinkRun(t, 1000, 5*time.Millisecond, map[string]string{"sender.window": fmt.Sprint(tc.window)})
			e2e.WaitFor(t, 30*time.Second, "200 lines stored", func() bool { return lr.stored(t) >= 200 })
			lr.link.Reset(e2e.Both)
			e2e.WaitFor(t, 10*time.Second, "the circuit open", func() bool { return lr.e.ready() == 503 })
			reset := time.Now()
			e2e.WaitFor(t, 5*time.Second, "a second of resets", func() bool { return time.Since(reset) >= time.Second })
			lr.link.Remove(e2e.Reset)
			lr.finish(t, 60*time.Second, tc.inFlight)
			if !lr.p.Log.Contains("circuit open") || !lr.p.Log.Contains("circuit closed") {
				t.Error("the circuit did not open and close")
			}
		})
	}
}

// TestLinkSlicing: both ways, the link writes what crosses it in pieces
// of 1 to 8 bytes with 50 µs between them: every reply is matched to its
// line (no bad_reply), nothing fails, nothing is stored twice, at window
// 1 (lanes) and through a window of 8.
func TestLinkSlicing(t *testing.T) {
	for _, window := range []int{1, 8} {
		t.Run(fmt.Sprintf("window=%d", window), func(t *testing.T) {
			lr := startLinkRun(t, 200, time.Millisecond, map[string]string{"sender.window": fmt.Sprint(window)})
			lr.link.Slice(e2e.Both, 5, 3, 50*time.Microsecond)
			lr.finish(t, 60*time.Second, 0)
			for _, res := range []string{"bad_reply", "timeout", "conn_error"} {
				if got := lr.e.metric(t, `spoolgate_sender_attempts_total{result="`+res+`"}`); got != 0 {
					t.Errorf("%v %s attempts", got, res)
				}
			}
		})
	}
}

// TestLinkCut: the link cuts every connection after 220 bytes towards the
// receiver, inside the 4th message (line_order strict: one connection
// carries the lines in order, 62 or 64 bytes each), and closes it. The
// receiver stores no part of the message cut (every line it stored is a
// whole message), and the sender sends it again on a new connection,
// itself cut after its 4th message: every line arrives, none fails.
func TestLinkCut(t *testing.T) {
	const cut = 220
	short, long := len(body(0))+5+1, len(body(39))+5+1 // framed with "0062|" and LF
	if cut <= 3*long || cut >= 4*short {
		t.Fatalf("a cut after %d bytes is not inside the 4th message of %d to %d bytes", cut, short, long)
	}
	r := startSink(t, "")
	link := e2e.NewLink(t, r.addr())
	link.CutAfter(e2e.Up, cut)
	lr := &linkRun{r: r, link: link, n: 40}
	lr.e = newEnv(t, link.Addr(), map[string]string{"sender.line_order": "strict", "sender.timeout": "1s",
		"sender.retry_backoff": "50ms", "sender.retry_backoff_max": "200ms"})
	lr.p = lr.e.startSender(t)
	dropLines(t, lr.e.spool, "cut.txt", lr.n)
	lr.finish(t, 60*time.Second, 0)
	// The part of the 4th message that crossed: the receiver read it up to
	// the close, found it short and stored nothing.
	if rp := r.(*receiverSink).p; !rp.Log.Contains("rejected: answered 400") {
		t.Error("the receiver never saw a message cut")
	}
}

// TestLinkLatencyAboveTimeout: the link's latency rises to 600 ms each
// way (a round trip of 1.2 s against a sender.timeout of 1 s) for 3 s,
// then falls back to 5 ms. Attempts time out and are counted
// (attempts_total{timeout}); with not a byte from the remote meanwhile they
// charge no line (the circuit opens), so nothing is lost or failed. What
// is stored twice is what reached the receiver and was answered too late:
// the lines in flight when the link slowed (4) and the circuit's trial
// sends (one every 1-2 s).
func TestLinkLatencyAboveTimeout(t *testing.T) {
	lr := startLinkRun(t, 600, 5*time.Millisecond, nil)
	e2e.WaitFor(t, 30*time.Second, "100 lines stored", func() bool { return lr.stored(t) >= 100 })
	lr.link.SetLatency(e2e.Both, 600*time.Millisecond, 0)
	slow := time.Now()
	e2e.WaitFor(t, 10*time.Second, "3 s of a slow link", func() bool { return time.Since(slow) >= 3*time.Second })
	lr.link.SetLatency(e2e.Both, 5*time.Millisecond, 0)
	lr.finish(t, 60*time.Second, 4+8)
	if got := lr.e.metric(t, `spoolgate_sender_attempts_total{result="timeout"}`); got == 0 {
		t.Error("no timeout counted while the link was slower than sender.timeout")
	}
}

// TestLinkDialect: the sender and the receiver binaries speak EUC-KR in
// fixed width behind a 2-byte binary length header (docs/PROTOCOL.md §1's
// example 2 with a binary header, codes 0000/9999/9998) through a link of
// 2 ms each way that writes what crosses it in pieces of 1 to 8 bytes, a
// 300-line file over lanes (window 1, line_order parallel: 4 connections)
// and through sender.window = auto: every line is stored once, byte for
// byte as the spool file has it, each reply matched to its line in the
// dialect (no bad_reply, no timeout: auto never takes the dialect's
// replies for a skipped line), none failed.
func TestLinkDialect(t *testing.T) {
	const n = 300 // process_no and the 4-digit kind carry seq: below 800, the echo's kind
	for _, window := range []string{"1", "auto"} {
		t.Run("window="+window, func(t *testing.T) {
			props := testdataProps(t, "good_dialect_euckr_fixed")
			props["protocol.length.format"], props["protocol.length.bytes"] = "binary", "2"
			d := dialectOf(t, props)
			r := startDialectReceiver(t, props)
			link := e2e.NewLink(t, r.addr)
			link.SetLatency(e2e.Both, 2*time.Millisecond, 0)
			link.Slice(e2e.Both, 5, 3, 50*time.Microsecond)
			props["sender.window"] = window
			e := newEnv(t, link.Addr(), props)
			text := map[string]string{"payload": "잔액 조회 결과 정상", "name": "홍길동"}
			var lines []string
			want := map[string]int{}
			for seq := 1; seq <= n; seq++ {
				l := dialectLine(t, d, seq, text)
				lines = append(lines, l)
				want[onWire(d, l)] = 0
			}
			e2e.WriteFile(t, filepath.Join(e.spool, "big.txt"), strings.Join(lines, "\n")+"\n")
			p := e.startSender(t)
			e2e.WaitFor(t, 60*time.Second, "the file done", func() bool {
				return count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
			})
			for _, m := range r.stored(t) {
				if _, ok := want[m]; !ok {
					t.Errorf("the receiver stored %q, not a line of the file", m)
				}
				want[m]++
			}
			for m, c := range want {
				if c != 1 {
					t.Errorf("%q stored %d times, want once", m, c)
				}
			}
			if f := count(t, e.failed); f != 0 {
				t.Errorf("%d files failed", f)
			}
			for _, res := range []string{"bad_reply", "timeout", "conn_error"} {
				if got := e.metric(t, `spoolgate_sender_attempts_total{result="`+res+`"}`); got != 0 {
					t.Errorf("%v %s attempts", got, res)
				}
			}
			if got := e.metric(t, `spoolgate_sender_messages_total{outcome="delivered"}`); got != n {
				t.Errorf("%v lines delivered, want %d", got, n)
			}
			if p.Log.Contains("window is 1") || p.Log.Contains("starts again") {
				t.Error("window auto took the dialect's replies for a remote that reads one message per read")
			}
		})
	}
}
