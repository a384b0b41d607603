package protocol

import (
	"bytes"
	"fmt"
	"time"
)

// ReplyLen is the byte length of every reply, including its LF.
const ReplyLen = 38

// Reply is a parsed reply: length|RES|process_no|replied_at|code in the
// default dialect (ParseReply), the fields of the reply spec in another
// (Dialect.ParseReply).
type Reply struct {
	ProcessNo string
	At        time.Time // local time, second precision
	Code      int       // CodeOK, CodeInvalid, CodeUnavailable; ParseReply: any 3 digits; Dialect.ParseReply: 0 for a code of none of them
	CodeText  string    // Dialect.ParseReply: the code as sent (decoded) when Code is 0
}

// AppendReply appends the reply "0038|RES|<processNo>|<at>|<code>\n" to dst.
// processNo must be 9 digits (use Spec.ProcessNo); code is 200, 400 or 500.
func AppendReply(dst, processNo []byte, at time.Time, code int) []byte {
	dst = append(dst, "0038|RES|"...)
	dst = append(dst, processNo...)
	dst = append(dst, '|')
	y, mo, d := at.Date()
	h, mi, s := at.Clock()
	dst = appendInt(dst, y, 4)
	dst = appendInt(dst, int(mo), 2)
	dst = appendInt(dst, d, 2)
	dst = appendInt(dst, h, 2)
	dst = appendInt(dst, mi, 2)
	dst = appendInt(dst, s, 2)
	dst = append(dst, '|')
	dst = appendInt(dst, code, 3)
	return append(dst, '\n')
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

var replyTime = [...]timeTok{{unit: 'y', n: 4}, {unit: 'M', off: 4, n: 2}, {unit: 'd', off: 6, n: 2}, {unit: 'H', off: 8, n: 2}, {unit: 'm', off: 10, n: 2}, {unit: 's', off: 12, n: 2}}

// ParseReply parses a reply line, with or without its LF. It checks the
// length field, RES, a 9-digit process_no, the time and a 3-digit code.
func ParseReply(line []byte) (Reply, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	var parts [5][]byte // one reply per message: no slice from bytes.Split
	n, rest := 0, line
	for ; n < len(parts); n++ {
		f, r, more := bytes.Cut(rest, []byte{'|'})
		parts[n], rest = f, r
		if !more {
			n++
			break
		}
	}
	if n != len(parts) || rest != nil {
		return Reply{}, fmt.Errorf("parse reply %q: %d fields, want 5", line, bytes.Count(line, []byte{'|'})+1)
	}
	if !allDigits(parts[0], 4) || atoi(parts[0]) != len(line)+1 {
		return Reply{}, fmt.Errorf("parse reply %q: bad length field", line)
	}
	if string(parts[1]) != "RES" {
		return Reply{}, fmt.Errorf("parse reply %q: type is not RES", line)
	}
	if !allDigits(parts[2], 9) {
		return Reply{}, fmt.Errorf("parse reply %q: process_no is not 9 digits", line)
	}
	if !validTime(parts[3], replyTime[:]) {
		return Reply{}, fmt.Errorf("parse reply %q: responded_at is not yyyyMMddHHmmss", line)
	}
	if !allDigits(parts[4], 3) {
		return Reply{}, fmt.Errorf("parse reply %q: code is not 3 digits", line)
	}
	t := parts[3]
	at := time.Date(atoi(t[0:4]), time.Month(atoi(t[4:6])), atoi(t[6:8]), atoi(t[8:10]), atoi(t[10:12]), atoi(t[12:14]), 0, time.Local)
	return Reply{ProcessNo: string(parts[2]), At: at, Code: atoi(parts[4])}, nil
}
