package sender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"spoolgate/protocol"
)

// workBuf holds one worker's buffers between files.
type workBuf struct {
	data  []byte // the claimed file
	frame []byte // one framed message
}

// maxPooledBuf is the largest file buffer kept for reuse.
const maxPooledBuf = 1 << 20

// How one line ended.
const (
	lineDelivered = iota // 200, process_no echoed
	lineRejected         // 400, or invalid before sending
	lineExhausted        // retries used up
	lineAborted          // shutdown: not sent, put back
)

// lineResult is the outcome of sending one line.
type lineResult struct {
	kind     int
	code     int    // last reply code, 0 if none
	remote   string // address of the last attempt
	reason   string
	attempts int
}

// process sends one claimed file, line by line, and disposes of it. A
// spool file that changed since it settled goes back to settle again.
func (s *Sender) process(ctx, hard context.Context, e *entry, restored bool) {
	name := e.name
	path := filepath.Join(s.dirs.inflight, name)
	wb := s.bufs.Get().(*workBuf)
	defer func() {
		if cap(wb.data) > maxPooledBuf {
			wb.data = nil
		}
		s.bufs.Put(wb)
	}()
	data, fi, err := readClaim(path, wb.data)
	wb.data = data
	switch {
	case errors.Is(err, syscall.ELOOP), errors.Is(err, errNotRegular):
		if lfi, lerr := os.Lstat(path); lerr == nil {
			s.failSpecial(s.dirs.inflight, name, lfi)
		}
		return
	case errors.Is(err, errTooLarge):
		s.failWhole(name, failure{file: name, lines: "all", reason: err.Error() + "; split it"})
		return
	case errors.Is(err, fs.ErrNotExist):
		s.log.Warn("claimed file vanished", "name", name)
		return
	case err != nil:
		s.log.Error("read claimed file; putting it back", "name", name, "err", err)
		s.putBack(name, nil, 0, time.Time{})
		return
	case !restored && (fi.Size() != e.size || fi.ModTime().UnixNano() != e.mtime):
		s.log.Debug("changed since it settled: back to the spool", "name", name)
		s.putBack(name, nil, 0, time.Time{})
		return
	}
	off, lineNo := 0, 1
	sidecar := false // whether .inflight may hold a sidecar for name
	if restored {
		sidecar = true
		a, err := s.dirs.readAck(name, fi)
		if err != nil {
			s.log.Warn("restored claim", "name", name, "err", err)
		} else if a.lines > 0 {
			off, lineNo = int(a.offset), a.lines+1
			s.log.Debug("resuming claim", "name", name, "from_line", lineNo)
		}
	}
	first := firstContent(data)
	for off < len(data) {
		end, next := lineEnd(data, off)
		if end == off { // empty line
			off, lineNo = next, lineNo+1
			continue
		}
		r := s.sendLine(ctx, hard, data[off:end], wb)
		more := hasContent(data[next:])
		switch r.kind {
		case lineAborted:
			if off <= first {
				off = 0 // nothing done: the file goes back as it is
			}
			s.putBack(name, data, off, fi.ModTime())
			return
		case lineDelivered:
			s.delivered.Add(1)
			s.m.delivered.Inc()
			if s.log.Enabled(ctx, slog.LevelDebug) { // its arguments escape: no cost per line at info
				s.log.Debug("delivered", "name", name, "line", lineNo, "remote", r.remote, "attempts", r.attempts)
			}
		case lineRejected:
			s.rejected.Add(1)
			s.m.rejected.Inc()
			f := failure{file: name, lines: strconv.Itoa(lineNo), remote: r.remote, code: r.code, reason: r.reason, attempts: r.attempts}
			if off == first && !more {
				s.failWhole(name, f)
				return
			}
			final, err := s.dirs.failData(data[off:next], name+".line-"+f.lines, f)
			if err != nil {
				s.log.Error("save rejected line; the file stays in .inflight and is resumed at the next start", "name", name, "line", lineNo, "err", err)
				return
			}
			s.log.Warn("line rejected", "name", name, "line", lineNo, "to", final, "reason", r.reason)
		case lineExhausted:
			last := lineNo + bytes.Count(bytes.TrimRight(data[off:], "\n"), []byte{'\n'})
			n := int64(1 + countContent(data[next:]))
			s.failed.Add(n)
			s.m.failed.Add(float64(n))
			f := failure{file: name, lines: strconv.Itoa(lineNo), remote: r.remote, code: r.code, reason: r.reason, attempts: r.attempts}
			if last != lineNo {
				f.lines += "-" + strconv.Itoa(last)
			}
			if off == first {
				s.failWhole(name, f)
				return
			}
			suffix := ".line-"
			if last != lineNo {
				suffix = ".lines-"
			}
			final, err := s.dirs.failData(data[off:], name+suffix+f.lines, f)
			if err != nil {
				s.log.Error("save unsent lines; the file stays in .inflight and is resumed at the next start", "name", name, "line", lineNo, "err", err)
				return
			}
			s.log.Warn("lines failed after retries", "name", name, "lines", f.lines, "to", final, "reason", r.reason)
			s.finish(name, sidecar)
			return
		}
		off, lineNo = next, lineNo+1
		if more {
			a := ack{lines: lineNo - 1, offset: int64(off), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
			sidecar = true
			if err := s.dirs.writeAck(name, a); err != nil {
				s.log.Error("progress not recorded: a restart may send acknowledged lines again", "err", err)
			}
		}
	}
	s.finish(name, sidecar)
}

// finish disposes of a claim whose every line is done.
func (s *Sender) finish(name string, sidecar bool) {
	if err := s.dirs.finish(name, sidecar); err != nil {
		s.log.Error("dispose of delivered file", "name", name, "err", err)
	}
}

// failWhole moves a claimed file to failed_dir under its own name.
func (s *Sender) failWhole(name string, f failure) {
	final, err := s.dirs.fail(filepath.Join(s.dirs.inflight, name), name, f)
	if err != nil {
		s.log.Error("move file to failed_dir; it stays in .inflight and is retried at the next start", "name", name, "err", err)
		return
	}
	if err := s.dirs.removeAck(name); err != nil {
		s.log.Warn("remove sidecar", "name", name, "err", err)
	}
	s.log.Warn("file failed", "name", name, "lines", f.lines, "to", final, "code", f.code, "reason", f.reason)
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
		s.putBack(name, nil, 0, time.Time{})
		return
	}
	if a, err := s.dirs.readAck(name, fi); err == nil && a.lines > 0 {
		s.putBack(name, data, int(a.offset), fi.ModTime())
		return
	}
	s.putBack(name, nil, 0, time.Time{})
}

