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
	"spoolgate/internal/journal"
)

// The outcomes of a claim, in one place: each logs and counts what
// happened and returns how the claim ended (claimEnd); the directory
// operations are dirs', in files.go. A claimed file ends delivered
// (finish: deleted or moved to sent_dir), failed (failWhole, failSpecial:
// in failed_dir with a .reason file), put back into the spool whole or
// holding its lines not done (putBackWhole, putBackRest; at a drain:
// abort, putBackClaim), or left in .inflight to be resumed at the next
// start (leaveForWriter, stay); stopped is the one home of the ends that
// awaitEnd, or a drain's look, finds. On the way, single lines are
// delivered (countDelivered), or saved to failed_dir (saveRejected,
// saveUnsent). What must be written to failed_dir or sent_dir is retried
// until it works while the claim counts as stuck (untilDone, stuck.go).

// failSpecial moves a symlink, FIFO, device or socket to failed_dir
// without opening it; on another file system failed_dir gets a new one of
// its kind, or a stand-in for a device (fsutil.Move). A move that fails is
// logged at error once per name, then at debug: the watcher finds the file
// again at every scan. It reports whether the file was moved.
func (s *Sender) failSpecial(dir, name string, fi fs.FileInfo) bool {
	why := fsutil.Kind(fi.Mode())
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
		return false
	}
	s.specials.forget(name)
	s.log.Warn("moved non-regular file to failed_dir", "name", name, "type", why, "to", final)
	s.tr.file(journal.Failed, name, filepath.Base(final), f.reason)
	return true
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

// putBackWhole returns the claim name to the spool as it is (a rename):
// its lines are all sent again.
func (s *Sender) putBackWhole(name string) claimEnd {
	return s.putBack(name, nil, 0, time.Time{}, 0, claimPutBack)
}

// putBackFrom returns the claim name, whose content is data, to the spool
// holding only data[offset:], its lines not done, with modification time
// mtime and mode perm.
func (s *Sender) putBackFrom(name string, data []byte, offset int, mtime time.Time, perm fs.FileMode) claimEnd {
	return s.putBack(name, data, offset, mtime, perm, claimPutBackRest)
}

// putBack returns an unfinished claim to the spool (see dirs.putBack): it
// ended as end, or stuck when the put back failed.
func (s *Sender) putBack(name string, data []byte, offset int, mtime time.Time, perm fs.FileMode, end claimEnd) claimEnd {
	final, err := s.dirs.putBack(name, data, offset, mtime, perm)
	if err != nil {
		s.log.Error("put claim back into the spool; it stays in .inflight and is sent at the next start", "name", name, "err", err)
		return claimStuck
	}
	s.putBacks.Add(1)
	s.log.Debug("claim put back", "name", name, "to", final)
	return end
}

// putBackClaim returns a claim that was never started to the spool,
// keeping what its sidecar says is done out of it.
func (s *Sender) putBackClaim(name string) {
	path := filepath.Join(s.dirs.inflight, name)
	wb := s.bufs.Get().(*workBuf)
	defer s.bufs.Put(wb)
	data, fi, err := readClaim(path, wb.data)
	wb.data = data
	if err == nil {
		if a, err := s.dirs.readAck(name, fi, data); err == nil && a.lines > 0 {
			s.putBackFrom(name, data, int(a.offset), fi.ModTime(), fi.Mode().Perm())
			return
		}
	}
	s.putBackWhole(name)
}

// putBackWhole returns the claim to the spool as it is.
func (c *claim) putBackWhole() claimEnd { return c.s.putBackWhole(c.name) }

// putBackRest returns the claim to the spool holding only its lines not
// done, with its mode and modification time.
func (c *claim) putBackRest() claimEnd {
	return c.s.putBackFrom(c.name, c.data, c.off, c.mtime, c.perm)
}

// abort ends a claim that a drain stopped before its next line: it goes
// back to the spool holding its lines not done (all of it when nothing
// was done), or stays in .inflight with its progress recorded while
// another process still holds it open for writing, since a copy of the
// unsent lines would miss what that writer appends (see stopped).
func (c *claim) abort() claimEnd {
	if c.nothingDone() {
		return c.putBackWhole() // the file goes back as it is
	}
	if res := c.lookNow(); res != endDone {
		return c.stopped(res)
	}
	return c.putBackRest() // under the lease, when granted
}

