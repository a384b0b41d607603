package sender

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/internal/tlsutil"
)

// circuit pauses all sends while the remote refuses or cannot be reached
// (docs/PROTOCOL.md §5). One prober dials at intervals of its own schedule
// (probeDelay: at most probeMax apart, whatever the retry backoff); the
// first success closes the circuit. It is safe for concurrent use.
type circuit struct {
	log     *slog.Logger
	probe   func(ctx context.Context) error // dial the remote once
	backoff func() (first, max time.Duration)
	setOpen func(open bool) // metric hook

	mu     sync.Mutex
	ctx    context.Context // bounds the prober; set by start
	wg     *sync.WaitGroup
	open   bool
	since  time.Time
	cause  error
	next   time.Time     // when the next probe is due, while open
	closed chan struct{} // closed when the open circuit closes
}

// newCircuit returns a closed circuit whose prober waits the backoff of
// the tunables live returns, and which sets open to 1 while it is open.
// Its probe is set by newClient.
func newCircuit(log *slog.Logger, live func() *tunables, open prometheus.Gauge) *circuit {
	return &circuit{
		log: log,
		backoff: func() (time.Duration, time.Duration) {
			t := live()
			return t.backoff, t.backoffMax
		},
		setOpen: func(o bool) {
			if o {
				open.Set(1)
			} else {
				open.Set(0)
			}
		},
	}
}

// start sets the context the prober runs under and the group that waits
// for it.
func (c *circuit) start(ctx context.Context, wg *sync.WaitGroup) {
	c.mu.Lock()
	c.ctx, c.wg = ctx, wg
	c.mu.Unlock()
}

// isOpen reports whether sends are paused, since when and why.
func (c *circuit) isOpen() (bool, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, c.since, c.cause
}

// wait returns nil at once while the circuit is closed, else when it
// closes, or ctx's error.
func (c *circuit) wait(ctx context.Context) error {
	c.mu.Lock()
	if !c.open {
		c.mu.Unlock()
		return nil
	}
	ch := c.closed
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// trip opens the circuit after a failure to reach every remote; it logs
// and starts the prober only when it was closed.
func (c *circuit) trip(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open || c.ctx == nil || c.ctx.Err() != nil {
		return
	}
	c.open, c.since, c.cause = true, time.Now(), cause
	c.closed = make(chan struct{})
	c.setOpen(true)
	if re := (*tlsutil.RejectedError)(nil); errors.As(cause, &re) {
		c.log.Warn("circuit open: "+re.Error()+"; sends paused until it is accepted (nothing is failed)", "err", cause)
	} else {
		c.log.Warn("circuit open: remote unreachable, sends paused", "err", cause)
	}
	ctx := c.ctx
	c.wg.Go(func() { c.probeLoop(ctx) })
}

func (c *circuit) probeLoop(ctx context.Context) {
	t := time.NewTimer(c.schedule(1))
	defer t.Stop()
	probes := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		probes++
		err := c.probe(ctx)
		if err == nil {
			c.mu.Lock()
			since := c.since
			c.open, c.cause = false, nil
			close(c.closed)
			c.setOpen(false)
			c.mu.Unlock()
			c.log.Info("circuit closed: remote reachable again, sends resume",
				"down", time.Since(since).Round(time.Millisecond), "probes", probes)
			return
		}
		c.log.Debug("probe failed", "err", err)
		c.mu.Lock()
		if rejectedNow, rejectedBefore := isRejected(err), isRejected(c.cause); rejectedNow != rejectedBefore {
			if re := (*tlsutil.RejectedError)(nil); errors.As(err, &re) {
				c.log.Warn("circuit still open: "+re.Error()+"; sends paused until it is accepted (nothing is failed)", "err", err)
			} else {
				c.log.Warn("circuit still open: remote unreachable", "err", err)
			}
		}
		c.cause = err
		c.mu.Unlock()
		t.Reset(c.schedule(probes + 1))
	}
}

// schedule returns the delay before probe n (probeDelay, jittered) and
// notes when that probe is due, for nextProbe.
func (c *circuit) schedule(n int) time.Duration {
	first, max := c.backoff()
	d := jitter(probeDelay(n, first, max))
	c.mu.Lock()
	c.next = time.Now().Add(d)
	c.mu.Unlock()
	return d
}

// nextProbe returns when the open circuit's next probe is due (zero while
// it is closed): a probe in progress is due now.
func (c *circuit) nextProbe() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.open {
		return time.Time{}
	}
	return c.next
}
