package sender

import (
	"testing"
	"time"
)

// TestProbeDelay: the circuit's probes follow the retry backoff while it is
// short, and never wait longer than probeMax (4 s), whatever
// sender.retry_backoff(_max) say: a remote that comes back is noticed
// within 5 s at the defaults (issue 24: probes backed off to 60 s).
func TestProbeDelay(t *testing.T) {
	const s, ms = time.Second, time.Millisecond
	for _, tc := range []struct {
		name         string
		backoff, max time.Duration
		want         []time.Duration // probes 1, 2, …
	}{
		{"defaults", 1 * s, 60 * s, []time.Duration{500 * ms, 1 * s, 2 * s, 4 * s, 4 * s, 4 * s, 4 * s, 4 * s}},
		{"long backoff", 30 * s, 5 * time.Minute, []time.Duration{500 * ms, 1 * s, 2 * s, 4 * s, 4 * s}},
		{"short backoff", 10 * ms, 50 * ms, []time.Duration{10 * ms, 20 * ms, 40 * ms, 50 * ms, 50 * ms}},
		{"backoff between", 200 * ms, 10 * s, []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 4 * s}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, want := range tc.want {
				if got := probeDelay(i+1, tc.backoff, tc.max); got != want {
					t.Errorf("probe %d waits %v, want %v", i+1, got, want)
				}
			}
			for n := 1; n < 100; n++ {
				if d := probeDelay(n, tc.backoff, tc.max); d > probeMax || jitter(d) > probeMax {
					t.Fatalf("probe %d waits %v, more than %v", n, d, probeMax)
				}
			}
		})
	}
}
