package sender

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"spoolgate/internal/journal"
)

// A claim is one spool file claimed by rename into .inflight, sent by one
// worker: its open file, what was read of it, the first line not done, its
// progress record and its worker slot. Its lines are handed out in order
// (next) and their outcomes taken back (settle); the lines done always
// form a prefix of the file, which the progress record holds. Each way a
// claim ends is a method that returns one claimEnd (outcome.go), which
// process logs; the waits for a writer that still holds the file open
// are in claimwait.go.

// workBuf holds one worker's buffers between files.
type workBuf struct {
	data  []byte // the claimed file
	frame []byte // one framed message
}

// maxPooledBuf is the largest file buffer kept for reuse.
const maxPooledBuf = 1 << 20

// lineKind is how one line ended; its String is the line's label of
// spoolgate_sender_messages_total (outcome), but for lineAborted, which is
// not counted.
type lineKind int

// How one line ended.
const (
	lineDelivered lineKind = iota // 200, process_no echoed
	lineRejected                  // 400, or invalid before sending
	lineExhausted                 // retries used up
	lineAborted                   // shutdown: not sent, put back
)

func (k lineKind) String() string {
	return [...]string{"delivered", "rejected", "failed", "aborted"}[k]
}

// lineResult is the outcome of sending one line.
type lineResult struct {
	kind     lineKind
	code     int    // last reply code, 0 if none
	remote   string // address of the last attempt
	reason   string
	attempts int
	start    time.Time // when the line was handed out, with the journal on (its latency there)
}

// claimEnd is how a claim ended; its String is a log word.
type claimEnd int

// How a claim ended.
const (
	claimDelivered   claimEnd = iota // every line done (delivered, or saved to failed_dir): the file deleted or moved to sent_dir
	claimFailed                      // the file whole in failed_dir
	claimPutBack                     // back in the spool whole: its lines are sent again
	claimPutBackRest                 // back in the spool holding only its lines not done
	claimWaiting                     // stopped while its writer holds it open: in .inflight with its progress, resumed at the next start
	claimStuck                       // what had to be written or moved could not be (logged): in .inflight, resumed at the next start
	claimVanished                    // gone from .inflight
)

func (e claimEnd) String() string {
	return [...]string{"delivered", "failed", "put_back", "put_back_rest", "waiting_for_writer", "stuck", "vanished"}[e]
}

// claim is a claimed file being sent. It is used by its worker alone.
type claim struct {
	s         *Sender
	ctx, hard context.Context // ctx ends at a drain (no new attempt); hard cuts off the attempt in flight
	sl        *slot           // nil: it holds none (tests)
	wb        *workBuf
	name      string

	cf    *claimFile
	data  []byte      // what was read of the file
	perm  fs.FileMode // its permission bits and modification time at the claim: what a put back keeps
	mtime time.Time
	off   int  // the first line not done starts here: every line before it is done
	no    int  // the number of that line, from 1
	first int  // the offset of the first non-empty line; -1 while there is none
	final bool // the file is complete: a last line without LF may be sent
	p     progress
	win   *window   // the send window, once sender.window > 1
	at    time.Time // when the line being settled was handed out, with the journal on: its latency
	// ahead holds the outcomes of lines after the first not done, by
	// offset, while lanes send them (lanes.go): they are settled in order.
	ahead    map[int]lineResult
	lazySync bool // lanes: a record due is synced after the next hand-out, not at once

	waited                 bool // awaitEnd waited already (claimwait.go)
	waitLogged, growLogged bool // said at warn once
}

