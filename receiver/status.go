package receiver

import (
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Status is what a running receiver shows of itself: the console and its
// /api/status read it. It is a copy: changing it changes nothing.
type Status struct {
	Ready     bool     `json:"ready"`
	NotReady  string   `json:"not_ready,omitempty"`
	Listening []string `json:"listening"`
	// Connections counts the connections being served now.
	Connections int `json:"connections"`
	// Messages counts the replies since start by code ("200", "400", "500").
	Messages   map[string]uint64 `json:"messages_total"`
	Duplicates uint64            `json:"duplicates_total"`
	Denied     uint64            `json:"denied_connections_total"`
	// Rejects are the reasons of 400s since start, most frequent first, with
	// the latest message rejected for each (cut at sampleBytes, decoded to
	// UTF-8).
	Rejects []RejectReason `json:"rejects"`
	// StoreP50Seconds and StoreP99Seconds estimate the store latency
	// (message complete → durable) since start from the histogram's
	// buckets; LinesPerFsync is the mean lines made durable by one fsync.
	StoreP50Seconds float64 `json:"store_p50_seconds"`
	StoreP99Seconds float64 `json:"store_p99_seconds"`
	LinesPerFsync   float64 `json:"lines_per_fsync"`
	DataDir         string  `json:"data_dir"`
	FreeBytes       uint64  `json:"data_dir_free_bytes"`
	TotalBytes      uint64  `json:"data_dir_total_bytes"`
	// RequestFiles are the request files of the last hour, newest first.
	RequestFiles []RequestFile `json:"request_files"`
}

// RejectReason is one reason of 400s.
type RejectReason struct {
	Reason   string    `json:"reason"`
	Count    uint64    `json:"count"`
	Sample   string    `json:"sample"`
	SampleAt time.Time `json:"sample_at"`
}

// RequestFile is one request file of the data dir.
type RequestFile struct {
	Name   string    `json:"name"`
	Minute time.Time `json:"minute"`
	Lines  int       `json:"lines"`
	Bytes  int64     `json:"bytes"`
	State  string    `json:"state"` // "open" (still .part, or the current minute in append mode) or "published"
}

const (
	sampleBytes   = 200 // of a rejected message kept as its reason's sample
	maxReasons    = 64  // distinct reasons tracked; more count under "other"
	statusReasons = 10  // shown
)

// rejectStats counts 400s per reason with a sample; safe for concurrent use.
type rejectStats struct {
	mu sync.Mutex
	m  map[string]*RejectReason
}

// note counts a rejected message, line in the wire's charset. The sample
// (masked and decoded by t) is replaced at most once a second per reason,
// so a flood of bad messages costs a map lookup each.
func (r *rejectStats) note(reason string, t *trail, line []byte, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]*RejectReason)
	}
	e := r.m[reason]
	if e == nil {
		if len(r.m) >= maxReasons {
			reason = "other"
			if e = r.m[reason]; e == nil {
				e = &RejectReason{Reason: reason}
				r.m[reason] = e
			}
		} else {
			e = &RejectReason{Reason: reason}
			r.m[reason] = e
		}
	}
	e.Count++
	if now.Sub(e.SampleAt) >= time.Second {
		e.Sample, e.SampleAt = t.sample(line, sampleBytes), now
	}
}

func (r *rejectStats) top(n int) []RejectReason {
	r.mu.Lock()
	out := make([]RejectReason, 0, len(r.m))
	for _, e := range r.m {
		out = append(out, *e)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b RejectReason) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Reason, b.Reason)
	})
	return out[:min(n, len(out))]
}

// Counts returns the replies since start by code (200, 400, 500): the
// console samples them for its per-minute chart. Safe for concurrent use.
func (s *Server) Counts() [3]uint64 {
	return [3]uint64{s.counts[0].Load(), s.counts[1].Load(), s.counts[2].Load()}
}

