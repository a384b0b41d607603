// Package ratelog reports events that can come in floods (refused
// connections) without a log line each: per cause, the first event of an
// interval is logged at once, the rest are counted and reported in one
// line with their count and a sample address when the interval ends.
package ratelog

import (
	"log/slog"
	"sync"
	"time"
)

// DefaultEvery is the interval of a Logger made with Every 0.
const DefaultEvery = time.Minute

// Logger rate-limits warn lines per cause. Its methods are safe for
// concurrent use. The zero value is not usable; use New.
type Logger struct {
	log   *slog.Logger
	every time.Duration

	mu     sync.Mutex
	causes map[string]*cause
	closed bool
}

type cause struct {
	msg    string
	until  time.Time // end of the interval that began with a logged line
	count  int       // events since that line, not yet reported
	sample string    // the address of the last one
	attrs  []any     // and its attributes
	timer  *time.Timer
}

// New returns a Logger writing to log every interval per cause (0:
// DefaultEvery).
func New(log *slog.Logger, every time.Duration) *Logger {
	if every <= 0 {
		every = DefaultEvery
	}
	return &Logger{log: log, every: every, causes: make(map[string]*cause)}
}

// Warn records one event of cause name (a short stable word, e.g. "per_ip")
// with message msg from address addr. The first event of an interval is
// logged at once with attrs; the next ones are counted and logged as one
// line at the interval's end: msg, cause, count, the address of the last
// one as sample, and its attrs.
func (l *Logger) Warn(name, msg, addr string, attrs ...any) {
	now := time.Now()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	c := l.causes[name]
	if c == nil {
		c = &cause{}
		l.causes[name] = c
	}
	c.msg = msg
	if now.After(c.until) && c.count == 0 {
		c.until = now.Add(l.every)
		l.mu.Unlock()
		l.log.Warn(msg, append([]any{"cause", name, "remote", addr}, attrs...)...)
		return
	}
	c.count++
	c.sample, c.attrs = addr, attrs
	if c.timer == nil {
		c.timer = time.AfterFunc(time.Until(c.until), func() { l.flush(name) })
	}
	l.mu.Unlock()
}

// flush logs the count of cause, if any, and starts a new interval when
// there was one.
func (l *Logger) flush(name string) {
	l.mu.Lock()
	c := l.causes[name]
	c.timer = nil
	n, sample, msg, attrs := c.count, c.sample, c.msg, c.attrs
	c.count = 0
	if n > 0 {
		// The summary line is this interval's one line: the next event
		// waits for the interval after it.
		c.until = time.Now().Add(l.every)
	}
	l.mu.Unlock()
	if n > 0 {
		l.log.Warn(msg+" (rate-limited)", append([]any{"cause", name, "count", n, "sample", sample, "interval", l.every}, attrs...)...)
	}
}

// Close reports the counts not yet logged and stops the timers; later
// events are dropped.
func (l *Logger) Close() {
	l.mu.Lock()
	l.closed = true
	var names []string
	for name, c := range l.causes {
		if c.timer != nil {
			c.timer.Stop()
		}
		if c.count > 0 {
			names = append(names, name)
		}
	}
	l.mu.Unlock()
	for _, name := range names {
		l.flush(name)
	}
}
