package receiver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

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
	cpath     []byte // path, NUL-terminated, for statx
	noStatx   bool   // statx is not there (ENOSYS, EPERM): stat, which allocates
	final     string // final name of f (rename mode)
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
	one   [1][]byte // lines of an Append
	done  chan error
}

var reqPool = sync.Pool{New: func() any { return &storeReq{done: make(chan error, 1)} }}

// storeHooks are test and metric seams of a Store.
type storeHooks struct {
	sync    func(*os.File) error // replaces (*os.File).Sync
	onBatch func(lines int)      // called after each durable batch
	tick    time.Duration        // replaces the minute-over check interval
}

// OpenStore locks dir, repairs it (cuts a trailing partial line from every
// request file, publishes .part files of other minutes) and starts the
// writer. publish is PublishRename or PublishAppend, fsync FsyncAlways or
// FsyncNever; clock defaults to time.Now and log to a discard logger. It
// returns an error wrapping fsutil.ErrLocked when another process owns dir.
func OpenStore(dir, publish, fsync string, clock func() time.Time, log *slog.Logger) (*Store, error) {
	return openStore(dir, publish, fsync, clock, log, storeHooks{})
}

func openStore(dir, publish, fsync string, clock func() time.Time, log *slog.Logger, h storeHooks) (*Store, error) {
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
	if len(lines) == 0 {
		return nil
	}
	r := reqPool.Get().(*storeReq)
	err := s.append(r, lines)
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

func (s *Store) run() {
	defer close(s.done)
	t := time.NewTicker(s.tick)
	defer t.Stop()
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	// released is how many callers the last commit woke, queued how many
	// lines arrived while it ran: together, the lines to expect next.
	released, queued := 0, 0
	var syncAvg time.Duration // moving average of a commit's duration
	for {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				s.finish()
				return
			}
			s.batch, s.nlines = append(s.batch[:0], r), len(r.lines)
			open := s.drainReqs()
			// Commit delay: the callers the last commit woke are about to
			// send their next lines. Without a wait for them, the callers
			// split into groups that take turns, each sync covering a part
			// of them. The sync is the cost (on a slow disk it is the whole
			// cost), so wait for the expected lines up to about one
			// average sync: at worst that doubles the latency of a batch,
			// while every line that makes it saves a share of a sync.
			// Measured on a 2-core VM at 16 keep-alive clients: lines per
			// sync 10.8 -> 15.7 when the cap went from a quarter sync
			// (500 µs) to a whole one (5 ms), and msg/s up by half.
			// (Counted in callers, not lines: each sends one request next.)
			if want := released + queued; open && s.fsync && len(s.batch) < want && s.nlines < maxBatch {
				if d := min(syncAvg, maxCommitDelay); d > 20*time.Microsecond {
					delay.Reset(d)
				wait:
					for len(s.batch) < want && s.nlines < maxBatch {
						select {
						case r, ok := <-s.reqs:
							if !ok {
								open = false
								break wait
							}
							s.batch = append(s.batch, r)
							s.nlines += len(r.lines)
						case <-delay.C:
							break wait
						}
					}
					if !delay.Stop() {
						select {
						case <-delay.C:
						default:
						}
					}
				}
			}
			start := time.Now()
			s.commit(s.batch)
			syncAvg += (time.Since(start) - syncAvg) / 8
			released, queued = len(s.batch), len(s.reqs)
			clear(s.batch)
			if !open {
				s.finish()
				return
			}
		case <-t.C:
			if s.f != nil && unixMinute(s.clock()) != s.minute {
				s.closeFile(true)
			}
			s.retryPublish()
			if s.failing && !s.probing {
				s.probing = true
				go func() { s.probeCh <- s.probe() }()
			}
		case pr := <-s.probeCh:
			s.probing = false
			if pr.err == nil && s.failing {
				s.log.Info("store probe worked: a write and sync in the data dir succeeded", "dir", s.dir, "took", pr.took)
				s.setHealth(nil)
			}
		}
	}
}

// drainReqs moves the requests already queued into s.batch, up to
// maxBatch lines (a request is not split, so the last may go beyond),
// without blocking. It returns false when reqs is closed.
func (s *Store) drainReqs() bool {
	for s.nlines < maxBatch {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return false
			}
			s.batch = append(s.batch, r)
			s.nlines += len(r.lines)
		default:
			return true
		}
	}
	return true
}

