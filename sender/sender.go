// Package sender pushes the files dropped into a spool directory to the
// remote receiver (docs/PROTOCOL.md §5): a watcher keeps the pending set in memory,
// files are claimed by rename into .inflight and sent oldest first by at
// most sender.workers workers, each message with a per-attempt timeout,
// retries with backoff, and a circuit that pauses everything while the
// remote cannot be reached. Every file ends delivered (deleted or moved to
// sent_dir), in failed_dir with a .reason file, or back in the spool.
//
// Files: a claimed file lives in <spool_dir>/.inflight/<name>. For a file
// of more than one line, .inflight/.<name>.ack records how many lines are
// done (acknowledged, or saved to failed_dir), so a restart resends only
// the rest: it is written every ackEveryLines (100) lines or ackEvery (1 s),
// so a crash resends at most 100 lines of each file in flight (W with a
// send window of W lines, see window.go; progress.go has the format).
// In failed_dir a file whose every line failed keeps its name;
// the failed lines of a multi-line file go to <name>.line-<n> (a rejected
// line) or <name>.lines-<n>-<m> (the unsent lines n to the end once the
// retries of line n ran out), numbered by physical line. A name ending in
// .reason gets .file added, so that no failed file is named like a reason
// file; a name whose file or .reason file exists is taken and gets .1, .2,
// …; each failed file has <its name>.reason beside it.
// At a drain a claim goes back into the spool under its name (suffixed if
// a new file of that name arrived meanwhile); a partly sent file goes back
// holding only its unsent lines, with its original modification time and
// mode. A claim stays open while it is sent: what its writer appends after
// the claim is sent too before the file is disposed of, and a claim whose
// writer still holds it open waits for it (see process). A disposal that
// fails (a full file system) is retried, the claim counted as stuck
// meanwhile (stuck.go).
//
// With sender.source=amqp the lines come from a RabbitMQ queue instead
// and the spool is not used (amqp.go).
//
// The package also reads the state of a spool from its directories alone
// (ReadStatus) and moves failed files back (Requeue), for the operator's
// tool.
package sender

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/conf"
	"spoolgate/internal/fsutil"
	"spoolgate/internal/tlsutil"
	"spoolgate/protocol"
)

// Options configure a Sender.
type Options struct {
	Config          conf.Sender           // the sender.* keys
	Spec            *protocol.Spec        // what is sent; nil: protocol.DefaultRequestSpec()
	ShutdownTimeout time.Duration         // to finish in-flight attempts once Run's context is done; 0: 30s
	Logger          *slog.Logger          // nil: discard
	Registerer      prometheus.Registerer // nil: metrics are not registered

	noLeases bool // tests: never ask the kernel whether a writer holds a claim open
}

// tunables are the keys that change on Reload.
type tunables struct {
	workers, retries        int
	window                  int // lines of one file in flight on a connection
	timeout, connectTimeout time.Duration
	backoff, backoffMax     time.Duration
	settle, scanInterval    time.Duration
}

func tunablesOf(c conf.Sender) *tunables {
	return &tunables{
		workers: c.Workers, retries: c.Retries, window: max(c.Window, 1),
		timeout: c.Timeout, connectTimeout: c.ConnectTimeout,
		backoff: c.RetryBackoff, backoffMax: c.RetryBackoffMax,
		settle: c.Settle, scanInterval: c.ScanInterval,
	}
}

// Sender is the spool → remote pipeline. Run it once; Reload and Ready may
// be called concurrently with Run.
type Sender struct {
	cfg             conf.Sender // as started; the live keys are in live
	live            atomic.Pointer[tunables]
	spec            *protocol.Spec
	log             *slog.Logger
	shutdownTimeout time.Duration
	dirs            dirs
	noLeases        bool
	lock            atomic.Pointer[fsutil.DirLock] // the spool's, while Run runs
	lockErr         atomic.Pointer[error]          // the spool path no longer names the locked directory

	q       *queue
	w       *watcher
	slots   *limiter
	client  *client
	circuit *circuit
	m       *metrics
	bufs    sync.Pool

	running atomic.Bool
	started chan struct{}

	delivered, rejected, failed atomic.Int64 // for the periodic summary
	lastErr                     atomic.Pointer[ErrorEvent]
	failedIdx                   *failedIndex
	putBacks                    atomic.Int64 // claims returned to the spool at drain
	leaseWarned                 atomic.Bool  // the kernel could not tell whether a claim had a writer
	specials                    nameSet      // non-regular files whose move to failed_dir failed (logged once)
	stuck                       stuckClaims  // claims whose disposal is being retried (stuck.go)

	amqp *amqpSource // sender.source=amqp (amqp.go); nil: the spool
}

