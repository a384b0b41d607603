package protocol

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const example = "0078|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|hello world payload|"

// msg builds a default-spec message from the fields after the length field,
// with a correct length field, without its LF.
func msg(fields ...string) string {
	body := strings.Join(fields, "|")
	return fmt.Sprintf("%04d|%s", len(body)+6, body)
}

// with returns the example's fields with field i (1-based after length) set to v.
func with(i int, v string) string {
	f := []string{"REQ", "000000123", "20261121093000", "ORG01", "SV01", "CUST-000123", "hello world payload", ""}
	f[i-1] = v
	return msg(f...)
}

func TestParseDefaultSpec(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		reason string // "" = accepted
	}{
		{"spec example", example, ""},
		{"length wrong", "0077" + example[4:], "length: equals message length"},
		{"length not digits", "00a8" + example[4:], "length: length 4"},
		{"length 3 digits", msg("REQ")[1:], "message: field count"},
		{"type", with(1, "REX"), "type: const REQ"},
		{"type lower", with(1, "req"), "type: const REQ"},
		{"process_no 8", with(2, "00000012"), "process_no: digits 9"},
		{"process_no 10", with(2, "0000001234"), "process_no: digits 9"},
		{"process_no letter", with(2, "00000012a"), "process_no: digits 9"},
		{"sent_at ok", with(3, "20261231235959"), ""},
		{"leap day 2024", with(3, "20240229000000"), ""},
		{"leap day 2000", with(3, "20000229000000"), ""},
		{"no leap day 2026", with(3, "20260229000000"), "sent_at: time yyyyMMddHHmmss"},
		{"no leap day 1900", with(3, "19000229000000"), "sent_at: time yyyyMMddHHmmss"},
		{"feb 30", with(3, "20240230000000"), "sent_at: time yyyyMMddHHmmss"},
		{"apr 31", with(3, "20260431000000"), "sent_at: time yyyyMMddHHmmss"},
		{"hour 24", with(3, "20261121240000"), "sent_at: time yyyyMMddHHmmss"},
		{"minute 60", with(3, "20261121236000"), "sent_at: time yyyyMMddHHmmss"},
		{"second 60", with(3, "20261121235960"), "sent_at: time yyyyMMddHHmmss"},
		{"month 0", with(3, "20260021000000"), "sent_at: time yyyyMMddHHmmss"},
		{"month 13", with(3, "20261321000000"), "sent_at: time yyyyMMddHHmmss"},
		{"day 0", with(3, "20261100000000"), "sent_at: time yyyyMMddHHmmss"},
		{"sent_at 13 digits", with(3, "2026112109300"), "sent_at: time yyyyMMddHHmmss"},
		{"org min 2", with(4, "AB"), ""},
		{"org max 10", with(4, "ABCDE12345"), ""},
		{"org 1", with(4, "A"), "org_code: class A-Z0-9 2..10"},
		{"org 11", with(4, "ABCDE123456"), "org_code: class A-Z0-9 2..10"},
		{"org lower", with(4, "org01"), "org_code: class A-Z0-9 2..10"},
		{"service 3", with(5, "SV0"), "service_code: class A-Z0-9 4..4"},
		{"service 5", with(5, "SV001"), "service_code: class A-Z0-9 4..4"},
		{"key 1", with(6, "k"), ""},
		{"key 40", with(6, strings.Repeat("k", 40)), ""},
		{"key 0", with(6, ""), "key: class A-Za-z0-9_.- 1..40"},
		{"key 41", with(6, strings.Repeat("k", 41)), "key: class A-Za-z0-9_.- 1..40"},
		{"key space", with(6, "a b"), "key: class A-Za-z0-9_.- 1..40"},
		{"key all class", with(6, "aZ09_.-"), ""},
		{"payload empty", with(7, ""), ""},
		{"payload 8000", with(7, strings.Repeat("x", 8000)), ""},
		{"payload 8001", with(7, strings.Repeat("x", 8001)), "payload: text 0..8000"},
		{"payload multibyte 2666 runes 7998 bytes", with(7, strings.Repeat("한", 2666)), ""},
		{"payload multibyte 2667 runes 8001 bytes", with(7, strings.Repeat("한", 2667)), "payload: text 0..8000"},
		{"payload invalid utf8", with(7, "ab\xffcd"), "payload: text 0..8000"},
		{"payload truncated utf8", with(7, "\xed\x95"), "payload: text 0..8000"},
		{"payload NUL", with(7, "a\x00b"), "payload: text 0..8000"},
		{"payload pipe", with(7, "a|b"), "message: field count"},
		{"payload CR", with(7, "a\rb"), "message: no CR"},
		{"filler 64", with(8, strings.Repeat(" ", 64)), ""},
		{"filler 65", with(8, strings.Repeat(" ", 65)), "filler: text 0..64"},
		{"crlf", example + "\r", "message: no CR"},
		{"empty", "", "message: field count"},
		{"too few fields", "0010|REQ|", "message: field count"},
		{"too many fields", msg("REQ", "000000123", "20261121093000", "ORG01", "SV01", "CUST-000123", "p", "", "x"), "message: field count"},
		{"too long", strings.Repeat("x", 9999), "message: too long"},
	}
	spec := DefaultRequestSpec()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := spec.Parse([]byte(tt.line))
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Parse(%q) = %v, want ok", tt.line, err)
				}
				if string(m.Line()) != tt.line {
					t.Fatalf("Line() = %q", m.Line())
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) err = %v, want *ParseError %q", tt.line, err, tt.reason)
			}
			if pe.Reason() != tt.reason {
				t.Fatalf("Reason() = %q, want %q (err %v)", pe.Reason(), tt.reason, err)
			}
			if pe.Code() != CodeInvalid {
				t.Fatalf("Code() = %d", pe.Code())
			}
		})
	}
}

