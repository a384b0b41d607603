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
	err = eachEntry(d.failed, func(name string, fi fs.FileInfo) {
		if isFailedName(name) && !fi.IsDir() {
			st.Failed++
		}
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	if !oldest.IsZero() {
		st.OldestPendingSeconds = max(0, now.Sub(oldest).Seconds())
	}
	return st, nil
}

// isFailedName reports whether a name in failed_dir is a failed file (not
// its .reason, not a temporary dotfile).
func isFailedName(name string) bool {
	return name != "" && name[0] != '.' && !strings.HasSuffix(name, ReasonSuffix)
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

// FailedFiles lists the failed files in failed_dir, sorted by name.
func FailedFiles(c conf.Sender) ([]string, error) {
	var names []string
	err := eachEntry(c.FailedDir, func(name string, fi fs.FileInfo) {
		if isFailedName(name) && fi.Mode().IsRegular() {
			names = append(names, name)
		}
	})
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
	if !isFailedName(name) || !eligibleName(name) {
		return "", fmt.Errorf("requeue %s: not a failed file name", arg)
	}
	path := filepath.Join(d.failed, name)
	fi, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("requeue %s: %w", arg, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("requeue %s: %s, which is never sent", arg, describeMode(fi.Mode()))
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
