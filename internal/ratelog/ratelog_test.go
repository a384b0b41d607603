package ratelog

import (
	"bytes"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRateLimited: per cause, the first event is logged at once, the rest
// of the interval as one line with their count and the last sample; each
// cause on its own; Close reports what is pending.
func TestRateLimited(t *testing.T) {
	var buf syncBuf
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), 300*time.Millisecond)
	for i := range 100 {
		l.Warn("per_ip", "refused: per ip", "10.0.0."+strconv.Itoa(i%7)+":1234")
	}
	l.Warn("allow", "refused: allow", "192.0.2.1:1")
	if n := strings.Count(buf.String(), "msg="); n != 2 {
		t.Fatalf("%d lines at once, want 2 (one per cause):\n%s", n, buf.String())
	}
	summary := regexp.MustCompile(`"refused: per ip \(rate-limited\)" cause=per_ip count=99 sample=10\.0\.0\.1:1234`)
	deadline := time.Now().Add(10 * time.Second)
	for !summary.MatchString(buf.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no summary:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the log the timer writes
	}
	// Within the interval that the summary began, events are counted; Close
	// reports them.
	l.Warn("per_ip", "refused: per ip", "10.0.0.9:1")
	l.Close()
	// (On a stalled machine the interval may be over: then it is logged at once.)
	if !strings.Contains(buf.String(), "count=1 sample=10.0.0.9:1") && !strings.Contains(buf.String(), "remote=10.0.0.9:1") {
		t.Fatalf("Close did not report the pending count:\n%s", buf.String())
	}
	l.Warn("per_ip", "refused: per ip", "10.0.0.9:2") // after Close: dropped
	if strings.Contains(buf.String(), "10.0.0.9:2") {
		t.Fatal("logged after Close")
	}
}
