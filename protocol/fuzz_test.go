package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
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

// FuzzReader: whatever the buffer size and however the bytes arrive, the
// Reader frames as the plain rule says: messages end at LF (or EOF), and
// the first one of max bytes or more without its LF ends the stream with
// ErrTooLong.
func FuzzReader(f *testing.F) {
	f.Add([]byte("a\nbb\nccc"), 5, 16, 1)
	f.Add([]byte(example+"\n"+example), 200, 16, 7)
	f.Add(bytes.Repeat([]byte("x"), 300), 200, 64, 64)
	f.Fuzz(func(t *testing.T, in []byte, max, bufSize, chunk int) {
		max = 1 + abs(max)%300
		bufSize = 16 + abs(bufSize)%100
		chunk = 1 + abs(chunk)%50
		var want []string
		wantErr := io.EOF
		rest := in
		for len(rest) > 0 {
			i := bytes.IndexByte(rest, '\n')
			seg := rest
			if i >= 0 {
				seg, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			if len(seg)+1 > max {
				wantErr = ErrTooLong
				break
			}
			want = append(want, string(seg))
		}
		r := NewReader(bufio.NewReaderSize(&chunkReader{in, chunk}, bufSize), max)
		var got []string
		var err error
		for {
			var line []byte
			if line, err = r.ReadMessage(); err != nil {
				break
			}
			got = append(got, string(line))
		}
		if !errors.Is(err, wantErr) || strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
			t.Fatalf("max %d buf %d chunk %d: got %q, %v; want %q, %v", max, bufSize, chunk, got, err, want, wantErr)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1)
	}
	return n
}

// chunkReader hands out b at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[k:]
	return k, nil
}
