package sender

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"spoolgate/internal/fsutil"
)

// InflightDir is the name of the claim directory inside the spool directory.
const InflightDir = ".inflight"

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

// errClaimTaken reports that a file of the same name is already claimed.
var errClaimTaken = errors.New("a file of that name is already in flight")

// claim renames spool/name into .inflight. The rename never replaces a
// claimed file. fs.ErrNotExist means the file is gone (someone else took
// it).
func (d dirs) claim(name string) error {
	err := fsutil.RenameNoReplace(filepath.Join(d.spool, name), filepath.Join(d.inflight, name))
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("claim %s: %w", name, errClaimTaken)
	}
	if err != nil {
		return fmt.Errorf("claim %s: %w", name, err)
	}
	return nil
}

// writeTemp writes a new dotfile in dir with fill and permission bits perm
// (exactly, whatever the umask), sets its modification time to mtime
// (unless zero), syncs it and returns its path.
func writeTemp(dir string, mtime time.Time, perm fs.FileMode, fill func(io.Writer) error) (string, error) {
	tmp, err := fsutil.WriteTemp(dir, ".spoolgate-*", perm, mtime, fill)
	if err != nil {
		return "", fmt.Errorf("write temp file in %s: %w", dir, err)
	}
	return tmp, nil
}

// failure describes why lines went to failed_dir; it becomes the .reason
// file beside them.
type failure struct {
	file     string // the spool file name
	lines    string // line numbers in file, from 1: "3" or "3-9"; "all", or "-" (never opened)
	remote   string // "" when the line never left (invalid, or local)
	code     int    // the remote's reply code, 0 if none
	reason   string
	attempts int
}

func (f failure) text(now time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "time: %s\nfile: %s\nlines: %s (%s)\n", now.Format(time.RFC3339), f.file, f.lines, linesNote(f.lines))
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

// linesNote says what the lines: value of a .reason file counts. The value
// itself is the first word of the field, so that a tool can read it with
// strings.Fields.
func linesNote(lines string) string {
	switch {
	case lines == "all":
		return "the whole file"
	case lines == "-":
		return "never opened"
	case strings.Contains(lines, "-"):
		return "line numbers in file, counted from 1"
	}
	return "line number in file, counted from 1"
}

// reasonPerm is the mode of the .reason file beside a failed file of mode
// perm: the same read and write bits, so that whoever may read the failed
// file may read why, and no execute bits.
func reasonPerm(perm fs.FileMode) fs.FileMode { return perm.Perm() &^ 0o111 }

// specialReasonPerm is the mode of the .reason file beside a non-regular
// file, whose own mode says nothing about who may read it.
const specialReasonPerm fs.FileMode = 0o640

// ReasonSuffix ends the name of the file that explains a failed file.
const ReasonSuffix = ".reason"

// reasonEscape is added to the failed_dir name of a file whose name ends
// in ReasonSuffix.
const reasonEscape = ".file"

// failedName returns the name a file named name (a spool file's, or one
// made from it: <name>.line-<n>) is stored under in failed_dir: the same,
// but with ".file" added when it ends in .reason (docs/PROTOCOL.md §5). So
// no failed file is named like a reason file, which is always <the failed
// file's name>.reason.
func failedName(name string) string {
	if strings.HasSuffix(name, ReasonSuffix) {
		return name + reasonEscape
	}
	return name
}

// freeName returns the first of name, name.1, name.2, … that neither a
// file nor a reason file in failed_dir holds, so that the reason file
// written beside the failed file replaces nothing (a failed_dir of an
// earlier version may hold a failed file named X.reason: see isFailed). A
// name taken by the time the file is moved gets a suffix from the move.
func (d dirs) freeName(name string) string {
	taken := func(n string) bool {
		_, err := os.Lstat(filepath.Join(d.failed, n))
		return err == nil
	}
	for i := 0; i < 100000; i++ {
		cand := name
		if i > 0 {
			cand += "." + strconv.Itoa(i)
		}
		if !taken(cand) && !taken(cand+ReasonSuffix) {
			return cand
		}
	}
	return name
}

// fail moves src into failed_dir under the name name takes there
// (failedName, suffixed when taken) and writes its .reason file with mode
// rperm. It returns the final path, also when only the reason could not be
// written, or only src could not be removed after a copy across file
// systems.
func (d dirs) fail(src, name string, f failure, rperm fs.FileMode) (string, error) {
	final, err := d.place(src, name)
	if err != nil {
		return final, err
	}
	return final, d.writeReason(final, f, rperm)
}

