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
// first success closes the circuit. When it opened on a remote that takes
// connections but says nothing (closed before a byte, or silent on every
// connection for sender.timeout: quiet), a dial proves nothing: a
// successful probe offers one send through (a trial), and only a byte
// from the remote after it closes the circuit; a trial whose send finds
// the remote quiet again leaves it open, and probing goes on. It is safe
// for concurrent use.
type circuit struct {
	log       *slog.Logger
	probe     func(ctx context.Context) error // dial the remote once
	heard     func() time.Time                // when the remote last sent a byte on any connection
	backoff   func() (first, max time.Duration)
	trialWait func() time.Duration // the longest a trial's send may take
	setOpen   func(open bool)      // metric hook

	mu      sync.Mutex
	ctx     context.Context // bounds the prober; set by start
	wg      *sync.WaitGroup
	open    bool
	since   time.Time
	cause   error
	next    time.Time     // when the next probe is due, while open
	closed  chan struct{} // closed when the open circuit closes
	quiet   bool          // opened on a remote that said nothing: a trial decides
	trial   trialState
	offered chan struct{} // closed when a trial is offered
	failed  chan struct{} // closed when the trial's send found the remote quiet again
}

// trialState is where the trial of a quiet circuit is.
type trialState int

const (
	noTrial    trialState = iota
	trialOpen             // offered: the next send to ask goes through
	trialTaken            // one send went through
)

// trialIdle is how long an offered trial may wait for a send to take it:
// with nothing to send, a dial is all the proof there is.
const trialIdle = time.Second

// newCircuit returns a closed circuit whose prober waits the backoff of
// the tunables live returns, and which sets open to 1 while it is open.
// Its probe and heard are set by newClient.
func newCircuit(log *slog.Logger, live func() *tunables, open prometheus.Gauge) *circuit {
	return &circuit{
		log: log,
		backoff: func() (time.Duration, time.Duration) {
			t := live()
			return t.backoff, t.backoffMax
		},
		trialWait: func() time.Duration {
			t := live()
			return t.connectTimeout + t.timeout + time.Second
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

// wait returns nil at once while the circuit is closed or offers a trial
// (the picker then claims what the trial may send), else when it closes
// or offers one, or ctx's error.
func (c *circuit) wait(ctx context.Context) error {
	return c.await(ctx, false)
}

// waitSend is wait for a send: while a trial is offered, the first to ask
// takes it and goes through; the others wait for the circuit to close.
func (c *circuit) waitSend(ctx context.Context) error {
	return c.await(ctx, true)
}

func (c *circuit) await(ctx context.Context, take bool) error {
	for {
		c.mu.Lock()
		switch {
		case !c.open:
			c.mu.Unlock()
			return nil
		case c.trial == trialOpen && take:
			c.trial, c.offered = trialTaken, make(chan struct{})
			c.mu.Unlock()
			return nil
		case c.trial == trialOpen:
			c.mu.Unlock()
			return nil
		}
		closed, offered := c.closed, c.offered
		c.mu.Unlock()
		select {
		case <-closed:
		case <-offered:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// trip opens the circuit after a failure to reach every remote (quiet: a
// remote that takes connections and says nothing); it logs and starts the
// prober only when it was closed. On an open circuit it ends a trial:
// the remote is still quiet.
func (c *circuit) trip(cause error, quiet bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil || c.ctx.Err() != nil {
		return
	}
	if c.open {
		c.quiet = c.quiet || quiet
		if c.trial != noTrial && c.failed != nil {
			close(c.failed)
			c.failed = nil
		}
		return
	}
	c.open, c.since, c.cause, c.quiet = true, time.Now(), cause, quiet
	c.closed, c.offered = make(chan struct{}), make(chan struct{})
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
		if err == nil && !c.tried(ctx) {
			err = errStillQuiet
		}
		if err == nil {
			c.mu.Lock()
			since := c.since
			c.open, c.cause, c.quiet = false, nil, false
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
		if err != errStillQuiet {
			c.cause = err
		}
		c.mu.Unlock()
		t.Reset(c.schedule(probes + 1))
	}
}

// errStillQuiet: a probe connected, but the trial's send found the remote
// as quiet as before.
var errStillQuiet = errors.New("connected, but the trial send got no reply")

// tried reports, after a successful probe, whether the circuit may close:
// at once unless it is quiet; then it offers a trial and reports whether
// the remote sent a byte after it (true too when no send took the trial
// within trialIdle: nothing to try).
func (c *circuit) tried(ctx context.Context) bool {
	c.mu.Lock()
	if !c.quiet {
		c.mu.Unlock()
		return true
	}
	start := time.Now()
	failed := make(chan struct{})
	c.trial, c.failed = trialOpen, failed
	close(c.offered)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.trial == trialOpen {
			c.offered = make(chan struct{})
		}
		c.trial, c.failed = noTrial, nil
		c.mu.Unlock()
	}()
	tick := time.NewTicker(20 * time.Millisecond) // how often the trial's outcome is looked at
	defer tick.Stop()
	deadline := start.Add(c.trialWait())
	for {
		select {
		case <-ctx.Done():
			return false
		case <-failed:
			return false
		case now := <-tick.C:
			c.mu.Lock()
			taken := c.trial == trialTaken
			c.mu.Unlock()
			switch {
			case c.heard().After(start):
				return true
			case !taken && now.Sub(start) > trialIdle:
				return true
			case now.After(deadline):
				return false
			}
		}
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
