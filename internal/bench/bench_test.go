package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"spoolgate/conf"
	"spoolgate/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunAgainstNull(t *testing.T) {
	ln := nullServer(t)
	for _, keep := range []bool{false, true} {
		r, err := Run(context.Background(), Options{Addr: ln.Addr().String(), Clients: 4, Count: 400, KeepAlive: keep, Payload: 100})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("keepalive=%v: %s", keep, r)
		if r.Messages != 400 || r.Codes["200"] != 400 || r.Errors != 0 || r.P50 <= 0 || r.Max < r.P99 {
			t.Fatalf("keepalive=%v: %+v", keep, r)
		}
		if !strings.Contains(r.String(), "200=400") {
			t.Fatalf("String() = %q", r.String())
		}
	}
	if _, err := Run(context.Background(), Options{Addr: ln.Addr().String()}); err == nil {
		t.Fatal("Run without clients accepted")
	}
}

func TestMessages(t *testing.T) {
	spec := protocol.DefaultRequestSpec()
	o := Options{Payload: 50, InvalidEvery: 3}
	g, err := newGenerator(o)
	if err != nil || !g.fast {
		t.Fatalf("default dialect: fast %v, %v", g != nil && g.fast, err)
	}
	for i := range 6 {
		m := g.append(nil, i, "20261121093000")
		_, err := spec.Parse(m[:len(m)-1])
		if invalid := (i+1)%3 == 0; (err != nil) != invalid {
			t.Fatalf("message %d %q: err %v, invalid %v", i, m, err, invalid)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	r, err := Run(context.Background(), Options{Addr: addr, Clients: 2, Count: 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 4 || r.FirstError == "" {
		t.Fatalf("%+v", r)
	}
}

func TestMakeSpool(t *testing.T) {
	dir := t.TempDir()
	if err := MakeSpool(dir, 5, 7); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 5 {
		t.Fatalf("%v %v", ents, err)
	}
	var prev time.Time
	for i, e := range ents {
		fi, _ := e.Info()
		if i > 0 && !fi.ModTime().After(prev) {
			t.Fatalf("%s mtime not after the previous", e.Name())
		}
		prev = fi.ModTime()
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if _, err := protocol.DefaultDialect().AppendResult(nil, bytes.TrimSuffix(b, []byte("\n"))); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
	}
}

func TestHoldIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { n, _ := HoldIdle(ctx, ln.Addr().String(), 10); done <- n }()
	for range 10 {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	cancel()
	if n := <-done; n != 10 {
		t.Fatalf("held %d", n)
	}
}

// TestTimeClaim: the time from the claim of a spool file to its end, as
// seen from the claim in .inflight; a file never claimed ends with ctx,
// one claimed before TimeClaim looked is an error.
func TestTimeClaim(t *testing.T) {
	spool := t.TempDir()
	claim := filepath.Join(spool, ".inflight", "big.txt")
	if err := os.MkdirAll(filepath.Dir(claim), 0o755); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan ClaimTiming)
	go func() {
		c, err := TimeClaim(context.Background(), spool, "big.txt", time.Millisecond, func() { close(ready) })
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	<-ready
	if err := os.WriteFile(claim, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	time.Sleep(500 * time.Millisecond) // what is measured: the claim is held this long
	if err := os.Remove(claim); err != nil {
		t.Fatal(err)
	}
	c := <-done
	t.Log(c)
	if held := time.Since(created); c.Took <= 0 || c.Took > held {
		t.Fatalf("took %s for a claim held %s", c.Took, held)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := TimeClaim(ctx, spool, "never.txt", time.Millisecond, nil); err != context.DeadlineExceeded {
		t.Fatalf("a file never claimed: %v", err)
	}
	if err := os.WriteFile(claim, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := TimeClaim(context.Background(), spool, "big.txt", time.Millisecond, nil); !errors.Is(err, ErrClaimedAlready) {
		t.Fatalf("a file claimed before the start: %v", err)
	}
}

// TestProbe: the probe syncs in the directory, leaves nothing behind, and
// reports sane figures; a directory it cannot write is an error.
func TestProbe(t *testing.T) {
	dir := t.TempDir()
	r, err := Probe(context.Background(), dir, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Syncs < 1 || r.SyncsPerSecond <= 0 || r.SyncP50 <= 0 || r.SyncMax < r.SyncP99 || r.SyncP99 < r.SyncP50 ||
		r.PauseSeconds <= 0 || r.PauseShare < 0 || r.PauseShare > 1 {
		t.Fatalf("%+v", r)
	}
	if !strings.Contains(r.String(), "fsync: ") || !strings.Contains(r.String(), "pauses: ") {
		t.Fatalf("String() = %q", r.String())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	if _, err := Probe(context.Background(), filepath.Join(dir, "missing"), time.Millisecond); err == nil {
		t.Fatal("probe of a missing directory worked")
	}
}

// TestPipelineAgainstNull: with Pipeline, every message of every window
// gets its reply, kept alive or with a connection per window.
func TestPipelineAgainstNull(t *testing.T) {
	ln := nullServer(t)
	for _, keep := range []bool{true, false} {
		r, err := Run(context.Background(), Options{Addr: ln.Addr().String(), Clients: 3, Count: 1000, KeepAlive: keep, Pipeline: 64})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("keepalive=%v: %s", keep, r)
		if r.Messages != 1000 || r.Codes["200"] != 1000 || r.Errors != 0 || r.P50 <= 0 || r.Max < r.P99 {
			t.Fatalf("keepalive=%v: %+v", keep, r)
		}
	}
	if _, err := Run(context.Background(), Options{Addr: ln.Addr().String(), Clients: 1, Count: 1, Pipeline: -1}); err == nil {
		t.Fatal("negative pipeline accepted")
	}
}

// TestAppendMessage: the pipelined client's cheap builder makes the
// messages the one-at-a-time client used to build with fmt.
func TestAppendMessage(t *testing.T) {
	spec := protocol.DefaultRequestSpec()
	o := Options{Payload: 17, Base: 999_999_990, InvalidEvery: 4}
	stamp := "20261121093000"
	for i := range 20 {
		got := appendMessage(nil, o, i, stamp)
		pno := fmt.Sprintf("%09d", (o.Base+i)%1_000_000_000)
		invalid := (i+1)%4 == 0
		if invalid {
			pno = pno[:8] + "x"
		}
		body := "REQ|" + pno + "|" + stamp + "|BENCH|SV01|K-" + pno + "|" + strings.Repeat("p", o.Payload) + "|"
		want := fmt.Appendf(nil, "%04d|%s\n", len(body)+6, body)
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d: %q, want %q", i, got, want)
		}
		if _, err := spec.Parse(got[:len(got)-1]); (err != nil) != invalid {
			t.Fatalf("message %d %q: %v", i, got, err)
		}
	}
}

// nullServer serves ServeNull on a loopback listener until the test ends,
// in the dialect d (none: the default).
func nullServer(t *testing.T, d ...*protocol.Dialect) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	var dialect *protocol.Dialect
	if len(d) > 0 {
		dialect = d[0]
	}
	go func() { done <- ServeNull(ctx, ln, dialect) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln
}

// TestDialects: in each dialect of conf/testdata/good_dialect_*, the
// generator's messages are requests of the dialect (each Nth invalid, its
// process_no distinct), and a run against the null reference speaking it
// reads an ok reply to every one; the default dialect's config takes the
// fast path.
func TestDialects(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "conf", "testdata", "good_dialect_*.properties"))
	if err != nil || len(paths) < 3 {
		t.Fatalf("%d dialects: %v", len(paths), err)
	}
	for _, p := range append(paths, filepath.Join("..", "..", "conf", "local.properties")) {
		t.Run(filepath.Base(p), func(t *testing.T) {
			cfg, err := conf.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			d := cfg.Protocol.Dialect
			o := Options{Payload: 20, InvalidEvery: 4, Base: 123, Dialect: d}
			g, err := newGenerator(o)
			if err != nil {
				t.Fatal(err)
			}
			if want := d.String() == protocol.DefaultDialect().String(); g.fast != want {
				t.Fatalf("fast path %v, want %v", g.fast, want)
			}
			seen := map[string]bool{}
			for i := range 8 {
				m := g.append([]byte("x"), i, "20261121093000")[1:]
				msg, err := d.Parse(d.Unframe(m))
				if invalid := (i+1)%4 == 0; (err != nil) != invalid {
					t.Fatalf("message %d %q: %v, want invalid %v", i, m, err, invalid)
				}
				if err == nil {
					if pno := string(msg.Field("process_no")); pno == "" || seen[pno] {
						t.Fatalf("message %d: process_no %q again", i, pno)
					} else {
						seen[pno] = true
					}
				}
			}
			ln := nullServer(t, d)
			r, err := Run(context.Background(), Options{Addr: ln.Addr().String(), Clients: 2, Count: 300, KeepAlive: true, Pipeline: 50, Dialect: d})
			if err != nil || r.Codes["200"] != 300 || r.Errors != 0 {
				t.Fatalf("%+v %v", r, err)
			}
		})
	}
}
