package sender

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// eucFixed is docs/PROTOCOL.md §1's example 2: EUC-KR, fixed width,
// behind a 4-digit ASCII header counting the rest, codes 0000/9999/9998,
// and a spool line of it (97 bytes) with process_no n.
func eucFixed(t testing.TB) (*protocol.Dialect, func(n int) []byte) {
	t.Helper()
	d, err := protocol.NewDialect(protocol.DialectConfig{
		Charset: protocol.CharsetEUCKR, Layout: protocol.LayoutFixed, Framing: protocol.FramingLength,
		Request: protocol.SpecConfig{
			Names: []string{"kind", "process_no", "sent_at", "org_code", "name", "payload"},
			Rules: map[string]string{"kind": "digits 4", "process_no": "digits 9", "sent_at": "time yyyyMMddHHmmss",
				"org_code": "class A-Z0-9 2..10", "name": "text 0..20", "payload": "text 0..40"},
		},
		Reply: protocol.SpecConfig{Names: []string{"kind", "process_no", "replied_at", "code"},
			Rules: map[string]string{"kind": "const 0210", "code": "digits 4"}},
		CodeOK: "0000", CodeInvalid: "9999", CodeUnavailable: "9998",
	})
	if err != nil {
		t.Fatal(err)
	}
	name, err := d.FromUTF8("홍길동")
	if err != nil {
		t.Fatal(err)
	}
	return d, func(n int) []byte {
		l := fmt.Sprintf("0200%09d20261121093000%-10s%s%s", n, "ORG01", name, strings.Repeat(" ", 20-len(name)))
		return []byte(l + strings.Repeat(" ", 40))
	}
}

// lineDialects are the default dialect and EUC-KR fixed width, each with
// a valid spool line.
func lineDialects(tb testing.TB) []struct {
	name string
	d    *protocol.Dialect
	line []byte
} {
	euc, eucLine := eucFixed(tb)
	return []struct {
		name string
		d    *protocol.Dialect
		line []byte
	}{{"default", protocol.DefaultDialect(), []byte(body(123))}, {"euc-kr-fixed", euc, eucLine(123)}}
}

// lineWork returns the protocol work of one line on the send window's
// path in d: frame it once, copy its frame into the write, read its reply
// and match it to the process_no of the frame.
func lineWork(tb testing.TB, d *protocol.Dialect, line []byte) func() {
	tb.Helper()
	s := &Sender{d: d}
	frame, err := s.frame(nil, line)
	if err != nil {
		tb.Fatal(err)
	}
	reply := d.Unframe(d.AppendReply(nil, d.Unframe(frame), protocol.CodeOK, time.Now()))
	buf, out := make([]byte, 0, 256), make([]byte, 0, 256)
	return func() {
		f, _ := s.frame(buf[:0], line)
		out = append(out[:0], f...)
		if r, _, reason := s.replyResult(reply, s.expect(f)); r != resultOK {
			tb.Fatal(reason)
		}
	}
}

// TestLineAllocs: lineWork allocates no more than the same work before
// the dialect: the reply's process_no string, nothing else, in the
// default dialect and in EUC-KR fixed width.
func TestLineAllocs(t *testing.T) {
	for _, tc := range lineDialects(t) {
		t.Run(tc.name, func(t *testing.T) {
			if allocs := testing.AllocsPerRun(200, lineWork(t, tc.d, tc.line)); allocs > 1 {
				t.Fatalf("%v allocations per line, want at most 1 (the reply's process_no)", allocs)
			}
		})
	}
}

// TestRepliesByOrder: with no process_no in the reply spec, replies are
// matched to lines by their order only: a file of 20 lines is delivered
// one at a time and through a window of 4.
func TestRepliesByOrder(t *testing.T) {
	d, err := protocol.NewDialect(protocol.DialectConfig{Reply: protocol.SpecConfig{Names: []string{"length", "type", "replied_at", "code"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, window := range []int{1, 4} {
		t.Run(fmt.Sprint("window ", window), func(t *testing.T) {
			r := e2e.StartRemoteWith(t, e2e.RemoteOptions{Dialect: d}, nil)
			c := testConf(t, r.Addr())
			c.Window = conf.Window(window)
			runSender(t, c, func(o *Options) { o.Dialect = d })
			var lines []string
			for i := range 20 {
				lines = append(lines, body(i))
			}
			drop(t, c.SpoolDir, "f.txt", strings.Join(lines, "\n")+"\n", time.Time{})
			e2e.WaitFor(t, 20*time.Second, "20 lines delivered", func() bool { return len(r.Delivered()) == 20 })
			e2e.WaitFor(t, 20*time.Second, "the file done", func() bool { return len(visible(t, c.SpoolDir)) == 0 })
			if n := len(listDir(t, c.FailedDir)); n != 0 {
				t.Fatalf("%d files in failed_dir", n)
			}
		})
	}
}

// BenchmarkLine is lineWork in the default dialect and in EUC-KR fixed
// width.
func BenchmarkLine(b *testing.B) {
	for _, bc := range lineDialects(b) {
		b.Run(bc.name, func(b *testing.B) {
			work := lineWork(b, bc.d, bc.line)
			b.ReportAllocs()
			for b.Loop() {
				work()
			}
		})
	}
}
