package sender

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"spoolgate/conf"
	"spoolgate/protocol"
)

// FailedFile is one failed file with what its .reason file says.
type FailedFile struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Time     time.Time `json:"time"` // when it failed: the .reason file's time, else its modification time
	Code     int       `json:"code,omitempty"`
	Attempts int       `json:"attempts"`
	Remote   string    `json:"remote,omitempty"`
	Lines    string    `json:"lines,omitempty"`
	Reason   string    `json:"reason"`
	Class    FailClass `json:"class"`
}

// FailClass says whether a failed file may be delivered if it is requeued
// as it is, from what its .reason file says; its value is the word in
// `spoolgate failed -json` (class).
type FailClass string

// The classes of failed files.
const (
	// FailRetry: its lines were sent and their retries ran out (timeout,
	// conn_error, bad_reply, 500): once the remote answers again,
	// requeueing it may deliver it.
	FailRetry FailClass = "retry"
	// FailRejected: the remote answered 400; as it is, it is rejected again.
	FailRejected FailClass = "rejected"
	// FailNotSent: never sent (invalid against protocol.result.*, or too
	// large): as it is, it fails again.
	FailNotSent FailClass = "not_sent"
	// FailNotRegular: a symlink or special file, never opened nor
	// requeued.
	FailNotRegular FailClass = "not_regular"
	// FailUnknown: no .reason file says why.
	FailUnknown FailClass = "unknown"
)

// class classifies f from the fields of its .reason file (not from the
// words of its reason): lines "-" is a file never opened, attempts 0 a line
// never sent, code 400 a rejection; anything else was sent and ran out of
// retries.
func (f *FailedFile) class() FailClass {
	switch {
	case f.Lines == "-" || strings.HasPrefix(f.Lines, "- "):
		return FailNotRegular
	case f.Code == protocol.CodeInvalid:
		return FailRejected
	case f.Attempts == 0:
		return FailNotSent
	}
	return FailRetry
}

// ReadFailed lists the failed files of failed_dir with their reasons,
// oldest first (newest last, as `spoolgate failed` prints them). A missing
// failed_dir is empty. It reads only, and is safe while the daemon runs.
func ReadFailed(c conf.Sender) ([]FailedFile, error) {
	list, err := listFailed(c.FailedDir)
	for i := range list {
		list[i].readReason(c.FailedDir)
	}
	return list, err
}

// listFailed lists the failed files of failed_dir (see isFailed: of any
// type but directories) without reading the .reason files, sorted by time
// then name.
func listFailed(dir string) ([]FailedFile, error) {
	es, err := failedEntries(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]FailedFile, 0, len(es))
	for _, e := range es {
		f := FailedFile{Name: e.name, Size: e.fi.Size(), Time: e.fi.ModTime()}
		if fi, err := os.Lstat(filepath.Join(dir, e.name+ReasonSuffix)); err == nil {
			f.Time = fi.ModTime()
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b FailedFile) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}

// readReason fills f from <dir>/<name>.reason: "key: value" lines as
// failure.text writes them. A missing or unreadable file leaves a reason
// saying so.
func (f *FailedFile) readReason(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, f.Name+ReasonSuffix))
	if err != nil {
		f.Reason, f.Class = "(no .reason file)", FailUnknown
		return
	}
	defer func() { f.Class = f.class() }()
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "time":
			if t, err := time.Parse(time.RFC3339, v); err == nil {
				f.Time = t
			}
		case "code":
			f.Code, _ = strconv.Atoi(v)
		case "attempts":
			f.Attempts, _ = strconv.Atoi(v)
		case "remote":
			if v != "-" {
				f.Remote = v
			}
		case "lines":
			f.Lines = v
		case "reason":
			f.Reason = v
		}
	}
}

// failedIndex caches the listing of failed_dir for the console and the
// failed-files gauge: it is read again when the directory's modification
// time changed (an entry came or went), after a requeue by this process,
// and at least every failedTTL. Reasons are read once per file and time.
type failedIndex struct {
	dir string

	mu      sync.Mutex
	at      time.Time
	dirTime time.Time
	files   []FailedFile // oldest first
	err     error
	reasons map[string]cachedReason // parsed .reason files by name
}

const failedTTL = 10 * time.Second

func (x *failedIndex) invalidate() {
	x.mu.Lock()
	x.at = time.Time{}
	x.mu.Unlock()
}

// refresh re-reads the listing when stale; x.mu must be held.
func (x *failedIndex) refresh(now time.Time) {
	var mt time.Time
	if fi, err := os.Stat(x.dir); err == nil {
		mt = fi.ModTime()
	}
	// A directory's time has the kernel's tick as its resolution: a listing
	// taken within a second of a change is not trusted to have seen it all.
	if !x.at.IsZero() && now.Sub(x.at) < failedTTL && mt.Equal(x.dirTime) && x.at.Sub(mt) > time.Second {
		return
	}
	x.files, x.err = listFailed(x.dir)
	x.at, x.dirTime = now, mt
}

// count returns the number of failed files.
func (x *failedIndex) count() (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.refresh(time.Now())
	return len(x.files), x.err
}

// page returns the failed files newest first, skipping off and at most n,
// with their reasons, and the total.
func (x *failedIndex) page(off, n int) ([]FailedFile, int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.refresh(time.Now())
	total := len(x.files)
	if x.reasons == nil || len(x.reasons) > 4*total+64 {
		x.reasons = make(map[string]cachedReason)
	}
	var out []FailedFile
	for i := total - 1 - off; i >= 0 && len(out) < n; i-- {
		f := x.files[i]
		if c, ok := x.reasons[f.Name]; ok && c.size == f.Size && c.listed.Equal(f.Time) {
			out = append(out, c.f)
			continue
		}
		listed := f.Time
		f.readReason(x.dir)
		x.reasons[f.Name] = cachedReason{listed: listed, size: f.Size, f: f}
		out = append(out, f)
	}
	return out, total, x.err
}

// cachedReason is a parsed .reason file, valid while the listing shows the
// same size and time for its file.
type cachedReason struct {
	listed time.Time
	size   int64
	f      FailedFile
}

// Failed returns a page of the failed files, newest first: at most n from
// the off-th, and how many there are. The listing is cached while
// failed_dir's modification time stays the same.
// It is safe for concurrent use.
func (s *Sender) Failed(off, n int) ([]FailedFile, int, error) {
	return s.failedIdx.page(off, n)
}

// Requeue moves the named failed files back into the spool (see the
// package function Requeue), for the console.
func (s *Sender) Requeue(names []string) []RequeueResult {
	defer s.failedIdx.invalidate()
	return Requeue(s.cfg, names)
}

// RequeueAll moves every failed file back into the spool.
func (s *Sender) RequeueAll() ([]RequeueResult, error) {
	defer s.failedIdx.invalidate()
	return RequeueAll(s.cfg)
}

// RequeueAll moves every failed file of c back into the spool; the error
// is that of listing failed_dir.
func RequeueAll(c conf.Sender) ([]RequeueResult, error) {
	names, err := FailedFiles(c)
	if err != nil {
		return nil, err
	}
	return Requeue(c, names), nil
}
