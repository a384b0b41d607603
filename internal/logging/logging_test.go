package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"spoolgate/internal/e2e"
)

func TestMain(m *testing.M) {
	// lumberjack starts one goroutine per file for compression and cleanup
	// and never stops it (natefinch/lumberjack#56).
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

// here returns "logging_test.go:N" for the line after the call, where the
// test logs.
func here(t *testing.T) string {
	t.Helper()
	_, file, line, _ := runtime.Caller(1)
	return filepath.Base(file) + ":" + strconv.Itoa(line+1)
}

func TestTextFormat(t *testing.T) {
	at := time.Date(2026, 11, 21, 9, 30, 0, 123_456_789, time.Local)
	type stringer struct{ A, B int }
	tests := []struct {
		name  string
		level slog.Level
		msg   string
		attrs []slog.Attr
		want  string // after "] "
	}{
		{"plain", slog.LevelInfo, "accepted 1 message from 10.1.2.3:51234", nil, "accepted 1 message from 10.1.2.3:51234"},
		{"debug", slog.LevelDebug, "m", nil, "m"},
		{"warning as python names it", slog.LevelWarn, "m", nil, "m"},
		{"error", slog.LevelError, "m", nil, "m"},
		{"kinds", slog.LevelInfo, "m", []slog.Attr{
			slog.String("s", "x"), slog.Int("i", -3), slog.Uint64("u", 7), slog.Float64("f", 1.5),
			slog.Bool("b", true), slog.Duration("d", 1500*time.Millisecond),
		}, "m s=x i=-3 u=7 f=1.5 b=true d=1.5s"},
		{"quoting", slog.LevelInfo, "m", []slog.Attr{
			slog.String("sp", "two words"), slog.String("eq", "a=b"), slog.String("q", `say "hi"`),
			slog.String("empty", ""), slog.String("nl", "a\nb"), slog.String("utf8", "héllo"), slog.String("bad", "\xff"),
		}, `m sp="two words" eq="a=b" q="say \"hi\"" empty="" nl="a\nb" utf8=héllo bad="\xff"`},
		{"any", slog.LevelInfo, "m", []slog.Attr{
			slog.Any("err", errors.New("open x: denied")), slog.Any("addr", netip.MustParseAddr("10.1.2.3")),
			slog.Any("bytes", []byte("abc")), slog.Any("struct", stringer{1, 2}), slog.Any("nil", nil),
		}, `m err="open x: denied" addr=10.1.2.3 bytes=abc struct="{A:1 B:2}" nil=<nil>`},
		{"group", slog.LevelInfo, "m", []slog.Attr{
			slog.Group("conn", slog.String("peer", "10.1.2.3:5"), slog.Int("n", 2)), slog.Group("empty"), {},
		}, "m conn.peer=10.1.2.3:5 conn.n=2"},
		{"message newline escaped", slog.LevelInfo, "line1\nline2\r", nil, `line1\nline2\r`},
		{"custom level", slog.LevelInfo + 2, "m", nil, "m"},
	}
	names := map[slog.Level]string{slog.LevelDebug: "DEBUG", slog.LevelInfo: "INFO", slog.LevelWarn: "WARNING", slog.LevelError: "ERROR", slog.LevelInfo + 2: "INFO+2"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := NewTextHandler(&buf, slog.LevelDebug)
			var pcs [1]uintptr
			runtime.Callers(1, pcs[:])
			r := slog.NewRecord(at, tt.level, tt.msg, pcs[0])
			r.AddAttrs(tt.attrs...)
			_, _, line, _ := runtime.Caller(0)
			if err := h.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			want := "2026-11-21 09:30:00,123 - " + names[tt.level] + " - [logging_test.go:" + strconv.Itoa(line-3) + "] " + tt.want + "\n"
			if got := buf.String(); got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestTextLoggerSourceAndWith(t *testing.T) {
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	log := slog.New(NewTextHandler(&buf, lv)).With("daemon", "receiver").WithGroup("conn").With("peer", "10.1.2.3:5")
	src := here(t)
	log.Info("accepted", "n", 1)
	line := buf.String()
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - INFO - \[` + regexp.QuoteMeta(src) + `\] accepted daemon=receiver conn.peer=10.1.2.3:5 conn.n=1\n$`)
	if !re.MatchString(line) {
		t.Errorf("line %q does not match %s", line, re)
	}
}

func TestLevelLive(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Options{Level: "info", Format: "text"}, "receiver", &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Logger.Debug("hidden")
	l.Logger.Info("shown")
	if err := l.SetLevel("debug"); err != nil {
		t.Fatal(err)
	}
	l.Logger.Debug("now shown")
	if err := l.SetLevel("loud"); err == nil {
		t.Error("SetLevel(loud) succeeded")
	}
	if err := l.SetLevel("error"); err != nil {
		t.Fatal(err)
	}
	l.Logger.Warn("hidden again")
	got := buf.String()
	for _, s := range []string{"] shown", "] now shown"} {
		if !strings.Contains(got, s) {
			t.Errorf("missing %q in %q", s, got)
		}
	}
	for _, s := range []string{"hidden"} {
		if strings.Contains(got, s) {
			t.Errorf("unexpected %q in %q", s, got)
		}
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"debug", slog.LevelDebug, true}, {"info", slog.LevelInfo, true}, {"INFO", slog.LevelInfo, true},
		{"warn", slog.LevelWarn, true}, {"warning", slog.LevelWarn, true}, {"error", slog.LevelError, true},
		{"loud", 0, false}, {"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLevel(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseLevel(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Options
		want string
	}{
		{"level", Options{Level: "loud", Format: "text"}, `logging: level "loud": want debug, info, warn or error`},
		{"format", Options{Level: "info", Format: "xml"}, `logging: format "xml": want text or json`},
		{"dir is a file", Options{Level: "info", Format: "text", Dir: notDir, MaxSizeMB: 1}, "logging: create log dir: mkdir " + notDir + ": not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.cfg, "receiver", io.Discard)
			if err == nil {
				l.Close()
				t.Fatal("New succeeded")
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Options{Level: "debug", Format: "json"}, "sender", &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	src := here(t)
	l.Logger.Debug("claimed", "file", "a b.txt")
	var rec struct {
		Level, Msg, File string
		Source           struct {
			File string
			Line int
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %q", err, buf.String())
	}
	got := filepath.Base(rec.Source.File) + ":" + strconv.Itoa(rec.Source.Line)
	if rec.Level != "DEBUG" || rec.Msg != "claimed" || rec.File != "a b.txt" || got != src {
		t.Errorf("record %+v (source %s), want DEBUG claimed a b.txt at %s", rec, got, src)
	}
}

// clock is a settable clock for the midnight rotation.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func fileCfg(dir string) Options {
	return Options{Dir: dir, Level: "info", Format: "text", MaxSizeMB: 1}
}

// backups returns the rotated files of daemon in dir, sorted.
func backups(t *testing.T, dir, daemon string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, daemon+"-*.log*"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFileOutput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log") // created by New
	l, err := New(fileCfg(dir), "receiver", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "receiver.log")); err != nil {
		t.Fatalf("log file not created at New: %v", err)
	}
	l.Logger.Info("started", "listen", "127.0.0.1:9010")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "receiver.log")); !strings.Contains(got, " - INFO - [logging_test.go:") || !strings.HasSuffix(got, "] started listen=127.0.0.1:9010\n") {
		t.Errorf("log file holds %q", got)
	}
}

func TestRotateBySize(t *testing.T) {
	dir := t.TempDir()
	l, err := New(fileCfg(dir), "receiver", io.Discard) // max 1 MB
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pad := strings.Repeat("x", 1000)
	const n = 1200 // ~1.2 MB: one rotation
	for i := range n {
		l.Logger.Info("line", "i", i, "pad", pad)
	}
	b := backups(t, dir, "receiver")
	if len(b) != 1 {
		t.Fatalf("backups %v, want 1", b)
	}
	old, cur := readFile(t, b[0]), readFile(t, filepath.Join(dir, "receiver.log"))
	if len(old) > 1<<20 || len(cur) > 1<<20 {
		t.Errorf("sizes %d and %d, want <= 1 MiB", len(old), len(cur))
	}
	if !strings.Contains(old, " i=0 ") || !strings.Contains(cur, " i="+strconv.Itoa(n-1)+" ") {
		t.Error("first line not in the backup or last line not in the current file")
	}
	if lines := strings.Count(old, "\n") + strings.Count(cur, "\n"); lines != n {
		t.Errorf("%d lines in both files, want %d", lines, n)
	}
}

func TestRotateAtMidnight(t *testing.T) {
	day1 := time.Date(2026, 11, 21, 23, 59, 59, 900e6, time.Local)
	tests := []struct {
		name      string
		daily     bool
		want      int  // backups after crossing midnight
		oldMtime  bool // the file was last written yesterday, before a restart
		crossings []time.Time
	}{
		{"rotates at midnight", true, 1, false, []time.Time{day1.Add(200 * time.Millisecond)}},
		{"once per night", true, 1, false, []time.Time{day1.Add(200 * time.Millisecond), day1.Add(5 * time.Hour)}},
		{"off", false, 0, false, []time.Time{day1.Add(200 * time.Millisecond)}},
		{"restart after midnight rotates yesterday's file", true, 1, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sender.log")
			clk := &clock{t: day1}
			if tt.oldMtime {
				if err := os.WriteFile(path, []byte("yesterday\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(path, day1, day1); err != nil {
					t.Fatal(err)
				}
				clk.set(day1.Add(8 * time.Hour))
			}
			cfg := fileCfg(dir)
			cfg.RotateDaily = tt.daily
			l, err := newLogging(cfg, "sender", io.Discard, clk.now)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			l.Logger.Info("before")
			for _, c := range tt.crossings {
				clk.set(c)
				l.Logger.Info("after")
			}
			b := backups(t, dir, "sender")
			if len(b) != tt.want {
				t.Fatalf("backups %v, want %d", b, tt.want)
			}
			cur := readFile(t, path)
			if tt.want == 0 {
				return
			}
			old := readFile(t, b[0])
			wantOld, wantCur := "] before\n", "] after\n"
			if tt.oldMtime {
				wantOld, wantCur = "yesterday\n", "] before\n"
			}
			if !strings.HasSuffix(old, wantOld) || strings.Contains(old, wantCur) || !strings.Contains(cur, wantCur) || strings.Contains(cur, wantOld) {
				t.Errorf("backup %q, current %q", old, cur)
			}
		})
	}
}

func TestRotateCompress(t *testing.T) {
	dir := t.TempDir()
	cfg := fileCfg(dir)
	cfg.Compress, cfg.RotateDaily = true, true
	clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.Local)}
	l, err := newLogging(cfg, "receiver", io.Discard, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Logger.Info("day one")
	clk.set(clk.now().Add(24 * time.Hour))
	l.Logger.Info("day two")
	// lumberjack compresses in the background: poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b := backups(t, dir, "receiver")
		if len(b) == 1 && strings.HasSuffix(b[0], ".log.gz") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no compressed backup, have %v", b)
		}
		runtime.Gosched()
	}
}

func TestAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	lv := new(slog.LevelVar)
	log := slog.New(NewTextHandler(io.Discard, lv))
	if n := testing.AllocsPerRun(1000, func() { log.Debug("disabled", "n", 1) }); n != 0 {
		t.Errorf("disabled debug line: %v allocs, want 0", n)
	}
	n := testing.AllocsPerRun(1000, func() { log.Info("enabled", "peer", "10.1.2.3:5", "n", 3) })
	t.Logf("enabled info line with 2 attrs: %v allocs", n)
	if n != 0 {
		t.Errorf("enabled info line: %v allocs, want 0", n)
	}
}

func BenchmarkTextHandler(b *testing.B) {
	log := slog.New(NewTextHandler(io.Discard, slog.LevelInfo))
	b.ReportAllocs()
	for b.Loop() {
		log.Info("accepted", "peer", "10.1.2.3:51234", "n", 1, "dur", 3*time.Millisecond)
	}
}

func BenchmarkSlogTextHandler(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{AddSource: true}))
	b.ReportAllocs()
	for b.Loop() {
		log.Info("accepted", "peer", "10.1.2.3:51234", "n", 1, "dur", 3*time.Millisecond)
	}
}

func BenchmarkDisabledDebug(b *testing.B) {
	log := slog.New(NewTextHandler(io.Discard, slog.LevelInfo))
	b.ReportAllocs()
	for b.Loop() {
		log.Debug("accepted", "peer", "10.1.2.3:51234", "n", 1)
	}
}

// TestFileMode: log files are 0640 (the spoolgate group reads them) when
// created, after a rotation at midnight or by size (lumberjack alone makes
// them 0600 under a umask of 077), and an older 0600 file gets the group's
// read bit. The .gz backups lumberjack writes in the background are 0640
// under the units' UMask=0027.
func TestFileMode(t *testing.T) {
	mode := func(path string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	tests := []struct {
		name     string
		umask    int
		compress bool
	}{
		{"umask 077", 0o077, false},
		{"umask 027, compressed", 0o027, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := syscall.Umask(tt.umask) // process-wide: these tests do not run in parallel
			defer syscall.Umask(old)
			dir := t.TempDir()
			cfg := fileCfg(dir) // 1 MB
			cfg.Compress, cfg.RotateDaily = tt.compress, true
			clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.Local)}
			l, err := newLogging(cfg, "receiver", io.Discard, clk.now)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			cur := filepath.Join(dir, "receiver.log")
			if m := mode(cur); m != 0o640 {
				t.Errorf("new log file mode %v, want 0640", m)
			}
			l.Logger.Info("day one")
			clk.set(clk.now().Add(24 * time.Hour))
			l.Logger.Info("day two") // rotates at midnight
			if m := mode(cur); m != 0o640 {
				t.Errorf("after the midnight rotation: mode %v, want 0640", m)
			}
			pad := strings.Repeat("x", 1000)
			for i := range 1100 { // over 1 MB: rotates by size
				l.Logger.Info("line", "i", i, "pad", pad)
			}
			if m := mode(cur); m != 0o640 {
				t.Errorf("after the size rotation: mode %v, want 0640", m)
			}
			if got := readFile(t, cur); !strings.Contains(got, " i=1099 ") || len(got) > 1<<20 {
				t.Errorf("current file: %d bytes, last line there: %v", len(got), strings.Contains(got, " i=1099 "))
			}
			want := ".log"
			if tt.compress {
				want = ".log.gz"
			}
			e2e.WaitFor(t, 10*time.Second, "two "+want+" backups", func() bool {
				b := backups(t, dir, "receiver")
				return len(b) == 2 && strings.HasSuffix(b[0], want) && strings.HasSuffix(b[1], want)
			})
			for _, b := range backups(t, dir, "receiver") {
				if m := mode(b); m != 0o640 {
					t.Errorf("backup %s mode %v, want 0640", filepath.Base(b), m)
				}
			}
		})
	}
	t.Run("older 0600 file", func(t *testing.T) {
		dir := t.TempDir()
		older := filepath.Join(dir, "sender.log")
		if err := os.WriteFile(older, []byte("from an older version\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := New(fileCfg(dir), "sender", io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if m := mode(older); m != 0o640 {
			t.Errorf("existing 0600 log file mode %v, want 0640", m)
		}
	})
}

// samplerEvent is one call of Sampler.Event at t0+at and what it returns.
type samplerEvent struct {
	key   string
	at    time.Duration
	wantN uint64
	ok    bool
}

var samplerT0 = time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)

// replay makes the events' calls in order and fails at the first answer
// that is not the one wanted.
func replay(t *testing.T, s *Sampler, evs []samplerEvent) {
	t.Helper()
	for i, e := range evs {
		n, ok := s.Event(e.key, samplerT0.Add(e.at))
		if n != e.wantN || ok != e.ok {
			t.Fatalf("event %d (%s at %v): n=%d ok=%v, want n=%d ok=%v", i, e.key, e.at, n, ok, e.wantN, e.ok)
		}
	}
}

// TestSampler: one line per key per interval, each carrying the events it
// stands for; keys are independent.
func TestSampler(t *testing.T) {
	s := NewSampler(time.Minute)
	replay(t, s, []samplerEvent{
		{"a", 0, 1, true},
		{"a", time.Second, 0, false},
		{"b", 2 * time.Second, 1, true},
		{"a", 59 * time.Second, 0, false},
		{"a", 60 * time.Second, 3, true},
		{"b", 61 * time.Second, 0, false},
		{"a", 61 * time.Second, 0, false},
		{"b", 62 * time.Second, 2, true},
		{"a", 10 * time.Minute, 2, true},
	})
	if a := testing.AllocsPerRun(100, func() { s.Event("a", samplerT0) }); a != 0 {
		t.Fatalf("Event of a known key allocates %v times", a)
	}
}

// TestBoundedSampler: a bounded sampler holds at most its bound of keys:
// a new key drops those whose interval has passed, and while none has,
// new keys share Overflow's line.
func TestBoundedSampler(t *testing.T) {
	s := NewBoundedSampler(time.Minute, 2)
	replay(t, s, []samplerEvent{
		{"a", 0, 1, true},
		{"b", time.Second, 1, true},
		{"c", 2 * time.Second, 1, true},  // full: Overflow's first line
		{"d", 3 * time.Second, 0, false}, // full: counted under Overflow
		{"a", 4 * time.Second, 0, false}, // a known key is its own
		{"e", 61 * time.Second, 1, true}, // a's interval has passed: a and b dropped, e gets a key
		{"a", 62 * time.Second, 1, true}, // a new key again (its event at 4s dropped with it)
		{"f", 63 * time.Second, 2, true}, // full (e, a): Overflow, standing for d and this one
	})
	if len(s.keys) > 3 {
		t.Fatalf("%d keys, want at most 2 and Overflow", len(s.keys))
	}
}