// process sends one claimed file, line by line, and disposes of it, then
// gives back its worker slot (sl.done). A spool file that changed since it
// settled goes back to settle again.
//
// Settling is a heuristic: a writer may pause longer than sender.settle and
// go on appending to the file it holds open, wherever it was renamed. So
// the file is kept open while it is sent, and before it is disposed of it
// is compared (fstat) with what was read: lines appended meanwhile are sent
// too, and while another process still holds it open for writing (when the
// kernel can tell: a read lease) the worker waits for it. A last line
// without LF is sent only once the file is complete. A file rewritten in
// place goes back to the spool whole.
func (s *Sender) process(ctx, hard context.Context, e *entry, restored bool, sl *slot) {
	c := &claim{s: s, ctx: ctx, hard: hard, sl: sl, wb: s.bufs.Get().(*workBuf), name: e.name, no: 1, first: -1}
	end, ok := c.open(e, restored)
	if ok {
		end = c.send()
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("claim ended", "name", e.name, "outcome", end.String())
	}
	// The worker slot goes to the next file before the claim's file is
	// closed: closing the last descriptor of a file deleted meanwhile frees
	// its inode, which waits for the file system's journal (a millisecond
	// and more while the receiver syncs on the same disk).
	if sl != nil {
		sl.done()
	}
	c.close()
}

// open opens the claimed file of e and reads it whole, and resumes a
// claim restored at start where its progress record says. With false the
// claim ended already (end): not a regular file, too large, gone, not
// readable, or changed since it settled.
func (c *claim) open(e *entry, restored bool) (end claimEnd, ok bool) {
	s := c.s
	path := filepath.Join(s.dirs.inflight, c.name)
	cf, data, err := openClaim(path, c.wb.data)
	c.cf, c.data = cf, data
	if cf != nil {
		c.perm, c.mtime = cf.fi.Mode().Perm(), cf.fi.ModTime()
	}
	switch {
	case errors.Is(err, syscall.ELOOP), errors.Is(err, errNotRegular):
		return c.special(path), false
	case errors.Is(err, errTooLarge):
		return c.tooLarge(restored, err), false
	case errors.Is(err, fs.ErrNotExist):
		s.log.Warn("claimed file vanished", "name", c.name)
		return claimVanished, false
	case err != nil:
		s.log.Error("read claimed file; putting it back", "name", c.name, "err", err)
		return c.putBackWhole(), false
	case !restored && (cf.fi.Size() != e.size || cf.fi.ModTime().UnixNano() != e.mtime):
		s.log.Debug("changed since it settled: back to the spool", "name", c.name)
		return c.putBackWhole(), false
	}
	c.p = progress{dirs: s.dirs, log: s.log, name: c.name, at: time.Now()}
	if restored {
		c.resume()
	}
	c.first = firstContent(c.data)
	return 0, true
}

// resume takes up a claim restored at start after the lines its progress
// record says are done.
func (c *claim) resume() {
	c.p.sidecar = true
	a, err := c.s.dirs.readAck(c.name, c.cf.fi, c.data)
	if err != nil {
		c.s.log.Warn("restored claim", "name", c.name, "err", err)
		return
	}
	if a.lines > 0 {
		c.off, c.no = int(a.offset), a.lines+1
		c.p.recorded = a.lines
		c.p.crc, c.p.crcAt = crc32.Checksum(c.data[:c.off], crcTable), c.off
		c.s.log.Debug("resuming claim", "name", c.name, "from_line", c.no)
	}
}

// special ends a claim that is not a regular file: it goes to failed_dir
// unopened.
func (c *claim) special(path string) claimEnd {
	fi, err := os.Lstat(path)
	switch {
	case err != nil:
		return claimVanished
	case c.s.failSpecial(c.s.dirs.inflight, c.name, fi):
		return claimFailed
	}
	return claimStuck
}

// tooLarge ends a claim over maxFileBytes at its claim: it fails whole,
// unless it was restored with lines done (failRestoredOverCap).
func (c *claim) tooLarge(restored bool, err error) claimEnd {
	if restored {
		if end, ok := c.failRestoredOverCap(); ok {
			return end
		}
	}
	return c.failWhole(failure{file: c.name, lines: "all", reason: err.Error() + "; split it"})
}

