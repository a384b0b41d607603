package sender

import (
	"context"
	"sync"
)

// limiter bounds the files in flight; its limit can change at any time. One
// goroutine acquires, any releases.
type limiter struct {
	mu       sync.Mutex
	n, limit int
	wake     chan struct{}
}

func newLimiter(limit int) *limiter {
	return &limiter{limit: limit, wake: make(chan struct{}, 1)}
}

func (l *limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.n < l.limit {
			l.n++
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *limiter) release() {
	l.mu.Lock()
	l.n--
	l.mu.Unlock()
	l.signal()
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.mu.Unlock()
	l.signal()
}

func (l *limiter) inUse() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *limiter) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}
