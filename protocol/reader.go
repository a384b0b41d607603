package protocol

import (
	"bufio"
	"bytes"
	"io"
)

// Reader frames messages on a bufio.Reader: a message ends at LF, or at EOF
// after at least one byte. It is not safe for concurrent use.
type Reader struct {
	br   *bufio.Reader
	max  int
	long []byte // reused for messages that arrive in more than one read
}

// NewReader returns a Reader over br that rejects messages longer than max
// bytes including the LF.
func NewReader(br *bufio.Reader, max int) *Reader {
	return &Reader{br: br, max: max}
}

// ReadMessage returns the next message without its LF. The slice is valid
// until the next call. It returns io.EOF at a clean end, and any other error
// of the underlying reader as is (a partial message is then dropped).
//
// It returns ErrTooLong as soon as the message is known to exceed max
// bytes: max bytes without a LF have arrived (the LF or the EOF that ends
// it makes it longer), whatever br's buffer size, without waiting for more
// input. With ErrTooLong the slice holds the start of the message that has
// arrived (at least the bytes of the first read; for the reply's
// process_no); the rest is left unread, since the stream cannot be
// resynchronised.
//
// It allocates nothing when the message arrives in one read.
func (r *Reader) ReadMessage() ([]byte, error) {
	r.long = r.long[:0]
	for {
		buf, _ := r.br.Peek(r.br.Buffered())
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			if len(r.long)+i+1 > r.max {
				return r.tooLong(buf[:i]) // not a byte of the next message
			}
			if len(r.long) == 0 {
				r.br.Discard(i + 1)
				return buf[:i], nil // still in br's buffer until the next read
			}
			r.long = append(r.long, buf[:i]...)
			r.br.Discard(i + 1)
			return r.long, nil
		}
		if len(r.long)+len(buf) >= r.max {
			return r.tooLong(buf)
		}
		r.long = append(r.long, buf...)
		r.br.Discard(len(buf))
		if _, err := r.br.Peek(1); err != nil {
			if err == io.EOF && len(r.long) > 0 {
				// Ended at EOF without LF (len+1 <= max, checked above);
				// the next call returns io.EOF.
				return r.long, nil
			}
			return nil, err
		}
	}
}

// tooLong returns the start of an oversized message with ErrTooLong.
func (r *Reader) tooLong(buf []byte) ([]byte, error) {
	if len(r.long) == 0 {
		return buf, ErrTooLong
	}
	return append(r.long, buf...), ErrTooLong
}
