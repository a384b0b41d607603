package sender

import (
	"errors"
	"time"
)

// Before a claim is disposed of, its file is compared with what was read,
// and while another process still holds it open for writing the claim
// waits for that writer, without a worker slot (see process).

// endState is what awaitEnd found of a claimed file; its String is a log
// word.
type endState int

// How awaitEnd ended.
const (
	endDone     endState = iota // unchanged since read and no writer holds it open (or cannot tell)
	endGrew                     // it grew: the new bytes are in data
	endChanged                  // shorter, or rewritten in place
	endStopped                  // ctx done while a writer still holds it open
	endError                    // fstat or read failed
	endTooLarge                 // it grew past maxFileBytes (and no writer holds it open, or cannot tell)
)

func (e endState) String() string {
	return [...]string{"done", "grew", "changed", "stopped", "error", "too_large"}[e]
}

// writerPoll is how often a worker looks at a file whose writer still
// holds it open.
func writerPoll(settle time.Duration) time.Duration {
	return min(max(settle/2, 20*time.Millisecond), 500*time.Millisecond)
}

// tailQuiet is how long a claimed file whose last line has no LF must be
// unchanged before that line is sent when no lease can tell whether its
// writer still holds it open: ten settle periods, at least 10 s.
func tailQuiet(settle time.Duration) time.Duration { return max(10*settle, 10*time.Second) }

// awaitEnd checks, on the open file, whether the claim still is what was
// read into c.data: it returns endGrew (the new bytes appended to c.data)
// as soon as it grew, and endDone once it is unchanged and no other
// process holds it open for writing. While one does (the kernel tells,
// when the sender owns the file or has CAP_LEASE), it polls; before it
// waits the first time it records the progress. While it polls the claim
// holds no worker slot (slot.park; a nil slot: it keeps none), so that
// writers that never close cannot stop every other file; it takes one
// again (slot.unpark, before the picker) before it returns anything but
// endStopped. With endDone a read lease may be held, so that no writer
// opens the file until claimFile.release or close.
func (c *claim) awaitEnd() endState {
	c.waited = false
	for {
		res, tooLarge, found := c.look()
		if found {
			return res
		}
		ws := c.writer()
		settle := c.s.live.Load().settle
		var quiet time.Duration
		if ws == writerUnknown && unterminated(c.data) && !tooLarge {
			quiet = tailQuiet(settle) - time.Since(c.cf.fi.ModTime())
		}
		switch {
		case quiet > 0:
			// Without a lease nothing tells whether a writer is in the
			// middle of the last line: send a last line without LF only
			// once the file has not changed for tailQuiet.
			if !c.wait(min(quiet, writerPoll(settle)),
				"last line of a claimed file has no LF and no lease tells whether its writer is done: waiting until the file is quiet, without a worker slot",
				"name", c.name, "bytes_read", len(c.data), "quiet", tailQuiet(settle)) {
				return endStopped
			}
		case ws == writerOpen:
			if !c.wait(writerPoll(settle),
				"file still open for writing by another process: waiting for its writer before disposing of it, without a worker slot",
				"name", c.name, "bytes_read", len(c.data)) {
				return endStopped
			}
		default:
			if res, again := c.noWriter(tooLarge); !again {
				return res
			}
		}
	}
}

// look compares the open file with what was read (claimFile.refresh),
// appending what it grew by: found with endGrew, endChanged or endError
// (a parked claim takes a slot first), else the file is as read, or
// tooLarge: it grew past the cap (not read).
func (c *claim) look() (res endState, tooLarge, found bool) {
	data, st, err := c.cf.refresh(c.data)
	c.data = data
	switch {
	case errors.Is(err, errTooLarge):
		return 0, true, false
	case err != nil:
		c.s.log.Error("check claimed file", "name", c.name, "err", err)
		return c.unparked(endError), false, true
	case st == fileGrew:
		c.cf.release()
		return c.unparked(endGrew), false, true
	case st == fileChanged:
		c.cf.release()
		return c.unparked(endChanged), false, true
	}
	return 0, false, false
}

