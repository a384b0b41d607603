// Package conf loads spoolgate's conf.properties into plain structs.
//
// The file is in the Java properties format and is read with a private
// viper instance (viper.New, never the global); viper types never leave this
// package. Every key of conf.properties has a default, every key can be overridden
// by an environment variable SPOOLGATE_ + the key upper-cased with '.' as '_'
// (SPOOLGATE_SENDER_REMOTE), unknown keys are rejected, and every problem
// with a value is reported as an *Error: one line naming the key, the value
// and what is expected.
package conf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/viper"

	"spoolgate/protocol"
)

// DefaultPath is the config file used when neither -config nor
// SPOOLGATE_CONFIG names one.
const DefaultPath = "/etc/spoolgate/conf.properties"

// EnvConfig names the environment variable holding the config file path.
const EnvConfig = "SPOOLGATE_CONFIG"

// MaxWindow is the largest sender.window: lines of one file in flight on
// one connection.
const MaxWindow = 1024

// Path returns the config file to load: flagValue when not empty, else
// $SPOOLGATE_CONFIG when not empty, else DefaultPath.
func Path(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	return DefaultPath
}

// Config is the whole configuration of both daemons and the operator's
// tool. Load returns a fully validated Config; a Config is a plain value and
// is not modified after Load, so it is safe to share read-only between
// goroutines. A reload loads a new Config rather than changing the old one.
type Config struct {
	Path            string // the file it was loaded from
	Receiver        Receiver
	Sender          Sender
	Log             Log
	Protocol        Protocol
	ShutdownTimeout time.Duration // graceful drain on SIGTERM
	AdminPprof      bool          // serve /debug/pprof on the admin addresses
	// AdminToken, when set, enables the console's actions (requeue); a
	// request must carry it. A secret: never log or print it.
	AdminToken string

	// Warnings are one-line messages about the environment that do not
	// stop start-up: a SPOOLGATE_* variable that sets no key (a typo of an
	// override). The daemons log them at start; spoolgate check prints them.
	Warnings []string
}

// Receiver holds the receiver.* keys.
type Receiver struct {
	Listen          string  // host:port; ignored under socket activation
	DataDir         string  // request files
	Publish         Publish // PublishRename or PublishAppend
	Fsync           Fsync   // FsyncAlways or FsyncNever
	MaxConns        int     // connections served at once, >= 1
	MaxConnsPerIP   int     // connections open at once from one address; 0: no limit
	MaxMessageBytes int     // longest message incl. LF, 16..9999
	ReadTimeout     time.Duration
	IdleTimeout     time.Duration
	WriteTimeout    time.Duration
	Allow           []netip.Prefix // masked prefixes; empty allows all
	ProxyProtocol   bool           // receiver.proxy_protocol=on: PROXY headers from ProxyTrusted
	ProxyTrusted    []netip.Prefix // the load balancers; not empty when ProxyProtocol
	DedupWindow     time.Duration  // 0 turns deduplication off
	DedupKey        []string       // fields of the request spec
	TLS             struct {
		Cert, Key, ClientCA string // all empty: plain TCP
		// ClientNames are the identities (DNS SAN, else CN) mutual TLS
		// serves; empty: any certificate the client CA signed.
		ClientNames      []string
		HandshakeTimeout time.Duration // > 0
	}
	AdminListen string // "" disables the admin server
}

// Sender holds the sender.* keys.
type Sender struct {
	Remote          []string // host:port, tried in order; empty unless RequireSender passes
	SpoolDir        string
	FailedDir       string
	SentDir         string // "" deletes delivered files
	Workers         int    // sends in flight at most, >= 1
	Timeout         time.Duration
	Retries         int // retries after the first attempt, >= 0
	Window          int // lines of one file in flight on a connection, 1 to MaxWindow
	ConnectTimeout  time.Duration
	RetryBackoff    time.Duration // first backoff, <= RetryBackoffMax
	RetryBackoffMax time.Duration
	Keepalive       bool
	ScanInterval    time.Duration
	Settle          time.Duration
	TLS             struct {
		CA, Cert, Key, ServerName string // all empty: plain TCP
	}
	AdminListen string // "" disables the admin server
}

// Log holds the log.* keys.
type Log struct {
	Dir         string // "" logs to stderr
	Level       string // "debug", "info", "warn" or "error"
	Format      string // "text" or "json"
	MaxSizeMB   int
	MaxBackups  int // 0 keeps all
	MaxAgeDays  int // 0 keeps all
	Compress    bool
	RotateDaily bool
}

// Protocol holds the message specs built from the protocol.* keys.
type Protocol struct {
	Request *protocol.Spec // what the receiver accepts
	Result  *protocol.Spec // what the sender sends; the request spec unless configured
}

// Error is a bad value (or an unknown key) in the configuration. Error()
// is one line:
//
//	conf.properties: receiver.read_timeout = "5": a duration needs a unit, e.g. 5s
type Error struct {
	// File is where the value came from: the base name of the config file,
	// or $SPOOLGATE_… when an environment variable set it; the whole path
	// when the file itself cannot be used (missing, not a regular file,
	// too big).
	File  string
	Key   string // the key, lower case; "" for a problem of the file itself
	Value string // the value as given
	Want  string // what is expected
	Err   error  // the underlying error, if any (a missing file: fs.ErrNotExist)
}

