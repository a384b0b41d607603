package protocol

import "bytes"

// FieldSpan returns where field i lies in line, a message of the spec
// without its framing that may be invalid or cut short (a log sample):
// line[start:end]. The fields are found as Parse finds them: in the
// delimited layout after i separators, up to the next one (the spec's last
// field runs to the end of line); in the fixed layout at the field's
// offset and width, padding included. A line cut inside field i gives the
// part of it that is there. ok is false when line ends before field i
// starts, or i is out of range. Masking (internal/mask) uses it; unlike
// the fields Parse gives, a span may hold separators or padding. It
// allocates nothing and is safe for concurrent use.
func (s *Spec) FieldSpan(line []byte, i int) (start, end int, ok bool) {
	if i < 0 || i >= len(s.fields) {
		return 0, 0, false
	}
	if s.w.fixed {
		f := &s.fields[i]
		if f.off >= len(line) && f.width > 0 {
			return 0, 0, false
		}
		return f.off, min(f.off+f.width, len(line)), true
	}
	for k := 0; k < i; k++ {
		j := bytes.IndexByte(line[start:], s.w.sep)
		if j < 0 {
			return 0, 0, false
		}
		start += j + 1
	}
	end = len(line)
	if i < len(s.fields)-1 {
		if j := bytes.IndexByte(line[start:], s.w.sep); j >= 0 {
			end = start + j
		}
	}
	return start, end, true
}
