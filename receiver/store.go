package receiver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/fsutil"
)

// Publish modes and fsync policies accepted by OpenStore: the values of
// receiver.publish and receiver.fsync, declared in conf.
const (
	PublishRename = conf.PublishRename
	PublishAppend = conf.PublishAppend
	FsyncAlways   = conf.FsyncAlways
	FsyncNever    = conf.FsyncNever
)

// ProbeName is the file a failing Store writes, syncs and removes in its
// data dir to find out whether the storage works again.
const ProbeName = ".spoolgate-receiver.probe"

const (
	fileSuffix = "_request.txt"
	partSuffix = ".part"
	// minuteLayout names request files by local receive minute.
	minuteLayout = "200601021504"
	// maxBatch bounds how many lines one write+fsync covers.
	maxBatch = 4096
	// tick is how often the writer checks whether the open minute is over.
	tick = time.Second
	// maxCommitDelay caps how long the writer waits for expected lines
	// before it syncs a batch (see Store.run).
	maxCommitDelay = 5 * time.Millisecond
)

// ErrStoreClosed is returned by Append after Close.
var ErrStoreClosed = errors.New("store closed")

// Store appends accepted messages to per-minute request files in one
// directory. One writer goroutine owns the files; Append hands it a line
// (AppendBatch a connection's pipelined lines) and blocks until it is
// durable (group commit: lines queued while a sync runs share the next
// one). A Store holds a flock on its directory so a
// second Store on the same directory fails with fsutil.ErrLocked.
type Store struct {
	dir     string
	rename  bool
	fsync   bool
	clock   func() time.Time
	log     *slog.Logger
	syncFn  func(*os.File) error
	onBatch func(lines int)
	onPub   func(part, final string)
	tick    time.Duration
	lock    *fsutil.DirLock
	probeCh chan probeResult // results of probes while failing

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	reqs   chan *storeReq
	done   chan struct{}

	// Owned by the writer goroutine.
	f         *os.File
	id        fileID // of f at open
	path      string // path of f
	base      string // its base name, for Where
	nline     int    // complete lines in f: the last one's number
	first     int    // the number in f of the first line of the last write
	cpath     []byte // path, NUL-terminated, for statx
	noStatx   bool   // statx is not there (ENOSYS, EPERM): stat, which allocates
	minute    int64  // unix minute of f
	size      int64  // length of the durable, complete lines in f
	dirty     bool   // f may hold bytes beyond size (a failed write or sync)
	newFile   bool   // f was created and its directory entry not yet synced
	buf       []byte
	batch     []*storeReq
	nlines    int      // lines in batch
	unpub     []string // .part files whose publish failed; retried each tick
	failing   bool     // last batch failed; for logging state changes only
	probing   bool     // a probe runs (while failing)
	healthMu  sync.Mutex
	healthErr error
}

type probeResult struct {
	err  error
	took time.Duration
}

// storeReq is one caller's lines: they are written and synced together,
// never split across two syncs, and share one outcome.
type storeReq struct {
	lines [][]byte
	where []Where   // nil, or set for each line once durable
	one   [1][]byte // lines of an Append
	done  chan error
}

var reqPool = sync.Pool{New: func() any { return &storeReq{done: make(chan error, 1)} }}

// storeHooks are test and metric seams of a Store.
type storeHooks struct {
	sync    func(*os.File) error // replaces (*os.File).Sync
	onBatch func(lines int)      // called after each durable batch
	onPub   func(part, final string)
	tick    time.Duration // replaces the minute-over check interval
}

// openFiles opens the sink of receiver.sink=files: the Store of
// receiver.data_dir (OpenSink).
func openFiles(o SinkOptions) (Sink, error) {
	c, h := o.Config, o.storeHooks
	if h.onBatch == nil {
		h.onBatch = o.OnSync
	}
	if h.onPub == nil {
		h.onPub = o.OnPublish
	}
	return openStore(c.DataDir, c.Publish, c.Fsync, o.Clock, o.Logger, h)
}

// filesNeeds: the request files' sink writes receiver.data_dir.
func filesNeeds(c conf.Receiver) SinkNeeds {
	return SinkNeeds{Dirs: []NeededDir{{"receiver.data_dir", c.DataDir}}}
}

// OpenStore locks dir, repairs it (cuts a trailing partial line from every
// request file, publishes .part files of other minutes) and starts the
// writer. publish is PublishRename or PublishAppend, fsync FsyncAlways or
// FsyncNever; clock defaults to time.Now and log to a discard logger. It
// returns an error wrapping fsutil.ErrLocked when another process owns dir.
func OpenStore(dir string, publish conf.Publish, fsync conf.Fsync, clock func() time.Time, log *slog.Logger) (*Store, error) {
	return openStore(dir, publish, fsync, clock, log, storeHooks{})
}

