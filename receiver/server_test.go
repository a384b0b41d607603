package receiver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

type testServer struct {
	srv     *Server
	addr    string
	dir     string
	reg     *prometheus.Registry
	served  chan error
	shutErr error
}

func testConfig(t testing.TB) conf.Receiver {
	c := conf.Default().Receiver
	c.DataDir = t.TempDir()
	c.ReadTimeout = 5 * time.Second
	c.IdleTimeout = 5 * time.Second
	c.WriteTimeout = 5 * time.Second
	return c
}

// startServer starts a Server on 127.0.0.1:0 with opts (Config from
// testConfig unless set) and shuts it down when the test ends.
func startServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	if opts.Config.DataDir == "" {
		opts.Config = testConfig(t)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	if opts.SummaryEvery == 0 {
		opts.SummaryEvery = -1
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, addr: ln.Addr().String(), dir: opts.Config.DataDir, reg: reg, served: make(chan error, 1)}
	go func() { ts.served <- srv.Serve(context.Background(), ln) }()
	e2e.WaitFor(t, 5*time.Second, "serving", func() bool { return srv.Ready() == nil })
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down (once) and checks Serve returned.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	if ts.served == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ts.shutErr = ts.srv.Shutdown(ctx)
	if err := <-ts.served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	ts.served = nil
}

var spec = protocol.DefaultRequestSpec()

// req builds a valid request with process_no pno and payload.
func req(t testing.TB, pno, payload string) []byte {
	t.Helper()
	return reqOrg(t, "ORG01", pno, payload)
}

func reqOrg(t testing.TB, org, pno, payload string) []byte {
	t.Helper()
	b, err := spec.Encode("REQ", pno, "20261121093000", org, "SV01", "CUST-000123", payload, "")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frame builds a message from body (everything after the length field)
// with a correct length field, valid or not.
func frame(body string) []byte {
	return []byte(fmt.Sprintf("%04d|%s\n", len(body)+6, body))
}

const validBody = "REQ|000000007|20261121093000|ORG01|SV01|CUST-000123|payload|"

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// readReplies reads replies until EOF (or error) with a deadline.
func readReplies(t testing.TB, c net.Conn) []protocol.Reply {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var out []protocol.Reply
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			r, perr := protocol.DefaultDialect().ParseReply(line)
			if perr != nil {
				t.Fatalf("bad reply %q: %v", line, perr)
			}
			out = append(out, r)
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("no EOF from the server: %v", err)
			}
			return out
		}
	}
}

