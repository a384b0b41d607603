package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// FileWatch calls a function when one of a set of files changes on disk
// (TLS certificates and keys). It watches the files' directories, so a
// file replaced by rename, or a Kubernetes-style "..data" symlink swap, is
// seen; the function should be cheap when nothing it reads has changed,
// because any change in those directories calls it (debounced). The set
// can be changed with Set. Stop it with Close.
type FileWatch struct {
	set  chan []string
	stop context.CancelFunc
	done chan struct{}
}

// WatchFiles starts a FileWatch for paths that calls changed on its own
// goroutine. When the watcher cannot start it logs why and returns a
// FileWatch that does nothing (SIGHUP still reloads).
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
	var dirs []string
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case paths := <-fw.set:
			var want []string
			for _, p := range paths {
				if abs, err := filepath.Abs(p); err == nil && !slices.Contains(want, filepath.Dir(abs)) {
					want = append(want, filepath.Dir(abs))
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
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				timer.Reset(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn(what+" watcher", "err", err)
		case <-timer.C:
			changed()
		}
	}
}