func TestFields(t *testing.T) {
	m, err := DefaultRequestSpec().Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"length": "0078", "type": "REQ", "process_no": "000000123", "sent_at": "20261121093000",
		"org_code": "ORG01", "service_code": "SV01", "key": "CUST-000123", "payload": "hello world payload", "filler": ""}
	for k, v := range want {
		if got := string(m.Field(k)); got != v {
			t.Errorf("Field(%s) = %q, want %q", k, got, v)
		}
	}
	if m.Field("nope") != nil || m.FieldAt(9) != nil || m.FieldAt(-1) != nil {
		t.Error("missing field is not nil")
	}
	if len(example)+1 != 78 {
		t.Fatalf("example is %d bytes with LF, docs/PROTOCOL.md §1 says 78", len(example)+1)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	spec := DefaultRequestSpec()
	out, err := spec.Encode("REQ", "000000123", "20261121093000", "ORG01", "SV01", "CUST-000123", "hello world payload", "")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != example+"\n" {
		t.Fatalf("Encode = %q, want %q", out, example+"\n")
	}
	if _, err := spec.Encode("REQ"); !errors.Is(err, ErrEncode) {
		t.Fatalf("short Encode err = %v", err)
	}
	_, err = spec.Encode("REQ", "1", "20261121093000", "ORG01", "SV01", "K", "", "")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Field != "process_no" {
		t.Fatalf("bad Encode err = %v", err)
	}
	d := DefaultDialect()
	if _, err := d.Frame(nil, make([]byte, 9999)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("Frame 10000 bytes err = %v", err)
	}
	if out, err := d.Frame(nil, make([]byte, 9998)); err != nil || len(out) != 9999 {
		t.Fatalf("Frame 9999 bytes = %d bytes, %v", len(out), err)
	}
}

