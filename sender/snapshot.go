package sender

import (
	"container/heap"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"time"

	"spoolgate/conf"
)

// Snapshot is what a running sender shows of itself: the console, its
// /api/status and `spoolgate status` read it. It is a copy: changing it
// changes nothing in the sender.
type Snapshot struct {
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready,omitempty"` // why not, when not ready
	Circuit  struct {
		Open  bool      `json:"open"`
		Since time.Time `json:"since,omitzero"` // when it opened; zero while closed
		Cause string    `json:"cause,omitempty"`
		// NextProbe is when the open circuit dials the remote next (at
		// most 4 s apart: docs/PROTOCOL.md §5); zero while closed.
		NextProbe time.Time `json:"next_probe,omitzero"`
	} `json:"circuit"`
	LastError *ErrorEvent   `json:"last_error,omitempty"` // the latest failed attempt or dial
	Remotes   []RemoteState `json:"remotes"`
	// Pending counts the files waiting to be sent (spool, and claims
	// restored at start-up); InFlight the files being sent now.
	Pending              int     `json:"pending"`
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
	InFlight             int     `json:"in_flight"`
	// Stuck lists the claims whose disposal failed and is being retried
	// (a full file system: stuck.go), longest stuck first; they are among
	// InFlight.
	Stuck []StuckClaim `json:"stuck"`
	// Delivered, Rejected and Failed count messages (lines) since start.
	Delivered int64 `json:"delivered_total"`
	Rejected  int64 `json:"rejected_total"`
	Failed    int64 `json:"failed_total"`
	// Oldest lists the oldest pending files, oldest first.
	Oldest []PendingFile `json:"oldest_pending"`
}

// ErrorEvent is one error with where and when it happened.
type ErrorEvent struct {
	At     time.Time `json:"at"`
	Remote string    `json:"remote,omitempty"`
	Text   string    `json:"text"`
}

// Remote states of RemoteState.State.
const (
	RemoteActive  = "active"  // the address in use
	RemoteStandby = "standby" // a backup not in use, or not tried yet
	RemoteDown    = "down"    // the last dial failed
)

// RemoteState is one address of sender.remote.
type RemoteState struct {
	Addr      string    `json:"addr"`
	State     string    `json:"state"`
	LastError string    `json:"last_error,omitempty"`
	ErrorAt   time.Time `json:"error_at,omitzero"`
	LastOK    time.Time `json:"last_ok,omitzero"` // the last successful dial
}

// PendingFile is one file waiting in the spool.
type PendingFile struct {
	Name       string    `json:"name"`
	Size       int64     `json:"size"`
	ModTime    time.Time `json:"mtime"`
	AgeSeconds float64   `json:"age_seconds"`
	Restored   bool      `json:"restored,omitempty"` // a claim taken back from .inflight
}

// Snapshot returns the sender's state with at most oldest of the oldest
// pending files. It is cheap whatever the backlog (the listing walks the
// top of the queue's heap, O(oldest·log oldest)) and safe for concurrent
// use, also before Run and after it returned.
func (s *Sender) Snapshot(now time.Time, oldest int) Snapshot {
	var sn Snapshot
	if err := s.Ready(); err != nil {
		sn.NotReady = err.Error()
	} else {
		sn.Ready = true
	}
	open, since, cause := s.circuit.isOpen()
	sn.Circuit.Open = open
	if open {
		sn.Circuit.Since = since
		if cause != nil {
			sn.Circuit.Cause = cause.Error()
		}
		sn.Circuit.NextProbe = s.circuit.nextProbe()
	}
	sn.LastError = s.lastErr.Load()
	sn.Remotes = s.client.states(open)
	for _, r := range sn.Remotes {
		if r.LastError != "" && (sn.LastError == nil || r.ErrorAt.After(sn.LastError.At)) {
			sn.LastError = &ErrorEvent{At: r.ErrorAt, Remote: r.Addr, Text: "connect: " + r.LastError}
		}
	}
	var om int64
	sn.Oldest, sn.Pending, om = s.q.oldest(oldest, now)
	if om != 0 {
		sn.OldestPendingSeconds = max(0, now.Sub(time.Unix(0, om)).Seconds())
	}
	sn.InFlight = s.src.inFlight()
	sn.Stuck = s.stuck.list()
	sn.Delivered, sn.Rejected, sn.Failed = s.delivered.Load(), s.rejected.Load(), s.failed.Load()
	return sn
}

// noteError records the latest failed attempt for the console.
func (s *Sender) noteError(remote, text string) {
	s.lastErr.Store(&ErrorEvent{At: time.Now(), Remote: remote, Text: text})
}

// remoteNote is what the client last saw of one address.
type remoteNote struct {
	err   string
	errAt time.Time
	okAt  time.Time
}

// note records the outcome of a dial of remotes[idx]; c.mu must be held.
func (c *client) note(idx int, err error) {
	if c.notes == nil {
		c.notes = make([]remoteNote, len(c.remotes))
	}
	if err != nil {
		c.notes[idx].err, c.notes[idx].errAt = err.Error(), time.Now()
	} else {
		c.notes[idx].okAt = time.Now()
	}
}

