// Command spoolgate-receiver accepts messages from the remote over TCP (or
// TLS), validates them against the request spec, stores accepted ones
// durably in per-minute request files and answers each with 200, 400 or 500
// (docs/PROTOCOL.md §1–4, §6; metrics in the README runbook).
//
//	spoolgate-receiver [-config PATH] [-version]
//
// Under systemd socket activation it serves the sockets it is given
// (LISTEN_FDS), else it listens on receiver.listen. It notifies READY=1
// once the data dir is repaired and the listener bound. SIGTERM or SIGINT
// drains (a second one exits at once); SIGHUP, or the config file changing,
// reloads the live keys. Exit codes: 0 after a drain, 2 for a bad
// configuration or a data dir owned by another receiver, 1 otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/cmd/internal/console"
	"spoolgate/cmd/internal/host"
	"spoolgate/conf"
	"spoolgate/internal/daemon"
	"spoolgate/internal/journal"
	"spoolgate/internal/mask"
	"spoolgate/internal/version"
	"spoolgate/receiver"
)

func main() {
	os.Exit(daemon.Main(daemon.Program[*conf.Config]{
		Name: "receiver", Path: conf.Path, PathUsage: conf.PathUsage, Load: conf.Load, Run: run,
	}))
}

// run serves until ctx is done (the first SIGTERM), then drains within
// shutdown_timeout.
func run(ctx context.Context, p *daemon.Process[*conf.Config]) error {
	cfg, log := p.Config, p.Logger
	rc := cfg.Receiver
	v := version.Get()
	log.Info("spoolgate-receiver starting", "version", v.Version, "revision", v.ShortRevision(), "config", p.Path, "instance", cfg.Instance, "sink", rc.Sink, "data_dir", rc.DataDir, "publish", rc.Publish,
		"fsync", rc.Fsync, "max_conns", rc.MaxConns, "read_timeout", rc.ReadTimeout, "idle_timeout", rc.IdleTimeout,
		"write_timeout", rc.WriteTimeout, "dedup_window", rc.DedupWindow, "dedup_key", strings.Join(rc.DedupKey, ","),
		"allow", len(rc.Allow), "max_conns_per_ip", rc.MaxConnsPerIP, "tls", rc.TLS.Cert != "", "mutual_tls", rc.TLS.ClientCA != "",
		"client_names", strings.Join(rc.TLS.ClientNames, ","), "proxy_protocol", rc.ProxyProtocol, "proxy_trusted", len(rc.ProxyTrusted),
		"dialect", cfg.Protocol.Dialect.String(), "journal_dir", cfg.Journal.Dir,
		"log_mask", strings.Join(cfg.Log.Mask, ","), "log_mask_rrn", cfg.Log.MaskRRN)
	reg := daemon.Registry(cfg.Instance)
	jr, err := host.OpenJournal(cfg, "receiver", journal.KeyFields(rc.DedupKey, cfg.Protocol.Dialect.Request().Names()), log, reg)
	if err != nil {
		return err
	}
	defer func() {
		// After the drain: the last replies and publications are in it.
		if err := jr.Close(); err != nil {
			log.Error("journal: the last lines could not be written", "err", err)
		}
	}()
	srv, lns, err := newServer(cfg, log, reg, jr)
	if err != nil {
		return err
	}
	con := console.NewReceiver(srv, log).WithHost(host.NewView(cfg, 5*time.Second))
	admin, err := daemon.Admin(rc.AdminListen, reg, srv.Ready, cfg.AdminPprof, cfg.AdminHosts, log, con.Routes()...)
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		_ = srv.Close()
		return fmt.Errorf("admin listen %s: %w", rc.AdminListen, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = admin.Close(cctx)
	}()

	bg, stopBg := context.WithCancel(context.Background())
	defer stopBg()
	tlsWatch := daemon.WatchFiles(bg, "tls files", srv.TLSFiles(), log, srv.ReloadTLS)
	defer tlsWatch.Close()
	var shutdownTimeout atomic.Int64
	shutdownTimeout.Store(int64(cfg.ShutdownTimeout))
	// Watched before the listeners serve and READY=1: an edit or a SIGHUP
	// from then on is seen.
	watch := p.WatchConfig(func(next *conf.Config) {
		srv.Reload(next.Receiver)
		shutdownTimeout.Store(int64(next.ShutdownTimeout))
		tlsWatch.Set(srv.TLSFiles())
	})
	serveErr := make(chan error, len(lns))
	var serving sync.WaitGroup
	for _, ln := range lns {
		log.Info("listening on " + ln.Addr().String())
		serving.Go(func() { serveErr <- srv.Serve(ctx, ln) }) // ctx done: stop accepting, then drain below
	}
	daemon.Notify("READY=1")
	go con.Run(bg)
	var watching sync.WaitGroup
	watching.Go(func() { watch(bg) })

	runErr := serveUntil(ctx, serveErr)
	timeout := time.Duration(shutdownTimeout.Load())
	log.Info("draining: not accepting; answering the messages being read", "shutdown_timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	err = srv.Shutdown(sctx)
	cancel()
	serving.Wait()
	stopBg()
	watching.Wait()
	if err != nil {
		log.Error("drain incomplete", "err", err)
		if runErr == nil {
			runErr = fmt.Errorf("drain: %w", err)
		}
		return runErr
	}
	log.Info("spoolgate-receiver stopped")
	return runErr
}

// newServer opens the server (and through it the sink receiver.sink
// names) and its listeners; it closes what it opened when one fails.
func newServer(cfg *conf.Config, log *slog.Logger, reg *prometheus.Registry, jr *journal.Journal) (*receiver.Server, []net.Listener, error) {
	rc := cfg.Receiver
	srv, err := receiver.New(receiver.Options{Config: rc, Dialect: cfg.Protocol.Dialect, Logger: log, Registerer: reg,
		Journal: jr, Mask: mask.New(cfg.Protocol.Dialect.Request(), cfg.Log.Mask, cfg.Log.MaskRRN)})
	if err != nil {
		return nil, nil, err
	}
	reg.MustRegister(daemon.ReadyGauge(srv.Ready))
	lns, err := listeners(rc.Listen, log)
	if err != nil {
		_ = srv.Close()
		return nil, nil, err
	}
	return srv, lns, nil
}

// serveUntil waits until ctx is done or a listener fails on its own, and
// returns that failure.
func serveUntil(ctx context.Context, serveErr <-chan error) error {
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		// Serve returns ctx's error when the signal stops it: that is the
		// drain starting, not a failure (cancellation is not an error).
		if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			return fmt.Errorf("serve: %w", err) // a listener failed on its own
		}
	}
	return nil
}

// listeners returns the sockets systemd passed (socket activation), else
// a listener on addr.
func listeners(addr string, log *slog.Logger) ([]net.Listener, error) {
	got, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	var lns []net.Listener
	for _, ln := range got {
		if ln != nil {
			lns = append(lns, ln)
		}
	}
	if len(lns) > 0 {
		log.Info("socket activation: serving the sockets passed by systemd; receiver.listen ignored", "sockets", len(lns))
		return lns, nil
	}
	if len(got) > 0 {
		return nil, errors.New("socket activation: no stream socket among the passed file descriptors")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return []net.Listener{ln}, nil
}