// New checks the configuration and builds a Sender; it touches no file.
func New(o Options) (*Sender, error) {
	c := o.Config
	if len(c.Remote) == 0 {
		return nil, errors.New("sender.remote: required")
	}
	if err := c.Validate(); err != nil { // as conf.Load did, for a Config built in code
		return nil, err
	}
	tc, err := newTLS(c.TLS.CA, c.TLS.Cert, c.TLS.Key, c.TLS.ServerName)
	if err != nil {
		return nil, err
	}
	s := &Sender{
		cfg:             c,
		spec:            o.Spec,
		log:             o.Logger,
		shutdownTimeout: o.ShutdownTimeout,
		noLeases:        o.noLeases,
		dirs:            newDirs(c.SpoolDir, c.FailedDir, c.SentDir),
		q:               newQueue(c.Settle),
		slots:           newLimiter(c.Workers),
		started:         make(chan struct{}),
		failedIdx:       &failedIndex{dir: c.FailedDir},
	}
	if s.spec == nil {
		s.spec = protocol.DefaultRequestSpec()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.shutdownTimeout <= 0 {
		s.shutdownTimeout = 30 * time.Second
	}
	s.live.Store(tunablesOf(c))
	s.m = newMetrics(s.q)
	s.m.collectors = append(s.m.collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spoolgate_sender_failed_files",
		Help: "Files in sender.failed_dir (not counting .reason files).",
	}, func() float64 {
		n, _ := s.failedIdx.count()
		return float64(n)
	}))
	s.m.collectors = append(s.m.collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spoolgate_sender_claims_stuck",
		Help: "Claims whose disposal (lines to sender.failed_dir, a file to sender.sent_dir) failed, most often on a full file system, and is retried; /readyz fails meanwhile.",
	}, func() float64 { return float64(s.stuck.count()) }))
	s.circuit = &circuit{
		log: s.log,
		backoff: func() (time.Duration, time.Duration) {
			t := s.live.Load()
			return t.backoff, t.backoffMax
		},
		setOpen: func(open bool) {
			if open {
				s.m.circuit.Set(1)
			} else {
				s.m.circuit.Set(0)
			}
		},
	}
	s.client = &client{
		remotes:   slices.Clone(c.Remote),
		tls:       tc,
		keepalive: c.Keepalive,
		live:      s.live.Load,
		circuit:   s.circuit,
	}
	s.circuit.probe = s.client.probe
	s.w = &watcher{
		dir:      s.dirs.spool,
		q:        s.q,
		interval: func() time.Duration { return s.live.Load().scanInterval },
		special:  func(name string, fi fs.FileInfo) { s.failSpecial(s.dirs.spool, name, fi) },
		onError: func(op string, err error) {
			s.log.Warn("spool watch: "+op, "err", err)
		},
	}
	s.bufs.New = func() any { return new(workBuf) }
	if c.Source == conf.SourceAMQP {
		s.amqp = newAMQPSource(s)
	}
	if o.Registerer != nil {
		if err := s.m.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		if tc != nil {
			if err := o.Registerer.Register(tlsutil.ExpiryCollector(tc.Expiry)); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	s.tlsWarnings()
	return s, nil
}

// Started is closed once Run has restored the claims left in .inflight and
// scanned the spool: the moment to tell systemd READY=1.
func (s *Sender) Started() <-chan struct{} { return s.started }

// Ready reports nil when the sender is started, its spool readable and the
// circuit closed; else why not (for /readyz).
func (s *Sender) Ready() error {
	select {
	case <-s.started:
	default:
		return errors.New("starting")
	}
	if open, since, cause := s.circuit.isOpen(); open {
		if re := (*tlsutil.RejectedError)(nil); errors.As(cause, &re) {
			return fmt.Errorf("circuit open since %s: %v", since.Format(time.RFC3339), re)
		}
		return fmt.Errorf("circuit open since %s: remote unreachable: %v", since.Format(time.RFC3339), cause)
	}
	if s.amqp != nil {
		return s.amqp.ready()
	}
	if p := s.lockErr.Load(); p != nil {
		return *p
	}
	if p := s.w.scanErr.Load(); p != nil {
		return *p
	}
	if st := s.stuck.list(); len(st) > 0 {
		c := st[0]
		return fmt.Errorf("%d claim(s) stuck: %s of %s failing since %s: %s (retried until it works)",
			len(st), c.What, c.Name, c.Since.Format(time.RFC3339), c.Error)
	}
	return nil
}

// Reload applies the live keys of c: workers, timeout, retries, window,
// connect_timeout, retry_backoff(_max), settle and scan_interval (see
// tunablesOf), and sender.tls.* (tlsFilesOf: the files are read again, for
// the next dial; a pair that does not load is logged and the running one
// stays). These are the sender's live keys in conf's table, which
// TestReloadAppliesLiveKeys holds this method to. Lowering workers takes
// effect as claims finish. The other keys are ignored here: the daemon
// logs those that changed as needing a restart (conf.ReloadDiff), except a
// switch between plain TCP and TLS, logged here. It is safe to call while
// Run runs.
func (s *Sender) Reload(c conf.Sender) {
	s.reloadTLS(c)
	old := s.live.Load()
	t := tunablesOf(c)
	if t.workers < 1 {
		t.workers = 1
	}
	s.live.Store(t)
	s.slots.setLimit(t.workers)
	s.client.trim()
	s.q.setSettle(t.settle)
	if s.amqp != nil {
		s.amqp.reload() // the prefetch may change
	}
	if *old != *t {
		s.log.Info("sender reloaded", "workers", t.workers, "timeout", t.timeout, "retries", t.retries, "window", t.window,
			"connect_timeout", t.connectTimeout, "retry_backoff", t.backoff, "retry_backoff_max", t.backoffMax,
			"settle", t.settle, "scan_interval", t.scanInterval)
	}
	if (c.TLS == tlsOff) != (s.client.tls == nil) {
		s.log.Warn("configuration change needs a restart to take effect", "key", "sender.tls (plain TCP or TLS)")
	}
}

// Run sends until ctx is done, then drains: it stops claiming, lets the
// attempts in flight finish (for at most the shutdown timeout, then cuts
// them off), puts unfinished claims back into the spool, and returns nil.
// It returns an error when it cannot start (directories, lock, watcher).
// Run may be called once.
func (s *Sender) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sender: Run called twice")
	}
	if s.amqp != nil {
		return s.runAMQP(ctx) // the results queue, not the spool
	}
	if err := s.dirs.ensure(); err != nil {
		return err
	}
	// One sender per spool: a flock on the directory itself.
	lock, err := fsutil.LockDir(s.dirs.spool)
	if errors.Is(err, fsutil.ErrLocked) {
		return fmt.Errorf("spool %s is in use by another spoolgate-sender: %w", s.dirs.spool, err)
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer lock.Close()
	s.lock.Store(lock)
	fw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return fmt.Errorf("watch spool: %w", err)
	}
	defer fw.Close()
	if err := fw.Add(s.dirs.spool); err != nil {
		return fmt.Errorf("watch spool %s: %w", s.dirs.spool, err)
	}
	restored, err := s.restore()
	if err != nil {
		return err
	}
	if err := s.w.scan(); err != nil {
		return err
	}
	pending, _ := s.q.stats()
	t := s.live.Load()
	s.log.Info("sender started", "spool", s.dirs.spool, "remote", strings.Join(s.cfg.Remote, ","),
		"pending", pending, "restored", restored, "workers", t.workers, "timeout", t.timeout, "retries", t.retries, "window", t.window)
	close(s.started)

	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	var bg, workers sync.WaitGroup
	s.circuit.start(ctx, &bg)
	bg.Go(func() { s.w.run(ctx, fw) })
	bg.Go(func() { s.summary(ctx) })
	s.pick(ctx, hard, &workers)

	s.log.Info("sender draining", "inflight", s.slots.inUse(), "shutdown_timeout", s.shutdownTimeout)
	cut := time.AfterFunc(s.shutdownTimeout, func() {
		s.log.Warn("shutdown timeout: cutting off the attempts in flight")
		cancelHard()
	})
	workers.Wait()
	cut.Stop()
	for _, e := range s.q.takeRestored() {
		s.putBackClaim(e.name)
	}
	bg.Wait()
	s.client.closeIdle()
	s.log.Info("sender stopped", "delivered", s.delivered.Load(), "rejected", s.rejected.Load(), "failed", s.failed.Load(),
		"put_back", s.putBacks.Load())
	return nil
}

