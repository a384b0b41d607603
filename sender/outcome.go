package sender

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"spoolgate/internal/fsutil"
)

// The outcomes of a claim, in one place: a worker calls one of these once
// a line or a file is done with, and each logs and counts what happened
// (the directory operations are dirs', in files.go). A claimed file ends
// delivered (finish: deleted or moved to sent_dir), failed (failWhole,
// failSpecial: in failed_dir with a .reason file), or put back into the
// spool (putBack, putBackClaim, abort); on the way, single lines are
// delivered (lineDone), or saved to failed_dir (saveRejected, saveUnsent).
// What must be written to failed_dir or sent_dir is retried until it works
// while the claim counts as stuck (untilDone, stuck.go).

// claim renames a settled file into .inflight. Whether it is still the
// file that settled (size, mtime) and a regular one is checked by its
// worker on the open file: that spares a path lookup in what may be a very
// large spool directory, on the one goroutine that claims.
func (s *Sender) claim(e *entry) bool {
	// Files are claimed by path: the path must still name the locked spool,
	// or a second sender could own the directory now under it.
	if err := s.lock.Load().Held(); err != nil {
		if s.lockErr.Swap(&err) == nil {
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

// failSpecial moves a symlink, FIFO, device or socket to failed_dir
// without opening it; on another file system failed_dir gets a new one of
// its kind, or a stand-in for a device (fsutil.Move). A move that fails is
// logged at error once per name, then at debug: the watcher finds the file
// again at every scan.
func (s *Sender) failSpecial(dir, name string, fi fs.FileInfo) {
	why := describeMode(fi.Mode())
	f := failure{file: name, lines: "-", reason: "not a regular file: " + why + "; never opened"}
	final, err := s.dirs.place(filepath.Join(dir, name), name)
	if err != nil && final != "" {
		// Made again in failed_dir, but the one in the spool could not be
		// removed: undone, or every scan would make another.
		_ = os.Remove(final)
	}
	if err == nil {
		if fsutil.StandIn(fi, final) {
			f.reason += "; failed_dir is on another file system: an empty named pipe without permission bits stands in for it"
		}
		err = s.dirs.writeReason(final, f, specialReasonPerm)
	}
	if err != nil {
		if s.specials.first(name) {
			s.log.Error("move non-regular file to failed_dir", "name", name, "type", why, "err", err)
		} else {
			s.log.Debug("move non-regular file to failed_dir", "name", name, "type", why, "err", err)
		}
		return
	}
	s.specials.forget(name)
	s.log.Warn("moved non-regular file to failed_dir", "name", name, "type", why, "to", final)
}

// nameSet is a set of names, safe for concurrent use: the special files
// whose move failed and was logged.
type nameSet struct {
	mu    sync.Mutex
	names map[string]bool
}

// first adds name and reports whether it was new. The set is bounded: when
// it is full it starts again (some names are then logged again).
func (n *nameSet) first(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.names[name] {
		return false
	}
	if n.names == nil || len(n.names) >= 4096 {
		n.names = make(map[string]bool)
	}
	n.names[name] = true
	return true
}

// forget removes name.
func (n *nameSet) forget(name string) {
	n.mu.Lock()
	delete(n.names, name)
	n.mu.Unlock()
}

// putBack returns an unfinished claim to the spool (see dirs.putBack).
func (s *Sender) putBack(name string, data []byte, offset int, mtime time.Time, perm fs.FileMode) {
	final, err := s.dirs.putBack(name, data, offset, mtime, perm)
	if err != nil {
		s.log.Error("put claim back into the spool; it stays in .inflight and is sent at the next start", "name", name, "err", err)
		return
	}
	s.putBacks.Add(1)
	s.log.Debug("claim put back", "name", name, "to", final)
}

// finish disposes of a claim whose every line is done: deleted, or moved
// to sent_dir, then its sidecar removed; a step that fails is retried
// until it works (untilDone: the claim is stuck meanwhile).
func (s *Sender) finish(ctx context.Context, sl *slot, name string, sidecar bool) {
	archived := s.dirs.sent == ""
	steps := []func() error{
		func() error {
			if archived {
				return nil
			}
			final, err := s.dirs.archive(name)
			archived = final != "" // copied to sent_dir, also when the claim could not be removed (below)
			if !archived {
				return err
			}
			return nil
		},
		func() error { return s.dirs.removeClaim(name) },
	}
	if sidecar {
		steps = append(steps, func() error { return s.dirs.removeAck(name) })
	}
	s.untilDone(ctx, sl, name, "dispose of delivered file", steps...)
}

// failWhole moves a claimed file of mode perm to failed_dir under its own
// name (failedName), retried until it works (untilDone).
func (s *Sender) failWhole(ctx context.Context, sl *slot, name string, perm fs.FileMode, f failure) {
	src := filepath.Join(s.dirs.inflight, name)
	final, ok := s.saveFailed(ctx, sl, name, "move file to failed_dir", &f, reasonPerm(perm), func() (string, error) {
		return s.dirs.fail(src, name, f, reasonPerm(perm))
	})
	if !ok {
		return
	}
	// A move across file systems that copied the claim but could not
	// remove it: it must not be sent again.
	s.untilDone(ctx, sl, name, "remove claim moved to failed_dir", func() error { return s.dirs.removeClaim(name) })
	if err := s.dirs.removeAck(name); err != nil {
		s.log.Warn("remove sidecar", "name", name, "err", err)
	}
	s.log.Warn("file failed", "name", name, "lines", f.lines, "to", final, "code", f.code, "reason", f.reason)
}

// saveFailed runs save, which puts lines or a file of the claim name into
// failed_dir with the reason *f (a dirs.fail… call), until it works
// (untilDone): once they are in failed_dir but their reason is not, only
// the reason (mode rperm) is written again. It returns their path, and
// false when the claim stays in .inflight (see untilDone).
func (s *Sender) saveFailed(ctx context.Context, sl *slot, name, what string, f *failure, rperm fs.FileMode, save func() (string, error)) (string, bool) {
	var final string
	ok := s.untilDone(ctx, sl, name, what, func() error {
		if final != "" {
			return s.dirs.writeReason(final, *f, rperm)
		}
		var err error
		final, err = save()
		return err
	})
	return final, ok
}

// putBackClaim returns a claim that was never started to the spool,
// keeping what its sidecar says is done out of it.
func (s *Sender) putBackClaim(name string) {
	path := filepath.Join(s.dirs.inflight, name)
	wb := s.bufs.Get().(*workBuf)
	defer s.bufs.Put(wb)
	data, fi, err := readClaim(path, wb.data)
	wb.data = data
	if err != nil {
		s.putBack(name, nil, 0, time.Time{}, 0)
		return
	}
	if a, err := s.dirs.readAck(name, fi, data); err == nil && a.lines > 0 {
		s.putBack(name, data, int(a.offset), fi.ModTime(), fi.Mode().Perm())
		return
	}
	s.putBack(name, nil, 0, time.Time{}, 0)
}

// abort ends a claim that a drain stopped before line lineNo (at off): it
// goes back to the spool holding its unsent lines (all of it when nothing
// was done), or stays in .inflight with its progress recorded while another
// process still holds it open for writing, since a copy of the unsent lines
// would miss what that writer appends.
func (s *Sender) abort(ctx context.Context, sl *slot, name string, cf *claimFile, data []byte, off, lineNo, first int, mtime time.Time, perm fs.FileMode, p *progress) {
	if off <= first {
		s.putBack(name, nil, 0, time.Time{}, 0) // nothing done: the file goes back as it is
		return
	}
	data, st, err := cf.refresh(data)
	switch {
	case errors.Is(err, errTooLarge) && writerOf(cf, !s.noLeases) != writerOpen:
		if s.failOverCap(ctx, sl, name, cf, off, lineNo, first, perm, p) {
			return
		}
	case err != nil:
		s.log.Error("check claimed file", "name", name, "err", err)
	case st == fileChanged:
		s.log.Warn("file changed in place while it was sent: back to the spool whole, its lines are sent again", "name", name)
		s.putBack(name, nil, 0, time.Time{}, 0)
		return
	case writerOf(cf, !s.noLeases) != writerOpen:
		if same, err := cf.verify(data); err == nil && !same { // rewritten in place: what is left is not data[off:]
			s.log.Warn("file changed in place while it was sent: back to the spool whole, its lines are sent again", "name", name)
			s.putBack(name, nil, 0, time.Time{}, 0)
			return
		}
		s.putBack(name, data, off, mtime, perm) // under the lease, when granted
		return
	}
	p.record(lineNo-1, off, cf.fi, data, true)
	s.log.Warn("stopping while the file is still open for writing: it stays in .inflight and is resumed at the next start",
		"name", name, "done_lines", lineNo-1)
}

// failOverCap ends a claim that grew past maxFileBytes after it was
// claimed, as a file over the cap at its claim is ended: what is not done
// yet goes to failed_dir with a reason naming the cap, at once. Nothing
// done: the file goes whole under its name; else the lines from lineNo (at
// off) are copied there, and the claim is disposed of like a delivered
// one. It is called with no writer holding the file open (under the
// lease), or when that cannot be told. False when the lines could not be
// saved (logged): the claim then stays in .inflight.
func (s *Sender) failOverCap(ctx context.Context, sl *slot, name string, cf *claimFile, off, lineNo, first int, perm fs.FileMode, p *progress) bool {
	f := failure{file: name, reason: errTooLarge.Error() + " (the most the sender reads of one spool file): it grew past that after it was claimed; split it"}
	if p.recorded == 0 && (first < 0 || off <= first) {
		f.lines = "all"
		s.failWhole(ctx, sl, name, perm, f)
		return true
	}
	var n int
	to, ok := s.saveFailed(ctx, sl, name, "save the lines of a file that grew past the cap", &f, reasonPerm(perm), func() (string, error) {
		var to string
		var err error
		to, n, err = s.dirs.failRest(cf.f, int64(off), lineNo, &f, perm)
		return to, err
	})
	if !ok {
		return false
	}
	s.countFailed(int64(n))
	s.log.Warn("file grew past the cap after it was claimed: its unsent lines went to failed_dir", "name", name,
		"lines", f.lines, "to", to, "max_bytes", maxFileBytes)
	s.finish(ctx, sl, name, p.sidecar)
	return true
}

// writerOf is cf.writer without the reason.
func writerOf(cf *claimFile, leases bool) writerState {
	ws, _ := cf.writer(leases)
	return ws
}

// lineDone counts a line delivered.
func (s *Sender) lineDone(ctx context.Context, name string, lineNo int, r lineResult) {
	s.delivered.Add(1)
	s.m.delivered.Inc()
	if s.log.Enabled(ctx, slog.LevelDebug) { // its arguments escape: no cost per line at info
		s.log.Debug("delivered", "name", name, "line", lineNo, "remote", r.remote, "attempts", r.attempts)
	}
}

// countRejected counts a line rejected (400, or invalid before sending).
func (s *Sender) countRejected() {
	s.rejected.Add(1)
	s.m.rejected.Inc()
}

// countFailed counts n lines failed after the retries of the first ran out.
func (s *Sender) countFailed(n int64) {
	s.failed.Add(n)
	s.m.failed.Add(float64(n))
}

// saveRejected saves the rejected line lineNo of a claim (line, its bytes
// with LF) to failed_dir as <name>.line-<n> with mode perm, retried until
// it works (untilDone). False when it did not (logged): the claim then
// stays in .inflight.
func (s *Sender) saveRejected(ctx context.Context, sl *slot, line []byte, f failure, lineNo int, perm fs.FileMode) bool {
	to, ok := s.saveFailed(ctx, sl, f.file, "save rejected line", &f, reasonPerm(perm), func() (string, error) {
		return s.dirs.failData(line, f.file+".line-"+f.lines, f, perm)
	})
	if !ok {
		return false
	}
	s.log.Warn("line rejected", "name", f.file, "line", lineNo, "to", to, "reason", f.reason)
	return true
}

// saveUnsent saves the unsent lines of a claim, from line lineNo (several
// of them: multi) to the end, to failed_dir as <name>.line(s)-<f.lines>
// with mode perm, retried until it works (untilDone). False when it did
// not (logged): the claim then stays in .inflight.
func (s *Sender) saveUnsent(ctx context.Context, sl *slot, rest []byte, f failure, lineNo int, multi bool, perm fs.FileMode) bool {
	suffix := ".line-"
	if multi {
		suffix = ".lines-"
	}
	to, ok := s.saveFailed(ctx, sl, f.file, "save unsent lines", &f, reasonPerm(perm), func() (string, error) {
		return s.dirs.failData(rest, f.file+suffix+f.lines, f, perm)
	})
	if !ok {
		return false
	}
	s.log.Warn("lines failed after retries", "name", f.file, "lines", f.lines, "to", to, "reason", f.reason)
	return true
}
