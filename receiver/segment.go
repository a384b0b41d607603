package receiver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fileState tells whether the open file is still where it was opened.
type fileState int

const (
	fileOK      fileState = iota
	fileMoved             // renamed away or replaced: still has a name
	fileRemoved           // no name left: what is written to it is lost
)

// check compares the open file with what its path names now: one statx
// (no allocation) in the usual case, an fstat more when they differ.
func (s *Store) check() (fileState, error) {
	id, err := s.pathID()
	if err == nil && id == s.id {
		return fileOK, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fileOK, fmt.Errorf("store: check %s: %w", s.path, err)
	}
	open, err := s.f.Stat()
	if err != nil {
		return fileOK, fmt.Errorf("store: check %s: %w", s.path, err)
	}
	if st, ok := open.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		return fileRemoved, nil
	}
	return fileMoved, nil
}

// fileID identifies a file: its device and inode.
type fileID struct {
	major, minor uint32
	ino          uint64
}

func idOf(fi os.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino}
}

// pathID returns the fileID of what s.path names now. It uses statx on the
// prepared NUL-terminated path, so the per-batch check allocates nothing
// (os.Stat and unix.Stat copy the path); where the kernel has no statx
// (before 4.11) or a seccomp filter refuses it with EPERM it falls back to
// os.Stat.
func (s *Store) pathID() (fileID, error) {
	if !s.noStatx {
		var stx unix.Statx_t
		cwd := unix.AT_FDCWD
		_, _, e := unix.Syscall6(unix.SYS_STATX, uintptr(cwd), uintptr(unsafe.Pointer(&s.cpath[0])), 0,
			unix.STATX_INO, uintptr(unsafe.Pointer(&stx)), 0)
		switch e {
		case 0:
			return fileID{stx.Dev_major, stx.Dev_minor, stx.Ino}, nil
		case unix.ENOSYS, unix.EPERM:
			s.noStatx = true
		default:
			return fileID{}, &os.PathError{Op: "statx", Path: s.path, Err: e}
		}
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return fileID{}, err
	}
	return idOf(fi), nil
}

// countLines counts the lines in the first size bytes of the file at path.
func countLines(path string, size int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, _, err := countLF(f, 0, size)
	return n, err
}

// countLF counts the LFs of f from off to size, and returns where it
// stopped: size, or before it at an error.
func countLF(f io.ReaderAt, off, size int64) (int, int64, error) {
	buf := make([]byte, 64<<10)
	n := 0
	for off < size {
		k, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		n += bytes.Count(buf[:k], []byte{'\n'})
		off += int64(k)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, off, nil
			}
			return n, off, err
		}
	}
	return n, off, nil
}

// lost logs that the open file was taken away and closes it without
// publishing, so the next write starts a new file.
func (s *Store) lost(st fileState, what string) {
	if st == fileMoved {
		s.log.Warn("request file moved while open: starting a new one", "file", s.path)
	} else {
		if what == "" {
			what = "removed while open: lines acknowledged in it are gone; starting a new one"
		}
		s.log.Error("request file "+what, "file", s.path, "bytes", s.size)
	}
	s.closeFile(false)
}

// openFile opens (creating if needed) the file for unix minute m, cutting
// a trailing partial line left by an earlier failure.
func (s *Store) openFile(m int64) error {
	// Files are opened by path: the path must still name the locked
	// directory, or a second receiver could own it (PROTOCOL.md §4).
	if err := s.lock.Held(); err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	path := filepath.Join(s.dir, minuteName(m))
	if s.rename {
		path += partSuffix
	}
	created := true
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		created = false
		if _, err = repairTail(path, s.log); err == nil {
			// O_NOFOLLOW: a symlink planted under a request file's name
			// is refused (ELOOP), not written through.
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o644)
		}
	}
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("store: open: %w", err)
	}
	nline := 0
	if !created {
		// Lines are numbered in the file for the journal: those there
		// already (a restart within the minute; append mode's file of
		// the minute) are counted once.
		if nline, err = countLines(path, st.Size()); err != nil {
			f.Close()
			return fmt.Errorf("store: open: %w", err)
		}
	}
	s.f, s.path, s.minute, s.size = f, path, m, st.Size()
	s.base, s.nline = filepath.Base(path), nline
	s.cpath = append(append(s.cpath[:0], path...), 0)
	s.id = idOf(st)
	s.newFile, s.dirty = created, false
	return nil
}

// closeFile closes the open file and, in rename mode when publish is set,
// makes it durable and renames it to its final name (publishAs). A file that holds no
// line (its only writes failed: a full disk) is removed instead when
// publish is set, in both modes, if its path still names it: the
// downstream never sees an empty request file.
func (s *Store) closeFile(publish bool) {
	f, path := s.f, s.path
	if s.dirty {
		if err := f.Truncate(s.size); err != nil {
			s.log.Error("store: cannot cut failed write; left for start-up repair", "file", path, "err", err)
			s.f, s.minute = nil, -1
			f.Close()
			return
		}
		s.dirty = false
	}
	if s.size == 0 && publish {
		if st, err := s.check(); err == nil && st == fileOK {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Error("store: remove empty request file", "file", path, "err", err)
			} else {
				s.log.Info("removed empty request file: no line was stored in it", "file", path)
			}
			s.f, s.minute = nil, -1
			f.Close()
			return
		}
	}
	s.f, s.minute = nil, -1
	var err error
	if s.rename && publish && (!s.fsync || s.newFile) {
		err = f.Sync() // durable before it becomes visible
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.log.Error("store: close", "file", path, "err", err)
	}
	if !s.rename || !publish {
		return
	}
	if err != nil {
		s.unpub = append(s.unpub, path)
		return
	}
	if _, err := s.publishAs(path, s.minuteOf(path)); errors.Is(err, os.ErrNotExist) {
		s.log.Error("request file removed before it was published: lines acknowledged in it are gone", "file", path)
	} else if err != nil {
		s.log.Error("store: publish", "file", path, "err", err)
		s.unpub = append(s.unpub, path)
	}
}

// retryPublish publishes the .part files whose publish failed; one that no
// longer exists is dropped with an error.
func (s *Store) retryPublish() {
	kept := s.unpub[:0]
	for _, p := range s.unpub {
		err := s.publish(p)
		if errors.Is(err, os.ErrNotExist) {
			s.log.Error("request file removed before it was published: lines acknowledged in it are gone", "file", p)
		} else if err != nil {
			kept = append(kept, p)
		}
	}
	s.unpub = kept
}

// publish syncs the .part file p and renames it to its final name
// (publishAs); an
// empty one (no line was ever stored in it) is removed instead.
func (s *Store) publish(p string) error {
	f, err := os.Open(p)
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil && fi.Size() == 0 {
			f.Close()
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("remove empty %s: %w", p, err)
			}
			s.log.Info("removed empty request file: no line was stored in it", "file", p)
			return nil
		}
		if err == nil {
			err = f.Sync()
		}
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", p, err)
	}
	_, err = s.publishAs(p, s.minuteOf(p))
	return err
}

// minuteOf returns the unix minute of the .part file at path.
func (s *Store) minuteOf(path string) int64 {
	m, _, _ := parseName(filepath.Base(path)) // a name the store gave
	return m
}
