package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// ParseError is a spec violation: the peer is answered CodeInvalid, the log
// and metrics get the reason.
type ParseError struct {
	Field  string // the field name, or "message" for whole-message faults
	Rule   string // the rule violated, e.g. "digits 9", or a framing fault
	Detail string // what was found, for the log
}

// Error returns "field: rule: detail".
func (e *ParseError) Error() string {
	if e.Detail == "" {
		return e.Reason()
	}
	return e.Field + ": " + e.Rule + ": " + e.Detail
}

// Reason returns "field: rule", a bounded text fit for a metric label.
func (e *ParseError) Reason() string { return e.Field + ": " + e.Rule }

// Code returns the reply code for the error, CodeInvalid.
func (e *ParseError) Code() int { return CodeInvalid }

// Message is a parsed message. It refers into the line it was parsed from
// and is valid while that line is unchanged.
type Message struct {
	spec *Spec
	line []byte
	ends [MaxFields]uint16 // ends[i] is the offset just past field i's value (its padding excluded)
}

// Line returns the message without its framing: without its LF (framing
// lf) or its header (framing length), as a request file holds it.
func (m *Message) Line() []byte { return m.line }

// FieldAt returns the value of field i, or nil when i is out of range. In
// the fixed layout the value is without its padding (the trailing spaces
// of a class or text field).
func (m *Message) FieldAt(i int) []byte {
	if m.spec == nil || i < 0 || i >= len(m.spec.fields) {
		return nil
	}
	start := 0
	if m.spec.w.fixed {
		start = m.spec.fields[i].off
	} else if i > 0 {
		start = int(m.ends[i-1]) + 1
	}
	return m.line[start:m.ends[i]:m.ends[i]]
}

// Field returns the named field, or nil when the spec has no such field.
func (m *Message) Field(name string) []byte {
	if m.spec == nil {
		return nil
	}
	return m.FieldAt(m.spec.Index(name))
}

// AppendKey appends the values of the fields at idx (Dialect.KeyIndexes)
// to dst, joined by sep: the duplicate key of a request (sep 0: NUL is in
// no value, so the key is unambiguous), or its message_id (sep '|':
// "ORG01|000000123").
func (m *Message) AppendKey(dst []byte, idx []int, sep byte) []byte {
	for k, i := range idx {
		if k > 0 {
			dst = append(dst, sep)
		}
		dst = append(dst, m.FieldAt(i)...)
	}
	return dst
}

// Values returns every field as a string, in order (it allocates).
func (m *Message) Values() []string {
	out := make([]string, len(m.spec.fields))
	for i := range out {
		out[i] = string(m.FieldAt(i))
	}
	return out
}

func fail(field, rule, detail string) error {
	return &ParseError{Field: field, Rule: rule, Detail: detail}
}

// Parse validates line, a message without its framing (Message.Line),
// against the spec in its dialect. Checks, in order: the size limit, CR
// (and LF under framing length), the field count (delimited) or the width
// (fixed), each field's rule; the first failure is the reason. On success
// it allocates nothing. The error is a *ParseError.
func (s *Spec) Parse(line []byte) (Message, error) {
	var m Message
	w := s.w
	if len(line)+w.lf() > MaxMessageBytes {
		return m, fail("message", "too long", strconv.Itoa(len(line)+w.lf())+" bytes")
	}
	if i := bytes.IndexByte(line, '\r'); i >= 0 {
		return m, fail("message", "no CR", "CR at byte "+strconv.Itoa(i))
	}
	if w.length {
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			return m, fail("message", "no LF", "LF at byte "+strconv.Itoa(i))
		}
	}
	n := len(s.fields)
	if w.fixed {
		if len(line) != s.width {
			return m, fail("message", s.widthRule, fmt.Sprintf("%d bytes, want %d", len(line), s.width))
		}
		for i := range s.fields {
			f := &s.fields[i]
			end := f.off + f.width
			if f.Rule.padded() {
				for end > f.off && line[end-1] == ' ' {
					end--
				}
			}
			m.ends[i] = uint16(end)
		}
	} else {
		sep := w.sep
		start := 0
		for i := 0; i < n; i++ {
			end := len(line)
			if i == n-1 && bytes.IndexByte(line[start:], sep) >= 0 {
				return m, fail("message", "field count", fmt.Sprintf("more than %d fields", n))
			}
			if i < n-1 {
				j := bytes.IndexByte(line[start:], sep)
				if j < 0 {
					return m, fail("message", "field count", fmt.Sprintf("%d fields, want %d", i+1, n))
				}
				end = start + j
			}
			m.ends[i] = uint16(end)
			start = end + 1
		}
	}
	m.spec, m.line = s, line
	msgLen, fixed := len(line)+w.lf(), w.fixed
	start := 0
	for i := range s.fields {
		f := &s.fields[i]
		if fixed {
			start = f.off
		}
		end := int(m.ends[i])
		if v := line[start:end:end]; !f.Rule.valid(v, msgLen, w) {
			return Message{}, f.explain(v, msgLen, w)
		}
		start = end + 1
	}
	return m, nil
}

