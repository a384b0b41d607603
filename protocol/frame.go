package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Framing is the value of protocol.framing: how one message is told from
// the next on a connection (docs/PROTOCOL.md §1).
type Framing string

// The framings.
const (
	FramingLF     Framing = "lf"     // a length field first, LF at the end
	FramingLength Framing = "length" // a length header before each message, no LF
)

// LengthFormat is the value of protocol.length.format.
type LengthFormat string

// The header formats of framing length.
const (
	LengthASCII  LengthFormat = "ascii"  // zero-padded decimal digits
	LengthBinary LengthFormat = "binary" // an unsigned big-endian integer
)

// LengthCounts is the value of protocol.length.counts.
type LengthCounts string

// What the header's value counts.
const (
	CountsRest LengthCounts = "rest" // the bytes after the header
	CountsAll  LengthCounts = "all"  // the header and the bytes after it
)

// ErrBadHeader reports a length header that is not digits (ascii) or that
// says the message is empty: the next message cannot be found.
var ErrBadHeader = errors.New("protocol: bad length header")

// FrameError is a fault of the framing after which the next message
// cannot be found: the peer is answered CodeInvalid (with the process_no
// of what arrived, when it can be read) and the connection is closed. It
// wraps ErrTooLong or ErrBadHeader. The lf Reader returns the bare
// ErrTooLong; FrameReason reads both.
type FrameError struct {
	Err    error  // ErrTooLong or ErrBadHeader
	Reason string // bounded, for a metric label: "message: too long", "header: not digits", "header: empty"
	Detail string // for the log
}

// Error returns "reason: detail".
func (e *FrameError) Error() string { return e.Reason + ": " + e.Detail }

// Unwrap returns ErrTooLong or ErrBadHeader.
func (e *FrameError) Unwrap() error { return e.Err }

// FrameReason returns the bounded reason of err when err means that the
// stream cannot be framed further (ErrTooLong, a *FrameError): answer 400
// and close. ok is false for any other error (io.EOF, a timeout, …).
func FrameReason(err error) (reason string, ok bool) {
	var fe *FrameError
	switch {
	case errors.As(err, &fe):
		return fe.Reason, true
	case errors.Is(err, ErrTooLong):
		return "message: too long", true
	case errors.Is(err, ErrBadHeader):
		return "header: bad", true
	}
	return "", false
}

// MessageReader frames messages on a bufio.Reader in one framing
// (Dialect.NewReader). A MessageReader is not safe for concurrent use.
type MessageReader interface {
	// ReadMessage returns the next message without its framing (its LF,
	// or its header). The slice is valid until the next call. It returns
	// io.EOF at a clean end between messages, a frame fault (FrameReason)
	// with the start of the message that arrived, and any other error of
	// the underlying reader as is (a partial message is then dropped).
	ReadMessage() ([]byte, error)
	// Ready reports whether the reader's buffer holds a whole message, or
	// a fault ReadMessage reports at once: the next ReadMessage then
	// neither blocks nor refills the buffer, so the slices it returned
	// before stay valid (a pipelined batch).
	Ready() bool
}