// failRestoredOverCap ends a claim restored at start whose file is over
// the cap but whose progress record says lines are done (it grew past the
// cap in an earlier run): only the lines after those go to failed_dir. It
// reads the first maxFileBytes bytes, which hold what the record covers,
// to check the record's CRC. False when the record does not match or
// covers no line (the caller fails the file whole).
func (c *claim) failRestoredOverCap() (claimEnd, bool) {
	buf := c.wb.data
	if cap(buf) < maxFileBytes {
		buf = make([]byte, maxFileBytes)
	}
	buf = buf[:maxFileBytes]
	n, err := c.cf.f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, false
	}
	buf = buf[:n]
	a, err := c.s.dirs.readAck(c.name, c.cf.fi, buf)
	if err != nil || a.lines == 0 {
		return 0, false
	}
	c.p = progress{dirs: c.s.dirs, log: c.s.log, name: c.name, recorded: a.lines, sidecar: true}
	c.off, c.no, c.first = int(a.offset), a.lines+1, firstContent(buf)
	return c.failOverCap(), true // saved, or (logged) left in .inflight: never failed whole
}

// send sends the claim's lines in order and disposes of it once every one
// is done and the file is complete; lines its writer appends meanwhile
// are sent too (see process).
func (c *claim) send() claimEnd {
	for {
		if end, over := c.sendAll(); over {
			return end
		}
		// Every line read is done, but for a last line without LF.
		switch res := c.awaitEnd(); res {
		case endGrew:
			c.s.logOnce(&c.growLogged, "file grew after it was claimed: sending its new lines too", "name", c.name, "bytes", len(c.data), "from_line", c.no)
			c.final = false
		case endDone:
			if c.off >= len(c.data) || c.final {
				return c.finish()
			}
			// Complete: its last line lacks only the LF. Send it, and look
			// again before disposing of the file.
			c.final = true
			c.cf.release()
		default:
			return c.stopped(res)
		}
		if c.first < 0 {
			c.first = firstContent(c.data)
		}
	}
}

// sendAll sends the complete lines not done: over lanes while they apply
// (lanes.go), else in order, one at a time or through the send window.
// over: the claim ended (end).
func (c *claim) sendAll() (end claimEnd, over bool) {
	for {
		t := c.s.live.Load()
		if c.win != nil && c.win.idle() && c.s.windowOf(t) == 1 {
			c.win.close() // auto came down to 1 for this remote: lanes
			c.win = nil
		}
		if c.useLanes(t) && c.linesLeft() > 1 {
			end, over, more := c.sendLanes()
			if over || !more {
				return end, over
			}
		}
		ln, ok := c.next()
		if !ok {
			return 0, false
		}
		if end, over := c.settle(ln, c.sendLine(ln)); over {
			return end, true
		}
	}
}

// linesLeft counts the complete lines not done, up to 2: a file with one
// line left (most files hold one line) sends it without lanes, saving the
// hand-over to a lane of its own.
func (c *claim) linesLeft() int {
	n, off, no := 0, c.off, c.no
	for ; n < 2; n++ {
		ln, ok := nextLine(c.data, off, no, c.final)
		if !ok {
			break
		}
		off, no = ln.next, ln.no+1
	}
	return n
}

// next hands out the next line to send, the first not done (the empty
// lines before it are done); false when every complete line is done.
func (c *claim) next() (fileLine, bool) {
	ln, ok := nextLine(c.data, c.off, c.no, c.final)
	c.off, c.no = ln.off, ln.no
	return ln, ok
}

// sendLine sends ln: through the send window with sender.window > 1 (now,
// or after a reload; the window is bounded by the progress recorded), else
// alone.
func (c *claim) sendLine(ln fileLine) lineResult {
	start := c.s.tr.now()
	if c.win == nil && c.s.windowOf(c.s.live.Load()) > 1 {
		c.win = c.s.newWindow(c.ctx, c.hard, c.wb, c.sinceRecord, c.noteProgress, c.p.sync)
	}
	var r lineResult
	if c.win != nil {
		r = c.win.result(c.data, ln.off, c.final)
	} else {
		r = c.s.sendLine(c.ctx, c.hard, c.data[ln.off:ln.end], c.wb)
	}
	r.start = start
	return r
}

