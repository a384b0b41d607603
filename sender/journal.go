package sender

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"spoolgate/internal/journal"
	"spoolgate/internal/mask"
	"spoolgate/protocol"
)

// The sender's side of the journal and of masking (docs/PROTOCOL.md §9),
// in one place. Each line's fate is journaled where its claim settles it
// (claim.go, outcome.go) or where the amqp source settles a delivery
// (amqp.go): delivered (with the remote and its reply code), failed (the
// file it went to in failed_dir, or the failed queue, and why) or put back
// (a drain stopped it: it is sent again). What the sender shows of a line
// or a reply (the reasons of .reason files, logs, /api/status and the
// console, the failed queue's reason header) has the fields of log.mask
// and, with log.mask_rrn, the resident number shapes masked; spool files
// and what goes to the remote or the broker keep every byte.

// trail is the sender's journal and masker. The zero trail journals and
// masks nothing.
type trail struct {
	d    *protocol.Dialect
	jr   *journal.Journal // nil: the journal is off
	mask *mask.Masker     // nil: nothing masked
	// reply is mask's rules for the remote's replies (their process_no
	// quoted in a bad reply's reason).
	reply *mask.Masker
	// keys are the result fields the journal keys on (Options.JournalKeys),
	// each alone, as AppendResultKey takes them; -1: not in the result spec
	// (journaled empty, so that the columns stay in order).
	keys [][]int
}

func newTrail(d *protocol.Dialect, jr *journal.Journal, m *mask.Masker, keys []string) trail {
	t := trail{d: d, jr: jr, mask: m, reply: m.For(d.Reply())}
	for _, n := range keys {
		t.keys = append(t.keys, []int{d.Result().Index(n)})
	}
	return t
}

// on reports whether the journal is on.
func (t *trail) on() bool { return t.jr != nil }

// now is the time a line is handed out, for its latency: zero with the
// journal off (no clock read per line).
func (t *trail) now() time.Time {
	if t.jr == nil {
		return time.Time{}
	}
	return time.Now()
}

// putBackReason is the reason= of a line a drain stopped.
const putBackReason = "stopping: not done, back to be sent again"

// record journals the fate ev of line (a spool line or an amqp body,
// without its LF; nil: not read) of file name at lineNo (0: none), or of
// the broker message queue/msgid: r is how its sending ended, to where it
// went (failed_dir's file, the failed queue), since when it was handed out
// (zero: no latency). It allocates nothing: the journal copies the record.
func (t *trail) record(ev journal.Event, name string, lineNo int, queue, msgid string, line []byte, r *lineResult, to string, since time.Time) {
	if t.jr == nil {
		return
	}
	var rec journal.Record
	rec.Time, rec.Event, rec.File, rec.Line, rec.Queue, rec.MsgID, rec.To = time.Now(), ev, name, lineNo, queue, msgid, to
	if r != nil {
		rec.Code, rec.Peer, rec.Attempts, rec.Reason = r.code, r.remote, r.attempts, r.reason
		if ev == journal.Delivered && rec.Code == 0 {
			rec.Code = protocol.CodeOK // sendLine leaves it out of a 200
		}
		if !since.IsZero() && r.attempts > 0 {
			rec.Latency = rec.Time.Sub(since)
		}
	}
	if ev == journal.PutBack && rec.Reason == "" {
		rec.Reason = putBackReason
	}
	if line != nil {
		var buf [journal.MaxKeyBytes]byte
		for _, idx := range t.keys {
			v, _ := t.d.AppendResultKey(buf[:0], line, idx, 0)
			rec.AddKey(v)
		}
	}
	t.jr.Add(&rec)
}

// file journals the fate of a file as a whole, none of its lines read: a
// special file or one too large moved to failed_dir (to).
func (t *trail) file(ev journal.Event, name, to, reason string) {
	if t.jr == nil {
		return
	}
	rec := journal.Record{Time: time.Now(), Event: ev, File: name, To: to, Reason: reason}
	t.jr.Add(&rec)
}

// text masks a reason or an error text (the resident number shapes).
func (t *trail) text(s string) string { return t.mask.Text(s) }

