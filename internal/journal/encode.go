package journal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"
	"time"
	"unicode/utf8"

	"spoolgate/internal/mask"
)

// TimeLayout is the journal's first column: local time with microseconds
// and the UTC offset.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// HashPrefix starts a key value the journal stores as a keyed hash.
const HashPrefix = "hmac:"

// hashBytes is how much of the HMAC-SHA256 is kept: 96 bits, 24 hex
// digits, so two values collide by chance once in about 10^28 pairs.
const hashBytes = 12

// The attribute names of a line (docs/PROTOCOL.md §9, "Journal"). A key
// field of the spec named like one of them is written as "key." + its
// name.
var attrNames = map[string]bool{
	"time": true, "daemon": true, "event": true, "inst": true, "code": true, "peer": true, "remote": true,
	"file": true, "line": true, "queue": true, "msgid": true, "attempts": true, "latency": true, "to": true, "reason": true,
}

// KeyPrefix marks a key field whose name is an attribute's.
const KeyPrefix = "key."

// Encoder formats Records as journal lines. It is not safe for concurrent
// use (the journal's writer owns one); it allocates nothing per record
// once its buffers have grown.
type Encoder struct {
	daemon, inst string
	peer         string   // "peer" (receiver) or "remote" (sender)
	names        []string // the key column names, KeyPrefix added where needed
	macNames     [][]byte // the same with "=", what the hash starts with
	hashed       []bool   // by key: log.mask names it
	rrn          bool
	decode       func(dst, src []byte) []byte
	mac          hash.Hash
	sum          []byte
	raw, scratch []byte

	// The time column of the last second formatted, cut before the
	// microseconds, and the zone after them: a second's lines share them.
	sec        int64
	secLoc     *time.Location
	secPrefix  []byte // 2026-12-06T09:30:00.
	zoneSuffix []byte // +09:00

	// The attributes the records of a batch share (a connection's peer,
	// its request file, the reply code; a claim's remote and spool file),
	// as last written: a record with the same value copies them.
	code       memo[int]
	peerAt     memo[string]
	file, dest memo[string]
}

// memo is an attribute as it was last written ("\tname=value"), and the
// value it was written for.
type memo[T comparable] struct {
	v   T
	out []byte
	set bool
}

// get returns the attribute written for v, or nil when it was for
// another value (set it with put).
func (m *memo[T]) get(v T) []byte {
	if m.set && m.v == v {
		return m.out
	}
	return nil
}

// put keeps out (the attribute for v, which put copies) and appends it
// to dst.
func (m *memo[T]) put(dst []byte, v T, out []byte) []byte {
	m.v, m.set = v, true
	m.out = append(m.out[:0], out...)
	return append(dst, out...)
}

// NewEncoder returns an Encoder for o's daemon and keys (o.Dir is not
// used), hashing with key (see Hash).
func NewEncoder(o Options, key []byte) *Encoder {
	e := &Encoder{daemon: o.Daemon, inst: o.Instance, peer: "peer", rrn: o.MaskRRN, decode: o.Decode,
		mac: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size),
		raw: make([]byte, 0, MaxKeyBytes), scratch: make([]byte, 0, MaxKeyBytes)}
	if o.Daemon == "sender" {
		e.peer = "remote"
	}
	for _, n := range o.Keys {
		col := n
		if attrNames[n] {
			col = KeyPrefix + n
		}
		e.names = append(e.names, col)
		e.macNames = append(e.macNames, []byte(col+"="))
		masked := false
		for _, m := range o.Masked {
			masked = masked || m == n
		}
		e.hashed = append(e.hashed, masked)
	}
	return e
}