// settle takes back the outcome r of line ln, the first line not done:
// it is done (delivered, or saved to failed_dir) and the progress moves
// past it, or r ends the claim (over).
func (c *claim) settle(ln fileLine, r lineResult) (end claimEnd, over bool) {
	c.at = r.start
	switch r.kind {
	case lineAborted:
		c.journal(journal.PutBack, ln, &r)
		return c.abort(), true
	case lineExhausted:
		return c.exhausted(ln, r), true
	case lineRejected:
		if end, over := c.rejected(ln, r); over {
			return end, true
		}
	case lineDelivered:
		c.s.countDelivered(c.ctx, c.name, ln.no, r)
		c.journal(journal.Delivered, ln, &r)
	}
	c.off, c.no = ln.next, ln.no+1
	if hasContent(c.data[c.off:]) {
		c.record(r.kind == lineRejected)
	}
	return 0, false
}

// rejected saves the rejected line ln to failed_dir, or fails the file
// whole when ln is its only line and its writer adds none. over: the
// claim ended.
func (c *claim) rejected(ln fileLine, r lineResult) (end claimEnd, over bool) {
	c.s.countRejected()
	f := c.failure(ln, r)
	if ln.off == c.first && !hasContent(c.data[ln.next:]) {
		// The only line so far: the file fails whole, unless its writer
		// appends more.
		switch res := c.awaitAll(); {
		case res == endDone && !hasContent(c.data[ln.next:]):
			return c.failWhole(f), true
		case res != endDone:
			return c.stopped(res), true
		}
	}
	if !c.saveRejected(c.data[ln.off:ln.next], f, ln.no) {
		return c.stay(), true
	}
	return 0, false
}

// exhausted ends a claim whose line ln used up its retries: once the file
// is complete, ln and every line after it go to failed_dir (the file whole
// when ln is its first line) and the claim is disposed of.
func (c *claim) exhausted(ln fileLine, r lineResult) claimEnd {
	if res := c.awaitAll(); res != endDone {
		return c.stopped(res)
	}
	if c.doneAhead() {
		return c.exhaustedAround(ln, r)
	}
	rest := c.data[ln.off:]
	last := ln.no + bytes.Count(bytes.TrimRight(rest, "\n"), []byte{'\n'})
	c.s.countFailed(int64(1 + countContent(c.data[ln.next:])))
	f := c.failure(ln, r)
	if last != ln.no {
		f.lines += "-" + strconv.Itoa(last)
	}
	if ln.off == c.first {
		return c.failWhole(f)
	}
	if !c.saveUnsent(rest, f, ln.no, ln.no, last != ln.no) {
		return c.stay()
	}
	return c.finish()
}

// failure is the .reason of line ln, which ended with r.
func (c *claim) failure(ln fileLine, r lineResult) failure {
	return failure{file: c.name, lines: strconv.Itoa(ln.no), remote: r.remote, code: r.code, reason: r.reason, attempts: r.attempts}
}

// record records the progress (the lines before the first not done) when
// force or a record is due, and waits for the disk (unless lazySync and
// not force: the lanes sync it after their next hand-out).
func (c *claim) record(force bool) {
	if c.lazySync && !force {
		c.p.note(c.no-1, c.off, c.cf.fi, c.data, false)
		return
	}
	c.p.record(c.no-1, c.off, c.cf.fi, c.data, force)
}

// noteProgress records the progress now, without waiting for the disk
// (the send window, before it reads further ahead).
func (c *claim) noteProgress() { c.p.note(c.no-1, c.off, c.cf.fi, c.data, true) }

// sinceRecord counts the lines done since the progress was last recorded.
func (c *claim) sinceRecord() int { return c.no - 1 - c.p.recorded }

// nothingDone reports whether no line of the claim is done, in this run or
// an earlier one.
func (c *claim) nothingDone() bool { return c.p.recorded == 0 && (c.first < 0 || c.off <= c.first) }

// close gives back what the claim holds: its window's connection, its
// sidecar and file, and its buffers.
func (c *claim) close() {
	if c.win != nil {
		c.win.close()
	}
	c.p.close()
	if c.cf != nil {
		c.cf.close()
	}
	c.wb.data = c.data
	if cap(c.wb.data) > maxPooledBuf {
		c.wb.data = nil
	}
	c.s.bufs.Put(c.wb)
}
