// Package logging builds the one *slog.Logger of a spoolgate daemon from the
// log.* settings: the text format operators know from the Python daemons
//
//	2026-11-21 09:30:00,123 - INFO - [server.go:87] accepted 1 message from 10.1.2.3:51234
//
// or JSON, written to stderr or to <log.dir>/<daemon>.log, rotated by size
// (lumberjack) and, with log.rotate_daily, at local midnight.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"spoolgate/conf"
)

// Logging is a daemon's logger, its live level and its output.
type Logging struct {
	// Logger is the logger to pass down; safe for concurrent use.
	Logger *slog.Logger
	// Level is the minimum level logged; Set it to change the level live.
	Level *slog.LevelVar

	closer io.Closer // the log file; nil for stderr
}

// New builds the logger of daemon ("receiver", "sender") from cfg. With
// cfg.Dir empty it writes to stderr, else to cfg.Dir/<daemon>.log, creating
// the directory; the file is opened now so a permission problem shows at
// start; a nil stderr means os.Stderr. It returns an error for an unknown
// level or format or an unwritable log file. Close the Logging when done.
func New(cfg conf.Log, daemon string, stderr io.Writer) (*Logging, error) {
	return newLogging(cfg, daemon, stderr, time.Now)
}

func newLogging(cfg conf.Log, daemon string, stderr io.Writer, now func() time.Time) (*Logging, error) {
	lv := new(slog.LevelVar)
	level, err := ParseLevel(cfg.Level)
	if err != nil {
		return nil, err
	}
	lv.Set(level)
	if cfg.Format != "text" && cfg.Format != "json" {
		return nil, fmt.Errorf("logging: format %q: want text or json", cfg.Format)
	}
	l := &Logging{Level: lv}
	w := stderr
	if w == nil {
		w = os.Stderr
	}
	if cfg.Dir != "" {
		f, err := openFile(cfg, daemon, now)
		if err != nil {
			return nil, err
		}
		w, l.closer = f, f
	}
	if cfg.Format == "json" {
		l.Logger = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{AddSource: true, Level: lv}))
	} else {
		l.Logger = slog.New(NewTextHandler(w, lv))
	}
	return l, nil
}

// SetLevel parses level ("debug", "info", "warn", "error") and makes it
// the minimum level, effective at once for every logger derived from
// l.Logger. It returns an error, and changes nothing, for an unknown level.
func (l *Logging) SetLevel(level string) error {
	lv, err := ParseLevel(level)
	if err != nil {
		return err
	}
	l.Level.Set(lv)
	return nil
}

// Close closes the log file, if any. Records logged afterwards reopen it.
func (l *Logging) Close() error {
	if l.closer == nil {
		return nil
	}
	return l.closer.Close()
}

// ParseLevel parses a log.level value: debug, info, warn (or warning) or
// error, in any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("logging: level %q: want debug, info, warn or error", s)
}

// openFile opens the lumberjack log file, wrapped for daily rotation.
func openFile(cfg conf.Log, daemon string, now func() time.Time) (io.WriteCloser, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("logging: create log dir: %w", err)
	}
	lj := &lumberjack.Logger{
		Filename:   filepath.Join(cfg.Dir, daemon+".log"),
		MaxSize:    cfg.MaxSizeMB,
		MaxBackups: cfg.MaxBackups,
		MaxAge:     cfg.MaxAgeDays,
		Compress:   cfg.Compress,
		LocalTime:  true,
	}
	if _, err := lj.Write(nil); err != nil { // open now to fail early
		return nil, fmt.Errorf("logging: open %s: %w", lj.Filename, err)
	}
	if !cfg.RotateDaily {
		return lj, nil
	}
	d := &daily{lj: lj, now: now}
	// A file last written before today is rotated by the first record, so a
	// restart after midnight does not mix days.
	start := now()
	if fi, err := os.Stat(lj.Filename); err == nil && fi.Size() > 0 && fi.ModTime().Before(start) {
		start = fi.ModTime()
	}
	d.next = nextMidnight(start)
	return d, nil
}

// daily rotates a lumberjack log at local midnight: each Write compares the
// clock with the next midnight, which costs one time comparison.
type daily struct {
	mu   sync.Mutex
	lj   *lumberjack.Logger
	now  func() time.Time
	next time.Time
}

// Write writes p, first rotating the file when local midnight has passed
// since the last rotation. A failed rotation is returned but p is written
// anyway.
func (d *daily) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var rerr error
	if t := d.now(); !t.Before(d.next) {
		d.next = nextMidnight(t)
		if err := d.lj.Rotate(); err != nil {
			rerr = fmt.Errorf("logging: rotate at midnight: %w", err)
		}
	}
	n, err := d.lj.Write(p)
	return n, errors.Join(err, rerr)
}

// Close closes the log file.
func (d *daily) Close() error { return d.lj.Close() }

// nextMidnight returns the first local midnight after t.
func nextMidnight(t time.Time) time.Time {
	y, m, day := t.Date()
	return time.Date(y, m, day+1, 0, 0, 0, 0, t.Location())
}
