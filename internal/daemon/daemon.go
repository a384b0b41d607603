// Package daemon is the process plumbing both daemons share: signals,
// config reload on SIGHUP or file change, sd_notify, the admin HTTP server
// and the mapping of errors to exit codes. Only the mains use it. It knows
// no config package: a main hands Main a Program that says how to load
// its config, and the config is asked only for what Config declares.
package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/fsnotify/fsnotify"

	"spoolgate/internal/fsutil"
)

// Signals returns a context that is cancelled on the first SIGTERM or
// SIGINT, so the daemon drains. A second signal exits the process at once
// with code 1: the one place outside a main that picks an exit code, because
// a drain that hangs must still be stoppable. stop releases the handler.
func Signals(ctx context.Context, log *slog.Logger) (drain context.Context, stop func()) {
	drain, cancel := context.WithCancel(ctx)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			log.Info("draining", "signal", s.String())
			Notify("STOPPING=1")
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-ch:
			log.Error("second signal: exiting now", "signal", s.String())
			os.Exit(1)
		case <-done:
		}
	}()
	return drain, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}

// debounce is how long ConfigWatch.Run waits for more events after a change
// before it reloads: editors write a file in several steps.
const debounce = 200 * time.Millisecond

// A ConfigWatch is SIGHUP and the config file's directory, watched from
// the moment NewConfigWatch returns: a daemon makes it before it listens
// or says READY=1, so that an edit or a `systemctl reload` right after the
// start is neither missed nor (SIGHUP's default action) fatal.
type ConfigWatch struct {
	path string
	abs  string
	hup  chan os.Signal
	w    *fsnotify.Watcher
}

// NewConfigWatch starts watching: SIGHUP is caught from now on, and changes
// of the file at path are queued. It watches the file's directory, so
// editors that replace the file by rename are seen too. Run, or Close,
// must follow.
func NewConfigWatch(path string) (*ConfigWatch, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return nil, err
	}
	c := &ConfigWatch{path: path, abs: abs, hup: make(chan os.Signal, 1), w: w}
	signal.Notify(c.hup, syscall.SIGHUP)
	return c, nil
}

// Close stops watching; Run closes the watch when it returns.
func (c *ConfigWatch) Close() {
	signal.Stop(c.hup)
	c.w.Close()
}

// Run calls reload on SIGHUP and whenever the file changes on disk, until
// ctx is done; reload runs on Run's goroutine.
func (c *ConfigWatch) Run(ctx context.Context, log *slog.Logger, reload func()) {
	defer c.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.hup:
			log.Info("SIGHUP: reloading config", "path", c.path)
			reload()
		case ev, ok := <-c.w.Events:
			if !ok {
				return
			}
			if changes(ev, c.abs) {
				timer.Reset(debounce)
			}
		case err, ok := <-c.w.Errors:
			if !ok {
				return
			}
			log.Warn("config watcher", "err", err)
		case <-timer.C:
			log.Info("config file changed: reloading", "path", c.path)
			reload()
		}
	}
}

// changes reports whether ev changes the config file at abs: a write, a
// create or a rename onto it. Events of other files in the directory, and
// chmods, do not.
func changes(ev fsnotify.Event, abs string) bool {
	return filepath.Clean(ev.Name) == abs && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0
}

// Notify sends state to systemd ("READY=1", "STOPPING=1", "RELOADING=1").
// It does nothing when not running under systemd.
func Notify(state string) {
	_, _ = sddaemon.SdNotify(false, state)
}

// Exit maps a run error to a process exit code: 0 for nil or cancellation,
// 2 for a bad configuration or a data dir owned by another process, 1 for
// anything else. A bad configuration is an error, or an error it wraps,
// with a BadConfig method that returns true (conf's errors).
func Exit(err error) int {
	var bad interface{ BadConfig() bool }
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return 0
	case errors.As(err, &bad) && bad.BadConfig(), errors.Is(err, fsutil.ErrLocked):
		return 2
	}
	return 1
}
