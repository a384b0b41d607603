package logging

import (
	"sync"
	"time"
)

// Sampler keeps a repeated event from writing a log line each time: per
// key, the first event of each interval is to be logged and the others are
// only counted, and the next logged line carries the count. Keys should
// come from a small fixed set (reject reasons, error kinds): each one
// seen stays in memory. A Sampler is safe for concurrent use.
type Sampler struct {
	every time.Duration
	mu    sync.Mutex
	keys  map[string]*sampled
}

type sampled struct {
	logged time.Time // when a line for the key was last let through
	n      uint64    // events since then, not yet reported
}

// NewSampler returns a Sampler that lets one line per key through every
// interval.
func NewSampler(every time.Duration) *Sampler {
	return &Sampler{every: every, keys: map[string]*sampled{}}
}

// Event records one event of key at now. It returns ok when the caller
// should log it, and n, the number of events of key that this line stands
// for: this one and those counted silently since the previous line (1 for
// the first). It allocates only the first time it sees a key.
func (s *Sampler) Event(key string, now time.Time) (n uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.keys[key]
	if e == nil {
		e = &sampled{}
		s.keys[key] = e
	} else if now.Sub(e.logged) < s.every {
		e.n++
		return 0, false
	}
	n = e.n + 1
	e.logged, e.n = now, 0
	return n, true
}
