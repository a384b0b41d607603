// Package receiver is spoolgate's receiving side: a TCP (optionally TLS)
// server that frames messages, validates them against the request spec,
// stores accepted ones durably in per-minute request files (group commit)
// or publishes them to RabbitMQ with publisher confirms (AMQPSink,
// receiver.sink=amqp, docs/PROTOCOL.md §8), suppresses duplicates within a
// window, and answers each message with a 200, 400 or 500 reply in order
// (docs/PROTOCOL.md §1–4).
package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/conf"
	"spoolgate/internal/journal"
	"spoolgate/internal/logging"
	"spoolgate/internal/mask"
	"spoolgate/internal/tlsutil"
	"spoolgate/protocol"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("receiver: server closed")

const (
	// readBufSize also bounds the bytes of a pipelined batch (pipeline.go).
	readBufSize = 4096 // longer messages are assembled by protocol.Reader
	// lingerTime and lingerBytes bound the discard after a half-close.
	lingerTime  = time.Second
	lingerBytes = 64 << 10
	// freshGrace bounds the wait, during a drain, for the first message of
	// a connection accepted just before: it was sent with the connect.
	freshGrace = time.Second
	// DefaultSummaryEvery is how often the info summary is logged.
	DefaultSummaryEvery = time.Minute
	// rejectLogEvery is how often a reject reason is logged at info, with
	// a sample message and the count since its last line.
	rejectLogEvery = time.Minute
	// maxSample bounds the sample message in that line.
	maxSample = 200
	// DefaultRefusedLogEvery is how often each cause of refused
	// connections is logged per address (with the count the line stands
	// for).
	DefaultRefusedLogEvery = time.Minute
	// maxRefusedAddrs bounds the causes and addresses whose refusals are
	// logged each on a line of their own an interval; beyond them (a scan,
	// a flood from many addresses) the others share one line an interval.
	maxRefusedAddrs = 256
)

// Options configure a Server.
type Options struct {
	// Config holds the receiver.* keys. Listen and AdminListen are not
	// used by the Server (the caller binds).
	Config conf.Receiver
	// Dialect is the wire (protocol.*): framing, request spec, replies,
	// echo; nil means protocol.DefaultDialect().
	Dialect *protocol.Dialect
	// Logger defaults to a discard logger.
	Logger *slog.Logger
	// Registerer receives the metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// Clock defaults to time.Now; it names request files, stamps replies
	// and ages duplicate entries.
	Clock func() time.Time
	// SummaryEvery is the interval of the info summary log line; 0 means
	// DefaultSummaryEvery, negative turns it off.
	SummaryEvery time.Duration
	// RefusedLogEvery is the interval of the rate-limited log of refused
	// connections, per cause; 0 means DefaultRefusedLogEvery.
	RefusedLogEvery time.Duration
	// Sink stores the accepted lines; nil means the sink Config.Sink
	// names, opened by OpenSink. The Server closes it at the end of
	// Shutdown; when New fails, the caller still owns a Sink it passed.
	Sink Sink
	// Journal gets a record of every message answered and of every
	// request file published (journal.go); nil: none. The caller closes
	// it after Shutdown.
	Journal *journal.Journal
	// Mask masks what the Server shows of messages (log samples, logged
	// errors, the reject samples of Status); nil masks nothing.
	Mask *mask.Masker

	storeHooks storeHooks // tests
}

// live holds the settings a reload may change, read once per message.
type live struct {
	readTimeout, idleTimeout, writeTimeout time.Duration
	maxMessage                             int
	allow                                  []netip.Prefix
	proxyTrusted                           []netip.Prefix
	dedupWindow                            time.Duration
	maxConns, maxPerIP                     int
	handshakeTimeout                       time.Duration
}

// Server answers messages on the listeners given to Serve. Create it with
// New; its methods are safe for concurrent use.
type Server struct {
	d      *protocol.Dialect
	keyIdx []int // the request fields of receiver.dedup_key
	store  sink  // and its capabilities
	tr     trail // the journal and the masking
	dedup  *dedup
	log    *slog.Logger
	clock  func() time.Time
	m      *metrics
	tls    *tlsutil.Server // nil: plain TCP
	base   conf.Receiver   // the configuration New was given
	cfg    atomic.Pointer[live]
	lim    limiter
	// proxyLog: refused PROXY headers are logged once per cause and
	// address a minute.
	proxyLog *logging.Sampler
	rejects  *logging.Sampler // info lines per reject reason

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	waiting   int                // connections without a first message yet; guarded by mu
	perIP     map[netip.Addr]int // open connections by address; guarded by mu
	wg        sync.WaitGroup     // connection goroutines
	loops     sync.WaitGroup     // Serve's accept loops
	// draining is set once, by shutdown while it holds mu: Serve checks it
	// under mu, so no listener is added after shutdown closed them, and the
	// hot path reads it without the lock.
	draining atomic.Bool
	serving  atomic.Int32

	counts   [3]atomic.Uint64 // per code: 200, 400, 500
	dups     atomic.Uint64
	accepted atomic.Uint64
	denied   atomic.Uint64

	rejectStats  rejectStats // for the console
	lineCache    lineCache
	refusedLog   *logging.Sampler // refused connections: one line per cause, address and interval
	refusedEvery time.Duration

	stopSummary chan struct{}
	summaryDone chan struct{}
	closeOnce   sync.Once
	closeErr    error
}

