package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// The dialects of the tests: docs/PROTOCOL.md's worked examples and the
// corners around them.

// eucFixedRequest is the request spec of the EUC-KR fixed-width example
// (docs/PROTOCOL.md §1): 97 bytes.
var eucFixedRequest = SpecConfig{
	Names: []string{"kind", "process_no", "sent_at", "org_code", "name", "payload"},
	Rules: map[string]string{"kind": "digits 4", "process_no": "digits 9", "sent_at": "time yyyyMMddHHmmss",
		"org_code": "class A-Z0-9 2..10", "name": "text 0..20", "payload": "text 0..40"},
}

// eucFixedReply is its reply: 31 bytes.
var eucFixedReply = SpecConfig{
	Names: []string{"kind", "process_no", "replied_at", "code"},
	Rules: map[string]string{"kind": "const 0210", "code": "digits 4"},
}

// delimitedNoLength is the default request spec without its length field
// (framing length).
var delimitedNoLength = SpecConfig{Names: DefaultRequestNames[1:], Rules: DefaultRequestRules}

type testDialect struct {
	name string
	cfg  DialectConfig
	text string // a text field to carry multi-byte characters
	next string // fixed: the field after text (a cut character straddles them)
}

func testDialects() []testDialect {
	return []testDialect{
		{"default", DialectConfig{}, "payload", ""},
		{"euc-kr delimited lf", DialectConfig{Charset: CharsetEUCKR}, "payload", ""},
		{"cp949 delimited caret lf", DialectConfig{Charset: CharsetCP949, Separator: "^"}, "payload", ""},
		{"euc-kr fixed ascii4 rest", DialectConfig{Charset: CharsetEUCKR, Layout: LayoutFixed, Framing: FramingLength,
			Request: eucFixedRequest, Reply: eucFixedReply, CodeOK: "0000", CodeInvalid: "9999", CodeUnavailable: "9998",
			EchoField: "kind", EchoValue: "0800"}, "name", "payload"},
		{"euc-kr fixed ascii4 all", DialectConfig{Charset: CharsetEUCKR, Layout: LayoutFixed, Framing: FramingLength,
			LengthCounts: CountsAll, Request: eucFixedRequest, Reply: eucFixedReply, CodeOK: "0000", CodeInvalid: "9999",
			CodeUnavailable: "9998"}, "name", "payload"},
		{"utf-8 delimited binary2 rest", DialectConfig{Framing: FramingLength, LengthFormat: LengthBinary, LengthBytes: 2,
			Request: delimitedNoLength}, "payload", ""},
		{"cp949 fixed binary4 all", DialectConfig{Charset: CharsetCP949, Layout: LayoutFixed, Framing: FramingLength,
			LengthFormat: LengthBinary, LengthCounts: CountsAll, Request: eucFixedRequest, Reply: eucFixedReply,
			CodeOK: "0000", CodeInvalid: "9999", CodeUnavailable: "9998"}, "name", "payload"},
		{"utf-8 fixed lf", DialectConfig{Layout: LayoutFixed, Request: SpecConfig{
			Names: append([]string{"length"}, eucFixedRequest.Names...),
			Rules: mergeRules(eucFixedRequest.Rules, map[string]string{"length": "length 4"})}}, "name", "payload"},
		{"utf-8 delimited ascii8 all", DialectConfig{Framing: FramingLength, LengthBytes: 8, LengthCounts: CountsAll,
			Request: delimitedNoLength, Reply: SpecConfig{Names: []string{"process_no", "code"}, Rules: map[string]string{"code": "class A-Z 2..2"}},
			CodeOK: "OK", CodeInvalid: "NG", CodeUnavailable: "RT"}, "payload", ""},
	}
}

