package receiver

import (
	"time"

	"spoolgate/internal/journal"
	"spoolgate/protocol"
)

// maxPipeline bounds the messages of one connection answered together (one
// store wait, one write of their replies), so that one connection cannot
// hold the writer for long. Their bytes are bounded by the read buffer: the
// messages after the first of a batch are only those already whole in it
// (a 4 KiB buffer holds about 50 messages of 80 bytes; 256 leaves room for
// short invalid lines).
const maxPipeline = 256

// pipe answers a connection's pipeline in batches (docs/PROTOCOL.md §3): the messages
// the connection has already sent are validated one by one, the valid ones
// handed to the store together (one wait for their sync), and the replies
// written in order in one write. A 400 or a duplicate in the middle is
// answered in its place; a 200 goes out only after the sync that covers
// its line; a failed sync answers 500 for every line it covered. A pipe is
// reused for the batches of one connection and is not safe for concurrent
// use.
type pipe struct {
	s      *Server
	cfg    *live
	debug  bool
	remote string

	ents    []pipeEnt
	lines   [][]byte         // valid lines to store, in order; they alias the read buffer
	start   []time.Time      // when each line was read, for store_seconds
	errs    []error          // outcome of each committed line: nil, stored
	where   []Where          // where each committed line was stored, while the journal is on
	done    int              // lines[:done] are committed
	keys    []dedupKey       // dedup keys in flight for lines[done:]
	keyLine []int            // the line of each of keys
	key     []byte           // scratch: the values of a message's key fields
	out     []byte           // the replies of the batch
	recs    []journal.Record // the batch's journal records not yet added (journalChunk at most)
}

// journalChunk is how many of a batch's journal records a pipe hands to
// the journal at once (one lock for them): a Record is about 450 bytes.
const journalChunk = 16

// pipeEnt is one message of a batch, in arrival order.
type pipeEnt struct {
	raw    []byte // the message (or the whole fields of its start) its reply echoes; aliases the read buffer as lines do
	code   int    // the reply's code, when line < 0
	line   int    // else the index of the line whose outcome is the code (200 or 500)
	dup    bool   // a copy of lines[line] within the batch: not stored again
	echo   bool   // the link test: answered ok, not journaled
	reason string // why a 400
}

// reset starts a batch under cfg.
func (p *pipe) reset(cfg *live, debug bool) {
	p.cfg, p.debug = cfg, debug
	p.ents, p.lines, p.start, p.errs = p.ents[:0], p.lines[:0], p.start[:0], p.errs[:0]
	p.keys, p.keyLine = p.keys[:0], p.keyLine[:0]
	p.done = 0
}

// fill adds line, the first message of the batch (rerr from the reader:
// nil or a frame fault), and after it the messages already whole in the
// read buffer (rd.Ready): reading them does not block, and their lines
// stay where they are (nothing refills the buffer) until the batch is
// answered. It returns the error that ended the batch, after which the
// connection is closed once the batch is answered: a frame fault (the
// next message boundary is lost), or a read error.
func (p *pipe) fill(rd protocol.MessageReader, line []byte, rerr error) error {
	p.add(line, rerr)
	for rerr == nil && len(p.ents) < maxPipeline && rd.Ready() {
		if line, rerr = rd.ReadMessage(); rerr != nil && !frameFault(rerr) {
			return rerr // not expected with a whole message buffered
		}
		p.add(line, rerr)
	}
	return rerr
}

// frameFault reports whether err, from a MessageReader, is a fault of the
// framing: the message is answered 400, and the connection closed.
func frameFault(err error) bool {
	_, ok := protocol.FrameReason(err)
	return ok
}

// add validates one message of the batch (rerr is a frame fault or nil,
// from the reader) and queues its line for the store when it is valid and
// not a duplicate. An echo telegram is answered ok and goes nowhere.
// line must stay valid until the batch is answered.
func (p *pipe) add(line []byte, rerr error) {
	s := p.s
	e := pipeEnt{raw: line, line: -1, code: protocol.CodeInvalid}
	if rerr != nil {
		// line is the start of the message: its whole fields give the
		// echoed ones (process_no), as for every other reply.
		e.reason, _ = protocol.FrameReason(rerr)
		e.raw = s.d.CompleteFields(line)
		s.reject(e.reason, line, p.debug, p.remote, rerr)
		p.ents = append(p.ents, e)
		return
	}
	if s.d.IsEcho(line) {
		// The link test: answered ok, never stored, never de-duplicated.
		s.m.echoes.Inc()
		e.code, e.echo = protocol.CodeOK, true
		p.ents = append(p.ents, e)
		return
	}
	msg, err := s.d.Parse(line)
	if err != nil {
		e.reason = "invalid"
		if pe, ok := err.(*protocol.ParseError); ok {
			e.reason = pe.Reason()
		}
		s.reject(e.reason, line, p.debug, p.remote, err)
		p.ents = append(p.ents, e)
		return
	}
	start := time.Now()
	if p.cfg.dedupWindow > 0 {
		p.key = msg.AppendKey(p.key[:0], s.keyIdx, 0)
		if p.dedup(&e, s.dedup.key(p.key)) {
			return
		}
	}
	e.line = len(p.lines)
	p.lines = append(p.lines, line)
	p.start = append(p.start, start)
	p.ents = append(p.ents, e)
}