// Ready reports whether a whole message (its LF), or more than max bytes
// without one, is in the buffer (MessageReader).
func (r *Reader) Ready() bool {
	buf, _ := r.br.Peek(r.br.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0 || len(buf) >= r.max
}

// LengthReader frames messages behind a length header (framing length).
// It is not safe for concurrent use.
type LengthReader struct {
	br   *bufio.Reader
	w    *wire
	max  int
	long []byte // reused for messages longer than br's buffer
}

// ReadMessage returns the next message without its header; see
// MessageReader. A header that is not digits, says 0 bytes (or, counting
// all, no more than itself) or more than max is a *FrameError, returned as
// soon as the header has arrived, with the bytes after it that are in the
// buffer (for the reply's process_no); nothing more is read. A message cut
// by EOF (in its header or after) is io.ErrUnexpectedEOF. It allocates
// nothing when the message fits br's buffer.
func (r *LengthReader) ReadMessage() ([]byte, error) {
	b := r.w.hdrBytes
	hdr, err := r.br.Peek(b)
	if err != nil {
		if err == io.EOF {
			if len(hdr) == 0 {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n, ferr := r.w.parseHeader(hdr, r.max)
	if ferr != nil {
		r.br.Discard(b)
		start, _ := r.br.Peek(r.br.Buffered())
		return start, ferr
	}
	if b+n <= r.br.Size() {
		buf, err := r.br.Peek(b + n)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		r.br.Discard(b + n)
		return buf[b:], nil // still in br's buffer until the next read
	}
	r.br.Discard(b)
	r.long = r.long[:0]
	for len(r.long) < n {
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
		}
		k := min(r.br.Buffered(), n-len(r.long))
		buf, _ := r.br.Peek(k)
		r.long = append(r.long, buf...)
		r.br.Discard(k)
	}
	return r.long, nil
}

// Ready reports whether the buffer holds a whole header and message, or a
// header ReadMessage refuses (MessageReader).
func (r *LengthReader) Ready() bool {
	b := r.w.hdrBytes
	if r.br.Buffered() < b {
		return false
	}
	hdr, _ := r.br.Peek(b)
	n, err := r.w.parseHeader(hdr, r.max)
	return err != nil || b+n <= r.br.Buffered()
}

// parseHeader returns the bytes of the message after the header h. The
// error is a *FrameError.
func (w *wire) parseHeader(h []byte, max int) (int, *FrameError) {
	var v uint64
	if w.hdrBinary {
		for _, c := range h {
			v = v<<8 | uint64(c)
		}
	} else {
		for _, c := range h {
			if c < '0' || c > '9' {
				return 0, &FrameError{Err: ErrBadHeader, Reason: "header: not digits", Detail: fmt.Sprintf("header %q", h)}
			}
			v = v*10 + uint64(c-'0')
		}
	}
	n := int64(v)
	if w.countsAll {
		n -= int64(w.hdrBytes)
	}
	if n <= 0 {
		return 0, &FrameError{Err: ErrBadHeader, Reason: "header: empty", Detail: fmt.Sprintf("header %s says %d bytes (%s)", w.headerText(h), v, w.counts())}
	}
	if n > int64(max) {
		return 0, &FrameError{Err: ErrTooLong, Reason: "message: too long", Detail: fmt.Sprintf("header %s says %d bytes after it, the most is %d", w.headerText(h), n, max)}
	}
	return int(n), nil
}

// headerText shows a header for the log: ascii as it is, binary in hex.
func (w *wire) headerText(h []byte) string {
	if w.hdrBinary {
		return fmt.Sprintf("%#x", h)
	}
	return strconv.Quote(string(h))
}

func (w *wire) counts() string {
	if w.countsAll {
		return "counting itself"
	}
	return "counting the rest"
}

// maxHeader returns the largest value the header can carry.
func (w *wire) maxHeader() uint64 {
	if w.hdrBinary {
		return 1<<(8*uint(w.hdrBytes)) - 1
	}
	m := uint64(1)
	for range w.hdrBytes {
		m *= 10
	}
	return m - 1
}

// maxBody returns the largest message the header can announce, at most
// MaxMessageBytes.
func (w *wire) maxBody() int {
	m := w.maxHeader()
	if w.countsAll {
		m -= uint64(w.hdrBytes)
	}
	return int(min(m, MaxMessageBytes))
}

// frame appends msg, a message without its framing, framed for the wire:
// with LF (framing lf) or after its header (framing length). It fails with
// ErrTooLong when the message exceeds MaxMessageBytes (its LF counted) or
// what the header can say.
func (w *wire) frame(dst, msg []byte) ([]byte, error) {
	if !w.length {
		if len(msg)+1 > MaxMessageBytes {
			return dst, fmt.Errorf("%w: %d bytes framed", ErrTooLong, len(msg)+1)
		}
		return append(append(dst, msg...), '\n'), nil
	}
	if len(msg) > w.maxBody() {
		return dst, fmt.Errorf("%w: %d bytes, the most the header says is %d", ErrTooLong, len(msg), w.maxBody())
	}
	v := uint64(len(msg))
	if w.countsAll {
		v += uint64(w.hdrBytes)
	}
	var h [8]byte
	for i := w.hdrBytes - 1; i >= 0; i-- {
		if w.hdrBinary {
			h[i], v = byte(v), v>>8
		} else {
			h[i], v = byte('0'+v%10), v/10
		}
	}
	return append(append(dst, h[:w.hdrBytes]...), msg...), nil
}

// unframe returns the message of frame, one message framed for the wire.
func (w *wire) unframe(frame []byte) []byte {
	if !w.length {
		return bytes.TrimSuffix(frame, []byte{'\n'})
	}
	if len(frame) < w.hdrBytes {
		return nil
	}
	return frame[w.hdrBytes:]
}
