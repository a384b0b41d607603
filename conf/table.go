package conf

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"spoolgate/protocol"
)

// This file holds what the table in keys.go is made of: a key, which
// daemon applies it live, and the value kinds (decode from text, check the
// typed value, render it for LiveDiff). A kind's bounds are written once,
// in its table entry, and used both by the loader and by Validate.

// Publish is the value of receiver.publish: how request files become
// visible to the downstream workflow.
type Publish string

// Fsync is the value of receiver.fsync.
type Fsync string

// The values of receiver.publish and receiver.fsync. The receiver's own
// names for them (receiver.PublishRename, …) are the same constants.
const (
	PublishRename Publish = "rename"
	PublishAppend Publish = "append"
	FsyncAlways   Fsync   = "always"
	FsyncNever    Fsync   = "never"
)

// Sink is the value of receiver.sink: where accepted messages are stored.
type Sink string

// Source is the value of sender.source: where the lines to send come from.
type Source string

// Window is the value of sender.window: lines of one file in flight on a
// connection, 1 to MaxWindow, or WindowAuto.
type Window int

// WindowAuto is sender.window = auto: the sender sizes the window itself,
// per remote.
const WindowAuto Window = 0

// String is the window as written in the file.
func (w Window) String() string {
	if w == WindowAuto {
		return "auto"
	}
	return strconv.Itoa(int(w))
}

// windowV is sender.window: auto, or an integer from 1 to MaxWindow.
func windowV(at func(*Config) *Window) value {
	want := fmt.Sprintf("auto, or an integer from 1 to %d", MaxWindow)
	return field[Window]{at: at,
		parse: func(l *loader, k string, _ *Config) Window {
			s := l.get(k)
			if strings.EqualFold(s, "auto") {
				return WindowAuto
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > MaxWindow {
				l.fail(k, s, want)
				return 1
			}
			return Window(n)
		},
		valid: func(w Window) string {
			if w < WindowAuto || w > MaxWindow {
				return want
			}
			return ""
		}}
}

// LineOrder is the value of sender.line_order: whether the lines of one
// file may complete out of order over several connections.
type LineOrder string

// The values of sender.line_order.
const (
	LineOrderParallel LineOrder = "parallel" // a file's lines over up to sender.workers connections, one line on each
	LineOrderStrict   LineOrder = "strict"   // one connection per file, each line after the previous one's reply
)

// QueueType is the value of receiver.amqp.queue_type and
// sender.amqp.queue_type: the x-queue-type a queue is declared with.
type QueueType string

// The values of receiver.sink, sender.source and the queue types.
const (
	SinkFiles    Sink      = "files"
	SinkAMQP     Sink      = "amqp"
	SourceSpool  Source    = "spool"
	SourceAMQP   Source    = "amqp"
	QueueQuorum  QueueType = "quorum"
	QueueClassic QueueType = "classic"
)

// live says which daemons apply a key on reload without a restart.
type live uint8

const (
	restart      live = 0
	liveReceiver live = 1 << iota
	liveSender
)

// key is one entry of the table.
type key struct {
	name string
	def  string // as written in the file
	live live
	v    value
	doc  string // the comment above the key in conf.properties; "" for a longer block
}

// value is how a key's value is decoded into a Config, checked once typed,
// and rendered as canonical text.
type value interface {
	load(l *loader, key string, c *Config)
	// check returns what is expected when the typed value is out of its
	// bounds, or "".
	check(c *Config) (got, want string)
	text(c *Config) string
	// copy sets the value in dst to the one in src.
	copy(dst, src *Config)
}

// secretV marks a value that is a secret (admin.token, the AMQP URLs,
// which hold passwords): an error never shows it.
type secretV struct{ value }

// secretKeys are the keys whose table entry is a secretV. It is filled by
// init: the table's decoders use it, so a variable initialised from the
// table would be a cycle.
var secretKeys = map[string]bool{}

func init() {
	for _, k := range keys {
		if _, ok := k.v.(secretV); ok {
			secretKeys[k.name] = true
		}
	}
}

// isSecret reports whether key holds a secret.
func isSecret(key string) bool { return secretKeys[key] }

// field is a value of type T at a place in Config.
type field[T any] struct {
	at    func(*Config) *T
	parse func(l *loader, key string, c *Config) T
	valid func(T) string // nil: every decoded value is valid
}

func (f field[T]) load(l *loader, key string, c *Config) { *f.at(c) = f.parse(l, key, c) }

func (f field[T]) check(c *Config) (string, string) {
	if f.valid == nil {
		return "", ""
	}
	v := *f.at(c)
	return textOf(v), f.valid(v)
}

func (f field[T]) text(c *Config) string { return textOf(*f.at(c)) }

func (f field[T]) copy(dst, src *Config) { *f.at(dst) = *f.at(src) }

// textOf renders a typed value as canonical text.
func textOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	case time.Duration:
		return v.String()
	case []string:
		return strings.Join(v, ",")
	case []netip.Prefix:
		return prefixList(v)
	case *protocol.Spec:
		return specText(v)
	}
	return fmt.Sprint(v)
}

