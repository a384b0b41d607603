package journal_test

import (
	"os"
	"testing"
	"time"

	"spoolgate/internal/journal"
	"spoolgate/internal/journal/journaltest"
)

// BenchmarkSearch: Search over generated journals of both daemons, ten
// days, nine gzipped (SPOOLGATE_SEARCH_BENCH_LINES lines, default 1,000,000),
// for one process_no; ns/op is one whole search.
func BenchmarkSearch(b *testing.B) {
	n := 1000000
	if v := os.Getenv("SPOOLGATE_SEARCH_BENCH_LINES"); v != "" {
		var err error
		if n, err = atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	s, err := journaltest.Generate(journaltest.Options{Dir: dir, Lines: n, Days: 10, End: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	i := s.Messages / 2
	q := journal.Query{Terms: []journal.Term{{Name: "process_no", Value: journaltest.ProcessNo(i)}}}
	b.ResetTimer()
	for b.Loop() {
		res, err := journal.Search(dir, q)
		if err != nil || len(res.Entries) == 0 {
			b.Fatal(err, res.Entries)
		}
	}
	b.ReportMetric(float64(s.Lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func atoi(s string) (int, error) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, os.ErrInvalid
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}
