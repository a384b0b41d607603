package journal

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"spoolgate/internal/fsutil"
)

// The files of a journal directory: <prefix>-yyyy-MM-dd.log while its day
// is written, <prefix>-yyyy-MM-dd.log.gz once it is over, where prefix is
// the daemon (receiver, sender), followed by @NAME for an instance, so
// that instances may share a directory. Compression goes through a
// dotfile that is synced and renamed: a .log.gz is always whole, and a
// .log beside it is a leftover of a crash between the rename and the
// removal.
const (
	dayLayout = "2006-01-02"
	logExt    = ".log"
	gzExt     = ".log.gz"
)

// Prefix returns the file name prefix of daemon and instance (""
// for the unnamed one).
func Prefix(daemon, instance string) string {
	if instance == "" {
		return daemon
	}
	return daemon + "@" + instance
}

// FileName returns the name of prefix's file of day (local date).
func FileName(prefix string, day time.Time) string {
	return prefix + "-" + day.Format(dayLayout) + logExt
}

// File is one journal file found in a directory.
type File struct {
	Path       string
	Prefix     string    // daemon, or daemon@instance
	Day        time.Time // local midnight of its day
	Compressed bool
}

// Daemon returns the daemon of f's prefix.
func (f File) Daemon() string {
	d, _, _ := strings.Cut(f.Prefix, "@")
	return d
}

// Instance returns the instance of f's prefix ("" the unnamed one).
func (f File) Instance() string {
	_, i, _ := strings.Cut(f.Prefix, "@")
	return i
}

// parseFile recognises a journal file name.
func parseFile(dir, name string) (File, bool) {
	f := File{Path: filepath.Join(dir, name)}
	var rest string
	switch {
	case strings.HasSuffix(name, gzExt):
		rest, f.Compressed = strings.TrimSuffix(name, gzExt), true
	case strings.HasSuffix(name, logExt):
		rest = strings.TrimSuffix(name, logExt)
	default:
		return f, false
	}
	if len(rest) < len(dayLayout)+2 || rest[len(rest)-len(dayLayout)-1] != '-' || strings.HasPrefix(name, ".") {
		return f, false
	}
	day, err := time.ParseInLocation(dayLayout, rest[len(rest)-len(dayLayout):], time.Local)
	if err != nil {
		return f, false
	}
	f.Prefix, f.Day = rest[:len(rest)-len(dayLayout)-1], day
	return f, f.Prefix != ""
}

// Files lists the journal files of dir, oldest day first, the daemons of
// a day in name order; keep, when not nil, picks the prefixes. A day that
// has a .log.gz is listed once, by it (a .log beside it is a leftover). A
// missing dir has no files.
func Files(dir string, keep func(prefix string) bool) ([]File, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	byName := map[string]File{}
	for _, e := range ents {
		f, ok := parseFile(dir, e.Name())
		if !ok || !e.Type().IsRegular() || (keep != nil && !keep(f.Prefix)) {
			continue
		}
		k := f.Prefix + "\x00" + f.Day.Format(dayLayout)
		if old, ok := byName[k]; ok && old.Compressed {
			continue
		}
		byName[k] = f
	}
	out := make([]File, 0, len(byName))
	for _, f := range byName {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Day.Equal(out[j].Day) {
			return out[i].Day.Before(out[j].Day)
		}
		return out[i].Prefix < out[j].Prefix
	})
	return out, nil
}

// midnight returns the local midnight that starts t's day.
func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// sweep compresses the files of prefix whose day is before today, removes
// those whose day ended more than keep ago (keep 0: none), and removes
// what crashed compressions left. It stops between files, and inside a
// compression, once stop is closed. It returns the first error and goes on
// after it.
func sweep(dir, prefix string, now time.Time, keep time.Duration, stop <-chan struct{}) (compressed, removed int, err error) {
	note := func(e error) {
		if err == nil {
			err = e
		}
	}
	ents, rerr := os.ReadDir(dir)
	if rerr != nil {
		return 0, 0, fmt.Errorf("journal: %w", rerr)
	}
	today := midnight(now)
	gz := map[string]bool{}
	var files []File
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, "."+prefix+"-") && strings.HasSuffix(name, ".tmp") {
			note(os.Remove(filepath.Join(dir, name))) // a compression a crash cut off
			continue
		}
		f, ok := parseFile(dir, name)
		if !ok || f.Prefix != prefix || !e.Type().IsRegular() {
			continue
		}
		if f.Compressed {
			gz[f.Day.Format(dayLayout)] = true
		}
		files = append(files, f)
	}
	for _, f := range files {
		select {
		case <-stop:
			return compressed, removed, err
		default:
		}
		end := f.Day.AddDate(0, 0, 1)
		switch {
		case keep > 0 && !end.After(now.Add(-keep)):
			if rerr := os.Remove(f.Path); rerr == nil {
				removed++
			} else if !errors.Is(rerr, os.ErrNotExist) {
				note(rerr)
			}
		case f.Compressed || !f.Day.Before(today):
		case gz[f.Day.Format(dayLayout)]:
			note(os.Remove(f.Path)) // compressed before a crash
		default:
			if cerr := compress(f.Path, stop); cerr != nil {
				note(cerr)
			} else {
				compressed++
			}
		}
	}
	return compressed, removed, err
}

// errStopped is a compression cut off by Close; the .log stays and the
// next start compresses it.
var errStopped = errors.New("journal: stopped")

// Compress gzips the journal file at path (a .log) to path + ".gz"
// durably, then removes path. A reader sees either file whole.
func Compress(path string) error { return compress(path, nil) }

func compress(path string, stop <-chan struct{}) error {
	in, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("journal: compress: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("journal: compress: %w", err)
	}
	dir, name := filepath.Dir(path), filepath.Base(path)
	tmp, err := fsutil.WriteTemp(dir, "."+name+".gz.*.tmp", fi.Mode().Perm(), fi.ModTime(), func(w io.Writer) error {
		zw := gzip.NewWriter(w)
		zw.Name, zw.ModTime = name, fi.ModTime()
		buf := make([]byte, 256<<10)
		for {
			select {
			case <-stop:
				return errStopped
			default:
			}
			n, rerr := in.Read(buf)
			if n > 0 {
				if _, err := zw.Write(buf[:n]); err != nil {
					return err
				}
			}
			if rerr == io.EOF {
				return zw.Close()
			}
			if rerr != nil {
				return rerr
			}
		}
	})
	if err != nil {
		return fmt.Errorf("journal: compress %s: %w", path, err)
	}
	if err := os.Rename(tmp, path+".gz"); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("journal: compress %s: %w", path, err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return err
	}
	return os.Remove(path)
}