// finish runs when reqs is closed and drained. In rename mode it publishes
// the open minute too: every line in it was made durable before its 200 (a
// restart within the minute then starts a .part that is published under a
// collision suffix).
func (s *Store) finish() {
	if s.probing {
		<-s.probeCh
		s.probing = false
	}
	if s.f != nil {
		s.closeFile(true)
	}
	s.retryPublish()
	for _, p := range s.unpub {
		s.log.Warn("left unpublished; it is published at the next start", "file", p)
	}
}

// probe writes, syncs and removes ProbeName in the data dir. Whatever
// stands under that name is removed first (a symlink itself, never its
// target) and the file is created with O_EXCL, which follows no symlink:
// a link planted there cannot make the probe overwrite another file or
// report a recovery of a disk it did not write to.
func (s *Store) probe() probeResult {
	start := time.Now()
	path := filepath.Join(s.dir, ProbeName)
	err := s.lock.Held() // a replaced data dir is not a recovered one
	if err == nil {
		err = os.Remove(path)
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	}
	if err == nil {
		_, err = f.Write(make([]byte, 4096))
		if err == nil {
			err = s.syncFn(f)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if rerr := os.Remove(path); err == nil {
			err = rerr
		}
	}
	return probeResult{err: err, took: time.Since(start)}
}

func (s *Store) commit(batch []*storeReq) {
	err := s.write(batch)
	if err == nil {
		n := 0
		for _, r := range batch {
			n += len(r.lines)
		}
		s.onBatch(n)
	}
	s.setHealth(err)
	for _, r := range batch {
		r.done <- err
	}
}

func (s *Store) setHealth(err error) {
	if err != nil && !s.failing {
		s.log.Error("store failing: answering 500 until a write succeeds", "dir", s.dir, "err", err)
	} else if err == nil && s.failing {
		s.log.Info("store recovered", "dir", s.dir)
	}
	if (err != nil) != s.failing {
		s.failing = err != nil
		s.healthMu.Lock()
		s.healthErr = err
		s.healthMu.Unlock()
	}
}

// write appends batch to the current minute's file and makes it durable.
// On error no line of batch is left beyond s.size (best effort: if even the
// truncate fails, s.dirty stays set and later batches fail until it works).
func (s *Store) write(batch []*storeReq) error {
	m := unixMinute(s.clock())
	if s.f != nil && m != s.minute {
		s.closeFile(true)
	}
	s.buf = s.buf[:0]
	for _, r := range batch {
		for _, l := range r.lines {
			s.buf = append(s.buf, l...)
			s.buf = append(s.buf, '\n')
		}
	}
	// The downstream workflow may take the open file away (a cleanup that
	// removes the .part, a move of the file in append mode). Lines written
	// to a removed file are in no file, so the path is checked before the
	// write and again after the sync that the 200s depend on: a batch that
	// went into a removed file is written again to a new one, once; if that
	// is removed too the batch is answered 500. Each check is one statx.
	for try := 0; ; try++ {
		if s.f != nil {
			st, err := s.check()
			if err != nil {
				return err
			}
			if st != fileOK {
				s.lost(st, "")
			}
		}
		if s.f == nil {
			if err := s.openFile(m); err != nil {
				return err
			}
		}
		if err := s.writeSync(); err != nil {
			return err
		}
		st, err := s.check()
		if err != nil {
			return err
		}
		switch st {
		case fileOK:
			return nil
		case fileMoved: // the lines are in the file under its new name
			s.lost(st, "")
			return nil
		}
		if try > 0 {
			s.lost(st, "removed during the write again: the batch is answered 500")
			return fmt.Errorf("store: request file in %s removed during two writes of a batch", s.dir)
		}
		s.lost(st, "removed during a write: writing the batch again to a new file")
	}
}

// writeSync appends s.buf to the open file and syncs it (fsync=always).
// On error no byte of s.buf is left beyond s.size (best effort: if even the
// truncate fails, s.dirty stays set and later batches fail until it works).
func (s *Store) writeSync() error {
	if s.dirty {
		if err := s.f.Truncate(s.size); err != nil {
			return fmt.Errorf("store: truncate %s after failed write: %w", s.path, err)
		}
		s.dirty = false
	}
	n, err := s.f.Write(s.buf)
	if err == nil && s.fsync {
		err = s.syncFn(s.f)
		if err == nil && s.newFile {
			err = fsutil.SyncDir(s.dir)
		}
	}
	if err != nil {
		err = fmt.Errorf("store: write %s: %w", s.path, err)
		if n > 0 {
			s.dirty = true
			if terr := s.f.Truncate(s.size); terr == nil {
				s.dirty = false
			}
		}
		return err
	}
	s.newFile = false
	s.size += int64(n)
	return nil
}

// fileState tells whether the open file is still where it was opened.
type fileState int

const (
	fileOK      fileState = iota
	fileMoved             // renamed away or replaced: still has a name
	fileRemoved           // no name left: what is written to it is lost
)

// check compares the open file with what its path names now: one statx
// (no allocation) in the usual case, an fstat more when they differ.
func (s *Store) check() (fileState, error) {
	id, err := s.pathID()
	if err == nil && id == s.id {
		return fileOK, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fileOK, fmt.Errorf("store: check %s: %w", s.path, err)
	}
	open, err := s.f.Stat()
	if err != nil {
		return fileOK, fmt.Errorf("store: check %s: %w", s.path, err)
	}
	if st, ok := open.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		return fileRemoved, nil
	}
	return fileMoved, nil
}

