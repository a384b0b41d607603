package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/internal/journal"
	"spoolgate/internal/mask"
	"spoolgate/protocol"
)

// openTestJournal opens a journal for the receiver in a new directory,
// flushed every 10 ms, closed when the test ends.
func openTestJournal(t testing.TB, masked ...string) (*journal.Journal, string) {
	t.Helper()
	dir := t.TempDir()
	jr, err := journal.New(journal.Options{Dir: dir, Daemon: "receiver",
		Keys:   journal.KeyFields([]string{"org_code", "process_no"}, spec.Names()),
		Masked: masked, MaskRRN: true, FlushEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jr.Close() })
	return jr, dir
}

// journalEntries returns every event of the journal in dir for org_code
// ORG01, in time order, published names resolved.
func journalEntries(t testing.TB, dir string) []journal.Entry {
	t.Helper()
	key, err := journal.ReadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := journal.Search(dir, journal.Query{Terms: []journal.Term{{Name: "org_code", Value: "ORG01"}}, Key: key})
	if err != nil || len(res.Problems) > 0 {
		t.Fatalf("search: %v %v", err, res.Problems)
	}
	return res.Entries
}

// TestJournal: the receiver journals every message it answers with its
// code, peer and key fields: accepted ones with the request file and the
// line they are on (the published name, the .part as written), a
// duplicate of the window and one within a batch, a 400 with its reason,
// a 500 with the store's error; an echo telegram not at all. What the
// file holds at each line is the message the journal names there.
func TestJournal(t *testing.T) {
	jr, jdir := openTestJournal(t)
	var fail atomic.Bool
	cfg := testConfig(t)
	cfg.DedupWindow = 10 * time.Minute
	ts := startServer(t, Options{Config: cfg, Logger: quietLogger(t), Journal: jr, storeHooks: storeHooks{sync: func(f *os.File) error {
		if fail.Load() {
			return errors.New("injected: disk gone")
		}
		return f.Sync()
	}}})
	m1, m2, m3 := req(t, "000000001", "one"), req(t, "000000002", "two"), req(t, "000000003", "three")
	bad := frame("REQ|000000004|20261321093000|ORG01|SV01|K|bad month|")
	replies := burst(t, ts.addr, [][]byte{m1, m2, bad, m3, m3})
	var codes []int
	for _, r := range replies {
		codes = append(codes, r.Code)
	}
	if fmt.Sprint(codes) != "[200 200 400 200 200]" {
		t.Fatalf("codes %v", codes)
	}
	if code := send(t, ts.addr, m1); code != 200 {
		t.Fatalf("repeat: %d", code)
	}
	fail.Store(true)
	if code := send(t, ts.addr, req(t, "000000005", "lost")); code != 500 {
		t.Fatalf("failing sync: %d", code)
	}
	fail.Store(false)
	ts.stop(t)
	if err := jr.Close(); err != nil {
		t.Fatal(err)
	}

	got := journalEntries(t, jdir)
	var published string
	for name := range dirFiles(t, cfg.DataDir) {
		if _, part, ok := parseName(name); ok && !part {
			published = name
		}
	}
	type want struct {
		event string
		code  int
		pno   string
		line  int
		what  string // in the reason
	}
	// An accepted message's time is when it was made durable, before the
	// batch's replies: the others' time.
	wants := []want{
		{"accepted", 200, "000000001", 1, ""}, {"accepted", 200, "000000002", 2, ""}, {"accepted", 200, "000000003", 3, ""},
		{"rejected", 400, "000000004", 0, "sent_at: time yyyyMMddHHmmss"}, {"duplicate", 200, "000000003", 0, ""},
		{"duplicate", 200, "000000001", 0, ""}, {"unavailable", 500, "000000005", 0, "injected: disk gone"},
	}
	if len(got) != len(wants) {
		t.Fatalf("%d events, want %d: %+v", len(got), len(wants), got)
	}
	lines := strings.Split(dirFiles(t, cfg.DataDir)[published], "\n")
	for i, w := range wants {
		e := got[i]
		if e.Event != w.event || e.Code != w.code || e.Keys["process_no"] != w.pno || e.Keys["org_code"] != "ORG01" ||
			!strings.HasPrefix(e.Peer, "127.0.0.1:") || e.Line != w.line || !strings.Contains(e.Reason, w.what) {
			t.Errorf("event %d: %+v, want %+v", i, e, w)
		}
		if w.line > 0 {
			if e.File != published || e.Written != published+partSuffix {
				t.Errorf("event %d: file %q written %q, want %s published from .part", i, e.File, e.Written, published)
			}
			if l := lines[w.line-1] + "\n"; !strings.Contains(l, "|"+w.pno+"|") {
				t.Errorf("event %d: line %d of %s is %q, not process_no %s", i, w.line, published, l, w.pno)
			}
		} else if e.File != "" {
			t.Errorf("event %d: file %q", i, e.File)
		}
	}
	if b, err := json.MarshalIndent(got, "", "  "); err == nil {
		t.Logf("journal:\n%s", b)
	}
}

