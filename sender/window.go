package sender

import (
	"context"
	"errors"
	"time"
)

// A send window (sender.window W > 1, docs/PROTOCOL.md §5): a worker writes up to W
// lines of one file on its connection before it reads their replies, and
// matches each reply to its line in order, checking the echoed process_no.
// The lines done always form a prefix of the file, as with W = 1, so the
// progress record and a drain work as before:
//
//   - 200 delivers the first line in flight, 400 rejects it (process saves
//     it to failed_dir), and the lines behind it go on;
//   - a timeout, reset, close, unreadable reply, wrong process_no or 500
//     fails the attempt of the first line in flight: the connection is
//     closed (its other replies are not waited for) and, after the
//     backoff, every line not yet answered is written again on a new one.
//     A line behind the first may so be stored twice; the receiver's
//     duplicate window (receiver.dedup_window) answers the copy 200
//     without storing it. Only the first line's attempts count (each
//     failure is one attempt of one line, as with W = 1): when its
//     retries are used up, it and the lines after it go to failed_dir;
//   - while draining no new line is written: the lines in flight are
//     answered (or cut off by the shutdown timeout), the rest go back.
//
// The window is bounded by the progress record too: no line is written
// more than W lines past the last line recorded done, so that a crash
// (kill -9) resends at most W lines of each file in flight. When a refill
// would go past that, the progress is recorded first (note: one pwrite),
// and made durable (sync: one fdatasync) once the refill is written, while
// the remote works on it; the next record waits for that sync. A power
// loss may so find the record before the last one: 2W lines. At W = 1
// after a reload the bound is that of the line-at-a-time path, 100 lines.
// The window is read live: a reload changes it for the file being sent.

// pending is a line of the file in the window.
type pending struct {
	off, end, next int       // the line in the file's data: [off, end) without its LF
	fo, fe         int       // its wire bytes: window.frames[fo:fe] (empty when done before sending)
	sent           bool      // written on the window's connection, not yet answered
	at             time.Time // when it was written
	batch          int       // the write that carried it (window.batches)
	lead           bool      // the first line of that write
	attempts       int       // attempts that failed
	done           bool      // res is its outcome: an invalid line, never sent
	res            lineResult
}

// window sends the lines of one claimed file W at a time on one
// connection. It is used by one worker goroutine.
type window struct {
	s         *Sender
	ctx, hard context.Context
	wb        *workBuf
	since     func() int // lines done since the progress was last recorded
	note      func()     // record the progress now, without waiting for the disk
	sync      func()     // wait until the progress noted is on disk

	cn       *conn
	answered int // replies read on cn
	fl       []pending
	frames   []byte // the wire bytes of the lines in fl, framed once (fill)
	out      []byte // frames to write
	batches  int    // writes on the window's connections
	lastOK   int    // the write that carried the line answered last on cn (0: none), if that line led it
	full     bool   // the last fill filled the window (else the file had no more lines)
}

// progressBound is how far past the recorded progress a window of size
// lines may write: what a crash may resend of a file. At 2 × size, a
// record is due once per size lines, not at every reply of a window
// that slides.
func progressBound(size int) int {
	if size == 1 {
		return ackEveryLines
	}
	return 2 * size
}

// size is the window for the lines to come: sender.window, or with auto
// the window of the remote (autoWindows) the connection goes to.
func (w *window) size(t *tunables) int {
	if t.window != windowAuto {
		return t.window
	}
	addr := w.s.client.current()
	if w.cn != nil {
		addr = w.cn.addr
	}
	return w.s.auto.size(addr)
}

// errAborted reports that ctx ended while the circuit was open.
var errAborted = errors.New("aborted")

func (s *Sender) newWindow(ctx, hard context.Context, wb *workBuf, since func() int, note, sync func()) *window {
	return &window{s: s, ctx: ctx, hard: hard, wb: wb, since: since, note: note, sync: sync}
}

