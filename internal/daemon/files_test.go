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

// TestWatchFilesOnlyTheirNames: writes of another file in the directory (a
// log file beside the certificates) call nothing, nor do events that leave
// the files' contents as they were when last called (a rejected reload's
// error written into the directory must not start the next reload, issue
// 21); a Kubernetes "..data" symlink swap does call.
func TestWatchFilesOnlyTheirNames(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"..2026_01", "..2026_02"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		e2e.WriteFile(t, filepath.Join(dir, d, "tls.crt"), "cert of "+d)
	}
	if err := os.Symlink("..2026_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	cert := filepath.Join(dir, "tls.crt")
	if err := os.Symlink("..data/tls.crt", cert); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "receiver.log")
	var calls atomic.Int32
	fw := WatchFiles(context.Background(), "tls files", []string{cert}, slog.New(slog.DiscardHandler), func() {
		calls.Add(1)
		// What a rejected reload does: log an error into the directory.
		f, err := os.OpenFile(logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			f.WriteString("ERROR tls reload rejected\n")
			f.Close()
		}
	})
	defer fw.Close()

	// The swap, until the watch (set up on its goroutine) sees one.
	swap := func(to string) {
		t.Helper()
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(to, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	targets := []string{"..2026_02", "..2026_01"}
	for i := 0; calls.Load() == 0; i++ {
		if i == 20 {
			t.Fatal("no call after ..data swaps")
		}
		swap(targets[i%2])
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) && calls.Load() == 0 {
			time.Sleep(10 * time.Millisecond) // polling a counter the watcher sets
		}
	}
	n := calls.Load()
	// Nothing to wait for: checking that no call comes while the log file
	// and another file of the directory are written, over ten debounces.
	for deadline := time.Now().Add(10 * debounce); time.Now().Before(deadline); {
		e2e.WriteFile(t, filepath.Join(dir, "other.txt"), time.Now().String())
		f, err := os.OpenFile(logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("INFO something\n")
		f.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if got := calls.Load(); got != n {
		t.Fatalf("%d calls after writes of other files, want %d", got, n)
	}
	// A swap to a copy of what is in use: events, no change, no call.
	target, _ := os.Readlink(filepath.Join(dir, "..data"))
	for _, d := range []string{"..2026_03", "..2026_04"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e2e.WriteFile(t, filepath.Join(dir, "..2026_03", "tls.crt"), "cert of "+target)
	e2e.WriteFile(t, filepath.Join(dir, "..2026_04", "tls.crt"), "a new cert")
	swap("..2026_03")
	time.Sleep(3 * debounce) // nothing to wait for: checking that no call comes
	if got := calls.Load(); got != n {
		t.Fatalf("%d calls after a swap to the same contents, want %d", got, n)
	}
	swap("..2026_04")
	e2e.WaitFor(t, 10*time.Second, "a change of the contents seen", func() bool { return calls.Load() == n+1 })
}
