package sender

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// TestWindowAutoGrows: with sender.window = auto, a remote that answers
// pipelined lines in order, 20 ms away (a simulated link), gets a big file
// through a window that grows from 2 to far more lines in flight than the
// lanes would have (4), so the file takes a few round trips per hundred
// lines, not 5 ms a line; every line is stored once.
func TestWindowAutoGrows(t *testing.T) {
	const n = 3000
	r := startRemote(t, nil)
	link := e2e.NewLink(t, r.addr())
	link.SetLatency(e2e.Both, 10*time.Millisecond, 0)
	c := testConf(t, link.Addr())
	c.Window = conf.WindowAuto
	c.Timeout = 10 * time.Second
	s, _ := runSender(t, c, nil)
	start := time.Now()
	drop(t, c.SpoolDir, "big.txt", lines(0, n-1), time.Time{})
	e2e.WaitFor(t, 60*time.Second, "the file delivered", func() bool { return spoolEmpty(t, c.SpoolDir) })
	took := time.Since(start)
	if dups := e2e.StoredOnce(t, r.Delivered(), n); dups != 0 {
		t.Errorf("%d lines stored twice", dups)
	}
	ahead := r.MaxAhead()
	t.Logf("%d lines in %s; at most %d lines read ahead on a connection; the remote's window now %d", n, took.Round(time.Millisecond), ahead, s.auto.size(link.Addr()))
	if ahead < 64 {
		t.Errorf("at most %d lines in flight on a connection: the window did not grow", ahead)
	}
	if took > 10*time.Second { // lanes: 3000 lines × 20 ms / 4 = 15 s
		t.Errorf("%d lines took %s", n, took)
	}
}

// TestWindowAutoOnePerRead: with sender.window = auto, a remote that reads
// one message per read and drops the rest of what it read (pipelined lines
// after the first go unanswered) brings the window of that remote down to
// 1 for good, said once at warn; every line of its files is delivered,
// none fails, and from then on the lines go over lanes (several
// connections, one line on each).
func TestWindowAutoOnePerRead(t *testing.T) {
	r := e2e.StartOnePerReadRemote(t, func(e2e.Msg) e2e.Action {
		return e2e.Action{Code: protocol.CodeOK, Delay: 5 * time.Millisecond} // its work: lanes overlap
	})
	c := testConf(t, r.Addr())
	c.Window = conf.WindowAuto
	c.Timeout = time.Second
	c.Retries = 3
	var log lockedLog
	s, _ := runSender(t, c, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&log, t.Output()), &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	drop(t, c.SpoolDir, "a.txt", lines(0, 39), time.Now().Add(-time.Minute))
	e2e.WaitFor(t, 60*time.Second, "the first file delivered", func() bool { return spoolEmpty(t, c.SpoolDir) })
	if got := s.auto.size(r.Addr()); got != 1 {
		t.Fatalf("the remote's window is %d after its pipelined lines went unanswered, want 1", got)
	}
	r.ResetMax()
	drop(t, c.SpoolDir, "b.txt", lines(40, 119), time.Time{})
	e2e.WaitFor(t, 60*time.Second, "the second file delivered", func() bool { return spoolEmpty(t, c.SpoolDir) })
	if dups := e2e.StoredOnce(t, r.Delivered(), 120); dups != 0 {
		t.Logf("%d lines stored twice (answered while the sender waited for another: sent again)", dups)
	}
	if f := visible(t, c.FailedDir); len(f) != 0 {
		t.Fatalf("failed_dir: %v", f)
	}
	if n := strings.Count(log.String(), "its window is 1 from now on"); n != 1 {
		t.Errorf("said %d times that the window is 1 from now on, want once", n)
	}
	if _, busy := r.Max(); busy < 2 {
		t.Errorf("the second file went over %d connection at once, want lanes", busy)
	}
}