// roundTrip sends msg on c and reads one reply.
func roundTrip(t testing.TB, c net.Conn, br *bufio.Reader, msg []byte) protocol.Reply {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	line, err := br.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	r, err := protocol.DefaultDialect().ParseReply(line)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// send sends one message on a new connection and returns the reply code.
func send(t testing.TB, addr string, msg []byte) int {
	t.Helper()
	c := dial(t, addr)
	r := roundTrip(t, c, bufio.NewReader(c), msg)
	c.Close()
	return r.Code
}

// storedLines returns every line of the request files in dir, sorted.
func storedLines(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for name, c := range dirFiles(t, dir) {
		if _, _, ok := parseName(name); !ok {
			continue
		}
		if c != "" && !strings.HasSuffix(c, "\n") {
			t.Fatalf("%s ends in a partial line: %q", name, c)
		}
		for _, l := range strings.Split(c, "\n") {
			if l != "" {
				out = append(out, l+"\n")
			}
		}
	}
	sort.Strings(out)
	return out
}

// metric returns the value of the counter or gauge name with labels (a
// "k=v" list), or of a histogram's sample count.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// TestFraming covers the framing cases and every rule of the default spec:
// the replies (codes and echoed process_no, in order), what is stored, and
// the reject reasons.
func TestFraming(t *testing.T) {
	m1, m2, m3 := req(t, "000000001", "one"), req(t, "000000002", "two"), req(t, "000000003", "three")
	long := req(t, "000000004", strings.Repeat("x", 200)) // valid, but over max_message_bytes=128
	noLF := m1[:len(m1)-1]
	crlf := append(slices.Clone(noLF), '\r', '\n')
	const p7 = "000000007"
	type reply struct {
		code int
		pno  string
	}
	ok := func(m []byte) reply { return reply{200, string(m[9:18])} }
	for _, tc := range []struct {
		name     string
		send     [][]byte // written in order; the client then half-closes
		byByte   bool     // write one byte at a time
		want     []reply
		stored   [][]byte
		reason   string // a rejects_total reason expected
		maxBytes int
	}{
		{name: "one message", send: [][]byte{m1}, want: []reply{ok(m1)}, stored: [][]byte{m1}},
		{name: "ended by EOF without LF", send: [][]byte{noLF}, want: []reply{ok(m1)}, stored: [][]byte{m1}},
		{name: "pipelined in one write", send: [][]byte{slices.Concat(m1, m2, m3)}, want: []reply{ok(m1), ok(m2), ok(m3)}, stored: [][]byte{m1, m2, m3}},
		{name: "slow writer one byte at a time", send: [][]byte{slices.Concat(m1, m2)}, byByte: true, want: []reply{ok(m1), ok(m2)}, stored: [][]byte{m1, m2}},
		{name: "oversized line then closed", send: [][]byte{slices.Concat(long, m2)}, maxBytes: 128, want: []reply{{400, "000000004"}}, reason: "message: too long"},
		{name: "oversized without LF at EOF", send: [][]byte{long[:len(long)-1]}, maxBytes: 128, want: []reply{{400, "000000004"}}, reason: "message: too long"},
		{name: "CRLF", send: [][]byte{crlf}, want: []reply{{400, "000000001"}}, reason: "message: no CR"},
		{name: "invalid UTF-8", send: [][]byte{frame("REQ|000000007|20261121093000|ORG01|SV01|CUST-000123|bad\xff\xfe|")}, want: []reply{{400, p7}}},
		{name: "empty line", send: [][]byte{[]byte("\n")}, want: []reply{{400, "000000000"}}},
		{name: "second message after a 400", send: [][]byte{[]byte("garbage\n"), m2}, want: []reply{{400, "000000000"}, ok(m2)}, stored: [][]byte{m2}},
		{name: "400 and 200 pipelined", send: [][]byte{slices.Concat(frame("RES|"+validBody[4:]), m3)}, want: []reply{{400, p7}, ok(m3)}, stored: [][]byte{m3}},
		{name: "length field wrong", send: [][]byte{[]byte("0077|" + validBody + "\n")}, want: []reply{{400, p7}}},
		{name: "length field not digits", send: [][]byte{[]byte("00x8|" + validBody + "\n")}, want: []reply{{400, p7}}},
		{name: "type not REQ", send: [][]byte{frame("RES|000000007|20261121093000|ORG01|SV01|CUST-000123|p|")}, want: []reply{{400, p7}}},
		{name: "process_no 8 digits", send: [][]byte{frame("REQ|00000007|20261121093000|ORG01|SV01|CUST-000123|p|")}, want: []reply{{400, "000000000"}}},
		{name: "sent_at not a calendar time", send: [][]byte{frame("REQ|000000007|20261131093000|ORG01|SV01|CUST-000123|p|")}, want: []reply{{400, p7}}},
		{name: "org_code lower case", send: [][]byte{frame("REQ|000000007|20261121093000|org01|SV01|CUST-000123|p|")}, want: []reply{{400, p7}}},
		{name: "org_code too short", send: [][]byte{frame("REQ|000000007|20261121093000|O|SV01|CUST-000123|p|")}, want: []reply{{400, p7}}},
		{name: "service_code 5 chars", send: [][]byte{frame("REQ|000000007|20261121093000|ORG01|SV012|CUST-000123|p|")}, want: []reply{{400, p7}}},
		{name: "key too long", send: [][]byte{frame("REQ|000000007|20261121093000|ORG01|SV01|" + strings.Repeat("k", 41) + "|p|")}, want: []reply{{400, p7}}},
		{name: "key empty", send: [][]byte{frame("REQ|000000007|20261121093000|ORG01|SV01||p|")}, want: []reply{{400, p7}}},
		{name: "payload with NUL", send: [][]byte{frame("REQ|000000007|20261121093000|ORG01|SV01|CUST-000123|a\x00b|")}, want: []reply{{400, p7}}},
		{name: "filler too long", send: [][]byte{frame("REQ|000000007|20261121093000|ORG01|SV01|CUST-000123|p|" + strings.Repeat("f", 65))}, want: []reply{{400, p7}}},
		{name: "too few fields", send: [][]byte{frame("REQ|000000007|20261121093000|ORG01|SV01|CUST-000123|p")}, want: []reply{{400, p7}}},
		{name: "too many fields", send: [][]byte{frame(validBody + "|extra")}, want: []reply{{400, p7}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Config: testConfig(t)}
			if tc.maxBytes > 0 {
				opts.Config.MaxMessageBytes = tc.maxBytes
			}
			ts := startServer(t, opts)
			c := dial(t, ts.addr)
			for _, b := range tc.send {
				if tc.byByte {
					for i := range b {
						if _, err := c.Write(b[i : i+1]); err != nil {
							t.Fatal(err)
						}
					}
				} else if _, err := c.Write(b); err != nil {
					t.Fatal(err)
				}
			}
			c.CloseWrite()
			var got []reply
			for _, r := range readReplies(t, c) {
				got = append(got, reply{r.Code, r.ProcessNo})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("replies %v, want %v", got, tc.want)
			}
			ts.stop(t)
			var want []string
			for _, m := range tc.stored {
				want = append(want, string(m))
			}
			sort.Strings(want)
			if got := storedLines(t, ts.dir); !slices.Equal(got, want) {
				t.Fatalf("stored %q, want %q", got, want)
			}
			var n400 float64
			for _, r := range tc.want {
				if r.code == 400 {
					n400++
				}
			}
			if got := metric(t, ts.reg, "spoolgate_receiver_rejects_total"); got != n400 {
				t.Errorf("rejects_total %v, want %v", got, n400)
			}
			if got := metric(t, ts.reg, "spoolgate_receiver_messages_total", "code=400"); got != n400 {
				t.Errorf("messages_total{code=400} %v, want %v", got, n400)
			}
			if tc.reason != "" && metric(t, ts.reg, "spoolgate_receiver_rejects_total", "reason="+tc.reason) != 1 {
				t.Errorf("no reject with reason %q", tc.reason)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	ts := startServer(t, Options{})
	c := dial(t, ts.addr)
	br := bufio.NewReader(c)
	var want []string
	for i := range 50 {
		m := req(t, fmt.Sprintf("%09d", i), "keep-alive")
		want = append(want, string(m))
		if r := roundTrip(t, c, br, m); r.Code != 200 || r.ProcessNo != fmt.Sprintf("%09d", i) {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	c.Close()
	ts.stop(t)
	sort.Strings(want)
	if got := storedLines(t, ts.dir); !slices.Equal(got, want) {
		t.Fatalf("stored %d lines, want %d", len(got), len(want))
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_store_seconds"); n != 50 {
		t.Errorf("store_seconds count %v", n)
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_sync_batch"); n != 50 {
		t.Errorf("sync_batch count %v", n)
	}
}

// TestTimeouts: the server closes an idle connection after idle_timeout
// and one with a started message after read_timeout, without a reply.
func TestTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"idle", nil},
		{"idle after a message", req(t, "000000001", "x")},
		{"message started", []byte("0078|REQ|0000")},
		{"message started after a message", append(req(t, "000000001", "x"), "0078|REQ"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.IdleTimeout = 150 * time.Millisecond
			cfg.ReadTimeout = 150 * time.Millisecond
			if strings.Contains(tc.name, "idle") {
				cfg.ReadTimeout = time.Minute
			} else {
				cfg.IdleTimeout = time.Minute
			}
			ts := startServer(t, Options{Config: cfg})
			c := dial(t, ts.addr)
			c.Write(tc.send)
			start := time.Now()
			replies := readReplies(t, c) // returns at the server's close
			wantReplies := 0
			if bytes.Count(tc.send, []byte("\n")) == 1 {
				wantReplies = 1
			}
			if len(replies) != wantReplies {
				t.Fatalf("replies %v", replies)
			}
			t.Logf("closed after %v", time.Since(start))
		})
	}
}

// TestMaxConns: with max_conns connections served (each sent a message
// and is kept alive), a third client's message is not answered; it is
// once a slot frees. Connections that sent nothing take no slot (see
// TestSilentFlood).
func TestMaxConns(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxConns = 2
	ts := startServer(t, Options{Config: cfg})
	served := func(pno string) net.Conn {
		c := dial(t, ts.addr)
		if code := roundTrip(t, c, bufio.NewReader(c), req(t, pno, "served")).Code; code != 200 {
			t.Fatalf("served connection: %d", code)
		}
		return c
	}
	idle1, idle2 := served("000000101"), served("000000102")
	_ = idle2
	e2e.WaitFor(t, 5*time.Second, "2 connections", func() bool {
		return metric(t, ts.reg, "spoolgate_receiver_connections") == 2
	})
	c := dial(t, ts.addr) // completes in the kernel backlog
	if _, err := c.Write(req(t, "000000001", "waiting")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 64)); n != 0 || !isTimeout(err) {
		t.Fatalf("third connection answered while 2 were open: n=%d err=%v", n, err)
	}
	idle1.Close()
	c.CloseWrite()
	if r := readReplies(t, c); len(r) != 1 || r[0].Code != 200 {
		t.Fatalf("after a slot freed: %v", r)
	}
	// A reload raises the limit for the waiting ones at once.
	c3 := served("000000103") // takes the free slot
	_ = c3
	c4 := dial(t, ts.addr) // its message waits
	if _, err := c4.Write(req(t, "000000002", "x")); err != nil {
		t.Fatal(err)
	}
	c4.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c4.Read(make([]byte, 64)); n != 0 || !isTimeout(err) {
		t.Fatalf("answered while 2 were served: n=%d err=%v", n, err)
	}
	cfg.MaxConns = 3
	ts.srv.Reload(cfg)
	c4.SetReadDeadline(time.Time{})
	c4.CloseWrite()
	if r := readReplies(t, c4); len(r) != 1 || r[0].Code != 200 {
		t.Fatalf("after reload: %v", r)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestAllow: a peer outside allow is closed without a reply and not
// stored; a reload that allows it takes effect for the next connection.
func TestAllow(t *testing.T) {
	cfg := testConfig(t)
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	ts := startServer(t, Options{Config: cfg})
	c := dial(t, ts.addr)
	c.Write(req(t, "000000001", "denied"))
	c.CloseWrite()
	if r := readReplies(t, c); len(r) != 0 {
		t.Fatalf("denied peer got %v", r)
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_denied_connections_total"); n != 1 {
		t.Fatalf("denied %v", n)
	}
	cfg.Allow = append(cfg.Allow, netip.MustParsePrefix("127.0.0.0/8"))
	ts.srv.Reload(cfg)
	if code := send(t, ts.addr, req(t, "000000002", "allowed")); code != 200 {
		t.Fatalf("after reload: %d", code)
	}
	ts.stop(t)
	if got := storedLines(t, ts.dir); len(got) != 1 || !strings.Contains(got[0], "allowed") {
		t.Fatalf("stored %q", got)
	}
}

// TestDedup: a repeated message within the window is answered 200 and
// stored once, also across a restart, and stored again once the window is
// over; identical messages in flight at once are stored once.
func TestDedup(t *testing.T) {
	clk := newFakeClock(t0)
	cfg := testConfig(t)
	m := req(t, "000000001", "first")
	again := req(t, "000000001", "retry with other payload") // same org_code,process_no
	other := reqOrg(t, "ORG02", "000000001", "first")

	ts := startServer(t, Options{Config: cfg, Clock: clk.now})
	for _, msg := range [][]byte{m, again, other, m} {
		if code := send(t, ts.addr, msg); code != 200 {
			t.Fatalf("code %d", code)
		}
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_duplicates_total"); n != 2 {
		t.Fatalf("duplicates %v", n)
	}
	ts.stop(t)
	want := []string{string(m), string(other)}
	sort.Strings(want)
	if got := storedLines(t, cfg.DataDir); !slices.Equal(got, want) {
		t.Fatalf("stored %q", got)
	}

	// Restart 5 minutes later: the window is rebuilt from the files.
	clk.set(t0.Add(5 * time.Minute))
	ts = startServer(t, Options{Config: cfg, Clock: clk.now})
	if code := send(t, ts.addr, again); code != 200 {
		t.Fatalf("code %d", code)
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_duplicates_total"); n != 1 {
		t.Fatalf("after restart: duplicates %v", n)
	}
	// 11 minutes after the original: stored again.
	clk.set(t0.Add(11*time.Minute + 30*time.Second))
	if code := send(t, ts.addr, again); code != 200 {
		t.Fatalf("code %d", code)
	}
	// The window shrinks live; 0s turns it off.
	cfg.DedupWindow = 0
	ts.srv.Reload(cfg)
	if code := send(t, ts.addr, again); code != 200 {
		t.Fatalf("code %d", code)
	}
	ts.stop(t)
	if got := storedLines(t, cfg.DataDir); len(got) != 4 {
		t.Fatalf("stored %d lines, want 4: %q", len(got), got)
	}
}

func TestDedupInFlight(t *testing.T) {
	cfg := testConfig(t)
	release := make(chan struct{})
	opts := Options{Config: cfg, storeHooks: storeHooks{sync: func(f *os.File) error {
		<-release // hold the first sync until every copy has arrived
		return f.Sync()
	}}}
	ts := startServer(t, opts)
	m := req(t, "000000042", "in flight")
	const copies = 8
	codes := make(chan int, copies)
	for range copies {
		go func() {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				codes <- -1
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(m)
			line, err := bufio.NewReader(c).ReadBytes('\n')
			if err != nil {
				codes <- -2
				return
			}
			r, _ := protocol.DefaultDialect().ParseReply(line)
			codes <- r.Code
		}()
	}
	// One copy is being stored (its sync held); the others wait for it.
	e2e.WaitFor(t, 5*time.Second, "copies waiting", func() bool {
		ts.srv.dedup.mu.Lock()
		defer ts.srv.dedup.mu.Unlock()
		return len(ts.srv.dedup.inflight) == 1 && ts.srv.dedup.waiting == copies-1
	})
	close(release)
	for range copies {
		if code := <-codes; code != 200 {
			t.Fatalf("code %d", code)
		}
	}
	ts.stop(t)
	if got := storedLines(t, cfg.DataDir); len(got) != 1 {
		t.Fatalf("stored %d copies", len(got))
	}
}

// TestShutdown: draining closes idle connections at once, answers a
// message being read, then Shutdown returns; at the deadline it closes
// what is left.
func TestShutdown(t *testing.T) {
	t.Run("drain", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.IdleTimeout = time.Minute
		cfg.ReadTimeout = time.Minute
		ts := startServer(t, Options{Config: cfg})
		idle := dial(t, ts.addr)
		busy := dial(t, ts.addr)
		m := req(t, "000000001", "half")
		busy.Write(m[:20])
		e2e.WaitFor(t, 5*time.Second, "a connection reading a message", func() bool {
			ts.srv.mu.Lock()
			defer ts.srv.mu.Unlock()
			n := 0
			for c := range ts.srv.conns {
				c.mu.Lock()
				if !c.idle {
					n++
				}
				c.mu.Unlock()
			}
			return n == 1 && len(ts.srv.conns) == 2
		})
		done := make(chan error, 1)
		go func() { done <- ts.srv.Shutdown(context.Background()) }()
		if r := readReplies(t, idle); len(r) != 0 {
			t.Fatalf("idle got %v", r)
		}
		if ts.srv.Ready() == nil {
			t.Fatal("ready while draining")
		}
		if c, err := net.Dial("tcp", ts.addr); err == nil {
			c.Close()
			t.Fatal("still accepting while draining")
		}
		busy.Write(m[20:])
		if r := readReplies(t, busy); len(r) != 1 || r[0].Code != 200 {
			t.Fatalf("busy got %v", r)
		}
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		ts.stop(t)
		if got := storedLines(t, cfg.DataDir); len(got) != 1 {
			t.Fatalf("stored %q", got)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.ReadTimeout = time.Minute
		ts := startServer(t, Options{Config: cfg})
		busy := dial(t, ts.addr)
		busy.Write([]byte("0078|REQ|"))
		e2e.WaitFor(t, 5*time.Second, "connection", func() bool { return metric(t, ts.reg, "spoolgate_receiver_connections") == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		ts.shutErr = ts.srv.Shutdown(ctx)
		if !errors.Is(ts.shutErr, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v", ts.shutErr)
		}
		if r := readReplies(t, busy); len(r) != 0 {
			t.Fatalf("got %v", r)
		}
	})
}

// TestStoreUnavailable: a full disk or a read-only data dir answers 500,
// never 200, stores nothing partial, and the server is ready again (with
// no message sent: the store probes) and stores when space or write access
// returns.
func TestStoreUnavailable(t *testing.T) {
	t.Run("disk full", func(t *testing.T) {
		dir := mountTmpfs(t, "size=256k")
		filler := filepath.Join(dir, "filler")
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := f.Write(make([]byte, 4096)); err != nil {
				break
			}
		}
		f.Close()
		cfg := testConfig(t)
		cfg.DataDir = dir
		ts := startServer(t, Options{Config: cfg})
		for i := range 3 {
			if code := send(t, ts.addr, req(t, fmt.Sprintf("%09d", i), strings.Repeat("p", 1000))); code != 500 {
				t.Fatalf("full disk: code %d", code)
			}
		}
		if err := ts.srv.Ready(); err == nil {
			t.Fatal("ready with a full disk")
		} else {
			t.Logf("readyz: %v", err)
		}
		os.Remove(filler)
		// Ready again with no traffic: the store probes while failing.
		e2e.WaitFor(t, 10*time.Second, "ready after freeing space, no message sent", func() bool { return ts.srv.Ready() == nil })
		ok := req(t, "000000099", "space again")
		if code := send(t, ts.addr, ok); code != 200 {
			t.Fatalf("after freeing space: %d", code)
		}
		ts.stop(t)
		if got := storedLines(t, dir); !slices.Equal(got, []string{string(ok)}) {
			t.Fatalf("stored %q", got)
		}
		if n := metric(t, ts.reg, "spoolgate_receiver_messages_total", "code=500"); n != 3 {
			t.Fatalf("500s %v", n)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		cfg := testConfig(t)
		ts := startServer(t, Options{Config: cfg})
		// A read-only file system mounted over the data dir: the store's
		// next open by path hits it (the lock stays on the real dir).
		if err := mount(t, cfg.DataDir, "ro,size=64k"); err != nil {
			t.Skipf("cannot mount a read-only tmpfs (needs root): %v", err)
		}
		mounted := true
		t.Cleanup(func() {
			if mounted {
				unmount(t, cfg.DataDir)
			}
		})
		if code := send(t, ts.addr, req(t, "000000001", "read-only")); code != 500 {
			t.Fatalf("read-only: code %d", code)
		}
		if err := ts.srv.Ready(); err == nil {
			t.Fatal("ready with a read-only data dir")
		} else {
			t.Logf("readyz: %v", err)
		}
		unmount(t, cfg.DataDir)
		mounted = false
		e2e.WaitFor(t, 10*time.Second, "ready when writable again, no message sent", func() bool { return ts.srv.Ready() == nil })
		if code := send(t, ts.addr, req(t, "000000002", "writable")); code != 200 {
			t.Fatalf("writable again: code %d", code)
		}
		ts.stop(t)
		if got := storedLines(t, cfg.DataDir); len(got) != 1 || !strings.Contains(got[0], "writable") {
			t.Fatalf("stored %q", got)
		}
	})
}

// mountTmpfs mounts a tmpfs with opts on a new temp dir, unmounted at the
// end of the test (after the server stops), or skips the test.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mount(t, dir, opts); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { unmount(t, dir) })
	return dir
}

// TestHandleAllocs: validating, storing, counting and answering a message
// allocates nothing, alone or in a pipelined batch (fsync off so the disk
// does not dominate).
func TestHandleAllocs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		batch  int
	}{{"dedup off", 0, 1}, {"dedup on", 10 * time.Minute, 1}, {"dedup on, batches of 16", 10 * time.Minute, 16}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Fsync = FsyncNever
			cfg.DedupWindow = tc.window
			srv, err := New(Options{Config: cfg, SummaryEvery: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			lines := make([][]byte, tc.batch)
			for j := range lines {
				l := req(t, "000000000", "allocs")
				lines[j] = l[:len(l)-1]
			}
			live := srv.cfg.Load()
			p := &pipe{s: srv}
			want := []byte(fmt.Sprintf("|%03d\n", protocol.CodeOK))
			i := 0
			allocs := testing.AllocsPerRun(2000/tc.batch, func() {
				p.reset(live, false)
				for _, line := range lines {
					i++
					pno := line[9:18]
					for j, k := 8, i; j >= 0; j, k = j-1, k/10 {
						pno[j] = byte('0' + k%10) // a new key each time
					}
					p.add(line, nil)
				}
				p.commit()
				out := p.replies(time.Now())
				if !bytes.HasSuffix(out, want) {
					t.Fatalf("replies %q", out)
				}
			}) / float64(tc.batch)
			t.Logf("%.2f allocations per message", allocs)
			if allocs > 0.5 {
				t.Fatalf("%.2f allocations per message", allocs)
			}
		})
	}
}

// TestSyncFailureAnswers500: when the store cannot make a line durable the
// reply is 500, counted, nothing of it stays stored, /readyz-style Ready
// fails, and the next message after recovery is stored with a 200. Needs no
// root (the sync is injected; TestStoreUnavailable covers real full and
// read-only file systems).
func TestSyncFailureAnswers500(t *testing.T) {
	var fail atomic.Bool
	cfg := testConfig(t)
	ts := startServer(t, Options{Config: cfg, storeHooks: storeHooks{sync: func(f *os.File) error {
		if fail.Load() {
			return errors.New("injected: disk gone")
		}
		return f.Sync()
	}}})
	fail.Store(true)
	if code := send(t, ts.addr, req(t, "000000001", "lost")); code != 500 {
		t.Fatalf("code %d, want 500", code)
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_messages_total", "code=500"); n != 1 {
		t.Fatalf("500s counted %v", n)
	}
	if ts.srv.Ready() == nil {
		t.Fatal("Ready while the store fails")
	}
	fail.Store(false)
	if code := send(t, ts.addr, req(t, "000000002", "kept")); code != 200 {
		t.Fatalf("after recovery: code %d", code)
	}
	ts.stop(t)
	got := storedLines(t, cfg.DataDir)
	if len(got) != 1 || !strings.Contains(got[0], "|000000002|") {
		t.Fatalf("stored %q, want only the second message", got)
	}
}

// TestGracefulCloseAfterOversized: after the 400 to a message longer than
// max_message_bytes the receiver half-closes and drains what the peer still
// sends, so the peer reads its 400 and then EOF, never a reset, even with
// unread input left on the server side; and the drain is bounded, so a peer
// that never stops writing does not hold the connection.
func TestGracefulCloseAfterOversized(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxMessageBytes = 128
	ts := startServer(t, Options{Config: cfg})
	c := dial(t, ts.addr)
	// Far more than the server's read buffer, in one write: unread input
	// stays on the server's socket when it gives up on the message.
	big := append(bytes.Repeat([]byte("x"), 32<<10), '\n')
	if _, err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	// Keep writing, as a peer that has not read its reply yet would.
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		chunk := bytes.Repeat([]byte("y"), 4096)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Write(chunk); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
		}
	}()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(c)
	close(stop)
	<-writerDone
	if err != nil {
		t.Fatalf("read after the 400: %v (want the reply, then EOF)", err)
	}
	r, perr := protocol.DefaultDialect().ParseReply(bytes.TrimSuffix(all, []byte("\n")))
	if perr != nil || r.Code != 400 {
		t.Fatalf("got %q (%v), want one 400 reply", all, perr)
	}
	// The server's discard is bounded by lingerTime and lingerBytes.
	if took := time.Since(start); took > lingerTime+5*time.Second {
		t.Fatalf("connection held %v by a peer that keeps writing", took)
	}
	e2e.WaitFor(t, 5*time.Second, "the connection freed", func() bool {
		return metric(t, ts.reg, "spoolgate_receiver_connections") == 0
	})
}

// TestOpenFileRemovedMidStream: a cleanup removes the open request file
// (the .part in rename mode) while a client streams on one connection:
// every message answered 200 after the removal is in a file on disk.
func TestOpenFileRemovedMidStream(t *testing.T) {
	for _, publish := range []conf.Publish{PublishRename, PublishAppend} {
		t.Run(string(publish), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Publish = publish
			cfg.DedupWindow = 0
			ts := startServer(t, Options{Config: cfg})
			c := dial(t, ts.addr)
			br := bufio.NewReader(c)
			for i := range 10 {
				if r := roundTrip(t, c, br, req(t, fmt.Sprintf("%09d", i), "before")); r.Code != 200 {
					t.Fatalf("before the removal: %d", r.Code)
				}
			}
			var removed []string
			for name := range dirFiles(t, cfg.DataDir) {
				if err := os.Remove(filepath.Join(cfg.DataDir, name)); err != nil {
					t.Fatal(err)
				}
				removed = append(removed, name)
			}
			if len(removed) == 0 {
				t.Fatal("no request file to remove")
			}
			var acked []string
			for i := range 50 {
				m := req(t, fmt.Sprintf("%09d", 100+i), "after")
				if r := roundTrip(t, c, br, m); r.Code == 200 {
					acked = append(acked, string(m))
				}
			}
			c.Close()
			ts.stop(t)
			on := storedLines(t, cfg.DataDir)
			missing := 0
			for _, m := range acked {
				if _, ok := slices.BinarySearch(on, m); !ok {
					missing++
				}
			}
			if missing > 0 || len(acked) != 50 {
				t.Fatalf("removed %v; %d of 50 answered 200, %d of them in no file", removed, len(acked), missing)
			}
		})
	}
}

