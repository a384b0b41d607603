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
// so a crash resends at most 100 lines of each file in flight one line at
// a time (line_order strict), 100 + 2 × sender.workers over lanes (see
// lanes.go), 2W with a send window of W lines (window.go; progress.go
// has the format).
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
// and the spool is not used (amqp.go). Both are sources behind one seam
// (source.go): the spool's is spool.go, and a claimed file's lifecycle is
// claim.go (its outcomes in outcome.go, the waits for its writer in
// claimwait.go); one line goes out through send.go (at a time: over up
// to sender.workers lanes at once, lanes.go) or window.go (W at a time on
// one connection; W sized per remote with sender.window = auto,
// autowindow.go), with the retry policy of retry.go and the circuit of
// circuit.go, framed and its reply read in the dialect (protocol.Dialect:
// Sender.frame, conn.readReply, replyResult). The connections are
// client.go's; the heartbeat on those idle in its pool is heartbeat.go.
//
// The package also reads the state of a spool from its directories alone
// (ReadStatus) and moves failed files back (Requeue), and reads and
// requeues the queues of the amqp source (ReadQueues, RequeueAMQP), for
// the operator's tool.
package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/conf"
	"spoolgate/internal/journal"
	"spoolgate/internal/mask"
	"spoolgate/internal/tlsutil"
	"spoolgate/protocol"
)

// Options configure a Sender.
type Options struct {
	Config          conf.Sender           // the sender.* keys
	Dialect         *protocol.Dialect     // the wire: how lines are framed and replies read; nil: protocol.DefaultDialect()
	ShutdownTimeout time.Duration         // to finish in-flight attempts once Run's context is done; 0: 30s
	Logger          *slog.Logger          // nil: discard
	Registerer      prometheus.Registerer // nil: metrics are not registered
	// Journal gets each line's fate (journal.go); nil: none. The caller
	// opens it with JournalKeys and closes it after Run returns.
	Journal *journal.Journal
	// JournalKeys are the key fields the journal was opened with
	// (journal.KeyFields of receiver.dedup_key and the result spec's
	// names), in order.
	JournalKeys []string
	// Mask masks what the Sender shows of lines and replies (reasons,
	// logs, the last error of Snapshot); nil masks nothing. Built for the
	// result spec.
	Mask *mask.Masker

	noLeases bool // tests: never ask the kernel whether a writer holds a claim open
}

// tunables are the keys that change on Reload.
type tunables struct {
	workers, retries        int
	window                  int // lines of one file in flight on a connection; windowAuto: auto
	lineOrder               conf.LineOrder
	timeout, connectTimeout time.Duration
	backoff, backoffMax     time.Duration
	settle, scanInterval    time.Duration
}

func tunablesOf(c conf.Sender) *tunables {
	return &tunables{
		workers: c.Workers, retries: c.Retries, window: int(c.Window), lineOrder: c.LineOrder,
		timeout: c.Timeout, connectTimeout: c.ConnectTimeout,
		backoff: c.RetryBackoff, backoffMax: c.RetryBackoffMax,
		settle: c.Settle, scanInterval: c.ScanInterval,
	}
}

