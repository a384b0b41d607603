package protocol

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that an accepted line encodes
// back to itself, and that a rejection is always a *ParseError.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(with(7, "한국어 payload")))
	f.Add([]byte("0010|REQ|"))
	f.Add([]byte(""))
	f.Add([]byte(example + "\r"))
	spec := DefaultRequestSpec()
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := spec.Parse(line)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %T %v is not a *ParseError", err, err)
			}
			_ = spec.ProcessNo(line)
			return
		}
		vals := m.Values()
		out, err := spec.Encode(vals[1:]...)
		if err != nil {
			t.Fatalf("Encode(Parse(%q)) = %v", line, err)
		}
		if !bytes.Equal(out[:len(out)-1], line) {
			t.Fatalf("Encode(Parse(%q)) = %q", line, out)
		}
		if pno := spec.ProcessNo(line); !bytes.Equal(pno, m.Field("process_no")) {
			t.Fatalf("ProcessNo = %q, field = %q", pno, m.Field("process_no"))
		}
	})
}
