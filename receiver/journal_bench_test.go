package receiver

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"spoolgate/internal/journal"
)

// BenchmarkPipeJournal: batches of 64 pipelined messages validated,
// stored (fsync=never) and answered, journal off and on: the journal's
// cost per message, its writer goroutine's included with -cpu 1 (each
// batch yields, as a connection does when it writes its replies, so that
// the writer runs; a record dropped fails it).
func BenchmarkPipeJournal(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("journal=%v", on), func(b *testing.B) {
			var jr *journal.Journal
			if on {
				jr, _ = openTestJournal(b)
			}
			cfg := testConfig(b)
			cfg.Fsync = FsyncNever
			cfg.DedupWindow = 0
			srv, err := New(Options{Config: cfg, SummaryEvery: -1, Journal: jr})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			const batch = 64
			lines := make([][]byte, batch)
			for j := range lines {
				l := req(b, fmt.Sprintf("%09d", j), "bench journal payload")
				lines[j] = l[:len(l)-1]
			}
			live := srv.cfg.Load()
			p := &pipe{s: srv, remote: "127.0.0.1:51234"}
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				p.reset(live, false)
				for _, line := range lines {
					p.add(line, nil)
				}
				p.commit()
				p.replies(time.Now())
				runtime.Gosched()
			}
			if jr != nil {
				jr.Close()
				if s := jr.Stats(); s.Dropped > 0 {
					b.Fatalf("dropped %d of %d", s.Dropped, b.N)
				}
			}
		})
	}
}