// TestOversizedWithoutLF: a message that passes max_message_bytes without
// a LF gets its 400 at once, while the peer waits (read_timeout is far
// away), at small and default limits and sizes around the 4 KiB read
// buffer; the reply echoes the process_no when field 3 is 9 digits, and
// the close after it is graceful (the reply, then EOF).
func TestOversizedWithoutLF(t *testing.T) {
	head := "0078|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|"
	for _, tc := range []struct {
		max, n int
		head   string
		pno    string
	}{
		{200, 200, head, "000000123"},
		{200, 201, head, "000000123"},
		{200, 4096, head, "000000123"},
		{1000, 1500, head, "000000123"},
		{4096, 4096, head, "000000123"},
		{5000, 5001, head, "000000123"},
		{9999, 9999, head, "000000123"},
		{9999, 10000, head, "000000123"},
		{9999, 12287, head, "000000123"},
		{9999, 10000, "0078|REQ|12345|", "000000000"},
		{200, 300, "0078|REQ|0000001234|", "000000000"},
		// Too long at its LF, with no field separator: the next message's
		// process_no is not echoed.
		{200, 300, "x", "000000000"},
	} {
		t.Run(fmt.Sprintf("max=%d/n=%d/pno=%s", tc.max, tc.n, tc.pno), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxMessageBytes = tc.max
			cfg.ReadTimeout = 60 * time.Second
			ts := startServer(t, Options{Config: cfg})
			c := dial(t, ts.addr)
			msg := []byte(strings.Repeat("x", tc.n))
			copy(msg, tc.head)
			if tc.head == "x" {
				msg = slices.Concat(msg[:250], []byte("\n"), req(t, "000000777", "next"))
			}
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r := readReplies(t, c) // 10 s deadline: well before read_timeout
			if len(r) != 1 || r[0].Code != 400 || r[0].ProcessNo != tc.pno {
				t.Fatalf("replies %+v after %v, want one 400 echoing %s", r, time.Since(start), tc.pno)
			}
			if n := metric(t, ts.reg, "spoolgate_receiver_rejects_total", "reason=message: too long"); n != 1 {
				t.Fatalf("too-long rejects %v", n)
			}
		})
	}
}

