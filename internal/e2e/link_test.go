package e2e

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echo is an upstream that writes back what it reads and records it.
type echo struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	got   []byte // everything read, all connections
	reads []int  // the size of each read
	ends  []error
	conns map[net.Conn]bool
}

func startEcho(t *testing.T) *echo {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln, conns: map[net.Conn]bool{}}
	e.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns[c] = true
			e.mu.Unlock()
			e.wg.Go(func() { e.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *echo) serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		e.mu.Lock()
		e.got = append(e.got, buf[:n]...)
		if n > 0 {
			e.reads = append(e.reads, n)
		}
		if err != nil {
			e.ends = append(e.ends, err)
		}
		e.mu.Unlock()
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (e *echo) Got() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

func (e *echo) Ends() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ends)
}

func dialLink(t *testing.T, l *Link) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// roundTrip writes one byte and reads its echo; it returns the time taken.
func roundTrip(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte{'p'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// TestLinkLatency: a round trip through a link of 15 ms each way takes 30
// ms or more; a bandwidth cap set before the latency stays behind it in
// the chain; without the latency a round trip is fast again.
func TestLinkLatency(t *testing.T) {
	e := startEcho(t)
	l := NewLink(t, e.ln.Addr().String())
	l.SetBandwidth(Both, 10*Mbit)
	l.SetLatency(Both, 15*time.Millisecond, 0)
	c := dialLink(t, l)
	var rtts []time.Duration
	for range 10 {
		rtt := roundTrip(t, c)
		if rtt < 30*time.Millisecond {
			t.Fatalf("round trip %v through 15 ms each way", rtt)
		}
		rtts = append(rtts, rtt)
	}
	slices.Sort(rtts)
	t.Logf("round trips through 15 ms each way: min %v, median %v, max %v", rtts[0], rtts[5], rtts[9])
	toxics, err := l.proxy.Toxics()
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, x := range toxics {
		order = append(order, x.Name)
	}
	for _, s := range []string{"upstream", "downstream"} {
		li, bi := slices.Index(order, "latency_"+s), slices.Index(order, "bandwidth_"+s)
		if li < 0 || bi < 0 || li > bi {
			t.Fatalf("toxics %v: want latency_%s before bandwidth_%s", order, s, s)
		}
	}

	l.Remove(Latency)
	fastest := time.Hour
	for range 10 {
		fastest = min(fastest, roundTrip(t, c))
	}
	if fastest >= 30*time.Millisecond {
		t.Fatalf("fastest round trip %v after the latency was removed", fastest)
	}
}

// TestLinkBandwidth: 300 KB echoed through a link capped at 100 KB/s each
// way arrive at about that rate, not faster.
func TestLinkBandwidth(t *testing.T) {
	const rate, size = 100, 300_000 // KB/s, bytes
	e := startEcho(t)
	l := NewLink(t, e.ln.Addr().String())
	l.SetBandwidth(Both, rate)
	c := dialLink(t, l)
	sent := bytes.Repeat([]byte("0123456789"), size/10)
	werr := make(chan error, 1)
	go func() { _, err := c.Write(sent); werr <- err }()
	buf := make([]byte, size)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.ReadFull(c, buf[n:]); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, sent) {
		t.Fatal("the echo differs from what was sent")
	}
	got := float64(size-n) / 1000 / took.Seconds()
	t.Logf("%d bytes after the first read of %d in %v: %.0f KB/s through a cap of %d KB/s", size-n, n, took, got, rate)
	if got > 1.2*rate || got < 0.25*rate {
		t.Fatalf("%.0f KB/s through a cap of %d KB/s", got, rate)
	}
}

// TestLinkBlackhole: a blackholed link passes no byte and closes nothing;
// removing the blackhole closes the connection it held, and a new one
// passes.
func TestLinkBlackhole(t *testing.T) {
	e := startEcho(t)
	l := NewLink(t, e.ln.Addr().String())
	c := dialLink(t, l)
	roundTrip(t, c)
	l.Blackhole(Both)
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := c.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, %v through the blackhole; want none and a timeout", n, err)
	}
	if got := string(e.Got()); got != "p" || len(e.Ends()) != 0 {
		t.Fatalf("the upstream read %q and saw ends %v; want only the first round trip", got, e.Ends())
	}

	l.Remove(Blackhole)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 16)); err != io.EOF {
		t.Fatalf("held connection after the blackhole was removed: %d bytes, %v; want EOF", n, err)
	}
	roundTrip(t, dialLink(t, l))
}

