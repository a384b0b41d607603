package main

// The receiver behind a simulated partner link (e2e.Link, toxiproxy):
// stalls, a slow link, sliced segments and cuts, each checked against what
// the receiver stored.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// stop drains the receiver with SIGTERM and returns what it stored, each
// line with its count; it fails the test on a partial line.
func (p *proc) stop(t *testing.T, dir string) map[string]int {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("receiver exit %d", code)
	}
	return requestLines(t, filepath.Join(dir, "data"), true)
}

// noConnections waits until the receiver counts no open connection.
func noConnections(t *testing.T, p *proc) {
	t.Helper()
	e2e.WaitFor(t, 20*time.Second, "the receiver's connection gauge to return to 0", func() bool {
		return scrape(t, p, "spoolgate_receiver_connections") == 0
	})
}

// storedExactly fails the test unless stored holds each of want once and
// nothing else.
func storedExactly(t *testing.T, stored map[string]int, want [][]byte) {
	t.Helper()
	for _, m := range want {
		if stored[string(m)] != 1 {
			t.Errorf("stored %d times: %q", stored[string(m)], m)
		}
	}
	if len(stored) != len(want) {
		t.Errorf("stored %d distinct lines, want %d", len(stored), len(want))
		for l := range stored {
			if !bytes.Contains(bytes.Join(want, nil), []byte(l)) {
				t.Errorf("stored but not sent whole: %q", l)
			}
		}
	}
}

// readReply reads one reply and checks that it answers pno with 200.
func readReply(br *bufio.Reader, pno string) error {
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reply to %s: %w", pno, err)
	}
	r, err := protocol.DefaultDialect().ParseReply(line)
	if err != nil {
		return err
	}
	if r.ProcessNo != pno || r.Code != protocol.CodeOK {
		return fmt.Errorf("reply %q to %s", line, pno)
	}
	return nil
}

// TestLinkBlackholeMidMessage: a partner's link stops passing bytes (no
// FIN, no reset) in the middle of a message. The receiver closes the
// connection at receiver.read_timeout, not at the idle timeout, stores
// nothing of the cut message, and counts no connection afterwards.
func TestLinkBlackholeMidMessage(t *testing.T) {
	dir := t.TempDir()
	p := start(t, config(t, dir, "receiver.read_timeout = 1s", "receiver.idle_timeout = 5m", "log.level = debug"), nil)
	link := e2e.NewLink(t, p.addr)
	c, err := dial(link.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.c.Close()
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	first, cut := msg(t, "000000001", "before the blackhole"), msg(t, "000000002", "cut by the blackhole")
	half := len(cut) / 2
	// One write: the first message and half the second reach the receiver
	// in one segment, so its reply to the first says the half is there.
	if _, err := c.c.Write(append(first, cut[:half]...)); err != nil {
		t.Fatal(err)
	}
	if err := readReply(c.br, "000000001"); err != nil {
		t.Fatal(err)
	}
	link.Blackhole(e2e.Both)
	start := time.Now()
	if _, err := c.c.Write(cut[half:]); err != nil { // dropped by the link
		t.Fatal(err)
	}
	if b, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("read %q, %v; want EOF: the receiver's close passed on by the link", b, err)
	}
	t.Logf("closed %v after the blackhole (read_timeout 1s, idle_timeout 5m)", time.Since(start).Round(time.Millisecond))
	noConnections(t, p)
	if !p.Log.Contains("connection read end") || !p.Log.Contains("i/o timeout") {
		t.Error("the receiver did not log the read timeout of the cut message")
	}

	last := msg(t, "000000003", "after the blackhole")
	if code := sendOne(t, p.addr, last); code != 200 {
		t.Fatalf("after the blackhole: %d", code)
	}
	storedExactly(t, p.stop(t, dir), [][]byte{first, last})
}