// Append appends r as one journal line, LF included, to dst.
func (e *Encoder) Append(dst []byte, r *Record) []byte {
	dst = e.appendTime(dst, r.Time)
	dst = append(dst, '\t')
	dst = append(dst, e.daemon...)
	dst = append(dst, '\t')
	dst = append(dst, r.Event.String()...)
	if e.inst != "" {
		dst = e.text(dst, "inst", e.inst)
	}
	if r.Code != 0 {
		if out := e.code.get(r.Code); out != nil {
			dst = append(dst, out...)
		} else {
			n := len(dst)
			dst = append(dst, "\tcode="...)
			dst = strconv.AppendInt(dst, int64(r.Code), 10)
			dst = e.code.put(dst[:n], r.Code, dst[n:])
		}
	}
	if r.Peer != "" {
		if out := e.peerAt.get(r.Peer); out != nil {
			dst = append(dst, out...)
		} else {
			n := len(dst)
			dst = e.addr(dst, e.peer, r.Peer)
			dst = e.peerAt.put(dst[:n], r.Peer, dst[n:])
		}
	}
	for i := 0; i < r.nkeys && i < len(e.names); i++ {
		dst = e.key(dst, i, r.Key(i))
	}
	if r.File != "" {
		dst = e.memoText(dst, &e.file, "file", r.File)
	}
	if r.Line > 0 {
		dst = append(dst, "\tline="...)
		dst = strconv.AppendUint(dst, uint64(r.Line), 10)
	}
	if r.Queue != "" {
		dst = e.text(dst, "queue", r.Queue)
	}
	if r.MsgID != "" {
		dst = e.text(dst, "msgid", r.MsgID)
	}
	if r.Attempts > 0 {
		dst = append(dst, "\tattempts="...)
		dst = strconv.AppendUint(dst, uint64(r.Attempts), 10)
	}
	if r.Latency > 0 {
		dst = append(dst, "\tlatency="...)
		dst = strconv.AppendFloat(dst, float64(r.Latency)/float64(time.Millisecond), 'f', 3, 64)
		dst = append(dst, "ms"...)
	}
	if r.To != "" {
		dst = e.memoText(dst, &e.dest, "to", r.To)
	}
	if r.Reason != "" {
		dst = e.text(dst, "reason", r.Reason)
	}
	return append(dst, '\n')
}

// memoText is text through m: a value written for the record before is
// copied from there.
func (e *Encoder) memoText(dst []byte, m *memo[string], name, v string) []byte {
	if out := m.get(v); out != nil {
		return append(dst, out...)
	}
	n := len(dst)
	dst = e.text(dst, name, v)
	return m.put(dst[:n], v, dst[n:])
}

// appendTime appends t in TimeLayout: formatted once a second (the
// layout's interpretation is most of an Append's cost), the microseconds
// added to that.
func (e *Encoder) appendTime(dst []byte, t time.Time) []byte {
	if sec := t.Unix(); sec != e.sec || t.Location() != e.secLoc || e.secPrefix == nil {
		whole := t.Truncate(time.Second)
		b := whole.AppendFormat(e.secPrefix[:0], TimeLayout) // "….000000+09:00"
		dot := len("2006-01-02T15:04:05.")
		e.secPrefix = b[:dot]
		e.zoneSuffix = append(e.zoneSuffix[:0], b[dot+6:]...)
		e.sec, e.secLoc = sec, t.Location()
	}
	dst = append(dst, e.secPrefix...)
	us := t.Nanosecond() / 1000
	for div := 100000; div > 0; div /= 10 {
		dst = append(dst, byte('0'+us/div%10))
	}
	return append(dst, e.zoneSuffix...)
}

// text appends a text attribute, escaped, cut at maxText bytes, with the
// resident number shapes masked when log.mask_rrn is on.
func (e *Encoder) text(dst []byte, name, v string) []byte {
	dst = append(dst, '\t')
	dst = append(dst, name...)
	dst = append(dst, '=')
	start := len(dst)
	dst = appendEscaped(dst, v[:min(len(v), maxText)])
	if e.rrn && len(dst)-start >= minRRN {
		mask.RRN(dst[start:])
	}
	return dst
}

// minRRN is the shortest resident number shape: 13 digits.
const minRRN = 13

