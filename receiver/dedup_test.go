package receiver

import (
	"runtime"
	"testing"
	"time"
)

func TestDedupWindow(t *testing.T) {
	line := func(org, pno, payload string) []byte {
		return []byte("0000|REQ|" + pno + "|20261121093000|" + org + "|SV01|K|" + payload + "|")
	}
	// Default key: org_code (4), process_no (2) of 9 fields.
	d := newDedup(10 * time.Minute)
	k := func(b []byte) dedupKey {
		key, ok := spec.AppendRawKey(nil, b, []int{4, 2}, 0)
		if !ok {
			t.Fatalf("no key in %q", b)
		}
		return d.key(key)
	}
	a := k(line("ORG01", "000000001", "x"))
	for _, tc := range []struct {
		name string
		line []byte
		same bool
	}{
		{"other payload", line("ORG01", "000000001", "other"), true},
		{"other org", line("ORG02", "000000001", "x"), false},
		{"other process_no", line("ORG01", "000000002", "x"), false},
		{"fields not merged across the separator", line("ORG0", "1000000001", "x"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := k(tc.line) == a; got != tc.same {
				t.Fatalf("same key = %v, want %v", got, tc.same)
			}
		})
	}
	if _, ok := spec.AppendRawKey(nil, []byte("0010|REQ"), []int{4, 2}, 0); ok {
		t.Fatal("key of a line without the fields")
	}

	now := t0
	if d.begin(a, now) {
		t.Fatal("new key is a duplicate")
	}
	d.end(a, false, now) // not stored: not remembered
	if d.begin(a, now) {
		t.Fatal("a key whose store failed is a duplicate")
	}
	d.end(a, true, now)
	for _, tc := range []struct {
		after time.Duration
		dup   bool
	}{{0, true}, {9*time.Minute + 59*time.Second, true}, {10 * time.Minute, false}} {
		dd := newDedup(10 * time.Minute)
		dd.add(a, now)
		if got := dd.begin(a, now.Add(tc.after)); got != tc.dup {
			t.Errorf("after %v: duplicate = %v, want %v", tc.after, got, tc.dup)
		}
	}
	d.setWindow(0)
	if d.begin(a, now) || d.len() != 0 {
		t.Fatal("window 0 still deduplicates")
	}
}

func TestDedupBounded(t *testing.T) {
	d := newDedup(time.Hour)
	d.limit = 10_000
	now := t0
	for i := range d.limit + 1000 {
		d.add(dedupKey{uint64(i), 1}, now)
	}
	if n := d.len(); n != d.limit {
		t.Fatalf("%d entries, bound %d", n, d.limit)
	}
	if d.begin(dedupKey{0, 1}, now) {
		t.Fatal("oldest entry not evicted")
	}
	// Everything expires; the ring gives memory back.
	d.expire(now.Add(2 * time.Hour))
	if d.len() != 0 || d.ring.len() != 0 || len(d.ring.buf) > 1024 {
		t.Fatalf("after expiry: %d keys, ring %d/%d", d.len(), d.ring.len(), len(d.ring.buf))
	}
}

// TestDedupMemory measures the heap per remembered key (reported in the
// issue note): map slot plus ring entry.
func TestDedupMemory(t *testing.T) {
	const n = 200_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d := newDedup(time.Hour)
	now := t0
	for i := range n {
		d.add(dedupKey{uint64(i) * 0x9e3779b97f4a7c15, uint64(i)}, now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per dedup entry (%d entries)", per, d.len())
	if per > 150 {
		t.Fatalf("%.0f bytes per entry", per)
	}
	runtime.KeepAlive(d)
}

func BenchmarkDedupKey(b *testing.B) {
	d := newDedup(10 * time.Minute)
	msg, err := spec.Parse([]byte("0078|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|hello world payload|"))
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = msg.AppendKey(buf[:0], []int{4, 2}, 0)
		d.key(buf)
	}
}
