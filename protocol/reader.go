package protocol

import (
	"bufio"
	"errors"
	"io"
)

// Reader frames messages on a bufio.Reader: a message ends at LF, or at EOF
// after at least one byte. It is not safe for concurrent use.
type Reader struct {
	br   *bufio.Reader
	max  int
	long []byte // reused for lines longer than br's buffer
}

// NewReader returns a Reader over br that rejects messages longer than max
// bytes including the LF.
func NewReader(br *bufio.Reader, max int) *Reader {
	return &Reader{br: br, max: max}
}

// ReadMessage returns the next message without its LF. The slice is valid
// until the next call. It returns ErrTooLong once a message exceeds max
// bytes (the rest of it is left unread: the stream cannot be resynchronised),
// io.EOF at a clean end, and any other error of the underlying reader as is
// (a partial message is then dropped). It allocates nothing when the message
// fits in br's buffer.
func (r *Reader) ReadMessage() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == nil {
		if len(line) > r.max {
			return nil, ErrTooLong
		}
		return line[:len(line)-1], nil
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		r.long = append(r.long[:0], line...)
		for {
			if len(r.long) > r.max {
				return nil, ErrTooLong
			}
			line, err = r.br.ReadSlice('\n')
			r.long = append(r.long, line...)
			if err == nil {
				if len(r.long) > r.max {
					return nil, ErrTooLong
				}
				return r.long[:len(r.long)-1], nil
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				line = r.long
				break
			}
		}
	}
	if err == io.EOF && len(line) > 0 {
		if len(line)+1 > r.max {
			return nil, ErrTooLong
		}
		return line, nil // ended at EOF without LF; the next call returns io.EOF
	}
	return nil, err
}
