package sender

import (
	"context"
	"sync"
)

// limiter bounds the files in flight; its limit can change at any time.
// One goroutine (the picker) acquires; a claim that gave its slot back
// while it waited for its writer takes one again with resume, before the
// picker gets one: it was claimed first, so it is the older file. Any
// goroutine releases.
type limiter struct {
	mu       sync.Mutex
	n, limit int
	resuming int           // resume calls waiting for a slot
	wake     chan struct{} // closed (and replaced) at every change
	yield    chan struct{} // signalled (non-blocking) when a resume call waits
}

func newLimiter(limit int) *limiter {
	return &limiter{limit: limit, wake: make(chan struct{}), yield: make(chan struct{}, 1)}
}

// acquire takes a slot when one is free and no resume call waits for one;
// it returns ctx's error when ctx is done first.
func (l *limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.n < l.limit && l.resuming == 0 {
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

// resume takes a slot as soon as one is free, before acquire does; while
// it waits it signals yieldWanted. It returns ctx's error when ctx is done
// first (no slot is then held).
func (l *limiter) resume(ctx context.Context) error {
	l.mu.Lock()
	l.resuming++
	defer func() {
		l.resuming--
		l.broadcast()
		l.mu.Unlock()
	}()
	for l.n >= l.limit {
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
	return l.resuming > 0 && l.n >= l.limit
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
