package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"spoolgate/internal/tlsutil"
	"spoolgate/protocol"
)

// The retry policy of the sender, in one place: what a reply or an error
// means for the line in flight, what counts as an attempt, when a line has
// used up its retries, how long to wait before the next attempt or probe,
// and when the circuit opens. Both ways of sending a line (sendLine, one at
// a time, and the send window) follow it.
//
// A line is retried until it is answered 200 (delivered) or 400 (rejected),
// or until sender.retries attempts after the first have failed (exhausted).
// An attempt fails with a timeout, a reset or closed connection, an
// unreadable reply, a process_no that is not the line's, an unknown code, or
// 500. Not an attempt: a pooled connection the remote closed while it was
// idle (the line is written again at once), and anything that makes the
// remote unreachable: no address accepts a connection, a new connection is
// closed or reset before the remote sent a byte (a balancer whose backends
// are down accepts and closes at once), or the remote rejects our client
// certificate (a TLS 1.3 alert after the dial). Those
// open the circuit, which pauses every send until a probe gets through,
// and count against no line. Between attempts a line waits
// sender.retry_backoff doubled per failed attempt, at most
// sender.retry_backoff_max, with jitter; the circuit's prober waits the same
// way, but never longer than a schedule of its own (probeDelay).

// replyResult classifies msg, a reply without its framing (readReply),
// to the line whose reply must echo pno (expect): the attempt result (a
// label of spoolgate_sender_attempts_total), the reply's code mapped back
// to CodeOK, CodeInvalid or CodeUnavailable (0 when unreadable or none of
// the dialect's codes) and, unless resultOK, why, decoded to UTF-8. The
// reply is read with the dialect's reply spec (Dialect.ParseReply); with
// no process_no in it, pno is nil and replies match by order only.
func (s *Sender) replyResult(msg, pno []byte) (result attemptResult, code int, reason string) {
	rep, err := s.d.ParseReply(msg)
	switch {
	case err != nil: // quotes the reply: masked (log.mask, log.mask_rrn)
		return resultBadReply, 0, s.tr.badReply(msg, err)
	case rep.ProcessNo != string(pno):
		return resultBadReply, rep.Code, s.tr.text(fmt.Sprintf("%s: process_no %s answered for %s", resultBadReply, s.tr.replyPno([]byte(rep.ProcessNo)), s.tr.replyPno(pno)))
	case rep.Code == protocol.CodeOK:
		return resultOK, rep.Code, ""
	case rep.Code == protocol.CodeInvalid:
		return resultRejected, rep.Code, "rejected by the remote (400)"
	case rep.Code == protocol.CodeUnavailable:
		return resultUnavailable, rep.Code, "remote unavailable (500)"
	}
	return resultBadReply, 0, resultBadReply.String() + ": unknown code " + rep.CodeText
}

// errResult classifies an error writing a message or reading its reply
// (one that counts as an attempt): the attempt result and why.
func errResult(err error, timeout time.Duration) (result attemptResult, reason string) {
	result = resultConnError
	if isTimeout(err) {
		result = resultTimeout
		err = fmt.Errorf("no reply within %s", timeout)
	} else if _, unframed := protocol.FrameReason(err); unframed { // too long, or a header that cannot be read
		result = resultBadReply
	}
	return result, result.String() + ": " + err.Error()
}

// notAnAttempt reports whether a failed round trip counts against no line:
// the remote rejected our client certificate or unread (see closedUnread)
// (the circuit opens), or stale, a reused connection the remote closed
// while idle (see staleConn).
func (s *Sender) notAnAttempt(err error, stale, unread bool) bool {
	if isRejected(err) || unread {
		s.client.unreachable(s.m.attempts[resultConnect].Inc, err, unread && !isRejected(err))
		return true
	}
	return stale
}

// quietTimeout reports whether a timeout err of an attempt written at
// sent found the remote quiet: not a byte from it on any connection
// since. That is no line's fault but an outage (a link that passes
// nothing, a remote that says nothing): it counts against no line, and
// opens the circuit (counted as a timeout attempt all the same). A
// timeout while the remote answers other lines is an attempt of the line.
func (s *Sender) quietTimeout(err error, sent time.Time, timeout time.Duration) bool {
	if !isTimeout(err) || s.client.heardAt().After(sent) {
		return false
	}
	s.m.attempts[resultTimeout].Inc()
	s.client.closeIdle()
	s.circuit.trip(fmt.Errorf("no reply within %s, and not a byte from the remote on any connection meanwhile", timeout), true)
	return true
}

// unreachable opens the circuit after err, a failure to reach the remote
// (no address accepts a connection, it rejects our certificate, or quiet:
// it takes connections and closes them before a byte): countConnect counts
// it, idle connections are closed, and sends pause until a probe gets
// through (quiet: until a trial send gets a byte back).
func (c *client) unreachable(countConnect func(), err error, quiet bool) {
	countConnect()
	c.closeIdle()
	c.circuit.trip(err, quiet)
}

// exhausted reports whether a line whose attempts failed attempts times has
// used up its retries; reason then says after how many.
func exhausted(attempts int, t *tunables, reason string) (bool, string) {
	if attempts <= t.retries {
		return false, reason
	}
	return true, reason + fmt.Sprintf(" (after %d attempts)", attempts)
}

// backoff waits before the attempt after attempts failed ones; false when
// ctx (a drain) ends it first.
func backoff(ctx context.Context, attempts int, t *tunables) bool {
	return sleep(ctx, backoffFor(attempts, t.backoff, t.backoffMax))
}

// backoffFor returns the delay before retry number n (1-based): first
// doubled n-1 times, at most max, with jitter.
func backoffFor(n int, first, max time.Duration) time.Duration {
	d := first
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return jitter(min(d, max))
}

// The circuit's probes have a schedule of their own, so that a remote
// that comes back is noticed within probeMax (plus the probe: a connect
// and closeWait) whatever sender.retry_backoff_max says: probe n waits the
// shorter of probeFirst and retry_backoff doubled n-1 times, each at most
// probeMax and retry_backoff_max, drawn from its upper half (jitter). At
// the defaults (retry_backoff 1 s): 0.25-0.5 s, 0.5-1 s, 1-2 s, then 2-4 s
// apart for as long as the circuit stays open.
const (
	probeFirst = 500 * time.Millisecond
	probeMax   = 4 * time.Second
)

// probeDelay returns the delay before probe number n (1-based) of an
// open circuit, before jitter (see probeFirst).
func probeDelay(n int, backoff, backoffMax time.Duration) time.Duration {
	own, theirs := probeFirst, backoff
	for i := 1; i < n && (own < probeMax || theirs < backoffMax); i++ {
		own, theirs = min(2*own, probeMax), min(2*theirs, backoffMax)
	}
	return min(own, probeMax, theirs, backoffMax)
}

// jitter spreads d over [d/2, d] so that many senders do not retry in step.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// staleConn reports whether err on a reused connection looks like the
// remote closed it while idle: the message is then sent again on a new
// connection without counting an attempt.
func staleConn(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// closedUnread reports whether err on cn is the remote closing or
// resetting a new connection before sending a byte: it accepted the
// connection but cannot serve it (a balancer with its backends down), as
// unreachable as a refused connect. A connection that carried a reply
// before, or that got part of one, is not: that failure is an attempt.
func closedUnread(cn *conn, err error) bool {
	return !cn.reused && cn.read == 0 && staleConn(err)
}

// isTimeout reports a deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isRejected reports a remote that rejects our client certificate.
func isRejected(err error) bool {
	var re *tlsutil.RejectedError
	return errors.As(err, &re)
}