// TestRejectLogSampled: at info a reject reason is logged once a minute
// with a sample message and the count the line stands for, not once per
// message; other reasons get their own line.
func TestRejectLogSampled(t *testing.T) {
	lg := &e2e.Log{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), lg), &slog.HandlerOptions{Level: slog.LevelInfo}))
	clk := newFakeClock(t0)
	cfg := testConfig(t)
	cfg.MaxMessageBytes = 200
	ts := startServer(t, Options{Config: cfg, Logger: log, Clock: clk.now})
	badType := frame("XXX|000000009|20261121093000|ORG01|SV01|CUST-000123|payload|")
	tooLong := []byte("0300|REQ|000000010|" + strings.Repeat("z", 300) + "\n")
	sendAll := func(m []byte, n int) {
		for range n {
			if code := send(t, ts.addr, m); code != 400 {
				t.Fatalf("code %d, want 400", code)
			}
		}
	}
	sendAll([]byte("bad|count\n"), 5)
	sendAll(badType, 3)
	sendAll(tooLong, 2)
	const line = "rejected: answered 400"
	if n := lg.Count(line); n != 3 {
		t.Fatalf("%d reject lines for 10 rejects of 3 reasons, want 3:\n%s", n, lg)
	}
	for _, want := range []string{
		`reason="message: field count" count=1`, `sample=bad|count`,
		`reason="message: too long" count=1`, `sample=0300|REQ|000000010|zzz`,
		"sample=" + string(badType[:20]),
	} {
		if !lg.Contains(want) {
			t.Errorf("log lacks %q", want)
		}
	}
	clk.set(t0.Add(61 * time.Second))
	sendAll([]byte("bad|count\n"), 1)
	if !lg.Contains(`reason="message: field count" count=5`) || lg.Count(line) != 4 {
		t.Fatalf("after a minute: want one more line standing for 5 rejects:\n%s", lg)
	}
}

