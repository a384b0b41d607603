package sender

import "bytes"

// The lines of a spool file: one message per line, ended by LF. Empty
// lines are skipped (they count as done); a last line without LF is
// complete only once the file is (a writer may be in the middle of it).
// A claim hands its lines out with nextLine, and so does the send window
// when it reads ahead.

// fileLine is one non-empty line of a claimed file: its bytes are
// data[off:end], without the LF; the line after it starts at next.
type fileLine struct {
	no             int // its number in the file, from 1
	off, end, next int
}

// nextLine returns the first non-empty line of data at or after off, whose
// number is no: ok false when there is none that is complete (a last line
// without LF is complete when final). The line returned with false starts
// where the search stopped, past the empty lines skipped: that far the
// lines are done.
func nextLine(data []byte, off, no int, final bool) (ln fileLine, ok bool) {
	for off < len(data) {
		end, next := lineEnd(data, off)
		if end == len(data) && !final { // a writer may be in the middle of it
			break
		}
		if end > off {
			return fileLine{no: no, off: off, end: end, next: next}, true
		}
		off, no = next, no+1 // empty line
	}
	return fileLine{no: no, off: off, end: off, next: off}, false
}

// lineEnd returns the end of the line starting at off (before its LF) and
// the offset of the next line.
func lineEnd(data []byte, off int) (end, next int) {
	i := bytes.IndexByte(data[off:], '\n')
	if i < 0 {
		return len(data), len(data)
	}
	return off + i, off + i + 1
}

// hasContent reports whether b holds a non-empty line.
func hasContent(b []byte) bool {
	for _, c := range b {
		if c != '\n' {
			return true
		}
	}
	return false
}

// firstContent returns the offset of the first non-empty line, or -1.
func firstContent(b []byte) int {
	for i, c := range b {
		if c != '\n' {
			return i
		}
	}
	return -1
}

// countContent counts the non-empty lines in b.
func countContent(b []byte) int {
	n := 0
	for off := 0; off < len(b); {
		end, next := lineEnd(b, off)
		if end > off {
			n++
		}
		off = next
	}
	return n
}

// unterminated reports whether data ends in a line without LF.
func unterminated(data []byte) bool { return len(data) > 0 && data[len(data)-1] != '\n' }
