// Package conf loads spoolgate's conf.properties into plain structs.
//
// The file is in the Java properties format and is read with a private
// viper instance (viper.New, never the global); viper types never leave this
// package. Every key of conf.properties has a default, every key can be overridden
// by an environment variable SPOOLGATE_ + the key upper-cased with '.' as '_'
// (SPOOLGATE_SENDER_REMOTE), unknown keys are rejected, and every problem
// with a value is reported as an *Error: one line naming the key, the value
// (never a secret's) and what is expected; a file with several problems
// gets them all, as Errors.
package conf

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/viper"

	"spoolgate/internal/logging"
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

// PathUsage says how Path finds the config file, for a daemon's -config
// flag.
const PathUsage = "config file (default $" + EnvConfig + ", else " + DefaultPath + ")"

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
	Instance        string // the instance's name (Instance(Path)); "" the unnamed one
	Receiver        Receiver
	Sender          Sender
	Log             Log
	Journal         Journal
	Protocol        Protocol
	ShutdownTimeout time.Duration // graceful drain on SIGTERM
	AdminPprof      bool          // serve /debug/pprof on the admin addresses
	// AdminToken, when set, enables the console's actions (requeue); a
	// request must carry it. A secret: never log or print it.
	AdminToken string
	// AdminHosts are the host names, lower case, that the admin servers
	// answer besides IP addresses, localhost, the host's name and the
	// host of their own address.
	AdminHosts []string

	warnings []string // Warnings
}

// Warnings returns one-line messages about the environment that do not
// stop start-up: a SPOOLGATE_* variable that sets no key (a typo of an
// override). The daemons log them at start; spoolgate check prints them.
func (c *Config) Warnings() []string { return c.warnings }

// LogOptions returns the options of a daemon's logger (log.*).
func (c *Config) LogOptions() logging.Options { return c.Log.Options }

// Receiver holds the receiver.* keys.
type Receiver struct {
	Listen  string  // host:port; ignored under socket activation
	DataDir string  // request files
	Publish Publish // PublishRename or PublishAppend
	Fsync   Fsync   // FsyncAlways or FsyncNever
	Sink    Sink    // SinkFiles (request files in DataDir) or SinkAMQP
	AMQP    struct {
		URL            []string  // amqp:// or amqps:// nodes, tried in order; required with SinkAMQP
		Queue          string    // durable queue the accepted messages are published to
		QueueType      QueueType // QueueQuorum or QueueClassic
		ConfirmTimeout time.Duration
	}
	MaxConns        int // connections served at once, >= 1
	MaxConnsPerIP   int // connections open at once from one address; 0: no limit
	MaxMessageBytes int // longest message incl. LF, 16..9999
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
	Remote    []string // host:port, tried in order; empty unless RequireSender passes
	SpoolDir  string
	FailedDir string
	SentDir   string        // "" deletes delivered files
	SentKeep  time.Duration // delivered files older than this are removed from SentDir; 0 keeps them
	Source    Source        // SourceSpool (files in SpoolDir) or SourceAMQP
	AMQP      struct {
		URL          []string // amqp:// or amqps:// nodes, tried in order; required with SourceAMQP
		Queue        string   // the results queue consumed
		FailedQueue  string   // where rejected and exhausted lines are published
		QueueType    QueueType
		SingleActive bool // x-single-active-consumer on Queue
	}
	Workers         int // sends in flight at most, >= 1
	Timeout         time.Duration
	Retries         int    // retries after the first attempt, >= 0
	Window          Window // lines of one file in flight on a connection, 1 to MaxWindow, or WindowAuto
	LineOrder       LineOrder
	ConnectTimeout  time.Duration
	RetryBackoff    time.Duration // first backoff, <= RetryBackoffMax
	RetryBackoffMax time.Duration
	Keepalive       bool
	// Heartbeat is how long a kept-alive connection may stay idle before
	// HeartbeatMessage (the echo telegram in the spool format) is sent on
	// it; 0: off. Load checks that the message is the dialect's echo.
	Heartbeat        time.Duration
	HeartbeatMessage string
	ScanInterval     time.Duration
	Settle           time.Duration
	TLS              struct {
		CA, Cert, Key, ServerName string // all empty: plain TCP
	}
	AdminListen string // "" disables the admin server
}

// Log holds the log.* keys: the logger's options (dir, level, format and
// rotation), which the daemons hand to the logging package as they are,
// and the masking.
type Log struct {
	logging.Options
	// Mask names fields of the request or result spec shown as '*'
	// wherever a message is shown (logs, console, .reason files), and
	// stored as a keyed hash in the journal.
	Mask []string
	// MaskRRN: resident registration number shapes are masked too.
	MaskRRN bool
}

// Journal holds the journal.* keys: the trail of message outcomes that
// spoolgate trace reads.
type Journal struct {
	// Dir is journal.dir with ${log.dir} replaced; "" turns the journal
	// off.
	Dir string
	// Keep is how long a day's file is kept after its day; 0 keeps
	// them forever, else at least a day.
	Keep time.Duration
}

