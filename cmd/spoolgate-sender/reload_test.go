package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"spoolgate/internal/e2e"
)

// TestReloadReportsTheTable: a reload logs what conf's table says of each
// changed key: sender.settle and sender.scan_interval, which the sender
// applies, as changed live (they were reported as needing a restart before
// the table), sender.keepalive as needing a restart.
func TestReloadReportsTheTable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := serveFake(t, ln, func(*fakeRemote) {})
	e := newEnv(t, f.addr(), map[string]string{})
	p := e.startSender(t)
	e2e.WaitFor(t, 10*time.Second, "ready", func() bool { code, _, _ := e2e.HTTPGet("http://" + e.admin + "/readyz"); return code == 200 })

	e.props["sender.settle"] = "0s"
	e.props["sender.scan_interval"] = "2s"
	e.props["sender.keepalive"] = "false"
	e.write(t)
	e2e.WaitFor(t, 10*time.Second, "reload logged", func() bool { return p.Log.Contains("config reloaded") })
	e2e.WaitFor(t, 10*time.Second, "restart keys logged", func() bool { return p.Log.Contains("needs a restart") })
	var reloaded, restart string
	for _, line := range strings.Split(p.Log.String(), "\n") {
		switch {
		case strings.Contains(line, "config reloaded"):
			reloaded = line
		case strings.Contains(line, "needs a restart"):
			restart = line
		}
	}
	if !strings.Contains(reloaded, "sender.scan_interval") || !strings.Contains(reloaded, "sender.settle") {
		t.Errorf("settle and scan_interval not reported as changed live:\n%s", reloaded)
	}
	if !strings.Contains(restart, "sender.keepalive") || strings.Contains(restart, "sender.settle") || strings.Contains(restart, "sender.scan_interval") {
		t.Errorf("restart keys: want sender.keepalive only:\n%s", restart)
	}
}
