package protocol

import "bytes"

// FieldSpan returns where field i lies in line, a message without its LF
// that may be invalid or cut short (a log sample): line[start:end]. The
// fields are split as Parse splits them, so for a valid message the span
// is that of Message.FieldAt(i); the last field of the spec runs to the end
// of line. A line cut inside field i gives the part of it that is there.
// ok is false when line ends before field i starts, or i is out of range.
// It allocates nothing and is safe for concurrent use.
func (s *Spec) FieldSpan(line []byte, i int) (start, end int, ok bool) {
	if i < 0 || i >= len(s.fields) {
		return 0, 0, false
	}
	for k := 0; k < i; k++ {
		j := bytes.IndexByte(line[start:], '|')
		if j < 0 {
			return 0, 0, false
		}
		start += j + 1
	}
	end = len(line)
	if i < len(s.fields)-1 {
		if j := bytes.IndexByte(line[start:], '|'); j >= 0 {
			end = start + j
		}
	}
	return start, end, true
}
