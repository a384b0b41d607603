package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// FileWatch calls a function when one of a set of files changes on disk
// (TLS certificates and keys). It watches the files' directories, so a
// file replaced by rename, or a Kubernetes-style "..data" symlink swap, is
// seen, but only events of the files' own names (and of the first element
// of a relative symlink's target, "..data") count: a log file written in
// the same directory is no change. And it calls the function only when
// the files' contents differ from those it last saw, so a reload that is
// rejected (and logs an error, maybe into that directory) is made, and
// logged, once per change of the files, not once per event. The set can
// be changed with Set. Stop it with Close.
type FileWatch struct {
	set  chan []string
	stop context.CancelFunc
	done chan struct{}
}

// WatchFiles starts a FileWatch for paths that calls changed on its own
// goroutine. When the watcher cannot start it logs why and returns a FileWatch that
// does nothing (SIGHUP still reloads).
func WatchFiles(ctx context.Context, what string, paths []string, log *slog.Logger, changed func()) *FileWatch {
	ctx, cancel := context.WithCancel(ctx)
	fw := &FileWatch{set: make(chan []string, 1), stop: cancel, done: make(chan struct{})}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Error(what+": reload on file change is off (SIGHUP still reloads)", "err", err)
		close(fw.done)
		return fw
	}
	fw.set <- paths
	go fw.loop(ctx, w, what, log, changed)
	return fw
}

// Set replaces the watched files (after a reload changed their paths).
func (fw *FileWatch) Set(paths []string) {
	select {
	case <-fw.done:
		return
	case <-fw.set: // drop a set not yet applied
	default:
	}
	select {
	case fw.set <- paths:
	case <-fw.done:
	}
}

// Close stops the watch and waits for its goroutine.
func (fw *FileWatch) Close() {
	fw.stop()
	<-fw.done
}

func (fw *FileWatch) loop(ctx context.Context, w *fsnotify.Watcher, what string, log *slog.Logger, changed func()) {
	defer close(fw.done)
	defer w.Close()
	var (
		paths []string
		names map[string]bool // the absolute paths whose events count
		dirs  []string
		seen  string // the files' fingerprint when last called; "" after a set
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case paths = <-fw.set:
			names = watchedNames(paths)
			var want []string
			for n := range names {
				if d := filepath.Dir(n); !slices.Contains(want, d) {
					want = append(want, d)
				}
			}
			for _, d := range dirs {
				if !slices.Contains(want, d) {
					_ = w.Remove(d)
				}
			}
			dirs = dirs[:0]
			for _, d := range want {
				if err := w.Add(d); err != nil {
					log.Warn(what+": cannot watch directory (SIGHUP still reloads)", "dir", d, "err", err)
					continue
				}
				dirs = append(dirs, d)
			}
			seen = "" // unknown: the first change of a name calls
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if names[filepath.Clean(ev.Name)] && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				timer.Reset(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn(what+" watcher", "err", err)
		case <-timer.C:
			if now := fingerprint(paths); now != seen {
				seen = now
				changed()
			}
		}
	}
}

// watchedNames returns the absolute paths whose events may change the
// files at paths: each file, and for a file that is a symlink with a
// relative target, the target's first element in the file's directory
// (Kubernetes swaps "..data", a symlink to a dated directory, by rename).
func watchedNames(paths []string) map[string]bool {
	names := map[string]bool{}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		names[abs] = true
		if target, err := os.Readlink(abs); err == nil && !filepath.IsAbs(target) {
			first, _, _ := strings.Cut(filepath.ToSlash(filepath.Clean(target)), "/")
			if first != ".." && first != "." {
				names[filepath.Join(filepath.Dir(abs), first)] = true
			}
		}
	}
	return names
}

// fingerprint is a digest of the contents of the files at paths (a file
// that cannot be read counts by its error), to tell a change from an event
// that changed nothing the files hold. The files are certificates and
// keys: small; a read stops at 1 MiB.
func fingerprint(paths []string) string {
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%d:%s\x00", len(p), p)
		f, err := os.Open(p)
		if err == nil {
			_, err = io.Copy(h, io.LimitReader(f, 1<<20))
			f.Close()
		}
		if err != nil {
			fmt.Fprintf(h, "\x00error %v", errors.Unwrap(err))
		}
		h.Write([]byte{0})
	}
	return string(h.Sum(nil))
}
