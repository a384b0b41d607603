package conf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/viper"

	"spoolgate/internal/broker"
)

// This file holds the loader: it reads the raw text of each key (the file
// through a private viper, then SPOOLGATE_* overrides) and decodes it into
// typed values for the table in keys.go, recording every problem (one per
// key).

// envName maps a key to its environment variable.
func envName(key string) string {
	return "SPOOLGATE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// loader reads and validates values, keeping one problem per key.
type loader struct {
	v       *viper.Viper
	file    string
	useEnv  bool
	set     map[string]string // keys the file sets
	entries []entry           // the same, in file order
	bound   map[string]bool   // the environment variables bound to a key
	// dialectFailed: a protocol.* key has a problem, and the default
	// dialect stands in (keys that refer to it are not judged by it).
	dialectFailed bool
	errs          []*Error
	failed        map[string]bool // the keys of errs
}

func (l *loader) bindEnv(key string) {
	l.bound[envName(key)] = true
	_ = l.v.BindEnv(key, envName(key)) // fails only without a key
}

// fromEnv reports whether an environment variable sets key.
func (l *loader) fromEnv(key string) bool {
	if !l.useEnv {
		return false
	}
	_, ok := os.LookupEnv(envName(key))
	return ok
}

// isSet reports whether the file or the environment sets key.
func (l *loader) isSet(key string) bool {
	_, ok := l.set[key]
	return ok || l.fromEnv(key)
}

func (l *loader) get(key string) string {
	return strings.TrimSpace(l.v.GetString(key))
}

// fail records the problem of key, unless key has one already. The value
// of a secret is hidden (redact).
func (l *loader) fail(key, value, want string) {
	if l.failed[key] {
		return
	}
	l.failed[key] = true
	file := l.file
	if l.fromEnv(key) {
		file = "$" + envName(key)
	}
	l.errs = append(l.errs, &Error{File: file, Key: key, Value: redact(key, value), Want: want})
}

// anyFailedIn reports whether a key starting with prefix has a problem.
func (l *loader) anyFailedIn(prefix string) bool {
	for k := range l.failed {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// anyFailed reports whether one of keys has a problem.
func (l *loader) anyFailed(keys ...string) bool {
	for _, k := range keys {
		if l.failed[k] {
			return true
		}
	}
	return false
}

func (l *loader) str(key string) string { return l.get(key) }

// minTokenLen is the shortest admin.token accepted: a guessable token is
// worse than none, because it looks like protection.
const minTokenLen = 16

// token returns a secret; a bad one is reported without its value.
func (l *loader) token(key string, _ *Config) string {
	v := l.get(key)
	switch {
	case v == "":
	case len(v) < minTokenLen:
		l.fail(key, v, fmt.Sprintf("at least %d characters (got %d), e.g. from: head -c 24 /dev/urandom | base64", minTokenLen, len(v)))
	case strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		l.fail(key, v, "no spaces or control characters")
	}
	return v
}

// hosts reads admin.hosts: host names (letters, digits, '-' and '.'),
// without a port, lower-cased.
func (l *loader) hosts(key string, _ *Config) []string {
	var out []string
	for _, h := range list(l.get(key)) {
		if strings.Trim(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != "" || strings.Trim(h, ".") == "" {
			l.fail(key, l.get(key), fmt.Sprintf("comma-separated host names without a port, e.g. gw1.example.com,gw1 (bad %q)", h))
			return nil
		}
		out = append(out, strings.ToLower(strings.TrimSuffix(h, ".")))
	}
	return out
}

// dir returns a cleaned directory path; required ones may not be empty.
func (l *loader) dir(key string, required bool) string {
	s := l.get(key)
	if s == "" {
		if required {
			l.fail(key, s, "a directory path")
		}
		return ""
	}
	return filepath.Clean(s)
}

func (l *loader) oneOf(key string, allowed ...string) string {
	s := strings.ToLower(l.get(key))
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	l.fail(key, l.get(key), "one of "+strings.Join(allowed, ", "))
	return allowed[0]
}

func (l *loader) boolean(key string) bool {
	s := l.get(key)
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	}
	l.fail(key, s, "true or false")
	return false
}

// integer parses an int in [lo, hi]; hi < 0 means no upper bound.
func (l *loader) integer(key string, lo, hi int) int {
	s := l.get(key)
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || (hi >= 0 && n > hi) {
		want := fmt.Sprintf("an integer >= %d", lo)
		if hi >= 0 {
			want = fmt.Sprintf("an integer from %d to %d", lo, hi)
		}
		l.fail(key, s, want)
		return lo
	}
	return n
}

// duration parses a duration with a unit; positive requires > 0, else >= 0.
func (l *loader) duration(key string, positive bool) time.Duration {
	s := l.get(key)
	if bareNumber(s) {
		l.fail(key, s, "a duration needs a unit, e.g. "+s+"s")
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		l.fail(key, s, "a duration like 5s or 250ms")
	case positive && d <= 0:
		l.fail(key, s, "a duration > 0, e.g. 5s")
	case d < 0:
		l.fail(key, s, "a duration >= 0, e.g. 5s")
	}
	return d
}

// bareNumber reports whether s is a number without a unit, like 5 or 1.5.
func bareNumber(s string) bool {
	s = strings.TrimLeft(s, "+-")
	if s == "" || s == "." {
		return false
	}
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.' && !dot:
			dot = true
		case c < '0' || c > '9':
			return false
		}
	}
	return true
}

// list splits a comma-separated value, dropping empty items.
func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// address checks a host:port; listen addresses may have an empty host and
// port 0, dial addresses need both.
func (l *loader) address(key, s string, dial bool) bool {
	host, port, err := net.SplitHostPort(s)
	if err == nil {
		n, perr := strconv.Atoi(port)
		switch {
		case perr != nil || n < 0 || n > 65535:
			err = errors.New("port")
		case dial && (n == 0 || host == ""):
			err = errors.New("dial")
		}
	}
	if err != nil {
		want := "host:port with a port from 0 to 65535, e.g. 0.0.0.0:9010"
		if dial {
			want = "host:port with a port from 1 to 65535, e.g. 10.1.2.3:9010"
		}
		if whole := l.get(key); whole != s {
			want = fmt.Sprintf("comma-separated %s (bad %q)", want, s)
		}
		l.fail(key, l.get(key), want)
		return false
	}
	return true
}

func (l *loader) listen(key string, optional bool) string {
	s := l.get(key)
	if s == "" && optional {
		return ""
	}
	l.address(key, s, false)
	return s
}

// readable checks that a TLS file can be opened, so a missing certificate
// stops `spoolgate check` rather than the daemon.
func (l *loader) readable(key string) string {
	s := l.get(key)
	if s == "" {
		return ""
	}
	f, err := os.Open(s)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		l.fail(key, s, "a readable file ("+err.Error()+")")
		return s
	}
	_ = f.Close()
	return s
}

