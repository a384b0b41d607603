package protocol

import "time"

// Reply is a reply parsed by Dialect.ParseReply: length|RES|process_no|
// replied_at|code in the default dialect, the fields of the reply spec in
// another.
type Reply struct {
	ProcessNo string
	At        time.Time // local time, second precision
	Code      int       // CodeOK, CodeInvalid, CodeUnavailable, or 0 for a code of none of them
	CodeText  string    // the code as sent (decoded) when Code is 0
}

// appendInt appends the last width decimal digits of v >= 0, zero-padded.
func appendInt(dst []byte, v, width int) []byte {
	if width > 8 { // digits N of a sample: not on a hot path
		return append(appendInt(dst, v/100000000, width-8), appendInt(nil, v%100000000, 8)...)
	}
	var buf [8]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}
