package sender

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spoolgate/internal/fsutil"
)

// InflightDir is the name of the claim directory inside the spool directory.
const InflightDir = ".inflight"

// maxFileBytes caps the size of one spool file (it is read whole); a larger
// file goes to failed_dir with a reason.
const maxFileBytes = 64 << 20

// dirs are the directories the sender works in.
type dirs struct {
	spool, inflight, failed, sent string
}

func newDirs(spool, failed, sent string) dirs {
	return dirs{spool: spool, inflight: filepath.Join(spool, InflightDir), failed: failed, sent: sent}
}

// ensure creates the directories that do not exist yet.
func (d dirs) ensure() error {
	for _, dir := range []string{d.spool, d.inflight, d.failed, d.sent} {
		if dir == "" {
			continue
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	return nil
}

// ackName is the sidecar of a claimed multi-line file, recording how much of
// it is done. Claimed names never start with '.', so a dotfile in .inflight
// is never mistaken for a claim.
func ackName(name string) string { return "." + name + ".ack" }

// ack is the progress of a multi-line file: its first line lines (offset
// bytes) are done: acknowledged, or saved to failed_dir. size and mtime
// identify the file the sidecar belongs to.
type ack struct {
	lines  int
	offset int64
	size   int64
	mtime  int64
}

func (a ack) String() string {
	return fmt.Sprintf("lines=%d offset=%d size=%d mtime=%d\n", a.lines, a.offset, a.size, a.mtime)
}

func parseAck(b []byte) (ack, bool) {
	var a ack
	f := strings.Fields(string(b))
	if len(f) != 4 {
		return a, false
	}
	dst := []*int64{nil, &a.offset, &a.size, &a.mtime}
	for i, kv := range f {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 0 || k != [...]string{"lines", "offset", "size", "mtime"}[i] {
			return a, false
		}
		if i == 0 {
			a.lines = int(n)
		} else {
			*dst[i] = n
		}
	}
	return a, true
}

// writeAck records durably that the first a.lines lines of name are done.
func (d dirs) writeAck(name string, a ack) error {
	if err := fsutil.WriteFileAtomic(filepath.Join(d.inflight, ackName(name)), []byte(a.String()), 0o640); err != nil {
		return fmt.Errorf("record progress of %s: %w", name, err)
	}
	return nil
}

// readAck returns the recorded progress of a claimed file, or the zero ack
// when there is none or it does not belong to this file (size, mtime).
func (d dirs) readAck(name string, fi fs.FileInfo) (ack, error) {
	b, err := os.ReadFile(filepath.Join(d.inflight, ackName(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return ack{}, nil
	}
	if err != nil {
		return ack{}, fmt.Errorf("read progress of %s: %w", name, err)
	}
	a, ok := parseAck(b)
	if !ok || a.size != fi.Size() || a.mtime != fi.ModTime().UnixNano() || a.offset > a.size {
		return ack{}, fmt.Errorf("progress of %s: sidecar %q does not match the file; sending it whole", name, strings.TrimSpace(string(b)))
	}
	return a, nil
}

// removeAck deletes the sidecar of name, if any.
func (d dirs) removeAck(name string) error {
	err := os.Remove(filepath.Join(d.inflight, ackName(name)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove progress of %s: %w", name, err)
	}
	return nil
}

// errClaimTaken reports that a file of the same name is already claimed.
var errClaimTaken = errors.New("a file of that name is already in flight")

// claim renames spool/name into .inflight. The rename never replaces a
// claimed file. fs.ErrNotExist means the file is gone (someone else took
// it).
func (d dirs) claim(name string) error {
	err := renameNoReplace(filepath.Join(d.spool, name), filepath.Join(d.inflight, name))
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("claim %s: %w", name, errClaimTaken)
	}
	if err != nil {
		return fmt.Errorf("claim %s: %w", name, err)
	}
	return nil
}

// renameNoReplace renames src to dst unless dst exists (fs.ErrExist); on a
// file system without RENAME_NOREPLACE it checks with Lstat first.
func renameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if _, err := os.Lstat(dst); err == nil {
			return &os.LinkError{Op: "rename", Old: src, New: dst, Err: fs.ErrExist}
		}
		return os.Rename(src, dst)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	return nil
}

// moveInto moves src into dstDir under name, or name.1, name.2… when taken,
// and returns the final path. Across file systems it copies (keeping the
// modification time) and removes src once the copy is durable.
func moveInto(src, dstDir, name string) (string, error) {
	final, err := fsutil.MoveNoClobber(src, dstDir, name)
	if !errors.Is(err, syscall.EXDEV) {
		return final, err
	}
	tmp, err := copyTemp(src, dstDir)
	if err != nil {
		return "", err
	}
	final, err = fsutil.MoveNoClobber(tmp, dstDir, name)
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	if err := os.Remove(src); err != nil {
		return final, fmt.Errorf("remove %s after copying it to %s: %w", src, final, err)
	}
	return final, nil
}

// copyTemp copies the regular file src (never following a symlink) to a
// dotfile in dir, synced, with src's modification time.
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
	return writeTemp(dir, fi.ModTime(), func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// writeTemp writes a new dotfile in dir with fill, sets its modification
// time to mtime (unless zero), syncs it and returns its path.
func writeTemp(dir string, mtime time.Time, fill func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(dir, ".spoolgate-*")
	if err != nil {
		return "", fmt.Errorf("create temp file: %w", err)
	}
	err = fill(f)
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
		return "", fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// failure describes why lines went to failed_dir; it becomes the .reason
// file beside them.
type failure struct {
	file     string // the spool file name
	lines    string // line numbers: "3" or "3-9"
	remote   string // "" when the line never left (invalid, or local)
	code     int    // the remote's reply code, 0 if none
	reason   string
	attempts int
}

func (f failure) text(now time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "time: %s\nfile: %s\nlines: %s\n", now.Format(time.RFC3339), f.file, f.lines)
	remote := f.remote
	if remote == "" {
		remote = "-"
	}
	code := "-"
	if f.code != 0 {
		code = strconv.Itoa(f.code)
	}
	fmt.Fprintf(&b, "remote: %s\ncode: %s\nattempts: %d\nreason: %s\n", remote, code, f.attempts, f.reason)
	return []byte(b.String())
}

// ReasonSuffix ends the name of the file that explains a failed file.
const ReasonSuffix = ".reason"

// fail moves src into failed_dir under name (suffixed when taken) and
// writes its .reason file. It returns the final path.
func (d dirs) fail(src, name string, f failure) (string, error) {
	final, err := moveInto(src, d.failed, name)
	if err != nil {
		return "", fmt.Errorf("move %s to %s: %w", src, d.failed, err)
	}
	if err := fsutil.WriteFileAtomic(final+ReasonSuffix, f.text(time.Now()), 0o640); err != nil {
		return final, fmt.Errorf("write reason for %s: %w", final, err)
	}
	return final, nil
}

// failData writes data as a new file in failed_dir named name (suffixed
// when taken) with its .reason file.
func (d dirs) failData(data []byte, name string, f failure) (string, error) {
	tmp, err := writeTemp(d.inflight, time.Time{}, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return "", err
	}
	final, err := d.fail(tmp, name, f)
	if err != nil && final == "" {
		_ = os.Remove(tmp)
	}
	return final, err
}

// describeMode names a non-regular file type for a reason file.
func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// finish disposes of a fully processed claim: deleted, or moved to
// sent_dir; then its sidecar goes, if it may have one.
func (d dirs) finish(name string, sidecar bool) error {
	path := filepath.Join(d.inflight, name)
	if d.sent != "" {
		if _, err := moveInto(path, d.sent, name); err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
	} else if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove delivered %s: %w", name, err)
	}
	if !sidecar {
		return nil
	}
	return d.removeAck(name)
}

// putBack returns an unfinished claim to the spool. With nothing done it
// moves the file back; otherwise only the lines from offset on go back, as a
// new file with the claim's modification time, so that no acknowledged line
// is sent again. A file of the same name in the spool is never replaced.
func (d dirs) putBack(name string, data []byte, offset int, mtime time.Time) (string, error) {
	path := filepath.Join(d.inflight, name)
	if offset == 0 {
		final, err := moveInto(path, d.spool, name)
		if err != nil {
			return "", fmt.Errorf("put back %s: %w", name, err)
		}
		return final, d.removeAck(name)
	}
	tmp, err := writeTemp(d.inflight, mtime, func(w io.Writer) error {
		_, err := w.Write(data[offset:])
		return err
	})
	if err != nil {
		return "", fmt.Errorf("put back %s: %w", name, err)
	}
	final, err := moveInto(tmp, d.spool, name)
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("put back %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil {
		return final, fmt.Errorf("put back %s: %w", name, err)
	}
	return final, d.removeAck(name)
}

// readClaim reads a claimed file whole, never following a symlink and
// never blocking on a FIFO. A non-regular file is reported with its mode.
func readClaim(path string, buf []byte) ([]byte, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return buf, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return buf, nil, err
	}
	if !fi.Mode().IsRegular() {
		return buf, fi, errNotRegular
	}
	if fi.Size() > maxFileBytes {
		return buf, fi, errTooLarge
	}
	// The file settled before it was claimed: read the size fstat gave.
	n := int(fi.Size())
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	m, err := io.ReadFull(f, buf)
	if err == io.ErrUnexpectedEOF { // shrank meanwhile: what is there
		err = nil
	}
	return buf[:m], fi, err
}

var (
	errNotRegular = errors.New("not a regular file")
	errTooLarge   = fmt.Errorf("file larger than %d bytes", maxFileBytes)
)