// Protocol holds the protocol.* keys and the dialect built from them
// (docs/PROTOCOL.md §1, §2, §7). The daemons use Dialect; the other fields
// are the keys' values as loaded (Request, Result and Reply are Dialect's
// specs).
type Protocol struct {
	Charset   protocol.Charset
	Layout    protocol.Layout
	Separator string
	Framing   protocol.Framing
	Length    struct {
		Format protocol.LengthFormat
		Bytes  int
		Counts protocol.LengthCounts
	}
	Codes struct{ OK, Invalid, Unavailable string } // protocol.reply.code.*
	Echo  struct{ Field, Value string }             // protocol.echo.*; empty: no echo telegram

	Request *protocol.Spec // what the receiver accepts
	Result  *protocol.Spec // what the sender sends; the request spec unless configured
	Reply   *protocol.Spec // the replies, both ways

	// Dialect is the wire built from all of the above; never nil after
	// Load or Default.
	Dialect *protocol.Dialect
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
	Value string // the value as given; a secret's is hidden (see Load)
	Want  string // what is expected
	Err   error  // the underlying error, if any (a missing file: fs.ErrNotExist)
	// Line is the line of the file when the key itself is the problem
	// (unknown, set twice): the value is then not shown at all, since it
	// may be a secret under a misspelt name.
	Line int
}

// Unwrap returns the underlying error, or nil.
func (e *Error) Unwrap() error { return e.Err }

// BadConfig returns true: the error is the configuration's, which no
// restart cures (a daemon exits 2 on it; Errors holds only such errors).
func (e *Error) BadConfig() bool { return true }

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
	if e.Line > 0 {
		msg = fmt.Sprintf("line %d: %s: %s", e.Line, key, e.Want)
	}
	if e.File == "" {
		return msg // from Validate: no file was read
	}
	return e.File + ": " + msg
}

// Errors is every problem Load found in a configuration, when there is
// more than one: one *Error per key, in the order found (the file's
// unknown and repeated keys, then the values in the order of
// conf.properties, then the rules that tie keys together).
type Errors []*Error

// Error returns one line per problem.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so errors.As finds the first *Error.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, p := range e {
		out[i] = p
	}
	return out
}

// Problems returns the problems of an error of Load: the list of an
// Errors, the one *Error otherwise, nil when err holds none.
func Problems(err error) []*Error {
	var list Errors
	if errors.As(err, &list) {
		return list
	}
	var one *Error
	if errors.As(err, &one) {
		return []*Error{one}
	}
	return nil
}

// Load reads the file at path, applies defaults and SPOOLGATE_* environment
// overrides, and validates every value, the TLS files (they load, the key
// matches the certificate) and that no two listen addresses share a port.
// A problem is returned as an *Error (use errors.As), including a file
// that cannot be read, is not a regular file or is larger than
// MaxFileBytes; several problems as Errors, one per key (Problems lists
// them). A secret (admin.token, the password of an AMQP URL) is never in
// an error: its value is hidden, and a key that is unknown or set twice is
// named without its value. Environment variables that set no key are
// reported by Config.Warnings. Load is safe for concurrent use.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return load(path, data, true)
}

// LoadFile is Load without the environment: the file's keys and the
// defaults only, no SPOOLGATE_* override. A daemon reads another
// instance's config with it (whose units give it no overrides of this
// process's environment). It is safe for concurrent use.
func LoadFile(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return load(path, data, false)
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
	// A private instance, never the global; keys are split on "::", which
	// no key holds, so that viper does not nest them on "." (a key may be
	// the prefix of another: sender.heartbeat, sender.heartbeat.message).
	v := viper.NewWithOptions(viper.WithDecoderRegistry(dec), viper.KeyDelimiter("::"))
	v.SetConfigType("properties")
	v.AllowEmptyEnv(true) // a variable set to "" overrides too (log.dir= logs to stderr)
	for _, k := range keys {
		v.SetDefault(k.name, k.def)
	}
	l := &loader{v: v, file: file, useEnv: useEnv, set: map[string]string{}, bound: map[string]bool{},
		failed: map[string]bool{}}
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
	l.errs = dec.errs // unknown and repeated keys
	l.entries = dec.entries
	for _, e := range dec.entries {
		l.set[e.key] = e.value
	}
	c := &Config{Path: path, Instance: Instance(path)}
	l.protocol(c)
	var def *Config
	for _, k := range keys {
		k.v.load(l, k.name, c)
		if l.failed[k.name] {
			// The rules below judge the others against the default, not
			// against a fallback of the bad value.
			if def == nil {
				def = Default()
			}
			k.v.copy(c, def)
		}
	}
	for _, p := range c.problems() {
		if !l.anyFailed(p.keys...) {
			l.fail(p.Key, l.get(p.Key), p.Want)
		}
	}
	l.keyPair("receiver.tls.cert", "receiver.tls.key")
	l.caFile("receiver.tls.client_ca")
	l.caFile("sender.tls.ca")
	l.keyPair("sender.tls.cert", "sender.tls.key")
	l.distinctPorts(c)
	switch len(l.errs) {
	case 0:
	case 1:
		return nil, l.errs[0]
	default:
		return nil, Errors(l.errs)
	}
	if useEnv {
		c.warnings = l.envWarnings()
	}
	return c, nil
}