// TestJournalLineNumbers: a request file opened again (append mode: the
// minute's file after a restart) numbers its lines after those already
// there, counted once; a restart within the minute in rename mode too.
func TestJournalLineNumbers(t *testing.T) {
	for _, publish := range []string{"rename", "append"} {
		t.Run(publish, func(t *testing.T) {
			clk := newFakeClock(t0)
			cfg := testConfig(t)
			cfg.Publish = PublishAppend
			if publish == "rename" {
				cfg.Publish = PublishRename
			}
			var lastLine int
			for round := range 3 {
				jr, jdir := openTestJournal(t)
				ts := startServer(t, Options{Config: cfg, Logger: quietLogger(t), Journal: jr, Clock: clk.now})
				var msgs [][]byte
				for i := range 3 {
					msgs = append(msgs, req(t, fmt.Sprintf("%09d", 10*round+i), "again"))
				}
				burst(t, ts.addr, msgs)
				ts.stop(t)
				jr.Close()
				got := journalEntries(t, jdir)
				if len(got) != 3 {
					t.Fatalf("round %d: %d events", round, len(got))
				}
				for i, e := range got {
					if e.Line != lastLine+i+1 && publish == "append" {
						t.Errorf("round %d: line %d, want %d", round, e.Line, lastLine+i+1)
					}
					if publish == "rename" && e.Line != i+1 {
						t.Errorf("round %d: line %d of a new .part, want %d", round, e.Line, i+1)
					}
					content := dirFiles(t, cfg.DataDir)[e.File]
					if l := strings.Split(content, "\n")[e.Line-1]; !strings.Contains(l, "|"+e.Keys["process_no"]+"|") {
						t.Errorf("round %d: %s:%d is %q, not %s", round, e.File, e.Line, l, e.Keys["process_no"])
					}
				}
				if publish == "rename" && round > 0 && got[0].File == minuteName(unixMinute(t0)) {
					t.Errorf("round %d: a restart within the minute published under the first name again", round)
				}
				lastLine += 3
			}
		})
	}
}

// TestJournalRepairPublishes: a .part of an earlier minute left by a
// crash is published at start, and the journal holds that publication,
// so its lines are traced under the name downstream sees.
func TestJournalRepairPublishes(t *testing.T) {
	cfg := testConfig(t)
	old := minuteName(unixMinute(t0.Add(-time.Hour)))
	if err := os.WriteFile(filepath.Join(cfg.DataDir, old+partSuffix), req(t, "000000001", "left"), 0o644); err != nil {
		t.Fatal(err)
	}
	jr, jdir := openTestJournal(t)
	ts := startServer(t, Options{Config: cfg, Logger: quietLogger(t), Journal: jr, Clock: newFakeClock(t0).now})
	ts.stop(t)
	jr.Close()
	var got []journal.Entry
	ents, _ := os.ReadDir(jdir)
	for _, f := range ents {
		b, _ := os.ReadFile(filepath.Join(jdir, f.Name()))
		for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			if e, err := journal.ParseLine(l); err == nil {
				got = append(got, e)
			}
		}
	}
	if len(got) != 1 || got[0].Event != "published" || got[0].File != old+partSuffix || got[0].To != old {
		t.Fatalf("journal %+v, want %s published to %s", got, old+partSuffix, old)
	}
}