// states returns the state of each remote address. While the circuit is
// open every address is down.
func (c *client) states(circuitOpen bool) []RemoteState {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]RemoteState, len(c.remotes))
	for i, addr := range c.remotes {
		var n remoteNote
		if i < len(c.notes) {
			n = c.notes[i]
		}
		st := RemoteStandby
		switch {
		case circuitOpen, n.errAt.After(n.okAt) && i != c.cur:
			st = RemoteDown
		case i == c.cur:
			st = RemoteActive
		}
		out[i] = RemoteState{Addr: addr, State: st, LastOK: n.okAt}
		if !n.errAt.IsZero() {
			out[i].LastError, out[i].ErrorAt = n.err, n.errAt
		}
	}
	return out
}

// promote moves the settling files that have settled by now into the
// ready heap, and returns how long until the next one settles (0: none).
// It changes no order the sender sees: next does the same before a pick.
// q.mu must be held.
func (q *queue) promote(now time.Time) (wait time.Duration) {
	for q.settling.Len() > 0 {
		s := q.settling.items[0]
		if d := s.seen.Add(q.settle).Sub(now); d > 0 {
			return d
		}
		heap.Pop(&q.settling)
		s.where = inReady
		heap.Push(&q.ready, s)
	}
	return 0
}

// oldest returns up to k pending files, oldest first (the restored claims
// first, as they are sent first), the number pending, and the modification
// time of the oldest file not delivered (as stats). The ready files come
// from the top of their heap without sorting it (a walk of the k smallest,
// O(k log k)); files still settling (a few seconds' worth) by the order
// they were seen.
func (q *queue) oldest(k int, now time.Time) ([]PendingFile, int, int64) {
	q.mu.Lock()
	q.promote(now)
	q.mu.Unlock()
	pending, om := q.stats()
	if k <= 0 {
		return nil, pending, om
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]PendingFile, 0, k)
	add := func(e *entry, restored bool) {
		mt := time.Unix(0, e.mtime)
		out = append(out, PendingFile{Name: e.name, Size: e.size, ModTime: mt, AgeSeconds: max(0, now.Sub(mt).Seconds()), Restored: restored})
	}
	for _, e := range q.restored {
		if len(out) == k {
			return out, pending, om
		}
		add(e, true)
	}
	n := len(out)
	for _, e := range topK(&q.ready, k-n) {
		add(e, false)
	}
	for _, e := range topK(&q.settling, k-n) {
		add(e, false)
	}
	for _, e := range q.blocked {
		add(e, false)
	}
	rest := out[n:]
	slices.SortFunc(rest, func(a, b PendingFile) int {
		if c := a.ModTime.Compare(b.ModTime); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out[:min(len(out), k)], pending, om
}

// claims returns the number of files claimed and being sent (not the
// restored claims still waiting for a worker).
func (q *queue) claims() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.inflight) - len(q.restored)
}

// topK returns the k first entries of h in its order without changing h:
// a small heap of candidate positions, starting at the root; each pop
// offers its two children.
func topK(h *entryHeap, k int) []*entry {
	if k <= 0 || h.Len() == 0 {
		return nil
	}
	out := make([]*entry, 0, min(k, h.Len()))
	c := &posHeap{h: h, pos: make([]int, 0, 2*k+1)}
	c.pos = append(c.pos, 0)
	for len(out) < k && len(c.pos) > 0 {
		i := heap.Pop(c).(int)
		out = append(out, h.items[i])
		for _, ch := range [2]int{2*i + 1, 2*i + 2} {
			if ch < h.Len() {
				heap.Push(c, ch)
			}
		}
	}
	return out
}

// posHeap orders positions of an entryHeap by that heap's order.
type posHeap struct {
	h   *entryHeap
	pos []int
}

func (p *posHeap) Len() int           { return len(p.pos) }
func (p *posHeap) Less(i, j int) bool { return p.h.Less(p.pos[i], p.pos[j]) }
func (p *posHeap) Swap(i, j int)      { p.pos[i], p.pos[j] = p.pos[j], p.pos[i] }
func (p *posHeap) Push(x any)         { p.pos = append(p.pos, x.(int)) }
func (p *posHeap) Pop() any {
	n := len(p.pos) - 1
	x := p.pos[n]
	p.pos = p.pos[:n]
	return x
}

// Counts returns the messages delivered, rejected and failed since start:
// the console samples them for its per-minute chart. Safe for concurrent
// use.
func (s *Sender) Counts() [3]uint64 {
	return [3]uint64{uint64(s.delivered.Load()), uint64(s.rejected.Load()), uint64(s.failed.Load())}
}

// Ages returns the modification times of the files pending in the spool
// and .inflight, and the failure times of the files in failed_dir (the
// .reason file's time), read from the directories alone, for `spoolgate
// status -age`.
func Ages(c conf.Sender) (pending, failed []time.Time, err error) {
	d := newDirs(c.SpoolDir, c.FailedDir, c.SentDir)
	err = eachEntry(d.spool, func(name string, fi fs.FileInfo) {
		if eligibleName(name) && fi.Mode().IsRegular() {
			pending = append(pending, fi.ModTime())
		}
	})
	if err != nil {
		return nil, nil, err
	}
	err = eachEntry(d.inflight, func(name string, fi fs.FileInfo) {
		if name[0] != '.' && fi.Mode().IsRegular() {
			pending = append(pending, fi.ModTime())
		}
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	list, err := listFailed(d.failed)
	for _, f := range list {
		failed = append(failed, f.Time)
	}
	return pending, failed, err
}