// TestLinkPipelined10k: a partner pipelines 10,000 messages on one
// connection through a 1 Mbit/s link with 15 ms each way: every reply
// comes back in order, each message is stored once.
func TestLinkPipelined10k(t *testing.T) {
	const n = 10_000
	dir := t.TempDir()
	p := start(t, config(t, dir), nil)
	link := e2e.NewLink(t, p.addr)
	link.SetLatency(e2e.Both, 15*time.Millisecond, 0)
	link.SetBandwidth(e2e.Both, e2e.Mbit)
	c, err := dial(link.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.c.Close()
	c.c.SetDeadline(time.Now().Add(90 * time.Second))
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = msg(t, fmt.Sprintf("%09d", 100_000_000+i), "pipelined")
	}
	all := bytes.Join(msgs, nil)
	start := time.Now()
	werr := make(chan error, 1)
	go func() { _, err := c.c.Write(all); werr <- err }()
	for i := range msgs {
		if err := readReply(c.br, fmt.Sprintf("%09d", 100_000_000+i)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("%d messages (%d bytes) answered in order in %v: %.0f msg/s, %.0f KB/s of 125 up",
		n, len(all), took.Round(time.Millisecond), n/took.Seconds(), float64(len(all))/1000/took.Seconds())
	c.c.Close()
	noConnections(t, p)
	storedExactly(t, p.stop(t, dir), msgs)
}

// TestLinkSlicing: both ways of the link cut into segments of 1 to 8 bytes
// with a delay between them; clients sending one message at a time and
// one pipelining get every reply matched, and everything is stored once.
func TestLinkSlicing(t *testing.T) {
	const clients, each, pipelined = 4, 40, 100
	dir := t.TempDir()
	p := start(t, config(t, dir), nil)
	link := e2e.NewLink(t, p.addr)
	link.Slice(e2e.Both, 5, 3, 200*time.Microsecond)
	var (
		mu   sync.Mutex
		sent [][]byte
		wg   sync.WaitGroup
	)
	errs := make(chan error, clients+1)
	run := func(w, count int, pipeline bool) {
		c, err := dial(link.Addr())
		if err != nil {
			errs <- err
			return
		}
		defer c.c.Close()
		c.c.SetDeadline(time.Now().Add(60 * time.Second))
		var ms [][]byte
		for i := range count {
			ms = append(ms, msg(t, fmt.Sprintf("%03d%06d", w, i), strings.Repeat("s", i%20)))
		}
		mu.Lock()
		sent = append(sent, ms...)
		mu.Unlock()
		if pipeline {
			if _, err := c.c.Write(bytes.Join(ms, nil)); err != nil {
				errs <- err
				return
			}
		}
		for i, m := range ms {
			if !pipeline {
				if _, err := c.c.Write(m); err != nil {
					errs <- err
					return
				}
			}
			if err := readReply(c.br, fmt.Sprintf("%03d%06d", w, i)); err != nil {
				errs <- fmt.Errorf("client %d: %w", w, err)
				return
			}
		}
	}
	for w := range clients {
		wg.Go(func() { run(w, each, false) })
	}
	wg.Go(func() { run(clients, pipelined, true) })
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	noConnections(t, p)
	storedExactly(t, p.stop(t, dir), sent)
}

// TestLinkCutMidMessage: the link is cut after N bytes of a partner's
// three pipelined messages, at places in and between them. The receiver
// stores exactly the messages that crossed whole: a message cut short is
// rejected (400: its length field, which counts the LF, does not match
// what arrived) and never stored. A message cut right before its LF is
// whole: it ended at EOF, which PROTOCOL §1 takes as its end (a peer may
// half-close after a message without LF); it is stored, and its 200 is
// lost with the link, as a reply can be on any link (the sender resends,
// the duplicate window answers). A 200 goes only to a stored message.
func TestLinkCutMidMessage(t *testing.T) {
	dir := t.TempDir()
	p := start(t, config(t, dir), nil)
	var want [][]byte
	rejected := 0
	for k, tc := range []struct {
		name string
		cut  func(m []int) int // m: the ends of the three messages, LF included
	}{
		{"in the first length field", func(m []int) int { return 2 }},
		{"before the first LF", func(m []int) int { return m[0] - 1 }},
		{"right after the first message", func(m []int) int { return m[0] }},
		{"in the middle of the second", func(m []int) int { return (m[0] + m[1]) / 2 }},
		{"before the third LF", func(m []int) int { return m[2] - 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ms [][]byte
			var ends []int
			var all []byte
			for i := range 3 {
				ms = append(ms, msg(t, fmt.Sprintf("%03d%06d", k, i), fmt.Sprintf("case %d message %d", k, i)))
				all = append(all, ms[i]...)
				ends = append(ends, len(all))
			}
			n := tc.cut(ends)
			var whole [][]byte
			for i, m := range ms {
				switch {
				case ends[i]-1 <= n: // with its LF, or all but the LF, then EOF
					whole = append(whole, m)
				case i == 0 || ends[i-1] < n: // cut short
					rejected++
				}
			}
			want = append(want, whole...)
			link := e2e.NewLink(t, p.addr)
			link.CutAfter(e2e.Up, n)
			c, err := dial(link.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.c.Close()
			c.c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.c.Write(all); err != nil {
				t.Fatal(err)
			}
			// Replies until the receiver's close comes through the link.
			for i := 0; ; i++ {
				line, err := c.br.ReadBytes('\n')
				if err != nil {
					if len(line) > 0 || (err != io.EOF && !isReset(err)) {
						t.Fatalf("after %d replies: %q, %v", i, line, err)
					}
					break
				}
				r, err := protocol.DefaultDialect().ParseReply(line)
				if err != nil || r.Code != protocol.CodeOK || i >= len(whole) || r.ProcessNo != fmt.Sprintf("%03d%06d", k, i) {
					t.Fatalf("reply %d %q (%v) with %d of %d messages whole at a cut after %d bytes", i, line, err, len(whole), len(ms), n)
				}
			}
			noConnections(t, p)
		})
	}
	if got := scrape(t, p, `spoolgate_receiver_messages_total{code="400"}`); int(got) != rejected {
		t.Errorf("%v messages answered 400, want %d (those cut short)", got, rejected)
	}
	storedExactly(t, p.stop(t, dir), want)
}

// isReset reports whether err is a connection reset.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
