// Package journal is spoolgate's audit trail: one line per message outcome
// of each daemon, one file per day, gzipped once its day is over and
// removed after journal.keep; spoolgate trace reads it (docs/PROTOCOL.md
// §9, "Journal").
//
// A line is tab-separated: the time, the daemon, the event, then
// name=value attributes, the key fields of the message among them:
//
//	2026-12-06T09:30:00.123456+09:00	receiver	accepted	code=200	peer=10.1.2.3:51234	org_code=ORG01	process_no=000000123	file=202612060930_request.txt.part	line=17
//
// The daemons hand Records to Add, which never blocks: it appends a copy
// to a queue, which one goroutine takes whole (swapping it for an empty
// one) every FlushEvery, or as soon as it is half full, formats the lines
// into a buffer and writes it in batches (no fsync: it is a trail, not
// the data). A message costs its caller a copy and a share of a lock
// (AddAll takes a batch's records under one), and the writer no wake-up
// of its own: under load a take is thousands of records. A journal that cannot be written (a full disk, a
// removed directory) keeps its lines in memory up to a bound and retries
// on every flush, reopening the file; what does not fit is dropped and
// counted, the failure is counted and logged once a minute, and writing
// resumes by itself. The daemons' replies never wait for it.
//
// It knows nothing of the daemons: they pass the key field names, the
// masked ones and a decoder in Options, and fill Records themselves.
package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Journal.
type Options struct {
	// Dir is journal.dir; "" turns the journal off (New returns nil).
	Dir string
	// Daemon ("receiver" or "sender") and Instance ("" for the unnamed
	// one) name the files and fill the second column.
	Daemon   string
	Instance string
	// Keys are the names of the key fields, in the order Record.AddKey
	// is called: the receiver's receiver.dedup_key fields and process_no
	// (KeyFields). Masked are those of log.mask: stored as a keyed hash.
	Keys   []string
	Masked []string
	// MaskRRN is log.mask_rrn: text attributes have their resident
	// number shapes masked, a key value holding one is hashed.
	MaskRRN bool
	// Keep is journal.keep: a day's file is removed once its day ended
	// longer ago; 0 keeps them forever.
	Keep time.Duration
	// Decode converts key values from the wire charset to UTF-8 (appended
	// to dst); nil: they are UTF-8 already. It runs on the writer
	// goroutine, only for values with a byte >= 0x80.
	Decode func(dst, src []byte) []byte
	// Buffer is how many Records Add may queue (default 8192); beyond
	// that Add drops them (counted). The writer takes them when half are
	// queued, or every FlushEvery.
	Buffer int
	// FlushEvery is the longest a record waits in memory while the
	// journal can be written (default 250ms); also the retry interval
	// while it cannot.
	FlushEvery time.Duration
	// Registerer gets the journal's counters (nil: none registered).
	Registerer prometheus.Registerer
	// Logger gets the failures (once a minute) and recoveries; nil: none.
	Logger *slog.Logger
	// Clock is the time that picks the day's file and sweeps (nil:
	// time.Now); tests move it across midnight.
	Clock func() time.Time
}

// KeyFields returns the key fields a daemon journals: those of
// receiver.dedup_key that fields (its spec's names) has, then process_no
// when fields has it and dedup does not.
func KeyFields(dedup, fields []string) []string {
	has := func(n string) bool {
		for _, f := range fields {
			if f == n {
				return true
			}
		}
		return false
	}
	var out []string
	for _, n := range dedup {
		if has(n) {
			out = append(out, n)
		}
	}
	for _, n := range out {
		if n == "process_no" {
			return out
		}
	}
	if has("process_no") {
		out = append(out, "process_no")
	}
	return out
}

// maxPending bounds the formatted lines kept while the journal cannot be
// written; lines beyond it are dropped (counted).
const maxPending = 4 << 20

// flushBytes is the formatted size at which a batch is written without
// waiting for the next flush.
const flushBytes = 64 << 10

// Stats are a Journal's counts since New.
type Stats struct {
	Written uint64 // records written to a file
	Dropped uint64 // records lost: the queue was full, or they could not be kept while writes failed
	Errors  uint64 // failed opens and writes
}

