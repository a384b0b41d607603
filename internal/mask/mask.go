// Package mask keeps personal numbers out of what spoolgate shows: log
// samples, the console, /api/status, .reason files, the journal's text and
// trace output (docs/PROTOCOL.md §9, "Masking"). Never request or spool
// files: those keep every byte.
//
// Two rules, both replacing bytes with '*' so that a masked text keeps its
// length (byte offsets, fixed-width layouts and "first 200 bytes" samples
// stay as they were):
//
//   - log.mask: every byte of the named fields of a message, found as the
//     spec splits them, also in an invalid or cut-short line;
//   - log.mask_rrn: anything shaped like a Korean resident registration
//     number: a run of exactly 13 ASCII digits whose 7th is 1-8, or a run
//     of exactly 6 digits, '-', and a run of exactly 7 digits whose first
//     is 1-8. The digits become '*', the '-' stays. A run of more digits
//     (an account or card number, a timestamp) is not masked, nor any part
//     of it: a fixed-width layout whose resident number field touches other
//     digits needs log.mask for that field. In quoted or escaped text the
//     digits that end an escape (\x01, \u0031) are not part of the run
//     after them.
//
// Bytes are compared as ASCII, which is sound for UTF-8, EUC-KR and CP949
// alike (no byte of a multi-byte character there is an ASCII digit or '-').
// Full-width digits are not recognised.
package mask

import (
	"spoolgate/protocol"
)

// Masker masks the fields named in log.mask of one spec, and with rrn
// the resident number shapes anywhere. The zero Masker and a nil *Masker
// mask nothing. A Masker is immutable and safe for concurrent use.
type Masker struct {
	spec   *protocol.Spec
	fields []int    // indexes in spec of the masked fields
	names  []string // log.mask as given, those spec lacks included (For)
	rrn    bool
}

// New returns a Masker for messages of spec: fields are the names of
// log.mask (names the spec does not have are ignored: conf checks them
// against the request and the result spec together), rrn is log.mask_rrn.
func New(spec *protocol.Spec, fields []string, rrn bool) *Masker {
	m := &Masker{spec: spec, rrn: rrn, names: fields}
	if spec != nil {
		for _, f := range fields {
			if i := spec.Index(f); i >= 0 {
				m.fields = append(m.fields, i)
			}
		}
	}
	return m
}

// For returns m's rules for messages of spec, say the remote's replies to
// messages of m's spec: the fields of log.mask that spec has (also those
// m's spec lacks: a reply may echo a request field the result lacks), and
// the resident number shapes when m masks them. A nil m gives nil.
func (m *Masker) For(spec *protocol.Spec) *Masker {
	if m == nil {
		return nil
	}
	return New(spec, m.names, m.rrn)
}

// Active reports whether m masks anything.
func (m *Masker) Active() bool { return m != nil && (m.rrn || len(m.fields) > 0) }

// Line masks b in place: a message or the start of one (without its LF,
// possibly invalid). It returns b.
func (m *Masker) Line(b []byte) []byte {
	if m == nil {
		return b
	}
	for _, i := range m.fields {
		if start, end, ok := m.spec.FieldSpan(b, i); ok {
			stars(b[start:end])
		}
	}
	if m.rrn {
		RRN(b)
	}
	return b
}

// AppendLine appends line masked (see Line) to dst and returns the
// extended buffer; line is not modified. It allocates only when dst has no
// room.
func (m *Masker) AppendLine(dst, line []byte) []byte {
	n := len(dst)
	dst = append(dst, line...)
	m.Line(dst[n:])
	return dst
}

// LineString returns line masked as a string, for a log attribute or a
// JSON field: one allocation, the string.
func (m *Masker) LineString(line []byte) string {
	if !m.Active() {
		return string(line)
	}
	buf := make([]byte, len(line))
	copy(buf, line)
	return string(m.Line(buf))
}

// Text masks free text (an error, a reason, a reply quoted in a log line):
// the resident number shapes only, since text has no fields. It returns s
// itself, allocating nothing, when there is nothing to mask.
func (m *Masker) Text(s string) string {
	if m == nil || !m.rrn || !hasRRN(s) {
		return s
	}
	b := []byte(s)
	RRN(b)
	return string(b)
}

