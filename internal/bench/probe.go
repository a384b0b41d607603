package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"
)

// PauseThreshold is the oversleep from which Probe counts a pause.
const PauseThreshold = 20 * time.Millisecond

// ProbeResult is what Probe measured about this machine: how fast a file in
// a directory can be made durable, one fsync at a time, and how long the
// machine stops a sleeping goroutine. The first bounds a receiver with
// fsync=always: at C clients in flight it cannot store more than about
// C x SyncsPerSecond messages a second. The second says how much of any
// wall-clock figure measured here is the machine standing still.
type ProbeResult struct {
	Syncs          int           `json:"syncs"`
	SyncsPerSecond float64       `json:"syncs_per_second"`
	SyncP50        time.Duration `json:"sync_p50_ns"`
	SyncP99        time.Duration `json:"sync_p99_ns"`
	SyncMax        time.Duration `json:"sync_max_ns"`
	SyncSeconds    float64       `json:"sync_seconds"`
	// Pauses: 1 ms sleeps that came back PauseThreshold or more late.
	Pauses       int           `json:"pauses"`
	PauseShare   float64       `json:"pause_share"` // of the wall time of the pause probe
	PauseMax     time.Duration `json:"pause_max_ns"`
	PauseSeconds float64       `json:"pause_seconds"`
}

// String formats the result for a terminal.
func (r ProbeResult) String() string {
	return fmt.Sprintf("fsync: %d in %.1fs: %.0f/s, p50 %v p99 %v max %v (one writer appending %d-byte lines, as the receiver does)\n"+
		"pauses: %d sleeps of 1ms came back %v or more late, %.0f%% of %.1fs, longest %v",
		r.Syncs, r.SyncSeconds, r.SyncsPerSecond, r.SyncP50.Round(time.Microsecond), r.SyncP99.Round(time.Microsecond),
		r.SyncMax.Round(time.Microsecond), probeLine, r.Pauses, PauseThreshold, 100*r.PauseShare, r.PauseSeconds,
		r.PauseMax.Round(time.Millisecond))
}

// probeLine is the size of one appended line: a typical message.
const probeLine = 100

// Probe measures for d the fsync rate of a new file in dir (removed after),
// then for d how long this process's 1 ms sleeps overshoot. It stops early
// when ctx is done.
func Probe(ctx context.Context, dir string, d time.Duration) (ProbeResult, error) {
	var r ProbeResult
	f, err := os.CreateTemp(dir, ".spoolgate-probe-*")
	if err != nil {
		return r, fmt.Errorf("probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	line := make([]byte, probeLine)
	for i := range line {
		line[i] = 'x'
	}
	line[len(line)-1] = '\n'
	var lat []time.Duration
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		if _, err := f.Write(line); err != nil {
			return r, fmt.Errorf("probe: %w", err)
		}
		t := time.Now()
		if err := f.Sync(); err != nil {
			return r, fmt.Errorf("probe: %w", err)
		}
		lat = append(lat, time.Since(t))
	}
	r.SyncSeconds = time.Since(start).Seconds()
	r.Syncs = len(lat)
	if r.Syncs > 0 {
		slices.Sort(lat)
		r.SyncsPerSecond = float64(r.Syncs) / r.SyncSeconds
		r.SyncP50, r.SyncP99, r.SyncMax = lat[len(lat)/2], lat[(len(lat)-1)*99/100], lat[len(lat)-1]
	}

	var paused time.Duration
	start = time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		t := time.Now()
		time.Sleep(time.Millisecond)
		if over := time.Since(t) - time.Millisecond; over >= PauseThreshold {
			r.Pauses++
			paused += over
			r.PauseMax = max(r.PauseMax, over)
		}
	}
	el := time.Since(start)
	r.PauseSeconds = el.Seconds()
	if el > 0 {
		r.PauseShare = float64(paused) / float64(el)
	}
	return r, nil
}