// Journal writes the Records of one daemon. Its methods are safe for
// concurrent use; a nil *Journal (the journal off) does nothing.
type Journal struct {
	o     Options
	qmu   sync.Mutex
	queue []Record      // added, not yet taken by the writer; cap o.Buffer
	wake  chan struct{} // the queue is half full
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	m     *metrics
	log   *slog.Logger
	clock func() time.Time

	written, dropped, errs atomic.Uint64
	closed                 atomic.Bool
	closeErr               error // set by the writer before done closes
}

type metrics struct {
	written, dropped, errors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, daemon string) (*metrics, error) {
	labels := prometheus.Labels{"daemon": daemon}
	m := &metrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "spoolgate_journal_records_total",
			Help: "Journal lines written.", ConstLabels: labels}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "spoolgate_journal_dropped_total",
			Help: "Message outcomes not journaled: the queue was full, or writes failed longer than the journal could hold them.", ConstLabels: labels}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "spoolgate_journal_write_errors_total",
			Help: "Failed opens and writes of the journal (a full disk, a removed directory); retried every flush.", ConstLabels: labels}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.written, m.dropped, m.errors} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("journal: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// New starts the journal of o.Daemon in o.Dir: it creates the directory
// (0750) and the key of the hashes (KeyFile) when missing, compresses and
// removes the files of past days in the background, and opens today's
// file. With o.Dir empty it returns nil and no error (the journal off,
// whose methods do nothing). It returns an error when the directory or
// the key cannot be made or read (the daemon should not start: nothing it
// masks could be traced), or the metrics cannot be registered; a day's
// file that cannot be opened is not an error: it is retried as a failed
// write is. Close it when done.
func New(o Options) (*Journal, error) {
	if o.Dir == "" {
		return nil, nil
	}
	if o.Daemon == "" {
		return nil, errors.New("journal: no daemon name")
	}
	if o.Buffer <= 0 {
		o.Buffer = 8192
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 250 * time.Millisecond
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	key, err := OpenKey(o.Dir)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer, o.Daemon)
	if err != nil {
		return nil, err
	}
	j := &Journal{o: o, queue: make([]Record, 0, o.Buffer), wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		m: m, log: log, clock: o.Clock}
	w := &writer{j: j, enc: NewEncoder(o, key), key: key, prefix: Prefix(o.Daemon, o.Instance), spare: make([]Record, 0, o.Buffer),
		sweepCh: make(chan time.Time, 1), sweepDone: make(chan struct{})}
	now := o.Clock()
	w.day = midnight(now)
	w.open()
	go w.sweeper()
	w.sweepCh <- now
	go w.run()
	return j, nil
}

// Add queues r to be written and returns at once: when the queue is
// full, r is dropped and counted. r is copied; it allocates nothing.
func (j *Journal) Add(r *Record) {
	if j != nil {
		j.AddAll(unsafe.Slice(r, 1)) // r as a slice of one, not copied
	}
}

// AddAll is Add for each of rs, under one lock: a batch's records.
func (j *Journal) AddAll(rs []Record) {
	if j == nil || len(rs) == 0 {
		return
	}
	lost := len(rs)
	j.qmu.Lock()
	if !j.closed.Load() { // set under qmu: the writer's last take comes after
		n := len(j.queue)
		take := min(len(rs), cap(j.queue)-n)
		j.queue = append(j.queue, rs[:take]...)
		j.qmu.Unlock()
		if half := j.o.Buffer / 2; n < half && n+take >= half {
			select {
			case j.wake <- struct{}{}:
			default:
			}
		}
		lost -= take
	} else {
		j.qmu.Unlock()
	}
	if lost > 0 {
		j.dropped.Add(uint64(lost))
		j.m.dropped.Add(float64(lost))
	}
}

// queued returns how many records wait to be taken by the writer.
func (j *Journal) queued() int {
	j.qmu.Lock()
	defer j.qmu.Unlock()
	return len(j.queue)
}

// Stats returns the counts so far.
func (j *Journal) Stats() Stats {
	if j == nil {
		return Stats{}
	}
	return Stats{Written: j.written.Load(), Dropped: j.dropped.Load(), Errors: j.errs.Load()}
}

// Close writes what is queued (one last try when writes fail), closes the
// file and stops the background compression (a file it cut off is
// compressed at the next start). Records added after Close are dropped. It
// returns the last write error, if the journal was failing.
func (j *Journal) Close() error {
	if j == nil {
		return nil
	}
	j.once.Do(func() {
		// Under qmu: an AddAll either queued before it (the writer's last
		// take has it) or sees it and drops (counted).
		j.qmu.Lock()
		j.closed.Store(true)
		j.qmu.Unlock()
		close(j.stop)
	})
	<-j.done
	return j.closeErr
}

// writer is the goroutine that owns the file.
type writer struct {
	j      *Journal
	enc    *Encoder
	key    []byte
	prefix string

	spare []Record // the queue's other half: swapped with it at each take

	day  time.Time // midnight of the file's day
	path string
	f    *os.File
	buf  []byte // formatted lines not yet written
	nbuf int    // records in buf

	failing  error     // the last failure, nil while writes work
	lastLog  time.Time // of a failure line
	lostSeen uint64    // dropped count at the last failure line

	sweepCh   chan time.Time // a sweep is due (the writer's now)
	sweepDone chan struct{}
}

func (w *writer) run() {
	j := w.j
	defer close(j.done)
	t := time.NewTicker(j.o.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-j.wake:
			w.rollover(j.clock())
			w.take()
		case <-t.C:
			w.rollover(j.clock())
			w.check()
			w.take()
			w.flush()
			w.report(time.Now())
		case <-j.stop:
			w.take()
			w.check()
			w.flush()
			if w.f != nil {
				if err := w.f.Close(); err != nil && w.failing == nil {
					w.failing = err
				}
			}
			if w.nbuf > 0 {
				w.lose(w.nbuf)
			}
			j.closeErr = w.failing
			close(w.sweepCh)
			<-w.sweepDone
			return
		}
	}
}