// TestRejectMasked: a resident number in a rejected message is masked
// in the log sample, in the error logged, in Status's sample (the
// console and /api/status) and in the journal; a field of log.mask is
// masked in all of them, its ParseError logged by reason only; the
// request file of an accepted message keeps every byte.
func TestRejectMasked(t *testing.T) {
	const rrn = "8501012345678"
	lg := &e2e.Log{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), lg), &slog.HandlerOptions{Level: slog.LevelDebug}))
	jr, jdir := openTestJournal(t, "key")
	cfg := testConfig(t)
	ts := startServer(t, Options{Config: cfg, Logger: log, Journal: jr, Mask: mask.New(spec, []string{"key"}, true)})
	badKey := frame("REQ|000000001|20261121093000|ORG01|SV01|SECRET!KEY|payload " + rrn + "|") // key breaks its class
	badMonth := frame("REQ|000000002|20261321093000|ORG01|SV01|K1|payload " + rrn + "|")       // the payload has it
	good := frame("REQ|000000003|20261121093000|ORG01|SV01|SECRETKEY|payload 850101-2345678|") // stored as it is
	for _, m := range [][]byte{badKey, badMonth} {
		if code := send(t, ts.addr, m); code != 400 {
			t.Fatalf("code %d", code)
		}
	}
	if code := send(t, ts.addr, good); code != 200 {
		t.Fatalf("code %d", code)
	}
	st, _ := json.Marshal(ts.srv.Status(time.Now()))
	ts.stop(t)
	jr.Close()
	var journalText bytes.Buffer
	ents, _ := os.ReadDir(jdir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(jdir, e.Name()))
		journalText.Write(b)
	}
	for what, text := range map[string]string{"log": lg.String(), "status": string(st), "journal": journalText.String()} {
		for _, secret := range []string{rrn, "850101-2345678", "SECRET!KEY", "SECRETKEY"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows %q:\n%s", what, secret, text)
			}
		}
	}
	if !strings.Contains(string(st), "payload *************") || !strings.Contains(string(st), "|**********|") {
		t.Errorf("status samples not masked as expected: %s", st)
	}
	if !lg.Contains(`err="key: class A-Za-z0-9_.- 1..40"`) {
		t.Errorf("the masked field's error is not logged by its reason:\n%s", lg)
	}
	if got := storedLines(t, cfg.DataDir); len(got) != 1 || got[0] != string(good) {
		t.Fatalf("request file %q, want the message as sent", got)
	}
	res, err := journal.Search(jdir, journal.Query{Terms: []journal.Term{{Name: "process_no", Value: "000000001"}}})
	if err != nil || len(res.Entries) != 1 || res.Entries[0].Event != "rejected" {
		t.Fatalf("rejected message not traced by process_no: %+v %v", res.Entries, err)
	}
}

// TestHandleAllocsJournal: with the journal on, answering a message still
// allocates nothing beyond what it did without (TestHandleAllocs): the
// record is a value the journal copies, and its writer formats it into a
// reused buffer.
func TestHandleAllocsJournal(t *testing.T) {
	jr, _ := openTestJournal(t)
	cfg := testConfig(t)
	cfg.Fsync = FsyncNever
	cfg.DedupWindow = 10 * time.Minute
	srv, err := New(Options{Config: cfg, SummaryEvery: -1, Journal: jr})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l := req(t, "000000000", "allocs")
	line := l[:len(l)-1]
	live := srv.cfg.Load()
	p := &pipe{s: srv, remote: "127.0.0.1:5000"}
	want := []byte(fmt.Sprintf("|%03d\n", protocol.CodeOK))
	i := 0
	run := func() {
		p.reset(live, false)
		i++
		pno := line[9:18]
		for j, k := 8, i; j >= 0; j, k = j-1, k/10 {
			pno[j] = byte('0' + k%10)
		}
		p.add(line, nil)
		p.commit()
		if out := p.replies(time.Now()); !bytes.HasSuffix(out, want) {
			t.Fatalf("replies %q", out)
		}
	}
	for range 100 { // the journal's buffers grow first
		run()
	}
	allocs := testing.AllocsPerRun(2000, run)
	t.Logf("%.2f allocations per message, journal on", allocs)
	if allocs > 0.5 {
		t.Fatalf("%.2f allocations per message", allocs)
	}
	if s := jr.Stats(); s.Dropped > 0 {
		t.Fatalf("journal dropped %d", s.Dropped)
	}
}

// TestJournalAMQP: with the amqp sink an accepted message is journaled
// with the queue and its message_id; a field of log.mask in the
// message_id is masked there (the broker's copy keeps it).
func TestJournalAMQP(t *testing.T) {
	n := e2e.RabbitShared(t)
	const queue = "t.sink.journal"
	cfg := amqpConfig(t, queue, n.URL)
	sink, err := NewAMQPSink(SinkOptions{Config: cfg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Connect(); err != nil {
		sink.Close()
		t.Fatal(err)
	}
	jr, jdir := openTestJournal(t, "org_code")
	ts := startServer(t, Options{Config: cfg, Sink: sink, Journal: jr, Mask: mask.New(spec, []string{"org_code"}, true)})
	if code := send(t, ts.addr, req(t, "000000001", "to the queue")); code != 200 {
		t.Fatalf("code %d", code)
	}
	ts.stop(t)
	jr.Close()
	got := journalEntries(t, jdir)
	if len(got) != 1 || got[0].Event != "accepted" || got[0].Queue != queue || got[0].MsgID != "*****|000000001" || got[0].File != "" ||
		!strings.HasPrefix(got[0].Keys["org_code"], journal.HashPrefix) {
		t.Fatalf("journal %+v, want accepted in %s with message id *****|000000001", got, queue)
	}
	if msgs := e2e.QueueMessages(t, n.URL, queue); len(msgs) != 1 || msgs[0].MessageId != "ORG01|000000001" {
		t.Fatalf("queue: %d messages, want one with message_id ORG01|000000001", len(msgs))
	}
}
