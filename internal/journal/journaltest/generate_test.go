package journaltest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"spoolgate/internal/journal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestGenerate: the lines are the journal's (Search reads them back), each
// message's events are Events(i), and the past days are gzipped.
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	end := time.Date(2026, 12, 6, 18, 0, 0, 0, time.Local)
	s, err := Generate(Options{Dir: dir, Lines: 20000, Days: 3, End: end, Masked: []string{"org_code"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Lines < 19000 || s.Lines > 21000 || s.Files != 6 {
		t.Fatalf("%+v", s)
	}
	for _, f := range []string{"receiver-2026-12-04.log.gz", "sender-2026-12-05.log.gz", "receiver-2026-12-06.log", "sender-2026-12-06.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	key, err := journal.ReadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 3, 7, 49, 110, s.Messages - 1} {
		res, err := journal.Search(dir, journal.Query{Terms: []journal.Term{{Name: "org_code", Value: OrgCode(i)}, {Name: "process_no", Value: ProcessNo(i)}}, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		want := Events(i)
		if len(res.Entries) != len(want) || len(res.Problems) > 0 || res.Lines != int64(s.Lines) {
			t.Fatalf("message %d: %d entries, want %v; %d lines of %d; %q", i, len(res.Entries), want, res.Lines, s.Lines, res.Problems)
		}
		for k, e := range res.Entries {
			if e.Event != want[k].String() || e.Time.Sub(s.Time(i)).Abs() > 2*time.Second {
				t.Errorf("message %d event %d: %s at %v", i, k, e.Event, e.Time)
			}
		}
		if r := res.Entries[0]; r.Event == "accepted" && i < s.Messages-100 && (r.File[len(r.File)-4:] == "part" || r.Written == "") {
			t.Errorf("message %d: the request file was not resolved to its published name: %+v", i, r)
		}
	}
}
