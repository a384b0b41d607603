package sender

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"spoolgate/internal/fsutil"
)

// The progress record of a multi-line claim (docs/PROTOCOL.md §5) is its
// sidecar .inflight/.<name>.ack. The first record of a claim creates it
// durably (write, fsync, rename, fsync of .inflight: this also makes the
// claim's own rename durable); it is then kept open, and each later record
// overwrites it in place: one pwrite into one of two slots, alternately,
// and one fdatasync. A slot is one line of text with its own CRC, alone in
// its page, so a write torn by a power loss spoils only the slot being
// written, and the other one holds the record before it; a restart takes
// the valid slot with the most lines done. A sidecar of one line without a
// CRC of its own (written before the slots, by a whole-file replace) is
// read as before; the claim's next record replaces it with a new file.

// Progress of a multi-line file is recorded in its sidecar (created
// durably by the first record, then one pwrite and one fdatasync per
// record) at most once per ackEveryLines lines or ackEvery, whichever
// comes first, and at once after a line went to failed_dir (so that a
// restart never saves it twice) and before a worker waits for a file's
// writer. So a crash (kill -9, power loss) makes the next start resend, of
// each file in flight, at most the ackEveryLines-1 lines acknowledged since
// the last record plus the line in flight: ackEveryLines lines. Over
// lanes no line is handed out more than ackEveryLines + 2 × sender.workers
// lines past the last record (lanes.go), with a send window of W > 1 lines
// (sender.window) no line is written more than 2W lines past it
// (window.go): those are the bounds there.
const (
	ackEveryLines = 100
	ackEvery      = time.Second
)

// progress decides when a claim's progress is recorded, and records it in
// the claim's sidecar. It is used by the claim's worker alone.
type progress struct {
	dirs dirs
	log  *slog.Logger
	name string // the claim's

	recorded int       // lines done at the last record (or restore)
	at       time.Time // of the last record
	sidecar  bool      // whether .inflight may hold a sidecar for the file
	crc      uint32    // CRC-32C of the file's first crcAt bytes
	crcAt    int
	file     *ackFile // the sidecar, open once a record created it
	unsynced bool     // file holds a record not known to be on disk
}

// record writes the sidecar saying that lines lines (offset bytes) of the
// file fi, whose content is data, are done, when force or a record is due,
// and waits until every record written is on disk.
func (p *progress) record(lines, offset int, fi fs.FileInfo, data []byte, force bool) {
	p.note(lines, offset, fi, data, force)
	p.sync()
}

// note is record without the wait for the disk: the record survives the
// process (kill -9) at once, a power loss once sync returned. A record
// still to be synced is synced first: a slot is never overwritten before
// the other one is on disk.
func (p *progress) note(lines, offset int, fi fs.FileInfo, data []byte, force bool) {
	if lines == p.recorded || (!force && lines-p.recorded < ackEveryLines && time.Since(p.at) < ackEvery) {
		return
	}
	p.sync()
	p.crc = crc32.Update(p.crc, crcTable, data[p.crcAt:offset])
	p.crcAt = offset
	a := ack{lines: lines, offset: int64(offset), size: fi.Size(), mtime: fi.ModTime().UnixNano(), crc: p.crc, hasCRC: true}
	p.sidecar = true
	var err error
	if p.file == nil {
		p.file, err = p.dirs.createAck(p.name, a)
	} else if err = p.file.write(a); err == nil {
		p.unsynced = true
	}
	if err != nil {
		p.log.Error("progress not recorded: a restart may send acknowledged lines again", "err", err)
		p.close() // the next record writes a new sidecar
		return
	}
	p.recorded, p.at = lines, time.Now()
}

// sync waits until the records noted are on disk.
func (p *progress) sync() {
	if !p.unsynced {
		return
	}
	p.unsynced = false
	if err := p.file.sync(); err != nil {
		p.log.Error("progress not recorded: a restart may send acknowledged lines again", "err", err)
		p.close()
	}
}

// close closes the sidecar, if open.
func (p *progress) close() {
	p.file.close()
	p.file, p.unsynced = nil, false
}

// ackName is the sidecar of a claimed multi-line file, recording how much of
// it is done. Claimed names never start with '.', so a dotfile in .inflight
// is never mistaken for a claim.
func ackName(name string) string { return "." + name + ".ack" }

// ack is the progress of a multi-line file: its first line lines (offset
// bytes) are done: acknowledged, or saved to failed_dir. size and mtime
// identify the file the sidecar belongs to; crc (CRC-32C of the first
// offset bytes, when hasCRC) lets a file that grew since, as one whose
// writer went on does, resume too.
type ack struct {
	lines  int
	offset int64
	size   int64
	mtime  int64
	crc    uint32
	hasCRC bool // sidecars written before crc existed lack it
}

// crcTable is the CRC-32C table of ack.crc and of a slot's sum.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

const (
	slotStride = 4096 // offset of slot 1: each slot in a page of its own
	slotLen    = 256  // bytes of a slot: its record, spaces, LF
)

// String is the record as a sidecar before the slots held it: one line,
// the whole file.
func (a ack) String() string {
	if !a.hasCRC {
		return fmt.Sprintf("lines=%d offset=%d size=%d mtime=%d\n", a.lines, a.offset, a.size, a.mtime)
	}
	return fmt.Sprintf("lines=%d offset=%d size=%d mtime=%d crc=%d\n", a.lines, a.offset, a.size, a.mtime, a.crc)
}

