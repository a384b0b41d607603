package journal

import (
	"time"
)

// Event is what happened to a message; its String is the journal's third
// column and the word trace prints.
type Event uint8

// The events. The receiver writes Accepted, Duplicate, Rejected,
// Unavailable and Published; the sender Delivered, Failed and PutBack.
const (
	Accepted    Event = iota + 1 // receiver: answered 200 and stored
	Duplicate                    // receiver: answered 200, stored before (receiver.dedup_window)
	Rejected                     // receiver: answered 400
	Unavailable                  // receiver: answered 500, not stored
	Delivered                    // sender: the remote answered 200
	Failed                       // sender: the line went to failed_dir or the failed queue
	PutBack                      // sender: the line went back to the spool or the queue, to be sent again
	Published                    // receiver: a request file got its final name (File, To)
)

var eventNames = [...]string{"", "accepted", "duplicate", "rejected", "unavailable", "delivered", "failed", "put_back", "published"}

// String returns the event's name, e.g. "put_back"; "" for an unknown one.
func (e Event) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return ""
}

// Receiver reports whether the receiver writes e.
func (e Event) Receiver() bool {
	return e == Accepted || e == Duplicate || e == Rejected || e == Unavailable || e == Published
}

// MaxKeys and MaxKeyBytes bound the key values of a Record: a value
// beyond MaxKeys is ignored, bytes beyond MaxKeyBytes in all are cut (a
// cut value is not found by trace with its whole text). The default key,
// org_code and process_no, takes at most 19 bytes.
const (
	MaxKeys     = 8
	MaxKeyBytes = 256
)

// maxText is where the text attributes (reason, file names) are cut.
const maxText = 512

// Record is one message outcome. It is a plain value: fill one on the
// stack, add the key values (they are copied, so they may alias a buffer
// that is reused right after), and pass it to Journal.Add, which copies
// it. The zero Record is empty; Reset empties one for reuse.
type Record struct {
	// Time is when it happened; zero: when the journal writes it.
	Time  time.Time
	Event Event
	// Code is the reply code: the receiver's answer, or the remote's
	// last one (0: none, e.g. no reply, or a line never sent).
	Code int
	// Peer is the receiver's peer (the PROXY header's address behind a
	// balancer) or the remote the sender sent to: host:port.
	Peer string
	// File is the request file (receiver) or the spool file (sender),
	// its base name; Line the message's line in it, from 1 (0: none).
	File string
	Line int
	// Queue and MsgID name a broker message instead of a file.
	Queue string
	MsgID string
	// Attempts (sender) counts the sends of the line; Latency is from its
	// first attempt to its outcome.
	Attempts int
	Latency  time.Duration
	// To is where the message went: the published name of a request file
	// (Published), the file a failed line went to in failed_dir.
	To string
	// Reason says why, for a 400, a 500, a failure or a put back.
	Reason string

	nkeys int
	kend  [MaxKeys]uint16 // kbuf[kend[i-1]:kend[i]] is key value i
	kbuf  [MaxKeyBytes]byte
}

// AddKey appends the next key value, in the order of Options.Keys: the
// field's bytes as on the wire (the journal decodes them with
// Options.Decode). v is copied.
func (r *Record) AddKey(v []byte) { addKey(r, v) }

// AddKeyString is AddKey for a string.
func (r *Record) AddKeyString(v string) { addKey(r, v) }

func addKey[T ~string | ~[]byte](r *Record, v T) {
	if r.nkeys >= MaxKeys {
		return
	}
	start := r.keyStart(r.nkeys)
	n := copy(r.kbuf[start:], v)
	r.kend[r.nkeys] = uint16(start + n)
	r.nkeys++
}

// NumKeys returns the number of key values added.
func (r *Record) NumKeys() int { return r.nkeys }

// Key returns key value i, or nil; it aliases r.
func (r *Record) Key(i int) []byte {
	if i < 0 || i >= r.nkeys {
		return nil
	}
	return r.kbuf[r.keyStart(i):r.kend[i]]
}

func (r *Record) keyStart(i int) int {
	if i == 0 {
		return 0
	}
	return int(r.kend[i-1])
}

// Reset empties r.
func (r *Record) Reset() { *r = Record{} }
