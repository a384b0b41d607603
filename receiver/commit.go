package receiver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"spoolgate/internal/fsutil"
)

// run is the writer goroutine: it alone owns the open file. It gathers
// the requests queued while the last commit ran into one write and sync
// (group commit), closes the file when its minute is over, retries failed
// publishes and probes a failing disk, until Close closes reqs.
func (s *Store) run() {
	defer close(s.done)
	t := time.NewTicker(s.tick)
	defer t.Stop()
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	// released is how many callers the last commit woke, queued how many
	// lines arrived while it ran: together, the lines to expect next.
	released, queued := 0, 0
	var syncAvg time.Duration // moving average of a commit's duration
	for {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				s.finish()
				return
			}
			s.batch, s.nlines = append(s.batch[:0], r), len(r.lines)
			open := s.drainReqs()
			// Commit delay: the callers the last commit woke are about to
			// send their next lines. Without a wait for them, the callers
			// split into groups that take turns, each sync covering a part
			// of them. The sync is the cost (on a slow disk it is the whole
			// cost), so wait for the expected lines up to about one
			// average sync: at worst that doubles the latency of a batch,
			// while every line that makes it saves a share of a sync.
			// (The figures behind the cap: BENCHMARKS.md, "Commit delay".)
			// (Counted in callers, not lines: each sends one request next.)
			if want := released + queued; open && s.fsync && len(s.batch) < want && s.nlines < maxBatch {
				if d := min(syncAvg, maxCommitDelay); d > 20*time.Microsecond {
					delay.Reset(d)
				wait:
					for len(s.batch) < want && s.nlines < maxBatch {
						select {
						case r, ok := <-s.reqs:
							if !ok {
								open = false
								break wait
							}
							s.batch = append(s.batch, r)
							s.nlines += len(r.lines)
						case <-delay.C:
							break wait
						}
					}
					if !delay.Stop() {
						select {
						case <-delay.C:
						default:
						}
					}
				}
			}
			start := time.Now()
			s.commit(s.batch)
			syncAvg += (time.Since(start) - syncAvg) / 8
			released, queued = len(s.batch), len(s.reqs)
			clear(s.batch)
			if !open {
				s.finish()
				return
			}
		case <-t.C:
			if s.f != nil && unixMinute(s.clock()) != s.minute {
				s.closeFile(true)
			}
			s.retryPublish()
			if s.failing && !s.probing {
				s.probing = true
				go func() { s.probeCh <- s.probe() }()
			}
		case pr := <-s.probeCh:
			s.probing = false
			if pr.err == nil && s.failing {
				s.log.Info("store probe worked: a write and sync in the data dir succeeded", "dir", s.dir, "took", pr.took)
				s.setHealth(nil)
			}
		}
	}
}

// drainReqs moves the requests already queued into s.batch, up to
// maxBatch lines (a request is not split, so the last may go beyond),
// without blocking. It returns false when reqs is closed.
func (s *Store) drainReqs() bool {
	for s.nlines < maxBatch {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return false
			}
			s.batch = append(s.batch, r)
			s.nlines += len(r.lines)
		default:
			return true
		}
	}
	return true
}

// finish runs when reqs is closed and drained. In rename mode it publishes
// the open minute too: every line in it was made durable before its 200 (a
// restart within the minute then starts a .part that is published under a
// collision suffix).
func (s *Store) finish() {
	if s.probing {
		<-s.probeCh
		s.probing = false
	}
	if s.f != nil {
		s.closeFile(true)
	}
	s.retryPublish()
	for _, p := range s.unpub {
		s.log.Warn("left unpublished; it is published at the next start", "file", p)
	}
}

