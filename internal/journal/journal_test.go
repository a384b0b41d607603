package journal

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"spoolgate/internal/e2e"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a Clock a test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05.000", s, time.Local)
	if err != nil {
		panic(err)
	}
	return t
}

var testKey = bytes.Repeat([]byte{7}, 32)

func TestEncode(t *testing.T) {
	recv := NewEncoder(Options{Daemon: "receiver", Keys: []string{"org_code", "process_no"}, MaskRRN: true}, testKey)
	send := NewEncoder(Options{Daemon: "sender", Instance: "acme", Keys: []string{"org_code", "process_no", "code"},
		Masked: []string{"org_code"}, MaskRRN: true}, testKey)
	tm := at("2026-12-06 09:30:00.123")
	ts := tm.Format(TimeLayout)
	rec := func(r Record, keys ...string) *Record {
		for _, k := range keys {
			r.AddKeyString(k)
		}
		return &r
	}
	tests := []struct {
		name string
		enc  *Encoder
		r    *Record
		want string
	}{
		{"accepted", recv, rec(Record{Time: tm, Event: Accepted, Code: 200, Peer: "10.1.2.3:51234", File: "202612060930_request.txt.part", Line: 17}, "ORG01", "000000123"),
			ts + "\treceiver\taccepted\tcode=200\tpeer=10.1.2.3:51234\torg_code=ORG01\tprocess_no=000000123\tfile=202612060930_request.txt.part\tline=17\n"},
		{"rejected, escapes and a resident number in the reason", recv,
			rec(Record{Time: tm, Event: Rejected, Code: 400, Peer: "10.1.2.3:1", Reason: "payload: text 0..10\tsaw 8501011234567\\\n\x01\xff"}, "ORG01", "000000000"),
			ts + "\treceiver\trejected\tcode=400\tpeer=10.1.2.3:1\torg_code=ORG01\tprocess_no=000000000\treason=payload: text 0..10\\tsaw *************\\\\\\n\\x01\\xff\n"},
		{"a key value shaped like a resident number is hashed", recv, rec(Record{Time: tm, Event: Duplicate, Code: 200}, "850101-1234567", "000000001"),
			ts + "\treceiver\tduplicate\tcode=200\torg_code=" + Hash(testKey, "org_code", "850101-1234567") + "\tprocess_no=000000001\n"},
		{"sender, masked key, a key named like an attribute", send,
			rec(Record{Time: tm, Event: Failed, Code: 400, Peer: "10.9.9.9:9010", File: "res.txt", Line: 2, Attempts: 1, Latency: 12345 * time.Microsecond, To: "res.txt.line-2", Reason: "rejected"}, "ORG01", "000000123", "X1"),
			ts + "\tsender\tfailed\tinst=acme\tcode=400\tremote=10.9.9.9:9010\torg_code=" + Hash(testKey, "org_code", "ORG01") +
				"\tprocess_no=000000123\tkey.code=X1\tfile=res.txt\tline=2\tattempts=1\tlatency=12.345ms\tto=res.txt.line-2\treason=rejected\n"},
		{"queue", send, rec(Record{Time: tm, Event: PutBack, Queue: "spoolgate.results", MsgID: "ORG01|000000123"}),
			ts + "\tsender\tput_back\tinst=acme\tqueue=spoolgate.results\tmsgid=ORG01|000000123\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.enc.Append(nil, tt.r))
			if got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
			e, err := ParseLine([]byte(strings.TrimSuffix(got, "\n")))
			if err != nil {
				t.Fatal(err)
			}
			if !e.Time.Equal(tm) || e.Event != tt.r.Event.String() || e.Code != tt.r.Code || e.File != tt.r.File || e.Line != tt.r.Line ||
				e.Peer+e.Remote != tt.r.Peer || e.Attempts != tt.r.Attempts || e.To != tt.r.To || e.Queue != tt.r.Queue || e.MsgID != tt.r.MsgID {
				t.Errorf("parsed back %+v", e)
			}
		})
	}
	// Reason round trip: what was not masked comes back as it was.
	e, _ := ParseLine([]byte(strings.TrimSuffix(string(recv.Append(nil, &Record{Time: tm, Event: Rejected, Reason: "a\tb\\c\nd é"})), "\n")))
	if e.Reason != "a\tb\\c\nd é" {
		t.Errorf("reason %q", e.Reason)
	}
	// A decoder turns the wire's bytes into UTF-8 before the key is
	// written (or hashed): EUC-KR "한" is b0 a1... here any mapping will do.
	dec := NewEncoder(Options{Daemon: "receiver", Keys: []string{"org_code"},
		Decode: func(dst, src []byte) []byte { return append(append(dst, "dec:"...), src...) }}, testKey)
	r := Record{Time: tm, Event: Accepted}
	r.AddKey([]byte("ab\xb0"))
	if got := string(dec.Append(nil, &r)); !strings.Contains(got, "\torg_code=dec:ab\\xb0\n") {
		t.Errorf("decoded key: %q", got)
	}
}