// take takes the records queued (swapping the queue for the empty spare)
// and adds them, writing the buffer whenever it holds flushBytes while
// writes work. While they fail it tries to write what it kept first.
func (w *writer) take() {
	j := w.j
	j.qmu.Lock()
	q := j.queue
	j.queue = w.spare[:0]
	j.qmu.Unlock()
	if w.failing != nil && len(q) > 0 {
		// The lines kept through an outage first, making room for these:
		// tried after the take, so that a record added once space came
		// back finds it.
		w.flush()
	}
	for i := range q {
		w.add(&q[i])
		if len(w.buf) >= flushBytes && w.failing == nil {
			w.flush()
		}
	}
	clear(q) // the strings they hold
	w.spare = q[:0]
}

// add formats r into the buffer, or drops it when the buffer holds more
// than maxPending (writes are failing).
func (w *writer) add(r *Record) {
	if len(w.buf) >= maxPending {
		w.lose(1)
		return
	}
	if r.Time.IsZero() {
		r.Time = w.j.clock()
	}
	w.buf = w.enc.Append(w.buf, r)
	w.nbuf++
}

func (w *writer) lose(n int) {
	w.j.dropped.Add(uint64(n))
	w.j.m.dropped.Add(float64(n))
}

// rollover switches to the file of now's day when that is a later day:
// what is buffered goes to the old file first, then the old file is left
// to the sweeper to compress.
func (w *writer) rollover(now time.Time) {
	day := midnight(now)
	if !day.After(w.day) {
		return
	}
	w.flush()
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	w.day = day
	w.open()
	select {
	case w.sweepCh <- now:
	default: // one is due already: it lists the directory anew
	}
}

