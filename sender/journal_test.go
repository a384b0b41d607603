package sender

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/internal/journal"
	"spoolgate/internal/mask"
	"spoolgate/protocol"
)

// openTestJournal opens a sender journal in a new directory, keyed as the
// sender's main keys it (org_code, process_no), log.mask naming masked;
// it is closed at cleanup unless the test closes it first.
func openTestJournal(t *testing.T, masked ...string) (*journal.Journal, []string, string) {
	t.Helper()
	dir := t.TempDir()
	keys := journal.KeyFields(conf.Default().Receiver.DedupKey, protocol.DefaultDialect().Result().Names())
	jr, err := journal.New(journal.Options{Dir: dir, Daemon: "sender", Keys: keys, Masked: masked, MaskRRN: true,
		FlushEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jr.Close() })
	return jr, keys, dir
}

// journalLines reads the journal lines of dir, each as its event and its
// name=value attributes.
func journalLines(t *testing.T, dir string) []map[string]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "sender-*.log"))
	var out []map[string]string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if l == "" {
				continue
			}
			cols := strings.Split(l, "\t")
			m := map[string]string{"daemon": cols[1], "event": cols[2]}
			for _, c := range cols[3:] {
				k, v, _ := strings.Cut(c, "=")
				m[k] = v
			}
			out = append(out, m)
		}
	}
	return out
}

// TestJournalSender: the sender journals each line's fate as it ends:
// delivered with the remote and its 200, a line the remote rejects (the
// only line of its file: the file goes whole) and a line invalid before
// sending with their reasons and the file in failed_dir, a line whose
// retries run out and the line after it (never sent) with the lines-N-M
// file; attempts, latency and the key fields as the journal's columns.
// The invalid line's resident number and the key's log.mask field are
// masked in its reason, .reason file and journal line; the spool files in
// failed_dir keep every byte.
func TestJournalSender(t *testing.T) {
	const rrn = "8501012345678"
	r := startRemote(t, func(r *remote) {
		r.answer = func(line []byte) int {
			switch processNo(string(line)) {
			case "000000002":
				return protocol.CodeInvalid
			case "000000003":
				return protocol.CodeUnavailable
			}
			return protocol.CodeOK
		}
	})
	jr, keys, jdir := openTestJournal(t, "key")
	c := testConf(t, r.addr())
	c.Retries = 1
	c.LineOrder = conf.LineOrderStrict // c.txt's line 3 waits for line 2 (TestJournalLanes has lanes)
	d := protocol.DefaultDialect()
	_, stop := runSender(t, c, func(o *Options) {
		o.Journal, o.JournalKeys, o.Mask = jr, keys, mask.New(d.Result(), []string{"key"}, true)
	})
	old := time.Now().Add(-time.Minute)
	invalid := "REQ|000000009|" + rrn + "|ORG01|SV01|KEY-9|payload|"
	drop(t, c.SpoolDir, "a.txt", body(1)+"\n", old)
	drop(t, c.SpoolDir, "b.txt", body(2)+"\n", old.Add(time.Second))
	drop(t, c.SpoolDir, "c.txt", body(4)+"\n"+body(3)+"\n"+body(5)+"\n", old.Add(2*time.Second))
	drop(t, c.SpoolDir, "d.txt", invalid+"\n", old.Add(3*time.Second))
	e2e.WaitFor(t, 10*time.Second, "every file handled", func() bool {
		return len(visible(t, c.SpoolDir)) == 0 && len(visible(t, c.FailedDir)) == 6
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := jr.Close(); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]string{} // by process_no
	for _, l := range journalLines(t, jdir) {
		got[l["process_no"]] = l
	}
	for _, w := range []struct {
		pno                                           string
		event, code, file, line, attempts, to, reason string
		remote                                        bool
	}{
		{"000000001", "delivered", "200", "a.txt", "1", "1", "", "", true},
		{"000000002", "failed", "400", "b.txt", "1", "1", "b.txt", "rejected by the remote (400)", true},
		{"000000004", "delivered", "200", "c.txt", "1", "1", "", "", true},
		{"000000003", "failed", "500", "c.txt", "2", "2", "c.txt.lines-2-3", "remote unavailable (500) (after 2 attempts)", true},
		{"000000005", "failed", "", "c.txt", "3", "", "c.txt.lines-2-3", "not sent: line 2 before it failed: remote unavailable (500) (after 2 attempts)", false},
		{"000000009", "failed", "", "d.txt", "1", "", "d.txt", "invalid, not sent: sent_at: time yyyyMMddHHmmss: " + `"*************"`, false},
	} {
		l := got[w.pno]
		if l == nil {
			t.Errorf("process_no %s: not journaled: %v", w.pno, got)
			continue
		}
		if l["daemon"] != "sender" || l["event"] != w.event || l["code"] != w.code || l["file"] != w.file || l["line"] != w.line ||
			l["attempts"] != w.attempts || l["to"] != w.to || l["org_code"] != "ORG01" || (l["remote"] == r.addr()) != w.remote {
			t.Errorf("process_no %s: %v, want %+v", w.pno, l, w)
		}
		if !strings.HasPrefix(l["reason"], w.reason) {
			t.Errorf("process_no %s: reason %q, want %q", w.pno, l["reason"], w.reason)
		}
		if (w.attempts != "") != strings.HasSuffix(l["latency"], "ms") {
			t.Errorf("process_no %s: latency %q", w.pno, l["latency"])
		}
	}
	if len(got) != 6 {
		t.Errorf("%d lines journaled, want 6: %v", len(got), got)
	}
	reason, err := os.ReadFile(filepath.Join(c.FailedDir, "d.txt.reason"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(reason), rrn) || !strings.Contains(string(reason), `"*************"`) {
		t.Errorf(".reason of the invalid line: %s", reason)
	}
	if b, _ := os.ReadFile(filepath.Join(c.FailedDir, "d.txt")); string(b) != invalid+"\n" {
		t.Errorf("the failed file %q, want every byte of %q", b, invalid)
	}
	all, _ := filepath.Glob(filepath.Join(jdir, "sender-*.log"))
	for _, f := range all {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), rrn) || strings.Contains(string(b), "KEY-") {
			t.Errorf("journal %s shows a masked value:\n%s", f, b)
		}
	}
}

