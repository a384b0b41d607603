package sender

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"spoolgate/internal/fsutil"
)

// The spool directory as the sender's source (sender.source=spool, the
// default): a watcher keeps the pending files in the queue, a picker
// claims them oldest first by rename into .inflight, at most
// sender.workers at once, and a worker sends each claim (process, claim.go).

// spoolSource is the spool as the sender's source. New builds it; its run
// is called once, by Run.
type spoolSource struct {
	s       *Sender
	w       *watcher
	lock    atomic.Pointer[fsutil.DirLock] // the spool's, while run runs
	lockErr atomic.Pointer[error]          // the spool path no longer names the locked directory
}

func newSpoolSource(s *Sender) *spoolSource {
	sp := &spoolSource{s: s}
	sp.w = &watcher{
		dir:      s.dirs.spool,
		q:        s.q,
		interval: func() time.Duration { return s.live.Load().scanInterval },
		special:  func(name string, fi fs.FileInfo) { s.failSpecial(s.dirs.spool, name, fi) },
		onError: func(op string, err error) {
			s.log.Warn("spool watch: "+op, "err", err)
		},
	}
	return sp
}

// run creates the directories, locks the spool, watches it, takes back
// the claims an earlier run left in .inflight and scans the spool; then
// it claims and sends files until ctx is done, and drains: the claims in
// flight finish (hard cuts their attempts off), the restored claims not
// started go back into the spool.
func (sp *spoolSource) run(ctx, hard context.Context, started func(attrs ...any)) error {
	s := sp.s
	if err := s.dirs.ensure(); err != nil {
		return err
	}
	// One sender per spool: a flock on the directory itself.
	lock, err := fsutil.LockDir(s.dirs.spool)
	if errors.Is(err, fsutil.ErrLocked) {
		return fmt.Errorf("spool %s is in use by another spoolgate-sender: %w", s.dirs.spool, err)
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer lock.Close()
	sp.lock.Store(lock)
	fw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return fmt.Errorf("watch spool: %w", err)
	}
	defer fw.Close()
	if err := fw.Add(s.dirs.spool); err != nil {
		return fmt.Errorf("watch spool %s: %w", s.dirs.spool, err)
	}
	restored, err := sp.restore()
	if err != nil {
		return err
	}
	if err := sp.w.scan(); err != nil {
		return err
	}
	pending, _ := s.q.stats()
	started("spool", s.dirs.spool, "pending", pending, "restored", restored)

	var watching, workers sync.WaitGroup
	watching.Go(func() { sp.w.run(ctx, fw) })
	sp.pick(ctx, hard, &workers)
	workers.Wait()
	for _, e := range s.q.takeRestored() {
		s.putBackClaim(e.name)
	}
	watching.Wait()
	return nil
}

// ready is nil while the spool can be read and no claim is stuck.
func (sp *spoolSource) ready() error {
	if p := sp.lockErr.Load(); p != nil {
		return *p
	}
	if p := sp.w.scanErr.Load(); p != nil {
		return *p
	}
	if st := sp.s.stuck.list(); len(st) > 0 {
		c := st[0]
		return fmt.Errorf("%d claim(s) stuck: %s of %s failing since %s: %s (retried until it works)",
			len(st), c.What, c.Name, c.Since.Format(time.RFC3339), c.Error)
	}
	return nil
}

// reload applies the settle time reloaded.
func (sp *spoolSource) reload() { sp.s.q.setSettle(sp.s.live.Load().settle) }

// inFlight counts the claims being sent (not the restored claims still
// waiting for a worker).
func (sp *spoolSource) inFlight() int { return sp.s.q.claims() }

// restore takes back the claims left in .inflight by an earlier run: they
// are sent first. Sidecars of claims that are gone and temporary files
// are removed; non-regular files go to failed_dir.
func (sp *spoolSource) restore() (int, error) {
	s := sp.s
	des, err := os.ReadDir(s.dirs.inflight)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", s.dirs.inflight, err)
	}
	claims := make(map[string]bool)
	for _, de := range des {
		if name := de.Name(); name[0] != '.' && de.Type().IsRegular() {
			claims[name] = true
		}
	}
	var es []*entry
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(s.dirs.inflight, name)
		if name[0] == '.' {
			if de.Type().IsRegular() && !(strings.HasSuffix(name, ".ack") && claims[strings.TrimSuffix(name[1:], ".ack")]) {
				if err := os.Remove(path); err != nil {
					s.log.Warn("remove leftover", "path", path, "err", err)
				}
			}
			continue
		}
		fi, err := os.Lstat(path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("restore claim", "path", path, "err", err)
			}
			continue
		}
		switch {
		case fi.Mode().IsRegular():
			es = append(es, &entry{name: name, size: fi.Size(), mtime: fi.ModTime().UnixNano()})
		case fi.IsDir():
		default:
			s.failSpecial(s.dirs.inflight, name, fi)
		}
	}
	slices.SortFunc(es, func(a, b *entry) int {
		if c := cmp.Compare(a.mtime, b.mtime); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	s.q.restore(es)
	return len(es), nil
}

// pick claims files and starts a worker for each, at most workers at
// once, until ctx is done.
func (sp *spoolSource) pick(ctx, hard context.Context, workers *sync.WaitGroup) {
	s := sp.s
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if err := s.slots.acquire(ctx); err != nil {
			return
		}
		e, restored, err := sp.nextClaim(ctx, timer)
		if errors.Is(err, errYield) {
			s.slots.release() // to a claim whose writer is done
			continue
		}
		if err != nil {
			s.slots.release()
			return
		}
		s.m.inflight.Inc()
		workers.Go(func() {
			sl := &slot{s: s, held: true, key: resumeKey{mtime: e.mtime, name: e.name}}
			s.process(ctx, hard, e, restored, sl) // gives the slot back
			s.q.done(e.name)
		})
	}
}

// errYield: the picker gives its slot to a claim that waited for its
// writer (limiter.resume).
var errYield = errors.New("slot wanted by a parked claim")

// nextClaim waits for the circuit to be closed and a file to be ready, and
// claims it.
func (sp *spoolSource) nextClaim(ctx context.Context, timer *time.Timer) (*entry, bool, error) {
	s := sp.s
	for {
		if err := s.circuit.wait(ctx); err != nil {
			return nil, false, err
		}
		now := time.Now()
		e, restored, wait := s.q.next(now)
		if e != nil {
			if restored || sp.claim(e) {
				return e, restored, nil
			}
			continue
		}
		if wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-s.q.changed:
		case <-timer.C:
		case <-s.slots.yieldWanted():
			if s.slots.mustYield() {
				timer.Stop()
				return nil, false, errYield
			}
		}
		timer.Stop()
	}
}

// claim renames a settled file into .inflight. Whether it is still the
// file that settled (size, mtime) and a regular one is checked by its
// worker on the open file: that spares a path lookup in what may be a very
// large spool directory, on the one goroutine that claims.
func (sp *spoolSource) claim(e *entry) bool {
	s := sp.s
	// Files are claimed by path: the path must still name the locked spool,
	// or a second sender could own the directory now under it.
	if err := sp.lock.Load().Held(); err != nil {
		if sp.lockErr.Swap(&err) == nil {
			s.log.Error("spool directory moved or replaced since start: not claiming from it; restart the sender", "dir", s.dirs.spool, "err", err)
		}
		return false
	}
	if err := s.dirs.claim(e.name); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("claim failed", "err", err)
		}
		return false
	}
	s.q.claimed(e)
	return true
}
