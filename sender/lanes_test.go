package sender

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// lines returns the spool lines from to to (process_nos), each with LF.
func lines(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		b.WriteString(body(i) + "\n")
	}
	return b.String()
}

// TestLanesUseEveryWorker (issue 24): at the defaults (window 1,
// line_order parallel) one big file keeps every worker busy: with a remote
// that takes 20 ms per message (a link's round trip) and answers one
// message at a time per connection, its 120 lines go out over 4
// connections at once, never more (the remote's most messages at once,
// and spoolgate_sender_inflight, sampled), each line stored once.
func TestLanesUseEveryWorker(t *testing.T) {
	const n = 120
	r := startRemote(t, func(r *remote) { r.delay = 20 * time.Millisecond })
	c := testConf(t, r.addr())
	s, _ := runSender(t, c, nil)
	var most atomic.Int64
	stop := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond): // sampling interval, not synchronisation
			}
			if v := int64(value(s.m.inflight)); v > most.Load() {
				most.Store(v)
			}
		}
	})
	start := time.Now()
	drop(t, c.SpoolDir, "big.txt", lines(0, n-1), time.Time{})
	e2e.WaitFor(t, 20*time.Second, "the file delivered", func() bool { return spoolEmpty(t, c.SpoolDir) })
	took := time.Since(start)
	close(stop)
	sampling.Wait()
	if dups := e2e.StoredOnce(t, r.Delivered(), n); dups != 0 {
		t.Errorf("%d lines stored twice", dups)
	}
	open, busy := r.Max()
	t.Logf("%d lines in %s; at most %d connections open, %d messages at once, spoolgate_sender_inflight at most %d", n, took.Round(time.Millisecond), open, busy, most.Load())
	if busy != c.Workers {
		t.Errorf("at most %d messages in flight at once, want %d (sender.workers)", busy, c.Workers)
	}
	if m := most.Load(); m > int64(c.Workers) {
		t.Errorf("spoolgate_sender_inflight reached %d, more than sender.workers %d", m, c.Workers)
	}
}

// TestLanesOldestFirst: a file with lines left takes the free worker slots
// before a newer file starts: the newer file's line is read by the remote
// only after every line of the older one was handed out (all but the
// workers-1 still in flight read). With line_order strict the
// newer file starts beside it at once (the older takes one slot).
func TestLanesOldestFirst(t *testing.T) {
	const n = 60
	for _, order := range []conf.LineOrder{conf.LineOrderParallel, conf.LineOrderStrict} {
		t.Run(string(order), func(t *testing.T) {
			r := startRemote(t, func(r *remote) { r.delay = 10 * time.Millisecond })
			c := testConf(t, r.addr())
			c.LineOrder = order
			runSender(t, c, nil)
			drop(t, c.SpoolDir, "old.txt", lines(0, n-1), time.Now().Add(-time.Minute))
			e2e.WaitFor(t, 20*time.Second, "the old file under way", func() bool { return len(r.Read()) >= 4 })
			drop(t, c.SpoolDir, "new.txt", body(1000)+"\n", time.Time{})
			e2e.WaitFor(t, 20*time.Second, "both delivered", func() bool { return spoolEmpty(t, c.SpoolDir) })
			at := slices.IndexFunc(r.Read(), func(m string) bool { return processNo(m) == "000001000" })
			t.Logf("the new file's line read as message %d of %d", at+1, n+1)
			// Once the older file has handed out its last line, a lane
			// without a line gives its slot to the newer file while up to
			// workers-1 of the older file's lines are still on their way.
			if order == conf.LineOrderParallel && at < n-(c.Workers-1) {
				t.Errorf("the new file's line read as message %d, before %d lines of the older file's %d", at+1, n-(c.Workers-1), n)
			}
			if order == conf.LineOrderStrict && at >= n/2 {
				t.Errorf("strict: the new file's line read as message %d, want it to start beside the older file", at+1)
			}
		})
	}
}

