package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher feeds the queue from the spool directory: a full scan at
// start-up, fsnotify events as hints, and a rescan every scan_interval and
// after a watcher overflow or error (SPEC §4).
type watcher struct {
	dir      string
	q        *queue
	interval func() time.Duration
	special  func(name string, fi fs.FileInfo) // a non-regular file with an eligible name
	onError  func(op string, err error)

	gen     uint64
	scanErr atomic.Pointer[error] // last scan's failure, nil when it worked
}

// check looks at one spool name after an event or in a scan.
func (w *watcher) check(name string, now time.Time) {
	if !eligibleName(name) {
		return
	}
	fi, err := os.Lstat(filepath.Join(w.dir, name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w.q.forget(name)
	case err != nil:
		w.onError("stat", err)
	case fi.Mode().IsRegular():
		w.q.observe(name, fi, now)
	case fi.IsDir():
		w.q.forget(name)
	default:
		w.q.forget(name)
		w.special(name, fi)
	}
}

// scan reads the whole spool directory: new names are checked, known ones
// are left to the check before their claim, and known names no longer
// listed are checked again (gone, or appeared while listing).
func (w *watcher) scan() error {
	err := w.scanDir()
	if err != nil {
		w.scanErr.Store(&err)
	} else {
		w.scanErr.Store(nil)
	}
	return err
}

func (w *watcher) scanDir() error {
	f, err := os.Open(w.dir)
	if err != nil {
		return fmt.Errorf("scan spool: %w", err)
	}
	defer f.Close()
	w.gen++
	now := time.Now()
	for {
		des, err := f.ReadDir(1024)
		for _, de := range des {
			name := de.Name()
			if !eligibleName(name) || de.IsDir() {
				continue
			}
			if de.Type().IsRegular() && w.q.mark(name, w.gen) {
				continue
			}
			w.check(name, now)
			w.q.mark(name, w.gen)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("scan spool: %w", err)
		}
	}
	for _, name := range w.q.unmarked(w.gen) {
		w.check(name, now)
	}
	return nil
}

// run handles events and rescans until ctx is done.
func (w *watcher) run(ctx context.Context, fw *fsnotify.Watcher) {
	t := time.NewTimer(w.interval())
	defer t.Stop()
	rescan := func(why string, err error) {
		if err != nil {
			w.onError(why, err)
		}
		if err := w.scan(); err != nil {
			w.onError("rescan", err)
		}
		t.Reset(w.interval())
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.Events:
			if !ok {
				return
			}
			name := filepath.Base(ev.Name)
			if ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Chmod) == 0 {
				w.q.forget(name) // removed or renamed away (our own claims too)
				continue
			}
			w.check(name, time.Now())
		case err, ok := <-fw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				err = nil // expected under a burst; the rescan catches up
			}
			rescan("watch", err)
		case <-t.C:
			rescan("", nil)
		}
	}
}
