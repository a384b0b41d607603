package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"spoolgate/internal/e2e"
)

// TestWatchFiles: a file replaced by rename, or written in place, calls
// the function (debounced); after Set, files of another directory do and
// the old directory's do not.
func TestWatchFiles(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	certA, certB := filepath.Join(a, "server.pem"), filepath.Join(b, "server.pem")
	e2e.WriteFile(t, certA, "one")
	e2e.WriteFile(t, certB, "one")
	var calls atomic.Int32
	fw := WatchFiles(context.Background(), "tls files", []string{certA}, slog.New(slog.DiscardHandler), func() { calls.Add(1) })
	defer fw.Close()

	// The watch is in place once a change is seen: change the file now and
	// then (each change restarts the debounce) until one is.
	changeUntil := func(path string, seen func() bool) {
		t.Helper()
		for i := 0; i < 20 && !seen(); i++ {
			e2e.WriteFile(t, path, "change")
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) && !seen() {
				time.Sleep(10 * time.Millisecond) // polling a counter the watcher sets
			}
		}
		if !seen() {
			t.Fatalf("no call after changes of %s", path)
		}
	}
	changeUntil(certA, func() bool { return calls.Load() > 0 })
	n := calls.Load()
	if err := os.WriteFile(certA, []byte("three"), 0o600); err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, 10*time.Second, "an in-place write seen", func() bool { return calls.Load() > n })

	fw.Set([]string{certB})
	changeUntil(certB, func() bool { return calls.Load() > n+1 })
	n = calls.Load()
	e2e.WriteFile(t, certA, "four")
	time.Sleep(3 * debounce) // nothing to wait for: checking that no call comes
	if calls.Load() != n {
		t.Fatal("the old directory is still watched")
	}
}
