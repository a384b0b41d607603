package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
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

// FuzzLengthReader: whatever the header's shape, the buffer size and how
// the bytes arrive, the LengthReader frames as the plain rule says: a
// header, then as many bytes as it says (counting itself or not); a header
// that is not digits, says nothing, or more than max ends the stream with
// its frame fault; a stream cut in a message ends in io.ErrUnexpectedEOF.
func FuzzLengthReader(f *testing.F) {
	f.Add([]byte("0003abc0001x"), false, 4, false, 100, 16, 1)
	f.Add([]byte("0007abc0005x"), false, 4, true, 100, 16, 3)
	f.Add([]byte("\x00\x03abc\x00\x01x"), true, 2, false, 100, 16, 2)
	f.Add([]byte("\x00\x00\x00\x07abc"), true, 4, true, 100, 16, 5)
	f.Add([]byte("00a3abc"), false, 4, false, 100, 16, 1)
	f.Add([]byte("0000"), false, 4, false, 100, 16, 1)
	f.Add([]byte("9999"+strings.Repeat("y", 300)), false, 4, false, 200, 64, 50)
	f.Fuzz(func(t *testing.T, in []byte, binary bool, hdrBytes int, countsAll bool, max, bufSize, chunk int) {
		format, counts := LengthASCII, CountsRest
		hdrBytes = 1 + abs(hdrBytes)%8
		if binary {
			format, hdrBytes = LengthBinary, 2+2*(abs(hdrBytes)%2)
		}
		if countsAll {
			counts = CountsAll
		}
		max = 1 + abs(max)%300
		bufSize = 16 + abs(bufSize)%100
		chunk = 1 + abs(chunk)%50
		d, err := NewDialect(DialectConfig{Framing: FramingLength, LengthFormat: format, LengthBytes: hdrBytes,
			LengthCounts: counts, Request: delimitedNoLength})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		var wantEnd string // "eof", "unexpected", or a frame reason
		rest := in
		for {
			if len(rest) == 0 {
				wantEnd = "eof"
				break
			}
			if len(rest) < hdrBytes {
				wantEnd = "unexpected"
				break
			}
			var v uint64
			digits := true
			for _, c := range rest[:hdrBytes] {
				if binary {
					v = v<<8 | uint64(c)
				} else if c < '0' || c > '9' {
					digits = false
				} else {
					v = v*10 + uint64(c-'0')
				}
			}
			n := int64(v)
			if countsAll {
				n -= int64(hdrBytes)
			}
			if !digits {
				wantEnd = "header: not digits"
			} else if n <= 0 {
				wantEnd = "header: empty"
			} else if n > int64(max) {
				wantEnd = "message: too long"
			} else if int64(len(rest)) < int64(hdrBytes)+n {
				wantEnd = "unexpected"
			}
			if wantEnd != "" {
				break
			}
			want = append(want, string(rest[hdrBytes:hdrBytes+int(n)]))
			rest = rest[hdrBytes+int(n):]
		}
		got, err := readAll(d, in, max, bufSize, chunk)
		gotEnd := ""
		switch reason, ok := FrameReason(err); {
		case ok:
			gotEnd = reason
		case errors.Is(err, io.EOF):
			gotEnd = "eof"
		case errors.Is(err, io.ErrUnexpectedEOF):
			gotEnd = "unexpected"
		}
		if gotEnd != wantEnd || !slices.Equal(got, want) {
			t.Fatalf("%s %d %s max %d buf %d chunk %d: got %q, %v; want %q, %s", format, hdrBytes, counts, max, bufSize, chunk, got, err, want, wantEnd)
		}
	})
}

// FuzzDialectParse: in each test dialect, Parse never panics, an accepted
// message encodes back to itself, a rejection is always a *ParseError, and
// what the receiver does with any message (its process_no, echo, key,
// reply) never panics and gives a reply that parses back.
func FuzzDialectParse(f *testing.F) {
	tds := testDialects()
	for i, td := range tds {
		d := mustDialect(f, td.cfg)
		msg := build(d, d.request, sample(f, d, td, 1))
		f.Add(i, msg)
		f.Add(i, msg[:len(msg)/2])
		f.Add(i, append(msg[:len(msg)-1:len(msg)-1], 0xb0))
	}
	ds := make([]*Dialect, len(tds))
	for i, td := range tds {
		ds[i] = mustDialect(f, td.cfg)
	}
	f.Fuzz(func(t *testing.T, which int, line []byte) {
		d := ds[abs(which)%len(ds)]
		if pno := d.ProcessNo(line); d.pnoIdx >= 0 && !d.reply.fields[d.pnoIdx].Rule.valid(pno, 0, d.w) {
			t.Fatalf("ProcessNo(%q) = %q does not fit the reply", line, pno)
		}
		_ = d.IsEcho(line)
		_ = d.ProcessNo(d.CompleteFields(line))
		rep := d.AppendReply(nil, line, CodeInvalid, testAt)
		if r, err := d.ParseReply(d.Unframe(rep)); err != nil || r.Code != CodeInvalid {
			t.Fatalf("reply to %q: %q: %+v, %v", line, rep, r, err)
		}
		checkRawFields(t, d.Request(), line)
		m, err := d.Parse(line)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %T %v is not a *ParseError", err, err)
			}
			return
		}
		vals := valuesAfterLength(d, m)
		out, err := d.Request().Encode(vals...)
		if err != nil {
			t.Fatalf("Encode(Parse(%q)) = %v", line, err)
		}
		if !bytes.Equal(d.Unframe(out), line) {
			t.Fatalf("Encode(Parse(%q)) = %q", line, out)
		}
		idx, _ := d.KeyIndexes([]string{"process_no"})
		if k, ok := d.Request().AppendRawKey(nil, line, idx, 0); !ok || !bytes.Equal(k, m.AppendKey(nil, idx, 0)) {
			t.Fatalf("raw key %q, key %q", k, m.AppendKey(nil, idx, 0))
		}
	})
}

// checkRawFields: RawFields of any line, valid or not, is rawField of
// each field asked, in any order, a field beyond the spec's included.
func checkRawFields(t *testing.T, s *Spec, line []byte) {
	idx := make([]int, 0, s.Len()+1)
	for i := s.Len(); i >= 0; i-- {
		idx = append(idx, i)
	}
	out := make([][]byte, len(idx))
	s.RawFields(line, idx, out)
	for k, i := range idx {
		want, ok := s.rawField(line, i)
		if !ok {
			want = nil
		}
		if (out[k] == nil) != (want == nil) || !bytes.Equal(out[k], want) {
			t.Fatalf("RawFields(%q) field %d = %q, rawField %q %v", line, i, out[k], want, ok)
		}
	}
}