// fileID identifies a file: its device and inode.
type fileID struct {
	major, minor uint32
	ino          uint64
}

func idOf(fi os.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino}
}

// pathID returns the fileID of what s.path names now. It uses statx on the
// prepared NUL-terminated path, so the per-batch check allocates nothing
// (os.Stat and unix.Stat copy the path); where the kernel has no statx
// (before 4.11) or a seccomp filter refuses it with EPERM it falls back to
// os.Stat.
func (s *Store) pathID() (fileID, error) {
	if !s.noStatx {
		var stx unix.Statx_t
		cwd := unix.AT_FDCWD
		_, _, e := unix.Syscall6(unix.SYS_STATX, uintptr(cwd), uintptr(unsafe.Pointer(&s.cpath[0])), 0,
			unix.STATX_INO, uintptr(unsafe.Pointer(&stx)), 0)
		switch e {
		case 0:
			return fileID{stx.Dev_major, stx.Dev_minor, stx.Ino}, nil
		case unix.ENOSYS, unix.EPERM:
			s.noStatx = true
		default:
			return fileID{}, &os.PathError{Op: "statx", Path: s.path, Err: e}
		}
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return fileID{}, err
	}
	return idOf(fi), nil
}

// lost logs that the open file was taken away and closes it without
// publishing, so the next write starts a new file.
func (s *Store) lost(st fileState, what string) {
	if st == fileMoved {
		s.log.Warn("request file moved while open: starting a new one", "file", s.path)
	} else {
		if what == "" {
			what = "removed while open: lines acknowledged in it are gone; starting a new one"
		}
		s.log.Error("request file "+what, "file", s.path, "bytes", s.size)
	}
	s.closeFile(false)
}

// openFile opens (creating if needed) the file for unix minute m, cutting
// a trailing partial line left by an earlier failure.
func (s *Store) openFile(m int64) error {
	// Files are opened by path: the path must still name the locked
	// directory, or a second receiver could own it (PROTOCOL.md §4).
	if err := s.lock.Held(); err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	final := minuteName(m)
	path := filepath.Join(s.dir, final)
	if s.rename {
		path += partSuffix
	}
	created := true
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		created = false
		if _, err = repairTail(path, s.log); err == nil {
			// O_NOFOLLOW: a symlink planted under a request file's name
			// is refused (ELOOP), not written through.
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o644)
		}
	}
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("store: open: %w", err)
	}
	s.f, s.path, s.final, s.minute, s.size = f, path, final, m, st.Size()
	s.cpath = append(append(s.cpath[:0], path...), 0)
	s.id = idOf(st)
	s.newFile, s.dirty = created, false
	return nil
}

// closeFile closes the open file and, in rename mode when publish is set,
// makes it durable and renames it to its final name.
func (s *Store) closeFile(publish bool) {
	f, path := s.f, s.path
	s.f, s.minute = nil, -1
	if s.dirty {
		if err := f.Truncate(s.size); err != nil {
			s.log.Error("store: cannot cut failed write; left for start-up repair", "file", path, "err", err)
			f.Close()
			return
		}
		s.dirty = false
	}
	var err error
	if s.rename && publish && (!s.fsync || s.newFile) {
		err = f.Sync() // durable before it becomes visible
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.log.Error("store: close", "file", path, "err", err)
	}
	if !s.rename || !publish {
		return
	}
	if err != nil {
		s.unpub = append(s.unpub, path)
		return
	}
	if _, err := fsutil.MoveNoClobber(path, s.dir, s.final); errors.Is(err, os.ErrNotExist) {
		s.log.Error("request file removed before it was published: lines acknowledged in it are gone", "file", path)
	} else if err != nil {
		s.log.Error("store: publish", "file", path, "err", err)
		s.unpub = append(s.unpub, path)
	}
}