func mergeRules(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func mustDialect(t testing.TB, cfg DialectConfig) *Dialect {
	t.Helper()
	d, err := NewDialect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var testAt = time.Date(2026, 11, 21, 9, 30, 1, 0, time.Local)

// wireText returns s, UTF-8, in d's charset.
func wireText(t testing.TB, d *Dialect, s string) string {
	t.Helper()
	b, err := d.w.charset.encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// build is the test's own encoder: values (one per field after the length
// field, or per field) joined by the separator or padded to their widths,
// with a correct length field first under framing lf. It does not
// validate.
func build(d *Dialect, spec *Spec, vals []string) []byte {
	var body []byte
	fields := spec.fields
	if !d.w.length {
		fields = fields[1:]
	}
	for i, v := range vals {
		if i > 0 && !d.w.fixed {
			body = append(body, d.w.sep)
		}
		body = append(body, v...)
		if d.w.fixed && fields[i].Rule.padded() {
			for n := len(v); n < fields[i].width; n++ {
				body = append(body, ' ')
			}
		}
	}
	if d.w.length {
		return body
	}
	n := len(body) + 5
	if !d.w.fixed {
		n++
	}
	head := fmt.Sprintf("%04d", n)
	if !d.w.fixed {
		head += string(d.w.sep)
	}
	return append([]byte(head), body...)
}

// frameAs frames msg by hand: the LF, or a header counting the rest or all.
func frameAs(d *Dialect, msg []byte, countsAll bool) []byte {
	if !d.w.length {
		return append(slices.Clone(msg), '\n')
	}
	b := d.w.hdrBytes
	v := len(msg)
	if countsAll {
		v += b
	}
	return append(header(d, uint64(v)), msg...)
}

// header returns a header of d carrying v, whatever it means.
func header(d *Dialect, v uint64) []byte {
	b := d.w.hdrBytes
	h := make([]byte, b)
	for i := b - 1; i >= 0; i-- {
		if d.w.hdrBinary {
			h[i], v = byte(v), v>>8
		} else {
			h[i], v = byte('0'+v%10), v/10
		}
	}
	return h
}

// sample returns valid values of d's request spec with Korean text (or
// Hangul in UTF-8) in the text field.
func sample(t testing.TB, d *Dialect, td testDialect, seq int) []string {
	vals := d.request.SampleValues(seq, testAt)
	vals[valIndex(d, td.text)] = wireText(t, d, "홍길동")
	return vals
}

// valIndex returns the index in Encode's values of the named field.
func valIndex(d *Dialect, name string) int {
	i := d.request.Index(name)
	if !d.w.length {
		i--
	}
	return i
}

// readAll frames in with d's reader, bufSize and chunk bytes per read, and
// returns the messages and the error that ended the stream.
func readAll(d *Dialect, in []byte, max, bufSize, chunk int) ([]string, error) {
	r := d.NewReader(bufio.NewReaderSize(&chunkReader{in, chunk}, bufSize), max)
	var out []string
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return out, err
		}
		out = append(out, string(m))
	}
}

// TestDialects runs every dialect through valid, short, long, bad charset,
// cut character, bad header (or length field), header over the maximum,
// and counts rest vs all, each read whole and one byte at a time, alone
// and pipelined behind a valid message.
func TestDialects(t *testing.T) {
	for _, td := range testDialects() {
		t.Run(td.name, func(t *testing.T) {
			d := mustDialect(t, td.cfg)
			vals := sample(t, d, td, 123)
			good := build(d, d.request, vals)
			if enc, err := d.request.Encode(vals...); err != nil || !bytes.Equal(d.Unframe(enc), good) {
				t.Fatalf("Encode = %q, %v; want %q", enc, err, good)
			}
			with := func(field, v string) []byte {
				vs := slices.Clone(vals)
				vs[valIndex(d, field)] = v
				return build(d, d.request, vs)
			}
			textRule := d.request.fields[d.request.Index(td.text)].Rule.text
			textReason := td.text + ": " + textRule
			var short, long []byte
			var countReason string
			if d.w.fixed {
				short, long = good[:len(good)-1], append(slices.Clone(good), 'x')
				countReason = "message: " + d.request.widthRule
			} else {
				short = good[:bytes.LastIndexByte(good, d.w.sep)]
				long = append(append(slices.Clone(good), d.w.sep), 'x')
				countReason = "message: field count"
			}
			badCharset := map[Charset]string{CharsetUTF8: "a\xffb", CharsetEUCKR: "\x81\x41", CharsetCP949: "\x81\x20b"}[d.w.charset]
			lead := map[Charset]string{CharsetUTF8: "\xed\x95", CharsetEUCKR: "\xb0", CharsetCP949: "\x81"}[d.w.charset]
			trail := map[Charset]string{CharsetUTF8: "\x9c", CharsetEUCKR: "\xa1", CharsetCP949: "\x41"}[d.w.charset]
			cut := with(td.text, "ab"+lead) // a lead byte at the field's end
			if d.w.fixed {
				// A character straddling the edge of the text field and the next.
				f := &d.request.fields[d.request.Index(td.text)]
				cut = slices.Clone(good)
				end := f.off + f.width
				copy(cut[end-len(lead):], lead+trail)
			}
			type tcase struct {
				name   string
				msg    []byte // a message, framed by the test as d says
				wire   []byte // or the bytes on the wire as they are
				reason string // "": valid; else the parse or frame reason
				pno    string // frame faults: the process_no of the start (read whole)
				differ bool   // the message read is not the one sent (reason not checked)
			}
			cases := []tcase{
				{name: "valid", msg: good},
				{name: "short", msg: short, reason: countReason},
				{name: "long", msg: long, reason: countReason},
				{name: "bad charset", msg: with(td.text, badCharset), reason: textReason},
				{name: "cut character", msg: cut, reason: textReason},
			}
			pno := string(d.ProcessNo(good))
			if d.w.length {
				hb := d.w.hdrBytes
				over := uint64(len(good) + 11)
				if d.w.countsAll {
					over += uint64(hb)
				}
				empty := uint64(0)
				if d.w.countsAll {
					empty = uint64(hb)
				}
				cases = append(cases,
					tcase{name: "header over the maximum", wire: append(header(d, over), good...), reason: "message: too long", pno: pno},
					tcase{name: "header empty", wire: append(header(d, empty), good...), reason: "header: empty", pno: pno})
				if !d.w.hdrBinary {
					h := header(d, uint64(len(good)))
					h[0] = 'x'
					cases = append(cases, tcase{name: "header not digits", wire: append(h, good...), reason: "header: not digits", pno: pno})
				}
				// The other counting: rest read as all is 'hdrBytes' short;
				// all read as rest runs hdrBytes into the next message.
				other := frameAs(d, good, !d.w.countsAll)
				if d.w.countsAll {
					cases = append(cases, tcase{name: "counted rest, read as all", wire: other, differ: true})
				} else {
					cases = append(cases, tcase{name: "counted all, read as rest", wire: append(other, frameAs(d, good, false)...), differ: true})
				}
			} else {
				cases = append(cases,
					tcase{name: "bad length field", msg: append([]byte("00x9"), good[4:]...), reason: "length: length 4"},
					tcase{name: "length field wrong", msg: append([]byte(fmt.Sprintf("%04d", len(good))), good[4:]...), reason: "length: equals message length"},
					tcase{name: "over the maximum", wire: append(append(slices.Clone(good), bytes.Repeat([]byte("x"), 200)...), '\n'), reason: "message: too long", pno: pno})
			}
			max := len(good) + 10 + d.w.lf() // room for the long message
			for _, tc := range cases {
				in := tc.wire
				if in == nil {
					in = frameAs(d, tc.msg, d.w.countsAll)
				}
				for _, pipelined := range []bool{false, true} {
					stream := in
					if pipelined {
						stream = append(frameAs(d, good, d.w.countsAll), in...)
					}
					for _, chunk := range []int{1 << 20, 1} {
						t.Run(fmt.Sprintf("%s/pipelined=%v/chunk=%d", tc.name, pipelined, chunk), func(t *testing.T) {
							got, err := readAll(d, stream, max, 4096, chunk)
							if pipelined {
								if len(got) == 0 || got[0] != string(good) {
									t.Fatalf("first message %q, want %q", got, good)
								}
								got = got[1:]
							}
							if tc.differ {
								if len(got) > 0 && got[0] == string(good) {
									t.Fatalf("read %q as it was sent", got[0])
								}
								return
							}
							if fr, ok := FrameReason(err); ok {
								if fr != tc.reason || len(got) != 0 {
									t.Fatalf("frame fault %q after %d messages, want %q", fr, len(got), tc.reason)
								}
								return
							}
							if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
								t.Fatalf("end %v", err)
							}
							if len(got) == 0 {
								t.Fatalf("no message, end %v; want reason %q", err, tc.reason)
							}
							m, perr := d.Parse([]byte(got[0]))
							if tc.reason == "" {
								if perr != nil || len(got) != 1 || !errors.Is(err, io.EOF) {
									t.Fatalf("Parse = %v, %d messages, end %v", perr, len(got), err)
								}
								if !bytes.Equal(m.Line(), good) || !slices.Equal(valuesAfterLength(d, m), vals) {
									t.Fatalf("values %q, want %q", m.Values(), vals)
								}
								if s := d.Text(m.Field(td.text)); s != "홍길동" {
									t.Fatalf("text %q decodes to %q", m.Field(td.text), s)
								}
								return
							}
							var pe *ParseError
							if !errors.As(perr, &pe) || pe.Reason() != tc.reason {
								t.Fatalf("Parse(%q) = %v, want reason %q", got[0], perr, tc.reason)
							}
							if tc.name == "cut character" && !strings.Contains(pe.Detail, "cut") {
								t.Errorf("detail %q does not say the character is cut", pe.Detail)
							}
						})
					}
				}
				// A fault of the framing: the reply echoes the process_no of
				// the start that arrived in the same read.
				if tc.pno != "" {
					r := d.NewReader(bufio.NewReaderSize(bytes.NewReader(in), 4096), max)
					start, err := r.ReadMessage()
					if _, ok := FrameReason(err); !ok {
						t.Fatalf("%s: err %v", tc.name, err)
					}
					if got := string(d.ProcessNo(d.CompleteFields(start))); got != tc.pno {
						t.Errorf("%s: process_no of the start %q, want %q", tc.name, got, tc.pno)
					}
				}
			}
		})
	}
}

