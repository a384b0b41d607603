package protocol

import (
	"strings"
	"time"
)

type timeTok struct {
	unit byte // 'y' year, 'M' month, 'd' day, 'H' hour, 'm' minute, 's' second, 0 literal
	off  int
	n    int
	lit  byte
}

// parseLayout splits a layout such as yyyyMMddHHmmss into tokens. Literal
// bytes other than letters, blanks and sep (the separator, or 0) are
// allowed ("yyyy-MM-dd"). A layout with a day must have a month; the year
// may be absent (then Feb 29 is allowed).
func parseLayout(layout string, sep byte) ([]timeTok, bool) {
	var toks []timeTok
	seen := map[byte]bool{}
	for i := 0; i < len(layout); {
		var unit byte
		var n int
		switch {
		case strings.HasPrefix(layout[i:], "yyyy"):
			unit, n = 'y', 4
		case strings.HasPrefix(layout[i:], "MM"):
			unit, n = 'M', 2
		case strings.HasPrefix(layout[i:], "dd"):
			unit, n = 'd', 2
		case strings.HasPrefix(layout[i:], "HH"):
			unit, n = 'H', 2
		case strings.HasPrefix(layout[i:], "mm"):
			unit, n = 'm', 2
		case strings.HasPrefix(layout[i:], "ss"):
			unit, n = 's', 2
		default:
			c := layout[i]
			if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == sep || c <= ' ' || c >= 0x7f {
				return nil, false
			}
			toks = append(toks, timeTok{off: i, n: 1, lit: c})
			i++
			continue
		}
		if seen[unit] {
			return nil, false
		}
		seen[unit] = true
		toks = append(toks, timeTok{unit: unit, off: i, n: n})
		i += n
	}
	if len(toks) == 0 || (seen['d'] && !seen['M']) {
		return nil, false
	}
	return toks, true
}

func layoutLen(toks []timeTok) int {
	last := toks[len(toks)-1]
	return last.off + last.n
}

// validTime reports whether v is a real calendar time in the layout.
func validTime(v []byte, toks []timeTok) bool {
	if len(v) != layoutLen(toks) {
		return false
	}
	year, month, day := -1, -1, -1
	for _, t := range toks {
		f := v[t.off : t.off+t.n]
		if t.unit == 0 {
			if f[0] != t.lit {
				return false
			}
			continue
		}
		if !allDigits(f, t.n) {
			return false
		}
		x := atoi(f)
		switch t.unit {
		case 'y':
			year = x
		case 'M':
			if x < 1 || x > 12 {
				return false
			}
			month = x
		case 'd':
			day = x
		case 'H':
			if x > 23 {
				return false
			}
		case 'm', 's':
			if x > 59 {
				return false
			}
		}
	}
	if day >= 0 {
		return day >= 1 && day <= daysIn(month, year)
	}
	return true
}

// daysIn returns the days of month in year; year -1 means unknown (Feb 29
// allowed).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year < 0 || (year%4 == 0 && (year%100 != 0 || year%400 == 0)) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// appendTime appends at in the layout of toks.
func appendTime(dst []byte, at time.Time, toks []timeTok) []byte {
	y, mo, d := at.Date()
	h, mi, s := at.Clock()
	for _, t := range toks {
		switch t.unit {
		case 'y':
			dst = appendInt(dst, y, 4)
		case 'M':
			dst = appendInt(dst, int(mo), 2)
		case 'd':
			dst = appendInt(dst, d, 2)
		case 'H':
			dst = appendInt(dst, h, 2)
		case 'm':
			dst = appendInt(dst, mi, 2)
		case 's':
			dst = appendInt(dst, s, 2)
		default:
			dst = append(dst, t.lit)
		}
	}
	return dst
}

// timeOf returns the local time of v, a valid time in the layout of toks,
// and false when the layout lacks the year, the month or the day.
func timeOf(v []byte, toks []timeTok) (time.Time, bool) {
	var u [6]int // y M d H m s
	var seen [6]bool
	for _, t := range toks {
		i := strings.IndexByte("yMdHms", t.unit)
		if t.unit == 0 || i < 0 {
			continue
		}
		u[i], seen[i] = atoi(v[t.off:t.off+t.n]), true
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return time.Time{}, false
	}
	return time.Date(u[0], time.Month(u[1]), u[2], u[3], u[4], u[5], 0, time.Local), true
}
