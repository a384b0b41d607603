package sender

import (
	"container/heap"
	"io/fs"
	"strings"
	"sync"
	"time"
)

// eligibleName reports whether a spool directory entry name may be sent
// (docs/PROTOCOL.md §5): not a dotfile, not a *.tmp or *.part upload in progress.
func eligibleName(name string) bool {
	return name != "" && name[0] != '.' &&
		!strings.HasSuffix(name, ".tmp") && !strings.HasSuffix(name, ".part")
}

// Where an entry sits in the queue.
const (
	inNone     uint8 = iota
	inSettling       // seen, not yet unchanged for settle
	inReady          // settled: ordered by modification time, then name
	inBlocked        // ready, but a claim of the same name is still in flight
	inRestored       // a claim found in .inflight at start-up
)

// entry is one file the queue knows about.
type entry struct {
	name  string
	size  int64
	mtime int64     // modification time, Unix ns
	seen  time.Time // when this size and mtime were first observed
	index int       // position in its heap
	where uint8
	gen   uint64 // the last scan that listed it
}

// entryHeap is a binary heap of entries; byMtime selects the ready order
// (mtime, name), else the settling order (seen, name).
type entryHeap struct {
	items   []*entry
	byMtime bool
}

func (h *entryHeap) Len() int { return len(h.items) }
func (h *entryHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if h.byMtime {
		if a.mtime != b.mtime {
			return a.mtime < b.mtime
		}
	} else if !a.seen.Equal(b.seen) {
		return a.seen.Before(b.seen)
	}
	return a.name < b.name
}
func (h *entryHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index = i
	h.items[j].index = j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(h.items)
	h.items = append(h.items, e)
}
func (h *entryHeap) Pop() any {
	n := len(h.items) - 1
	e := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	e.index = -1
	return e
}

// queue is the in-memory pending set (docs/PROTOCOL.md §5): spool files waiting to
// settle, settled files ordered oldest first, and claims restored from
// .inflight, which go first. Picking costs O(log n) whatever the backlog.
// It is safe for concurrent use.
type queue struct {
	mu       sync.Mutex
	settle   time.Duration
	byName   map[string]*entry // every spool file known (settling, ready, blocked)
	settling entryHeap
	ready    entryHeap
	blocked  map[string]*entry
	restored []*entry         // oldest first; served before the spool
	inflight map[string]int64 // names claimed and not finished: their mtime
	changed  chan struct{}    // signalled (non-blocking) when a pick may succeed
}

func newQueue(settle time.Duration) *queue {
	return &queue{
		settle:   settle,
		byName:   make(map[string]*entry),
		ready:    entryHeap{byMtime: true},
		blocked:  make(map[string]*entry),
		inflight: make(map[string]int64),
		changed:  make(chan struct{}, 1),
	}
}

func (q *queue) notify() {
	select {
	case q.changed <- struct{}{}:
	default:
	}
}

// setSettle changes the settle time for every file not yet picked.
func (q *queue) setSettle(d time.Duration) {
	q.mu.Lock()
	q.settle = d
	q.mu.Unlock()
	q.notify()
}

// observe records what Lstat returned for a spool file (a regular file).
// A new file, or one whose size or modification time changed, starts to
// settle again.
func (q *queue) observe(name string, fi fs.FileInfo, now time.Time) {
	size, mtime := fi.Size(), fi.ModTime().UnixNano()
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.byName[name]
	if e != nil {
		if e.size == size && e.mtime == mtime {
			return
		}
		q.unlink(e)
	} else {
		e = &entry{name: name}
		q.byName[name] = e
	}
	e.size, e.mtime, e.seen = size, mtime, now
	e.where = inSettling
	heap.Push(&q.settling, e)
	q.notify()
}

// forget drops a spool file that is gone.
func (q *queue) forget(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.byName[name]; e != nil {
		q.unlink(e)
		delete(q.byName, name)
	}
}