// lookNow is what a drain sees of the claim's file, without waiting:
// endDone when it is as read and no writer holds it open (or the kernel
// cannot tell), endStopped when one does, else endChanged, endTooLarge or
// endError.
func (c *claim) lookNow() endState {
	data, st, err := c.cf.refresh(c.data)
	c.data = data
	switch {
	case errors.Is(err, errTooLarge) && c.writer() != writerOpen:
		return endTooLarge
	case err != nil:
		c.s.log.Error("check claimed file", "name", c.name, "err", err)
		return endError
	case st == fileChanged:
		return endChanged
	case c.writer() == writerOpen:
		return endStopped
	}
	if same, err := c.cf.verify(c.data); err == nil && !same { // rewritten in place: what is left is not data[off:]
		return endChanged
	}
	return endDone
}

// stopped ends a claim that cannot go on as it is, as awaitEnd or a
// drain's look (lookNow) found it: res is endChanged, endTooLarge,
// endStopped or endError (logged where it was found).
func (c *claim) stopped(res endState) claimEnd {
	switch res {
	case endChanged:
		c.s.log.Warn("file changed in place while it was sent: back to the spool whole, its lines are sent again", "name", c.name)
		c.s.tr.file(journal.PutBack, c.name, "", "changed in place while it was sent: back to the spool whole, its lines are sent again")
		return c.putBackWhole()
	case endTooLarge:
		return c.failOverCap()
	case endStopped:
		if c.nothingDone() {
			// Nothing done: the file goes back as it is (a rename: its
			// writer goes on writing to it in the spool).
			c.s.log.Warn("stopping while the file is still open for writing: back to the spool as it is", "name", c.name)
			return c.putBackWhole()
		}
		return c.leaveForWriter()
	}
	return c.stay()
}

// leaveForWriter ends a claim stopped (a drain) while another process
// holds its file open for writing: it stays in .inflight with its progress
// recorded and is resumed at the next start.
func (c *claim) leaveForWriter() claimEnd {
	c.record(true)
	c.s.log.Warn("stopping while the file is still open for writing: it stays in .inflight and is resumed at the next start",
		"name", c.name, "done_lines", c.no-1)
	return claimWaiting
}

// stay leaves a claim that could not be ended as it should (logged) in
// .inflight with its progress recorded: it is resumed at the next start.
func (c *claim) stay() claimEnd {
	c.record(true)
	return claimStuck
}

// finish disposes of a claim whose every line is done: deleted, or moved
// to sent_dir, then its sidecar removed; a step that fails is retried
// until it works (untilDone: the claim is stuck meanwhile).
func (c *claim) finish() claimEnd {
	s, name := c.s, c.name
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
	if c.p.sidecar {
		steps = append(steps, func() error { return s.dirs.removeAck(name) })
	}
	if !s.untilDone(c.ctx, c.sl, name, "dispose of delivered file", steps...) {
		return claimStuck
	}
	return claimDelivered
}

// failWhole moves the claimed file to failed_dir under its own name
// (failedName), retried until it works (untilDone).
func (c *claim) failWhole(f failure) claimEnd {
	s, name := c.s, c.name
	src := filepath.Join(s.dirs.inflight, name)
	final, ok := c.saveFailed("move file to failed_dir", &f, func() (string, error) {
		return s.dirs.fail(src, name, f, reasonPerm(c.perm))
	})
	if !ok {
		return claimStuck
	}
	// A move across file systems that copied the claim but could not
	// remove it: it must not be sent again.
	s.untilDone(c.ctx, c.sl, name, "remove claim moved to failed_dir", func() error { return s.dirs.removeClaim(name) })
	if err := s.dirs.removeAck(name); err != nil {
		s.log.Warn("remove sidecar", "name", name, "err", err)
	}
	s.log.Warn("file failed", "name", name, "lines", f.lines, "to", final, "code", f.code, "reason", f.reason)
	c.journalFailed(f, filepath.Base(final), c.unread(), c.no, c.no)
	return claimFailed
}

