package sender

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

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
}

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

// awaitEnd checks, on the open file, whether the claim still is what was
// read into *data: it returns endGrew (the new bytes appended to *data) as
// soon as it grew, and endDone once it is unchanged and no other process
// holds it open for writing. While one does (the kernel tells, when the
// sender owns the file or has CAP_LEASE), it polls; before it waits the
// first time it calls beforeWait. While it polls the claim holds no worker
// slot (sl.park; nil sl: it keeps it), so that writers that never close
// cannot stop every other file; it takes one again (sl.unpark, before the
// picker) before it returns anything but endStopped. With endDone a read
// lease may be held, so that no writer opens the file until cf.release or
// cf.close.
func (s *Sender) awaitEnd(ctx context.Context, cf *claimFile, data *[]byte, name string, beforeWait func(), sl *slot) endState {
	waited := false
	// wait sleeps d without a slot; false when ctx is done.
	wait := func(d time.Duration, msg string, args ...any) bool {
		if !waited {
			waited = true
			s.logOnce(&cf.waitLogged, msg, args...)
			if beforeWait != nil {
				beforeWait()
			}
		}
		sl.park()
		return sleep(ctx, d)
	}
	// done ends the wait with r: a parked claim first takes a slot again.
	done := func(r endState) endState {
		if !sl.unpark(ctx) {
			return endStopped
		}
		return r
	}
	for {
		d, st, err := cf.refresh(*data)
		*data = d
		tooLarge := errors.Is(err, errTooLarge) // not read: it waits for its writer, then fails
		switch {
		case tooLarge:
		case err != nil:
			s.log.Error("check claimed file", "name", name, "err", err)
			return done(endError)
		case st == fileGrew:
			cf.release()
			return done(endGrew)
		case st == fileChanged:
			cf.release()
			return done(endChanged)
		}
		ws, werr := cf.writer(!s.noLeases)
		if werr != nil && s.leaseWarned.CompareAndSwap(false, true) {
			s.log.Warn("cannot tell whether a writer still holds spool files open (needs the file's owner or CAP_LEASE, and leases on the file system): "+
				"a file written in place whose writer pauses longer than sender.settle may lose what it appends after the file was sent",
				"name", name, "err", werr)
		}
		if ws == writerUnknown && unterminated(*data) && !tooLarge {
			// Without a lease nothing tells whether a writer is in the
			// middle of the last line: send a last line without LF only
			// once the file has not changed for tailQuiet.
			if left := tailQuiet(s.live.Load().settle) - time.Since(cf.fi.ModTime()); left > 0 {
				if !wait(min(left, writerPoll(s.live.Load().settle)),
					"last line of a claimed file has no LF and no lease tells whether its writer is done: waiting until the file is quiet, without a worker slot",
					"name", name, "bytes_read", len(*data), "quiet", tailQuiet(s.live.Load().settle)) {
					return endStopped
				}
				continue
			}
		}
		if ws != writerOpen {
			if tooLarge {
				if sl != nil && sl.parked {
					cf.release()
					if !sl.unpark(ctx) {
						return endStopped
					}
					continue
				}
				return endTooLarge // under the lease, when granted
			}
			if cf.lease { // granted after the fstat: look once more
				d, st, err := cf.refresh(*data)
				*data = d
				if err == nil && st != fileSame {
					cf.release()
					continue
				}
			}
			if sl != nil && sl.parked {
				// Take a slot again without the lease (waiting for one may
				// take long), then look once more.
				cf.release()
				if !sl.unpark(ctx) {
					return endStopped
				}
				continue
			}
			// Metadata and the last bytes said "the same": the content must
			// be, too (a rewrite in place without truncation).
			if same, err := cf.verify(*data); err != nil {
				s.log.Error("check claimed file", "name", name, "err", err)
				cf.release()
				return endError
			} else if !same {
				cf.release()
				return endChanged
			}
			return endDone
		}
		if !wait(writerPoll(s.live.Load().settle),
			"file still open for writing by another process: waiting for its writer before disposing of it, without a worker slot",
			"name", name, "bytes_read", len(*data)) {
			return endStopped
		}
	}
}

// tailQuiet is how long a claimed file whose last line has no LF must be
// unchanged before that line is sent when no lease can tell whether its
// writer still holds it open: ten settle periods, at least 10 s.
func tailQuiet(settle time.Duration) time.Duration { return max(10*settle, 10*time.Second) }

// unterminated reports whether data ends in a line without LF.
func unterminated(data []byte) bool { return len(data) > 0 && data[len(data)-1] != '\n' }