// New opens the sink of opts.Config (OpenSink) unless opts.Sink is set,
// rebuilds the duplicate window from the lines it holds (a HistorySink),
// and returns a Server ready for Serve. It fails as OpenSink does: with
// an error wrapping fsutil.ErrLocked when another receiver owns the data
// dir, a *conf.Error when the amqp queue exists with other arguments.
func New(opts Options) (*Server, error) {
	c := opts.Config
	if opts.Dialect == nil {
		opts.Dialect = protocol.DefaultDialect()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.SummaryEvery == 0 {
		opts.SummaryEvery = DefaultSummaryEvery
	}
	if opts.RefusedLogEvery <= 0 {
		opts.RefusedLogEvery = DefaultRefusedLogEvery
	}
	if err := c.Validate(); err != nil { // as conf.Load did, for a Config built in code
		return nil, fmt.Errorf("new receiver: %w", err)
	}
	idx, err := opts.Dialect.KeyIndexes(c.DedupKey)
	if err != nil {
		return nil, fmt.Errorf("new receiver: dedup_key %w", err)
	}
	tlsConf, err := newTLS(c)
	if err != nil {
		return nil, fmt.Errorf("new receiver: %w", err)
	}
	m, err := newMetrics(opts.Registerer, tlsConf)
	if err != nil {
		return nil, err
	}
	tr := newTrail(opts.Dialect, opts.Journal, opts.Mask, c.DedupKey)
	st := opts.Sink
	if st == nil {
		so := SinkOptions{Config: c, Dialect: opts.Dialect, Clock: opts.Clock, Logger: opts.Logger,
			Registerer: opts.Registerer, OnSync: func(n int) { m.syncBatch.Observe(float64(n)) }, storeHooks: opts.storeHooks}
		if tr.jr != nil {
			so.OnPublish = func(part, final string) { tr.published(part, final, opts.Clock()) }
		}
		st, err = OpenSink(so)
		if err != nil {
			return nil, fmt.Errorf("new receiver: %w", err)
		}
	}
	s := &Server{
		d:            opts.Dialect,
		keyIdx:       idx,
		store:        sinkOf(st),
		tr:           tr,
		dedup:        newDedup(c.DedupWindow),
		log:          opts.Logger,
		clock:        opts.Clock,
		m:            m,
		tls:          tlsConf,
		base:         c,
		proxyLog:     logging.NewBoundedSampler(proxyLogEvery, maxRefusedAddrs),
		listeners:    make(map[net.Listener]struct{}),
		conns:        make(map[*conn]struct{}),
		perIP:        make(map[netip.Addr]int),
		refusedLog:   logging.NewBoundedSampler(opts.RefusedLogEvery, maxRefusedAddrs),
		refusedEvery: opts.RefusedLogEvery,
		stopSummary:  make(chan struct{}),
		summaryDone:  make(chan struct{}),
		rejects:      logging.NewSampler(rejectLogEvery),
	}
	s.lim.init(c.MaxConns)
	s.cfg.Store(liveOf(c))
	s.tlsWarnings()
	if err := s.rebuildDedup(c.DedupWindow); err != nil {
		if opts.Sink == nil {
			st.Close()
		}
		return nil, fmt.Errorf("new receiver: %w", err)
	}
	go s.summary(opts.SummaryEvery)
	return s, nil
}

func liveOf(c conf.Receiver) *live {
	return &live{
		readTimeout:      c.ReadTimeout,
		idleTimeout:      c.IdleTimeout,
		writeTimeout:     c.WriteTimeout,
		maxMessage:       c.MaxMessageBytes,
		allow:            slices.Clone(c.Allow),
		proxyTrusted:     slices.Clone(c.ProxyTrusted),
		dedupWindow:      c.DedupWindow,
		maxConns:         c.MaxConns,
		maxPerIP:         c.MaxConnsPerIP,
		handshakeTimeout: c.TLS.HandshakeTimeout,
	}
}

// rebuildDedup loads the keys of the lines stored within the window, when
// the sink can give them back.
func (s *Server) rebuildDedup(window time.Duration) error {
	if window <= 0 {
		return nil
	}
	if s.store.history == nil {
		s.log.Info("duplicate window starts empty: the sink keeps no lines to rebuild it from", "window", window)
		return nil
	}
	now := s.clock()
	since := now.Add(-window - time.Minute)
	var key []byte
	err := s.store.history.Lines(since, func(at time.Time, line []byte) {
		var ok bool
		if key, ok = s.d.Request().AppendRawKey(key[:0], line, s.keyIdx, 0); ok {
			s.dedup.add(s.dedup.key(key), at)
		}
	})
	if err != nil {
		return fmt.Errorf("rebuild duplicate window: %w", err)
	}
	s.log.Info("duplicate window rebuilt", "window", window, "keys", s.dedup.len())
	return nil
}

// Reload applies the live keys of c: read_timeout, idle_timeout and
// write_timeout (from the next message on), max_conns, max_conns_per_ip,
// allow, the TLS files, client_names and handshake_timeout (for new
// connections) and dedup_window. The TLS files are read again even when
// their paths did not change; a pair that does not load is logged and the
// running one stays. Other keys need a restart and are ignored here
// (conf.LiveDiff tells which changed).
func (s *Server) Reload(c conf.Receiver) {
	l, files := reloadedOf(c, s.base.MaxMessageBytes)
	s.cfg.Store(l)
	s.reloadTLS(files)
	s.lim.setLimit(l.maxConns)
	s.dedup.setWindow(l.dedupWindow)
}

// reloadedOf is all that Reload applies of c: the live settings
// (max_message_bytes stays maxMessage, as started) and the TLS files. These
// are the receiver's live keys in conf's table, which
// TestReloadAppliesLiveKeys holds it to.
func reloadedOf(c conf.Receiver, maxMessage int) (*live, tlsutil.ServerFiles) {
	if c.TLS.HandshakeTimeout <= 0 {
		c.TLS.HandshakeTimeout = 5 * time.Second
	}
	l := liveOf(c)
	l.maxMessage = maxMessage
	return l, serverFiles(c)
}

// Ready returns nil when the Server is serving at least one listener, is
// not draining, and the data dir is writable (the last store write worked
// and the directory is not read-only). For /readyz.
func (s *Server) Ready() error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	if s.serving.Load() == 0 {
		return errors.New("not listening")
	}
	if err := s.store.Healthy(); err != nil {
		return err
	}
	if d := s.store.dir; d != "" {
		if err := syscall.Access(d, 2 /* W_OK */); err != nil {
			return fmt.Errorf("data dir %s not writable: %w", d, err)
		}
	}
	return nil
}

