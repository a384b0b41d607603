package receiver

import (
	"errors"
	"strings"
	"time"

	"spoolgate/internal/journal"
	"spoolgate/internal/mask"
	"spoolgate/protocol"
)

// trail is what the Server writes to the journal (docs/PROTOCOL.md §9:
// one record per message answered, from the batch's replies, and one per
// request file published) and how it masks what it shows of a message:
// log samples, the errors it logs, the reject samples of /api/status and
// the console (log.mask, log.mask_rrn). Request files and what goes to
// the broker keep every byte.
type trail struct {
	d    *protocol.Dialect
	jr   *journal.Journal // nil: the journal is off
	mask *mask.Masker     // nil: nothing masked
	// keys are the request fields the journal keys on
	// (journal.KeyFields), at most journal.MaxKeys.
	keys []int
	// pnoMasked: log.mask names process_no (shown in debug lines).
	pnoMasked bool
	// idMasked is by position in the amqp message_id (the fields of
	// receiver.dedup_key): log.mask names that field.
	idMasked []bool
	anyID    bool // one of idMasked is set
}

func newTrail(d *protocol.Dialect, jr *journal.Journal, m *mask.Masker, dedupKey []string) trail {
	req := d.Request()
	t := trail{d: d, jr: jr, mask: m, pnoMasked: m.Masks(req.Index("process_no"))}
	for _, n := range journal.KeyFields(dedupKey, req.Names()) {
		if len(t.keys) < journal.MaxKeys {
			t.keys = append(t.keys, req.Index(n))
		}
	}
	for _, n := range dedupKey {
		masked := m.Masks(req.Index(n))
		t.idMasked = append(t.idMasked, masked)
		t.anyID = t.anyID || masked
	}
	return t
}

// record fills r, empty, with the journal record of one message of a
// batch (the caller adds it): raw is what its reply echoes (the message,
// or the whole fields of its start), code its answer; where is where it
// was stored (Accepted), reason why it was not (Rejected, Unavailable). A
// duplicate is answered 200 without being stored again. It allocates
// nothing unless the amqp message_id has a masked field.
func (t *trail) record(r *journal.Record, ev journal.Event, code int, peer string, raw []byte, where *Where, reason string, now time.Time) {
	r.Time, r.Event, r.Code, r.Peer, r.Reason = now, ev, code, peer, reason
	if where != nil {
		r.File, r.Line, r.Queue, r.MsgID = where.File, where.Line, where.Queue, where.MsgID
		if !where.At.IsZero() {
			r.Time = where.At // not after the file's publication
		}
		if t.anyID && r.MsgID != "" {
			r.MsgID = t.maskID(r.MsgID)
		}
	}
	var vals [journal.MaxKeys][]byte // they alias raw
	t.d.Request().RawFields(raw, t.keys, vals[:])
	for _, v := range vals[:len(t.keys)] {
		r.AddKey(v)
	}
}

// published journals that the request file part (base names) got the
// name final: trace shows the name downstream sees.
func (t *trail) published(part, final string, now time.Time) {
	r := journal.Record{Time: now, Event: journal.Published, File: part, To: final}
	t.jr.Add(&r)
}

// maskID masks the fields of log.mask in id, an amqp message_id: the
// receiver.dedup_key values joined by '|' (AMQPSink.messageID).
func (t *trail) maskID(id string) string {
	parts := strings.SplitN(id, "|", len(t.idMasked))
	for i, p := range parts {
		if t.idMasked[i] {
			parts[i] = strings.Repeat("*", len(p))
		}
	}
	return strings.Join(parts, "|")
}

// sample returns the start of line, at most n bytes, masked and decoded
// to UTF-8: a rejected message as logs and /api/status show it.
func (t *trail) sample(line []byte, n int) string {
	line = line[:min(len(line), n)]
	if !t.mask.Active() {
		return t.d.Text(line)
	}
	return t.d.Text(t.mask.AppendLine(make([]byte, 0, len(line)), line))
}

// errText returns err as logs show it: a ParseError of a field log.mask
// names gives only its reason (its detail quotes the value), anything
// else has its resident number shapes masked (log.mask_rrn).
func (t *trail) errText(err error) string {
	var pe *protocol.ParseError
	if errors.As(err, &pe) && t.mask.Masks(t.d.Request().Index(pe.Field)) {
		return pe.Reason()
	}
	return t.mask.Text(err.Error())
}

// processNo returns the process_no of raw (what a reply to it echoes) as
// logs show it: decoded, masked when log.mask names it.
func (t *trail) processNo(raw []byte) string {
	v := t.d.ProcessNo(raw)
	if t.pnoMasked {
		return strings.Repeat("*", len(v))
	}
	return t.mask.Text(t.d.Text(v))
}