func TestRecordKeys(t *testing.T) {
	var r Record
	for i := 0; i < MaxKeys+2; i++ {
		r.AddKey(bytes.Repeat([]byte{'a' + byte(i)}, 40))
	}
	if r.NumKeys() != MaxKeys || string(r.Key(0)) != strings.Repeat("a", 40) || len(r.Key(6)) != MaxKeyBytes-6*40 || len(r.Key(7)) != 0 || r.Key(8) != nil {
		t.Errorf("keys %d %q %d %d", r.NumKeys(), r.Key(0), len(r.Key(6)), len(r.Key(7)))
	}
	r.Reset()
	if r.NumKeys() != 0 {
		t.Error("Reset")
	}
}

func TestKeyFields(t *testing.T) {
	all := []string{"length", "type", "process_no", "org_code", "key"}
	tests := []struct {
		dedup, fields, want []string
	}{
		{[]string{"org_code", "process_no"}, all, []string{"org_code", "process_no"}},
		{[]string{"org_code", "key"}, all, []string{"org_code", "key", "process_no"}},
		{[]string{"org_code", "nosuch"}, []string{"length", "org_code"}, []string{"org_code"}},
		{nil, all, []string{"process_no"}},
	}
	for _, tt := range tests {
		if got := KeyFields(tt.dedup, tt.fields); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("KeyFields(%v) = %v, want %v", tt.dedup, got, tt.want)
		}
	}
}

// TestAllocs: Add allocates nothing (the Record is copied into the
// queue), and neither does formatting a line, a masked key included.
func TestAllocs(t *testing.T) {
	dir := t.TempDir()
	// AllocsPerRun counts every goroutine's: no flush tick meanwhile.
	j, err := New(Options{Dir: dir, Daemon: "receiver", Keys: []string{"org_code", "process_no"}, Buffer: 1 << 16, FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	line := []byte("0078|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|hello world payload|")
	if n := testing.AllocsPerRun(1000, func() {
		var r Record
		r.Event, r.Code, r.Peer, r.File, r.Line = Accepted, 200, "10.1.2.3:51234", "202612060930_request.txt.part", 17
		r.AddKey(line[34:39])
		r.AddKey(line[9:18])
		j.Add(&r)
	}); n != 0 {
		t.Errorf("Add: %v allocations", n)
	}
	// The writer goroutine takes records in and writes them without an
	// allocation each (AllocsPerRun cannot tell its goroutine's apart).
	// No flush tick: it takes them when woken, as Add does at half the
	// queue.
	j.wake <- struct{}{}
	waitFor(t, 10*time.Second, "the queue written", func() bool { return j.queued() == 0 })
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	w0 := j.Stats().Written
	const n = 20000
	for i := range n {
		for j.queued() > j.o.Buffer/2 {
			runtime.Gosched()
		}
		var r Record
		r.Event, r.Code, r.File, r.Line = Accepted, 200, "202612060930_request.txt.part", i
		r.AddKey(line[34:39])
		r.AddKey(line[9:18])
		j.Add(&r)
	}
	j.wake <- struct{}{}
	waitFor(t, 10*time.Second, "the records written", func() bool { return j.Stats().Written-w0 > n-1000 }) // all but the last 64 KiB
	runtime.ReadMemStats(&after)
	if d := after.Mallocs - before.Mallocs; d > n/20 {
		t.Errorf("%d allocations for %d records written", d, n)
	}
	j.Close()
	enc := NewEncoder(Options{Daemon: "sender", Keys: []string{"org_code", "process_no"}, Masked: []string{"org_code"}, MaskRRN: true}, testKey)
	r := Record{Time: time.Now(), Event: Delivered, Code: 200, Peer: "10.9.9.9:9010", File: "r.txt", Line: 3, Attempts: 1, Latency: time.Millisecond, Reason: "ok 8501011234567"}
	r.AddKeyString("ORG01")
	r.AddKeyString("000000123")
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(1000, func() { buf = enc.Append(buf[:0], &r) }); n != 0 {
		t.Errorf("Encoder.Append: %v allocations", n)
	}
}

func BenchmarkAdd(b *testing.B) {
	j, err := New(Options{Dir: b.TempDir(), Daemon: "receiver", Keys: []string{"org_code", "process_no"}})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var r Record
			r.Event, r.Code, r.Peer, r.File, r.Line = Accepted, 200, "10.1.2.3:51234", "202612060930_request.txt.part", 17
			r.AddKeyString("ORG01")
			r.AddKeyString("000000123")
			j.Add(&r)
		}
	})
	b.StopTimer()
	j.Close()
	s := j.Stats()
	b.ReportMetric(float64(s.Dropped)/float64(b.N), "dropped/op")
}