// TestJournalPutBack: a line in flight when a drain cuts it off is
// journaled put back, with its file, line and key fields, and is back in
// the spool.
func TestJournalPutBack(t *testing.T) {
	r := startRemote(t, func(r *remote) { r.answer = func([]byte) int { return 0 } }) // never answers
	jr, keys, jdir := openTestJournal(t)
	c := testConf(t, r.addr())
	_, stop := runSender(t, c, func(o *Options) {
		o.Journal, o.JournalKeys, o.ShutdownTimeout = jr, keys, 200*time.Millisecond
	})
	drop(t, c.SpoolDir, "a.txt", body(7)+"\n", time.Now().Add(-time.Minute))
	e2e.WaitFor(t, 10*time.Second, "the line at the remote", func() bool { return len(r.messages()) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := jr.Close(); err != nil {
		t.Fatal(err)
	}
	lines := journalLines(t, jdir)
	if len(lines) != 1 {
		t.Fatalf("journal %v, want one put_back", lines)
	}
	l := lines[0]
	if l["event"] != "put_back" || l["file"] != "a.txt" || l["line"] != "1" || l["process_no"] != "000000007" || l["org_code"] != "ORG01" ||
		l["reason"] != putBackReason {
		t.Errorf("journal %v", l)
	}
	if got := visible(t, c.SpoolDir); len(got) != 1 || got[0] != "a.txt" {
		t.Errorf("spool %v, want a.txt back", got)
	}
}

// recordWork is what the journal costs the sender per line delivered: the
// record built with its key fields, handed to an open journal.
func recordWork(tb testing.TB) func() {
	tb.Helper()
	dir := tb.TempDir()
	d := protocol.DefaultDialect()
	keys := journal.KeyFields(conf.Default().Receiver.DedupKey, d.Result().Names())
	jr, err := journal.New(journal.Options{Dir: dir, Daemon: "sender", Keys: keys, MaskRRN: true, Buffer: 1 << 16})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { jr.Close() })
	tr := newTrail(d, jr, nil, keys)
	line := []byte(body(123))
	r := lineResult{kind: lineDelivered, remote: "127.0.0.1:9010", attempts: 1}
	at := time.Now()
	return func() { tr.record(journal.Delivered, "res-123.txt", 1, "", "", line, &r, "", at) }
}

// TestJournalRecordAllocs: journaling a delivered line allocates nothing.
func TestJournalRecordAllocs(t *testing.T) {
	if allocs := testing.AllocsPerRun(1000, recordWork(t)); allocs != 0 {
		t.Fatalf("%v allocations per line journaled, want 0", allocs)
	}
}

// BenchmarkJournalRecord is recordWork: the sender's cost per line of the
// journal on (the writer formats and writes on its own goroutine).
func BenchmarkJournalRecord(b *testing.B) {
	work := recordWork(b)
	b.ReportAllocs()
	for b.Loop() {
		work()
	}
}

// TestJournalLanes: with lanes (line_order parallel, the default) line 4
// of m.txt is delivered on another lane while line 2 uses up its retries:
// the journal says line 4 delivered and lines 2-3 failed to
// m.txt.lines-2-3 (as failed_dir holds them), never line 4 failed.
func TestJournalLanes(t *testing.T) {
	r := startRemote(t, func(r *remote) {
		r.answer = func(line []byte) int {
			if processNo(string(line)) == "000000002" {
				return protocol.CodeUnavailable
			}
			return protocol.CodeOK
		}
	})
	jr, keys, jdir := openTestJournal(t)
	c := testConf(t, r.addr())
	c.Retries = 1
	c.LineOrder = conf.LineOrderParallel
	_, stop := runSender(t, c, func(o *Options) { o.Journal, o.JournalKeys = jr, keys })
	drop(t, c.SpoolDir, "m.txt", body(1)+"\n"+body(2)+"\n\n"+body(3)+"\n", time.Time{})
	e2e.WaitFor(t, 10*time.Second, "m.txt handled", func() bool {
		return len(visible(t, c.SpoolDir)) == 0 && len(visible(t, c.FailedDir)) == 2
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := jr.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range journalLines(t, jdir) {
		got = append(got, l["process_no"]+" "+l["event"]+" line "+l["line"]+" "+l["to"])
	}
	slices.Sort(got)
	want := []string{"000000001 delivered line 1 ", "000000002 failed line 2 m.txt.lines-2-3", "000000003 delivered line 4 "}
	if !slices.Equal(got, want) {
		t.Errorf("journal:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBadReplyMasked: with log.mask naming process_no, a reply that
// cannot be read and one that echoes another process_no give reasons
// showing neither process_no (as many '*') nor the resident number the
// reply carries; with log.mask empty the process_no shows, the resident
// number still not (log.mask_rrn).
func TestBadReplyMasked(t *testing.T) {
	const rrn = "8501012345678"
	d := protocol.DefaultDialect()
	line := []byte(body(123))
	for _, masked := range []bool{true, false} {
		var fields []string
		if masked {
			fields = []string{"process_no"}
		}
		s := &Sender{d: d, tr: newTrail(d, nil, mask.New(d.Result(), fields, true), nil)}
		frame, err := s.frame(nil, line)
		if err != nil {
			t.Fatal(err)
		}
		good := d.Unframe(d.AppendReply(nil, d.Unframe(frame), protocol.CodeOK, time.Now()))
		// good with its code replaced by v, its length field set anew:
		// the code field is what cannot be read.
		withCode := func(v string) []byte {
			body := strings.TrimSuffix(string(good[4:]), "|200") + "|" + v
			return []byte(fmt.Sprintf("%04d", len(body)+5) + body) // the length counts the LF
		}
		unreadable := withCode(rrn)
		other := bytes.Replace(good, []byte("000000123"), []byte("000000456"), 1)
		// A byte before the number that quoting escapes (\x01): its hex
		// digits must not join the number's.
		quoted := withCode("\x01" + rrn)
		for _, reply := range [][]byte{unreadable, other, quoted} {
			res, _, reason := s.replyResult(reply, s.expect(frame))
			if res != resultBadReply {
				t.Fatalf("reply %q: %v %q", reply, res, reason)
			}
			shows := strings.Contains(reason, "000000123") || strings.Contains(reason, "000000456")
			if shows == masked || strings.Contains(reason, rrn) || !strings.HasPrefix(reason, resultBadReply.String()) {
				t.Errorf("log.mask %v, reply %q: reason %q", fields, reply, reason)
			}
			t.Logf("log.mask %v: %s", fields, reason)
		}
	}
}

// TestBadReplyMaskedReplyField: a log.mask field that only the reply spec
// has (a request field the remote echoes, which the result lacks) is
// masked in a bad reply's reason.
func TestBadReplyMaskedReplyField(t *testing.T) {
	c := protocol.DefaultDialectConfig()
	c.Result = protocol.SpecConfig{Names: []string{"length", "type", "process_no", "sent_at", "org_code", "service_code", "payload", "filler"}, Rules: c.Request.Rules}
	c.Reply = protocol.SpecConfig{Names: []string{"length", "type", "process_no", "key", "replied_at", "code"}}
	d, err := protocol.NewDialect(c)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sender{d: d, tr: newTrail(d, nil, mask.New(d.Result(), []string{"key"}, true), nil)}
	body := "|RES|000000123|SECRETKEY42|20261207064400|2000" // a code too long: unreadable
	msg := []byte(fmt.Sprintf("%04d", len(body)+4) + body)
	res, _, reason := s.replyResult(msg, []byte("000000123"))
	if res != resultBadReply || strings.Contains(reason, "SECRETKEY42") || !strings.Contains(reason, "***********") {
		t.Errorf("log.mask key, the reply spec has it, the result not: %v %q", res, reason)
	}
}
