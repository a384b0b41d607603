package receiver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// quietLogger logs at info: a burst at debug would log a line a message.
func quietLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// burst writes msgs in one write on a new connection, half-closes it and
// returns the replies (read while the burst is written).
func burst(t *testing.T, addr string, msgs [][]byte) []protocol.Reply {
	t.Helper()
	c := dial(t, addr)
	all := bytes.Join(msgs, nil)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(all)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	replies := readReplies(t, c)
	if err := <-werr; err != nil {
		t.Fatalf("write the burst: %v", err)
	}
	return replies
}

// pnoOf returns the process_no of a request built by req.
func pnoOf(msg []byte) string { return string(bytes.Split(msg, []byte("|"))[2]) }

// TestPipelineBurst: 1,000 messages in one write get 1,000 replies in
// order; a 400 and duplicates in the middle (one of a message stored
// earlier in the burst, two copies in a row) are answered in their place;
// every valid message is stored once; and the whole burst takes far fewer
// fsyncs than messages (spoolgate_receiver_sync_batch). Before the batch
// commit it took one fsync a message.
func TestPipelineBurst(t *testing.T) {
	cfg := testConfig(t)
	ts := startServer(t, Options{Config: cfg, Logger: quietLogger(t)})
	const n = 1000
	msgs := make([][]byte, n)
	want := make([]int, n)
	for i := range msgs {
		msgs[i], want[i] = req(t, fmt.Sprintf("%09d", 100000+i), "burst"), 200
	}
	msgs[400] = frame("REQ|000100400|20261321093000|ORG01|SV01|K|bad month|") // 400 in place
	want[400] = 400
	msgs[600] = msgs[100] // stored earlier in the burst: 200, not stored again
	msgs[701] = msgs[700] // the same key twice in a row: stored once, both 200
	stored := map[string]bool{}
	for i, m := range msgs {
		if want[i] == 200 {
			stored[string(m)] = true
		}
	}
	syncsBefore := metric(t, ts.reg, "spoolgate_receiver_sync_batch")
	replies := burst(t, ts.addr, msgs)
	if len(replies) != n {
		t.Fatalf("%d replies to %d messages", len(replies), n)
	}
	for i, r := range replies {
		if r.Code != want[i] || r.ProcessNo != pnoOf(msgs[i]) {
			t.Fatalf("reply %d: %d for %s, want %d for %s", i, r.Code, r.ProcessNo, want[i], pnoOf(msgs[i]))
		}
	}
	syncs := metric(t, ts.reg, "spoolgate_receiver_sync_batch") - syncsBefore
	t.Logf("%d messages: %.0f fsyncs", n, syncs)
	if syncs < 1 || syncs > n/10 {
		t.Fatalf("%.0f fsyncs for a burst of %d", syncs, n)
	}
	if d := metric(t, ts.reg, "spoolgate_receiver_duplicates_total"); d != 2 {
		t.Fatalf("duplicates %v, want 2", d)
	}
	ts.stop(t)
	var wantLines []string
	for l := range stored {
		wantLines = append(wantLines, l)
	}
	sort.Strings(wantLines)
	if got := storedLines(t, cfg.DataDir); !slices.Equal(got, wantLines) {
		t.Fatalf("stored %d lines, want the %d valid distinct ones", len(got), len(wantLines))
	}
}

// TestPipelineShortLines: a burst of many short invalid lines (more than a
// batch holds, maxPipeline) is answered line by line, in order.
func TestPipelineShortLines(t *testing.T) {
	ts := startServer(t, Options{Logger: quietLogger(t)})
	const n = 3 * maxPipeline
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = []byte("x\n")
	}
	msgs[n/2] = req(t, "000000777", "among short lines")
	replies := burst(t, ts.addr, msgs)
	if len(replies) != n {
		t.Fatalf("%d replies to %d messages", len(replies), n)
	}
	for i, r := range replies {
		if want := 400; i == n/2 && (r.Code != 200 || r.ProcessNo != "000000777") || i != n/2 && r.Code != want {
			t.Fatalf("reply %d: %+v", i, r)
		}
	}
}

// TestPipelineSyncFailure: when a sync fails during a pipelined burst,
// every line that sync covered is answered 500 (they are several: the
// burst is committed in batches) and none of them 200; the lines of the
// other batches are answered 200, and exactly those are stored.
func TestPipelineSyncFailure(t *testing.T) {
	cfg := testConfig(t)
	const n = 400
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = req(t, fmt.Sprintf("%09d", 200000+i), "sync fails")
	}
	size := int64(len(msgs[0]))
	var mu sync.Mutex
	var last int64 // file size at the last good sync
	failed := 0    // lines in the failed sync
	hook := func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		delta := fi.Size() - last
		if delta < 0 { // a new minute's file
			delta = fi.Size()
		}
		if failed == 0 && last > 0 && delta >= 2*size {
			failed = int(delta / size)
			return errors.New("injected: sync failed")
		}
		if err := f.Sync(); err != nil {
			return err
		}
		last = fi.Size()
		return nil
	}
	ts := startServer(t, Options{Config: cfg, Logger: quietLogger(t), storeHooks: storeHooks{sync: hook}})
	replies := burst(t, ts.addr, msgs)
	if len(replies) != n {
		t.Fatalf("%d replies to %d messages", len(replies), n)
	}
	var ok []string
	first, count := -1, 0
	for i, r := range replies {
		if r.ProcessNo != pnoOf(msgs[i]) {
			t.Fatalf("reply %d for %s, want %s", i, r.ProcessNo, pnoOf(msgs[i]))
		}
		switch r.Code {
		case 200:
			ok = append(ok, string(msgs[i]))
		case 500:
			if first < 0 {
				first = i
			} else if i != first+count {
				t.Fatalf("500s at %d and %d, not one batch", first, i)
			}
			count++
		default:
			t.Fatalf("reply %d: code %d", i, r.Code)
		}
	}
	mu.Lock()
	lines := failed
	mu.Unlock()
	t.Logf("the failed sync covered %d lines; 500s %d from message %d", lines, count, first)
	if count != lines || count < 2 {
		t.Fatalf("%d answered 500, the failed sync covered %d lines", count, lines)
	}
	if got := metric(t, ts.reg, "spoolgate_receiver_messages_total", "code=500"); got != float64(count) {
		t.Fatalf("500s counted %v", got)
	}
	ts.stop(t)
	sort.Strings(ok)
	if got := storedLines(t, cfg.DataDir); !slices.Equal(got, ok) {
		t.Fatalf("stored %d lines, want the %d answered 200", len(got), len(ok))
	}
}