// TestLinkReset: a connection opened after Reset is reset by the link at
// its first bytes; one opened before gets a FIN (toxiproxy sets SO_LINGER
// 0 when a connection starts, so only new ones are reset).
func TestLinkReset(t *testing.T) {
	e := startEcho(t)
	l := NewLink(t, e.ln.Addr().String())
	before := dialLink(t, l)
	roundTrip(t, before)
	l.Reset(Both)
	after := dialLink(t, l)
	for _, tc := range []struct {
		name string
		c    net.Conn
		want error
	}{
		{"opened after", after, syscall.ECONNRESET},
		{"opened before", before, io.EOF},
	} {
		if _, err := tc.c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if n, err := tc.c.Read(make([]byte, 16)); !errors.Is(err, tc.want) {
			t.Fatalf("%s: read %d bytes, %v; want %v", tc.name, n, err, tc.want)
		}
	}
	if got := string(e.Got()); got != "p" {
		t.Fatalf("the upstream read %q past the reset; want only the first round trip", got)
	}
	l.Remove(Reset)
	roundTrip(t, dialLink(t, l))
}

// TestLinkSlice: a sliced link delivers every byte, in order, in small
// pieces both ways.
func TestLinkSlice(t *testing.T) {
	e := startEcho(t)
	l := NewLink(t, e.ln.Addr().String())
	l.Slice(Both, 5, 3, time.Millisecond)
	c := dialLink(t, l)
	sent := []byte("0012|REQ|000000001|20261121093000|ORG01|SV01|CUST-000123|a payload of some length|\n")
	if _, err := c.Write(sent); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(sent))
	var reads []int
	buf := make([]byte, 1024)
	for len(got) < len(sent) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
		reads = append(reads, n)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("echo %q, want %q", got, sent)
	}
	e.mu.Lock()
	up := slices.Clone(e.reads)
	e.mu.Unlock()
	t.Logf("%d bytes read by the upstream as %v, by the client as %v", len(sent), up, reads)
	if len(up) < 2 || len(reads) < 2 {
		t.Fatalf("%d bytes passed in %d reads up and %d down; want pieces", len(sent), len(up), len(reads))
	}
}

// TestLinkCut: a link cut after 10 bytes passes those 10 and closes the
// connection at both ends. The echo of those bytes may or may not get
// back: the link closes its side of the upstream at the cut, with a FIN,
// or with an RST when the echo reached it after that (data unread at a
// close): the upstream sees EOF or a reset, never more bytes.
func TestLinkCut(t *testing.T) {
	e := startEcho(t)
	l := NewLink(t, e.ln.Addr().String())
	l.CutAfter(Up, 10)
	c := dialLink(t, l)
	if _, err := c.Write([]byte("0123456789abcdefghij")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if !strings.HasPrefix("0123456789", string(got)) || err != nil {
		t.Fatalf("the client read %q, %v; want at most the first 10 bytes echoed, then EOF", got, err)
	}
	WaitFor(t, 10*time.Second, "the upstream to see the end", func() bool { return len(e.Ends()) == 1 })
	if end := e.Ends()[0]; string(e.Got()) != "0123456789" || (end != io.EOF && !errors.Is(end, syscall.ECONNRESET)) {
		t.Fatalf("the upstream read %q, then %v; want 10 bytes, then EOF or a reset", e.Got(), end)
	}
}