// retryPublish publishes the .part files whose publish failed; one that no
// longer exists is dropped with an error.
func (s *Store) retryPublish() {
	kept := s.unpub[:0]
	for _, p := range s.unpub {
		err := s.publish(p)
		if errors.Is(err, os.ErrNotExist) {
			s.log.Error("request file removed before it was published: lines acknowledged in it are gone", "file", p)
		} else if err != nil {
			kept = append(kept, p)
		}
	}
	s.unpub = kept
}

// publish syncs the .part file p and renames it to its final name.
func (s *Store) publish(p string) error {
	f, err := os.Open(p)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		_, err = fsutil.MoveNoClobber(p, s.dir, strings.TrimSuffix(filepath.Base(p), partSuffix))
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", p, err)
	}
	return nil
}

// repair cuts trailing partial lines and publishes .part files of minutes
// other than the current one (all of them in append mode).
func (s *Store) repair() error {
	files, err := s.files(-1)
	if err != nil {
		return err
	}
	now := unixMinute(s.clock())
	var cut, published int
	for _, rf := range files {
		n, err := repairTail(rf.path, s.log)
		if err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		if n > 0 {
			cut++
		}
		if rf.part && (!s.rename || rf.minute != now) {
			if err := s.publish(rf.path); err != nil {
				return fmt.Errorf("repair: %w", err)
			}
			published++
		}
	}
	s.log.Info("data dir repaired", "dir", s.dir, "files", len(files), "cut", cut, "published", published)
	return nil
}

// requestFile is one request file in the data dir.
type requestFile struct {
	path   string
	minute int64 // unix minute from the name
	part   bool
}

// files lists the request files (final, .part and collision-suffixed
// names) of minutes >= since, sorted by minute then name.
func (s *Store) files(since int64) ([]requestFile, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.dir, err)
	}
	var out []requestFile
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		m, part, ok := parseName(e.Name())
		if !ok || m < since {
			continue
		}
		out = append(out, requestFile{path: filepath.Join(s.dir, e.Name()), minute: m, part: part})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].minute != out[j].minute {
			return out[i].minute < out[j].minute
		}
		return out[i].path < out[j].path
	})
	return out, nil
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

// repairTail cuts path back to its last LF and syncs it when it had to.
// It returns the number of bytes cut.
func repairTail(path string, log *slog.Logger) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	keep := size
	buf := make([]byte, 4096)
	for keep > 0 {
		n := int64(len(buf))
		if n > keep {
			n = keep
		}
		if _, err := f.ReadAt(buf[:n], keep-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep = keep - n + int64(i) + 1
			break
		}
		keep -= n
	}
	if keep == size {
		return 0, nil
	}
	if err := f.Truncate(keep); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	log.Warn("cut a partial line (never acknowledged)", "file", path, "bytes", size-keep)
	return size - keep, nil
}

// unixMinute is the minute number of t. Local UTC offsets are whole
// minutes, so local and UTC minute boundaries coincide.
func unixMinute(t time.Time) int64 {
	u := t.Unix()
	if u < 0 {
		return (u - 59) / 60
	}
	return u / 60
}

func minuteName(m int64) string {
	return time.Unix(m*60, 0).Format(minuteLayout) + fileSuffix
}

// parseName recognises <yyyyMMddHHmm>_request.txt, with .part or a
// collision suffix .N, and returns its unix minute.
func parseName(name string) (minute int64, part bool, ok bool) {
	if len(name) < len(minuteLayout)+len(fileSuffix) {
		return 0, false, false
	}
	stamp, rest := name[:len(minuteLayout)], name[len(minuteLayout):]
	if !strings.HasPrefix(rest, fileSuffix) {
		return 0, false, false
	}
	rest = rest[len(fileSuffix):]
	switch {
	case rest == "":
	case rest == partSuffix:
		part = true
	case len(rest) > 1 && rest[0] == '.' && allDigits(rest[1:]):
	default:
		return 0, false, false
	}
	t, err := time.ParseInLocation(minuteLayout, stamp, time.Local)
	if err != nil {
		return 0, false, false
	}
	return unixMinute(t), part, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