// BenchmarkWriter: the records the writer goroutine takes in, formats
// and writes per second, end to end (the producer waits when the queue is
// half full, so nothing is dropped).
func BenchmarkWriter(b *testing.B) {
	j, err := New(Options{Dir: b.TempDir(), Daemon: "receiver", Keys: []string{"org_code", "process_no"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for j.queued() > j.o.Buffer/2 {
			runtime.Gosched()
		}
		var r Record
		r.Event, r.Code, r.Peer, r.File, r.Line = Accepted, 200, "10.1.2.3:51234", "202612060930_request.txt.part", 17
		r.AddKeyString("ORG01")
		r.AddKeyString("000000123")
		j.Add(&r)
	}
	j.Close()
	if s := j.Stats(); s.Dropped > 0 || s.Written != uint64(b.N) {
		b.Fatalf("%+v of %d", s, b.N)
	}
}

func BenchmarkEncode(b *testing.B) {
	enc := NewEncoder(Options{Daemon: "receiver", Keys: []string{"org_code", "process_no"}, MaskRRN: true}, testKey)
	r := Record{Time: time.Now(), Event: Accepted, Code: 200, Peer: "10.1.2.3:51234", File: "202612060930_request.txt.part", Line: 17}
	r.AddKeyString("ORG01")
	r.AddKeyString("000000123")
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = enc.Append(buf[:0], &r)
	}
	b.SetBytes(int64(len(buf)))
}

func add(j *Journal, ev Event, tm time.Time, pno string) {
	r := Record{Time: tm, Event: ev, Code: 200, Peer: "10.1.2.3:1"}
	r.AddKeyString("ORG01")
	r.AddKeyString(pno)
	j.Add(&r)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestRollover: with the clock moved across midnight, the day's file is
// gzipped (a .log.gz whole, no .log left) and a new file started; a day
// is removed once it ended journal.keep ago; Search reads the gzipped
// days; a .log of a past day found at start (a crash) is compressed.
func TestRollover(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: at("2026-12-06 23:59:59.000")}
	reg := prometheus.NewRegistry()
	o := Options{Dir: dir, Daemon: "receiver", Keys: []string{"org_code", "process_no"}, Keep: 2 * 24 * time.Hour,
		Clock: clk.Now, FlushEvery: 20 * time.Millisecond, Registerer: reg}
	j, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	day := func(d string) string { return filepath.Join(dir, "receiver-"+d+".log") }
	add(j, Accepted, clk.Now(), "000000001")
	waitFor(t, 5*time.Second, "the first line written", func() bool { return j.Stats().Written == 1 })

	clk.Set(at("2026-12-07 00:00:00.500"))
	add(j, Accepted, clk.Now(), "000000002")
	waitFor(t, 5*time.Second, "day 6 compressed", func() bool { return exists(day("2026-12-06")+".gz") && !exists(day("2026-12-06")) })
	waitFor(t, 5*time.Second, "the second line written", func() bool { return j.Stats().Written == 2 })
	if !exists(day("2026-12-07")) {
		t.Fatal("no file of day 7")
	}
	gz := readGz(t, day("2026-12-06")+".gz")
	if strings.Count(gz, "\n") != 1 || !strings.Contains(gz, "process_no=000000001") {
		t.Fatalf("day 6 holds %q", gz)
	}

	// The clock moves on without a record: the tick rolls over.
	clk.Set(at("2026-12-08 12:00:00.000"))
	waitFor(t, 5*time.Second, "day 7 compressed", func() bool { return exists(day("2026-12-07") + ".gz") })
	res, err := Search(dir, Query{Terms: []Term{{"org_code", "ORG01"}}})
	if err != nil || len(res.Entries) != 2 || res.Entries[0].Keys["process_no"] != "000000001" || res.Entries[1].Keys["process_no"] != "000000002" || len(res.Problems) > 0 {
		t.Fatalf("search over the gzipped days: %+v %v", res, err)
	}
	if !strings.HasPrefix(res.Entries[0].Source, "receiver-2026-12-06.log.gz:1") {
		t.Errorf("source %q", res.Entries[0].Source)
	}
	// Day 6 ended on Dec 7 00:00; with keep 2d it goes on Dec 9 00:00.
	if !exists(day("2026-12-06") + ".gz") {
		t.Fatal("day 6 removed before its keep")
	}
	clk.Set(at("2026-12-09 00:00:01.000"))
	waitFor(t, 5*time.Second, "day 6 removed after keep", func() bool { return !exists(day("2026-12-06") + ".gz") })
	if !exists(day("2026-12-07")+".gz") || !exists(day("2026-12-09")) {
		t.Error("removed more than day 6")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(j.m.written); got != 2 {
		t.Errorf("spoolgate_journal_records_total %v", got)
	}

	// A crash left a past day's .log, a compression's dotfile, and a
	// .log beside its .log.gz: the next start tidies all three.
	if err := os.WriteFile(day("2026-12-10"), []byte("x\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".receiver-2026-12-10.log.gz.123.tmp")
	os.WriteFile(tmp, []byte("half"), 0o640)
	os.WriteFile(day("2026-12-07"), []byte("leftover\n"), 0o640)
	clk.Set(at("2026-12-11 08:00:00.000"))
	o.Registerer, o.Keep = nil, 0
	j, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the crash's leftovers tidied", func() bool {
		return exists(day("2026-12-10")+".gz") && !exists(day("2026-12-10")) && !exists(tmp) && !exists(day("2026-12-07")) && exists(day("2026-12-07")+".gz")
	})
	j.Close()
}

func readGz(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKeyShared: the receiver and the sender of one journal directory
// hash with one key, made once, mode 0600.
func TestKeyShared(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := OpenKey(dir)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) || len(k) != 32 {
			t.Fatalf("keys differ: %x %x", k, keys[0])
		}
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", fi.Mode(), err)
	}
	if k, err := ReadKey(t.TempDir()); k != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadKey of no key: %v", err)
	}
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("zz\n"), 0o600)
	if _, err := ReadKey(dir); err == nil || !strings.Contains(err.Error(), "not a key of hex digits") {
		t.Errorf("bad key: %v", err)
	}
}

