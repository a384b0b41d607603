// Package fsutil holds the durable file operations both daemons share:
// fsync of directories, atomic writes, a data-dir lock, and no-clobber moves.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SyncDir fsyncs a directory so that renames and creations in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %q: %w", dir, err)
	}
	return nil
}

// WriteFileAtomic writes data to path durably: a temporary file in the same
// directory is written and fsynced, renamed over path, and the directory is
// fsynced. A reader sees the old content or the new one, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := WriteTemp(dir, "."+base+".*.tmp", perm, time.Time{}, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %q: %w", path, err)
	}
	return SyncDir(dir)
}

// WriteTemp creates a new file in dir named after pattern (as
// os.CreateTemp), writes it with fill, gives it the permission bits perm
// exactly (whatever the umask) and, unless mtime is zero, that
// modification time, fsyncs and closes it, and returns its path. On an
// error the file is removed.
func WriteTemp(dir, pattern string, perm os.FileMode, mtime time.Time, fill func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	err = fill(f)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && !mtime.IsZero() {
		err = os.Chtimes(f.Name(), mtime, mtime)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// ErrLocked reports a lock held by another process.
var ErrLocked = errors.New("locked by another process")

// DirLock is an exclusive advisory lock on a directory itself (a flock on
// the directory's file descriptor), so there is no lock file that a cleanup
// could remove and so open the directory to a second owner. It is released
// by Close or when the process dies.
type DirLock struct {
	f    *os.File
	path string
}

// ErrDirReplaced reports that a locked directory's path no longer names
// the directory that was locked (it was moved away or replaced).
var ErrDirReplaced = errors.New("the directory was moved or replaced since it was locked")

// Held returns nil while the path given to LockDir still names the locked
// directory, and an error wrapping ErrDirReplaced when it does not: a
// directory moved away and replaced by a new one under the same path would
// let a second owner lock the new one while this process writes into it by
// path. It costs one stat and one fstat. Safe for concurrent use.
func (l *DirLock) Held() error {
	if l == nil || l.f == nil {
		return nil
	}
	locked, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("lock %q: %w", l.path, err)
	}
	now, err := os.Stat(l.path)
	if err != nil || !os.SameFile(locked, now) {
		return fmt.Errorf("lock %q: %w", l.path, ErrDirReplaced)
	}
	return nil
}

// LockDir takes an exclusive, non-blocking flock on dir. When another
// process (or another open of dir in this process) holds it the error
// wraps ErrLocked and names the holder's pid when /proc/locks tells it.
// The receiver (data dir) and the sender (spool) both lock this way.
func LockDir(dir string) (*DirLock, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := lockHolder(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if holder > 0 {
				return nil, fmt.Errorf("lock %q: %w (pid %d)", dir, ErrLocked, holder)
			}
			return nil, fmt.Errorf("lock %q: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock %q: %w", dir, err)
	}
	return &DirLock{f: f, path: dir}, nil
}

// lockHolder returns the pid of the process holding a flock on f's inode,
// from /proc/locks ("1: FLOCK ADVISORY WRITE pid maj:min:ino 0 EOF"), or
// 0 when it cannot tell.
func lockHolder(f *os.File) int {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return 0
	}
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		if len(fs) >= 6 && fs[1] == "FLOCK" && fs[5] == id {
			if pid, err := strconv.Atoi(fs[4]); err == nil {
				return pid
			}
		}
	}
	return 0
}

// Close releases the lock.
func (l *DirLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// RenameNoReplace renames src to dst unless dst exists: then the error
// (an *os.LinkError) wraps fs.ErrExist. Without RENAME_NOREPLACE (some
// file systems) it links then unlinks, which never replaces either.
func RenameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		err = os.Link(src, dst)
		if err == nil {
			err = os.Remove(src)
		} else if errors.Is(err, os.ErrExist) {
			err = unix.EEXIST
		} else if le := (*os.LinkError)(nil); errors.As(err, &le) {
			err = le.Err
		}
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	return nil
}