// saveFailed runs save, which puts lines or the file of the claim into
// failed_dir with the reason *f (a dirs.fail… call), until it works
// (untilDone): once they are in failed_dir but their reason is not, only
// the reason is written again. It returns their path, and false when the
// claim stays in .inflight (see untilDone).
func (c *claim) saveFailed(what string, f *failure, save func() (string, error)) (string, bool) {
	var final string
	ok := c.s.untilDone(c.ctx, c.sl, c.name, what, func() error {
		if final != "" {
			return c.s.dirs.writeReason(final, *f, reasonPerm(c.perm))
		}
		var err error
		final, err = save()
		return err
	})
	return final, ok
}

// failOverCap ends a claim that grew past maxFileBytes after it was
// claimed, as a file over the cap at its claim is ended: what is not done
// yet goes to failed_dir with a reason naming the cap, at once. Nothing
// done: the file goes whole under its name; else the lines from the first
// not done are copied there, and the claim is disposed of like a
// delivered one. It is called with no writer holding the file open (under
// the lease), or when that cannot be told. When the lines cannot be saved
// (logged) the claim stays in .inflight.
func (c *claim) failOverCap() claimEnd {
	f := failure{file: c.name, reason: errTooLarge.Error() + " (the most the sender reads of one spool file): it grew past that after it was claimed; split it"}
	if c.nothingDone() {
		f.lines = "all"
		return c.failWhole(f)
	}
	var n int
	to, ok := c.saveFailed("save the lines of a file that grew past the cap", &f, func() (string, error) {
		var to string
		var err error
		to, n, err = c.s.dirs.failRest(c.cf.f, int64(c.off), c.no, &f, c.perm)
		return to, err
	})
	if !ok {
		return c.stay()
	}
	c.s.countFailed(int64(n))
	c.journalFailed(f, filepath.Base(to), c.unread(), c.no, c.no)
	c.s.log.Warn("file grew past the cap after it was claimed: its unsent lines went to failed_dir", "name", c.name,
		"lines", f.lines, "to", to, "max_bytes", maxFileBytes)
	return c.finish()
}

// saveRejected saves the rejected line lineNo of the claim (line, its
// bytes with LF) to failed_dir as <name>.line-<n> with the claim's mode,
// retried until it works (untilDone). False when it did not (logged): the
// claim then stays in .inflight.
func (c *claim) saveRejected(line []byte, f failure, lineNo int) bool {
	to, ok := c.saveFailed("save rejected line", &f, func() (string, error) {
		return c.s.dirs.failData(line, f.file+".line-"+f.lines, f, c.perm)
	})
	if !ok {
		return false
	}
	c.s.log.Warn("line rejected", "name", f.file, "line", lineNo, "to", to, "reason", f.reason)
	c.journalFailed(f, filepath.Base(to), line, lineNo, lineNo)
	return true
}

// saveUnsent saves the unsent lines of the claim, from line lineNo
// (several of them: multi) to the end, to failed_dir as
// <name>.line(s)-<f.lines> with the claim's mode, retried until it works
// (untilDone). False when it did not (logged): the claim then stays in
// .inflight. failedNo is the line whose retries ran out (the journal's).
func (c *claim) saveUnsent(rest []byte, f failure, lineNo, failedNo int, multi bool) bool {
	suffix := ".line-"
	if multi {
		suffix = ".lines-"
	}
	to, ok := c.saveFailed("save unsent lines", &f, func() (string, error) {
		return c.s.dirs.failData(rest, f.file+suffix+f.lines, f, c.perm)
	})
	if !ok {
		return false
	}
	c.s.log.Warn("lines failed after retries", "name", f.file, "lines", f.lines, "to", to, "reason", f.reason)
	c.journalFailed(f, filepath.Base(to), rest, lineNo, failedNo)
	return true
}

// countDelivered counts a line delivered.
func (s *Sender) countDelivered(ctx context.Context, name string, lineNo int, r lineResult) {
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