func valuesAfterLength(d *Dialect, m Message) []string {
	v := m.Values()
	if !d.w.length {
		return v[1:]
	}
	return v
}

// TestCounts: the header of framing length carries the bytes after it
// (rest) or those and itself (all), in ASCII digits or big-endian binary.
func TestCounts(t *testing.T) {
	msg := []byte("REQ|000000123|20261121093000|ORG01|SV01|K|p|") // 44 bytes
	for _, tc := range []struct {
		format LengthFormat
		bytes  int
		counts LengthCounts
		head   string
	}{
		{LengthASCII, 4, CountsRest, "0044"},
		{LengthASCII, 4, CountsAll, "0048"},
		{LengthASCII, 6, CountsAll, "000050"},
		{LengthASCII, 2, CountsRest, "44"},
		{LengthASCII, 1, CountsRest, ""}, // 44 does not fit one digit
		{LengthBinary, 2, CountsRest, "\x00\x2c"},
		{LengthBinary, 2, CountsAll, "\x00\x2e"},
		{LengthBinary, 4, CountsAll, "\x00\x00\x00\x30"},
	} {
		t.Run(fmt.Sprintf("%s/%d/%s", tc.format, tc.bytes, tc.counts), func(t *testing.T) {
			d := mustDialect(t, DialectConfig{Framing: FramingLength, LengthFormat: tc.format, LengthBytes: tc.bytes,
				LengthCounts: tc.counts, Request: delimitedNoLength})
			out, err := d.AppendResult(nil, msg)
			if tc.head == "" {
				if !errors.Is(err, ErrTooLong) {
					t.Fatalf("AppendResult = %q, %v; want ErrTooLong", out, err)
				}
				return
			}
			if err != nil || string(out) != tc.head+string(msg) {
				t.Fatalf("AppendResult = %q, %v; want %q", out, err, tc.head+string(msg))
			}
			got, err := readAll(d, bytes.Repeat(out, 3), 9999, 16, 1)
			if !errors.Is(err, io.EOF) || len(got) != 3 || got[2] != string(msg) {
				t.Fatalf("read back %q, %v", got, err)
			}
			rep := d.AppendReply(nil, msg, CodeOK, testAt)
			if !bytes.HasPrefix(rep, header(d, uint64(len(rep)-tc.bytes+map[LengthCounts]int{CountsAll: tc.bytes}[tc.counts]))) {
				t.Fatalf("reply %q: header does not count as the dialect says", rep)
			}
		})
	}
}