// dedup checks k, the key of e's message, against the window and the
// batch: true when e is answered without storing it (a duplicate; added
// to the batch), false when its line is to be stored, k then in flight.
func (p *pipe) dedup(e *pipeEnt, k dedupKey) bool {
	s := p.s
	if j := p.pending(k); j >= 0 {
		// The same key earlier in this batch: stored once, both answered
		// by its outcome.
		e.line, e.dup = j, true
		p.ents = append(p.ents, *e)
		return true
	}
	res := s.dedup.tryBegin(k, s.clock())
	if res == beginBusy {
		// Another connection stores this key. Commit what this batch
		// holds in flight before waiting for it, so that two connections
		// never wait for each other's keys.
		p.commit()
		if s.dedup.begin(k, s.clock()) {
			res = beginDup
		} else {
			res = beginStore
		}
	}
	if res == beginDup {
		s.dups.Add(1)
		s.m.duplicates.Inc()
		if p.debug {
			s.log.Debug("duplicate answered 200, not stored again", "remote", p.remote, "process_no", s.tr.processNo(e.raw))
		}
		e.code = protocol.CodeOK
		p.ents = append(p.ents, *e)
		return true
	}
	p.keys = append(p.keys, k)
	p.keyLine = append(p.keyLine, len(p.lines))
	return false
}

// pending returns the line of this batch not yet committed whose key is k,
// or -1.
func (p *pipe) pending(k dedupKey) int {
	for i, pk := range p.keys {
		if pk == k {
			return p.keyLine[i]
		}
	}
	return -1
}

// commit hands the lines not yet committed to the store in one batch and
// waits for their outcome: all durable, or none acknowledged; while the
// journal is on, the store says where each went.
func (p *pipe) commit() {
	lines := p.lines[p.done:]
	if len(lines) == 0 {
		return
	}
	s := p.s
	var where []Where
	if s.tr.jr != nil {
		for len(p.where) < len(p.lines) {
			p.where = append(p.where, Where{})
		}
		where = p.where[p.done:len(p.lines)]
	}
	err := s.store.append(p.remote, p.start[p.done:], lines, where)
	if len(p.keys) > 0 {
		s.dedup.endAll(p.keys, err == nil, s.clock())
		p.keys, p.keyLine = p.keys[:0], p.keyLine[:0]
	}
	if err == nil {
		now := time.Now()
		for _, t := range p.start[p.done:] {
			s.m.storeSeconds.Observe(now.Sub(t).Seconds())
		}
	}
	if p.debug {
		for i := p.done; i < len(p.lines); i++ {
			pno := s.tr.processNo(p.lines[i])
			if err != nil {
				s.log.Debug("not stored: answered 500", "remote", p.remote, "process_no", pno, "err", s.tr.errText(err))
			} else {
				s.log.Debug("stored", "remote", p.remote, "process_no", pno)
			}
		}
	}
	for range lines {
		p.errs = append(p.errs, err)
	}
	p.done = len(p.lines)
}

// replies counts the batch's codes, journals them, and returns its
// replies, in order, stamped now. Call it after commit.
func (p *pipe) replies(now time.Time) []byte {
	s := p.s
	p.out = p.out[:0]
	var errText string // of the last failed commit, for the journal
	var textOf error
	for i := range p.ents {
		e := &p.ents[i]
		code := e.code
		if e.line >= 0 {
			code = protocol.CodeUnavailable
			if p.errs[e.line] == nil {
				code = protocol.CodeOK
				if e.dup {
					s.dups.Add(1)
					s.m.duplicates.Inc()
				}
			}
		}
		s.counts[codeIndex(code)].Add(1)
		s.m.byCode[codeIndex(code)].Inc()
		p.out = s.d.AppendReply(p.out, e.raw, code, now)
		if s.tr.jr == nil || e.echo {
			continue
		}
		if len(p.recs) == journalChunk {
			s.tr.jr.AddAll(p.recs)
			p.recs = p.recs[:0]
		}
		p.recs = append(p.recs, journal.Record{})
		r := &p.recs[len(p.recs)-1]
		switch {
		case code == protocol.CodeInvalid:
			s.tr.record(r, journal.Rejected, code, p.remote, e.raw, nil, e.reason, now)
		case code == protocol.CodeUnavailable:
			if err := p.errs[e.line]; err != textOf {
				errText, textOf = err.Error(), err
			}
			s.tr.record(r, journal.Unavailable, code, p.remote, e.raw, nil, errText, now)
		case e.line < 0 || e.dup:
			s.tr.record(r, journal.Duplicate, code, p.remote, e.raw, nil, "", now)
		default:
			s.tr.record(r, journal.Accepted, code, p.remote, e.raw, &p.where[e.line], "", now)
		}
	}
	s.tr.jr.AddAll(p.recs)
	clear(p.recs) // the strings they hold
	p.recs = p.recs[:0]
	return p.out
}

// reject counts a 400 by reason and logs it: at info once per minute per
// reason, with this message (its start) as a sample and how many of that
// reason the line stands for; at debug every one.
func (s *Server) reject(reason string, line []byte, debug bool, remote string, err error) {
	s.m.rejects.WithLabelValues(reason).Inc()
	s.rejectStats.note(reason, &s.tr, line, s.clock())
	if n, ok := s.rejects.Event(reason, s.clock()); ok {
		s.log.Info("rejected: answered 400 (one line per reason a minute)", "reason", reason, "count", n,
			"remote", remote, "err", s.tr.errText(err), "sample", s.tr.sample(line, maxSample))
	} else if debug {
		s.log.Debug("rejected: answered 400", "remote", remote, "reason", reason, "err", s.tr.errText(err))
	}
}