// sendLine sends one spool line (a message without its length field) until
// it is answered 200 or 400, its retries are used up, or ctx (drain) stops
// it before an attempt. hard cuts off an attempt in progress.
func (s *Sender) sendLine(ctx, hard context.Context, body []byte, wb *workBuf) lineResult {
	frame, err := protocol.AppendFrame(wb.frame[:0], body)
	if err != nil {
		return lineResult{kind: lineRejected, reason: "invalid, not sent: " + err.Error()}
	}
	wb.frame = frame
	msg := frame[:len(frame)-1]
	if _, err := s.spec.Parse(msg); err != nil {
		return lineResult{kind: lineRejected, reason: "invalid, not sent: " + err.Error()}
	}
	pno := s.spec.ProcessNo(msg)
	var r lineResult
	for {
		if ctx.Err() != nil {
			return lineResult{kind: lineAborted}
		}
		t := s.live.Load()
		cn, err := s.client.get(ctx, s.m.attempts[resultConnect].Inc)
		if err != nil {
			return lineResult{kind: lineAborted}
		}
		r.attempts++
		r.remote = cn.addr
		start := time.Now()
		line, err := cn.roundTrip(hard, frame, t.timeout)
		result := resultOK
		switch {
		case err != nil:
			s.client.discard(cn)
			if hard.Err() != nil {
				return lineResult{kind: lineAborted}
			}
			if cn.reused && staleConn(err) {
				r.attempts-- // closed while idle: not an attempt
				continue
			}
			result = resultConnError
			if isTimeout(err) {
				result = resultTimeout
				err = fmt.Errorf("no reply within %s", t.timeout)
			} else if errors.Is(err, protocol.ErrTooLong) {
				result = resultBadReply
			}
			r.code, r.reason = 0, result+": "+err.Error()
		default:
			rep, perr := protocol.ParseReply(line)
			switch {
			case perr != nil:
				result, r.code, r.reason = resultBadReply, 0, "bad_reply: "+perr.Error()
			case rep.ProcessNo != string(pno):
				result, r.code, r.reason = resultBadReply, rep.Code, fmt.Sprintf("bad_reply: process_no %s answered for %s", rep.ProcessNo, pno)
			case rep.Code == protocol.CodeOK:
			case rep.Code == protocol.CodeInvalid:
				result, r.code, r.reason = resultRejected, rep.Code, "rejected by the remote (400)"
			case rep.Code == protocol.CodeUnavailable:
				result, r.code, r.reason = resultUnavailable, rep.Code, "remote unavailable (500)"
			default:
				result, r.code, r.reason = resultBadReply, rep.Code, fmt.Sprintf("bad_reply: unknown code %d", rep.Code)
			}
			if result == resultBadReply {
				s.client.discard(cn) // the stream may be out of step
			} else {
				s.m.send.Observe(time.Since(start).Seconds())
				s.client.put(cn)
			}
		}
		s.m.attempts[result].Inc()
		switch result {
		case resultOK:
			r.kind = lineDelivered
			return r
		case resultRejected:
			r.kind = lineRejected
			return r
		}
		if r.attempts > t.retries {
			r.kind = lineExhausted
			r.reason += fmt.Sprintf(" (after %d attempts)", r.attempts)
			return r
		}
		s.log.Debug("attempt failed; retrying", "attempt", r.attempts, "remote", r.remote, "reason", r.reason)
		if !sleep(ctx, backoffFor(r.attempts, t.backoff, t.backoffMax)) {
			return lineResult{kind: lineAborted}
		}
	}
}

// sleep waits d; false when ctx is done first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
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
