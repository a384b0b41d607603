package receiver

import "sync"

// limiter counts served connections against a limit that a reload may
// change; take blocks while the limit is reached.
type limiter struct {
	mu     sync.Mutex
	cond   sync.Cond
	active int
	limit  int
}

func (l *limiter) init(n int) {
	l.cond.L = &l.mu
	l.limit = n
}

func (l *limiter) release() {
	l.mu.Lock()
	l.active--
	l.mu.Unlock()
	l.cond.Signal()
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.mu.Unlock()
	l.cond.Broadcast()
}

func (l *limiter) wake() {
	// Taking mu orders the caller's flag change with a waiter's check.
	l.mu.Lock()
	l.cond.Broadcast()
	l.mu.Unlock()
}

// take waits for a free slot, or for stop (a drain) and then takes one
// beyond the limit.
func (l *limiter) take(stop interface{ Load() bool }) {
	l.mu.Lock()
	for l.active >= l.limit && !stop.Load() {
		l.cond.Wait()
	}
	l.active++
	l.mu.Unlock()
}
