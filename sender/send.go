package sender

import (
	"context"
	"fmt"
	"time"

	"spoolgate/protocol"
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
	msg := frame[:len(frame)-1]
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
// off, or the failure is not an attempt (notAnAttempt).
func (s *Sender) attempt(hard context.Context, cn *conn, frame, pno []byte, timeout time.Duration) (result attemptResult, code int, reason string, counted bool) {
	start := time.Now()
	line, err := cn.roundTrip(hard, frame, timeout)
	if err != nil {
		s.client.discard(cn)
		if hard.Err() != nil || s.notAnAttempt(err, cn.reused && staleConn(err), closedUnread(cn, err)) {
			return 0, 0, "", false
		}
		result, reason = errResult(err, timeout)
		return result, 0, reason, true
	}
	result, code, reason = replyResult(line, pno)
	if result == resultBadReply {
		s.client.discard(cn) // the stream may be out of step
	} else {
		s.m.send.Observe(time.Since(start).Seconds())
		s.client.put(cn)
	}
	return result, code, reason, true
}

// frame appends to dst the message to send for a spool line and its LF
// (appendFrame): the line prefixed with its length field (docs/PROTOCOL.md
// §5), or the line as it is when it already starts with a correct length
// field (as request files and `spoolgate send` hold messages) and is valid
// so. The error says why the line is not a valid message either way.
func (s *Sender) frame(dst, body []byte) ([]byte, error) {
	frame, err := appendFrame(dst, body, true)
	if err == nil {
		if _, err = s.spec.Parse(frame[:len(frame)-1]); err == nil {
			return frame, nil
		}
	}
	n, ok := lengthField(body)
	if !ok {
		return frame, err
	}
	if n != len(body)+1 {
		return frame, fmt.Errorf("the line starts with %q, a length field that does not match its %d bytes with LF: "+
			"a spool file holds one message per line without the length field (the sender adds it), "+
			"or with the correct one (as a line without it: %w)", body[:4], len(body)+1, err)
	}
	frame, _ = appendFrame(frame[:0], body, false)
	if _, err := s.spec.Parse(frame[:len(frame)-1]); err != nil {
		return frame, fmt.Errorf("%w (the line carries its length field; checked as it is)", err)
	}
	return frame, nil
}

// appendFrame appends to dst what carries the spool line body on the
// wire: the line prefixed with its length field (prefix), or as it is,
// then its LF. It is the one place that frames a line (frame and the send
// window call it); it checks nothing but what the length field can hold.
func appendFrame(dst, body []byte, prefix bool) ([]byte, error) {
	if prefix {
		return protocol.AppendFrame(dst, body)
	}
	return append(append(dst, body...), '\n'), nil
}

// lengthField returns the value of a leading 4-digit field of line.
func lengthField(line []byte) (int, bool) {
	if len(line) < 5 || line[4] != '|' {
		return 0, false
	}
	n := 0
	for _, c := range line[:4] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
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
