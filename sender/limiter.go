package sender

import (
	"context"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// limiter bounds the files in flight; its limit can change at any time.
// One goroutine (the picker) acquires; a claim that gave its slot back
// while it waited for its writer takes one again with resume, before the
// picker gets one (it was claimed first, so it is older than what the
// picker would claim now), oldest first among themselves. Any goroutine
// releases.
type limiter struct {
	mu       sync.Mutex
	n, limit int
	resuming []*resumeKey  // resume calls waiting for a slot
	wake     chan struct{} // closed (and replaced) at every change
	yield    chan struct{} // signalled (non-blocking) when a resume call waits
}

// resumeKey orders waiting resume calls: by the file's modification time,
// then name, as the queue orders files.
type resumeKey struct {
	mtime int64
	name  string
}

func (k *resumeKey) before(o *resumeKey) bool {
	if k.mtime != o.mtime {
		return k.mtime < o.mtime
	}
	return k.name < o.name
}

// first reports whether k is the oldest waiting resume call; l.mu is held.
func (l *limiter) first(k *resumeKey) bool {
	for _, o := range l.resuming {
		if o != k && o.before(k) {
			return false
		}
	}
	return true
}

func newLimiter(limit int) *limiter {
	return &limiter{limit: limit, wake: make(chan struct{}), yield: make(chan struct{}, 1)}
}

// acquire takes a slot when one is free and no resume call waits for one;
// it returns ctx's error when ctx is done first.
func (l *limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.n < l.limit && len(l.resuming) == 0 {
			l.n++
			l.mu.Unlock()
			return nil
		}
		ch := l.wake
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// resume takes a slot for the file k as soon as one is free and no older
// file's resume call waits, before acquire does; while it waits it
// signals yieldWanted. It returns ctx's error when ctx is done first (no
// slot is then held).
func (l *limiter) resume(ctx context.Context, k *resumeKey) error {
	l.mu.Lock()
	l.resuming = append(l.resuming, k)
	defer func() {
		l.resuming = slices.DeleteFunc(l.resuming, func(o *resumeKey) bool { return o == k })
		l.broadcast()
		l.mu.Unlock()
	}()
	for l.n >= l.limit || !l.first(k) {
		ch := l.wake
		select {
		case l.yield <- struct{}{}:
		default:
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			l.mu.Lock()
			return ctx.Err()
		}
		l.mu.Lock()
	}
	l.n++
	return nil
}

// yieldWanted is signalled when a resume call waits for a slot: a picker
// holding a slot while it waits for a file should check mustYield.
func (l *limiter) yieldWanted() <-chan struct{} { return l.yield }

// mustYield reports whether a resume call waits for a slot that the caller
// (holding one it does not use yet) should release.
func (l *limiter) mustYield() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.resuming) > 0 && l.n >= l.limit
}

func (l *limiter) release() {
	l.mu.Lock()
	l.n--
	l.broadcast()
	l.mu.Unlock()
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.broadcast()
	l.mu.Unlock()
}

func (l *limiter) inUse() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// broadcast wakes every waiter; l.mu is held.
func (l *limiter) broadcast() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// slot is a worker's hold on one of the sender.workers slots. A claim
// whose writer still holds the file open waits without one (park), so
// that files that hang open (a stalled scp) cannot take every worker, and
// takes one again (unpark) before it sends or disposes of anything. So
// does a stuck claim (parkIn, untilDone).
type slot struct {
	s      *Sender
	held   bool
	parked bool
	gauge  prometheus.Gauge // counts the claim while parked; nil: none
	key    resumeKey        // the claim's file: parked claims resume oldest first
}

// park gives the slot back while the claim waits for its writer (counted
// in spoolgate_sender_claims_waiting_for_writer).
func (sl *slot) park() {
	if sl != nil {
		sl.parkIn(sl.s.m.waiting)
	}
}

// parkIn gives the slot back while the claim waits, counted in g (nil: in
// none) instead of spoolgate_sender_inflight.
func (sl *slot) parkIn(g prometheus.Gauge) {
	if sl == nil || !sl.held {
		return
	}
	sl.held, sl.parked, sl.gauge = false, true, g
	sl.s.m.inflight.Dec()
	if g != nil {
		g.Inc()
	}
	sl.s.slots.release()
}

// isParked reports whether the claim gave its slot back to wait.
func (sl *slot) isParked() bool { return sl != nil && sl.parked }

// unparked ends the wait of a parked claim.
func (sl *slot) unparked() {
	sl.parked = false
	if sl.gauge != nil {
		sl.gauge.Dec()
		sl.gauge = nil
	}
}

// unpark takes a slot again, before the picker does; false when ctx is
// done first (no slot is then held).
func (sl *slot) unpark(ctx context.Context) bool {
	if sl == nil || !sl.parked {
		return true
	}
	sl.unparked()
	if sl.s.slots.resume(ctx, &sl.key) != nil {
		return false
	}
	sl.held = true
	sl.s.m.inflight.Inc()
	return true
}

// done ends the worker: its slot, if held, is released.
func (sl *slot) done() {
	if sl.parked {
		sl.unparked()
	}
	if sl.held {
		sl.held = false
		sl.s.m.inflight.Dec()
		sl.s.slots.release()
	}
}