// Unwrap returns the underlying error, or nil.
func (e *Error) Unwrap() error { return e.Err }

// Error returns the one-line message.
func (e *Error) Error() string {
	if e.Key == "" {
		return e.File + ": " + e.Want
	}
	key := e.Key
	if strings.ContainsFunc(key, unicode.IsControl) {
		key = strconv.Quote(key) // keep the message on one line
	}
	msg := fmt.Sprintf("%s = %s: %s", key, strconv.Quote(e.Value), e.Want)
	if e.File == "" {
		return msg // from Validate: no file was read
	}
	return e.File + ": " + msg
}

// Load reads the file at path, applies defaults and SPOOLGATE_* environment
// overrides, and validates every value, the TLS files (they load, the key
// matches the certificate) and that no two listen addresses share a port.
// Every problem is returned as an *Error (use errors.As), including a file
// that cannot be read, is not a regular file or is larger than
// MaxFileBytes. Environment variables that set no key are reported in
// Config.Warnings. Load is safe for concurrent use.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return load(path, data, true)
}

// Default returns the configuration of an empty file without environment
// overrides: every default of conf.properties. It is meant for tests and tools.
func Default() *Config {
	c, err := load("", nil, false)
	if err != nil {
		panic("conf: defaults do not validate: " + err.Error()) // a bug in this package
	}
	return c
}

// RequireSender reports whether the sender can run: sender.remote must be
// set. It returns an *Error naming the key otherwise.
func (c *Config) RequireSender() error {
	if len(c.Sender.Remote) == 0 {
		file := filepath.Base(c.Path)
		if c.Path == "" {
			file = "config"
		}
		return &Error{File: file, Key: "sender.remote", Want: "required: host:port of the remote receiver"}
	}
	return nil
}

func load(path string, data []byte, useEnv bool) (*Config, error) {
	file := "config"
	if path != "" {
		file = filepath.Base(path)
	}
	dec := &decoders{file: file}
	v := viper.NewWithOptions(viper.WithDecoderRegistry(dec)) // a private instance, never the global
	v.SetConfigType("properties")
	v.AllowEmptyEnv(true) // a variable set to "" overrides too (log.dir= logs to stderr)
	for _, k := range keys {
		v.SetDefault(k.name, k.def)
	}
	l := &loader{v: v, file: file, useEnv: useEnv, set: map[string]string{}, bound: map[string]bool{}}
	if useEnv {
		for _, k := range keys {
			l.bindEnv(k.name)
		}
	}
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	l.entries = dec.entries
	for _, e := range dec.entries {
		l.set[e.key] = e.value
	}
	c := &Config{Path: path}
	l.protocol(c)
	for _, k := range keys {
		k.v.load(l, k.name, c)
	}
	if l.err == nil {
		l.adopt(c.Validate())
	}
	l.keyPair("receiver.tls.cert", "receiver.tls.key")
	l.caFile("receiver.tls.client_ca")
	l.caFile("sender.tls.ca")
	l.keyPair("sender.tls.cert", "sender.tls.key")
	l.distinctPorts(c)
	if l.err != nil {
		return nil, l.err
	}
	if useEnv {
		c.Warnings = l.envWarnings()
	}
	return c, nil
}

// envName maps a key to its environment variable.
func envName(key string) string {
	return "SPOOLGATE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// loader reads and validates values, keeping the first error.
type loader struct {
	v       *viper.Viper
	file    string
	useEnv  bool
	set     map[string]string // keys the file sets
	entries []entry           // the same, in file order
	bound   map[string]bool   // the environment variables bound to a key
	err     *Error
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

func (l *loader) fail(key, value, want string) {
	if l.err != nil {
		return
	}
	file := l.file
	if l.fromEnv(key) {
		file = "$" + envName(key)
	}
	l.err = &Error{File: file, Key: key, Value: value, Want: want}
}

func (l *loader) str(key string) string { return l.get(key) }

// adopt records an error of Validate, naming where the key was set and the
// value as given.
func (l *loader) adopt(err error) {
	var e *Error
	if !errors.As(err, &e) {
		return
	}
	l.fail(e.Key, l.get(e.Key), e.Want)
}

// minTokenLen is the shortest admin.token accepted: a guessable token is
// worse than none, because it looks like protection.
const minTokenLen = 16

// token returns a secret; a bad one is reported without its value.
func (l *loader) token(key string, _ *Config) string {
	v := l.get(key)
	switch {
	case v == "":
	case len(v) < minTokenLen:
		l.fail(key, "(hidden)", fmt.Sprintf("at least %d characters (got %d), e.g. from: head -c 24 /dev/urandom | base64", minTokenLen, len(v)))
	case strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		l.fail(key, "(hidden)", "no spaces or control characters")
	}
	return v
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