// result returns the outcome of the line at off, the first line not done
// (process asks for the lines in order, skipping empty ones). It writes the
// lines after it that are complete (a last line without LF only when
// final) as the window allows.
func (w *window) result(data []byte, off int, final bool) lineResult {
	if len(w.fl) > 0 && w.fl[0].off != off { // not the line expected: start over
		w.close()
		w.fl = w.fl[:0]
	}
	for {
		if len(w.fl) > 0 && w.fl[0].done {
			return w.pop()
		}
		t := w.s.live.Load()
		size := w.size(t)
		waiting := len(w.fl) > 0 && w.fl[0].sent
		// Refill when the first line is not written yet, or when no reply
		// is buffered and the window has room: it slides, the lines
		// answered in one read replaced in one write.
		if !waiting || (!w.replyBuffered() && w.unanswered() < size) {
			if w.ctx.Err() == nil {
				w.fill(data, off, final, size)
			}
			switch {
			case len(w.fl) == 0 || (!w.fl[0].sent && w.ctx.Err() != nil):
				return lineResult{kind: lineAborted} // draining: nothing more is written
			case w.fl[0].done:
				continue
			}
			err := w.send(data, t.timeout)
			w.sync()
			if err != nil {
				if errors.Is(err, errAborted) {
					return lineResult{kind: lineAborted}
				}
				if r, end := w.failed(err, t); end {
					return r
				}
				continue
			}
		}
		line, err := w.read(t.timeout)
		if err != nil {
			if r, end := w.failed(err, t); end {
				return r
			}
			continue
		}
		if r, end := w.answer(line, t); end {
			return r
		}
	}
}

// answer takes the reply line to the first line in flight: 200 or 400
// make it done; anything else fails its attempt (retry). With end, r is
// the first line's outcome.
func (w *window) answer(line []byte, t *tunables) (r lineResult, end bool) {
	e := &w.fl[0]
	result, code, reason := w.s.replyResult(line, w.s.expect(w.frames[e.fo:e.fe]))
	if result != resultBadReply {
		w.s.m.send.Observe(time.Since(e.at).Seconds())
	}
	switch result {
	case resultOK, resultRejected:
		w.s.m.attempts[result].Inc()
		w.answered++
		w.lastOK = 0
		if e.lead {
			w.lastOK = e.batch
		}
		if t.window == windowAuto {
			w.s.auto.answered(w.cn.addr, time.Since(e.at), w.full, time.Now())
		}
		e.sent = false
		e.done = true
		e.res = lineResult{kind: lineDelivered, code: code, remote: w.cn.addr, attempts: e.attempts + 1}
		if result == resultRejected {
			e.res.kind, e.res.reason = lineRejected, reason
		}
		return lineResult{}, false
	}
	remote := w.cn.addr
	if result == resultBadReply && t.window == windowAuto && w.skipped(line) {
		w.s.auto.skipped(remote, "a reply to a later line than the one waited for")
	}
	if result == resultUnavailable {
		e.sent = false
		if w.unanswered() == 0 { // in step, nothing else in flight: keep it
			w.s.client.put(w.cn)
			w.cn = nil
		}
	}
	return w.retry(result, reason, code, remote, t)
}