func (l *loader) prefixes(key string) []netip.Prefix {
	s := l.get(key)
	var out []netip.Prefix
	for _, f := range list(s) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil || a.Zone() != "" {
				l.fail(key, s, fmt.Sprintf("comma-separated CIDRs like 10.0.0.0/8,192.168.1.5 (bad %q)", f))
				return nil
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

func (l *loader) dedupKey(key string, c *Config) []string {
	spec := c.Protocol.Request
	s := l.get(key)
	names := list(s)
	if l.dialectFailed {
		return names // the default spec stands in: it would fail too
	}
	for _, n := range names {
		if spec != nil && spec.Index(n) < 0 {
			l.fail(key, s, fmt.Sprintf("%s is not a field of the request spec (%s)", n, strings.Join(spec.Names(), ",")))
			return nil
		}
	}
	return names
}

// remote reads sender.remote: dial addresses, tried in order.
func (l *loader) remote(key string, _ *Config) []string {
	var out []string
	for _, a := range list(l.get(key)) {
		if !l.address(key, a, true) {
			break
		}
		out = append(out, a)
	}
	return out
}

// amqpURLs reads a list of broker URLs (docs/PROTOCOL.md §8), each as
// amqp091.ParseURI takes it. An error shows the bad URL with its password
// replaced by xxxxx (fail redacts it): credentials are never printed.
func (l *loader) amqpURLs(key string) []string {
	var out []string
	for _, u := range list(l.get(key)) {
		if _, err := amqp.ParseURI(u); err != nil {
			why := err.Error()
			if ue := (*url.Error)(nil); errors.As(err, &ue) { // its text quotes the URL, password and all
				why = `it does not parse as a URL; a reserved character such as "?", "#", "@", ":" or "/" in the user name or password must be percent-encoded`
			}
			l.fail(key, u, "comma-separated amqp:// or amqps:// URLs, e.g. amqp://user:password@10.0.0.5:5672/vhost ("+why+")")
			return nil
		}
		out = append(out, u)
	}
	return out
}

// redact returns value as an error may show it: a secret key's value
// hidden (an AMQP URL list with each password replaced by xxxxx), any
// other as it is.
func redact(key, value string) string {
	switch {
	case !isSecret(key):
		return value
	case strings.HasSuffix(key, ".amqp.url"):
		urls := list(value)
		for i, u := range urls {
			urls[i] = broker.RedactURL(u)
		}
		return strings.Join(urls, ",")
	}
	return "(hidden)"
}