// fieldOf is a value with its own decoder (which may read keys decoded
// before it) and no bounds of its own.
func fieldOf[T any](at func(*Config) *T, parse func(l *loader, key string, c *Config) T) value {
	return field[T]{at: at, parse: parse}
}

func intV(at func(*Config) *int, lo, hi int) value {
	return field[int]{at: at,
		parse: func(l *loader, k string, _ *Config) int { return l.integer(k, lo, hi) },
		valid: func(n int) string {
			if n < lo || (hi >= 0 && n > hi) {
				return intWant(lo, hi)
			}
			return ""
		}}
}

func intWant(lo, hi int) string {
	if hi >= 0 {
		return fmt.Sprintf("an integer from %d to %d", lo, hi)
	}
	return fmt.Sprintf("an integer >= %d", lo)
}

// durV is a duration with a unit; positive requires > 0, else >= 0.
func durV(at func(*Config) *time.Duration, positive bool) value {
	return field[time.Duration]{at: at,
		parse: func(l *loader, k string, _ *Config) time.Duration { return l.duration(k, positive) },
		valid: func(d time.Duration) string { return durationWant(d, positive) }}
}

func durationWant(d time.Duration, positive bool) string {
	switch {
	case positive && d <= 0:
		return "a duration > 0, e.g. 5s"
	case d < 0:
		return "a duration >= 0, e.g. 5s"
	}
	return ""
}

func boolV(at func(*Config) *bool) value {
	return field[bool]{at: at, parse: func(l *loader, k string, _ *Config) bool { return l.boolean(k) }}
}

// onOffV is a bool written as off or on.
func onOffV(at func(*Config) *bool) value {
	return field[bool]{at: at, parse: func(l *loader, k string, _ *Config) bool { return l.oneOf(k, "off", "on") == "on" }}
}

// dirV is a cleaned directory path; a required one may not be empty.
func dirV(at func(*Config) *string, required bool) value {
	return field[string]{at: at,
		parse: func(l *loader, k string, _ *Config) string { return l.dir(k, required) },
		valid: func(s string) string {
			if required && s == "" {
				return "a directory path"
			}
			return ""
		}}
}

// listenV is a listen address; an optional one may be empty (off).
func listenV(at func(*Config) *string, optional bool) value {
	return field[string]{at: at, parse: func(l *loader, k string, _ *Config) string { return l.listen(k, optional) }}
}

// fileV is the path of a file that must be readable when set.
func fileV(at func(*Config) *string) value {
	return field[string]{at: at, parse: func(l *loader, k string, _ *Config) string { return l.readable(k) }}
}

func strV(at func(*Config) *string) value {
	return field[string]{at: at, parse: func(l *loader, k string, _ *Config) string { return l.str(k) }}
}

// listV is a comma-separated list.
func listV(at func(*Config) *[]string) value {
	return field[[]string]{at: at, parse: func(l *loader, k string, _ *Config) []string { return list(l.get(k)) }}
}

// amqpV is a comma-separated list of amqp:// or amqps:// URLs (the nodes
// of a cluster); a bad one is reported with its password hidden.
func amqpV(at func(*Config) *[]string) value {
	return secretV{field[[]string]{at: at, parse: func(l *loader, k string, _ *Config) []string { return l.amqpURLs(k) }}}
}

// queueV is an AMQP queue name: 1 to 255 bytes, no control characters.
func queueV(at func(*Config) *string) value {
	return field[string]{at: at,
		parse: func(l *loader, k string, _ *Config) string { return l.str(k) },
		valid: func(s string) string {
			if s == "" || len(s) > 255 || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				return "a queue name of 1 to 255 bytes without control characters"
			}
			return ""
		}}
}

// cidrV is a comma-separated list of CIDRs (a bare address is one host).
func cidrV(at func(*Config) *[]netip.Prefix) value {
	return field[[]netip.Prefix]{at: at, parse: func(l *loader, k string, _ *Config) []netip.Prefix { return l.prefixes(k) }}
}

// enumV is one of allowed, case-insensitive; the first is the fallback
// after an error.
func enumV[T ~string](at func(*Config) *T, allowed ...T) value {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return field[T]{at: at,
		parse: func(l *loader, k string, _ *Config) T { return T(l.oneOf(k, names...)) },
		valid: func(v T) string {
			if slices.Contains(allowed, v) {
				return ""
			}
			return "one of " + strings.Join(names, ", ")
		}}
}

// specV is a message spec; loader.protocol builds both before the table
// is read, since receiver.dedup_key refers to the request spec.
func specV(at func(*Config) **protocol.Spec) value {
	return field[*protocol.Spec]{at: at, parse: func(_ *loader, _ string, c *Config) *protocol.Spec { return *at(c) }}
}

// lookup returns the table entry of name.
func lookup(name string) (key, bool) {
	for _, k := range keys {
		if k.name == name {
			return k, true
		}
	}
	return key{}, false
}
