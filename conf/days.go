package conf

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file holds what the journal and retention keys add to the loader:
// durations counted in days (journal.keep, sender.sent_keep), journal.dir
// derived from log.dir, and log.mask checked against both specs.

// Day is the d unit of ParseDuration: 24 hours (a retention counts whole
// days of 24 h; a DST shift of an hour makes no file live a day longer).
const Day = 24 * time.Hour

// maxDays is the most days a time.Duration holds.
const maxDays = math.MaxInt64 / int64(Day)

// errDuration is what ParseDuration returns for text it does not take.
var errDuration = errors.New("a duration like 400d, 36h or 30m")

// ParseDuration parses a duration as time.ParseDuration does (5s, 1h30m)
// and also with whole days first: 400d, 1d12h, -2d. The keys that keep
// files (journal.keep, sender.sent_keep) and spoolgate trace -since take
// it; the other duration keys take only time.ParseDuration's units. An
// error says what is expected.
func ParseDuration(s string) (time.Duration, error) {
	t, neg := s, false
	if rest, ok := strings.CutPrefix(t, "-"); ok {
		t, neg = rest, true
	} else {
		t = strings.TrimPrefix(t, "+")
	}
	j := 0
	for j < len(t) && t[j] >= '0' && t[j] <= '9' {
		j++
	}
	if j == 0 || j == len(t) || t[j] != 'd' {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errDuration
		}
		return d, nil
	}
	n, err := strconv.ParseInt(t[:j], 10, 64)
	if err != nil || n > maxDays {
		return 0, errDuration
	}
	d := time.Duration(n) * Day
	if rest := t[j+1:]; rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || rest[0] == '-' || rest[0] == '+' || r > math.MaxInt64-d {
			return 0, errDuration
		}
		d += r
	}
	if neg {
		d = -d
	}
	return d, nil
}

// formatDays renders d as ParseDuration reads it, in days when it is a
// whole number of them (400d rather than 9600h0m0s).
func formatDays(d time.Duration) string {
	if d != 0 && d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	if d == 0 {
		return "0d"
	}
	return d.String()
}

// days reads a duration that may be counted in days: >= 0, and 0 or at
// least min (min 0: any).
func (l *loader) days(key string, min time.Duration) time.Duration {
	s := l.get(key)
	if bareNumber(s) {
		l.fail(key, s, "a duration needs a unit, e.g. "+s+"d")
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil {
		l.fail(key, s, err.Error())
		return 0
	}
	if want := daysWant(d, min); want != "" {
		l.fail(key, s, want)
	}
	return d
}

func daysWant(d, min time.Duration) string {
	switch {
	case d < 0:
		return "a duration >= 0, e.g. 90d"
	case d > 0 && d < min:
		return "0d (keep forever) or at least " + formatDays(min) + ", e.g. 400d"
	}
	return ""
}

// daysV is a duration that may be counted in days (ParseDuration): 0 or
// at least min.
func daysV(at func(*Config) *time.Duration, min time.Duration) value {
	return daysValue{at, min}
}

type daysValue struct {
	at  func(*Config) *time.Duration
	min time.Duration
}

func (v daysValue) load(l *loader, key string, c *Config) { *v.at(c) = l.days(key, v.min) }

func (v daysValue) check(c *Config) (string, string) {
	d := *v.at(c)
	return formatDays(d), daysWant(d, v.min)
}

func (v daysValue) text(c *Config) string { return formatDays(*v.at(c)) }

func (v daysValue) copy(dst, src *Config) { *v.at(dst) = *v.at(src) }

// LogDirVar is what journal.dir may start with to name a directory under
// log.dir: the default is ${log.dir}/journal.
const LogDirVar = "${log.dir}"

// journalDir reads journal.dir: a directory, ${log.dir} at its start
// replaced by log.dir (decoded before it). With log.dir empty (logs to
// stderr, e.g. to journald) such a path turns the journal off: a config
// from before the journal must still start as it did, and the default
// must not put files in the daemon's working directory. spoolgate check
// notes it (JournalOff).
func (l *loader) journalDir(key string, c *Config) string {
	s := l.get(key)
	if s == "" {
		return ""
	}
	rest, derived := strings.CutPrefix(s, LogDirVar)
	if strings.Contains(rest, "${") || (derived && rest != "" && rest[0] != '/') {
		l.fail(key, s, "a directory path, or "+LogDirVar+"/NAME for one under log.dir, e.g. "+LogDirVar+"/journal")
		return ""
	}
	if !derived {
		return filepath.Clean(s)
	}
	if c.Log.Dir == "" {
		return ""
	}
	return filepath.Clean(c.Log.Dir + rest)
}

// JournalOff returns why the journal is off, or "" when it is on.
func (c *Config) JournalOff() string {
	switch {
	case c.Journal.Dir != "":
		return ""
	case c.Log.Dir == "":
		return "journal off: log.dir is empty (logs go to stderr) and journal.dir is " + LogDirVar + "/… or empty; set journal.dir to a directory to keep one"
	}
	return "journal off: journal.dir is empty"
}

// mask reads log.mask: fields of the request or the result spec.
func (l *loader) mask(key string, c *Config) []string {
	s := l.get(key)
	names := list(s)
	req, res := c.Protocol.Request, c.Protocol.Result
	for _, n := range names {
		if req != nil && res != nil && req.Index(n) < 0 && res.Index(n) < 0 {
			all := req.Names()
			for _, r := range res.Names() {
				if !slices.Contains(all, r) {
					all = append(all, r)
				}
			}
			l.fail(key, s, fmt.Sprintf("%s is not a field of the request or result spec (%s)", n, strings.Join(all, ",")))
			return nil
		}
	}
	return names
}