// noWriter ends the wait once no writer holds the file open (or the
// kernel cannot tell): endTooLarge for a file that grew past the cap,
// endGrew when it grew between look's fstat and the lease (what it grew
// by is in data), endDone when its content is still what was read (under
// the lease, when granted), endChanged when not; again: look once more
// (the lease showed another change, or a parked claim took a slot again
// meanwhile).
func (c *claim) noWriter(tooLarge bool) (res endState, again bool) {
	if !tooLarge && c.cf.lease {
		switch c.changedUnderLease() {
		case fileGrew:
			// Read into data already: look would find it the same, and
			// the new bytes would never be sent (a last line without LF
			// sent already: the claim disposed of).
			c.cf.release()
			return c.unparked(endGrew), false
		case fileChanged:
			c.cf.release()
			return 0, true
		}
	}
	switch {
	case tooLarge && !c.sl.isParked():
		return endTooLarge, false // under the lease, when granted
	case c.sl.isParked():
		// Take a slot again without the lease (waiting for one may take
		// long), then look once more.
		c.cf.release()
		if !c.sl.unpark(c.ctx) {
			return endStopped, false
		}
		return 0, true
	}
	// Metadata and the last bytes said "the same": the content must be,
	// too (a rewrite in place without truncation).
	same, err := c.cf.verify(c.data)
	switch {
	case err != nil:
		c.s.log.Error("check claimed file", "name", c.name, "err", err)
		c.cf.release()
		return endError, false
	case !same:
		c.cf.release()
		return endChanged, false
	}
	return endDone, false
}

// changedUnderLease looks once more after a lease was granted (after the
// fstat of look): whether the file changed in between (what it grew by is
// read into data; past the cap it is not read, and the next look finds
// it). Another error is fileSame here: verify finds it.
func (c *claim) changedUnderLease() fileState {
	data, st, err := c.cf.refresh(c.data)
	c.data = data
	switch {
	case errors.Is(err, errTooLarge):
		return fileGrew // past the cap: the next look says so
	case err != nil:
		return fileSame
	}
	return st
}

// writer asks the kernel whether another process holds the file open for
// writing (claimFile.writer); the first time it cannot tell it says why,
// once per sender.
func (c *claim) writer() writerState {
	ws, err := c.cf.writer(!c.s.noLeases)
	if err != nil && c.s.leaseWarned.CompareAndSwap(false, true) {
		c.s.log.Warn("cannot tell whether a writer still holds spool files open (needs the file's owner or CAP_LEASE, and leases on the file system): "+
			"a file written in place whose writer pauses longer than sender.settle may lose what it appends after the file was sent",
			"name", c.name, "err", err)
	}
	return ws
}

// wait sleeps d without a worker slot (slot.park); false when ctx is done
// first. Before the first wait of an awaitEnd it says why (msg, at warn
// once per claim) and records the progress.
func (c *claim) wait(d time.Duration, msg string, args ...any) bool {
	if !c.waited {
		c.waited = true
		c.s.logOnce(&c.waitLogged, msg, args...)
		c.record(true)
	}
	c.sl.park()
	return sleep(c.ctx, d)
}

// unparked ends the wait with res: a parked claim takes a slot again
// first (endStopped when ctx ends before it has one).
func (c *claim) unparked(res endState) endState {
	if !c.sl.unpark(c.ctx) {
		return endStopped
	}
	return res
}

// awaitAll is awaitEnd until the file no longer grows.
func (c *claim) awaitAll() endState {
	for {
		if r := c.awaitEnd(); r != endGrew {
			return r
		}
		c.s.logOnce(&c.growLogged, "file grew after it was claimed: its new lines are included", "name", c.name, "bytes", len(c.data))
	}
}

// logOnce logs msg at warn the first time for a claim (*done false), at
// debug after that: a file written slowly grows many times.
func (s *Sender) logOnce(done *bool, msg string, args ...any) {
	if *done {
		s.log.Debug(msg, args...)
		return
	}
	*done = true
	s.log.Warn(msg, args...)
}
