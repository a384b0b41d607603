package sender

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// A claimed file is read whole and kept open while it is sent, so that
// what it holds at the end can be compared with what was read (see
// Sender.process): it may have grown, been rewritten in place, or still
// have a writer.

// maxFileBytes caps the size of one spool file (it is read whole); a larger
// file goes to failed_dir with a reason.
const maxFileBytes = 64 << 20

// readClaim reads a claimed file whole, never following a symlink and
// never blocking on a FIFO. A non-regular file is reported with its mode.
func readClaim(path string, buf []byte) ([]byte, fs.FileInfo, error) {
	cf, data, err := openClaim(path, buf)
	if cf != nil {
		cf.close()
		return data, cf.fi, err
	}
	return data, nil, err
}

// claimFile is a claimed file kept open while it is sent, so that what it
// holds at the end can be compared with what was read, on the file itself
// (a writer that still holds it open writes to it wherever it was renamed).
type claimFile struct {
	f     *os.File
	fi    fs.FileInfo // fstat at the last read: len(data) == fi.Size()
	lease bool        // a read lease is held (see writer)
	chunk []byte      // verify's buffer

	waitLogged, growLogged bool // the worker said so at warn once
}

// openClaim opens a claimed file and reads it whole, like readClaim, and
// keeps it open: close it. On an error other than a non-regular or too
// large file it returns a nil claimFile.
func openClaim(path string, buf []byte) (*claimFile, []byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, buf, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, buf, err
	}
	cf := &claimFile{f: f, fi: fi}
	if !fi.Mode().IsRegular() {
		return cf, buf, errNotRegular
	}
	if fi.Size() > maxFileBytes {
		return cf, buf, errTooLarge
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
	if err != nil {
		f.Close()
		return nil, buf[:m], err
	}
	if m < n { // what was read is what the next fstat is compared with
		cf.fi = shrunk{cf.fi, int64(m)}
	}
	return cf, buf[:m], nil
}

// shrunk is a FileInfo whose size is what could be read.
type shrunk struct {
	fs.FileInfo
	size int64
}

func (s shrunk) Size() int64 { return s.size }

// close releases the lease, if held, and closes the file.
func (cf *claimFile) close() {
	cf.release()
	cf.f.Close()
}

// tailCheck is how many of the last bytes read refresh compares with the
// file when it grew.
const tailCheck = 256

// fileState is what claimFile.refresh found; its String is a log word.
type fileState int

// Results of claimFile.refresh.
const (
	fileSame    fileState = iota // size and modification time as read
	fileGrew                     // longer: the new bytes were read
	fileChanged                  // shorter, or rewritten in place (its last bytes read differ; see also verify)
)

func (f fileState) String() string { return [...]string{"same", "grew", "changed"}[f] }

// refresh compares the open file (fstat) with what was read into data. When
// it grew, the bytes beyond len(data) are read and appended, and the new
// data is returned with fileGrew.
func (cf *claimFile) refresh(data []byte) ([]byte, fileState, error) {
	fi, err := cf.f.Stat()
	if err != nil {
		return data, fileSame, err
	}
	have := int64(len(data))
	switch {
	case fi.Size() == have && fi.ModTime().Equal(cf.fi.ModTime()):
		return data, fileSame, nil
	case fi.Size() < have:
		return data, fileChanged, nil
	case fi.Size() > maxFileBytes:
		return data, fileSame, errTooLarge
	}
	// A file rewritten from the start (truncated, then written longer) looks
	// like one that grew: the last bytes read must still be there. The same
	// size with a new mtime is what an append in progress looks like (the
	// kernel updates the mtime before the size), or a touch: the same unless
	// the last bytes differ.
	k := min(have, tailCheck)
	if k > 0 {
		tail := make([]byte, k)
		if _, err := cf.f.ReadAt(tail, have-k); err != nil && err != io.EOF {
			return data, fileSame, err
		} else if !bytes.Equal(tail, data[have-k:]) {
			return data, fileChanged, nil
		}
	}
	if fi.Size() == have {
		cf.fi = fi
		return data, fileSame, nil
	}
	n := int(fi.Size() - have)
	data = slices.Grow(data, n)
	m, err := io.ReadFull(io.NewSectionReader(cf.f, have, int64(n)), data[len(data):len(data)+n])
	if err == io.ErrUnexpectedEOF {
		err = nil
	}
	if err != nil {
		return data, fileSame, err
	}
	data = data[:len(data)+m]
	if m < n {
		fi = shrunk{fi, int64(len(data))}
	}
	cf.fi = fi
	if m == 0 {
		return data, fileChanged, nil
	}
	return data, fileGrew, nil
}

