package conf

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/viper"
)

// entry is one key = value pair of a properties file.
type entry struct {
	key, value string
	line       int
}

// parseProperties parses the Java properties format: '#' or '!' comment
// lines, key and value separated by '=', ':' or white space, a line ending in
// an odd number of backslashes continues on the next line, and the escapes
// \t \n \r \f \uXXXX and \<any> (the character itself). Keys are lower-cased
// (viper is case-insensitive). Unlike Java, unescaped trailing white space is
// removed from values, since it is never wanted in this configuration and is
// invisible in an editor. The input is UTF-8; a leading BOM is skipped.
func parseProperties(data []byte) ([]entry, error) {
	s := strings.TrimPrefix(string(data), "\uFEFF")
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("not valid UTF-8")
	}
	var out []entry
	lineNo := 0
	for len(s) > 0 {
		// Collect one logical line from natural lines.
		var logical strings.Builder
		start := lineNo + 1
		first := true
		for {
			var nat string
			nat, s = cutLine(s)
			lineNo++
			if !first {
				nat = strings.TrimLeft(nat, " \t\f")
			} else {
				t := strings.TrimLeft(nat, " \t\f")
				if t == "" || t[0] == '#' || t[0] == '!' {
					break // blank or comment; comments never continue
				}
				nat = t
			}
			first = false
			if trailingBackslashes(nat)%2 == 1 && len(s) > 0 {
				logical.WriteString(nat[:len(nat)-1])
				continue
			}
			if trailingBackslashes(nat)%2 == 1 {
				nat = nat[:len(nat)-1] // a continuation at EOF continues to nothing
			}
			logical.WriteString(nat)
			break
		}
		if logical.Len() == 0 {
			continue
		}
		k, v, err := splitEntry(logical.String())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", start, err)
		}
		out = append(out, entry{key: strings.ToLower(k), value: v, line: start})
	}
	return out, nil
}

// cutLine returns the first natural line of s (without its terminator: LF,
// CR LF or CR) and the rest.
func cutLine(s string) (line, rest string) {
	i := strings.IndexAny(s, "\r\n")
	if i < 0 {
		return s, ""
	}
	if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
		return s[:i], s[i+2:]
	}
	return s[:i], s[i+1:]
}

func trailingBackslashes(s string) int {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n
}

// splitEntry splits a logical line (leading white space removed) into its
// unescaped key and value.
func splitEntry(l string) (key, value string, err error) {
	i := 0
	for i < len(l) {
		c := l[i]
		if c == '\\' {
			i += 2
			continue
		}
		if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f' {
			break
		}
		i++
	}
	if i > len(l) {
		i = len(l)
	}
	rawKey := l[:i]
	rest := strings.TrimLeft(l[i:], " \t\f")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = strings.TrimLeft(rest[1:], " \t\f")
	}
	if key, _, err = unescape(rawKey); err != nil {
		return "", "", err
	}
	value, keep, err := unescape(rest)
	if err != nil {
		if k := strings.ToLower(key); isSecret(k) {
			// The escape is a piece of the secret: name the key instead.
			return "", "", fmt.Errorf("bad escape in the value of %s (hidden): want \\uXXXX", k)
		}
		return "", "", err
	}
	// Drop unescaped trailing white space.
	end := len(value)
	for end > keep && (value[end-1] == ' ' || value[end-1] == '\t' || value[end-1] == '\f') {
		end--
	}
	return key, value[:end], nil
}

// unescape resolves backslash escapes. keep is the length of the output up
// to and including the last escaped character, which trimming must not cut.
func unescape(s string) (out string, keep int, err error) {
	if !strings.Contains(s, `\`) {
		return s, 0, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			break
		}
		switch c = s[i]; c {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+5 > len(s) {
				return "", 0, fmt.Errorf("bad escape %s: want \\uXXXX", s[i-1:])
			}
			n, perr := strconv.ParseUint(s[i+1:i+5], 16, 16)
			if perr != nil || !utf8.ValidRune(rune(n)) {
				return "", 0, fmt.Errorf("bad escape %s: want \\uXXXX", s[i-1:i+5])
			}
			b.WriteRune(rune(n))
			i += 4
		default:
			b.WriteString(s[i : i+utf8RuneLen(s[i:])])
			i += utf8RuneLen(s[i:]) - 1
		}
		keep = b.Len()
	}
	return b.String(), keep, nil
}

func utf8RuneLen(s string) int {
	_, n := utf8.DecodeRuneInString(s)
	return n
}

// decoders is the viper DecoderRegistry for one Load: it knows only the
// "properties" format and checks every key against the known set while it
// decodes, recording the entries so Load can tell what the file set, and
// the problems of the keys themselves (unknown, set twice), which name the
// line and never the value: a misspelt key may hold a secret.
type decoders struct {
	file    string
	entries []entry // the known keys, each once (the first)
	errs    []*Error
}

// Decoder implements viper.DecoderRegistry.
func (d *decoders) Decoder(format string) (viper.Decoder, error) {
	if format != "properties" {
		return nil, fmt.Errorf("unsupported config format %q", format)
	}
	return d, nil
}

// Decode implements viper.Decoder: it parses data into m, one entry per
// key. The viper instance of Load splits keys on "::", not ".", so a key
// may be the prefix of another (sender.heartbeat and
// sender.heartbeat.message): m stays flat.
func (d *decoders) Decode(data []byte, m map[string]any) error {
	entries, err := parseProperties(data)
	if err != nil {
		return &Error{File: d.file, Want: err.Error()}
	}
	seen := make(map[string]int, len(entries))
	known := entries[:0:0]
	for _, e := range entries {
		if !knownKey(e.key) {
			d.errs = append(d.errs, &Error{File: d.file, Key: e.key, Line: e.line, Want: unknownKeyWant(e.key)})
			continue
		}
		if l, dup := seen[e.key]; dup {
			d.errs = append(d.errs, &Error{File: d.file, Key: e.key, Line: e.line, Want: fmt.Sprintf("set twice (first on line %d)", l)})
			continue
		}
		seen[e.key] = e.line
		known = append(known, e)
	}
	entries = known
	for _, e := range entries {
		m[e.key] = e.value
	}
	d.entries = entries
	return nil
}