// TestRemovedDir: the journal directory removed under a running journal
// is made again, with the key, and writing goes on in a new file.
func TestRemovedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	j, err := New(Options{Dir: dir, Daemon: "sender", Keys: []string{"org_code", "process_no"}, FlushEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	key, _ := ReadKey(dir)
	add(j, Delivered, time.Now(), "000000001")
	waitFor(t, 5*time.Second, "a line written", func() bool { return j.Stats().Written == 1 })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the directory made again", func() bool { return exists(filepath.Join(dir, KeyFile)) })
	add(j, Delivered, time.Now(), "000000002")
	waitFor(t, 5*time.Second, "the next line written", func() bool {
		res, _ := Search(dir, Query{Terms: []Term{{"process_no", "000000002"}}})
		return len(res.Entries) == 1
	})
	if k, _ := ReadKey(dir); !bytes.Equal(k, key) {
		t.Error("the key written back differs")
	}
}

func TestNil(t *testing.T) {
	j, err := New(Options{Daemon: "receiver"})
	if j != nil || err != nil {
		t.Fatalf("New without a dir: %v %v", j, err)
	}
	j.Add(&Record{})
	j.AddAll(make([]Record, 3))
	if j.Close() != nil || j.Stats() != (Stats{}) {
		t.Error("nil journal")
	}
	if _, err := New(Options{Dir: t.TempDir()}); err == nil {
		t.Error("New without a daemon")
	}
}

// TestSearch: terms of one name are alternatives, of different names all
// needed; masked values are found by their value; -since skips; a .part
// file is shown under its published name; half lines are problems.
func TestSearch(t *testing.T) {
	dir := t.TempDir()
	key, err := OpenKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	recv := NewEncoder(Options{Daemon: "receiver", Keys: []string{"org_code", "process_no"}, Masked: []string{"org_code"}}, key)
	send := NewEncoder(Options{Daemon: "sender", Keys: []string{"org_code", "process_no"}, Masked: []string{"org_code"}}, key)
	var rb, sb []byte
	r := func(ev Event, tm, org, pno, file string, line int) {
		x := Record{Time: at(tm), Event: ev, Code: 200, File: file, Line: line}
		x.AddKeyString(org)
		x.AddKeyString(pno)
		if ev.Receiver() {
			rb = recv.Append(rb, &x)
		} else {
			sb = send.Append(sb, &x)
		}
	}
	r(Accepted, "2026-12-06 09:30:00.100", "ORG01", "000000001", "202612060930_request.txt.part", 1)
	r(Accepted, "2026-12-06 09:30:00.200", "ORG02", "000000001", "202612060930_request.txt.part", 2)
	r(Accepted, "2026-12-06 09:30:00.300", "ORG01", "000000002", "202612060930_request.txt.part", 3)
	rb = recv.Append(rb, &Record{Time: at("2026-12-06 09:31:00.000"), Event: Published, File: "202612060930_request.txt.part", To: "202612060930s002_request.txt"})
	rb = append(rb, "2026-12-06T09:31\treceiver\taccepted\torg_code=ORG01\tprocess_no=000000001\n"...) // half a line

	r(Accepted, "2026-12-06 09:32:00.000", "ORG01", "000000003", "202612060932_request.txt.part", 1)
	r(Delivered, "2026-12-06 09:30:00.150", "ORG01", "000000001", "res-1.txt", 1)
	r(Delivered, "2026-12-07 10:00:00.000", "ORG01", "000000002", "res-2.txt", 1)
	os.WriteFile(filepath.Join(dir, "receiver-2026-12-06.log"), rb, 0o640)
	os.WriteFile(filepath.Join(dir, "sender-2026-12-06.log"), sb[:bytes.LastIndex(sb[:len(sb)-1], []byte{'\n'})+1], 0o640)
	os.WriteFile(filepath.Join(dir, "sender-2026-12-07.log"), sb[bytes.LastIndex(sb[:len(sb)-1], []byte{'\n'})+1:], 0o640)
	if err := Compress(filepath.Join(dir, "receiver-2026-12-06.log")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "receiver@other-2026-12-06.log"), rb, 0o640) // another instance

	type want struct{ daemon, pno, file string }
	tests := []struct {
		name  string
		q     Query
		want  []want
		probs int
	}{
		{"masked org_code found by value, time order across daemons", Query{Terms: []Term{{"org_code", "ORG01"}, {"process_no", "000000001"}}, Key: key, Prefixes: []string{"receiver", "sender"}},
			[]want{{"receiver", "000000001", "202612060930s002_request.txt"}, {"sender", "000000001", "res-1.txt"}}, 1},
		{"without the key a masked value is not found", Query{Terms: []Term{{"org_code", "ORG01"}}, Prefixes: []string{"receiver", "sender"}}, nil, 1},
		{"one name twice: either value", Query{Terms: []Term{{"process_no", "000000002"}, {"process_no", "000000003"}}, Key: key, Prefixes: []string{"receiver", "sender"}},
			[]want{{"receiver", "000000002", "202612060930s002_request.txt"}, {"receiver", "000000003", "202612060932_request.txt.part"}, {"sender", "000000002", "res-2.txt"}}, 0},
		{"since", Query{Terms: []Term{{"process_no", "000000002"}}, Since: at("2026-12-07 00:00:00.000"), Prefixes: []string{"receiver", "sender"}},
			[]want{{"sender", "000000002", "res-2.txt"}}, 0},
		{"by published name", Query{Terms: []Term{{"file", "/srv/request/202612060930s002_request.txt"}}, Prefixes: []string{"receiver", "sender"}},
			[]want{{"receiver", "000000001", "202612060930s002_request.txt"}, {"receiver", "000000001", "202612060930s002_request.txt"}, {"receiver", "000000002", "202612060930s002_request.txt"}}, 0},
		{"the minute's first name: these were published under its next", Query{Terms: []Term{{"file", "202612060930_request.txt"}}, Prefixes: []string{"receiver"}}, nil, 0},
		{"published name of another minute", Query{Terms: []Term{{"file", "202612060932_request.txt"}}, Prefixes: []string{"receiver"}}, nil, 0},
		{"by written name", Query{Terms: []Term{{"file", "202612060932_request.txt.part"}, {"line", "1"}}, Prefixes: []string{"receiver"}},
			[]want{{"receiver", "000000003", "202612060932_request.txt.part"}}, 0},
		{"another instance", Query{Terms: []Term{{"process_no", "000000003"}}, Prefixes: []string{"receiver@other"}},
			[]want{{"receiver", "000000003", "202612060932_request.txt.part"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Search(dir, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, e := range res.Entries {
				got = append(got, want{e.Daemon, e.Keys["process_no"], e.File})
			}
			if len(got) != len(tt.want) || (len(got) > 0 && !equal(got, tt.want)) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
			if len(res.Problems) != tt.probs {
				t.Errorf("problems %q, want %d", res.Problems, tt.probs)
			}
		})
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFullDisk: on a full file system (a small tmpfs) Add never blocks,
// the failed writes are counted (and what did not fit dropped, counted),
// and once space is freed the journal writes again by itself, the lines
// kept meanwhile included. Skips without root (mount).
func TestFullDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	// Larger than the 4 MiB of lines kept while writes fail, so that
	// they fit once the filler is gone.
	e2e.MountTmpfs(t, dir, "size=8m")
	reg := prometheus.NewRegistry()
	j, err := New(Options{Dir: dir, Daemon: "receiver", Keys: []string{"org_code", "process_no"}, FlushEvery: 20 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	free := e2e.FillFS(t, dir)

	// 100,000 records (about 10 MiB of lines) against a full disk: the
	// callers return at once; what the 4 MiB of pending lines cannot hold
	// is dropped.
	done := make(chan time.Duration)
	go func() {
		start := time.Now()
		for i := range 100000 {
			add(j, Accepted, time.Now(), fmt.Sprintf("%09d", i))
		}
		done <- time.Since(start)
	}()
	select {
	case d := <-done:
		t.Logf("100,000 Adds against a full disk took %v", d)
	case <-time.After(20 * time.Second):
		t.Fatal("Add blocked on a full disk")
	}
	waitFor(t, 10*time.Second, "write errors and drops counted, the queue taken in", func() bool {
		s := j.Stats()
		return s.Errors > 0 && s.Dropped > 0 && j.queued() == 0
	})
	if testutil.ToFloat64(j.m.errors) == 0 || testutil.ToFloat64(j.m.dropped) == 0 {
		t.Error("the metrics do not count the failures")
	}
	if n, err := testutil.GatherAndCount(reg, "spoolgate_journal_write_errors_total"); n != 1 || err != nil {
		t.Errorf("spoolgate_journal_write_errors_total registered %d times, %v", n, err)
	}

	free()
	add(j, Accepted, time.Now(), "999999999")
	waitFor(t, 10*time.Second, "the journal writing again", func() bool {
		res, _ := Search(dir, Query{Terms: []Term{{"process_no", "999999999"}}})
		return len(res.Entries) == 1
	})
	errs := j.Stats().Errors
	add(j, Accepted, time.Now(), "999999998")
	waitFor(t, 5*time.Second, "one more line", func() bool {
		res, _ := Search(dir, Query{Terms: []Term{{"process_no", "999999998"}}})
		return len(res.Entries) == 1
	})
	s := j.Stats()
	if s.Errors != errs {
		t.Errorf("errors went on after the recovery: %d then %d", errs, s.Errors)
	}
	// Every record is either written or dropped; lines kept while the
	// disk was full came through, each whole.
	res, err := Search(dir, Query{Terms: []Term{{"org_code", "ORG01"}}})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(res.Entries)) != res.Lines || uint64(len(res.Entries)) != s.Written || s.Written+s.Dropped != 100002 {
		t.Errorf("%d entries of %d lines; written %d + dropped %d, want 100002 (problems %q)", len(res.Entries), res.Lines, s.Written, s.Dropped, res.Problems)
	}
	t.Logf("written %d, dropped %d, write errors %d", s.Written, s.Dropped, s.Errors)
}

// TestScan: the lines holding a needle, each once, numbered; the line
// count; a last line without its LF; a line longer than the buffer; an
// empty file.
func TestScan(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 3<<20) + "needle"
	tests := []struct {
		name, data string
		needles    []string
		want       []string // "no:line"
		lines      int64
	}{
		{"empty", "", []string{"a"}, nil, 0},
		{"one needle twice on a line", "a needle needle\nb\nc needle\n", []string{"needle"}, []string{"1:a needle needle", "3:c needle"}, 3},
		{"two needles, one line", "x\ny ab cd\nz\n", []string{"cd", "ab"}, []string{"2:y ab cd"}, 3},
		{"no LF at the end", "a\nb needle", []string{"needle"}, []string{"2:b needle"}, 2},
		{"first and last", "needle\nx\nneedle", []string{"needle"}, []string{"1:needle", "3:needle"}, 3},
		{"longer than the buffer", "a\n" + long + "\nneedle\n", []string{"needle"}, []string{"2:" + long, "3:needle"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "receiver-2026-12-06.log")
			if err := os.WriteFile(p, []byte(tt.data), 0o640); err != nil {
				t.Fatal(err)
			}
			for _, gz := range []bool{false, true} {
				f := File{Path: p}
				if gz {
					if err := Compress(p); err != nil {
						t.Fatal(err)
					}
					f = File{Path: p + ".gz", Compressed: true}
				}
				var got []string
				var ns [][]byte
				for _, n := range tt.needles {
					ns = append(ns, []byte(n))
				}
				n, err := scan(f, ns, func(line []byte, no int64) { got = append(got, fmt.Sprintf("%d:%s", no, line)) })
				if err != nil || n != tt.lines || !equal(got, tt.want) {
					t.Errorf("gz %v: %d lines, %v; got %.80q, want %.80q", gz, n, err, got, tt.want)
				}
			}
			os.Remove(p + ".gz")
		})
	}
}

// TestAppendTime: the time column formatted once a second is what
// TimeLayout formats, across seconds, zones and a DST change.
func TestAppendTime(t *testing.T) {
	seoul := time.FixedZone("KST", 9*3600)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600)
	}
	e := NewEncoder(Options{Daemon: "receiver"}, testKey)
	base := time.Date(2026, 3, 8, 6, 59, 58, 0, time.UTC) // 01:59:58 EST, before the change to EDT
	for i := range 200 {
		tm := base.Add(time.Duration(i) * 37 * time.Millisecond).Add(time.Duration(i) * time.Microsecond)
		for _, loc := range []*time.Location{time.UTC, seoul, ny, time.Local} {
			tl := tm.In(loc)
			if got, want := string(e.appendTime(nil, tl)), tl.Format(TimeLayout); got != want {
				t.Fatalf("%v: %s, want %s", tl, got, want)
			}
		}
	}
}

