package main

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// heartbeatEnv starts a remote in the EUC-KR fixed dialect (its echo
// telegram: kind 0800) that closes connections idle for idle and answers
// echoes with echo (counting them in echoes), and a sender of one worker
// in that dialect with props.
func heartbeatEnv(t *testing.T, idle time.Duration, echo e2e.Action, props map[string]string) (*env, *e2e.Remote, *atomic.Int32, func(seq int)) {
	t.Helper()
	p := testdataProps(t, "good_dialect_euckr_fixed")
	d := dialectOf(t, p)
	var echoes atomic.Int32
	r := e2e.StartRemoteWith(t, e2e.RemoteOptions{Dialect: d, Idle: idle}, func(m e2e.Msg) e2e.Action {
		if m.Echo() {
			echoes.Add(1)
			return echo
		}
		return e2e.Answer(protocol.CodeOK)
	})
	p["sender.workers"] = "1"
	for k, v := range props {
		p[k] = v
	}
	e := newEnv(t, r.Addr(), p)
	send := func(seq int) {
		t.Helper()
		want := len(r.Delivered()) + 1
		e2e.WriteFile(t, filepath.Join(e.spool, "result.txt"), dialectLine(t, d, seq, map[string]string{"name": "홍길동"})+"\n")
		e2e.WaitFor(t, 20*time.Second, "the line delivered", func() bool {
			return len(r.Delivered()) == want && count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
		})
	}
	return e, r, &echoes, send
}

// TestHeartbeatKeepsIdleConnection: against a remote that closes
// connections idle for 2 s, with sender.heartbeat = 1s the connection of
// the first send carries an echo telegram every second and stays open: 4
// echoes later (twice the remote's idle limit) the remote has accepted
// one connection, still open. With the heartbeat off the remote closes it
// and the next line reconnects.
func TestHeartbeatKeepsIdleConnection(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		e, r, echoes, send := heartbeatEnv(t, 2*time.Second, e2e.Answer(protocol.CodeOK), map[string]string{"sender.heartbeat": "1s"})
		e.startSender(t)
		send(1)
		e2e.WaitFor(t, 20*time.Second, "4 echoes", func() bool { return echoes.Load() >= 4 })
		if n, open := r.Accepted(), r.Open(); n != 1 || open != 1 {
			t.Fatalf("after 4 echoes the remote accepted %d connections, %d open; want 1, still open", n, open)
		}
		send(2) // on that connection, or on a new one if it meets an echo
		if sent, failed := e.metric(t, "spoolgate_sender_heartbeats_total"), e.metric(t, "spoolgate_sender_heartbeat_failures_total"); sent < 4 || failed != 0 {
			t.Fatalf("heartbeats %v, failed %v; want at least 4, 0", sent, failed)
		}
	})
	t.Run("off", func(t *testing.T) {
		e, r, echoes, send := heartbeatEnv(t, 2*time.Second, e2e.Answer(protocol.CodeOK), map[string]string{"sender.heartbeat": "0s"})
		e.startSender(t)
		send(1)
		e2e.WaitFor(t, 20*time.Second, "the remote closing the idle connection", func() bool { return r.Open() == 0 })
		send(2)
		if n, echoes := r.Accepted(), echoes.Load(); n != 2 || echoes != 0 {
			t.Fatalf("%d connections, %d echoes; want 2 (a reconnect), none", n, echoes)
		}
	})
}

// TestHeartbeatUnanswered: an echo telegram the remote does not answer
// within sender.timeout, or answers other than ok, closes its connection:
// counted as a failed heartbeat, no line failed, no circuit opened, and
// the next line goes on a new connection.
func TestHeartbeatUnanswered(t *testing.T) {
	for _, tc := range []struct {
		name string
		echo e2e.Action
	}{
		{"no reply", e2e.Action{}},
		{"answered invalid", e2e.Answer(protocol.CodeInvalid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, r, echoes, send := heartbeatEnv(t, 0, tc.echo, map[string]string{"sender.heartbeat": "1s", "sender.timeout": "2s"})
			e.startSender(t)
			send(1)
			e2e.WaitFor(t, 20*time.Second, "an echo, then the connection closed", func() bool { return echoes.Load() == 1 && r.Open() == 0 })
			if sent, failed := e.metric(t, "spoolgate_sender_heartbeats_total"), e.metric(t, "spoolgate_sender_heartbeat_failures_total"); sent != 1 || failed != 1 {
				t.Fatalf("heartbeats %v, failed %v; want 1, 1", sent, failed)
			}
			send(2)
			if n := r.Accepted(); n != 2 {
				t.Fatalf("%d connections, want 2: the next line reconnects", n)
			}
			if n := count(t, e.failed); n != 0 || e.metric(t, "spoolgate_sender_circuit_open") != 0 {
				t.Fatalf("%d failed files, circuit %v; want none, closed", n, e.metric(t, "spoolgate_sender_circuit_open"))
			}
		})
	}
}
