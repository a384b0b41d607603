package logging

import (
	"sync"
	"time"
)

// Sampler keeps a repeated event from writing a log line each time: per
// key, the first event of each interval is to be logged and the others are
// only counted, and the next logged line carries the count. Keys come from
// a small fixed set (reject reasons, error kinds), or, with a bound
// (NewBoundedSampler), from a larger one such as a cause and a peer's
// address. A Sampler is safe for concurrent use.
type Sampler struct {
	every   time.Duration
	maxKeys int // 0: no bound
	mu      sync.Mutex
	keys    map[string]*sampled
}

type sampled struct {
	logged time.Time // when a line for the key was last let through
	n      uint64    // events since then, not yet reported
}

// Overflow is the key under which a bounded Sampler counts the events of
// new keys while it is full.
const Overflow = "\x00overflow"

// NewSampler returns a Sampler that lets one line per key through every
// interval; each key seen stays in memory.
func NewSampler(every time.Duration) *Sampler {
	return &Sampler{every: every, keys: map[string]*sampled{}}
}

// NewBoundedSampler returns a Sampler like NewSampler's that holds at most
// maxKeys keys (and Overflow): a new key drops the keys whose interval has
// passed (their events not yet reported are dropped with them: a line
// would have been let through for the next), and when none has, its events
// are sampled under Overflow, one line an interval for all of them.
func NewBoundedSampler(every time.Duration, maxKeys int) *Sampler {
	return &Sampler{every: every, maxKeys: maxKeys, keys: map[string]*sampled{}}
}

// Event records one event of key at now. It returns ok when the caller
// should log it, and n, the number of events of key that this line stands
// for: this one and those counted silently since the previous line (1 for
// the first). It allocates only the first time it sees a key. A bounded
// Sampler that is full counts a new key's event under Overflow: n and ok
// are then Overflow's.
func (s *Sampler) Event(key string, now time.Time) (n uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.keys[key]
	if e == nil && s.maxKeys > 0 && s.held() >= s.maxKeys {
		for k, o := range s.keys {
			if k != Overflow && now.Sub(o.logged) >= s.every {
				delete(s.keys, k)
			}
		}
		if s.held() >= s.maxKeys {
			key = Overflow
			e = s.keys[key]
		}
	}
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

// held is the number of keys other than Overflow.
func (s *Sampler) held() int {
	if _, ok := s.keys[Overflow]; ok {
		return len(s.keys) - 1
	}
	return len(s.keys)
}
