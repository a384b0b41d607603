package sender

import (
	"context"
	"time"
)

// Sending one line at a time (sender.window 1): write it, read its reply,
// retry as retry.go says.

// sendLine sends one spool line (a message without its length field) until
// it is answered 200 or 400, its retries are used up, or ctx (drain) stops
// it before an attempt. hard cuts off an attempt in progress.
func (s *Sender) sendLine(ctx, hard context.Context, body []byte, wb *workBuf) lineResult {
	frame, err := s.frame(wb.frame[:0], body)
	wb.frame = frame
	if err != nil {
		return lineResult{kind: lineRejected, reason: "invalid, not sent: " + err.Error()}
	}
	pno := s.expect(frame)
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
		result, code, reason, counted := s.attempt(hard, cn, frame, pno, t.timeout)
		if !counted {
			if hard.Err() != nil {
				return lineResult{kind: lineAborted}
			}
			continue
		}
		r.attempts++
		r.remote = cn.addr
		s.m.attempts[result].Inc()
		if result == resultOK {
			r.kind = lineDelivered
			return r
		}
		r.code, r.reason = code, reason
		s.noteError(r.remote, r.reason)
		if result == resultRejected {
			r.kind = lineRejected
			return r
		}
		if done, reason := exhausted(r.attempts, t, r.reason); done {
			r.kind, r.reason = lineExhausted, reason
			return r
		}
		s.log.Debug("attempt failed; retrying", "attempt", r.attempts, "remote", r.remote, "reason", r.reason)
		if !backoff(ctx, r.attempts, t) {
			return lineResult{kind: lineAborted}
		}
	}
}

// attempt makes one attempt of frame, whose reply must echo pno, on cn
// (roundTrip), and gives cn back to the client (closed after a failure):
// its result, the reply's code (0 when none) and, unless resultOK, why.
// counted is false when the attempt counts against no line: hard cut it
// off, or the failure is not an attempt (notAnAttempt, quietTimeout).
func (s *Sender) attempt(hard context.Context, cn *conn, frame, pno []byte, timeout time.Duration) (result attemptResult, code int, reason string, counted bool) {
	start := time.Now()
	line, err := cn.roundTrip(hard, frame, timeout)
	if err != nil {
		s.client.discard(cn)
		if hard.Err() != nil || s.notAnAttempt(err, cn.reused && staleConn(err), closedUnread(cn, err)) || s.quietTimeout(err, start, timeout) {
			return 0, 0, "", false
		}
		result, reason = errResult(err, timeout)
		return result, 0, reason, true
	}
	result, code, reason = s.replyResult(line, pno)
	if result == resultBadReply {
		s.client.discard(cn) // the stream may be out of step
	} else {
		s.m.send.Observe(time.Since(start).Seconds())
		s.client.put(cn)
	}
	return result, code, reason, true
}

// frame appends to dst the wire bytes of body, one spool line (a message
// without its length field or header, docs/PROTOCOL.md §5), in the
// dialect: Dialect.AppendResult frames it (under framing lf the length
// field first and the LF last, under framing length the header first) and
// validates it against the result spec; a line that already starts with a
// correct length field goes as it is (framing lf). It is the one place
// that frames a line (sendLine and the send window call it). The error
// says why the line is not a valid message; dst is then returned
// unchanged; its text is masked (log.mask, log.mask_rrn), for it goes to
// the .reason file, the logs and the journal.
func (s *Sender) frame(dst, body []byte) ([]byte, error) {
	out, err := s.d.AppendResult(dst, body)
	if err != nil {
		return out, s.tr.maskErr(err) // its text becomes the line's reason
	}
	return out, nil
}

// expect returns the process_no the reply to frame (what frame appended)
// must echo: nil when the dialect's replies carry none (replies are then
// matched by order only). It aliases frame or a constant of the dialect.
func (s *Sender) expect(frame []byte) []byte {
	return s.d.ResultProcessNo(s.d.Unframe(frame))
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