// Sender is the source → remote pipeline. Run it once; Reload and Ready
// may be called concurrently with Run.
type Sender struct {
	cfg             conf.Sender // as started; the live keys are in live
	live            atomic.Pointer[tunables]
	d               *protocol.Dialect
	log             *slog.Logger
	shutdownTimeout time.Duration
	dirs            dirs
	noLeases        bool
	src             source             // where the lines come from: the spool, or the results queue (source.go)
	tr              trail              // the journal and the masking (journal.go)
	sentRemoved     prometheus.Counter // files removed from sent_dir by sender.sent_keep (sentkeep.go)

	q       *queue // the spool's pending files and claims (spool.go; empty with the amqp source)
	slots   *limiter
	client  *client
	circuit *circuit
	auto    autoWindows // the remotes' windows under sender.window = auto
	m       *metrics
	hb      *heartbeat // nil: sender.heartbeat is off
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
		d:               o.Dialect,
		log:             o.Logger,
		shutdownTimeout: o.ShutdownTimeout,
		noLeases:        o.noLeases,
		dirs:            newDirs(c.SpoolDir, c.FailedDir, c.SentDir),
		q:               newQueue(c.Settle),
		slots:           newLimiter(c.Workers),
		started:         make(chan struct{}),
		failedIdx:       &failedIndex{dir: c.FailedDir},
	}
	if s.d == nil {
		s.d = protocol.DefaultDialect()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.shutdownTimeout <= 0 {
		s.shutdownTimeout = 30 * time.Second
	}
	s.live.Store(tunablesOf(c))
	s.tr = newTrail(s.d, o.Journal, o.Mask, o.JournalKeys)
	s.m = newMetrics(s.q, s.failedIdx, &s.stuck, tc)
	s.circuit = newCircuit(s.log, s.live.Load, s.m.circuit)
	s.client = newClient(c, s.d, tc, s.live.Load, s.circuit)
	if s.hb, err = newHeartbeat(c, s.d); err != nil {
		return nil, err
	}
	if s.hb != nil {
		s.client.maxIdle = max(maxIdle, 2*s.hb.every) // the pool holds none idle longer than the heartbeat
	}
	s.auto.log = s.log
	s.bufs.New = func() any { return new(workBuf) }
	s.src = newSource(s)
	s.sentRemoved = newSentRemoved()
	s.m.collectors = append(s.m.collectors, s.sentRemoved)
	if o.Registerer != nil {
		if err := s.m.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	s.tlsWarnings()
	return s, nil
}

// Started is closed once Run has restored the claims left in .inflight and
// scanned the spool: the moment to tell systemd READY=1.
func (s *Sender) Started() <-chan struct{} { return s.started }

// Ready reports nil when the sender is started, the circuit closed and its
// source taking work (the spool readable and no claim stuck; consuming
// from the results queue); else why not (for /readyz; an open circuit's
// says when it probes next).
func (s *Sender) Ready() error {
	select {
	case <-s.started:
	default:
		return errors.New("starting")
	}
	if open, since, cause := s.circuit.isOpen(); open {
		next := ""
		if at := s.circuit.nextProbe(); !at.IsZero() {
			next = fmt.Sprintf("; next probe in %s", max(0, time.Until(at)).Round(100*time.Millisecond))
		}
		if re := (*tlsutil.RejectedError)(nil); errors.As(cause, &re) {
			return fmt.Errorf("circuit open since %s: %v%s", since.Format(time.RFC3339), re, next)
		}
		return fmt.Errorf("circuit open since %s: remote unreachable: %v%s", since.Format(time.RFC3339), cause, next)
	}
	return s.src.ready()
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
	s.src.reload()
	if *old != *t {
		s.log.Info("sender reloaded", "workers", t.workers, "timeout", t.timeout, "retries", t.retries, "window", conf.Window(t.window), "line_order", t.lineOrder,
			"connect_timeout", t.connectTimeout, "retry_backoff", t.backoff, "retry_backoff_max", t.backoffMax,
			"settle", t.settle, "scan_interval", t.scanInterval)
	}
	if (c.TLS == tlsOff) != (s.client.tls == nil) {
		s.log.Warn("configuration change needs a restart to take effect", "key", "sender.tls (plain TCP or TLS)")
	}
}

// Run sends until ctx is done, then drains: it stops taking work, lets
// the attempts in flight finish (for at most the shutdown timeout, then
// cuts them off), puts back what is not done (unfinished claims into the
// spool; deliveries to the results queue), and returns nil. It returns an
// error when its source cannot start (directories, lock, watcher; a queue
// the broker refuses). Run may be called once.
func (s *Sender) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sender: Run called twice")
	}
	bgCtx, cancel := context.WithCancel(ctx) // also ends the background work when the source cannot start
	defer cancel()
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	var bg sync.WaitGroup
	begun := false
	started := func(attrs ...any) {
		begun = true
		t := s.live.Load()
		s.log.Info("sender started", append(attrs, "remote", strings.Join(s.cfg.Remote, ","),
			"workers", t.workers, "timeout", t.timeout, "retries", t.retries, "window", conf.Window(t.window), "line_order", t.lineOrder)...)
		close(s.started)
		s.circuit.start(bgCtx, &bg)
		bg.Go(func() { s.summary(bgCtx) })
		bg.Go(func() { s.keepSent(bgCtx) })
		if s.hb != nil {
			bg.Go(func() { s.heartbeats(bgCtx) })
		}
	}
	stopCut := s.cutAtDrain(ctx, cancelHard)
	err := s.src.run(ctx, hard, started)
	stopCut()
	if !begun {
		return err
	}
	cancel()
	bg.Wait()
	s.client.closeIdle()
	s.log.Info("sender stopped", "delivered", s.delivered.Load(), "rejected", s.rejected.Load(), "failed", s.failed.Load(),
		"put_back", s.putBacks.Load())
	return err
}

// cutAtDrain says when a drain starts (ctx done) and cuts off the attempts
// in flight (cut) once it has taken the shutdown timeout; stop ends that
// watch once the drain is over.
func (s *Sender) cutAtDrain(ctx context.Context, cut func()) (stop func()) {
	var mu sync.Mutex
	var timer *time.Timer
	over := false
	stopWatch := context.AfterFunc(ctx, func() {
		s.log.Info("sender draining", "inflight", s.src.inFlight(), "shutdown_timeout", s.shutdownTimeout)
		mu.Lock()
		defer mu.Unlock()
		if !over {
			timer = time.AfterFunc(s.shutdownTimeout, func() {
				s.log.Warn("shutdown timeout: cutting off the attempts in flight")
				cut()
			})
		}
	})
	return func() {
		stopWatch()
		mu.Lock()
		defer mu.Unlock()
		over = true
		if timer != nil {
			timer.Stop()
		}
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