// appendSlot appends to dst the slot holding a: its fields, sum=<CRC-32C
// of the text before " sum=", in hex>, spaces to slotLen-1 bytes, LF.
func appendSlot(dst []byte, a ack) []byte {
	start := len(dst)
	dst = fmt.Appendf(dst, "lines=%d offset=%d size=%d mtime=%d crc=%d", a.lines, a.offset, a.size, a.mtime, a.crc)
	dst = fmt.Appendf(dst, " sum=%08x", crc32.Checksum(dst[start:], crcTable))
	for len(dst)-start < slotLen-1 {
		dst = append(dst, ' ')
	}
	return append(dst, '\n')
}

// parseSlot reads the slot starting at b: false when it is not a whole
// record whose sum matches (never written, or torn).
func parseSlot(b []byte) (ack, bool) {
	if len(b) > slotLen {
		b = b[:slotLen]
	}
	line, _, ok := strings.Cut(string(b), "\n")
	if !ok {
		return ack{}, false
	}
	i := strings.LastIndex(line, " sum=")
	if i < 0 {
		return ack{}, false
	}
	sum, err := strconv.ParseUint(strings.TrimRight(line[i+len(" sum="):], " "), 16, 32)
	if err != nil || uint32(sum) != crc32.Checksum([]byte(line[:i]), crcTable) {
		return ack{}, false
	}
	a, ok := parseAck([]byte(line[:i]))
	return a, ok && a.hasCRC
}

// parseAck reads a record's fields: lines, offset, size, mtime and,
// but in the oldest sidecars, crc.
func parseAck(b []byte) (ack, bool) {
	var a ack
	f := strings.Fields(string(b))
	if len(f) != 4 && len(f) != 5 {
		return a, false
	}
	a.hasCRC = len(f) == 5
	var crc int64
	dst := []*int64{nil, &a.offset, &a.size, &a.mtime, &crc}
	for i, kv := range f {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 0 || k != [...]string{"lines", "offset", "size", "mtime", "crc"}[i] {
			return a, false
		}
		if i == 0 {
			a.lines = int(n)
		} else {
			*dst[i] = n
		}
	}
	if crc > 1<<32-1 {
		return a, false
	}
	a.crc = uint32(crc)
	return a, true
}

// matches reports whether a is the progress of the file fi whose content is
// data: the size and mtime recorded are the file's, or the file is longer
// and its first offset bytes have the recorded CRC (it grew, or was
// touched: what was done is still there).
func (a ack) matches(fi fs.FileInfo, data []byte) bool {
	switch {
	case a.size == fi.Size() && a.mtime == fi.ModTime().UnixNano() && a.offset <= a.size:
		return true
	case a.hasCRC && a.offset <= int64(len(data)) && crc32.Checksum(data[:a.offset], crcTable) == a.crc:
		return true
	}
	return false
}

// readAck returns the recorded progress of a claimed file whose content is
// data, or the zero ack when there is none or it does not belong to this
// file: of the slots that hold a whole record of this file, the one with
// the most lines; or the record of a sidecar from before the slots.
func (d dirs) readAck(name string, fi fs.FileInfo, data []byte) (ack, error) {
	b, err := os.ReadFile(filepath.Join(d.inflight, ackName(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return ack{}, nil
	}
	if err != nil {
		return ack{}, fmt.Errorf("read progress of %s: %w", name, err)
	}
	best, found, slots := ack{}, false, false
	for _, off := range []int{0, slotStride} {
		if off >= len(b) {
			break
		}
		a, ok := parseSlot(b[off:])
		slots = slots || ok
		if ok && a.matches(fi, data) && (!found || a.lines > best.lines) {
			best, found = a, true
		}
	}
	if found {
		return best, nil
	}
	if !slots {
		if a, ok := parseAck(b); ok && a.matches(fi, data) {
			return a, nil
		}
	}
	if len(b) > slotLen {
		b = b[:slotLen]
	}
	return ack{}, fmt.Errorf("progress of %s: sidecar %q does not match the file; sending it whole", name, strings.TrimSpace(string(b)))
}

// removeAck deletes the sidecar of name, if any.
func (d dirs) removeAck(name string) error {
	err := os.Remove(filepath.Join(d.inflight, ackName(name)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove progress of %s: %w", name, err)
	}
	return nil
}

// ackFile is the open sidecar of one claim, used by its worker alone.
type ackFile struct {
	f    *os.File
	next int    // the slot to write next: 0 or 1
	buf  []byte // a slot
}

// createAck writes a new sidecar for name holding a in slot 0, durably,
// replacing any sidecar of that name, and returns it open.
func (d dirs) createAck(name string, a ack) (*ackFile, error) {
	path := filepath.Join(d.inflight, ackName(name))
	af := &ackFile{next: 1}
	af.buf = appendSlot(af.buf[:0], a)
	if err := fsutil.WriteFileAtomic(path, af.buf, 0o640); err != nil {
		return nil, fmt.Errorf("record progress of %s: %w", name, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("record progress of %s: %w", name, err)
	}
	af.f = f
	return af, nil
}

// write records a in the slot after the last one written, without waiting
// for the disk: a process that dies then leaves the record to the kernel,
// which writes it. sync makes it durable; until it has, the next write
// must not come (it would overwrite the only slot known to be on disk).
func (af *ackFile) write(a ack) error {
	af.buf = appendSlot(af.buf[:0], a)
	if _, err := af.f.WriteAt(af.buf, int64(af.next*slotStride)); err != nil {
		return fmt.Errorf("record progress: %w", err)
	}
	af.next ^= 1
	return nil
}

// sync waits until the last record written is on disk (fdatasync: the
// slots are overwritten in place, so only the first write of slot 1 grows
// the file).
func (af *ackFile) sync() error {
	for {
		err := syscall.Fdatasync(int(af.f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return fmt.Errorf("record progress: fdatasync %s: %w", af.f.Name(), err)
			}
			return nil
		}
	}
}

func (af *ackFile) close() {
	if af != nil {
		_ = af.f.Close()
	}
}