// verifyChunk is the most verify reads at once.
const verifyChunk = 64 << 10

// verify reports whether the file still holds exactly data from its
// start: it reads the file again and compares (the page cache holds it:
// about a memcmp). refresh cannot tell an append from a rewrite in place
// without truncation by its metadata (both change the mtime; the size may
// not change), and it compares only the last tailCheck bytes, so this is
// the check that a rewrite in place does not escape. It costs one read of
// the file per call, and is called once the claim is to be disposed of
// (awaitEnd's endDone, under the lease when one is granted), not per line
// nor per growth. See docs/PROTOCOL.md §5.
func (cf *claimFile) verify(data []byte) (bool, error) {
	if len(data) == 0 {
		return true, nil
	}
	if cf.chunk == nil {
		cf.chunk = make([]byte, min(len(data), verifyChunk))
	}
	for off := 0; off < len(data); {
		n := min(len(cf.chunk), len(data)-off)
		m, err := cf.f.ReadAt(cf.chunk[:n], int64(off))
		if m < n {
			if err == io.EOF {
				return false, nil // shorter than what was read
			}
			return false, err
		}
		if !bytes.Equal(cf.chunk[:n], data[off:off+n]) {
			return false, nil
		}
		off += n
	}
	return true, nil
}

// writerState is what claimFile.writer found: whether another process
// holds the file open for writing; its String is a log word.
type writerState int

// Results of claimFile.writer.
const (
	noWriter      writerState = iota // no process holds the file open for writing; a lease is held until release
	writerOpen                       // some process holds it open for writing
	writerUnknown                    // cannot tell (not the file's owner, no CAP_LEASE, or no leases on this file system)
)

func (w writerState) String() string { return [...]string{"none", "open", "unknown"}[w] }

// writer (with leases false: writerUnknown, as for a file the sender
// does not own) asks the kernel whether another process still holds the file
// open for writing: a read lease (fcntl F_SETLEASE) is refused with EAGAIN
// exactly then. The lease, when granted, is kept until release: while it is
// held, a process that opens the file for writing waits (the kernel tells
// the sender with SIGIO, which Go ignores, and gives it lease-break-time),
// so nothing can be appended between this check and the file's disposal.
// With writerUnknown it returns why the kernel cannot tell.
func (cf *claimFile) writer(leases bool) (writerState, error) {
	if cf.lease {
		return noWriter, nil
	}
	if !leases {
		return writerUnknown, nil
	}
	rc, err := cf.f.SyscallConn()
	if err != nil {
		return writerUnknown, err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { _, lerr = unix.FcntlInt(fd, unix.F_SETLEASE, unix.F_RDLCK) }); err != nil {
		return writerUnknown, err
	}
	switch {
	case lerr == nil:
		cf.lease = true
		return noWriter, nil
	case errors.Is(lerr, unix.EAGAIN):
		return writerOpen, nil
	}
	return writerUnknown, lerr
}

// release gives up the lease, if held.
func (cf *claimFile) release() {
	if !cf.lease {
		return
	}
	cf.lease = false
	if rc, err := cf.f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETLEASE, unix.F_UNLCK) })
	}
}

var (
	errNotRegular = errors.New("not a regular file")
	errTooLarge   = fmt.Errorf("file larger than %d bytes", maxFileBytes)
)
