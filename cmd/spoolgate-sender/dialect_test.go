package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// testdataProps reads conf/testdata/NAME.properties (one key = value a
// line, # comments) into a map.
func testdataProps(t *testing.T, name string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "conf", "testdata", name+".properties"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	props := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is no key = value", name, line)
		}
		props[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return props
}

// dialectOf loads props (the protocol.* keys) as the daemons do and
// returns the dialect they make.
func dialectOf(t *testing.T, props map[string]string) *protocol.Dialect {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dialect.properties")
	writeProps(t, path, props)
	c, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c.Protocol.Dialect
}

// wire returns s, UTF-8, in d's charset.
func wire(t *testing.T, d *protocol.Dialect, s string) string {
	t.Helper()
	b, err := d.FromUTF8(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dialectLine returns a spool line of d's result spec (without its length
// field or header): the spec's sample values for seq, the fields named in
// set replaced by their value (UTF-8, converted to the wire charset),
// joined by the separator or padded to their widths.
func dialectLine(t *testing.T, d *protocol.Dialect, seq int, set map[string]string) string {
	t.Helper()
	vals := d.Result().SampleValues(seq, time.Date(2026, 11, 21, 9, 30, 0, 0, time.Local))
	var fields []protocol.Field
	for _, f := range d.Result().Fields() {
		if f.Rule.Kind != protocol.KindLength {
			fields = append(fields, f)
		}
	}
	fixed := d.Config().Layout == protocol.LayoutFixed
	var b strings.Builder
	for i, f := range fields {
		v := vals[i]
		if u, ok := set[f.Name]; ok {
			v = wire(t, d, u)
		}
		if i > 0 && !fixed {
			b.WriteString(d.Config().Separator)
		}
		b.WriteString(v)
		if fixed {
			b.WriteString(strings.Repeat(" ", max(0, f.Rule.Bytes()-len(v))))
		}
	}
	return b.String()
}

// onWire returns the message the remote reads for a spool line: the line
// itself behind a length header, else with its length field first.
func onWire(d *protocol.Dialect, line string) string {
	if d.Framing() == protocol.FramingLength {
		return line
	}
	if d.Config().Layout == protocol.LayoutFixed {
		return fmt.Sprintf("%04d%s", len(line)+5, line)
	}
	return fmt.Sprintf("%04d%s%s", len(line)+6, d.Config().Separator, line)
}

// codeReply returns the wire bytes of d's reply to msg with its code field
// (the last) holding code, wire bytes as wide as that field: a reply that
// is framed right but carries no code of the dialect's.
func codeReply(t *testing.T, d *protocol.Dialect, msg []byte, code string) []byte {
	t.Helper()
	rep := d.Unframe(d.AppendReply(nil, msg, protocol.CodeOK, time.Now()))
	fields := d.Reply().Fields()
	if fields[len(fields)-1].Name != "code" || fields[len(fields)-1].Rule.Bytes() != len(code) {
		t.Fatalf("code %q does not fit the last reply field %+v", code, fields[len(fields)-1])
	}
	rep = append(append([]byte(nil), rep[:len(rep)-len(code)]...), code...)
	out, err := d.Frame(nil, rep)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// oneOfWidth returns wire bytes of text, a Hangul word cut or padded with
// X to n bytes: what no code rule admits.
func oneOfWidth(t *testing.T, d *protocol.Dialect, n int) string {
	t.Helper()
	for _, s := range []string{"오류", "오", "오X", "오XX"} {
		if w := wire(t, d, s); len(w) == n {
			return w
		}
	}
	t.Fatalf("no Hangul word of %d bytes in %s", n, d.Charset())
	return ""
}

// TestDialects: the sender binary speaks each dialect of docs/PROTOCOL.md
// §1's worked examples to a remote that speaks it too (e2e.Remote with
// the dialect the same config makes): EUC-KR fixed width behind a 4-digit
// ASCII header counting the rest (with the partner's codes 0000/9999),
// UTF-8 delimited behind a 2-byte binary header, EUC-KR delimited with the
// default framing, and the default dialect with the codes 0000/9999; one
// at a time (sender.window 1) and pipelined (4). Each line reaches the
// remote byte for byte (Korean text in the wire charset); a line the
// remote answers invalid, one invalid before sending (a Hangul syllable in
// its process_no), a reply whose code is Hangul text and one with a code
// none of the dialect's go to failed_dir with the wire bytes and a UTF-8
// .reason that shows the text decoded.
func TestDialects(t *testing.T) {
	for _, tc := range []struct {
		name, props string
		window      string
	}{
		{"euc-kr fixed, ascii header", "good_dialect_euckr_fixed", "4"},
		{"utf-8 delimited, binary header", "good_dialect_binary", "1"},
		{"euc-kr delimited, lf", "good_dialect_euckr_delimited", "4"},
		{"codes 0000 9999", "good_dialect_codes", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := testdataProps(t, tc.props)
			d := dialectOf(t, props)
			codeWidth := d.Reply().Fields()[len(d.Reply().Fields())-1].Rule.Bytes()
			hangul := oneOfWidth(t, d, codeWidth)
			unknown := strings.Repeat("0", codeWidth-1) + "1"
			r := e2e.StartRemoteWith(t, e2e.RemoteOptions{Dialect: d}, func(m e2e.Msg) e2e.Action {
				switch m.ProcessNo() {
				case "000000005":
					return e2e.Answer(protocol.CodeInvalid)
				case "000000020":
					return e2e.Action{Garbage: codeReply(t, d, m.Line, hangul)}
				case "000000021":
					return e2e.Action{Garbage: codeReply(t, d, m.Line, unknown)}
				}
				return e2e.Answer(protocol.CodeOK)
			})
			props["sender.window"] = tc.window
			e := newEnv(t, r.Addr(), props)

			text := map[string]string{"payload": "잔액 조회 결과 정상", "name": "홍길동"}
			var lines, want []string
			for seq := 1; seq <= 12; seq++ {
				l := dialectLine(t, d, seq, text)
				if seq == 8 { // invalid here: a Hangul syllable in process_no
					l = dialectLine(t, d, seq, map[string]string{"process_no": strings.Repeat("1", 9-len(wire(t, d, "가"))) + "가"})
				} else if seq != 5 {
					want = append(want, onWire(d, l))
				}
				lines = append(lines, l)
			}
			e2e.WriteFile(t, filepath.Join(e.spool, "mixed.txt"), strings.Join(lines, "\n")+"\n")
			e2e.WriteFile(t, filepath.Join(e.spool, "hangul-code.txt"), dialectLine(t, d, 20, text)+"\n")
			e2e.WriteFile(t, filepath.Join(e.spool, "unknown-code.txt"), dialectLine(t, d, 21, text)+"\n")
			e.startSender(t)
			e2e.WaitFor(t, 30*time.Second, "every file done", func() bool {
				return count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0 && count(t, e.failed) == 8
			})

			// Sorted: at window 1 the lines of a file go over lanes and
			// complete in any order (sender.line_order parallel).
			if got := sorted(r.Delivered()); strings.Join(got, "\n") != strings.Join(sorted(want), "\n") {
				t.Errorf("the remote stored\n%q\nwant\n%q", got, want)
			}
			for name, content := range map[string]string{
				"mixed.txt.line-5": lines[4] + "\n", "mixed.txt.line-8": lines[7] + "\n",
				"hangul-code.txt": dialectLine(t, d, 20, text) + "\n", "unknown-code.txt": dialectLine(t, d, 21, text) + "\n",
			} {
				if b, err := os.ReadFile(filepath.Join(e.failed, name)); err != nil || string(b) != content {
					t.Errorf("failed_dir/%s = %q %v, want the wire bytes %q", name, b, err, content)
				}
			}
			for name, wants := range map[string][]string{
				"mixed.txt.line-5": {"code: 400", "reason: rejected by the remote (400)"},
				"mixed.txt.line-8": {"attempts: 0", "reason: invalid, not sent: process_no: digits 9: \"" + strings.Repeat("1", 9-len(wire(t, d, "가"))) + "가\""},
				"hangul-code.txt":  {"attempts: 3", "reason: bad_reply: parse reply \"", d.Text([]byte(hangul)) + "\"", "(after 3 attempts)"},
				"unknown-code.txt": {"attempts: 3", "code: -", "reason: bad_reply: unknown code " + unknown + " (after 3 attempts)"},
			} {
				b, err := os.ReadFile(filepath.Join(e.failed, name+".reason"))
				if err != nil {
					t.Fatal(err)
				}
				if !utf8.Valid(b) {
					t.Errorf("%s.reason is not UTF-8: %q", name, b)
				}
				for _, w := range wants {
					if !strings.Contains(string(b), w) {
						t.Errorf("%s.reason does not say %q:\n%s", name, w, b)
					}
				}
			}
		})
	}
}

// sorted returns a sorted copy of lines.
func sorted(lines []string) []string {
	out := slices.Clone(lines)
	slices.Sort(out)
	return out
}
