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
)

// Options are the settings of a daemon's logging (conf fills them from the
// log.* keys).
type Options struct {
	Dir         string // "" logs to stderr
	Level       string // "debug", "info", "warn" or "error"
	Format      string // "text" or "json"
	MaxSizeMB   int    // rotate the file at this size
	MaxBackups  int    // 0 keeps all
	MaxAgeDays  int    // 0 keeps all
	Compress    bool   // gzip rotated files
	RotateDaily bool   // rotate at local midnight too
}

// Logging is a daemon's logger, its live level and its output.
type Logging struct {
	// Logger is the logger to pass down; safe for concurrent use.
	Logger *slog.Logger
	// Level is the minimum level logged; Set it to change the level live.
	Level *slog.LevelVar

	closer io.Closer // the log file; nil for stderr
}

// New builds the logger of daemon ("receiver", "sender") from opts. With
// opts.Dir empty it writes to stderr, else to opts.Dir/<daemon>.log, creating
// the directory; the file is opened now so a permission problem shows at
// start; a nil stderr means os.Stderr. It returns an error for an unknown
// level or format or an unwritable log file. Close the Logging when done.
func New(opts Options, daemon string, stderr io.Writer) (*Logging, error) {
	return newLogging(opts, daemon, stderr, time.Now)
}

func newLogging(opts Options, daemon string, stderr io.Writer, now func() time.Time) (*Logging, error) {
	lv := new(slog.LevelVar)
	level, err := ParseLevel(opts.Level)
	if err != nil {
		return nil, err
	}
	lv.Set(level)
	if opts.Format != "text" && opts.Format != "json" {
		return nil, fmt.Errorf("logging: format %q: want text or json", opts.Format)
	}
	l := &Logging{Level: lv}
	w := stderr
	if w == nil {
		w = os.Stderr
	}
	if opts.Dir != "" {
		f, err := openFile(opts, daemon, now)
		if err != nil {
			return nil, err
		}
		w, l.closer = f, f
	}
	if opts.Format == "json" {
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

// FileMode is the mode of new log files: readable by the spoolgate group
// (the downstream workflow's accounts, monitoring), not by others.
const FileMode = 0o640

// openFile opens the lumberjack log file, wrapped for daily rotation.
func openFile(opts Options, daemon string, now func() time.Time) (io.WriteCloser, error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("logging: create log dir: %w", err)
	}
	lj := &lumberjack.Logger{
		Filename:   filepath.Join(opts.Dir, daemon+".log"),
		MaxSize:    opts.MaxSizeMB,
		MaxBackups: opts.MaxBackups,
		MaxAge:     opts.MaxAgeDays,
		Compress:   opts.Compress,
		LocalTime:  true,
	}
	if _, err := lj.Write(nil); err != nil { // open now to fail early
		return nil, fmt.Errorf("logging: open %s: %w", lj.Filename, err)
	}
	if err := groupReadable(lj.Filename); err != nil {
		_ = lj.Close()
		return nil, err
	}
	r := &rotating{lj: lj, now: now, max: int64(opts.MaxSizeMB) * 1024 * 1024}
	fi, err := os.Stat(lj.Filename)
	if err != nil {
		_ = lj.Close()
		return nil, fmt.Errorf("logging: %w", err)
	}
	r.size = fi.Size()
	if opts.RotateDaily {
		// A file last written before today is rotated by the first record,
		// so a restart after midnight does not mix days.
		start := now()
		if fi.Size() > 0 && fi.ModTime().Before(start) {
			start = fi.ModTime()
		}
		r.next = nextMidnight(start)
	}
	return r, nil
}

// groupReadable gives the log file at path its group's read bit when it
// lacks it: lumberjack creates a file 0600 (so does an older version of
// spoolgate), which makes it FileMode.
func groupReadable(path string) error {
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().Perm()&0o040 == 0 {
		err = os.Chmod(path, fi.Mode().Perm()|0o040)
	}
	if err != nil {
		return fmt.Errorf("logging: %w", err)
	}
	return nil
}

// rotating rotates a lumberjack log by size and, with log.rotate_daily, at
// local midnight, and keeps each new file readable by the group.
// lumberjack creates a rotated file with the mode of the old one filtered
// by the umask (a umask of 077 makes it 0600), so the size check is done
// here, before lumberjack would do it, and each new file is fixed. A Write costs one time
// comparison and one addition. (The .gz files lumberjack compresses in the
// background take the backup's mode filtered by the umask: 0640 under the
// units' UMask=0027 and the usual 0022.)
type rotating struct {
	mu   sync.Mutex
	lj   *lumberjack.Logger
	now  func() time.Time
	next time.Time // the next midnight; zero: no daily rotation
	max  int64     // bytes
	size int64     // of the current file, as written through here
}

// Write writes p, first rotating the file when local midnight has passed
// since the last rotation or when p would take it over the maximum size. A
// failed rotation is returned but p is written anyway.
func (r *rotating) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rerr error
	if !r.next.IsZero() {
		if t := r.now(); !t.Before(r.next) {
			r.next = nextMidnight(t)
			rerr = r.rotate("at midnight")
		}
	}
	if rerr == nil && r.size > 0 && r.size+int64(len(p)) > r.max {
		rerr = r.rotate("by size")
	}
	n, err := r.lj.Write(p)
	r.size += int64(n)
	return n, errors.Join(err, rerr)
}

func (r *rotating) rotate(why string) error {
	if err := r.lj.Rotate(); err != nil {
		return fmt.Errorf("logging: rotate %s: %w", why, err)
	}
	r.size = 0
	return groupReadable(r.lj.Filename)
}

// Close closes the log file.
func (r *rotating) Close() error { return r.lj.Close() }

// nextMidnight returns the first local midnight after t.
func nextMidnight(t time.Time) time.Time {
	y, m, day := t.Date()
	return time.Date(y, m, day+1, 0, 0, 0, 0, t.Location())
}
