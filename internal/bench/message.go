package bench

import (
	"fmt"
	"strings"
	"time"

	"spoolgate/protocol"
)

// generator builds the messages of a run in its dialect and reads the
// codes of their replies. It is safe for concurrent use.
type generator struct {
	d    *protocol.Dialect
	o    Options
	fast bool     // the default dialect: appendMessage, as before dialects
	tmpl []byte   // another dialect: one message of the result spec, framed
	seqs [][2]int // spans in tmpl given each message's number: process_no (else every digits field)
	bad  int      // the byte of tmpl an invalid message has as 'x' (in process_no), or -1
}

// newGenerator returns the generator of o: in the default dialect the
// fast path of appendMessage; in another one, a message of the result
// spec of sample values (Spec.SampleValues: its field named payload, when
// a text, of o.Payload bytes), copied for each message with its number in
// its process_no (or, without one, in every digits field).
func newGenerator(o Options) (*generator, error) {
	d := o.Dialect
	if d == nil {
		d = protocol.DefaultDialect()
	}
	g := &generator{d: d, o: o, bad: -1}
	if g.isDefault() {
		g.fast = true
		return g, nil
	}
	spec := d.Result()
	fields := spec.Fields()
	vals := spec.SampleValues(0, time.Now())
	first := len(fields) - len(vals) // the length field under framing lf
	for k := range vals {
		if f := &fields[first+k]; f.Name == "payload" && f.Rule.Kind == protocol.KindText {
			vals[k] = strings.Repeat("p", min(o.Payload, f.Rule.Max))
		}
	}
	frame, err := spec.Encode(vals...)
	if err != nil {
		return nil, fmt.Errorf("bench: a message of the result spec: %w", err)
	}
	msg := d.Unframe(frame)
	off := 0
	if d.Framing() == protocol.FramingLength {
		off = len(frame) - len(msg) // the header
	}
	pno := spec.Index("process_no")
	for i, f := range fields {
		if f.Rule.Kind != protocol.KindDigits || (pno >= 0 && i != pno) {
			continue
		}
		if start, end, ok := spec.FieldSpan(msg, i); ok {
			g.seqs = append(g.seqs, [2]int{off + start, off + end})
			if g.bad < 0 {
				g.bad = off + end - 1
			}
		}
	}
	g.tmpl = frame
	return g, nil
}

// isDefault reports whether the run's dialect is the default one (its
// description is, and the fast path's message is valid in it).
func (g *generator) isDefault() bool {
	def := protocol.DefaultDialect()
	if g.d == def {
		return true
	}
	if g.d.String() != def.String() {
		return false
	}
	_, err := g.d.Result().Parse(g.d.Unframe(appendMessage(nil, Options{Payload: g.o.Payload}, 0, "20260101000000")))
	return err == nil
}

// append appends message i, sent at stamp (yyyyMMddHHmmss; the default
// dialect's: another dialect's messages keep the time of the start), to
// dst: valid, unless i is picked by InvalidEvery.
func (g *generator) append(dst []byte, i int, stamp string) []byte {
	if g.fast {
		return appendMessage(dst, g.o, i, stamp)
	}
	n := len(dst)
	dst = append(dst, g.tmpl...)
	for _, sp := range g.seqs {
		v := g.o.Base + i
		for j := n + sp[1] - 1; j >= n+sp[0]; j-- {
			dst[j] = byte('0' + v%10)
			v /= 10
		}
	}
	if g.o.InvalidEvery > 0 && (i+1)%g.o.InvalidEvery == 0 && g.bad >= 0 {
		dst[n+g.bad] = 'x'
	}
	return dst
}

// code returns the outcome a reply (without its framing) carries: "200",
// "400" or "500" for the dialect's ok, invalid and unavailable codes, the
// code as sent for another one, "unreadable" for a reply that does not
// parse.
func (g *generator) code(reply []byte) string {
	r, err := g.d.ParseReply(reply)
	switch {
	case err != nil:
		return "unreadable"
	case r.Code == 0:
		return r.CodeText
	}
	return codeString(r.Code)
}

// appendMessage appends message i, sent at stamp (yyyyMMddHHmmss), to dst;
// cheap enough that a pipelining client is not the bottleneck.
func appendMessage(dst []byte, o Options, i int, stamp string) []byte {
	var pno [9]byte
	for j, k := 8, (o.Base+i)%1_000_000_000; j >= 0; j, k = j-1, k/10 {
		pno[j] = byte('0' + k%10)
	}
	if o.InvalidEvery > 0 && (i+1)%o.InvalidEvery == 0 {
		pno[8] = 'x'
	}
	n := len("REQ||") + 9 + len(stamp) + len("|BENCH|SV01|K-") + 9 + 1 + o.Payload + 1 + 6
	dst = append(dst, byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10), '|')
	dst = append(dst, "REQ|"...)
	dst = append(dst, pno[:]...)
	dst = append(dst, '|')
	dst = append(dst, stamp...)
	dst = append(dst, "|BENCH|SV01|K-"...)
	dst = append(dst, pno[:]...)
	dst = append(dst, '|')
	for range o.Payload {
		dst = append(dst, 'p')
	}
	return append(dst, '|', '\n')
}

// codeString is fmt.Sprintf("%03d", code) without the allocation for the
// usual codes.
func codeString(code int) string {
	switch code {
	case protocol.CodeOK:
		return "200"
	case protocol.CodeInvalid:
		return "400"
	case protocol.CodeUnavailable:
		return "500"
	}
	return fmt.Sprintf("%03d", code)
}