// TestEncodeMemo: an encoder that copies the attributes a record shares
// with the one before it (peer, file, code, to) writes each line as a
// new encoder does, whether the values repeat, change or come back, a
// resident number in a file name masked each time.
func TestEncodeMemo(t *testing.T) {
	o := Options{Daemon: "sender", Keys: []string{"org_code", "process_no"}, MaskRRN: true}
	enc := NewEncoder(o, testKey)
	peers := []string{"10.1.2.3:51234", "10.1.2.3:51234", "10.1.2.4:1", "10.1.2.3:51234", ""}
	files := []string{"a.txt", "a.txt", "b 8501012345678.txt", "b 8501012345678.txt", "a.txt", ""}
	codes := []int{200, 200, 500, 0, 200, 400}
	tos := []string{"", "f.txt", "f.txt", "g.txt", ""}
	for i := range 60 {
		r := Record{Time: at("2026-12-06 09:30:00.000"), Event: Delivered, Code: codes[i%len(codes)],
			Peer: peers[i%len(peers)], File: files[i%len(files)], Line: i, To: tos[i%len(tos)]}
		r.AddKeyString("ORG01")
		r.AddKeyString(fmt.Sprintf("%09d", i))
		got := string(enc.Append(nil, &r))
		if want := string(NewEncoder(o, testKey).Append(nil, &r)); got != want {
			t.Fatalf("record %d:\n got %q\nwant %q", i, got, want)
		}
		if strings.Contains(got, "8501012345678") {
			t.Fatalf("record %d: a resident number in clear: %q", i, got)
		}
	}
}