// TestDefaultDialect: the default dialect is docs/PROTOCOL.md §1 and §2
// byte for byte.
func TestDefaultDialect(t *testing.T) {
	d := DefaultDialect()
	if d.Request() != defaultSpec {
		t.Fatal("DefaultRequestSpec is not the default dialect's request spec")
	}
	if want := `utf-8, delimited by "|", framing lf; request 9 fields, result the request's; reply length,type,process_no,replied_at,code; codes ok 200, invalid 400, unavailable 500; no echo`; d.String() != want {
		t.Errorf("String() =\n%s\nwant\n%s", d, want)
	}
	raws := []string{example, "0010|REQ|123456789", "0010|REQ|12345678|x", "garbage", "", "x|y|987654321|z|\xff", "x|y|98765432a|z"}
	for _, raw := range raws {
		for _, code := range []int{CodeOK, CodeInvalid, CodeUnavailable} {
			got := d.AppendReply(nil, []byte(raw), code, testAt)
			pno := string(DefaultRequestSpec().ProcessNo([]byte(raw)))
			if want := fmt.Sprintf("0038|RES|%s|20261121093001|%d\n", pno, code); string(got) != want {
				t.Errorf("AppendReply(%q, %d) = %q, want %q", raw, code, got, want)
			}
			r, err := d.ParseReply(got)
			if err != nil || r != (Reply{ProcessNo: pno, At: testAt, Code: code}) {
				t.Errorf("ParseReply(%q) = %+v, %v", got, r, err)
			}
		}
	}
	for _, bad := range []string{"", "0038|RES|000000123|20261121093001", "0037|RES|000000123|20261121093001|200",
		"0038|REQ|000000123|20261121093001|200", "0038|RES|00000012x|20261121093001|200", "0038|RES|000000123|20261121253001|200",
		"0038|RES|000000123|20261121093001|2x0", "0042|RES|000000123|20261121093001|200|", "0046|RES|000000123|20261121093001|200|xyz",
		"0034|RES|000000123|20261121093001|"} {
		if _, err := d.ParseReply([]byte(bad)); err == nil {
			t.Errorf("ParseReply(%q) accepted", bad)
		}
	}
	// A code of none of the three is read, not mapped.
	if r, err := d.ParseReply([]byte("0038|RES|000000123|20261121093001|201")); err != nil || r.Code != 0 || r.CodeText != "201" {
		t.Errorf("code 201: %+v, %v", r, err)
	}
	// Spool lines: the length field is added, or kept when correct.
	body := example[5:]
	for _, tc := range []struct{ line, want, err string }{
		{body, example + "\n", ""},
		{example, example + "\n", ""},
		{"0099" + example[4:], "", `the line starts with "0099", a length field that does not match its 78 bytes with LF`},
		{strings.Replace(body, "000000123", "1", 1), "", "process_no: digits 9"},
		{strings.Repeat("x", 9994), "", "message too long"},
	} {
		out, err := d.AppendResult([]byte("prefix"), []byte(tc.line))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || string(out) != "prefix" {
				t.Errorf("AppendResult(%.20q) = %.30q, %v; want error %q", tc.line, out, err, tc.err)
			}
			continue
		}
		if err != nil || string(out) != "prefix"+tc.want {
			t.Errorf("AppendResult(%.20q) = %q, %v", tc.line, out, err)
		}
		if string(d.ResultProcessNo(d.Unframe(out[len("prefix"):]))) != "000000123" {
			t.Errorf("ResultProcessNo of %q", out)
		}
	}
}

// TestReplies: each dialect's reply echoes what it should, carries the
// configured code, parses back to the outcome, and falls back to the
// rule's zero value when the request's value does not fit.
func TestDialectReplies(t *testing.T) {
	for _, td := range testDialects() {
		t.Run(td.name, func(t *testing.T) {
			d := mustDialect(t, td.cfg)
			good := build(d, d.request, sample(t, d, td, 123))
			for _, code := range []int{CodeOK, CodeInvalid, CodeUnavailable} {
				rep := d.AppendReply([]byte("x"), good, code, testAt)[1:]
				if d.w.fixed && len(d.Unframe(rep)) != d.reply.width {
					t.Errorf("reply %q is not %d bytes wide", rep, d.reply.width)
				}
				got, err := readAll(d, rep, 9999, 16, 1)
				if err != io.EOF || len(got) != 1 {
					t.Fatalf("reply %q frames as %q, %v", rep, got, err)
				}
				r, err := d.ParseReply([]byte(got[0]))
				if err != nil {
					t.Fatalf("ParseReply(%q) = %v", got[0], err)
				}
				if r.Code != code || r.ProcessNo != string(d.ResultProcessNo(good)) {
					t.Errorf("ParseReply(%q) = %+v, want code %d, process_no %q", got[0], r, code, d.ResultProcessNo(good))
				}
				if d.timeIdx >= 0 && !r.At.Equal(testAt) {
					t.Errorf("At %v, want %v", r.At, testAt)
				}
			}
			if d.pnoIdx >= 0 {
				if string(d.ProcessNo(good)) != "000000123" {
					t.Errorf("ProcessNo(%q) = %q", good, d.ProcessNo(good))
				}
				for _, raw := range [][]byte{nil, good[:3], []byte("garbage")} {
					r, err := d.ParseReply(d.Unframe(d.AppendReply(nil, raw, CodeInvalid, testAt)))
					if err != nil || r.ProcessNo != "000000000" || r.Code != CodeInvalid {
						t.Errorf("reply to %q: %+v, %v", raw, r, err)
					}
				}
			}
			// A code the dialect does not know is reported as it is (the
			// code is the last field of these replies).
			alt := slices.Clone(d.Unframe(d.AppendReply(nil, good, CodeOK, testAt)))
			other := map[bool]string{false: "1111", true: "ZZ"}[d.cfg.CodeOK == "OK"][:len(d.codes[0])]
			copy(alt[len(alt)-len(other):], other)
			if r, err := d.ParseReply(alt); err != nil || r.Code != 0 || r.CodeText != other {
				t.Errorf("unknown code in %q: %+v, %v", alt, r, err)
			}
		})
	}
}

// TestPartnerCodes: the worked example of a partner whose codes are
// 0000/9999 (docs/PROTOCOL.md §2).
func TestPartnerCodes(t *testing.T) {
	d := mustDialect(t, DialectConfig{Reply: SpecConfig{Rules: map[string]string{"code": "digits 4"}},
		CodeOK: "0000", CodeInvalid: "9999", CodeUnavailable: "9998"})
	for code, want := range map[int]string{
		CodeOK:          "0039|RES|000000123|20261121093001|0000\n",
		CodeInvalid:     "0039|RES|000000123|20261121093001|9999\n",
		CodeUnavailable: "0039|RES|000000123|20261121093001|9998\n",
	} {
		got := d.AppendReply(nil, []byte(example), code, testAt)
		if string(got) != want {
			t.Errorf("reply %q, want %q", got, want)
		}
		if r, err := d.ParseReply(got); err != nil || r.Code != code {
			t.Errorf("ParseReply(%q) = %+v, %v", got, r, err)
		}
	}
	if r, err := d.ParseReply([]byte("0039|RES|000000123|20261121093001|0001")); err != nil || r.Code != 0 || r.CodeText != "0001" {
		t.Errorf("code 0001: %+v, %v", r, err)
	}
}