// awaitAll is awaitEnd until the file no longer grows.
func (s *Sender) awaitAll(ctx context.Context, cf *claimFile, data *[]byte, name string, beforeWait func(), sl *slot) endState {
	for {
		if r := s.awaitEnd(ctx, cf, data, name, beforeWait, sl); r != endGrew {
			return r
		}
		s.logOnce(&cf.growLogged, "file grew after it was claimed: its new lines are included", "name", name, "bytes", len(*data))
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

// process sends one claimed file, line by line, and disposes of it. A
// spool file that changed since it settled goes back to settle again.
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
	name := e.name
	path := filepath.Join(s.dirs.inflight, name)
	wb := s.bufs.Get().(*workBuf)
	defer func() {
		if cap(wb.data) > maxPooledBuf {
			wb.data = nil
		}
		s.bufs.Put(wb)
	}()
	cf, data, err := openClaim(path, wb.data)
	var fi fs.FileInfo
	if cf != nil {
		defer func() { wb.data = data; cf.close() }()
		fi = cf.fi
	} else {
		wb.data = data
	}
	switch {
	case errors.Is(err, syscall.ELOOP), errors.Is(err, errNotRegular):
		if lfi, lerr := os.Lstat(path); lerr == nil {
			s.failSpecial(s.dirs.inflight, name, lfi)
		}
		return
	case errors.Is(err, errTooLarge):
		if restored && s.failRestoredOverCap(ctx, sl, name, cf, wb) {
			return
		}
		s.failWhole(ctx, sl, name, fi.Mode(), failure{file: name, lines: "all", reason: err.Error() + "; split it"})
		return
	case errors.Is(err, fs.ErrNotExist):
		s.log.Warn("claimed file vanished", "name", name)
		return
	case err != nil:
		s.log.Error("read claimed file; putting it back", "name", name, "err", err)
		s.putBack(name, nil, 0, time.Time{}, 0)
		return
	case !restored && (fi.Size() != e.size || fi.ModTime().UnixNano() != e.mtime):
		s.log.Debug("changed since it settled: back to the spool", "name", name)
		s.putBack(name, nil, 0, time.Time{}, 0)
		return
	}
	perm, mtime := fi.Mode().Perm(), fi.ModTime()
	off, lineNo := 0, 1
	p := progress{dirs: s.dirs, log: s.log, name: name, at: time.Now()}
	if restored {
		p.sidecar = true
		a, err := s.dirs.readAck(name, fi, data)
		if err != nil {
			s.log.Warn("restored claim", "name", name, "err", err)
		} else if a.lines > 0 {
			off, lineNo = int(a.offset), a.lines+1
			p.recorded = a.lines
			p.crc, p.crcAt = crc32.Checksum(data[:off], crcTable), off
			s.log.Debug("resuming claim", "name", name, "from_line", lineNo)
		}
	}
	defer p.close()
	flush := func() { p.record(lineNo-1, off, cf.fi, data, true) }
	first := firstContent(data)
	// other ends a claim whose file changed in place, or that is stopped
	// while its writer holds it open, or cannot be checked.
	other := func(r endState) {
		switch r {
		case endChanged:
			s.log.Warn("file changed in place while it was sent: back to the spool whole, its lines are sent again", "name", name)
			s.putBack(name, nil, 0, time.Time{}, 0)
		case endTooLarge:
			if !s.failOverCap(ctx, sl, name, cf, off, lineNo, first, perm, &p) {
				flush()
			}
		case endStopped:
			if p.recorded == 0 && (first < 0 || off <= first) {
				// Nothing done: the file goes back as it is (a rename: its
				// writer goes on writing to it in the spool).
				s.log.Warn("stopping while the file is still open for writing: back to the spool as it is", "name", name)
				s.putBack(name, nil, 0, time.Time{}, 0)
				return
			}
			flush()
			s.log.Warn("stopping while the file is still open for writing: it stays in .inflight and is resumed at the next start",
				"name", name, "done_lines", lineNo-1)
		default:
			flush()
		}
	}
	// With sender.window > 1 (now, or after a reload) the lines go through a
	// send window; it is bounded by the progress recorded (see window).
	var win *window
	defer func() {
		if win != nil {
			win.close()
		}
	}()
	since := func() int { return lineNo - 1 - p.recorded }
	final := false // the file is complete: a last line without LF may be sent
	for {
		for off < len(data) {
			end, next := lineEnd(data, off)
			if end == len(data) && !final { // a writer may be in the middle of it
				break
			}
			if end == off { // empty line
				off, lineNo = next, lineNo+1
				continue
			}
			if win == nil && s.live.Load().window > 1 {
				win = s.newWindow(ctx, hard, wb, since,
					func() { p.note(lineNo-1, off, cf.fi, data, true) },
					p.sync)
			}
			var r lineResult
			if win != nil {
				r = win.result(data, off, final)
			} else {
				r = s.sendLine(ctx, hard, data[off:end], wb)
			}
			more := hasContent(data[next:])
			switch r.kind {
			case lineAborted:
				s.abort(ctx, sl, name, cf, data, off, lineNo, first, mtime, perm, &p)
				return
			case lineDelivered:
				s.lineDone(ctx, name, lineNo, r)
			case lineRejected:
				s.countRejected()
				f := failure{file: name, lines: strconv.Itoa(lineNo), remote: r.remote, code: r.code, reason: r.reason, attempts: r.attempts}
				if off == first && !more {
					// The only line so far: the file fails whole, unless
					// its writer appends more.
					switch res := s.awaitAll(ctx, cf, &data, name, flush, sl); {
					case res == endDone && !hasContent(data[next:]):
						s.failWhole(ctx, sl, name, perm, f)
						return
					case res != endDone:
						other(res)
						return
					}
					more = true
				}
				if !s.saveRejected(ctx, sl, data[off:next], f, lineNo, perm) {
					flush()
					return
				}
			case lineExhausted:
				// The unsent lines go to failed_dir: all of them, once the
				// file is complete.
				if res := s.awaitAll(ctx, cf, &data, name, flush, sl); res != endDone {
					other(res)
					return
				}
				last := lineNo + bytes.Count(bytes.TrimRight(data[off:], "\n"), []byte{'\n'})
				s.countFailed(int64(1 + countContent(data[next:])))
				f := failure{file: name, lines: strconv.Itoa(lineNo), remote: r.remote, code: r.code, reason: r.reason, attempts: r.attempts}
				if last != lineNo {
					f.lines += "-" + strconv.Itoa(last)
				}
				if off == first {
					s.failWhole(ctx, sl, name, perm, f)
					return
				}
				if !s.saveUnsent(ctx, sl, data[off:], f, lineNo, last != lineNo, perm) {
					flush()
					return
				}
				s.finish(ctx, sl, name, p.sidecar)
				return
			}
			off, lineNo = next, lineNo+1
			if more {
				p.record(lineNo-1, off, cf.fi, data, r.kind == lineRejected)
			}
		}
		// Every line read is done, but for a last line without LF.
		switch res := s.awaitEnd(ctx, cf, &data, name, flush, sl); res {
		case endGrew:
			s.logOnce(&cf.growLogged, "file grew after it was claimed: sending its new lines too", "name", name, "bytes", len(data), "from_line", lineNo)
			final = false
			if first < 0 {
				first = firstContent(data)
			}
			continue
		case endDone:
			if off < len(data) && !final {
				// Complete: its last line lacks only the LF. Send it, and
				// look again before disposing of the file.
				final = true
				cf.release()
				if first < 0 {
					first = firstContent(data)
				}
				continue
			}
		default:
			other(res)
			return
		}
		break
	}
	s.finish(ctx, sl, name, p.sidecar)
}

// failRestoredOverCap ends a claim restored at start whose file is over
// the cap but whose progress record says lines are done (it grew past the
// cap in an earlier run): only the lines after those go to failed_dir. It
// reads the first maxFileBytes bytes, which hold what the record covers,
// to check the record's CRC. False when the record does not match or
// covers no line (the caller fails the file whole).
func (s *Sender) failRestoredOverCap(ctx context.Context, sl *slot, name string, cf *claimFile, wb *workBuf) bool {
	buf := wb.data
	if cap(buf) < maxFileBytes {
		buf = make([]byte, maxFileBytes)
	}
	buf = buf[:maxFileBytes]
	n, err := cf.f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	buf = buf[:n]
	wb.data = buf
	a, err := s.dirs.readAck(name, cf.fi, buf)
	if err != nil || a.lines == 0 {
		return false
	}
	p := progress{dirs: s.dirs, log: s.log, name: name, recorded: a.lines, sidecar: true}
	s.failOverCap(ctx, sl, name, cf, int(a.offset), a.lines+1, firstContent(buf), cf.fi.Mode().Perm(), &p)
	return true // saved, or (logged) left in .inflight: never failed whole
}

// lineEnd returns the end of the line starting at off (before its LF) and
// the offset of the next line.
func lineEnd(data []byte, off int) (end, next int) {
	i := bytes.IndexByte(data[off:], '\n')
	if i < 0 {
		return len(data), len(data)
	}
	return off + i, off + i + 1
}

// hasContent reports whether b holds a non-empty line.
func hasContent(b []byte) bool {
	for _, c := range b {
		if c != '\n' {
			return true
		}
	}
	return false
}

// firstContent returns the offset of the first non-empty line, or -1.
func firstContent(b []byte) int {
	for i, c := range b {
		if c != '\n' {
			return i
		}
	}
	return -1
}

// countContent counts the non-empty lines in b.
func countContent(b []byte) int {
	n := 0
	for off := 0; off < len(b); {
		end, next := lineEnd(b, off)
		if end > off {
			n++
		}
		off = next
	}
	return n
}