// restore takes back the claims left in .inflight by an earlier run: they
// are sent first. Sidecars of claims that are gone and temporary files
// are removed; non-regular files go to failed_dir.
func (s *Sender) restore() (int, error) {
	des, err := os.ReadDir(s.dirs.inflight)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", s.dirs.inflight, err)
	}
	claims := make(map[string]bool)
	for _, de := range des {
		if name := de.Name(); name[0] != '.' && de.Type().IsRegular() {
			claims[name] = true
		}
	}
	var es []*entry
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(s.dirs.inflight, name)
		if name[0] == '.' {
			if de.Type().IsRegular() && !(strings.HasSuffix(name, ".ack") && claims[strings.TrimSuffix(name[1:], ".ack")]) {
				if err := os.Remove(path); err != nil {
					s.log.Warn("remove leftover", "path", path, "err", err)
				}
			}
			continue
		}
		fi, err := os.Lstat(path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("restore claim", "path", path, "err", err)
			}
			continue
		}
		switch {
		case fi.Mode().IsRegular():
			es = append(es, &entry{name: name, size: fi.Size(), mtime: fi.ModTime().UnixNano()})
		case fi.IsDir():
		default:
			s.failSpecial(s.dirs.inflight, name, fi)
		}
	}
	slices.SortFunc(es, func(a, b *entry) int {
		if c := cmp.Compare(a.mtime, b.mtime); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	s.q.restore(es)
	return len(es), nil
}

// pick claims files and starts a worker for each, at most workers at
// once, until ctx is done.
func (s *Sender) pick(ctx, hard context.Context, workers *sync.WaitGroup) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if err := s.slots.acquire(ctx); err != nil {
			return
		}
		e, restored, err := s.nextClaim(ctx, timer)
		if errors.Is(err, errYield) {
			s.slots.release() // to a claim whose writer is done
			continue
		}
		if err != nil {
			s.slots.release()
			return
		}
		s.m.inflight.Inc()
		workers.Go(func() {
			sl := &slot{s: s, held: true, key: resumeKey{mtime: e.mtime, name: e.name}}
			s.process(ctx, hard, e, restored, sl)
			s.q.done(e.name)
			sl.done()
		})
	}
}