// TestEcho: the echo telegram is told by its field, valid or not; the
// sender's heartbeat frames it without the result spec's other checks.
func TestEcho(t *testing.T) {
	td := testDialects()[3] // euc-kr fixed, echo kind=0800
	d := mustDialect(t, td.cfg)
	vals := sample(t, d, td, 7)
	if d.IsEcho(build(d, d.request, vals)) {
		t.Fatal("a request is an echo")
	}
	vals[valIndex(d, "kind")] = "0800"
	echo := build(d, d.request, vals)
	if !d.IsEcho(echo) || !d.IsEcho(echo[:20]) || d.IsEcho(echo[:3]) {
		t.Fatal("IsEcho")
	}
	rep := d.AppendReply(nil, echo[:20], CodeOK, testAt)
	if r, err := d.ParseReply(d.Unframe(rep)); err != nil || r.Code != CodeOK || r.ProcessNo != "000000007" {
		t.Fatalf("echo reply %q: %+v, %v", rep, r, err)
	}
	// Not a valid request: only the echo field counts; padded to the width.
	out, err := d.AppendEcho(nil, []byte("0800"))
	if err != nil || string(out) != "0097"+"0800"+strings.Repeat(" ", 93) {
		t.Fatalf("AppendEcho = %q, %v", out, err)
	}
	if hb, err := d.Heartbeat("0800 링크 테스트"); err != nil || !bytes.HasPrefix(hb, []byte("00970800 \xb8\xb5")) || len(hb) != 101 {
		t.Fatalf("Heartbeat = %q, %v", hb, err)
	}
	if _, err := d.AppendEcho(nil, []byte("0200"+strings.Repeat(" ", 50))); err == nil || !strings.Contains(err.Error(), "not the echo telegram") {
		t.Fatalf("AppendEcho of a request: %v", err)
	}
	if _, err := DefaultDialect().AppendEcho(nil, []byte("x")); err == nil {
		t.Fatal("AppendEcho without echo")
	}
	// Delimited, framing lf: the length field goes first.
	d = mustDialect(t, DialectConfig{EchoField: "type", EchoValue: "REQ"})
	out, err = d.AppendEcho([]byte("p"), []byte("REQ|000000000"))
	if err != nil || string(out) != "p0019|REQ|000000000\n" {
		t.Fatalf("AppendEcho lf = %q, %v", out, err)
	}
}

// TestKeys: the duplicate key comes from the parsed message's fields, and
// the same from a raw request-file line.
func TestKeys(t *testing.T) {
	for _, td := range testDialects() {
		d := mustDialect(t, td.cfg)
		idx, err := d.KeyIndexes([]string{"process_no", td.text})
		if err != nil {
			t.Fatal(err)
		}
		msg := build(d, d.request, sample(t, d, td, 42))
		m, err := d.Parse(msg)
		if err != nil {
			t.Fatal(err)
		}
		key := m.AppendKey(nil, idx, 0)
		raw, ok := d.request.AppendRawKey(nil, msg, idx, 0)
		want := "000000042\x00" + wireText(t, d, "홍길동")
		if string(key) != want || !ok || string(raw) != want {
			t.Errorf("%s: key %q, raw key %q %v, want %q", td.name, key, raw, ok, want)
		}
		if k, ok := d.request.AppendRawKey([]byte("x"), msg[:5], idx, 0); ok || string(k) != "x" {
			t.Errorf("%s: a raw key of a cut message: %q", td.name, k)
		}
		if id := m.AppendKey(nil, idx[:1], '|'); string(id) != "000000042" {
			t.Errorf("%s: message_id %q", td.name, id)
		}
	}
	if _, err := DefaultDialect().KeyIndexes([]string{"org_code", "nope"}); err == nil || !strings.Contains(err.Error(), "nope is not a field") {
		t.Errorf("KeyIndexes(nope) = %v", err)
	}
}

// TestResults: spool lines of each dialect frame for the wire, are checked
// against the result spec, and unframe to what the receiver stores.
func TestResults(t *testing.T) {
	for _, td := range testDialects() {
		d := mustDialect(t, td.cfg)
		msg := build(d, d.result, sample(t, d, td, 9))
		line := msg
		if !d.w.length { // a spool line has no length field
			line = msg[4:]
			if !d.w.fixed {
				line = msg[5:]
			}
		}
		out, err := d.AppendResult(nil, line)
		if err != nil || !bytes.Equal(out, frameAs(d, msg, d.w.countsAll)) || !bytes.Equal(d.Unframe(out), msg) {
			t.Errorf("%s: AppendResult(%q) = %q, %v", td.name, line, out, err)
		}
		if f, err := d.Frame(nil, msg); err != nil || !bytes.Equal(f, out) {
			t.Errorf("%s: Frame = %q, %v", td.name, f, err)
		}
		if _, err := d.AppendResult(nil, append(slices.Clone(line), '\r')); err == nil {
			t.Errorf("%s: a line with CR was framed", td.name)
		}
	}
}

