package receiver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"spoolgate/internal/fsutil"
)

// requestFile is one request file in the data dir.
type requestFile struct {
	path   string
	minute int64 // unix minute from the name
	part   bool
}

// files lists the request files (every name parseName knows) of minutes
// >= since, sorted by minute then name: within a minute, in the order
// they were published.
func (s *Store) files(since int64) ([]requestFile, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.dir, err)
	}
	var out []requestFile
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		m, part, ok := parseName(e.Name())
		if !ok || m < since {
			continue
		}
		out = append(out, requestFile{path: filepath.Join(s.dir, e.Name()), minute: m, part: part})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].minute != out[j].minute {
			return out[i].minute < out[j].minute
		}
		return out[i].path < out[j].path
	})
	return out, nil
}

// unixMinute is the minute number of t. Local UTC offsets are whole
// minutes, so local and UTC minute boundaries coincide.
func unixMinute(t time.Time) int64 {
	u := t.Unix()
	if u < 0 {
		return (u - 59) / 60
	}
	return u / 60
}

func minuteName(m int64) string {
	return time.Unix(m*60, 0).Format(minuteLayout) + fileSuffix
}

// maxSeq is the most request files one minute may have: the first, then
// seqName's 002 to 999.
const maxSeq = 999

// seqName is the name of the n-th request file of unix minute m (n from
// 1): <yyyyMMddHHmm>_request.txt, then <yyyyMMddHHmm>s002_request.txt …
// s999 (a restart within the minute, a local minute that repeats when
// daylight saving time ends). Every name keeps the _request.txt suffix a
// downstream globs for, and the names of a minute sort, as bytes, in the
// order they were published, after the first and before the next minute's
// ('_' < 's', the counter has a fixed width); they do under a locale's
// collation too, which ignores '_' and '.' ('r' of _request < 's').
func seqName(m int64, n int) string {
	if n <= 1 {
		return minuteName(m)
	}
	return time.Unix(m*60, 0).Format(minuteLayout) + fmt.Sprintf("%c%03d", seqMark, n) + fileSuffix
}

// seqMark starts the counter of seqName.
const seqMark = 's'

// publishAs renames src, a minute's .part file, to the first free name of
// its minute m (seqName), never replacing a file, and fsyncs the data dir;
// the publish is reported to onPub (the journal). It returns the name.
func (s *Store) publishAs(src string, m int64) (string, error) {
	for n := 1; n <= maxSeq; n++ {
		dst := filepath.Join(s.dir, seqName(m, n))
		err := fsutil.RenameNoReplace(src, dst)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("publish %s: %w", src, errors.Unwrap(err))
		}
		s.onPub(filepath.Base(src), filepath.Base(dst))
		return dst, fsutil.SyncDir(s.dir)
	}
	return "", fmt.Errorf("publish %s: minute %s has %d request files already", src, minuteName(m), maxSeq)
}

// parseName recognises the names of request files: seqName's, with .part
// (only the first name of a minute is ever open), and the .N suffix an
// earlier version gave a name taken at publish
// (<yyyyMMddHHmm>_request.txt.1). It returns the file's unix minute.
func parseName(name string) (minute int64, part bool, ok bool) {
	if len(name) < len(minuteLayout)+len(fileSuffix) {
		return 0, false, false
	}
	stamp, rest := name[:len(minuteLayout)], name[len(minuteLayout):]
	if len(rest) > 4 && rest[0] == seqMark && allDigits(rest[1:4]) && rest[4:] == fileSuffix {
		rest = rest[4:]
	} else if strings.HasPrefix(rest, fileSuffix) {
		switch rest = rest[len(fileSuffix):]; {
		case rest == "":
		case rest == partSuffix:
			part = true
		case len(rest) > 1 && rest[0] == '.' && allDigits(rest[1:]):
		default:
			return 0, false, false
		}
	} else {
		return 0, false, false
	}
	t, err := time.ParseInLocation(minuteLayout, stamp, time.Local)
	if err != nil {
		return 0, false, false
	}
	return unixMinute(t), part, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