// place moves src into failed_dir under the name name takes there
// (failedName, suffixed when taken) and returns the final path, also when
// src could not be removed after a copy across file systems.
func (d dirs) place(src, name string) (string, error) {
	final, err := fsutil.Move(src, d.failed, d.freeName(failedName(name)))
	if err != nil {
		return final, fmt.Errorf("move %s to %s: %w", src, d.failed, err)
	}
	return final, nil
}

// writeReason writes the .reason file of the failed file at final.
func (d dirs) writeReason(final string, f failure, rperm fs.FileMode) error {
	if err := fsutil.WriteFileAtomic(final+ReasonSuffix, f.text(time.Now()), rperm); err != nil {
		return fmt.Errorf("write reason for %s: %w", final, err)
	}
	return nil
}

// failData writes data as a new file of mode perm (the spool file's) in
// failed_dir named name (suffixed when taken) with its .reason file.
func (d dirs) failData(data []byte, name string, f failure, perm fs.FileMode) (string, error) {
	tmp, err := writeTemp(d.inflight, time.Time{}, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return "", err
	}
	final, err := d.fail(tmp, name, f, reasonPerm(perm))
	if err != nil && final == "" {
		_ = os.Remove(tmp)
	}
	return final, err
}

// failRest copies the bytes of src from off to its end, the lines from
// line lineNo on, into failed_dir as <f.file>.line-<n> or .lines-<n>-<m>
// (mode perm) with its .reason, streaming them (src may be larger than
// the sender ever reads into memory). It sets f.lines and returns the
// final path and the number of non-empty lines copied.
func (d dirs) failRest(src *os.File, off int64, lineNo int, f *failure, perm fs.FileMode) (string, int, error) {
	var lc lineCounter
	tmp, err := writeTemp(d.inflight, time.Time{}, perm, func(w io.Writer) error {
		_, err := io.Copy(io.MultiWriter(w, &lc), io.NewSectionReader(src, off, 1<<62))
		return err
	})
	if err != nil {
		return "", 0, err
	}
	last := lineNo + lc.lfs - lc.trailing // as bytes.Count(bytes.TrimRight(rest, "\n"), "\n")
	f.lines = strconv.Itoa(lineNo)
	name := f.file + ".line-" + f.lines
	if last != lineNo {
		f.lines += "-" + strconv.Itoa(last)
		name = f.file + ".lines-" + f.lines
	}
	final, err := d.fail(tmp, name, *f, reasonPerm(perm))
	if err != nil && final == "" {
		_ = os.Remove(tmp)
	}
	return final, lc.lines, err
}

// lineCounter counts what is written to it: LFs, the LFs that end it
// (after its last other byte), and non-empty lines.
type lineCounter struct {
	lfs, trailing, lines int
	inLine               bool // the last byte was not LF
}

func (c *lineCounter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		if len(seg) > 0 {
			if !c.inLine {
				c.lines++
			}
			c.inLine, c.trailing = true, 0
		}
		if i < 0 {
			break
		}
		c.lfs++
		c.trailing++
		c.inLine = false
		p = p[i+1:]
	}
	return n, nil
}

// archive moves a delivered claim to sent_dir and returns its path
// there, also when the claim was copied there (across file systems) but
// could not be removed from .inflight (the error says so).
func (d dirs) archive(name string) (string, error) {
	final, err := fsutil.Move(filepath.Join(d.inflight, name), d.sent, name)
	if err != nil {
		return final, fmt.Errorf("archive %s: %w", name, err)
	}
	return final, nil
}

// removeClaim removes a claim from .inflight; one already gone is not an
// error.
func (d dirs) removeClaim(name string) error {
	if err := os.Remove(filepath.Join(d.inflight, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove claim %s: %w", name, err)
	}
	return nil
}

// putBack returns an unfinished claim to the spool. With nothing done it
// moves the file back; otherwise only the lines from offset on go back, as a
// new file with the claim's modification time and mode perm, so that no
// acknowledged line is sent again. A file of the same name in the spool is
// never replaced.
func (d dirs) putBack(name string, data []byte, offset int, mtime time.Time, perm fs.FileMode) (string, error) {
	path := filepath.Join(d.inflight, name)
	if offset == 0 {
		final, err := fsutil.Move(path, d.spool, name)
		if err != nil {
			return "", fmt.Errorf("put back %s: %w", name, err)
		}
		return final, d.removeAck(name)
	}
	tmp, err := writeTemp(d.inflight, mtime, perm, func(w io.Writer) error {
		_, err := w.Write(data[offset:])
		return err
	})
	if err != nil {
		return "", fmt.Errorf("put back %s: %w", name, err)
	}
	final, err := fsutil.Move(tmp, d.spool, name)
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("put back %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil {
		return final, fmt.Errorf("put back %s: %w", name, err)
	}
	return final, d.removeAck(name)
}