// Status returns the receiver's state at now. It reads counters, the
// metrics and at most 122 file names of the data dir (the last hour's
// minutes); line counts of request files are cached and grow by reading
// only what was appended. Safe for concurrent use.
func (s *Server) Status(now time.Time) Status {
	st := Status{DataDir: s.base.DataDir}
	if err := s.Ready(); err != nil {
		st.NotReady = err.Error()
	} else {
		st.Ready = true
	}
	s.mu.Lock()
	for ln := range s.listeners {
		st.Listening = append(st.Listening, ln.Addr().String())
	}
	st.Connections = len(s.conns)
	s.mu.Unlock()
	slices.Sort(st.Listening)
	c := s.Counts()
	st.Messages = map[string]uint64{"200": c[0], "400": c[1], "500": c[2]}
	st.Duplicates, st.Denied = s.dups.Load(), s.denied.Load()
	st.Rejects = s.rejectStats.top(statusReasons)
	if h := histogramOf(s.m.storeSeconds); h != nil {
		st.StoreP50Seconds, st.StoreP99Seconds = quantile(h, 0.5), quantile(h, 0.99)
	}
	if h := histogramOf(s.m.syncBatch); h != nil && h.GetSampleCount() > 0 {
		st.LinesPerFsync = h.GetSampleSum() / float64(h.GetSampleCount())
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(st.DataDir, &fs) == nil {
		st.FreeBytes, st.TotalBytes = fs.Bavail*uint64(fs.Bsize), fs.Blocks*uint64(fs.Bsize)
	}
	st.RequestFiles = s.lineCache.recent(st.DataDir, now, s.base.Publish == PublishAppend)
	return st
}

func histogramOf(h prometheus.Histogram) *dto.Histogram {
	var m dto.Metric
	if h.Write(&m) != nil {
		return nil
	}
	return m.GetHistogram()
}

// quantile estimates the q-quantile of h by linear interpolation inside
// the bucket that holds it; 0 without observations.
func quantile(h *dto.Histogram, q float64) float64 {
	total := h.GetSampleCount()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	lower, below := 0.0, 0.0
	for _, b := range h.GetBucket() {
		n := float64(b.GetCumulativeCount())
		if n >= rank {
			if n == below {
				return b.GetUpperBound()
			}
			return lower + (b.GetUpperBound()-lower)*(rank-below)/(n-below)
		}
		lower, below = b.GetUpperBound(), n
	}
	return lower // beyond the last bucket: its bound is the best estimate
}

// lineCache counts the lines of request files, remembering per minute
// what it counted so a growing file is read only from where it was.
type lineCache struct {
	mu sync.Mutex
	m  map[int64]lineCount
}

type lineCount struct {
	ino   uint64
	size  int64
	lines int
}

// recent returns the request files of the last 60 minutes and the current
// one, newest first. It looks up each minute's final and .part name
// rather than listing a data dir that may hold months of files.
func (c *lineCache) recent(dir string, now time.Time, appendMode bool) []RequestFile {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[int64]lineCount)
	}
	cur := unixMinute(now)
	var out []RequestFile
	for m := cur; m > cur-61; m-- {
		name := minuteName(m)
		state := "published"
		fi, err := os.Stat(filepath.Join(dir, name+partSuffix))
		if err == nil {
			name, state = name+partSuffix, "open"
		} else if fi, err = os.Stat(filepath.Join(dir, name)); err != nil {
			continue
		} else if appendMode && m == cur {
			state = "open"
		}
		out = append(out, RequestFile{Name: name, Minute: time.Unix(m*60, 0), Bytes: fi.Size(), State: state,
			Lines: c.count(m, filepath.Join(dir, name), fi)})
	}
	for m := range c.m {
		if m <= cur-61 {
			delete(c.m, m)
		}
	}
	return out
}

// count returns the complete lines of the file at path, reading only the
// bytes appended since the last count of the same file (inode).
func (c *lineCache) count(m int64, path string, fi os.FileInfo) int {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	prev := c.m[m]
	if prev.ino != ino || fi.Size() < prev.size {
		prev = lineCount{ino: ino}
	}
	if fi.Size() == prev.size {
		return prev.lines
	}
	f, err := os.Open(path)
	if err != nil {
		return prev.lines
	}
	defer f.Close()
	n, off, err := countLF(f, prev.size, fi.Size())
	prev.lines += n
	if err != nil {
		return prev.lines
	}
	// A line being written has no LF yet: it is counted once complete.
	prev.size = off
	c.m[m] = prev
	return prev.lines
}
