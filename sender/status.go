package sender

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/fsutil"
)

// Status is the state of a spool, read from its directories alone, so it
// is right whether the daemon runs or not.
type Status struct {
	SpoolDir  string `json:"spool_dir"`
	FailedDir string `json:"failed_dir"`
	// Pending counts the files in the spool that will be sent.
	Pending int `json:"pending"`
	// OldestPendingSeconds is the age, by modification time, of the oldest
	// file not yet delivered (pending or in flight); 0 when there is none.
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
	// InFlight counts the files claimed in .inflight.
	InFlight int `json:"in_flight"`
	// Failed counts the files in failed_dir, not counting .reason files.
	Failed int `json:"failed"`
}

// ReadStatus reads the spool, .inflight and failed_dir of c. A missing
// .inflight or failed_dir counts as empty; a missing spool is an error.
func ReadStatus(c conf.Sender, now time.Time) (Status, error) {
	d := newDirs(c.SpoolDir, c.FailedDir, c.SentDir)
	st := Status{SpoolDir: d.spool, FailedDir: d.failed}
	var oldest time.Time
	see := func(fi fs.FileInfo) {
		if oldest.IsZero() || fi.ModTime().Before(oldest) {
			oldest = fi.ModTime()
		}
	}
	err := eachEntry(d.spool, func(name string, fi fs.FileInfo) {
		if eligibleName(name) && fi.Mode().IsRegular() {
			st.Pending++
			see(fi)
		}
	})
	if err != nil {
		return st, err
	}
	err = eachEntry(d.inflight, func(name string, fi fs.FileInfo) {
		if name[0] != '.' && fi.Mode().IsRegular() {
			st.InFlight++
			see(fi)
		}
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	failed, err := failedEntries(d.failed)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	st.Failed = len(failed)
	if !oldest.IsZero() {
		st.OldestPendingSeconds = max(0, now.Sub(oldest).Seconds())
	}
	return st, nil
}

// isFailed reports whether the entry name of failed_dir is a failed file,
// not a reason file nor a temporary dotfile; has tells whether failed_dir
// holds a name. A name ending in .reason is a reason file, but for a
// failed file stored by a version before failedName: a spool file X.reason
// that failed whole kept its name, and has X.reason.reason beside it and
// no X.
func isFailed(name string, has func(string) bool) bool {
	if name == "" || name[0] == '.' {
		return false
	}
	base, ok := strings.CutSuffix(name, ReasonSuffix)
	return !ok || (!has(base) && has(name+ReasonSuffix))
}

// failedEntry is a failed file and its Lstat.
type failedEntry struct {
	name string
	fi   fs.FileInfo
}

// failedEntries lists the failed files of dir (see isFailed), of any type
// but directories, in directory order. Entries that vanish meanwhile are
// skipped.
func failedEntries(dir string) ([]failedEntry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	names := make(map[string]bool, len(des))
	for _, de := range des {
		names[de.Name()] = true
	}
	has := func(n string) bool { return names[n] }
	var out []failedEntry
	for _, de := range des {
		if de.IsDir() || !isFailed(de.Name(), has) {
			continue
		}
		if fi, err := de.Info(); err == nil {
			out = append(out, failedEntry{de.Name(), fi})
		}
	}
	return out, nil
}

// eachEntry calls f with the Lstat of every entry of dir; entries that
// vanish meanwhile are skipped.
func eachEntry(dir string, f func(name string, fi fs.FileInfo)) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			continue
		}
		f(de.Name(), fi)
	}
	return nil
}

// FailedFiles lists the failed files in failed_dir that can be requeued
// (regular files), sorted by name.
func FailedFiles(c conf.Sender) ([]string, error) {
	es, err := failedEntries(c.FailedDir)
	var names []string
	for _, e := range es {
		if e.fi.Mode().IsRegular() {
			names = append(names, e.name)
		}
	}
	slices.Sort(names)
	return names, err
}

// RequeueResult is what Requeue did with one failed file.
type RequeueResult struct {
	Name string // as given
	To   string // its path in the spool; "" when Err is set
	Err  error
}

// Requeue moves each named failed file (a name in failed_dir, or a path to
// one) back into the spool by rename, which is atomic, under the same name
// or with a suffix when the spool has a file of that name, and removes its
// .reason file. Each file succeeds or fails alone. It is safe to run while
// the daemon runs.
func Requeue(c conf.Sender, names []string) []RequeueResult {
	d := newDirs(c.SpoolDir, c.FailedDir, c.SentDir)
	res := make([]RequeueResult, 0, len(names))
	for _, arg := range names {
		to, err := d.requeue(arg)
		res = append(res, RequeueResult{Name: arg, To: to, Err: err})
	}
	return res
}

func (d dirs) requeue(arg string) (string, error) {
	name := filepath.Base(arg)
	if strings.ContainsRune(arg, filepath.Separator) {
		dir, err1 := filepath.Abs(filepath.Dir(arg))
		failed, err2 := filepath.Abs(d.failed)
		if err1 != nil || err2 != nil || dir != failed {
			return "", fmt.Errorf("requeue %s: not in failed_dir %s", arg, d.failed)
		}
	}
	has := func(n string) bool {
		_, err := os.Lstat(filepath.Join(d.failed, n))
		return err == nil
	}
	if !isFailed(name, has) || !eligibleName(name) {
		return "", fmt.Errorf("requeue %s: not a failed file name", arg)
	}
	path := filepath.Join(d.failed, name)
	fi, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("requeue %s: %w", arg, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("requeue %s: %s, which is never sent", arg, fsutil.Kind(fi.Mode()))
	}
	to, err := fsutil.Move(path, d.spool, name)
	if err != nil {
		return "", fmt.Errorf("requeue %s: %w", arg, err)
	}
	if err := os.Remove(path + ReasonSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return to, fmt.Errorf("requeue %s: moved to %s, but: %w", arg, to, err)
	}
	return to, nil
}
