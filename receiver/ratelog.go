package receiver

import (
	"log/slog"
	"sync"
	"time"
)

// rateLog writes at most one warn line per cause and interval, so a peer
// that repeats a fault cannot flood the log; the next line for a cause
// says how many were left out since the last one. The causes are a small
// fixed set chosen by the caller. Its methods are safe for concurrent use.
type rateLog struct {
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex
	last map[string]*rateEntry // guarded by mu
}

type rateEntry struct {
	at         time.Time
	suppressed int
}

func newRateLog(log *slog.Logger, every time.Duration) *rateLog {
	return &rateLog{log: log, every: every, last: make(map[string]*rateEntry)}
}

// Warn logs msg with args at warn unless a line for cause was logged less
// than the interval ago; then it only counts it. It reports whether it
// logged.
func (r *rateLog) Warn(cause, msg string, args ...any) bool {
	now := time.Now()
	r.mu.Lock()
	e := r.last[cause]
	if e == nil {
		e = &rateEntry{}
		r.last[cause] = e
	} else if now.Sub(e.at) < r.every {
		e.suppressed++
		r.mu.Unlock()
		return false
	}
	n := e.suppressed
	e.at, e.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed_since_last", n)
	}
	r.log.Warn(msg, args...)
	return true
}