// TestAddAll: a batch bigger than the queue's room queues what fits
// (the rest dropped and counted), and one that crosses half the queue
// wakes the writer: with no flush tick every record queued is written.
func TestAddAll(t *testing.T) {
	dir := t.TempDir()
	j, err := New(Options{Dir: dir, Daemon: "receiver", Keys: []string{"org_code", "process_no"}, Buffer: 8, FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]Record, 11)
	for i := range batch {
		batch[i] = Record{Time: at("2026-12-06 09:30:00.000"), Event: Accepted, Code: 200, File: "f", Line: i + 1}
		batch[i].AddKeyString("ORG01")
		batch[i].AddKeyString(fmt.Sprintf("%09d", i))
	}
	j.AddAll(batch[:3]) // below half: queued, no wake
	j.AddAll(batch[3:]) // 5 fit, 3 dropped; crosses half: the writer takes them
	waitFor(t, 10*time.Second, "the batch taken", func() bool { return j.queued() == 0 })
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if s := j.Stats(); s.Written != 8 || s.Dropped != 3 {
		t.Fatalf("written %d, dropped %d; want 8 and 3", s.Written, s.Dropped)
	}
	if _, err := Search(dir, Query{}); err == nil {
		t.Error("a search without terms")
	}
	res, err := Search(dir, Query{Terms: []Term{{Name: "org_code", Value: "ORG01"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 8 || res.Entries[7].Line != 8 {
		t.Fatalf("%d entries: %+v", len(res.Entries), res.Entries)
	}
}

// TestEncodeRRNAfterEscape: a resident number right after a byte the
// journal escapes (\x01, a byte not UTF-8) is masked in its text
// attributes: the escape's hex digits do not join the number's.
func TestEncodeRRNAfterEscape(t *testing.T) {
	const rrn = "8501012345678"
	enc := NewEncoder(Options{Daemon: "sender", MaskRRN: true}, testKey)
	for _, prefix := range []string{"\x01", "\x85", "\t", "\\"} {
		r := Record{Time: at("2026-12-06 09:30:00.000"), Event: Failed, File: "a" + prefix + rrn + ".txt", Reason: "x" + prefix + rrn, To: prefix + rrn}
		if line := string(enc.Append(nil, &r)); strings.Contains(line, rrn) || strings.Count(line, "*************") != 3 {
			t.Errorf("prefix %q: %q", prefix, line)
		}
	}
}

// TestCloseAccounting: a record handed to AddAll while Close runs is
// written or counted dropped, never left queued: Written + Dropped is
// every record added, round after round of adders racing Close.
func TestCloseAccounting(t *testing.T) {
	for round := range 50 {
		j, err := New(Options{Dir: t.TempDir(), Daemon: "receiver", Keys: []string{"org_code"}, Buffer: 1 << 12, FlushEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		var added atomic.Uint64
		var adders, started sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			adders.Add(1)
			started.Add(1)
			go func() {
				defer adders.Done()
				batch := make([]Record, 16)
				for i := range batch {
					batch[i] = Record{Event: Accepted, Code: 200, File: "f", Line: i + 1}
				}
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					j.AddAll(batch)
					added.Add(uint64(len(batch)))
					if n == 0 {
						started.Done()
					}
				}
			}()
		}
		started.Wait() // every adder is adding: Close races them
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		adders.Wait()
		if s := j.Stats(); s.Written+s.Dropped != added.Load() {
			t.Fatalf("round %d: added %d, written %d + dropped %d: %d neither (queued after Close: %d)",
				round, added.Load(), s.Written, s.Dropped, added.Load()-s.Written-s.Dropped, j.queued())
		}
	}
}