// MoveNoClobber renames src into dstDir under name, or under name.1,
// name.2, … when that name is taken, never replacing an existing file. It
// fsyncs dstDir and returns the final path. src and dstDir must be on the
// same file system (else the error wraps syscall.EXDEV; see Move).
func MoveNoClobber(src, dstDir, name string) (string, error) {
	for i := 0; i < 100000; i++ {
		dst := filepath.Join(dstDir, name)
		if i > 0 {
			dst += "." + strconv.Itoa(i)
		}
		err := RenameNoReplace(src, dst)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("move %q to %q: %w", src, dstDir, errors.Unwrap(err))
		}
		return dst, SyncDir(dstDir)
	}
	return "", fmt.Errorf("move %q to %q: too many files named %q", src, dstDir, name)
}

// Move is MoveNoClobber across file systems too. There it makes a copy of
// src in a dotfile in dstDir, moves that, and removes src once the copy is
// durable; src is never opened but for reading a regular file, never
// followed (see copyTemp and remakeTemp):
//   - a regular file: its bytes, mode and modification time;
//   - a symlink: a new symlink to the same target;
//   - a named pipe or a socket: a new empty one with its permission bits
//     (neither holds data: a socket's file only names an address);
//   - a device: not made again (that needs CAP_MKNOD, and would open a
//     second path to the device): an empty named pipe without permission
//     bits stands in for it (StandIn tells the caller).
func Move(src, dstDir, name string) (string, error) {
	final, err := MoveNoClobber(src, dstDir, name)
	if !errors.Is(err, syscall.EXDEV) {
		return final, err
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return "", fmt.Errorf("move %q to %q: %w", src, dstDir, err)
	}
	var tmp string
	if fi.Mode().IsRegular() {
		tmp, err = copyTemp(src, dstDir)
	} else {
		tmp, err = remakeTemp(src, fi, dstDir)
	}
	if err != nil {
		return "", err
	}
	final, err = MoveNoClobber(tmp, dstDir, name)
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	if err := os.Remove(src); err != nil {
		return final, fmt.Errorf("remove %s after copying it to %s: %w", src, final, err)
	}
	return final, nil
}

// StandIn reports whether Move left a stand-in for src, whose Lstat was
// fi, at final (a device moved across file systems) rather than src itself
// or a copy of its kind.
func StandIn(fi os.FileInfo, final string) bool {
	lfi, err := os.Lstat(final)
	return err == nil && lfi.Mode().Type() != fi.Mode().Type()
}

// remakeTemp makes a dotfile in dir that stands for the non-regular file
// src (Lstat fi) without opening it, as Move says.
func remakeTemp(src string, fi os.FileInfo, dir string) (string, error) {
	m := fi.Mode()
	var mk func(path string) error
	switch {
	case m&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return "", fmt.Errorf("copy %s: %w", src, err)
		}
		mk = func(path string) error { return os.Symlink(target, path) }
	case m&os.ModeNamedPipe != 0, m&os.ModeSocket != 0:
		kind := uint32(unix.S_IFIFO)
		if m&os.ModeSocket != 0 {
			kind = unix.S_IFSOCK
		}
		mk = func(path string) error {
			if err := unix.Mknod(path, kind|uint32(m.Perm()), 0); err != nil {
				return err
			}
			return os.Chmod(path, m.Perm()) // mknod applied the umask
		}
	case m&os.ModeDevice != 0:
		mk = func(path string) error { return unix.Mkfifo(path, 0) }
	default:
		return "", fmt.Errorf("copy %s: cannot copy %v", src, m.Type())
	}
	for range 100 {
		path := filepath.Join(dir, ".spoolgate-"+strconv.FormatUint(rand.Uint64(), 36))
		err := mk(path)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			_ = os.Remove(path)
			return "", fmt.Errorf("copy %s: %w", src, err)
		}
		return path, nil
	}
	return "", fmt.Errorf("copy %s: no free temporary name in %s", src, dir)
}

// copyTemp copies the regular file src (never following a symlink) to a
// dotfile in dir, synced, with src's mode and modification time.
func copyTemp(src, dir string) (string, error) {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("copy %s: not a regular file", src)
	}
	tmp, err := WriteTemp(dir, ".spoolgate-*", fi.Mode().Perm(), fi.ModTime(), func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return tmp, nil
}
