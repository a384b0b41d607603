package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// body is a valid spool line (a message without its length field) with
// process_no n.
func body(n int) string {
	return fmt.Sprintf("REQ|%09d|20261121093000|ORG01|SV01|KEY-%d|payload %d|", n, n, n)
}

// remote is the shared scriptable fake receiver (e2e.Remote) with the
// knobs these tests set. By default it answers every message 200, echoing
// its process_no.
type remote struct {
	*e2e.Remote

	// answer decides the reply to a message (full line, no LF): a code, or
	// 0 to never answer. It runs on the connection's goroutine.
	answer         func(line []byte) int
	delay          time.Duration // before each reply
	closeAfterEach bool          // close the connection after each reply (stale keep-alive)
}

func startRemote(t *testing.T, setup func(*remote)) *remote {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveRemote(t, ln, setup)
}

func serveRemote(t *testing.T, ln net.Listener, setup func(*remote)) *remote {
	r := &remote{answer: func([]byte) int { return protocol.CodeOK }}
	if setup != nil {
		setup(r)
	}
	r.Remote = e2e.ServeRemote(t, ln, func(m e2e.Msg) e2e.Action {
		code := r.answer(m.Line)
		return e2e.Action{Code: code, Delay: r.delay, Close: r.closeAfterEach && code != 0}
	})
	return r
}

func (r *remote) addr() string { return r.Addr() }

// messages returns a copy of what was received.
func (r *remote) messages() []string { return r.Messages() }

func (r *remote) stats() (maxOpen, maxBusy, accepted int) {
	maxOpen, maxBusy = r.Max()
	return maxOpen, maxBusy, r.Accepted()
}

// resetMax restarts the high-water marks from the current values.
func (r *remote) resetMax() { r.ResetMax() }

// testConf is a sender configuration for tests: fast timers, directories
// under t.TempDir().
func testConf(t *testing.T, addrs ...string) conf.Sender {
	dir := t.TempDir()
	c := conf.Default().Sender
	c.Remote = addrs
	c.SpoolDir = filepath.Join(dir, "spool")
	c.FailedDir = filepath.Join(dir, "failed")
	c.Workers = 4
	c.Timeout = 2 * time.Second
	c.Retries = 2
	c.ConnectTimeout = time.Second
	c.RetryBackoff = 10 * time.Millisecond
	c.RetryBackoffMax = 50 * time.Millisecond
	c.ScanInterval = 200 * time.Millisecond
	c.Settle = 20 * time.Millisecond
	if err := os.MkdirAll(c.SpoolDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runSender starts a Sender and waits until it has started; stop drains
// it and returns Run's error (also checked at cleanup).
func runSender(t *testing.T, c conf.Sender, opt func(*Options)) (s *Sender, stop func() error) {
	t.Helper()
	o := Options{Config: c, Logger: testLogger(t), ShutdownTimeout: 2 * time.Second}
	if opt != nil {
		opt(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Started():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("sender did not start")
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, stop
}

// drop puts a file into dir the way producers should: written under a
// dot name, given its mtime, renamed in.
func drop(t *testing.T, dir, name, content string, mtime time.Time) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// listDir returns the sorted names in dir (none if it does not exist).
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	sort.Strings(names)
	return names
}

// visible returns the names in dir that are not dotfiles.
func visible(t *testing.T, dir string) []string {
	var out []string
	for _, n := range listDir(t, dir) {
		if n[0] != '.' {
			out = append(out, n)
		}
	}
	return out
}

// processNo returns the process_no of a received message.
func processNo(line string) string {
	return string(protocol.DefaultDialect().ProcessNo([]byte(line)))
}
