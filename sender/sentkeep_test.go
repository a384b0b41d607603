package sender

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"spoolgate/internal/e2e"
)

// TestSentKeep: sender.sent_keep removes from sent_dir the regular files
// whose modification time is older than the keep, and only those: not a
// newer file, a dotfile, a subdirectory or what it holds, nor a symlink;
// each removal counted. A running sender sweeps at start (a file it
// delivers meanwhile stays: its time is new).
func TestSentKeep(t *testing.T) {
	const keep = 48 * time.Hour
	r := startRemote(t, nil)
	c := testConf(t, r.addr())
	c.SentDir = filepath.Join(t.TempDir(), "sent")
	c.SentKeep = keep
	now := time.Now()
	files := map[string]time.Time{
		"old.txt":          now.Add(-keep - time.Hour),
		"older.txt":        now.Add(-10 * keep),
		"new.txt":          now.Add(-keep + time.Hour),
		".old.tmp":         now.Add(-10 * keep),
		"sub/old-in-a-dir": now.Add(-10 * keep),
	}
	for name, mt := range files {
		p := filepath.Join(c.SentDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body(1)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	old := now.Add(-10 * keep)
	if err := os.Chtimes(filepath.Join(c.SentDir, "sub"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("new.txt", filepath.Join(c.SentDir, "link")); err != nil {
		t.Fatal(err)
	}
	s, stop := runSender(t, c, nil)
	drop(t, c.SpoolDir, "fresh.txt", body(2)+"\n", time.Time{})
	e2e.WaitFor(t, 10*time.Second, "the old files removed at start, the fresh one archived", func() bool {
		_, err := os.Stat(filepath.Join(c.SentDir, "fresh.txt"))
		return err == nil && testutil.ToFloat64(s.sentRemoved) == 2
	})
	want := []string{".old.tmp", "fresh.txt", "link", "new.txt", "sub"}
	if got := listDir(t, c.SentDir); !slices.Equal(got, want) {
		t.Errorf("sent_dir %v, want %v", got, want)
	}
	if got := listDir(t, filepath.Join(c.SentDir, "sub")); len(got) != 1 {
		t.Errorf("sent_dir/sub %v: what a subdirectory holds is not swept", got)
	}
	// A sweep a day later: new.txt is old by then, fresh.txt not.
	if n := s.sweepSent(context.Background(), now.Add(24*time.Hour), keep); n != 1 {
		t.Errorf("a day later: %d removed, want 1 (new.txt)", n)
	}
	want = []string{".old.tmp", "fresh.txt", "link", "sub"}
	if got := listDir(t, c.SentDir); !slices.Equal(got, want) {
		t.Errorf("a day later: sent_dir %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(s.sentRemoved); got != 3 {
		t.Errorf("spoolgate_sender_sent_removed_total %v, want 3", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