// open opens (creating it and the directory) the file of w.day; a
// failure is recorded and retried at the next flush.
func (w *writer) open() bool {
	w.path = filepath.Join(w.j.o.Dir, FileName(w.prefix, w.day))
	err := os.MkdirAll(w.j.o.Dir, 0o750)
	if err == nil {
		w.f, err = os.OpenFile(w.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	}
	if err != nil {
		w.f = nil
		w.fail(err)
		return false
	}
	// A write cut off by a failure may have left half a line: end it,
	// so that the next line starts on its own (readers skip the half).
	if fi, err := w.f.Stat(); err == nil && fi.Size() > 0 {
		last := []byte{0}
		if _, err := w.f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			_, _ = w.f.Write([]byte{'\n'})
		}
	}
	if _, err := os.Stat(filepath.Join(w.j.o.Dir, KeyFile)); errors.Is(err, os.ErrNotExist) {
		_ = writeKey(w.j.o.Dir, w.key) // the directory was removed: trace needs the key back
	}
	return true
}

// check reopens the file when its path no longer names it: the directory
// or the file was removed (lines written since went nowhere), or replaced.
func (w *writer) check() {
	if w.f == nil {
		return
	}
	fi, err := w.f.Stat()
	if err != nil {
		return
	}
	if pi, err := os.Stat(w.path); err == nil && os.SameFile(fi, pi) {
		return
	}
	_ = w.f.Close()
	w.f = nil
	if w.open() {
		w.j.log.Warn("journal file was removed or replaced: writing to a new one", "file", w.path)
	}
}

// flush writes the buffer; on a failure what was not written stays for
// the next try (a partial write is continued where it stopped, so the
// line it cut is completed).
func (w *writer) flush() {
	if len(w.buf) == 0 {
		return
	}
	if w.f == nil && !w.open() {
		return
	}
	n, err := w.f.Write(w.buf)
	done := w.nbuf
	if err != nil {
		done = bytes.Count(w.buf[:n], []byte{'\n'})
	}
	w.j.written.Add(uint64(done))
	w.j.m.written.Add(float64(done))
	w.nbuf -= done
	w.buf = w.buf[:copy(w.buf, w.buf[n:])]
	if err != nil {
		w.fail(err)
		return
	}
	if w.failing != nil {
		w.j.log.Info("journal writes work again", "file", w.path, "dropped_while_failing", w.j.dropped.Load()-w.lostSeen)
		w.failing = nil
	}
	if cap(w.buf) > 4*flushBytes {
		w.buf = make([]byte, 0, flushBytes) // give back what an outage grew
	}
}

func (w *writer) fail(err error) {
	w.j.errs.Add(1)
	w.j.m.errors.Inc()
	if w.failing == nil {
		w.lastLog = time.Time{}
		w.lostSeen = w.j.dropped.Load()
	}
	w.failing = err
	w.report(time.Now())
}

// report logs a failure at most once a minute, and lines dropped from a
// full queue.
func (w *writer) report(now time.Time) {
	if now.Sub(w.lastLog) < time.Minute {
		return
	}
	dropped := w.j.dropped.Load()
	switch {
	case w.failing != nil:
		w.j.log.Error("journal cannot be written: lines are kept in memory up to 4 MiB and retried, then dropped (counted in spoolgate_journal_dropped_total)",
			"file", w.path, "err", w.failing, "dropped", dropped-w.lostSeen)
	case dropped > w.lostSeen:
		w.j.log.Warn("journal queue full: lines dropped", "dropped", dropped-w.lostSeen)
		w.lostSeen = dropped
	default:
		return
	}
	w.lastLog = now
}

// sweeper compresses and removes old files when asked, one sweep at a
// time, off the writer goroutine (a big day takes seconds to gzip).
func (w *writer) sweeper() {
	defer close(w.sweepDone)
	for now := range w.sweepCh {
		c, r, err := sweep(w.j.o.Dir, w.prefix, now, w.j.o.Keep, w.j.stop)
		if err != nil && !errors.Is(err, errStopped) {
			w.j.log.Warn("journal: compressing or removing old files", "dir", w.j.o.Dir, "err", err)
		}
		if c > 0 || r > 0 {
			w.j.log.Info("journal: past days compressed, expired days removed", "dir", w.j.o.Dir, "compressed", c, "removed", r, "keep", w.j.o.Keep)
		}
	}
}

var _ io.Closer = (*Journal)(nil)
