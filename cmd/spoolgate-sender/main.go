// Command spoolgate-sender watches the spool directory and pushes the
// result files dropped there to the remote receiver, oldest first, with a
// per-attempt timeout, retries and at most sender.workers sends at once
// (docs/PROTOCOL.md §5, §6).
//
//	spoolgate-sender [-config PATH] [-version]
//
// SIGTERM or SIGINT drains (a second one exits at once); SIGHUP, or the
// config file changing, reloads the live keys. Exit codes: 0 after a drain,
// 2 for a bad configuration or a spool owned by another sender, 1 otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"spoolgate/cmd/internal/console"
	"spoolgate/cmd/internal/host"
	"spoolgate/conf"
	"spoolgate/internal/daemon"
	"spoolgate/internal/journal"
	"spoolgate/internal/mask"
	"spoolgate/internal/version"
	"spoolgate/sender"
)

func main() {
	os.Exit(daemon.Main(daemon.Program[*conf.Config]{
		Name: "sender", Path: conf.Path, PathUsage: conf.PathUsage, Load: load, Run: run,
	}))
}

// load loads the config file at path and checks that the sender can run
// with it (sender.remote is set).
func load(path string) (*conf.Config, error) {
	cfg, err := conf.Load(path)
	if err != nil {
		return nil, err
	}
	return cfg, cfg.RequireSender()
}

// run serves until ctx is done (the first SIGTERM), then drains.
func run(ctx context.Context, p *daemon.Process[*conf.Config]) error {
	cfg, log := p.Config, p.Logger
	v := version.Get()
	log.Info("spoolgate-sender starting", "version", v.Version, "revision", v.ShortRevision(), "config", p.Path, "instance", cfg.Instance)
	reg := daemon.Registry(cfg.Instance)
	d := cfg.Protocol.Dialect
	keys := journal.KeyFields(cfg.Receiver.DedupKey, d.Result().Names())
	jr, err := host.OpenJournal(cfg, "sender", keys, log, reg)
	if err != nil {
		return err
	}
	defer func() {
		// After the drain: the last outcomes and put backs are in it.
		if err := jr.Close(); err != nil {
			log.Error("journal: the last lines could not be written", "err", err)
		}
	}()
	s, err := sender.New(sender.Options{
		Config:          cfg.Sender,
		Dialect:         d,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          log,
		Registerer:      reg,
		Journal:         jr,
		JournalKeys:     keys,
		Mask:            mask.New(d.Result(), cfg.Log.Mask, cfg.Log.MaskRRN),
	})
	if err != nil {
		return err
	}
	reg.MustRegister(daemon.ReadyGauge(s.Ready))
	con := console.NewSender(s, s, cfg.AdminToken, log).WithHost(host.NewView(cfg, 5*time.Second))
	admin, err := daemon.Admin(cfg.Sender.AdminListen, reg, s.Ready, cfg.AdminPprof, cfg.AdminHosts, log, con.Routes()...)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", cfg.Sender.AdminListen, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = admin.Close(cctx)
	}()

	bg, stopBg := context.WithCancel(context.Background())
	defer stopBg()
	tlsWatch := daemon.WatchFiles(bg, "tls files", s.TLSFiles(), log, s.ReloadTLS)
	defer tlsWatch.Close()
	// Watched before READY=1: an edit or a SIGHUP from then on is seen.
	watch := p.WatchConfig(func(next *conf.Config) {
		s.Reload(next.Sender)
		tlsWatch.Set(s.TLSFiles())
	})
	go con.Run(bg)
	var watching sync.WaitGroup
	watching.Go(func() { watch(bg) })
	go func() {
		select {
		case <-s.Started():
			daemon.Notify("READY=1")
		case <-bg.Done():
		}
	}()
	err = s.Run(ctx)
	stopBg()
	watching.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