// addr appends an address attribute (the peer or the remote, host:port),
// escaped: an address holds no resident number, so it is not scanned.
func (e *Encoder) addr(dst []byte, name, v string) []byte {
	dst = append(dst, '\t')
	dst = append(dst, name...)
	dst = append(dst, '=')
	return appendEscaped(dst, v[:min(len(v), maxText)])
}

// key appends key value i, decoded to UTF-8, or its keyed hash when
// log.mask names the field or, with log.mask_rrn, it holds a resident
// number shape.
func (e *Encoder) key(dst []byte, i int, v []byte) []byte {
	if !e.hashed[i] && len(v) < minRRN && ascii(v) {
		// The usual key (digits, a code): no decoding, no resident
		// number, no hash.
		dst = append(dst, '\t')
		dst = append(dst, e.names[i]...)
		dst = append(dst, '=')
		return appendEscaped(dst, v)
	}
	// v aliases the Record: copied first, so that passing it to the
	// decoder and the hash (calls the compiler cannot see into) does not
	// move every Record the writer receives to the heap.
	e.raw = append(e.raw[:0], v...)
	k := e.raw
	if e.decode != nil && !ascii(k) {
		e.scratch = e.decode(e.scratch[:0], k)
		k = e.scratch
	}
	dst = append(dst, '\t')
	dst = append(dst, e.names[i]...)
	dst = append(dst, '=')
	if e.hashed[i] || (e.rrn && mask.HasRRN(k)) {
		return e.appendHash(dst, e.macNames[i], k)
	}
	return appendEscaped(dst, k)
}

func (e *Encoder) appendHash(dst []byte, nameEq, v []byte) []byte {
	e.mac.Reset()
	e.mac.Write(nameEq)
	e.mac.Write(v)
	e.sum = e.mac.Sum(e.sum[:0])
	dst = append(dst, HashPrefix...)
	return hex.AppendEncode(dst, e.sum[:hashBytes])
}

// Hash returns how the journal stores value of the key column name (a
// field name, KeyPrefix included when it has one) when it is masked:
// HashPrefix and the first 12 bytes of HMAC-SHA256(key, name "=" value)
// in hex. value is the UTF-8 text; trace hashes what it is asked for the
// same way.
func Hash(key []byte, name, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(name + "=" + value))
	return HashPrefix + hex.EncodeToString(m.Sum(nil)[:hashBytes])
}

func ascii[T ~string | ~[]byte](v T) bool {
	for i := 0; i < len(v); i++ {
		if v[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendEscaped appends v with the bytes that would break a line or a
// column escaped: \\ \t \n \r, other control bytes and bytes that are not
// UTF-8 as \xHH. Everything else, UTF-8 text included, is kept.
func appendEscaped[T ~string | ~[]byte](dst []byte, v T) []byte {
	// The usual value (an address, a file name, digits) is printable
	// ASCII without a backslash: appended as it is, in one copy.
	plain := 0
	for plain < len(v) && v[plain] >= ' ' && v[plain] < 0x7f && v[plain] != '\\' {
		plain++
	}
	dst = append(dst, v[:plain]...)
	for i := plain; i < len(v); {
		c := v[i]
		switch {
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c < ' ' || c == 0x7f:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		case c < utf8.RuneSelf:
			dst = append(dst, c)
		default:
			r, n := decodeRune(v[i:])
			if r == utf8.RuneError && n <= 1 {
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
				i++
				continue
			}
			for j := 0; j < n; j++ {
				dst = append(dst, v[i+j])
			}
			i += n
			continue
		}
		i++
	}
	return dst
}

func decodeRune[T ~string | ~[]byte](v T) (rune, int) {
	switch s := any(v).(type) {
	case string:
		return utf8.DecodeRuneInString(s)
	case []byte:
		return utf8.DecodeRune(s)
	}
	return utf8.RuneError, 1
}

const hexDigits = "0123456789abcdef"