// valid reports whether v, a field's value, satisfies the rule in a
// message of msgLen bytes (its LF counted under framing lf). It allocates
// nothing.
func (r *Rule) valid(v []byte, msgLen int, w *wire) bool {
	switch r.Kind {
	case KindLength:
		return allDigits(v, r.Width) && atoi(v) == msgLen
	case KindDigits:
		return allDigits(v, r.Width)
	case KindConst:
		return string(v) == r.cw
	case KindTime:
		return validTime(v, r.tokens)
	case KindClass:
		if len(v) < r.Min || len(v) > r.Max {
			return false
		}
		for _, c := range v {
			if !r.set[c] {
				return false
			}
		}
		return true
	case KindText:
		if len(v) < r.Min || len(v) > r.Max {
			return false
		}
		if w.pairs != nil {
			return w.validKorean(v)
		}
		sep := w.textSep // utf-8, inline on the default dialect's path
		for _, c := range v {
			if c == 0 || c == '\n' || c == '\r' || c == sep {
				return false
			}
		}
		return utf8.Valid(v)
	}
	return false
}

// explain returns the *ParseError for v, a value valid refused. Values in
// the detail are decoded to UTF-8 for the log.
func (f *Field) explain(v []byte, msgLen int, w *wire) error {
	r := &f.Rule
	q := func() string { return strconv.Quote(w.charset.Decode(v)) }
	switch r.Kind {
	case KindLength:
		if !allDigits(v, r.Width) {
			return fail(f.Name, r.text, fmt.Sprintf("%s is not %d digits", q(), r.Width))
		}
		return fail(f.Name, "equals message length", fmt.Sprintf("says %d, message is %d bytes", atoi(v), msgLen))
	case KindClass:
		if len(v) < r.Min || len(v) > r.Max {
			return fail(f.Name, r.text, fmt.Sprintf("%d bytes", len(v)))
		}
		for _, c := range v {
			if !r.set[c] {
				return fail(f.Name, r.text, fmt.Sprintf("byte %q not in class", c))
			}
		}
	case KindText:
		if len(v) < r.Min || len(v) > r.Max {
			return fail(f.Name, r.text, fmt.Sprintf("%d bytes", len(v)))
		}
		return fail(f.Name, r.text, w.textProblem(v))
	}
	return fail(f.Name, r.text, q())
}