// TestDecodeForPeople: what people read is UTF-8, whatever the wire.
func TestDecodeForPeople(t *testing.T) {
	d := mustDialect(t, testDialects()[3].cfg)
	euc := []byte("\xc8\xab\xb1\xe6\xb5\xbf") // 홍길동
	if got := d.Text(euc); got != "홍길동" {
		t.Errorf("Text = %q", got)
	}
	if got := d.Text([]byte("a\xc8")); got != "a\uFFFD" {
		t.Errorf("Text of a cut character = %q", got)
	}
	if got := CharsetCP949.Decode([]byte("\x81\x41")); got != "갂" {
		t.Errorf("cp949 extension = %q", got)
	}
	if got := CharsetUTF8.Decode([]byte("a\xffb")); got != "a\uFFFDb" {
		t.Errorf("utf-8 = %q", got)
	}
	if b, err := d.FromUTF8("홍길동"); err != nil || string(b) != string(euc) {
		t.Errorf("FromUTF8 = %q, %v", b, err)
	}
	if _, err := d.FromUTF8("😀"); err == nil {
		t.Error("FromUTF8 of a character euc-kr lacks")
	}
	vals := sample(t, d, testDialects()[3], 1)
	vals[valIndex(d, "org_code")] = wireText(t, d, "가")
	_, err := d.Parse(build(d, d.request, vals))
	if err == nil || !strings.Contains(err.Error(), "org_code: class A-Z0-9 2..10") {
		t.Fatalf("err %v", err)
	}
	vals = sample(t, d, testDialects()[3], 1)
	vals[valIndex(d, "process_no")] = wireText(t, d, "가나다라마")[:9]
	_, err = d.Parse(build(d, d.request, vals))
	if err == nil || !strings.Contains(err.Error(), `"가나다라�"`) {
		t.Fatalf("the detail is not decoded: %v", err)
	}
}

// TestCharsetBytes holds docs/PROTOCOL.md's count of the characters each
// Korean charset admits, and its byte ranges.
func TestCharsetBytes(t *testing.T) {
	set := cp949Pairs()
	var euc, cp int
	for lead := 0x80; lead <= 0xff; lead++ {
		for trail := 0; trail <= 0xff; trail++ {
			inCP := pairOK(set, false, byte(lead), byte(trail))
			inEUC := pairOK(set, true, byte(lead), byte(trail))
			if inCP {
				cp++
				if lead < 0x81 || lead > 0xfe || !(trail >= 0x41 && trail <= 0x5a || trail >= 0x61 && trail <= 0x7a || trail >= 0x81 && trail <= 0xfe) {
					t.Fatalf("cp949 admits %#x %#x", lead, trail)
				}
			}
			if inCP && !inEUC && lead > 0xc6 {
				t.Fatalf("cp949 adds %#x %#x, past the extension's first bytes 81-C6", lead, trail)
			}
			if inEUC {
				euc++
				if lead < 0xa1 || trail < 0xa1 || lead == 0xff || trail == 0xff || !inCP {
					t.Fatalf("euc-kr admits %#x %#x", lead, trail)
				}
			}
		}
	}
	// KS X 1001:2002 assigns 8,226 characters (2,350 Hangul syllables,
	// 4,888 Hanja, the rest symbols, the euro and registered signs among
	// them); CP949 adds the 8,822 other modern Hangul syllables.
	if euc != 8226 || cp != 8226+8822 {
		t.Errorf("euc-kr admits %d pairs, cp949 %d", euc, cp)
	}
	// The user-defined rows of KS X 1001 and € ®, as PROTOCOL.md says.
	for _, p := range [][2]byte{{0xc9, 0xa1}, {0xfe, 0xa1}, {0xfe, 0xfe}} {
		if pairOK(set, false, p[0], p[1]) {
			t.Errorf("%#x %#x is admitted", p[0], p[1])
		}
	}
	if !pairOK(set, true, 0xa2, 0xe6) || !pairOK(set, true, 0xa2, 0xe7) || CharsetEUCKR.Decode([]byte{0xa2, 0xe6, 0xa2, 0xe7}) != "€®" {
		t.Error("€ or ® is not in euc-kr")
	}
}

