package sender

import (
	"context"
	"slices"
	"testing"
	"time"

	"spoolgate/internal/e2e"
)

// TestLimiterResumeOrder: parked claims waiting for a slot get it before
// the picker, oldest file first, and the picker is told to yield.
func TestLimiterResumeOrder(t *testing.T) {
	l := newLimiter(1)
	ctx := t.Context()
	if err := l.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 3)
	for _, m := range []int64{3, 1, 2} {
		go func() {
			if err := l.resume(ctx, &resumeKey{mtime: m, name: "f"}); err != nil {
				t.Error(err)
				return
			}
			got <- m
			l.release()
		}()
	}
	e2e.WaitFor(t, 10*time.Second, "three resume calls waiting", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.resuming) == 3
	})
	select {
	case <-l.yieldWanted():
	default:
		t.Error("yieldWanted not signalled")
	}
	if !l.mustYield() {
		t.Error("mustYield false while resume calls wait for the only slot")
	}
	picker := make(chan error, 1)
	go func() { picker <- l.acquire(ctx) }()
	l.release()
	var order []int64
	for range 3 {
		select {
		case m := <-got:
			order = append(order, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("resumed %v, then stuck", order)
		}
	}
	if !slices.Equal(order, []int64{1, 2, 3}) {
		t.Errorf("resumed in order %v, want oldest first", order)
	}
	select {
	case err := <-picker:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("picker never got the slot")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.resume(cctx, &resumeKey{}); err == nil {
		t.Error("resume with a done context and no free slot returned nil")
	}
}
