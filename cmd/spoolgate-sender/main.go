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
	"strings"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/console"
	"spoolgate/internal/daemon"
	"spoolgate/internal/logging"
	"spoolgate/internal/version"
	"spoolgate/sender"
)

func main() {
	os.Exit(daemon.Main("sender", (*conf.Config).RequireSender, run))
}

// run serves until ctx is done (the first SIGTERM), then drains.
func run(ctx context.Context, path string, cfg *conf.Config, lg *logging.Logging) error {
	log := lg.Logger
	v := version.Get()
	log.Info("spoolgate-sender starting", "version", v.Version, "revision", v.ShortRevision(), "config", path)
	reg := daemon.Registry()
	s, err := sender.New(sender.Options{
		Config:          cfg.Sender,
		Spec:            cfg.Protocol.Result,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          log,
		Registerer:      reg,
	})
	if err != nil {
		return err
	}
	reg.MustRegister(daemon.ReadyGauge(s.Ready))
	con := console.NewSender(s, cfg.AdminToken, log)
	admin, err := daemon.Admin(cfg.Sender.AdminListen, reg, s.Ready, cfg.AdminPprof, cfg.AdminHosts, log, con.Routes()...)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", cfg.Sender.AdminListen, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = admin.Close(cctx)
	}()

	// Watched before READY=1: an edit or a SIGHUP from then on is seen.
	cw, cwErr := daemon.NewConfigWatch(path)
	if cwErr != nil {
		log.Error("config watch: reload on change is off (SIGHUP too)", "err", cwErr)
	}
	bg, stopBg := context.WithCancel(context.Background())
	go con.Run(bg)
	tlsWatch := daemon.WatchFiles(bg, "tls files", s.TLSFiles(), log, s.ReloadTLS)
	defer tlsWatch.Close()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		if cw == nil {
			return
		}
		prev := cfg
		onChange := func() {
			if next := reload(path, cfg, prev, lg, s); next != nil {
				prev = next
			}
			tlsWatch.Set(s.TLSFiles())
		}
		cw.Run(bg, log, onChange)
	}()
	go func() {
		select {
		case <-s.Started():
			daemon.Notify("READY=1")
		case <-bg.Done():
		}
	}()
	err = s.Run(ctx)
	stopBg()
	<-watchDone
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// reload applies a changed config file; a bad one is logged and ignored
// (it returns nil then, else the new config). It logs the live keys that
// changed since prev and the keys that differ from start, the config the
// process started with, and take effect only after a restart (the table in
// conf says which are which).
func reload(path string, start, prev *conf.Config, lg *logging.Logging, s *sender.Sender) *conf.Config {
	daemon.Notify("RELOADING=1")
	defer daemon.Notify("READY=1")
	cfg, err := conf.Load(path)
	if err == nil {
		err = cfg.RequireSender()
	}
	if err == nil {
		err = lg.SetLevel(cfg.Log.Level)
	}
	if err != nil {
		lg.Logger.Error("reload rejected: the running configuration stays", "err", err)
		return nil
	}
	live, _ := cfg.ReloadDiff(prev, "sender")
	_, restart := cfg.ReloadDiff(start, "sender")
	s.Reload(cfg.Sender)
	lg.Logger.Info("config reloaded", "path", path, "log_level", cfg.Log.Level, "changed", strings.Join(live, ","))
	if len(restart) > 0 {
		lg.Logger.Warn("configuration change needs a restart to take effect", "keys", strings.Join(restart, ","))
	}
	return cfg
}