// fill adds to the window the complete lines after the last one in it (or
// from off), up to size lines in the window and at most size lines past
// the progress recorded (recording it first when that is what holds the
// window back). An invalid line is done at once: rejected, never sent.
func (w *window) fill(data []byte, off int, final bool, size int) {
	room := size - len(w.fl)
	if room <= 0 {
		return
	}
	bound := progressBound(size)
	budget := bound - w.since() - len(w.fl)
	if budget < room && w.since() > 0 {
		w.note()
		budget = bound - w.since() - len(w.fl)
	}
	n := min(room, budget)
	if n <= 0 && len(w.fl) == 0 {
		n = 1 // the progress could not be recorded (logged): go on
	}
	pos := off
	if len(w.fl) > 0 {
		pos = w.fl[len(w.fl)-1].next
	}
	w.compact()
	w.full = true
	for ; n > 0; n-- {
		ln, ok := nextLine(data, pos, 0, final)
		if !ok {
			w.full = false // no more lines: the window is not what limits
			break
		}
		e := pending{off: ln.off, end: ln.end, next: ln.next}
		var err error
		e.fo = len(w.frames)
		if w.frames, err = w.s.frame(w.frames, data[ln.off:ln.end]); err != nil {
			e.done = true
			e.res = lineResult{kind: lineRejected, reason: "invalid, not sent: " + err.Error()}
		}
		e.fe = len(w.frames)
		w.fl = append(w.fl, e)
		pos = ln.next
	}
}

// compact drops the wire bytes of the lines no longer in the window:
// all of them when it is empty, else those before its first line once
// they are half of frames (amortized: each byte is moved at most once
// more than it is framed).
func (w *window) compact() {
	if len(w.fl) == 0 {
		w.frames = w.frames[:0]
		return
	}
	first := w.fl[0].fo
	if first == 0 || 2*first < len(w.frames) {
		return
	}
	n := copy(w.frames, w.frames[first:])
	w.frames = w.frames[:n]
	for i := range w.fl {
		w.fl[i].fo -= first
		w.fl[i].fe -= first
	}
}

// send writes the lines of the window not written yet, in one write, on
// the window's connection (taken from the client when it has none: that
// waits while the circuit is open, and fails with errAborted when ctx ends
// meanwhile).
func (w *window) send(data []byte, timeout time.Duration) error {
	if w.cn == nil {
		cn, err := w.s.client.get(w.ctx, w.s.m.attempts[resultConnect].Inc)
		if err != nil {
			return errAborted
		}
		w.cn, w.answered = cn, 0
	}
	out := w.out[:0]
	now := time.Now()
	w.batches++
	for i := range w.fl {
		e := &w.fl[i]
		if e.done || e.sent {
			continue
		}
		e.lead = len(out) == 0
		out = append(out, w.frames[e.fo:e.fe]...)
		e.sent, e.at, e.batch = true, now, w.batches
	}
	w.out = out
	if len(out) == 0 {
		return nil
	}
	if err := w.cn.nc.SetWriteDeadline(now.Add(timeout)); err != nil {
		return err
	}
	stop := context.AfterFunc(w.hard, func() { _ = w.cn.nc.SetDeadline(aLongTimeAgo) })
	defer stop()
	_, err := w.cn.nc.Write(out)
	return err
}

// replyBuffered reports whether a whole reply has been read from the
// window's connection and not yet taken.
func (w *window) replyBuffered() bool { return w.cn.replyBuffered() }

// read reads the reply to the first line in the window, due timeout after
// it was written.
func (w *window) read(timeout time.Duration) ([]byte, error) {
	if w.replyBuffered() { // read already: no wait, no deadline to set
		return w.cn.readReply()
	}
	if err := w.cn.nc.SetReadDeadline(w.fl[0].at.Add(timeout)); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(w.hard, func() { _ = w.cn.nc.SetDeadline(aLongTimeAgo) })
	defer stop()
	return w.cn.readReply()
}