// TestProbeFollowsNoSymlink: the probe that runs while the store fails
// removes whatever stands under its name and creates its file with O_EXCL,
// so a symlink planted there neither gets its target overwritten nor makes
// the store report a recovery of a disk the probe did not write to.
func TestProbeFollowsNoSymlink(t *testing.T) {
	var fail atomic.Bool
	cfg := testConfig(t)
	victim := filepath.Join(t.TempDir(), "victim.txt")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(cfg.DataDir, ProbeName)); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Options{Config: cfg, storeHooks: storeHooks{sync: func(f *os.File) error {
		if fail.Load() {
			return errors.New("injected: disk gone")
		}
		return f.Sync()
	}}})
	fail.Store(true)
	if code := send(t, ts.addr, req(t, "000000001", "lost")); code != 500 {
		t.Fatalf("code %d, want 500", code)
	}
	fail.Store(false)
	e2e.WaitFor(t, 20*time.Second, "ready again through the probe", func() bool { return ts.srv.Ready() == nil })
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
		t.Fatalf("the symlink's target holds %d bytes starting %q (%v), want it untouched", len(b), b[:min(len(b), 16)], err)
	}
	if _, err := os.Lstat(filepath.Join(cfg.DataDir, ProbeName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("probe name left in the data dir: %v", err)
	}
	ts.stop(t)
}
