package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// metric reads one series (name, or name{labels} as printed) from the
// sender's /metrics.
func (e *env) metric(t *testing.T, series string) float64 {
	t.Helper()
	code, body, err := e2e.HTTPGet("http://" + e.admin + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q: %v", series, line, err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not in /metrics", series)
	return 0
}

// TestHotReloadWorkers: sender.workers is live when the config file is
// replaced: against a remote that holds every message, raising it from 1
// to 3 puts 3 sends in flight; an invalid value is logged and ignored; once
// the remote answers, every file is delivered.
func TestHotReloadWorkers(t *testing.T) {
	// A remote that holds every message until released, then answers 200.
	release := make(chan struct{})
	r := e2e.StartRemote(t, func(e2e.Msg) e2e.Action { return e2e.Action{Wait: release, Code: protocol.CodeOK} })
	releaseOnce := func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}
	t.Cleanup(releaseOnce)

	e := newEnv(t, r.Addr(), map[string]string{"sender.workers": "1", "sender.timeout": "60s"})
	for i := range 6 {
		e2e.WriteFile(t, filepath.Join(e.spool, fmt.Sprintf("result-%09d.txt", 100+i)), body(100+i)+"\n")
	}
	p := e.startSender(t)
	inflight := func() float64 { return e.metric(t, "spoolgate_sender_inflight") }
	e2e.WaitFor(t, 10*time.Second, "1 send in flight", func() bool { return inflight() == 1 && r.Busy() == 1 })

	e.props["sender.workers"] = "3"
	e.write(t) // by rename
	e2e.WaitFor(t, 10*time.Second, "workers 3 to take effect", func() bool { return inflight() == 3 && r.Busy() == 3 })

	rejected := p.Log.Count("reload rejected")
	e.props["sender.workers"] = "0"
	e.write(t)
	e2e.WaitFor(t, 10*time.Second, "the bad edit rejected in the log", func() bool { return p.Log.Count("reload rejected") > rejected })
	if got := inflight(); got != 3 || p.Exited() {
		t.Errorf("after a bad edit: %v in flight, running %v; want 3, true", got, !p.Exited())
	}

	releaseOnce()
	e2e.WaitFor(t, 20*time.Second, "all files delivered", func() bool {
		return e.metric(t, `spoolgate_sender_messages_total{outcome="delivered"}`) == 6
	})
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}
