package sender

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// echoDialect is the default dialect whose echo telegram has PING in its
// filler, and that telegram as a spool line.
func echoDialect(t *testing.T) (*protocol.Dialect, string) {
	t.Helper()
	d, err := protocol.NewDialect(protocol.DialectConfig{EchoField: "filler", EchoValue: "PING"})
	if err != nil {
		t.Fatal(err)
	}
	return d, "REQ|000000000|20260101000000|ORG01|SV01|K|ping|PING"
}

// TestHeartbeat: every idle pooled connection carries the echo telegram
// each sender.heartbeat and stays open while it is answered ok; an echo
// answered with another process_no closes its connection (a failed
// heartbeat); a drain cuts off an echo the remote holds, without counting
// it as failed, and Run returns.
func TestHeartbeat(t *testing.T) {
	d, ping := echoDialect(t)
	for _, tc := range []struct {
		name string
		echo func(release <-chan struct{}) e2e.Action
	}{
		{"answered", func(<-chan struct{}) e2e.Action { return e2e.Answer(protocol.CodeOK) }},
		{"another process_no", func(<-chan struct{}) e2e.Action {
			return e2e.Action{Code: protocol.CodeOK, ProcessNo: "999999999"}
		}},
		{"held at the drain", func(release <-chan struct{}) e2e.Action { return e2e.Action{Wait: release} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			var mu sync.Mutex
			echoes := map[int]int{} // by connection
			r := e2e.StartRemoteWith(t, e2e.RemoteOptions{Dialect: d}, func(m e2e.Msg) e2e.Action {
				if !m.Echo() {
					return e2e.Action{Delay: 50 * time.Millisecond, Code: protocol.CodeOK} // the three files at once: three connections
				}
				mu.Lock()
				echoes[m.Conn]++
				mu.Unlock()
				return tc.echo(release)
			})
			echoed := func(min int) bool {
				mu.Lock()
				defer mu.Unlock()
				for conn := 1; conn <= r.Accepted(); conn++ {
					if echoes[conn] < min {
						return false
					}
				}
				return true
			}
			c := testConf(t, r.Addr())
			c.Workers, c.Heartbeat, c.HeartbeatMessage, c.Timeout = 3, 100*time.Millisecond, ping, 5*time.Second
			s, stop := runSender(t, c, func(o *Options) { o.Dialect = d })
			for i := range 3 {
				drop(t, c.SpoolDir, fmt.Sprintf("f%d.txt", i), body(i)+"\n", time.Time{})
			}
			e2e.WaitFor(t, 20*time.Second, "3 lines delivered", func() bool { return len(r.Delivered()) == 3 })
			accepted := r.Accepted()
			switch tc.name {
			case "answered":
				e2e.WaitFor(t, 20*time.Second, "3 echoes on each connection", func() bool { return echoed(3) })
				if n, open := r.Accepted(), r.Open(); n != accepted || open != accepted {
					t.Fatalf("%d connections accepted, %d open; want the %d of the sends, all open", n, open, accepted)
				}
				if got := testutil.ToFloat64(s.m.heartbeatFailures); got != 0 {
					t.Fatalf("%v failed heartbeats", got)
				}
			case "another process_no":
				e2e.WaitFor(t, 20*time.Second, "every connection echoed once and closed", func() bool { return echoed(1) && r.Open() == 0 })
				if sent, failed := testutil.ToFloat64(s.m.heartbeats), testutil.ToFloat64(s.m.heartbeatFailures); sent != float64(accepted) || failed != sent {
					t.Fatalf("heartbeats %v, failed %v; want %d, all", sent, failed, accepted)
				}
			case "held at the drain":
				e2e.WaitFor(t, 20*time.Second, "an echo held", func() bool { return echoed(1) || r.Busy() > 0 })
				start := time.Now()
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Fatalf("the drain took %v with an echo held", took)
				}
				if got := testutil.ToFloat64(s.m.heartbeatFailures); got != 0 {
					t.Fatalf("a drain counted %v failed heartbeats", got)
				}
			}
		})
	}
}