// TestNewDialectErrors: every combination that cannot work names its key.
func TestNewDialectErrors(t *testing.T) {
	fixed := DialectConfig{Layout: LayoutFixed, Framing: FramingLength, Request: eucFixedRequest, Reply: eucFixedReply,
		CodeOK: "0000", CodeInvalid: "9999", CodeUnavailable: "9998"}
	with := func(c DialectConfig, f func(*DialectConfig)) DialectConfig { f(&c); return c }
	for _, tc := range []struct {
		name string
		cfg  DialectConfig
		key  string
		want string
	}{
		{"charset", DialectConfig{Charset: "latin1"}, "charset", "one of utf-8, euc-kr, cp949"},
		{"layout", DialectConfig{Layout: "csv"}, "layout", "one of delimited, fixed"},
		{"framing", DialectConfig{Framing: "stx"}, "framing", "one of lf, length"},
		{"separator letter", DialectConfig{Separator: "a"}, "separator", "one printable ASCII byte, not a letter, digit or space, e.g. |"},
		{"separator digit", DialectConfig{Separator: "0"}, "separator", "not a letter, digit or space"},
		{"separator space", DialectConfig{Separator: " "}, "separator", "not a letter, digit or space"},
		{"separator two bytes", DialectConfig{Separator: "||"}, "separator", "one printable ASCII byte"},
		{"separator tab", DialectConfig{Separator: "\t"}, "separator", "one printable ASCII byte"},
		{"length format", DialectConfig{Framing: FramingLength, LengthFormat: "bcd", Request: delimitedNoLength}, "length.format", "one of ascii, binary"},
		{"length counts", DialectConfig{Framing: FramingLength, LengthCounts: "body", Request: delimitedNoLength}, "length.counts", "one of rest, all"},
		{"binary 3 bytes", DialectConfig{Framing: FramingLength, LengthFormat: LengthBinary, LengthBytes: 3, Request: delimitedNoLength}, "length.bytes", "2 or 4 with protocol.length.format=binary"},
		{"ascii 9 bytes", DialectConfig{Framing: FramingLength, LengthBytes: 9, Request: delimitedNoLength}, "length.bytes", "1 to 8 with protocol.length.format=ascii"},
		{"length field under framing length", DialectConfig{Framing: FramingLength}, "request.field.length", "no length field under protocol.framing=length"},
		{"no length field under framing lf", DialectConfig{Request: delimitedNoLength}, "request.field.type", "the first field, and only the first, is the length field"},
		{"zero width under fixed", with(fixed, func(c *DialectConfig) {
			c.Request = SpecConfig{Names: []string{"a", "b"}, Rules: map[string]string{"a": "digits 2", "b": "text 0..0"}}
		}), "request.field.b", "every field needs a width"},
		{"fixed wider than the header says", with(fixed, func(c *DialectConfig) { c.LengthBytes = 1 }), "length.bytes", "a header that can say 97 bytes"},
		{"reply without code", DialectConfig{Reply: SpecConfig{Names: []string{"length", "process_no"}}}, "reply.fields", "a reply needs a field named code"},
		{"reply field it cannot fill", DialectConfig{Reply: SpecConfig{Names: []string{"length", "note", "code"}, Rules: map[string]string{"note": "text 0..10"}}}, "reply.field.note", "named like a request field"},
		{"reply field without rule", DialectConfig{Reply: SpecConfig{Names: []string{"length", "note", "code"}}}, "reply.field.note", "a rule for reply field note"},
		{"reply length under framing length", DialectConfig{Framing: FramingLength, Request: delimitedNoLength, Reply: SpecConfig{Names: []string{"length", "code"}}}, "reply.field.length", "no length field"},
		{"code does not fit", DialectConfig{CodeOK: "0000"}, "reply.code.ok", "a code that fits protocol.reply.field.code (the rule of reply field code is digits 3)"},
		{"code not distinct", DialectConfig{CodeUnavailable: "400"}, "reply.code.unavailable", "a code other than protocol.reply.code.invalid"},
		{"code in a const", DialectConfig{Reply: SpecConfig{Rules: map[string]string{"code": "const 200"}}}, "reply.code.invalid", "fits protocol.reply.field.code"},
		{"echo field not in the spec", DialectConfig{EchoField: "nope", EchoValue: "x"}, "echo.field", "a field of the request spec"},
		{"echo value does not fit", DialectConfig{EchoField: "type", EchoValue: "ECHO"}, "echo.value", "the rule of type is const REQ"},
		{"echo value alone", DialectConfig{EchoValue: "x"}, "echo.field", "set with protocol.echo.value"},
		{"echo field alone", DialectConfig{EchoField: "type"}, "echo.value", "set with protocol.echo.field"},
		{"echo on the length field", DialectConfig{EchoField: "length", EchoValue: "0010"}, "echo.value", "the rule of length"},
		{"const with the separator", DialectConfig{Separator: "^", Request: SpecConfig{Names: []string{"length", "t"}, Rules: map[string]string{"length": "length 4", "t": "const A^B"}}}, "request.field.t", "const needs a text without ^ CR LF NUL"},
		{"class with the separator", DialectConfig{Separator: "_", Request: SpecConfig{Names: []string{"length", "t"}, Rules: map[string]string{"length": "length 4", "t": "class A-Z_ 1..2"}}}, "request.field.t", "class needs bytes"},
		{"const not in euc-kr", DialectConfig{Charset: CharsetEUCKR, Request: SpecConfig{Names: []string{"length", "t"}, Rules: map[string]string{"length": "length 4", "t": "const 😀"}}}, "request.field.t", "has no code in euc-kr"},
		{"const in cp949 only", DialectConfig{Charset: CharsetEUCKR, Request: SpecConfig{Names: []string{"length", "t"}, Rules: map[string]string{"length": "length 4", "t": "const 갂"}}}, "request.field.t", "in cp949 but not in euc-kr"},
		{"result spec", DialectConfig{Result: SpecConfig{Names: []string{"length", "x"}, Rules: map[string]string{"length": "length 4", "x": "digits"}}}, "result.field.x", "digits needs a width"},
		{"fixed too wide", DialectConfig{Layout: LayoutFixed, Request: SpecConfig{Names: []string{"length", "a", "b"}, Rules: map[string]string{"length": "length 4", "a": "text 0..8000", "b": "text 0..2000"}}}, "request.fields", "the fields are 10004 bytes wide"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDialect(tc.cfg)
			var de *DialectError
			if !errors.As(err, &de) || de.Key != tc.key || !strings.Contains(de.Want, tc.want) {
				t.Fatalf("err %v, want key %s and %q", err, tc.key, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("not one line: %q", err)
			}
		})
	}
	// Under framing length a reply may be the code alone.
	d1 := mustDialect(t, DialectConfig{Framing: FramingLength, Request: delimitedNoLength, Reply: SpecConfig{Names: []string{"code"}}})
	if rep := d1.AppendReply(nil, nil, CodeInvalid, testAt); string(rep) != "0003400" {
		t.Errorf("code-only reply %q", rep)
	}
	// Under layout fixed, | is a byte like any other.
	d := mustDialect(t, DialectConfig{Layout: LayoutFixed, Request: SpecConfig{Names: []string{"length", "t", "c"},
		Rules: map[string]string{"length": "length 4", "t": "const A|B", "c": "class |-~ 1..3"}}})
	if _, err := d.Parse([]byte("0011A|B||~")); err != nil {
		t.Errorf("fixed with |: %v", err)
	}
}

// TestDialectString: spoolgate check prints the dialect in one line.
func TestDialectString(t *testing.T) {
	want := map[string]string{
		"euc-kr fixed ascii4 rest":     `euc-kr, fixed width (request 97 bytes, reply 31), framing length (4 ascii bytes counting the rest); request 6 fields, result the request's; reply kind,process_no,replied_at,code; codes ok 0000, invalid 9999, unavailable 9998; echo kind=0800`,
		"utf-8 delimited binary2 rest": `utf-8, delimited by "|", framing length (2 binary bytes counting the rest); request 8 fields, result the request's; reply type,process_no,replied_at,code; codes ok 200, invalid 400, unavailable 500; no echo`,
	}
	for _, td := range testDialects() {
		s := mustDialect(t, td.cfg).String()
		if strings.ContainsAny(s, "\n\r") {
			t.Errorf("%s: %q is not one line", td.name, s)
		}
		if w, ok := want[td.name]; ok && s != w {
			t.Errorf("%s:\n%s\nwant\n%s", td.name, s, w)
		}
	}
}