// mark records that scan gen listed name; it reports whether name is
// known.
func (q *queue) mark(name string, gen uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.byName[name]
	if e == nil {
		return false
	}
	e.gen = gen
	return true
}

// markKnown marks, under one lock, the regular files of a directory
// listing the queue knows, and returns the other names (new, or of a type
// that needs a check).
func (q *queue) markKnown(ents []dirent, gen uint64) []string {
	var rest []string
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, d := range ents {
		if e := q.byName[string(d.name)]; e != nil && d.regular {
			e.gen = gen
			continue
		}
		rest = append(rest, string(d.name))
	}
	return rest
}

// unmarked returns the known names scan gen did not list.
func (q *queue) unmarked(gen uint64) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var names []string
	for name, e := range q.byName {
		if e.gen != gen {
			names = append(names, name)
		}
	}
	return names
}

// unlink takes e out of whatever heap or map holds it, keeping byName.
func (q *queue) unlink(e *entry) {
	switch e.where {
	case inSettling:
		heap.Remove(&q.settling, e.index)
	case inReady:
		heap.Remove(&q.ready, e.index)
	case inBlocked:
		delete(q.blocked, e.name)
	}
	e.where = inNone
}

// restore adds claims found in .inflight at start-up; they are served
// before any spool file, oldest first. Their names count as in flight.
func (q *queue) restore(es []*entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range es {
		e.where = inRestored
		q.restored = append(q.restored, e)
		q.inflight[e.name] = e.mtime
	}
	q.notify()
}

// next returns the next file to send, taken out of the pending set, and
// whether it is a restored claim (already in .inflight). A spool file must
// still be verified (Lstat unchanged) and claimed by the caller, then marked
// with claimed, or handed back with observe or forget. With nothing ready it
// returns nil and how long until a settling file may be ready (0: none).
func (q *queue) next(now time.Time) (e *entry, restored bool, wait time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.restored) > 0 {
		e = q.restored[0]
		q.restored[0] = nil
		q.restored = q.restored[1:]
		e.where = inNone
		return e, true, 0
	}
	wait = q.promote(now)
	for q.ready.Len() > 0 {
		e = heap.Pop(&q.ready).(*entry)
		if _, busy := q.inflight[e.name]; busy {
			e.where = inBlocked
			q.blocked[e.name] = e
			continue
		}
		e.where = inNone
		delete(q.byName, e.name)
		return e, false, 0
	}
	return nil, false, wait
}

// claimed marks e as in flight: a spool file of the same name waits until
// done(e.name).
func (q *queue) claimed(e *entry) {
	q.mu.Lock()
	q.inflight[e.name] = e.mtime
	q.mu.Unlock()
}

// done ends the claim on name; a spool file of that name that waited for
// it becomes ready again.
func (q *queue) done(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inflight, name)
	if e := q.blocked[name]; e != nil {
		delete(q.blocked, name)
		e.where = inReady
		heap.Push(&q.ready, e)
		q.notify()
	}
}

// takeRestored removes and returns the restored claims not yet picked (to
// put them back in the spool at shutdown).
func (q *queue) takeRestored() []*entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	es := q.restored
	q.restored = nil
	for _, e := range es {
		delete(q.inflight, e.name)
	}
	return es
}

// stats returns the number of pending files (spool and restored) and the
// modification time of the oldest file not yet delivered, pending or in
// flight (Unix ns; 0 when none).
func (q *queue) stats() (pending int, oldest int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	pending = len(q.byName) + len(q.restored)
	min := func(m int64) {
		if oldest == 0 || m < oldest {
			oldest = m
		}
	}
	if q.ready.Len() > 0 {
		min(q.ready.items[0].mtime)
	}
	for _, m := range q.inflight { // restored claims included
		min(m)
	}
	for _, e := range q.settling.items {
		min(e.mtime)
	}
	for _, e := range q.blocked {
		min(e.mtime)
	}
	return pending, oldest
}