// TestPipelineDedupAcrossConns: two connections pipeline the same keys in
// opposite orders at once. Each key is stored once and every copy is
// answered 200 (TestPipelineDedupNoDeadlock orders the case where both
// batches hold a key the other wants).
func TestPipelineDedupAcrossConns(t *testing.T) {
	cfg := testConfig(t)
	ts := startServer(t, Options{Config: cfg, Logger: quietLogger(t)})
	const n = 300
	fwd := make([][]byte, n)
	for i := range fwd {
		fwd[i] = req(t, fmt.Sprintf("%09d", 300000+i), "both ways")
	}
	rev := slices.Clone(fwd)
	slices.Reverse(rev)
	var wg sync.WaitGroup
	res := make([][]protocol.Reply, 2)
	for j, msgs := range [][][]byte{fwd, rev} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			go func() {
				c.Write(bytes.Join(msgs, nil))
				c.(*net.TCPConn).CloseWrite()
			}()
			res[j] = readRepliesNoFatal(c)
		}()
	}
	wg.Wait()
	for j, msgs := range [][][]byte{fwd, rev} {
		if len(res[j]) != n {
			t.Fatalf("connection %d: %d replies to %d", j, len(res[j]), n)
		}
		for i, r := range res[j] {
			if r.Code != 200 || r.ProcessNo != pnoOf(msgs[i]) {
				t.Fatalf("connection %d reply %d: %+v", j, i, r)
			}
		}
	}
	if d := metric(t, ts.reg, "spoolgate_receiver_duplicates_total"); d != n {
		t.Fatalf("duplicates %v, want %d", d, n)
	}
	ts.stop(t)
	want := make([]string, n)
	for i, m := range fwd {
		want[i] = string(m)
	}
	sort.Strings(want)
	if got := storedLines(t, cfg.DataDir); !slices.Equal(got, want) {
		t.Fatalf("stored %d lines, want %d", len(got), n)
	}
}

// readRepliesNoFatal reads replies until EOF, an error or 10 s; for a
// goroutine other than the test's.
func readRepliesNoFatal(c net.Conn) []protocol.Reply {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var out []protocol.Reply
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return out
		}
		r, err := protocol.DefaultDialect().ParseReply(line)
		if err != nil {
			return out
		}
		out = append(out, r)
	}
}

// TestPipelineDedupNoDeadlock: batch A holds key 1 in flight, batch B key 2;
// then B meets key 1 and A key 2. B commits its key 2 before it waits for
// key 1, so A finds key 2 stored (a duplicate) instead of waiting for B
// while B waits for A. Before that commit the two waited for each other
// for ever.
func TestPipelineDedupNoDeadlock(t *testing.T) {
	cfg := testConfig(t)
	ts := startServer(t, Options{Config: cfg, Logger: quietLogger(t)})
	srv := ts.srv
	k1, k2 := req(t, "000000001", "key 1"), req(t, "000000002", "key 2")
	l1, l2 := k1[:len(k1)-1], k2[:len(k2)-1]
	live := srv.cfg.Load()
	a, b := &pipe{s: srv}, &pipe{s: srv}
	a.reset(live, false)
	b.reset(live, false)
	a.add(l1, nil)
	b.add(l2, nil)
	bDone := make(chan struct{})
	go func() { defer close(bDone); b.add(l1, nil); b.commit() }()
	e2e.WaitFor(t, 10*time.Second, "batch B waiting for key 1", func() bool {
		srv.dedup.mu.Lock()
		defer srv.dedup.mu.Unlock()
		return srv.dedup.waiting == 1
	})
	aDone := make(chan struct{})
	go func() { defer close(aDone); a.add(l2, nil); a.commit() }()
	select {
	case <-aDone:
	case <-time.After(10 * time.Second):
		t.Fatal("batch A waits for key 2, which batch B holds while it waits for key 1")
	}
	<-bDone
	now := time.Now()
	for name, p := range map[string]*pipe{"A": a, "B": b} {
		for i, r := range bytes.SplitAfter(p.replies(now), []byte("\n"))[:2] {
			if !bytes.HasSuffix(r, []byte("|200\n")) {
				t.Fatalf("batch %s reply %d: %q", name, i, r)
			}
		}
	}
	if d := metric(t, ts.reg, "spoolgate_receiver_duplicates_total"); d != 2 {
		t.Fatalf("duplicates %v, want 2", d)
	}
	ts.stop(t)
	want := []string{string(k1), string(k2)}
	if got := storedLines(t, cfg.DataDir); !slices.Equal(got, want) {
		t.Fatalf("stored %q", got)
	}
}