// failed handles an error writing the window or reading the first line's
// reply: the connection is closed and the lines in flight are to be
// written again. A connection from the idle pool that fails before its
// first reply was closed by the remote while idle: not an attempt; nor is
// a new connection closed or reset before the remote sent a byte, nor a
// TLS alert rejecting our certificate: those open the circuit. With
// end, r is the first line's outcome.
func (w *window) failed(err error, t *tunables) (r lineResult, end bool) {
	stale := w.cn.reused && w.answered == 0 && staleConn(err)
	unread := closedUnread(w.cn, err)
	remote := w.cn.addr
	var sent time.Time // when the line waited for was written
	if len(w.fl) > 0 {
		sent = w.fl[0].at
	}
	if t.window == windowAuto && isTimeout(err) && len(w.fl) > 0 && w.fl[0].sent && w.fl[0].batch == w.lastOK {
		// A line of a write whose first line, and no other, was answered:
		// the remote read that write as one message.
		w.s.auto.skipped(remote, "a timeout of a line written with one that was answered")
	}
	w.drop()
	if w.hard.Err() != nil {
		return lineResult{kind: lineAborted}, true
	}
	if w.s.notAnAttempt(err, stale, unread) || w.s.quietTimeout(err, sent, t.timeout) {
		return lineResult{}, false
	}
	result, reason := errResult(err, t.timeout)
	return w.retry(result, reason, 0, remote, t)
}

// retry counts a failed attempt of the first line in the window: with its
// retries used up it is exhausted (end); else retry waits the backoff (a
// drain ends that: aborted). A connection out of step is closed first.
func (w *window) retry(result attemptResult, reason string, code int, remote string, t *tunables) (r lineResult, end bool) {
	if result == resultBadReply || w.unanswered() > 0 {
		w.drop()
	}
	e := &w.fl[0]
	w.s.m.attempts[result].Inc()
	e.attempts++
	e.res = lineResult{code: code, reason: reason, attempts: e.attempts, remote: remote}
	if done, reason := exhausted(e.attempts, t, e.res.reason); done {
		r := e.res
		r.kind, r.reason = lineExhausted, reason
		w.popFront()
		return r, true
	}
	w.s.log.Debug("attempt failed; retrying", "attempt", e.attempts, "remote", e.res.remote, "reason", reason, "window", len(w.fl))
	if !backoff(w.ctx, e.attempts, t) {
		return lineResult{kind: lineAborted}, true
	}
	return lineResult{}, false
}

// drop closes the window's connection after an error; every line in
// flight is to be written again.
func (w *window) drop() {
	if w.cn == nil {
		return
	}
	for i := range w.fl {
		w.fl[i].sent = false
	}
	w.s.client.discard(w.cn)
	w.cn, w.lastOK = nil, 0
}

// skipped reports whether reply, read in the dialect, names a line in
// flight after the first: the remote did not answer the first (under auto:
// it read the write as one message). A dialect whose replies carry no
// process_no matches them by order only: it cannot tell, and says no.
func (w *window) skipped(reply []byte) bool {
	rep, err := w.s.d.ParseReply(reply)
	if err != nil || rep.ProcessNo == "" {
		return false
	}
	for i := 1; i < len(w.fl); i++ {
		if e := &w.fl[i]; e.sent && string(w.s.expect(w.frames[e.fo:e.fe])) == rep.ProcessNo {
			return true
		}
	}
	return false
}

// pop returns the outcome of the first line, done, and removes it; the
// connection goes back to the client when nothing is in flight any more.
func (w *window) pop() lineResult {
	r := w.fl[0].res
	w.popFront()
	if len(w.fl) == 0 && w.cn != nil {
		w.s.client.put(w.cn)
		w.cn = nil
	}
	return r
}

func (w *window) popFront() {
	n := copy(w.fl, w.fl[1:])
	w.fl = w.fl[:n]
}

// idle reports whether no line is in the window.
func (w *window) idle() bool { return len(w.fl) == 0 }

// unanswered counts the lines written and not answered.
func (w *window) unanswered() int {
	n := 0
	for i := range w.fl {
		if w.fl[i].sent {
			n++
		}
	}
	return n
}

// close gives the connection back (closed when replies are still due).
func (w *window) close() {
	if w.cn == nil {
		return
	}
	if w.unanswered() > 0 {
		w.s.client.discard(w.cn)
	} else {
		w.s.client.put(w.cn)
	}
	w.cn = nil
	for i := range w.fl {
		w.fl[i].sent = false
	}
}