// probe writes, syncs and removes ProbeName in the data dir. Whatever
// stands under that name is removed first (a symlink itself, never its
// target) and the file is created with O_EXCL, which follows no symlink:
// a link planted there cannot make the probe overwrite another file or
// report a recovery of a disk it did not write to.
func (s *Store) probe() probeResult {
	start := time.Now()
	path := filepath.Join(s.dir, ProbeName)
	err := s.lock.Held() // a replaced data dir is not a recovered one
	if err == nil {
		err = os.Remove(path)
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	}
	if err == nil {
		_, err = f.Write(make([]byte, 4096))
		if err == nil {
			err = s.syncFn(f)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if rerr := os.Remove(path); err == nil {
			err = rerr
		}
	}
	return probeResult{err: err, took: time.Since(start)}
}

func (s *Store) commit(batch []*storeReq) {
	err := s.write(batch)
	if err == nil {
		var at time.Time
		n := 0
		for _, r := range batch {
			if r.where != nil && at.IsZero() {
				at = s.clock()
			}
			for i := range r.where {
				r.where[i] = Where{File: s.base, Line: s.first + n + i, At: at}
			}
			n += len(r.lines)
		}
		s.onBatch(n)
	}
	s.setHealth(err)
	for _, r := range batch {
		r.done <- err
	}
}

func (s *Store) setHealth(err error) {
	if err != nil && !s.failing {
		s.log.Error("store failing: answering 500 until a write succeeds", "dir", s.dir, "err", err)
	} else if err == nil && s.failing {
		s.log.Info("store recovered", "dir", s.dir)
	}
	if (err != nil) != s.failing {
		s.failing = err != nil
		s.healthMu.Lock()
		s.healthErr = err
		s.healthMu.Unlock()
	}
}

// write appends batch to the current minute's file and makes it durable.
// On error no line of batch is left beyond s.size (best effort: if even the
// truncate fails, s.dirty stays set and later batches fail until it works).
func (s *Store) write(batch []*storeReq) error {
	m := unixMinute(s.clock())
	if s.f != nil && m != s.minute {
		s.closeFile(true)
	}
	s.buf = s.buf[:0]
	lines := 0
	for _, r := range batch {
		for _, l := range r.lines {
			s.buf = append(s.buf, l...)
			s.buf = append(s.buf, '\n')
		}
		lines += len(r.lines)
	}
	// The downstream workflow may take the open file away (a cleanup that
	// removes the .part, a move of the file in append mode). Lines written
	// to a removed file are in no file, so the path is checked before the
	// write and again after the sync that the 200s depend on: a batch that
	// went into a removed file is written again to a new one, once; if that
	// is removed too the batch is answered 500. Each check is one statx.
	for try := 0; ; try++ {
		if s.f != nil {
			st, err := s.check()
			if err != nil {
				return err
			}
			if st != fileOK {
				s.lost(st, "")
			}
		}
		if s.f == nil {
			if err := s.openFile(m); err != nil {
				return err
			}
		}
		if err := s.writeSync(lines); err != nil {
			return err
		}
		st, err := s.check()
		if err != nil {
			return err
		}
		switch st {
		case fileOK:
			return nil
		case fileMoved: // the lines are in the file under its new name
			s.lost(st, "")
			return nil
		}
		if try > 0 {
			s.lost(st, "removed during the write again: the batch is answered 500")
			return fmt.Errorf("store: request file in %s removed during two writes of a batch", s.dir)
		}
		s.lost(st, "removed during a write: writing the batch again to a new file")
	}
}

// writeSync appends s.buf, which holds lines lines, to the open file and
// syncs it (fsync=always); s.first is then the number of its first line
// in the file. On error no byte of s.buf is left beyond s.size (best effort: if even the
// truncate fails, s.dirty stays set and later batches fail until it works).
func (s *Store) writeSync(lines int) error {
	if s.dirty {
		if err := s.f.Truncate(s.size); err != nil {
			return fmt.Errorf("store: truncate %s after failed write: %w", s.path, err)
		}
		s.dirty = false
	}
	n, err := s.f.Write(s.buf)
	if err == nil && s.fsync {
		err = s.syncFn(s.f)
		if err == nil && s.newFile {
			err = fsutil.SyncDir(s.dir)
		}
	}
	if err != nil {
		err = fmt.Errorf("store: write %s: %w", s.path, err)
		if n > 0 {
			s.dirty = true
			if terr := s.f.Truncate(s.size); terr == nil {
				s.dirty = false
			}
		}
		return err
	}
	s.newFile = false
	s.size += int64(n)
	s.first = s.nline + 1
	s.nline += lines
	return nil
}
