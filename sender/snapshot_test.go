package sender

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"spoolgate/conf"
)

// fillQueue observes n files with shuffled modification times, all settled
// by now.
func fillQueue(q *queue, n int, base, seen time.Time) []string {
	names := make([]string, n)
	perm := rand.Perm(n)
	for i, p := range perm {
		name := fmt.Sprintf("r%06d.txt", p)
		names[p] = name
		q.observe(name, fakeInfo{size: int64(p), mtime: base.Add(time.Duration(p) * time.Second)}, seen)
		_ = i
	}
	return names // index = age rank: names[0] is the oldest
}

// The oldest listing is the first k of the queue's order (restored claims,
// then by modification time), whatever the size, without changing what
// the sender picks next.
func TestQueueOldest(t *testing.T) {
	base := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	now := time.Now()
	for _, n := range []int{0, 1, 7, 50, 51, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			q := newQueue(time.Second)
			names := fillQueue(q, n, base, now.Add(-time.Minute))
			q.observe("fresh.txt", fakeInfo{size: 1, mtime: base.Add(-time.Hour)}, now) // still settling
			q.restore([]*entry{{name: "back.txt", size: 9, mtime: base.Add(time.Hour).UnixNano()}})
			got, pending, oldest := q.oldest(50, now)
			if pending != n+2 {
				t.Fatalf("pending = %d, want %d", pending, n+2)
			}
			if want := base.Add(-time.Hour).UnixNano(); oldest != want {
				t.Fatalf("oldest = %d, want %d", oldest, want)
			}
			want := append([]string{"back.txt", "fresh.txt"}, names[:min(n, 48)]...)
			var gotNames []string
			for _, f := range got {
				gotNames = append(gotNames, f.Name)
			}
			if !slices.Equal(gotNames, want) {
				t.Fatalf("oldest = %v\nwant %v", gotNames, want)
			}
			if !got[0].Restored || got[1].Restored {
				t.Fatalf("restored flags wrong: %+v", got[:2])
			}
			// The pick order is unchanged.
			picked := drain(q, now.Add(2*time.Second))
			if wantPick := append([]string{"back.txt", "fresh.txt"}, names...); !slices.Equal(picked, wantPick) {
				t.Fatalf("picked %v…, want %v…", picked[:min(5, len(picked))], wantPick[:min(5, len(wantPick))])
			}
		})
	}
}

func TestFailedListingAndReasons(t *testing.T) {
	c := testConf(t, "127.0.0.1:1")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i, name := range []string{"b.txt", "a.txt", "c.txt.line-2"} {
		writeFile(t, filepath.Join(c.FailedDir, name), body(i)+"\n", t0)
		f := failure{file: name, lines: "1", remote: "10.0.0.1:9010", code: 400, attempts: i + 1, reason: fmt.Sprintf("rejected <%d>", i)}
		writeFile(t, filepath.Join(c.FailedDir, name+ReasonSuffix), string(f.text(t0.Add(time.Duration(i)*time.Minute))), t0.Add(time.Duration(i)*time.Minute))
	}
	writeFile(t, filepath.Join(c.FailedDir, "bare.txt"), "x\n", t0.Add(-time.Minute))
	fs, err := ReadFailed(c)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, fmt.Sprintf("%s %d %d %s", f.Name, f.Code, f.Attempts, f.Reason))
	}
	want := []string{"bare.txt 0 0 (no .reason file)", "b.txt 400 1 rejected <0>", "a.txt 400 2 rejected <1>", "c.txt.line-2 400 3 rejected <2>"}
	if !slices.Equal(got, want) {
		t.Fatalf("ReadFailed:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	x := &failedIndex{dir: c.FailedDir}
	page, total, err := x.page(1, 2)
	if err != nil || total != 4 || len(page) != 2 || page[0].Name != "a.txt" || page[1].Name != "b.txt" || page[0].Remote != "10.0.0.1:9010" {
		t.Fatalf("page(1,2) = %+v, %d, %v", page, total, err)
	}
	if n, _ := x.count(); n != 4 {
		t.Fatalf("count = %d", n)
	}
}

// BenchmarkSnapshot100k is the sender side of the console with 100,000
// pending files: the listing of the oldest 50 must not sort the backlog.
func BenchmarkSnapshot100k(b *testing.B) {
	c := conf.Default().Sender
	c.Remote = []string{"127.0.0.1:1"}
	c.SpoolDir, c.FailedDir = filepath.Join(b.TempDir(), "spool"), filepath.Join(b.TempDir(), "failed")
	s, err := New(Options{Config: c})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	fillQueue(s.q, 100_000, now.Add(-48*time.Hour), now.Add(-time.Minute))
	s.Snapshot(now, 50) // the one-off promotion of the start-up scan
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sn := s.Snapshot(now, 50)
		if len(sn.Oldest) != 50 || sn.Pending != 100_000 {
			b.Fatalf("snapshot: %d listed, %d pending", len(sn.Oldest), sn.Pending)
		}
	}
}