func allDigits(v []byte, width int) bool {
	if len(v) != width {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// atoi converts ASCII digits already checked by allDigits.
func atoi(v []byte) int {
	n := 0
	for _, c := range v {
		n = n*10 + int(c-'0')
	}
	return n
}

// ErrEncode reports values that do not make a valid message.
var ErrEncode = errors.New("protocol: values do not make a valid message")

// Encode builds a message of the spec from values, one per field after
// the length field (framing lf) or one per field (framing length): joined
// by the separator, or each padded with spaces to its width (fixed), with
// the correct length field first under framing lf. It returns the message
// framed for the wire (LF, or the header) and validated. The error wraps
// the *ParseError that the message fails with, or ErrTooLong.
func (s *Spec) Encode(values ...string) ([]byte, error) {
	first := 0
	if !s.w.length {
		first = 1
	}
	if len(values) != len(s.fields)-first {
		after := ""
		if first == 1 {
			after = " after the length field"
		}
		return nil, fmt.Errorf("%w: %d values for %d fields%s", ErrEncode, len(values), len(s.fields)-first, after)
	}
	size := 0
	for _, v := range values {
		size += len(v) + 1
	}
	body := make([]byte, 0, size+s.width)
	for i, v := range values {
		f := &s.fields[i+first]
		if i > 0 && !s.w.fixed {
			body = append(body, s.w.sep)
		}
		body = append(body, v...)
		if s.w.fixed && f.Rule.padded() {
			for k := len(v); k < f.width; k++ {
				body = append(body, ' ')
			}
		}
	}
	msg := body
	if !s.w.length {
		var err error
		if msg, err = s.appendWithLength(make([]byte, 0, len(body)+6), body); err != nil {
			return nil, err
		}
	}
	if _, err := s.Parse(msg); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return s.w.frame(make([]byte, 0, len(msg)+s.w.hdrBytes+1), msg)
}

// appendWithLength appends body, a message without its length field (a
// spool line), with its length field before it: 4 digits and the
// separator (delimited) or 4 digits (fixed). It fails with ErrTooLong when
// the message with its LF exceeds MaxMessageBytes. Framing lf only.
func (s *Spec) appendWithLength(dst, body []byte) ([]byte, error) {
	n := len(body) + 5
	if !s.w.fixed {
		n++
	}
	if n > MaxMessageBytes {
		return dst, fmt.Errorf("%w: %d bytes framed", ErrTooLong, n)
	}
	dst = append(dst, byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
	if !s.w.fixed {
		dst = append(dst, s.w.sep)
	}
	return append(dst, body...), nil
}

// ErrTooLong reports a message longer than the allowed maximum.
var ErrTooLong = errors.New("protocol: message too long")

var zeroProcessNo = []byte("000000000")

// ProcessNo returns the process_no that a reply to raw, a message of this
// spec without its framing (possibly invalid), carries: the field named
// process_no taken by position (padding removed) when it fits the reply's
// process_no rule, else that rule's zero value ("000000000" in the
// default dialect, docs/PROTOCOL.md §2). It returns nil when replies carry
// no process_no. The result aliases raw or a shared constant: do not
// modify it. It allocates nothing.
func (s *Spec) ProcessNo(raw []byte) []byte {
	if s.pnoRule == nil {
		return nil
	}
	if s.processNo < 0 {
		return s.pnoZero
	}
	v, ok := s.rawField(raw, s.processNo)
	if !ok || !s.pnoRule.valid(v, 0, s.w) {
		return s.pnoZero
	}
	return v
}

// rawField returns field i of raw, a message of the spec that may be
// invalid or cut short, by position: in the delimited layout after i
// separators, up to the next one (the last field: the rest); in the fixed
// layout at the field's offset when raw holds the field whole, its padding
// removed. ok is false when raw has no such field.
func (s *Spec) rawField(raw []byte, i int) (v []byte, ok bool) {
	return s.fieldAt(raw, i, 0)
}

// fieldAt is rawField of raw that lacks the first skip fields of the
// spec (skip 1: a spool line without its length field, AppendResultKey): field
// i of the spec is at its offset less theirs (fixed), or after i-skip
// separators (delimited).
func (s *Spec) fieldAt(raw []byte, i, skip int) (v []byte, ok bool) {
	if i < skip || i >= len(s.fields) {
		return nil, false
	}
	if s.w.fixed {
		f := &s.fields[i]
		start := f.off - s.fields[skip].off
		end := start + f.width
		if end > len(raw) {
			return nil, false
		}
		if f.Rule.padded() {
			for end > start && raw[end-1] == ' ' {
				end--
			}
		}
		return raw[start:end:end], true
	}
	for f := skip; f < i; f++ {
		j := bytes.IndexByte(raw, s.w.sep)
		if j < 0 {
			return nil, false
		}
		raw = raw[j+1:]
	}
	if i < len(s.fields)-1 {
		if j := bytes.IndexByte(raw, s.w.sep); j >= 0 {
			raw = raw[:j]
		}
	}
	return raw[:len(raw):len(raw)], true
}

// RawFields sets out[k] to field idx[k] of raw as rawField finds it,
// nil where raw lacks it (out is at least as long as idx): the key
// values of a message the receiver journals, which may be invalid. A
// delimited message is walked once for all of them.
func (s *Spec) RawFields(raw []byte, idx []int, out [][]byte) {
	last := -1
	for k, i := range idx {
		out[k] = nil
		if s.w.fixed {
			out[k], _ = s.fieldAt(raw, i, 0)
		}
		last = max(last, i)
	}
	if s.w.fixed {
		return
	}
	for f := 0; f <= last && f < len(s.fields); f++ {
		v, end := raw, -1
		if f < len(s.fields)-1 {
			if end = bytes.IndexByte(raw, s.w.sep); end >= 0 {
				v = raw[:end]
			}
		}
		for k, i := range idx {
			if i == f {
				out[k] = v[:len(v):len(v)]
			}
		}
		if end < 0 {
			return // the last field, or no separator after this one: no more fields
		}
		raw = raw[end+1:]
	}
}

// AppendRawKey is Message.AppendKey for raw, a message of the spec that is
// not parsed (a line of a request file, for the duplicate window's
// rebuild): the fields at idx by position. ok is false when raw lacks one.
func (s *Spec) AppendRawKey(dst, raw []byte, idx []int, sep byte) (out []byte, ok bool) {
	return s.appendKeyAt(dst, raw, idx, sep, 0)
}

// appendKeyAt is AppendRawKey of raw that lacks the first skip fields of
// the spec (fieldAt).
func (s *Spec) appendKeyAt(dst, raw []byte, idx []int, sep byte, skip int) (out []byte, ok bool) {
	n := len(dst)
	for k, i := range idx {
		v, ok := s.fieldAt(raw, i, skip)
		if !ok {
			return dst[:n], false
		}
		if k > 0 {
			dst = append(dst, sep)
		}
		dst = append(dst, v...)
	}
	return dst, true
}
