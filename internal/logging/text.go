package logging

import (
	"context"
	"encoding"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// TextHandler is a slog.Handler writing the text format of the README runbook's "Logs" (log.format = text), the one
// of Python's logging.Formatter
// "%(asctime)s - %(levelname)s - [%(filename)s:%(lineno)d] %(message)s":
//
//	2026-11-21 09:30:00,123 - INFO - [server.go:87] message key=value key2="two words"
//
// The time is the record's (local) time with milliseconds, the level is
// DEBUG, INFO, WARNING or ERROR as Python names them, the source is the
// base name and line of the caller. Attributes follow the message as
// key=value in slog's text style (values quoted when they hold spaces, '=',
// '"' or non-printable characters; groups as dotted keys). CR and LF in the
// message are escaped so that a record is always one line. Each record is
// one Write. A TextHandler is safe for concurrent use; Enabled costs one
// atomic load, so disabled debug lines cost nothing.
type TextHandler struct {
	out    *textOutput
	level  slog.Leveler
	pre    []byte // attributes from WithAttrs, formatted
	prefix string // group prefix from WithGroup, "a.b."
}

// textOutput is shared by a handler and those derived from it.
type textOutput struct {
	mu sync.Mutex
	w  io.Writer

	srcMu sync.RWMutex
	src   map[uintptr]string // PC -> "file.go:42"
}

// NewTextHandler returns a TextHandler writing to w the records at level
// or above (slog.LevelInfo when level is nil; pass a *slog.LevelVar to
// change it live).
func NewTextHandler(w io.Writer, level slog.Leveler) *TextHandler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &TextHandler{out: &textOutput{w: w, src: map[uintptr]string{}}, level: level}
}

// Enabled reports whether level is at or above the handler's level.
func (h *TextHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// timeLayout is Python's asctime: local time, milliseconds after a comma.
const timeLayout = "2006-01-02 15:04:05,000"

// Handle formats r as one line and writes it. It returns the writer's error.
func (h *TextHandler) Handle(_ context.Context, r slog.Record) error {
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	buf = t.AppendFormat(buf, timeLayout)
	buf = append(buf, " - "...)
	buf = append(buf, levelName(r.Level)...)
	buf = append(buf, " - ["...)
	buf = append(buf, h.out.source(r.PC)...)
	buf = append(buf, "] "...)
	buf = appendMessage(buf, r.Message)
	buf = append(buf, h.pre...)
	if r.NumAttrs() > 0 {
		s := attrState{buf: buf, prefix: h.prefix}
		r.Attrs(s.add)
		buf = s.buf
	}
	buf = append(buf, '\n')
	h.out.mu.Lock()
	_, err := h.out.w.Write(buf)
	h.out.mu.Unlock()
	if cap(buf) <= 64<<10 { // do not keep huge buffers around
		*bp = buf
		bufPool.Put(bp)
	}
	return err
}

// attrState lets Record.Attrs append without a closure per record.
type attrState struct {
	buf    []byte
	prefix string
}

func (s *attrState) add(a slog.Attr) bool {
	s.buf = appendAttr(s.buf, s.prefix, a)
	return true
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *TextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.pre = append([]byte(nil), h.pre...)
	for _, a := range attrs {
		h2.pre = appendAttr(h2.pre, h.prefix, a)
	}
	return &h2
}

// WithGroup returns a handler that qualifies later attribute keys with name.
func (h *TextHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

func levelName(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "DEBUG"
	case slog.LevelInfo:
		return "INFO"
	case slog.LevelWarn:
		return "WARNING"
	case slog.LevelError:
		return "ERROR"
	}
	return l.String() // e.g. INFO+2
}

// source returns "file.go:42" for a PC, cached: a daemon has few call sites.
func (o *textOutput) source(pc uintptr) string {
	if pc == 0 {
		return "?:0"
	}
	o.srcMu.RLock()
	s, ok := o.src[pc]
	o.srcMu.RUnlock()
	if ok {
		return s
	}
	f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	s = filepath.Base(f.File) + ":" + strconv.Itoa(f.Line)
	o.srcMu.Lock()
	o.src[pc] = s
	o.srcMu.Unlock()
	return s
}

// appendMessage appends msg, escaping CR and LF.
func appendMessage(buf []byte, msg string) []byte {
	for i := 0; i < len(msg); i++ {
		switch c := msg[i]; c {
		case '\n':
			buf = append(buf, `\n`...)
		case '\r':
			buf = append(buf, `\r`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

func appendAttr(buf []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, g := range a.Value.Group() {
			buf = appendAttr(buf, p, g)
		}
		return buf
	}
	buf = append(buf, ' ')
	if (prefix != "" && needsQuoting(prefix)) || needsQuoting(a.Key) {
		buf = strconv.AppendQuote(buf, prefix+a.Key)
	} else {
		buf = append(buf, prefix...)
		buf = append(buf, a.Key...)
	}
	buf = append(buf, '=')
	return appendValue(buf, a.Value)
}

func appendValue(buf []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendString(buf, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(buf, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(buf, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(buf, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(buf, v.Bool())
	case slog.KindDuration:
		return append(buf, v.Duration().String()...)
	case slog.KindTime:
		return v.Time().AppendFormat(buf, "2006-01-02T15:04:05.000Z07:00")
	}
	switch x := v.Any().(type) {
	case nil:
		return append(buf, "<nil>"...)
	case error:
		return appendString(buf, x.Error())
	case encoding.TextMarshaler:
		b, err := x.MarshalText()
		if err != nil {
			return appendString(buf, "!ERROR:"+err.Error())
		}
		return appendString(buf, string(b))
	case []byte:
		return appendString(buf, string(x))
	default:
		return appendString(buf, fmt.Sprintf("%+v", x))
	}
}

func appendString(buf []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

// needsQuoting reports whether s must be quoted to stay one unambiguous
// key=value token, as slog's TextHandler decides.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b <= ' ' || b == '=' || b == '"' || b == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