func openStore(dir string, publish conf.Publish, fsync conf.Fsync, clock func() time.Time, log *slog.Logger, h storeHooks) (*Store, error) {
	if publish != PublishRename && publish != PublishAppend {
		return nil, fmt.Errorf("open store: publish %q: want %s or %s", publish, PublishRename, PublishAppend)
	}
	if fsync != FsyncAlways && fsync != FsyncNever {
		return nil, fmt.Errorf("open store: fsync %q: want %s or %s", fsync, FsyncAlways, FsyncNever)
	}
	if clock == nil {
		clock = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if h.sync == nil {
		h.sync = (*os.File).Sync
	}
	if h.onBatch == nil {
		h.onBatch = func(int) {}
	}
	if h.onPub == nil {
		h.onPub = func(string, string) {}
	}
	if h.tick <= 0 {
		h.tick = tick
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	lock, err := fsutil.LockDir(dir)
	if errors.Is(err, fsutil.ErrLocked) {
		return nil, fmt.Errorf("data dir %s is in use by another receiver: %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{
		dir:     dir,
		rename:  publish == PublishRename,
		fsync:   fsync == FsyncAlways,
		clock:   clock,
		log:     log,
		syncFn:  h.sync,
		onBatch: h.onBatch,
		onPub:   h.onPub,
		lock:    lock,
		tick:    h.tick,
		reqs:    make(chan *storeReq, maxBatch),
		done:    make(chan struct{}),
		probeCh: make(chan probeResult, 1),
		minute:  -1,
	}
	if err := s.repair(); err != nil {
		lock.Close()
		return nil, err
	}
	go s.run()
	return s, nil
}

// Dir returns the directory the Store writes to.
func (s *Store) Dir() string { return s.dir }

// Append stores line (a message without its LF; the Store adds the LF) and
// returns nil once it is written (and synced with fsync=always). On any
// error the line is not acknowledged: it was not stored, or was stored but
// may be lost. It returns ErrStoreClosed after Close. line must not change
// until Append returns. Safe for concurrent use.
func (s *Store) Append(line []byte) error {
	r := reqPool.Get().(*storeReq)
	r.one[0] = line
	err := s.append(r, r.one[:])
	r.one[0] = nil
	reqPool.Put(r)
	return err
}

// AppendBatch stores lines (messages without their LF) as Append does, in
// order and all in the same write and sync, and returns once all of them
// are durable (nil) or none is acknowledged (an error: not stored, or
// stored but possibly lost). One call is one wait however many lines it
// has; callers keep batches to at most a few hundred lines, so that a
// batch fits the writer's bound (maxBatch lines a sync) beside the others.
// lines must not change until AppendBatch returns. Safe for concurrent use.
func (s *Store) AppendBatch(lines [][]byte) error {
	return s.AppendWhere("", nil, lines, nil)
}

// AppendWhere is AppendBatch that, when it returns nil, has set where[i]
// (unless where is nil) to the request file lines[i] is in (its base
// name as written: .part in rename mode) and its line number there, from
// 1. peer and received are not used: request files do not record them.
func (s *Store) AppendWhere(_ string, _ []time.Time, lines [][]byte, where []Where) error {
	if len(lines) == 0 {
		return nil
	}
	r := reqPool.Get().(*storeReq)
	r.where = where
	err := s.append(r, lines)
	r.where = nil
	reqPool.Put(r)
	return err
}

func (s *Store) append(r *storeReq, lines [][]byte) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrStoreClosed
	}
	r.lines = lines
	s.reqs <- r
	s.mu.RUnlock()
	err := <-r.done
	r.lines = nil
	return err
}

// Healthy returns nil unless the last write or sync failed; then it returns
// that error until a later batch succeeds or a probe (a write, sync and
// removal of ProbeName in the data dir, tried every tick while failing)
// works, so readiness returns without traffic. Safe for concurrent use.
func (s *Store) Healthy() error {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	return s.healthErr
}

// Close stores the lines already handed over, closes the open file
// (publishing it in rename mode: its lines are durable, so the downstream
// gets them now rather than at the next start) and releases the lock. Later
// Appends return ErrStoreClosed. Close is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.done
	return s.lock.Close()
}

// Lines calls fn for every complete line of the request files of minutes
// from since on, oldest file first, with the end of the file's minute (not
// after now). It reads files while the writer may append: call it before
// serving. line is valid only during the call.
func (s *Store) Lines(since time.Time, fn func(at time.Time, line []byte)) error {
	files, err := s.files(unixMinute(since))
	if err != nil {
		return err
	}
	now := s.clock()
	br := bufio.NewReaderSize(nil, 16<<10)
	for _, rf := range files {
		at := time.Unix((rf.minute+1)*60, 0)
		if at.After(now) {
			at = now
		}
		if err := readLines(rf.path, br, func(line []byte) { fn(at, line) }); err != nil {
			return err
		}
	}
	return nil
}

// readLines calls fn for each complete line of path; a line longer than
// the buffer (not one the receiver wrote) is skipped.
func readLines(path string, br *bufio.Reader, fn func([]byte)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	br.Reset(f)
	skip := false
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			if !skip {
				fn(line[:len(line)-1])
			}
			skip = false
		case errors.Is(err, bufio.ErrBufferFull):
			skip = true
		case errors.Is(err, io.EOF):
			return nil
		default:
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
}
