package receiver

import (
	"sync"
	"time"
)

// rateLog lets at most one log line per cause and interval through, so a
// peer that repeats a fault cannot flood the log; the caller adds the
// count of the lines left out since the last one to the next. The causes
// are a small fixed set chosen by the caller. Its methods are safe for
// concurrent use.
type rateLog struct {
	every time.Duration

	mu   sync.Mutex
	last map[string]*rateEntry // guarded by mu
}

type rateEntry struct {
	at         time.Time
	suppressed int
}

func newRateLog(every time.Duration) *rateLog {
	return &rateLog{every: every, last: make(map[string]*rateEntry)}
}

// allow reports whether a line for cause may be logged now, and how many
// were left out since the last one. When it returns false it counts one
// more left out.
func (r *rateLog) allow(cause string) (ok bool, suppressed int) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.last[cause]
	if e == nil {
		e = &rateEntry{}
		r.last[cause] = e
	} else if now.Sub(e.at) < r.every {
		e.suppressed++
		return false, 0
	}
	suppressed = e.suppressed
	e.at, e.suppressed = now, 0
	return true, suppressed
}
