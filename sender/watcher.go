package sender

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
)

// watcher feeds the queue from the spool directory: a full scan at
// start-up, fsnotify events as hints, and a rescan every scan_interval and
// after a watcher overflow or error (docs/PROTOCOL.md §5).
type watcher struct {
	dir      string
	q        *queue
	interval func() time.Duration
	special  func(name string, fi fs.FileInfo) // a non-regular file with an eligible name
	onError  func(op string, err error)

	gen     uint64                // the current scan
	buf     []byte                // getdents buffer
	ents    []dirent              // entries of one buffer
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
	fd := int(f.Fd())
	w.gen++
	now := time.Now()
	if w.buf == nil {
		w.buf = make([]byte, 64<<10)
	}
	for {
		// getdents instead of ReadDir: a rescan of a spool the queue already
		// knows allocates nothing per file, so 100,000 pending files cost a
		// few milliseconds per scan_interval.
		n, err := unix.Getdents(fd, w.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("scan spool: %w", err)
		}
		if n <= 0 {
			break
		}
		w.ents = parseDirents(w.buf[:n], w.ents[:0])
		for _, name := range w.q.markKnown(w.ents, w.gen) {
			w.check(name, now)
			w.q.mark(name, w.gen)
		}
	}
	for _, name := range w.q.unmarked(w.gen) {
		w.check(name, now)
	}
	return nil
}

// dirent is one eligible entry read by getdents; name aliases the buffer.
type dirent struct {
	name    []byte
	regular bool // d_type says regular file (DT_UNKNOWN is not)
}

// parseDirents appends the eligible, non-directory entries of a getdents
// buffer (struct linux_dirent64) to ents.
func parseDirents(buf []byte, ents []dirent) []dirent {
	for off := 0; off+19 <= len(buf); {
		reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
		if reclen == 0 || off+reclen > len(buf) {
			break
		}
		typ := buf[off+18]
		name := buf[off+19 : off+reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		off += reclen
		if typ == unix.DT_DIR || !eligibleBytes(name) {
			continue
		}
		ents = append(ents, dirent{name: name, regular: typ == unix.DT_REG})
	}
	return ents
}

// eligibleBytes is eligibleName for a name in a buffer.
func eligibleBytes(name []byte) bool {
	return len(name) > 0 && name[0] != '.' &&
		!bytes.HasSuffix(name, []byte(".tmp")) && !bytes.HasSuffix(name, []byte(".part"))
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
