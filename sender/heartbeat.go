package sender

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"spoolgate/conf"
	"spoolgate/protocol"
)

// The heartbeat (sender.heartbeat > 0, docs/PROTOCOL.md §3): a kept-alive
// connection that has waited in the pool for sender.heartbeat carries the
// echo telegram (sender.heartbeat.message, framed by Dialect.Heartbeat),
// so that a partner that closes idle sessions keeps it, and a session
// that died is found before a line needs it. The connection is out of the
// pool meanwhile (a send that needs one takes another or dials). An echo
// answered ok within sender.timeout puts it back, idle from then on;
// anything else (no reply, another code, a reply that does not parse or
// echoes another process_no, a close) closes it, and the next send dials a
// new one. That is no attempt of any line and does not open the circuit.
// The pool's 30 s limit on idle connections (maxIdle) gives way to the
// heartbeat: a connection whose echoes are answered stays. Heartbeats
// count in spoolgate_sender_heartbeats_total, those not answered ok in
// spoolgate_sender_heartbeat_failures_total.

// heartbeat is the echo telegram and how often it goes.
type heartbeat struct {
	every time.Duration
	frame []byte // the echo telegram's wire bytes
	pno   []byte // the process_no its reply echoes (nil: replies carry none)
}

// newHeartbeat returns the heartbeat of c in d; nil when sender.heartbeat
// is 0s. It fails when sender.heartbeat.message is not d's echo telegram
// (conf.Load refuses that already; this is for a conf.Sender built in
// code).
func newHeartbeat(c conf.Sender, d *protocol.Dialect) (*heartbeat, error) {
	if c.Heartbeat <= 0 {
		return nil, nil
	}
	frame, err := d.Heartbeat(c.HeartbeatMessage)
	if err != nil {
		return nil, fmt.Errorf("sender.heartbeat.message = %q: the echo telegram as a spool line: %w", c.HeartbeatMessage, err)
	}
	return &heartbeat{every: c.Heartbeat, frame: frame, pno: slices.Clone(d.ResultProcessNo(d.Unframe(frame)))}, nil
}

// heartbeats runs the heartbeat until ctx is done (a drain): whenever the
// longest idle connection of the pool has waited sender.heartbeat, it
// takes those that have out of the pool and echoes on each at once
// (echo). It returns once their echoes are over.
func (s *Sender) heartbeats(ctx context.Context) {
	every := s.hb.every
	s.log.Info("heartbeat on", "every", every)
	var echoes sync.WaitGroup
	defer echoes.Wait()
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		due, oldest := s.client.takeIdleSince(now.Add(-every))
		for _, cn := range due {
			echoes.Go(func() { s.echo(ctx, cn) })
		}
		// A connection put back from now on is due every from now.
		next := every
		if !oldest.IsZero() {
			next = oldest.Add(every).Sub(now)
		}
		t.Reset(max(next, time.Millisecond))
	}
}

// echo sends the echo telegram on cn and reads its reply within
// sender.timeout: answered ok, cn goes back to the pool; else it is closed
// (counted and logged as a failure unless ctx, the drain, cut it off).
func (s *Sender) echo(ctx context.Context, cn *conn) {
	s.m.heartbeats.Inc()
	timeout := s.live.Load().timeout
	reply, err := cn.roundTrip(ctx, s.hb.frame, timeout)
	var reason string
	if err == nil {
		var result attemptResult
		if result, _, reason = s.replyResult(reply, s.hb.pno); result == resultOK {
			s.client.put(cn)
			return
		}
	}
	s.client.discard(cn)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		_, reason = errResult(err, timeout)
	}
	s.m.heartbeatFailures.Inc()
	s.log.Warn("heartbeat: the echo was not answered ok; connection closed (the next send reconnects)",
		"remote", cn.addr, "reason", reason)
}

// takeIdleSince takes the connections that went idle at cutoff or before
// out of the pool, for the heartbeat, and returns them with the time the
// longest idle of those left went idle (zero when none is left).
func (c *client) takeIdleSince(cutoff time.Time) (due []*conn, oldest time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.idle[:0]
	for _, cn := range c.idle {
		if !cn.idle.After(cutoff) {
			due = append(due, cn)
			continue
		}
		kept = append(kept, cn)
		if oldest.IsZero() || cn.idle.Before(oldest) {
			oldest = cn.idle
		}
	}
	clear(c.idle[len(kept):])
	c.idle = kept
	return due, oldest
}
