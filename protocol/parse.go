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
	ends [MaxFields]uint16 // ends[i] is the offset just past field i
}

// Line returns the message line without its LF.
func (m *Message) Line() []byte { return m.line }

// FieldAt returns field i, or nil when i is out of range.
func (m *Message) FieldAt(i int) []byte {
	if m.spec == nil || i < 0 || i >= len(m.spec.fields) {
		return nil
	}
	start := 0
	if i > 0 {
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

// Parse validates line, a message without its LF, against the spec. On
// success it allocates nothing. The error is a *ParseError.
func (s *Spec) Parse(line []byte) (Message, error) {
	var m Message
	if len(line)+1 > MaxMessageBytes {
		return m, fail("message", "too long", strconv.Itoa(len(line)+1)+" bytes")
	}
	if i := bytes.IndexByte(line, '\r'); i >= 0 {
		return m, fail("message", "no CR", "CR at byte "+strconv.Itoa(i))
	}
	n := len(s.fields)
	start := 0
	for i := 0; i < n; i++ {
		end := len(line)
		if i == n-1 && bytes.IndexByte(line[start:], '|') >= 0 {
			return m, fail("message", "field count", fmt.Sprintf("more than %d fields", n))
		}
		if i < n-1 {
			j := bytes.IndexByte(line[start:], '|')
			if j < 0 {
				return m, fail("message", "field count", fmt.Sprintf("%d fields, want %d", i+1, n))
			}
			end = start + j
		}
		m.ends[i] = uint16(end)
		start = end + 1
	}
	m.spec, m.line = s, line
	for i := range s.fields {
		if err := s.fields[i].check(m.FieldAt(i), len(line)+1); err != nil {
			return Message{}, err
		}
	}
	return m, nil
}

func (f *Field) check(v []byte, msgLen int) error {
	r := &f.Rule
	switch r.Kind {
	case KindLength:
		if !allDigits(v, r.Width) {
			return fail(f.Name, r.text, fmt.Sprintf("%q is not %d digits", v, r.Width))
		}
		if got := atoi(v); got != msgLen {
			return fail(f.Name, "equals message length", fmt.Sprintf("says %d, message is %d bytes", got, msgLen))
		}
	case KindDigits:
		if !allDigits(v, r.Width) {
			return fail(f.Name, r.text, fmt.Sprintf("%q", v))
		}
	case KindConst:
		if string(v) != r.Const {
			return fail(f.Name, r.text, fmt.Sprintf("%q", v))
		}
	case KindTime:
		if !validTime(v, r.tokens) {
			return fail(f.Name, r.text, fmt.Sprintf("%q", v))
		}
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
		for _, c := range v {
			if c == 0 || c == '\n' || c == '\r' || c == '|' {
				return fail(f.Name, r.text, fmt.Sprintf("forbidden byte %q", c))
			}
		}
		if !utf8.Valid(v) {
			return fail(f.Name, r.text, "invalid UTF-8")
		}
	}
	return nil
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

// Encode joins values, one per field after the length field, prepends the
// correct length field, appends LF and validates the result. The error
// wraps the *ParseError that the message fails with.
func (s *Spec) Encode(values ...string) ([]byte, error) {
	if len(values) != len(s.fields)-1 {
		return nil, fmt.Errorf("%w: %d values for %d fields after the length field", ErrEncode, len(values), len(s.fields)-1)
	}
	size := 5 // "NNNN|"
	for i, v := range values {
		size += len(v)
		if i > 0 {
			size++
		}
	}
	body := make([]byte, 0, size)
	for i, v := range values {
		if i > 0 {
			body = append(body, '|')
		}
		body = append(body, v...)
	}
	out, err := AppendFrame(make([]byte, 0, size+1), body)
	if err != nil {
		return nil, err
	}
	if _, err := s.Parse(out[:len(out)-1]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return out, nil
}

// ErrTooLong reports a message longer than the allowed maximum.
var ErrTooLong = errors.New("protocol: message too long")

// AppendFrame appends body, a message without its length field (as a spool
// line holds it), prefixed with its 4-digit length field and "|" and
// followed by LF. It fails with ErrTooLong when the result would exceed
// MaxMessageBytes. It does not validate body.
func AppendFrame(dst, body []byte) ([]byte, error) {
	n := len(body) + 6
	if n > MaxMessageBytes {
		return dst, fmt.Errorf("%w: %d bytes framed", ErrTooLong, n)
	}
	dst = append(dst, byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10), '|')
	dst = append(dst, body...)
	return append(dst, '\n'), nil
}

var zeroProcessNo = []byte("000000000")

// ProcessNo returns the process_no field of a raw, possibly invalid, line
// when it is 9 digits, else "000000000" (docs/PROTOCOL.md §2). The result aliases
// line or a shared constant: do not modify it.
func (s *Spec) ProcessNo(line []byte) []byte {
	if s.processNo < 0 {
		return zeroProcessNo
	}
	for i := 0; i < s.processNo; i++ {
		j := bytes.IndexByte(line, '|')
		if j < 0 {
			return zeroProcessNo
		}
		line = line[j+1:]
	}
	if j := bytes.IndexByte(line, '|'); j >= 0 {
		line = line[:j]
	}
	if !allDigits(line, 9) {
		return zeroProcessNo
	}
	return line
}
