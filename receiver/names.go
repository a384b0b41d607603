package receiver

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// requestFile is one request file in the data dir.
type requestFile struct {
	path   string
	minute int64 // unix minute from the name
	part   bool
}

// files lists the request files (final, .part and collision-suffixed
// names) of minutes >= since, sorted by minute then name.
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

// parseName recognises <yyyyMMddHHmm>_request.txt, with .part or a
// collision suffix .N, and returns its unix minute.
func parseName(name string) (minute int64, part bool, ok bool) {
	if len(name) < len(minuteLayout)+len(fileSuffix) {
		return 0, false, false
	}
	stamp, rest := name[:len(minuteLayout)], name[len(minuteLayout):]
	if !strings.HasPrefix(rest, fileSuffix) {
		return 0, false, false
	}
	rest = rest[len(fileSuffix):]
	switch {
	case rest == "":
	case rest == partSuffix:
		part = true
	case len(rest) > 1 && rest[0] == '.' && allDigits(rest[1:]):
	default:
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