// errYield: the picker gives its slot to a claim that waited for its
// writer (limiter.resume).
var errYield = errors.New("slot wanted by a parked claim")

// slot is a worker's hold on one of the sender.workers slots. A claim
// whose writer still holds the file open waits without one (park), so
// that files that hang open (a stalled scp) cannot take every worker, and
// takes one again (unpark) before it sends or disposes of anything. So
// does a stuck claim (parkIn, untilDone).
type slot struct {
	s      *Sender
	held   bool
	parked bool
	gauge  prometheus.Gauge // counts the claim while parked; nil: none
	key    resumeKey        // the claim's file: parked claims resume oldest first
}

// park gives the slot back while the claim waits for its writer (counted
// in spoolgate_sender_claims_waiting_for_writer).
func (sl *slot) park() {
	if sl != nil {
		sl.parkIn(sl.s.m.waiting)
	}
}

// parkIn gives the slot back while the claim waits, counted in g (nil: in
// none) instead of spoolgate_sender_inflight.
func (sl *slot) parkIn(g prometheus.Gauge) {
	if sl == nil || !sl.held {
		return
	}
	sl.held, sl.parked, sl.gauge = false, true, g
	sl.s.m.inflight.Dec()
	if g != nil {
		g.Inc()
	}
	sl.s.slots.release()
}

// isParked reports whether the claim gave its slot back to wait.
func (sl *slot) isParked() bool { return sl != nil && sl.parked }

// unparked ends the wait of a parked claim.
func (sl *slot) unparked() {
	sl.parked = false
	if sl.gauge != nil {
		sl.gauge.Dec()
		sl.gauge = nil
	}
}

// unpark takes a slot again, before the picker does; false when ctx is
// done first (no slot is then held).
func (sl *slot) unpark(ctx context.Context) bool {
	if sl == nil || !sl.parked {
		return true
	}
	sl.unparked()
	if sl.s.slots.resume(ctx, &sl.key) != nil {
		return false
	}
	sl.held = true
	sl.s.m.inflight.Inc()
	return true
}

// done ends the worker: its slot, if held, is released.
func (sl *slot) done() {
	if sl.parked {
		sl.unparked()
	}
	if sl.held {
		sl.held = false
		sl.s.m.inflight.Dec()
		sl.s.slots.release()
	}
}

// nextClaim waits for the circuit to be closed and a file to be ready, and
// claims it.
func (s *Sender) nextClaim(ctx context.Context, timer *time.Timer) (*entry, bool, error) {
	for {
		if err := s.circuit.wait(ctx); err != nil {
			return nil, false, err
		}
		now := time.Now()
		e, restored, wait := s.q.next(now)
		if e != nil {
			if restored || s.claim(e) {
				return e, restored, nil
			}
			continue
		}
		if wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-s.q.changed:
		case <-timer.C:
		case <-s.slots.yieldWanted():
			if s.slots.mustYield() {
				timer.Stop()
				return nil, false, errYield
			}
		}
		timer.Stop()
	}
}

// summary logs what happened once a minute, when anything did.
func (s *Sender) summary(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	var last [3]int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := [3]int64{s.delivered.Load(), s.rejected.Load(), s.failed.Load()}
		pending, _ := s.q.stats()
		if cur == last && pending == 0 {
			continue
		}
		s.log.Info("summary", "delivered", cur[0]-last[0], "rejected", cur[1]-last[1], "failed", cur[2]-last[2],
			"pending", pending, "inflight", s.slots.inUse())
		last = cur
	}
}