// TestLengthReaderLong: a message longer than the buffer is assembled, and
// a peer that stops in the middle of one ends in io.ErrUnexpectedEOF.
func TestLengthReaderLong(t *testing.T) {
	d := mustDialect(t, DialectConfig{Framing: FramingLength, Request: delimitedNoLength})
	body := bytes.Repeat([]byte("y"), 5000)
	in := append(append([]byte("5000"), body...), "0001z"...)
	got, err := readAll(d, in, 9999, 64, 7)
	if err != io.EOF || len(got) != 2 || got[0] != string(body) || got[1] != "z" {
		t.Fatalf("got %d messages, %v", len(got), err)
	}
	for _, cut := range []string{"50", "5000yyy", "0001"} {
		if _, err := readAll(d, []byte(cut), 9999, 64, 3); err != io.ErrUnexpectedEOF {
			t.Errorf("%q: %v", cut, err)
		}
	}
	if _, err := readAll(d, nil, 9999, 64, 3); err != io.EOF {
		t.Errorf("empty: %v", err)
	}
}

// TestReady: Ready is true exactly when the next ReadMessage needs no more
// input.
func TestReady(t *testing.T) {
	for _, td := range testDialects() {
		d := mustDialect(t, td.cfg)
		f := frameAs(d, build(d, d.request, sample(t, d, td, 1)), d.w.countsAll)
		for n := 0; n <= len(f); n++ {
			br := bufio.NewReaderSize(bytes.NewReader(f[:n]), 4096)
			br.Peek(n)
			r := d.NewReader(br, 9999)
			if got, want := r.Ready(), n == len(f); got != want {
				t.Errorf("%s: %d of %d bytes: Ready %v", td.name, n, len(f), got)
			}
		}
	}
	d := mustDialect(t, DialectConfig{Framing: FramingLength, Request: delimitedNoLength})
	br := bufio.NewReaderSize(strings.NewReader("00x1"), 16)
	br.Peek(4)
	if !d.NewReader(br, 9999).Ready() {
		t.Error("a bad header is not Ready")
	}
}

func TestDialectAllocs(t *testing.T) {
	td := testDialects()[3]
	d := mustDialect(t, td.cfg)
	msg := build(d, d.request, sample(t, d, td, 5))
	idx, _ := d.KeyIndexes([]string{"org_code", "process_no"})
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		m, err := d.Parse(msg)
		if err != nil {
			panic(err)
		}
		buf = m.AppendKey(buf[:0], idx, 0)
		_ = d.IsEcho(msg)
		buf = d.AppendReply(buf[:0], msg, CodeOK, testAt)
	}); n > 0 {
		t.Errorf("Parse, AppendKey, IsEcho, AppendReply allocate %v times", n)
	}
	in := strings.NewReader("")
	br := bufio.NewReader(in)
	r := d.NewReader(br, 9999)
	data := string(bytes.Repeat(frameAs(d, msg, false), 10))
	if n := testing.AllocsPerRun(100, func() {
		in.Reset(data)
		br.Reset(in)
		for {
			if _, err := r.ReadMessage(); err != nil {
				break
			}
		}
	}); n > 0 {
		t.Errorf("LengthReader allocates %v times per 10 messages", n)
	}
	rep := d.Unframe(d.AppendReply(nil, msg, CodeOK, testAt))
	if n := testing.AllocsPerRun(100, func() { _, _ = d.ParseReply(rep) }); n > 1 {
		t.Errorf("ParseReply allocates %v times", n)
	}
}

// TestAppendResultKey: the key fields of a spool line (without the length
// field, or with its correct one under framing lf) are those of the
// message the sender frames from it, in every layout and framing; the
// length field is not in a line without it, and a line cut short lacks
// its last fields.
func TestAppendResultKey(t *testing.T) {
	at := time.Date(2026, 12, 6, 9, 30, 0, 0, time.UTC)
	for _, td := range testDialects() {
		t.Run(td.name, func(t *testing.T) {
			d, err := NewDialect(td.cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := d.Result()
			framed, err := s.Encode(s.SampleValues(123, at)...)
			if err != nil {
				t.Fatal(err)
			}
			msg := d.Unframe(framed)
			line := msg // framing length: the line is the message
			if d.Framing() == FramingLF {
				line = msg[4:]
				if !d.w.fixed {
					line = msg[5:]
				}
			}
			for i := range s.Len() {
				want, wok := s.AppendRawKey(nil, msg, []int{i}, 0)
				got, ok := d.AppendResultKey(nil, line, []int{i}, 0)
				if s.fields[i].Rule.Kind == KindLength {
					if ok {
						t.Errorf("field %d (the length field) of a line without it: %q", i, got)
					}
					if got, ok := d.AppendResultKey(nil, msg, []int{i}, 0); !ok || string(got) != string(want) {
						t.Errorf("the length field of a line that carries it: %q %v, want %q", got, ok, want)
					}
					continue
				}
				if !wok || !ok || string(got) != string(want) {
					t.Errorf("field %d %s: %q %v, want %q %v", i, s.fields[i].Name, got, ok, want, wok)
				}
			}
			if d.Framing() == FramingLF {
				all := make([]int, 0, s.Len()-1)
				for i := 1; i < s.Len(); i++ {
					all = append(all, i)
				}
				want, _ := s.AppendRawKey(nil, msg, all, '|')
				if got, ok := d.AppendResultKey(nil, msg, all, '|'); !ok || string(got) != string(want) {
					t.Errorf("a line with its length field: %q %v, want %q", got, ok, want)
				}
			}
			if _, ok := d.AppendResultKey(nil, line[:1], []int{s.Len() - 1}, 0); ok && s.Len() > 2 {
				t.Errorf("a line cut short has its last field")
			}
		})
	}
}