// badReply returns why a reply that cannot be read (err from
// Dialect.ParseReply, which quotes msg as it came) failed its line:
// quoting msg with the fields of log.mask and the resident number shapes
// masked, and of a field log.mask names only what was wrong with it.
func (t *trail) badReply(msg []byte, err error) string {
	var pe *protocol.ParseError
	if !t.reply.Active() || !errors.As(err, &pe) {
		return t.mask.Text(resultBadReply.String() + ": " + err.Error())
	}
	detail := pe.Error()
	if t.reply.Masks(t.d.Reply().Index(pe.Field)) {
		detail = pe.Reason()
	}
	shown := t.reply.AppendLine(nil, bytes.TrimSuffix(msg, []byte{'\n'}))
	return t.mask.Text(fmt.Sprintf("%s: parse reply %s: %s", resultBadReply, strconv.Quote(t.d.Text(shown)), detail))
}

// replyPno returns a reply's process_no (or the one it should have
// echoed) as a reason shows it: decoded, all '*' when log.mask names it.
func (t *trail) replyPno(v []byte) string {
	if t.reply.Masks(t.d.Reply().Index("process_no")) {
		return strings.Repeat("*", len(v))
	}
	return t.d.Text(v)
}

// maskErr returns err, why a spool line is not a valid result message
// (Sender.frame), as reasons show it: a ParseError of a field log.mask
// names gives only its reason (its detail quotes the value), anything
// else has its resident number shapes masked. It returns err itself when
// nothing is masked; the error returned wraps err.
func (t *trail) maskErr(err error) error {
	if !t.mask.Active() {
		return err
	}
	var pe *protocol.ParseError
	if errors.As(err, &pe) && t.mask.Masks(t.d.Result().Index(pe.Field)) {
		return &maskedError{err: err, text: pe.Reason()}
	}
	if s := err.Error(); t.mask.Text(s) != s {
		return &maskedError{err: err, text: t.mask.Text(s)}
	}
	return err
}

// maskedError is an error shown masked.
type maskedError struct {
	err  error
	text string
}

func (e *maskedError) Error() string { return e.text }
func (e *maskedError) Unwrap() error { return e.err }

// journal journals the fate ev of the amqp delivery body (its LF cut) of
// the results queue, which ended with r: to is the failed queue.
func (a *amqpSource) journal(ev journal.Event, msgid string, body []byte, r *lineResult, to string, since time.Time) {
	a.s.tr.record(ev, "", 0, a.queue.Name, msgid, body, r, to, since)
}

// journal journals the fate ev of ln, a line of the claim, which ended
// with r (its latency from r.start).
func (c *claim) journal(ev journal.Event, ln fileLine, r *lineResult) {
	if c.s.tr.on() {
		c.s.tr.record(ev, c.name, ln.no, "", "", c.data[ln.off:ln.end], r, "", r.start)
	}
}

// unread is the claim's bytes from the first line not done: none when
// they were not read (a file restored over the cap).
func (c *claim) unread() []byte {
	if c.off >= len(c.data) {
		return nil
	}
	return c.data[c.off:]
}

// journalFailed journals the lines of rest (the claim's, from line no on)
// that went to failed_dir as to, with the reason f: line failedNo with
// f's code, attempts and remote (its latency from c.at), every other
// complete line as never sent (it follows a line whose retries ran out,
// or is in a file over the cap). A file that failed whole for its size
// (lines "all"), or none of whose lines was read, is journaled as the
// file.
func (c *claim) journalFailed(f failure, to string, rest []byte, no, failedNo int) {
	t := &c.s.tr
	if !t.on() {
		return
	}
	if f.lines == "all" { // too large: its lines were not all read
		t.file(journal.Failed, c.name, to, f.reason)
		return
	}
	failed := lineResult{code: f.code, remote: f.remote, reason: f.reason, attempts: f.attempts}
	unsent := lineResult{reason: "not sent: line " + strconv.Itoa(failedNo) + " before it failed: " + f.reason}
	n := 0
	for off := 0; ; n++ {
		ln, ok := nextLine(rest, off, no, true)
		if !ok || ln.end > len(rest) {
			break
		}
		if ln.no == failedNo {
			t.record(journal.Failed, c.name, ln.no, "", "", rest[ln.off:ln.end], &failed, to, c.at)
		} else {
			t.record(journal.Failed, c.name, ln.no, "", "", rest[ln.off:ln.end], &unsent, to, time.Time{})
		}
		off, no = ln.next, ln.no+1
	}
	if n == 0 {
		t.file(journal.Failed, c.name, to, f.reason)
	}
}
