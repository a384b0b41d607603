package receiver

import (
	"hash/maphash"
	"sync"
	"time"
)

// maxDedupEntries bounds the duplicate window's memory: past it the oldest
// entries are dropped early (a duplicate of one of those is then stored
// again, which is safe). An entry costs about 70 bytes (see
// TestDedupMemory), so the bound is about 70 MB.
const maxDedupEntries = 1 << 20

// dedupKey is a 128-bit hash of a message's dedup_key fields (their
// values joined by NUL: Message.AppendKey, Spec.AppendRawKey). Two seeds
// make a false match (which would answer 200 for a message not stored)
// practically impossible; the seeds are random per process, which is fine
// because the window is rebuilt from the request files at start.
type dedupKey [2]uint64

type dedupEntry struct {
	key dedupKey
	at  int64 // unix nanoseconds the message was stored
}

// dedup remembers the keys of messages stored within the window. A key is
// recorded only after its message is durable, and a message whose key is
// being stored by another connection waits for that outcome, so a
// duplicate is answered 200 only when the original is stored and two
// copies in flight at once are stored once. Safe for concurrent use.
type dedup struct {
	seeds [2]maphash.Seed

	mu       sync.Mutex
	cond     sync.Cond // signalled when an in-flight key completes
	window   time.Duration
	seen     map[dedupKey]int64 // key -> newest time stored
	ring     ring               // entries in insertion order, for expiry
	limit    int                // most entries kept (maxDedupEntries)
	inflight map[dedupKey]struct{}
	waiting  int // connections waiting on an in-flight key (for tests)
}

func newDedup(window time.Duration) *dedup {
	d := &dedup{
		seeds:    [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		window:   window,
		seen:     make(map[dedupKey]int64),
		inflight: make(map[dedupKey]struct{}),
		limit:    maxDedupEntries,
	}
	d.cond.L = &d.mu
	return d
}

// setWindow changes the window; 0 turns the check off (entries are not
// recorded then).
func (d *dedup) setWindow(w time.Duration) {
	d.mu.Lock()
	d.window = w
	if w <= 0 {
		clear(d.seen)
		d.ring.reset()
	}
	d.mu.Unlock()
}

// key hashes b, the values of a message's key fields (Message.AppendKey).
func (d *dedup) key(b []byte) dedupKey {
	return dedupKey{maphash.Bytes(d.seeds[0], b), maphash.Bytes(d.seeds[1], b)}
}

// begin returns true when k was stored within the window (the message is
// a duplicate: answer 200, do not store). Otherwise it marks k in flight
// and returns false: the caller stores the message and must call end.
// While another caller has k in flight it waits for that outcome, so a
// caller must not hold keys of its own in flight while it calls begin
// (two callers could wait for each other): see tryBegin.
func (d *dedup) begin(k dedupKey, now time.Time) (dup bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		switch d.beginLocked(k, now) {
		case beginDup:
			return true
		case beginStore:
			return false
		}
		d.waiting++
		d.cond.Wait()
		d.waiting--
	}
}

// beginResult is what tryBegin found.
type beginResult int

const (
	beginStore beginResult = iota // k is now in flight: store, then end
	beginDup                      // a duplicate: answer 200, do not store
	beginBusy                     // another caller has k in flight: nothing marked
)

// tryBegin is begin without the wait: when another caller has k in flight
// it returns beginBusy and marks nothing. A caller that holds keys in
// flight (a pipeline batch) ends them before it calls begin for a busy key.
func (d *dedup) tryBegin(k dedupKey, now time.Time) beginResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.beginLocked(k, now)
}

func (d *dedup) beginLocked(k dedupKey, now time.Time) beginResult {
	if d.window <= 0 {
		return beginStore
	}
	d.expire(now)
	if at, ok := d.seen[k]; ok && now.UnixNano()-at < int64(d.window) {
		return beginDup
	}
	if _, busy := d.inflight[k]; busy {
		return beginBusy
	}
	d.inflight[k] = struct{}{}
	return beginStore
}

// end ends begin's in-flight mark and records k when it was stored.
func (d *dedup) end(k dedupKey, stored bool, now time.Time) {
	d.mu.Lock()
	delete(d.inflight, k)
	if stored {
		d.addLocked(k, now)
	}
	d.mu.Unlock()
	d.cond.Broadcast()
}

// endAll is end for each of keys, under one lock.
func (d *dedup) endAll(keys []dedupKey, stored bool, now time.Time) {
	d.mu.Lock()
	for _, k := range keys {
		delete(d.inflight, k)
		if stored {
			d.addLocked(k, now)
		}
	}
	d.mu.Unlock()
	d.cond.Broadcast()
}

// add records k as stored at t (for the start-up rebuild).
func (d *dedup) add(k dedupKey, t time.Time) {
	d.mu.Lock()
	d.addLocked(k, t)
	d.mu.Unlock()
}

func (d *dedup) addLocked(k dedupKey, t time.Time) {
	if d.window <= 0 {
		return
	}
	at := t.UnixNano()
	for d.ring.len() >= d.limit {
		d.drop(d.ring.pop())
	}
	d.seen[k] = at
	d.ring.push(dedupEntry{key: k, at: at})
}

// expire drops entries older than the window from the front of the ring.
// The ring is in insertion order, which is time order unless the clock
// steps back; then an entry stays a little longer, which is harmless as
// begin compares times.
func (d *dedup) expire(now time.Time) {
	limit := now.UnixNano() - int64(d.window)
	for d.ring.len() > 0 && d.ring.front().at <= limit {
		d.drop(d.ring.pop())
	}
}

func (d *dedup) drop(e dedupEntry) {
	if d.seen[e.key] == e.at {
		delete(d.seen, e.key)
	}
}

// len returns the number of keys remembered.
func (d *dedup) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// ring is a growable FIFO of dedupEntry.
type ring struct {
	buf        []dedupEntry
	head, size int
}

func (r *ring) len() int { return r.size }

func (r *ring) front() dedupEntry { return r.buf[r.head] }

func (r *ring) reset() { *r = ring{} }

func (r *ring) push(e dedupEntry) {
	if r.size == len(r.buf) {
		r.resize(max(2*len(r.buf), 64))
	}
	r.buf[(r.head+r.size)%len(r.buf)] = e
	r.size++
}

func (r *ring) pop() dedupEntry {
	e := r.buf[r.head]
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	if len(r.buf) > 1024 && r.size < len(r.buf)/4 {
		r.resize(len(r.buf) / 2) // give a burst's memory back
	}
	return e
}

func (r *ring) resize(n int) {
	buf := make([]dedupEntry, n)
	if r.head+r.size <= len(r.buf) {
		copy(buf, r.buf[r.head:r.head+r.size])
	} else {
		m := copy(buf, r.buf[r.head:])
		copy(buf[m:], r.buf[:r.size-m])
	}
	r.buf, r.head = buf, 0
}
