package sender

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeInfo is an fs.FileInfo with a size and a modification time.
type fakeInfo struct {
	size  int64
	mtime time.Time
}

func (f fakeInfo) Name() string       { return "f" }
func (f fakeInfo) Size() int64        { return f.size }
func (f fakeInfo) Mode() fs.FileMode  { return 0o644 }
func (f fakeInfo) ModTime() time.Time { return f.mtime }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return nil }

func TestEligibleName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"result_001.txt", true},
		{"a", true},
		{"x.tmp.txt", true},
		{".hidden", false},
		{".inflight", false},
		{"upload.tmp", false},
		{"upload.part", false},
		{"", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := eligibleName(tc.name); got != tc.want {
				t.Fatalf("eligibleName(%q) = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}

func drain(q *queue, now time.Time) []string {
	var names []string
	for {
		e, _, _ := q.next(now)
		if e == nil {
			return names
		}
		names = append(names, e.name)
	}
}

func TestQueueOrder(t *testing.T) {
	base := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	t0 := time.Now()
	for _, tc := range []struct {
		name  string
		files map[string]time.Duration // name -> mtime offset from base
		want  []string
	}{
		{"by mtime", map[string]time.Duration{"c": 1, "a": 3, "b": 2}, []string{"c", "b", "a"}},
		{"ties by name", map[string]time.Duration{"b": 5, "a": 5, "c": 1}, []string{"c", "a", "b"}},
		{"one", map[string]time.Duration{"only": 0}, []string{"only"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(time.Second)
			for name, off := range tc.files {
				q.observe(name, fakeInfo{1, base.Add(off)}, t0)
			}
			if e, _, wait := q.next(t0); e != nil || wait != time.Second {
				t.Fatalf("before settle: next = %v, wait %v; want nothing, wait 1s", e, wait)
			}
			got := drain(q, t0.Add(time.Second))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("order %v, want %v", got, tc.want)
			}
		})
	}
}

func TestQueueSettleRestarts(t *testing.T) {
	q := newQueue(time.Second)
	t0 := time.Now()
	mt := time.Unix(1000, 0)
	q.observe("a", fakeInfo{10, mt}, t0)
	q.observe("a", fakeInfo{10, mt}, t0.Add(900*time.Millisecond)) // unchanged: keeps its start
	q.observe("b", fakeInfo{10, mt.Add(time.Hour)}, t0)
	q.observe("b", fakeInfo{20, mt.Add(time.Hour)}, t0.Add(500*time.Millisecond)) // grew: settles again
	if got := drain(q, t0.Add(time.Second)); fmt.Sprint(got) != "[a]" {
		t.Fatalf("after 1s got %v, want [a]", got)
	}
	e, _, wait := q.next(t0.Add(time.Second))
	if e != nil || wait != 500*time.Millisecond {
		t.Fatalf("next = %v, wait %v; want nil, 500ms", e, wait)
	}
	if got := drain(q, t0.Add(1500*time.Millisecond)); fmt.Sprint(got) != "[b]" {
		t.Fatalf("after 1.5s got %v, want [b]", got)
	}
}

func TestQueueRestoredFirstAndBlocked(t *testing.T) {
	q := newQueue(0)
	t0 := time.Now()
	q.observe("old", fakeInfo{1, time.Unix(1, 0)}, t0)
	q.observe("same", fakeInfo{1, time.Unix(2, 0)}, t0)
	q.restore([]*entry{{name: "same", mtime: time.Unix(50, 0).UnixNano()}})
	e, restored, _ := q.next(t0)
	if e == nil || e.name != "same" || !restored {
		t.Fatalf("first = %+v restored=%v, want restored claim 'same'", e, restored)
	}
	// "same" in the spool waits for the claim of the same name.
	if got := drain(q, t0); fmt.Sprint(got) != "[old]" {
		t.Fatalf("got %v, want [old]", got)
	}
	if n, _ := q.stats(); n != 1 {
		t.Fatalf("pending %d, want 1 (blocked)", n)
	}
	q.done("same")
	if got := drain(q, t0); fmt.Sprint(got) != "[same]" {
		t.Fatalf("after done got %v, want [same]", got)
	}
}

func TestQueueForgetAndStats(t *testing.T) {
	q := newQueue(time.Second)
	t0 := time.Now()
	q.observe("a", fakeInfo{1, time.Unix(30, 0)}, t0)
	q.observe("b", fakeInfo{1, time.Unix(10, 0)}, t0)
	q.observe("c", fakeInfo{1, time.Unix(20, 0)}, t0)
	n, oldest := q.stats()
	if n != 3 || oldest != time.Unix(10, 0).UnixNano() {
		t.Fatalf("stats = %d, %d", n, oldest)
	}
	q.forget("b")
	q.forget("nope")
	n, oldest = q.stats()
	if n != 2 || oldest != time.Unix(20, 0).UnixNano() {
		t.Fatalf("stats after forget = %d, %d", n, oldest)
	}
	if got := drain(q, t0.Add(time.Second)); fmt.Sprint(got) != "[c a]" {
		t.Fatalf("got %v", got)
	}
}

// BenchmarkPick measures one pick (next, then a new file observed) with
// 100 and 100,000 files pending: the cost must grow no faster than log n.
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{100, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			q := newQueue(0)
			t0 := time.Now()
			names := make([]string, n+b.N)
			for i := range names {
				names[i] = fmt.Sprintf("f%09d", i)
			}
			for i := 0; i < n; i++ {
				q.observe(names[i], fakeInfo{1, time.Unix(int64(i), 0)}, t0)
			}
			q.next(t0) // settle everything
			q.observe(names[0], fakeInfo{1, time.Unix(0, 0)}, t0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e, _, _ := q.next(t0)
				if e == nil {
					b.Fatal("empty")
				}
				q.observe(names[n+i], fakeInfo{1, time.Unix(int64(n+i), 0)}, t0)
			}
		})
	}
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	q := newQueue(0)
	var special []string
	w := &watcher{dir: dir, q: q, interval: func() time.Duration { return time.Hour },
		special: func(name string, _ fs.FileInfo) { special = append(special, name) },
		onError: func(op string, err error) { t.Errorf("%s: %v", op, err) }}
	q.observe("gone.txt", fakeInfo{1, time.Unix(1, 0)}, time.Now())
	for _, n := range []string{"a.txt", "b.txt", ".dot", "c.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "l.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := w.scan(); err != nil {
		t.Fatal(err)
	}
	if got := drain(q, time.Now()); fmt.Sprint(got) != "[a.txt b.txt]" && fmt.Sprint(got) != "[b.txt a.txt]" {
		t.Fatalf("pending after scan: %v", got)
	}
	if fmt.Sprint(special) != "[l.txt]" {
		t.Fatalf("special: %v", special)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := w.scan(); err == nil || w.scanErr.Load() == nil {
		t.Fatal("scan of a missing spool did not fail")
	}
}

// BenchmarkRescan measures a periodic rescan of a spool holding 100,000
// files the queue already knows.
func BenchmarkRescan(b *testing.B) {
	dir := b.TempDir()
	q := newQueue(0)
	w := &watcher{dir: dir, q: q, interval: func() time.Duration { return time.Hour },
		special: func(string, fs.FileInfo) {}, onError: func(op string, err error) { b.Fatal(op, err) }}
	for i := 0; i < 100_000; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("result_%06d.txt", i)))
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	if err := w.scan(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.scan(); err != nil {
			b.Fatal(err)
		}
	}
}