// MasksRRN reports whether m masks the resident number shapes.
func (m *Masker) MasksRRN() bool { return m != nil && m.rrn }

// Masks reports whether m masks the field at index i of its spec.
func (m *Masker) Masks(i int) bool {
	if m == nil {
		return false
	}
	for _, f := range m.fields {
		if f == i {
			return true
		}
	}
	return false
}

func stars(b []byte) {
	for i := range b {
		b[i] = '*'
	}
}

func digit(c byte) bool { return c >= '0' && c <= '9' }

// digitRun returns the end of the run of digits that starts at i.
func digitRun[T ~string | ~[]byte](b T, i int) int {
	for i < len(b) && digit(b[i]) {
		i++
	}
	return i
}

// findRRN returns the next resident number shape in b at or after i: its
// start and end, and where its '-' is (-1 without one); ok false when
// there is none. A run of digits that starts with the last digits of an
// escape (\x01, \u0031: quoted or escaped text) is also looked at without
// them, so that quoting a byte before a resident number does not hide it.
func findRRN[T ~string | ~[]byte](b T, i int) (start, end, dash int, ok bool) {
	for i < len(b) {
		if !digit(b[i]) {
			i++
			continue
		}
		j := digitRun(b, i)
		if end, dash, ok := shapeAt(b, i, j); ok {
			return i, end, dash, true
		}
		if k := escaped(b, i); k > 0 && i+k < j {
			if end, dash, ok := shapeAt(b, i+k, j); ok {
				return i + k, end, dash, true
			}
		}
		i = j
	}
	return 0, 0, 0, false
}

// shapeAt reports whether the run of digits b[i:j] starts a resident
// number shape: the run itself (13 digits), or the run (6 digits), '-'
// and the 7 digits after it; end and dash as findRRN returns them.
func shapeAt[T ~string | ~[]byte](b T, i, j int) (end, dash int, ok bool) {
	switch {
	case j-i == 13 && b[i+6] >= '1' && b[i+6] <= '8':
		return j, -1, true
	case j-i == 6 && j+1 < len(b) && b[j] == '-' && b[j+1] >= '1' && b[j+1] <= '8':
		if k := digitRun(b, j+1); k-(j+1) == 7 {
			return k, j, true
		}
	}
	return 0, 0, false
}

// escaped returns how many digits at i, the start of a run of digits,
// are the last hex digits of an escape before them (\xHH, \uHHHH,
// \UHHHHHHHH, its backslash not itself escaped); 0 when none.
func escaped[T ~string | ~[]byte](b T, i int) int {
	p := i - 1
	for p >= 0 && i-p <= 8 && (digit(b[p]) || b[p] >= 'a' && b[p] <= 'f' || b[p] >= 'A' && b[p] <= 'F') {
		p-- // the escape's hex digits before the run (a letter ends the run: \u00a0)
	}
	if p < 1 {
		return 0
	}
	n := 0
	switch b[p] {
	case 'x':
		n = 2
	case 'u':
		n = 4
	case 'U':
		n = 8
	default:
		return 0
	}
	slashes := 0
	for q := p - 1; q >= 0 && b[q] == '\\'; q-- {
		slashes++
	}
	if slashes%2 == 0 {
		return 0 // no backslash, or an escaped one: x, u or U is text
	}
	return max(0, p+1+n-i)
}

// RRN masks every resident number shape in b in place and returns how
// many it masked. It allocates nothing.
func RRN(b []byte) int {
	n := 0
	for i := 0; ; n++ {
		start, end, dash, ok := findRRN(b, i)
		if !ok {
			return n
		}
		stars(b[start:end])
		if dash >= 0 {
			b[dash] = '-'
		}
		i = end
	}
}

// HasRRN reports whether b holds a resident number shape.
func HasRRN(b []byte) bool {
	_, _, _, ok := findRRN(b, 0)
	return ok
}

func hasRRN(s string) bool {
	_, _, _, ok := findRRN(s, 0)
	return ok
}