// TestLanesRejectedOutOfOrder: a 400 to a line whose neighbours were
// delivered on other lanes saves that line alone (.line-<n>) and the file
// goes on; a line before it that is slow to answer does not change that.
func TestLanesRejectedOutOfOrder(t *testing.T) {
	r := startRemote(t, func(r *remote) {
		r.answer = func(line []byte) int {
			switch processNo(string(line)) {
			case "000000003":
				time.Sleep(50 * time.Millisecond) // the remote's processing time: line 4 is answered first
			case "000000004":
				return protocol.CodeInvalid
			}
			return protocol.CodeOK
		}
	})
	c := testConf(t, r.addr())
	runSender(t, c, nil)
	drop(t, c.SpoolDir, "m.txt", lines(1, 8), time.Time{})
	e2e.WaitFor(t, 20*time.Second, "the file disposed of", func() bool { return spoolEmpty(t, c.SpoolDir) })
	if got, want := visible(t, c.FailedDir), []string{"m.txt.line-4", "m.txt.line-4.reason"}; !slices.Equal(got, want) {
		t.Fatalf("failed_dir = %v, want %v", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(c.FailedDir, "m.txt.line-4")); string(b) != body(4)+"\n" {
		t.Fatalf("m.txt.line-4 holds %q", b)
	}
	for i := 1; i <= 8; i++ {
		if got := sentCounts(r)[fmt.Sprintf("%09d", i)]; got != 1 {
			t.Errorf("line %d sent %d times, want once", i, got)
		}
	}
}

// TestLanesExhaustedKeepsDelivered: lines 2 and 5 of ten are answered 500
// until their retries run out while the lines around them are delivered on
// other lanes. Nothing delivered is failed, nothing undelivered is lost:
// every line is delivered or in exactly one file of failed_dir, whose name
// (.line-<n>, .lines-<n>-<m>) names only lines not delivered, and the
// file is disposed of.
func TestLanesExhaustedKeepsDelivered(t *testing.T) {
	r := startRemote(t, func(r *remote) {
		r.answer = func(line []byte) int {
			if p := processNo(string(line)); p == "000000002" || p == "000000005" {
				return protocol.CodeUnavailable
			}
			return protocol.CodeOK
		}
	})
	c := testConf(t, r.addr())
	c.Retries = 1
	s, _ := runSender(t, c, nil)
	drop(t, c.SpoolDir, "m.txt", lines(1, 10), time.Time{})
	e2e.WaitFor(t, 20*time.Second, "the file disposed of", func() bool { return spoolEmpty(t, c.SpoolDir) })
	delivered := map[int]bool{}
	for _, m := range r.Delivered() {
		n, _ := strconv.Atoi(processNo(m)) // decimal: Sscan reads a leading 0 as octal
		delivered[n] = true
	}
	inFailed := map[int]int{}
	for _, name := range visible(t, c.FailedDir) {
		if strings.HasSuffix(name, ".reason") {
			continue
		}
		var from, to int
		switch {
		case strings.HasPrefix(name, "m.txt.lines-"):
			fmt.Sscanf(strings.TrimPrefix(name, "m.txt.lines-"), "%d-%d", &from, &to)
		case strings.HasPrefix(name, "m.txt.line-"):
			fmt.Sscanf(strings.TrimPrefix(name, "m.txt.line-"), "%d", &from)
			to = from
		default:
			t.Fatalf("unexpected %s in failed_dir", name)
		}
		b, _ := os.ReadFile(filepath.Join(c.FailedDir, name))
		if want := lines(from, to); string(b) != want {
			t.Errorf("%s holds %q, want %q", name, b, want)
		}
		for i := from; i <= to; i++ {
			if delivered[i] {
				t.Errorf("%s names line %d, which was delivered", name, i)
			}
			inFailed[i]++
		}
	}
	for i := 1; i <= 10; i++ {
		if delivered[i] == (inFailed[i] == 1) || inFailed[i] > 1 {
			t.Errorf("line %d: delivered %v, in failed_dir %d times; want one of the two", i, delivered[i], inFailed[i])
		}
	}
	if !(inFailed[2] == 1 && inFailed[5] == 1) {
		t.Errorf("lines 2 and 5 not in failed_dir: %v", visible(t, c.FailedDir))
	}
	if got := value(s.m.failed) + value(s.m.delivered); got != 10 {
		t.Errorf("delivered + failed counted %v lines, want 10", got)
	}
}

// TestLanesDrain: a drain while line 3 is held by the remote and the
// lines after it are delivered on the other lanes stops the hand-outs,
// lets the lines in flight be answered, and puts the file back from its
// first line not done. Answered during the drain, line 3 is done, and the
// file goes back from the first line never handed out; cut off by the
// shutdown timeout, it goes back from line 3, the lines delivered after it
// with it (sent again): none is lost.
func TestLanesDrain(t *testing.T) {
	for _, answered := range []bool{true, false} {
		t.Run(fmt.Sprintf("answered=%v", answered), func(t *testing.T) {
			release := make(chan struct{})
			r := startRemote(t, func(r *remote) {
				r.answer = func(line []byte) int {
					if processNo(string(line)) == "000000003" {
						<-release
					}
					return protocol.CodeOK
				}
			})
			defer close(release)
			c := testConf(t, r.addr())
			c.Timeout = 20 * time.Second
			var log lockedLog
			_, stop := runSender(t, c, func(o *Options) {
				o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&log, t.Output()), &slog.HandlerOptions{Level: slog.LevelInfo}))
				o.ShutdownTimeout = time.Second
			})
			drop(t, c.SpoolDir, "m.txt", lines(1, 500), time.Time{})
			e2e.WaitFor(t, 20*time.Second, "line 3 held, lines after it delivered", func() bool { return len(r.Delivered()) >= 20 })
			stopped := make(chan error, 1)
			go func() { stopped <- stop() }()
			e2e.WaitFor(t, 20*time.Second, "draining", func() bool { return strings.Contains(log.String(), "sender draining") })
			if answered {
				release <- struct{}{}
			}
			if err := <-stopped; err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(c.SpoolDir, "m.txt"))
			if err != nil {
				t.Fatalf("m.txt not back in the spool: %v", err)
			}
			delivered := map[string]bool{}
			for _, m := range r.Delivered() {
				delivered[processNo(m)] = true
			}
			first := 1
			for delivered[fmt.Sprintf("%09d", first)] {
				first++
			}
			if want := lines(first, 500); string(b) != want {
				t.Fatalf("put back %d lines from %q, want lines %d to 500 (the first not done on)", strings.Count(string(b), "\n"),
					strings.SplitN(string(b), "\n", 2)[0], first)
			}
			if answered != (first > 3) {
				t.Errorf("put back from line %d", first)
			}
			t.Logf("%d lines delivered; put back from line %d (%d of them delivered already)", len(delivered), first, len(delivered)-(first-1))
		})
	}
}