func TestProcessNo(t *testing.T) {
	spec := DefaultRequestSpec()
	for line, want := range map[string]string{
		example:                "000000123",
		"0010|REQ|123456789":   "123456789",
		"0010|REQ|12345678|x":  "000000000",
		"garbage":              "000000000",
		"":                     "000000000",
		"x|y|987654321|z|\xff": "987654321",
		"x|y|98765432a|z":      "000000000",
	} {
		if got := string(spec.ProcessNo([]byte(line))); got != want {
			t.Errorf("ProcessNo(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestReplies: the default dialect's replies are 38 bytes and read back
// (the refused ones are TestDefaultDialect's).
func TestReplies(t *testing.T) {
	d := DefaultDialect()
	at := time.Date(2026, 11, 21, 9, 30, 1, 0, time.Local)
	for _, code := range []int{CodeOK, CodeInvalid, CodeUnavailable} {
		b := d.AppendReply(nil, []byte(example), code, at)
		if len(b) != 38 {
			t.Fatalf("reply %q is %d bytes", b, len(b))
		}
		r, err := d.ParseReply(b)
		if err != nil {
			t.Fatal(err)
		}
		if r.Code != code || r.ProcessNo != "000000123" || !r.At.Equal(at) {
			t.Fatalf("ParseReply = %+v", r)
		}
	}
	if got := string(d.AppendReply(nil, []byte(example), CodeOK, at)); got != "0038|RES|000000123|20261121093001|200\n" {
		t.Fatalf("reply = %q", got)
	}
}

func TestNewSpec(t *testing.T) {
	good := map[string]string{"length": "length 4", "t": "const A B", "d": "time yyyy-MM-dd", "c": "class -a-c_ 0..3", "n": "digits 2"}
	s, err := NewSpec([]string{"length", "t", "d", "c", "n"}, good)
	if err != nil {
		t.Fatal(err)
	}
	for line, ok := range map[string]bool{
		"0027|A B|2024-02-29|a-_|12": true, "0025|A B|2023-02-29|a|12": false, "0024|A B|2024-02-29||12": true,
		"0025|A B|2024-02-29|d|12": false, "0024|A B|2024-02-29|a|1": false,
	} {
		_, err := s.Parse([]byte(line))
		if (err == nil) != ok {
			t.Errorf("custom Parse(%q) = %v, want ok=%v", line, err, ok)
		}
	}
	bad := []struct {
		names []string
		rules map[string]string
		field string
	}{
		{[]string{"length"}, good, ""},
		{[]string{"t", "length"}, good, "t"},
		{[]string{"length", "length"}, good, ""},
		{[]string{"length", "x"}, good, "x"},
		{[]string{"length", "x"}, map[string]string{"length": "length 4", "x": "digits"}, "x"},
		{[]string{"length", "x"}, map[string]string{"length": "length 4", "x": "regex .*"}, "x"},
		{[]string{"length", "x"}, map[string]string{"length": "length 4", "x": "class a-z 5..2"}, "x"},
		{[]string{"length", "x"}, map[string]string{"length": "length 4", "x": "class a|z 1..2"}, "x"},
		{[]string{"length", "x"}, map[string]string{"length": "length 4", "x": "text 0..10000"}, "x"},
		{[]string{"length", "x"}, map[string]string{"length": "length 4", "x": "time ddHH"}, "x"},
		{[]string{"length", "x"}, map[string]string{"length": "length 4", "x": "time yyyyXX"}, "x"},
		{[]string{"length", "x"}, map[string]string{"length": "length 4", "x": "const a|b"}, "x"},
		{[]string{"length", "x"}, map[string]string{"length": "length 5", "x": "const a"}, "length"},
		{[]string{"length", "x"}, map[string]string{"length": "length 4", "x": "length 4"}, "x"},
	}
	for _, b := range bad {
		_, err := NewSpec(b.names, b.rules)
		var re *RuleError
		if !errors.As(err, &re) || re.Field != b.field {
			t.Errorf("NewSpec(%v, %v) = %v, want RuleError on %q", b.names, b.rules, err, b.field)
		}
	}
}

func TestReader(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name string
		in   string
		max  int
		want []string
		end  error
	}{
		{"one", "a\n", 100, []string{"a"}, io.EOF},
		{"pipelined", "a\nbb\nccc\n", 100, []string{"a", "bb", "ccc"}, io.EOF},
		{"eof without lf", "a\nbb", 100, []string{"a", "bb"}, io.EOF},
		{"empty line", "\n\n", 100, []string{"", ""}, io.EOF},
		{"empty input", "", 100, nil, io.EOF},
		{"crlf kept", "a\r\n", 100, []string{"a\r"}, io.EOF},
		{"exactly max", "abcd\n", 5, []string{"abcd"}, io.EOF},
		{"over max", "abcde\nx\n", 5, nil, ErrTooLong},
		{"over max at eof", "abcde", 5, nil, ErrTooLong},
		{"longer than buffer", long + "\nz\n", 9999, []string{long, "z"}, io.EOF},
		{"longer than buffer at eof", long, 9999, []string{long}, io.EOF},
		{"longer than max and buffer", long + "\n", 4999, nil, ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bufio.NewReaderSize(strings.NewReader(tt.in), 64), tt.max)
			var got []string
			for {
				line, err := r.ReadMessage()
				if err != nil {
					if !errors.Is(err, tt.end) {
						t.Fatalf("end err = %v, want %v", err, tt.end)
					}
					break
				}
				got = append(got, string(line))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") || len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// stallReader hands out data in chunks of at most chunk bytes and then
// blocks, as a peer that stops writing without closing, until done closes.
type stallReader struct {
	data  []byte
	chunk int
	done  chan struct{}
}

func (s *stallReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		<-s.done
		return 0, io.EOF
	}
	n := min(len(p), s.chunk, len(s.data))
	copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

// TestReaderTooLongWithoutLF: once max bytes without a LF have arrived the
// message cannot fit (its LF or EOF makes it longer), so ErrTooLong comes
// at once, with the start of the message, whatever the buffer size, the
// limit and how the bytes arrive; the peer need not send more or close.
func TestReaderTooLongWithoutLF(t *testing.T) {
	for _, tc := range []struct {
		max, n, bufSize, chunk int
	}{
		{200, 200, 4096, 4096},
		{200, 201, 4096, 1},
		{200, 5000, 4096, 1000},
		{1000, 1000, 4096, 100},
		{4096, 4096, 4096, 4096},
		{4097, 4097, 4096, 4096},
		{5000, 5000, 4096, 1460},
		{9999, 9999, 4096, 65536},
		{9999, 10000, 4096, 65536},
		{9999, 12287, 4096, 1460},
		{9999, 12287, 16, 7},
	} {
		t.Run(fmt.Sprintf("max=%d/n=%d/buf=%d/chunk=%d", tc.max, tc.n, tc.bufSize, tc.chunk), func(t *testing.T) {
			data := []byte(strings.Repeat("x", tc.n))
			copy(data, example)
			sr := &stallReader{data: data, chunk: tc.chunk, done: make(chan struct{})}
			r := NewReader(bufio.NewReaderSize(sr, tc.bufSize), tc.max)
			type result struct {
				line []byte
				err  error
			}
			got := make(chan result, 1)
			go func() {
				line, err := r.ReadMessage()
				got <- result{append([]byte(nil), line...), err}
			}()
			select {
			case res := <-got:
				if !errors.Is(res.err, ErrTooLong) {
					t.Fatalf("err %v, want ErrTooLong", res.err)
				}
				if want := example[:min(len(example), tc.n, tc.bufSize, tc.chunk)]; !strings.HasPrefix(string(res.line), want) {
					t.Fatalf("start %.40q, want it to begin with %.40q", res.line, want)
				}
			case <-time.After(10 * time.Second):
				close(sr.done)
				<-got
				t.Fatal("no ErrTooLong while the peer waits")
			}
			close(sr.done)
		})
	}
	// One byte under the limit at EOF is a whole message (its LF counted).
	r := NewReader(bufio.NewReaderSize(strings.NewReader(strings.Repeat("y", 199)), 16), 200)
	if line, err := r.ReadMessage(); err != nil || len(line) != 199 {
		t.Fatalf("199 bytes at EOF, max 200: %d bytes, %v", len(line), err)
	}
}

func TestParseReplyAllocs(t *testing.T) {
	d := DefaultDialect()
	line := d.AppendReply(nil, []byte(example), CodeOK, time.Now())
	// The sender parses one reply per message: only the process_no string.
	if n := testing.AllocsPerRun(100, func() { _, _ = d.ParseReply(line) }); n > 1 {
		t.Fatalf("ParseReply allocates %v times", n)
	}
}

func TestParseAllocs(t *testing.T) {
	spec, line := DefaultRequestSpec(), []byte(example)
	if n := testing.AllocsPerRun(100, func() { _, _ = spec.Parse(line) }); n > 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
	in := strings.NewReader("")
	br := bufio.NewReader(in)
	r := NewReader(br, MaxMessageBytes)
	data := strings.Repeat(example+"\n", 10)
	if n := testing.AllocsPerRun(100, func() {
		in.Reset(data)
		br.Reset(in)
		for {
			if _, err := r.ReadMessage(); err != nil {
				break
			}
		}
	}); n > 0 {
		t.Fatalf("ReadMessage allocates %v times per 10 messages", n)
	}
}
