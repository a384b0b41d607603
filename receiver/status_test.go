package receiver

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/protocol"
)

func TestQuantileAndRejectStats(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: []float64{1, 2, 4}})
	if got := quantile(histogramOf(h), 0.5); got != 0 {
		t.Fatalf("empty: %v", got)
	}
	for _, v := range []float64{0.5, 1.5, 1.5, 3} { // buckets: 1 in ≤1, 2 in ≤2, 1 in ≤4
		h.Observe(v)
	}
	for _, tc := range []struct{ q, want float64 }{{0.25, 1}, {0.5, 1.5}, {0.75, 2}, {1, 4}} {
		if got := quantile(histogramOf(h), tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("q%v = %v, want %v", tc.q, got, tc.want)
		}
	}
	var r rejectStats
	tr := newTrail(protocol.DefaultDialect(), nil, nil, nil)
	now := time.Now()
	for i := range maxReasons + 5 { // 5 beyond the bound count as "other"
		r.note(string(rune('a'+i%26))+string(rune('A'+i/26)), &tr, []byte("bad\xff"), now)
	}
	r.note("aA", &tr, []byte("second"), now) // within a second: the sample stays
	top := r.top(3)
	if len(r.m) != maxReasons+1 || top[0].Reason != "other" || top[0].Count != 5 || top[1].Reason != "aA" || top[1].Count != 2 || top[1].Sample != "bad\uFFFD" {
		t.Fatalf("top = %+v (%d reasons)", top, len(r.m))
	}
}
