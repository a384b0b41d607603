package mask

import (
	"testing"

	"go.uber.org/goleak"

	"spoolgate/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRRN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"8501011234567", "*************"},
		{"850101-1234567", "******-*******"},
		{"rrn=8501012345678;", "rrn=*************;"},
		{"주민번호 850101-2345678 입니다", "주민번호 ******-******* 입니다"},
		{"a 990101-5234567 and 0001018234567 z", "a ******-******* and ************* z"},
		// 7th digit (the first after '-') 1 to 8 only.
		{"8501010234567", "8501010234567"},
		{"8501019234567", "8501019234567"},
		{"850101-0234567", "850101-0234567"},
		{"850101-9234567", "850101-9234567"},
		// Not inside longer digit runs, nor shorter ones.
		{"18501011234567", "18501011234567"},
		{"85010112345678", "85010112345678"},
		{"20261121093000123", "20261121093000123"},
		{"1850101-1234567", "1850101-1234567"},
		{"850101-12345678", "850101-12345678"},
		{"850101-123456", "850101-123456"},
		{"85010-1234567", "85010-1234567"},
		{"850101--1234567", "850101--1234567"},
		{"850101 1234567", "850101 1234567"},
		// Any other byte is a boundary, letters and '|' included.
		{"ID8501011234567X", "ID*************X"},
		{"|8501011234567|850101-1234567|", "|*************|******-*******|"},
		{"x-850101-1234567-y", "x-******-*******-y"},
		{"", ""},
		{"12", "12"},
		{"850101-", "850101-"},
		// Quoted or escaped text: the last digits of an escape before a
		// number are not part of it (strconv.Quote, the journal's \xHH).
		{`"\x018501011234567"`, `"\x01*************"`},
		{`\x858501011234567`, `\x85*************`},
		{`\x01850101-1234567`, `\x01******-*******`},
		{`\u00318501011234567`, `\u0031*************`},
		{`\u00a08501011234567`, `\u00a0*************`},
		{`\U000000318501011234567`, `\U00000031*************`},
		{`\x8501011234567`, `\x*************`},       // the run itself is a number
		{`\\x018501011234567`, `\\x018501011234567`}, // an escaped backslash: "x01..." is text, 15 digits
		{`x018501011234567`, `x018501011234567`},
	}
	for _, tt := range tests {
		b := []byte(tt.in)
		n := RRN(b)
		if string(b) != tt.want {
			t.Errorf("RRN(%q) = %q, want %q", tt.in, b, tt.want)
		}
		if (n > 0) != (tt.in != tt.want) || HasRRN([]byte(tt.in)) != (n > 0) {
			t.Errorf("RRN(%q): count %d, HasRRN %v", tt.in, n, HasRRN([]byte(tt.in)))
		}
		m := New(nil, nil, true)
		if got := m.Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q", tt.in, got)
		}
	}
	if got := New(nil, nil, false).Text("8501011234567"); got != "8501011234567" {
		t.Errorf("mask_rrn off masked %q", got)
	}
}

func TestFields(t *testing.T) {
	spec := protocol.DefaultRequestSpec()
	line := "0083|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|pay 8501011234567 x|"
	tests := []struct {
		name   string
		fields []string
		rrn    bool
		in     string
		want   string
	}{
		{"key and payload", []string{"key", "payload"}, false, line,
			"0083|REQ|000000123|20261121093000|ORG01|SV01|***********|*******************|"},
		{"rrn only", nil, true, line,
			"0083|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|pay ************* x|"},
		{"unknown field ignored", []string{"nosuch", "org_code"}, true, line,
			"0083|REQ|000000123|20261121093000|*****|SV01|CUST-000123|pay ************* x|"},
		// An invalid line (too many fields): the fields are split as Parse
		// splits them, the last one runs to the end.
		{"invalid, last field", []string{"filler"}, false, line + "x|y",
			"0083|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|pay 8501011234567 x|***"},
		// A sample cut inside the key field.
		{"cut short", []string{"key", "payload"}, true, "0083|REQ|000000123|20261121093000|ORG01|SV01|CUST-0",
			"0083|REQ|000000123|20261121093000|ORG01|SV01|******"},
		{"nothing", nil, false, line, line},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(spec, tt.fields, tt.rrn)
			if got := string(m.AppendLine([]byte("> "), []byte(tt.in))); got != "> "+tt.want {
				t.Errorf("AppendLine\n got %q\nwant %q", got, "> "+tt.want)
			}
			if got := m.LineString([]byte(tt.in)); got != tt.want {
				t.Errorf("LineString %q", got)
			}
			if m.Active() != (len(tt.fields) > 0 || tt.rrn) {
				t.Errorf("Active %v", m.Active())
			}
		})
	}
	var nilM *Masker
	if got := string(nilM.Line([]byte(line))); got != line || nilM.Active() || nilM.Text("8501011234567") != "8501011234567" {
		t.Errorf("nil Masker masked %q", got)
	}
	m := New(spec, []string{"key"}, true)
	if !m.Masks(spec.Index("key")) || m.Masks(spec.Index("org_code")) || !m.MasksRRN() {
		t.Error("Masks/MasksRRN")
	}
}

// TestAllocs: masking a line into a buffer with room, and text with
// nothing to mask, allocate nothing.
func TestAllocs(t *testing.T) {
	m := New(protocol.DefaultRequestSpec(), []string{"key", "payload"}, true)
	line := []byte("0083|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|pay 8501011234567 x|")
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(200, func() { buf = m.AppendLine(buf[:0], line) }); n != 0 {
		t.Errorf("AppendLine: %v allocations", n)
	}
	if n := testing.AllocsPerRun(200, func() { m.Text("no personal number here: 20261121093000") }); n != 0 {
		t.Errorf("Text: %v allocations", n)
	}
}

func BenchmarkAppendLine(b *testing.B) {
	m := New(protocol.DefaultRequestSpec(), []string{"key"}, true)
	line := []byte("0083|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|pay 8501011234567 x|")
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		buf = m.AppendLine(buf[:0], line)
	}
}

// TestFor: a Masker's rules for another spec mask the fields of the
// same names that spec has (process_no of a reply, not the request's
// key, which a reply lacks), and the resident number shapes as before.
func TestFor(t *testing.T) {
	d := protocol.DefaultDialect()
	m := New(d.Request(), []string{"process_no", "key"}, true).For(d.Reply())
	if !m.Masks(d.Reply().Index("process_no")) || !m.MasksRRN() {
		t.Fatalf("the reply's process_no or the resident numbers not masked")
	}
	// A field the first spec lacks is kept for the second: the result
	// spec has no code field, the reply spec has.
	if rc := d.Reply().Index("code"); rc < 0 || d.Result().Index("code") >= 0 {
		t.Fatalf("the test's premise: code in the reply spec only")
	} else if !New(d.Result(), []string{"code"}, false).For(d.Reply()).Masks(rc) {
		t.Error("a log.mask field of the reply spec only is not masked in replies")
	}
	if New(d.Request(), nil, false).For(d.Reply()).Active() {
		t.Error("nothing masked gives a reply masker that masks")
	}
	var none *Masker
	if none.For(d.Reply()) != nil {
		t.Error("a nil Masker's rules")
	}
}