// Serve accepts connections on ln until Shutdown or Close (it then returns
// ErrServerClosed) or ctx is done (it then closes ln and returns ctx.Err();
// connections already accepted continue until Shutdown or Close). At most
// max_conns connections are served at once across all listeners, counted
// from their first complete message; a connection with a message waits for
// a slot. Connections that have not sent one yet are bounded apart (see
// Admission in admission.go), so they cannot keep others out. Serve closes
// ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.loops.Add(1)
	s.mu.Unlock()
	s.serving.Add(1)
	stop := context.AfterFunc(ctx, func() { ln.Close(); s.lim.wake() })
	defer func() {
		defer s.loops.Done()
		stop()
		s.serving.Add(-1)
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			switch {
			case s.draining.Load():
				return ErrServerClosed
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, net.ErrClosed):
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			continue
		}
		backoff = 0
		// Even when a drain has begun, an accepted connection is served:
		// closing it would reset it and destroy the message the peer sent.
		// Shutdown waits for this loop before it waits for connections.
		// The address the connection came from counts for eviction
		// from the start (a PROXY header may name its peer later).
		c := &conn{nc: nc, fresh: true, ip: addrOf(nc.RemoteAddr())}
		s.wg.Add(1)
		s.track(c, s.cfg.Load().maxConns)
		s.accepted.Add(1)
		s.m.connections.Inc()
		go s.serveConn(c)
	}
}

// Shutdown stops accepting, closes idle connections, lets connections
// finish the messages they are reading (and the ones already buffered),
// then closes the store. When ctx ends first it closes every connection and
// returns ctx.Err() (after the store has finished the lines it was given).
// Messages not answered by then are answered by nobody; none of them got a
// 200. Later calls return the first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown(ctx) })
	return s.closeErr
}

// Close is Shutdown without grace: every connection is closed at once.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Shutdown(ctx)
}

func (s *Server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.lim.wake()
	s.loops.Wait() // no connection is added after this
	grace := min(s.cfg.Load().readTimeout, freshGrace)
	s.mu.Lock()
	for c := range s.conns {
		c.kickIfIdle(grace)
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		s.log.Warn("shutdown timeout: closed connections still open", "connections", n)
		<-done
	}
	close(s.stopSummary)
	<-s.summaryDone
	if cerr := s.store.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	return err
}
