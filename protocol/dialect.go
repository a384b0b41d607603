package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Layout is the value of protocol.layout: how fields sit in a message.
type Layout string

// The layouts.
const (
	LayoutDelimited Layout = "delimited" // fields joined by the separator
	LayoutFixed     Layout = "fixed"     // fields at fixed byte widths, right-padded with spaces
)

// SpecConfig is one message spec as configuration: the field names in
// order and the rule text of each (the syntax of ParseRule).
type SpecConfig struct {
	Names []string          // nil: the default (see DialectConfig)
	Rules map[string]string // by name
}

// DialectConfig is the dialect as configuration (docs/PROTOCOL.md §1, the
// keys under protocol.); conf fills it. The zero value of every field
// means its default, so the zero DialectConfig is the default dialect.
type DialectConfig struct {
	Charset      Charset      // "" or CharsetUTF8, CharsetEUCKR, CharsetCP949
	Layout       Layout       // "" or LayoutDelimited, LayoutFixed
	Separator    string       // delimited: one printable ASCII byte, not a letter, digit or space; "" means "|"
	Framing      Framing      // "" or FramingLF, FramingLength
	LengthFormat LengthFormat // framing length: "" or LengthASCII, LengthBinary
	LengthBytes  int          // framing length: ascii 1 to 8, binary 2 or 4; 0 means 4
	LengthCounts LengthCounts // framing length: "" or CountsRest, CountsAll

	// Request is what the receiver accepts; Names nil: the default request
	// spec (DefaultRequestNames, DefaultRequestRules). Result is what the
	// sender sends; Names nil: the request spec. Reply is the reply's;
	// Names nil: length,type,process_no,replied_at,code (without length
	// under framing length), and a listed reply field without a rule takes
	// its default (type const RES, replied_at time yyyyMMddHHmmss, code
	// digits 3, length 4) or else the rule of the request field of its
	// name.
	Request, Result, Reply SpecConfig

	// The values of the reply's code field for each outcome; "" means 200,
	// 400, 500.
	CodeOK, CodeInvalid, CodeUnavailable string

	// The echo (link-test) telegram: a request whose field EchoField holds
	// EchoValue. Both empty: none.
	EchoField, EchoValue string
}

// DialectError is a configuration that does not make a dialect. Key is
// the configuration key without its "protocol." prefix ("charset",
// "length.bytes", "request.field.type", "reply.fields", "reply.code.ok",
// "echo.field", …), Value the value as given, Want what is expected.
type DialectError struct {
	Key, Value, Want string
}

// Error returns "protocol.KEY = "VALUE": WANT".
func (e *DialectError) Error() string {
	return fmt.Sprintf("protocol.%s = %q: %s", e.Key, e.Value, e.Want)
}

// Dialect is the wire as one value, built once from configuration by
// NewDialect: the charset, layout and framing, the request, result and
// reply specs, the reply codes and the echo telegram. Everything that
// reads or writes the wire asks it. A Dialect is immutable and safe for
// concurrent use.
type Dialect struct {
	cfg                    DialectConfig // normalized: every default filled in
	w                      *wire
	request, result, reply *Spec
	codes                  [3][]byte   // wire values: ok, invalid, unavailable
	codeIdx                int         // the code field of the reply
	pnoIdx                 int         // the reply's process_no, or -1
	timeIdx                int         // the reply's first time field, or -1
	fills                  []replyFill // per reply field
	echoField              string      // the config's
}

// replyFill says how AppendReply fills one reply field.
type replyFill struct {
	kind byte   // fillLength, fillConst, fillTime, fillCode, fillEcho
	req  int    // fillEcho: the request field echoed
	zero []byte // fillEcho: the value when the request's does not fit
}

const (
	fillLength = iota + 1
	fillConst
	fillTime
	fillCode
	fillEcho
)

// The default reply fields (docs/PROTOCOL.md §2) and their rules.
var (
	defaultReplyNames = []string{"length", "type", "process_no", "replied_at", "code"}
	defaultReplyRules = map[string]string{
		"length":     "length 4",
		"type":       "const RES",
		"replied_at": "time yyyyMMddHHmmss",
		"code":       "digits 3",
	}
)

// DefaultReplyNames returns the reply's fields when protocol.reply.fields
// is empty: length,type,process_no,replied_at,code, without length under
// framing length.
func DefaultReplyNames(f Framing) []string {
	if f == FramingLength {
		return append([]string(nil), defaultReplyNames[1:]...)
	}
	return append([]string(nil), defaultReplyNames...)
}

// DefaultDialectConfig returns the default dialect's configuration with
// every value filled in: docs/PROTOCOL.md §1.
func DefaultDialectConfig() DialectConfig {
	var c DialectConfig
	c.fill()
	c.Request = SpecConfig{Names: append([]string(nil), DefaultRequestNames...), Rules: copyRules(DefaultRequestRules)}
	return c
}

func copyRules(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// fill puts the defaults into the zero values.
func (c *DialectConfig) fill() {
	set := func(p *string, def string) {
		if *p == "" {
			*p = def
		}
	}
	set((*string)(&c.Charset), string(CharsetUTF8))
	set((*string)(&c.Layout), string(LayoutDelimited))
	set(&c.Separator, "|")
	set((*string)(&c.Framing), string(FramingLF))
	set((*string)(&c.LengthFormat), string(LengthASCII))
	set((*string)(&c.LengthCounts), string(CountsRest))
	set(&c.CodeOK, "200")
	set(&c.CodeInvalid, "400")
	set(&c.CodeUnavailable, "500")
	if c.LengthBytes == 0 {
		c.LengthBytes = 4
	}
}

var defaultDialect = func() *Dialect {
	d, err := NewDialect(DialectConfig{})
	if err != nil {
		panic("protocol: default dialect: " + err.Error()) // a bug in this package, not input
	}
	return d
}()

// DefaultDialect returns the dialect of docs/PROTOCOL.md §1 (the zero
// DialectConfig). The returned dialect is shared and immutable.
func DefaultDialect() *Dialect { return defaultDialect }

// NewDialect builds a dialect from cfg. Every combination that cannot
// work is refused with a *DialectError naming the key: an unknown value;
// a separator that is not one printable ASCII byte other than a letter,
// digit or space; length.bytes outside 1 to 8 (ascii) or other than 2 or 4
// (binary); a spec that does not build (a rule, a length field under
// framing length or missing under framing lf, a zero width under layout
// fixed, a fixed message wider than the header can say); a reply without
// a code field or with a field it cannot fill; codes that do not fit the
// code field's rule or are not distinct; an echo field that is not a
// request field or an echo value that does not fit its rule.
func NewDialect(cfg DialectConfig) (*Dialect, error) {
	cfg.fill()
	d := &Dialect{cfg: cfg, pnoIdx: -1, timeIdx: -1}
	w, err := newWire(&cfg)
	if err != nil {
		return nil, err
	}
	d.w = w
	req := cfg.Request
	if req.Names == nil {
		req = SpecConfig{Names: DefaultRequestNames, Rules: DefaultRequestRules}
	}
	if d.request, err = specFor("request", req, w); err != nil {
		return nil, err
	}
	d.result = d.request
	if cfg.Result.Names != nil {
		if d.result, err = specFor("result", cfg.Result, w); err != nil {
			return nil, err
		}
	}
	if err := d.buildReply(); err != nil {
		return nil, err
	}
	if err := d.buildEcho(); err != nil {
		return nil, err
	}
	if w.length && w.fixed {
		for _, s := range []struct {
			key  string
			spec *Spec
		}{{"request.fields", d.request}, {"result.fields", d.result}, {"reply.fields", d.reply}} {
			if s.spec.width > w.maxBody() {
				return nil, &DialectError{Key: "length.bytes", Value: strconv.Itoa(w.hdrBytes),
					Want: fmt.Sprintf("a header that can say %d bytes (protocol.%s are that wide); %s %d bytes say at most %d",
						s.spec.width, s.key, cfg.LengthFormat, w.hdrBytes, w.maxBody())}
			}
		}
	}
	return d, nil
}

// newWire checks the scalar keys and builds what the specs share.
func newWire(c *DialectConfig) (*wire, error) {
	bad := func(key, value, want string) (*wire, error) {
		return nil, &DialectError{Key: key, Value: value, Want: want}
	}
	w := &wire{charset: c.Charset, hdrBytes: 4}
	switch c.Charset {
	case CharsetUTF8:
	case CharsetEUCKR, CharsetCP949:
		w.pairs, w.euc = cp949Pairs(), c.Charset == CharsetEUCKR
	default:
		return bad("charset", string(c.Charset), "one of utf-8, euc-kr, cp949")
	}
	switch c.Layout {
	case LayoutDelimited:
		s := c.Separator
		if len(s) != 1 || s[0] <= ' ' || s[0] >= 0x7f || isAlnum(s[0]) {
			return bad("separator", s, "one printable ASCII byte, not a letter, digit or space, e.g. |")
		}
		w.sep, w.textSep = s[0], s[0]
	case LayoutFixed:
		w.fixed = true
	default:
		return bad("layout", string(c.Layout), "one of delimited, fixed")
	}
	switch c.Framing {
	case FramingLF:
		return w, nil // length.* are not used
	case FramingLength:
		w.length = true
	default:
		return bad("framing", string(c.Framing), "one of lf, length")
	}
	switch c.LengthFormat {
	case LengthASCII:
		if c.LengthBytes < 1 || c.LengthBytes > 8 {
			return bad("length.bytes", strconv.Itoa(c.LengthBytes), "1 to 8 with protocol.length.format=ascii")
		}
	case LengthBinary:
		w.hdrBinary = true
		if c.LengthBytes != 2 && c.LengthBytes != 4 {
			return bad("length.bytes", strconv.Itoa(c.LengthBytes), "2 or 4 with protocol.length.format=binary")
		}
	default:
		return bad("length.format", string(c.LengthFormat), "one of ascii, binary")
	}
	w.hdrBytes = c.LengthBytes
	switch c.LengthCounts {
	case CountsRest:
	case CountsAll:
		w.countsAll = true
	default:
		return bad("length.counts", string(c.LengthCounts), "one of rest, all")
	}
	return w, nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// specFor builds the spec of dir (request, result, reply), turning a
// *RuleError into a *DialectError on its key.
func specFor(dir string, sc SpecConfig, w *wire) (*Spec, error) {
	s, err := buildSpec(sc.Names, sc.Rules, w)
	if err != nil {
		var re *RuleError
		if !errors.As(err, &re) {
			return nil, err
		}
		if re.Field == "" {
			return nil, &DialectError{Key: dir + ".fields", Value: strings.Join(sc.Names, ","), Want: re.Want}
		}
		return nil, &DialectError{Key: dir + ".field." + re.Field, Value: sc.Rules[re.Field], Want: re.Want}
	}
	return s, nil
}

// buildReply builds the reply spec, how each of its fields is filled, the
// codes, and the process_no the request and result specs echo.
func (d *Dialect) buildReply() error {
	cfg, w := &d.cfg, d.w
	names := cfg.Reply.Names
	if names == nil {
		names = defaultReplyNames
		if w.length {
			names = names[1:]
		}
	}
	rules := make(map[string]string, len(names))
	for _, n := range names {
		n = strings.TrimSpace(n)
		switch r, ok := cfg.Reply.Rules[n]; {
		case ok:
			rules[n] = r
		case defaultReplyRules[n] != "":
			rules[n] = defaultReplyRules[n]
		case n == "process_no" && d.request.processNo < 0:
			rules[n] = "digits 9"
		case d.request.Index(n) >= 0:
			rules[n] = d.request.fields[d.request.Index(n)].Rule.text
		default:
			return &DialectError{Key: "reply.field." + n, Want: "a rule for reply field " + n + " (it is no request field whose rule it could take), e.g. digits 4"}
		}
	}
	s, err := specFor("reply", SpecConfig{Names: names, Rules: rules}, w)
	if err != nil {
		return err
	}
	d.reply = s
	d.codeIdx = s.Index("code")
	if d.codeIdx < 0 {
		return &DialectError{Key: "reply.fields", Value: strings.Join(names, ","), Want: "a reply needs a field named code, which carries protocol.reply.code.*"}
	}
	d.fills = make([]replyFill, len(s.fields))
	for i := range s.fields {
		f := &s.fields[i]
		fl := &d.fills[i]
		switch {
		case f.Rule.Kind == KindLength:
			fl.kind = fillLength
		case i == d.codeIdx:
			fl.kind = fillCode
		case f.Rule.Kind == KindConst:
			fl.kind = fillConst
		case f.Rule.Kind == KindTime:
			fl.kind = fillTime
			if d.timeIdx < 0 {
				d.timeIdx = i
			}
		case d.request.Index(f.Name) >= 0 || f.Name == "process_no":
			// A request without process_no: replies carry the zero value.
			fl.kind, fl.req, fl.zero = fillEcho, d.request.Index(f.Name), zeroValue(&f.Rule)
		default:
			return &DialectError{Key: "reply.field." + f.Name, Value: rules[f.Name],
				Want: "a reply field is the length, the code, a const, a time, or named like a request field (whose value it echoes); " + f.Name + " is none of these"}
		}
	}
	codeRule := &s.fields[d.codeIdx].Rule
	for k, c := range []struct{ key, value string }{{"ok", cfg.CodeOK}, {"invalid", cfg.CodeInvalid}, {"unavailable", cfg.CodeUnavailable}} {
		b, err := w.charset.encode(c.value)
		if err == nil && !codeRule.valid(b, 0, w) {
			err = fmt.Errorf("the rule of reply field code is %s", codeRule.text)
		}
		if err != nil {
			return &DialectError{Key: "reply.code." + c.key, Value: c.value, Want: "a code that fits protocol.reply.field.code (" + err.Error() + ")"}
		}
		for j := range k {
			if bytes.Equal(b, d.codes[j]) {
				return &DialectError{Key: "reply.code." + c.key, Value: c.value, Want: "a code other than protocol.reply.code." + []string{"ok", "invalid"}[j] + " (the sender could not tell the outcomes apart)"}
			}
		}
		d.codes[k] = b
	}
	if i := s.Index("process_no"); i >= 0 && d.fills[i].kind == fillEcho {
		d.pnoIdx = i
		for _, spec := range []*Spec{d.request, d.result} {
			spec.pnoRule, spec.pnoZero = &s.fields[i].Rule, d.fills[i].zero
		}
	}
	return nil
}

// zeroValue is what a reply field that echoes a request field carries
// when the request's value does not fit (docs/PROTOCOL.md §2): N zeros for
// digits N; for class and text MIN bytes, '0' when the rule admits it,
// else the class's lowest byte.
func zeroValue(r *Rule) []byte {
	n, c := r.Min, byte('0')
	switch r.Kind {
	case KindDigits:
		n = r.Width
	case KindClass:
		if !r.set['0'] {
			for b := 0; b < 256; b++ {
				if r.set[b] {
					c = byte(b)
					break
				}
			}
		}
	case KindText:
	default:
		return nil
	}
	return bytes.Repeat([]byte{c}, n)
}

// buildEcho checks protocol.echo.* and marks the echo field in the request
// spec (and in the result spec, for the sender's heartbeat, when it has
// the field).
func (d *Dialect) buildEcho() error {
	field, value := strings.TrimSpace(d.cfg.EchoField), d.cfg.EchoValue
	switch {
	case field == "" && value == "":
		return nil
	case field == "":
		return &DialectError{Key: "echo.field", Want: "set with protocol.echo.value: the request field that marks the echo telegram"}
	case value == "":
		return &DialectError{Key: "echo.value", Want: "set with protocol.echo.field: the value of " + field + " that marks the echo telegram"}
	}
	i := d.request.Index(field)
	if i < 0 {
		return &DialectError{Key: "echo.field", Value: field, Want: "a field of the request spec (" + strings.Join(d.request.Names(), ",") + ")"}
	}
	f := &d.request.fields[i]
	v, err := d.w.charset.encode(value)
	if err == nil && (f.Rule.Kind == KindLength || !f.Rule.valid(v, 0, d.w)) {
		err = fmt.Errorf("the rule of %s is %s", field, f.Rule.text)
	}
	if err != nil {
		return &DialectError{Key: "echo.value", Value: value, Want: "a value of protocol.echo.field " + field + " (" + err.Error() + ")"}
	}
	d.echoField = field
	d.request.echo, d.request.echoValue = i, v
	if j := d.result.Index(field); j >= 0 {
		d.result.echo, d.result.echoValue = j, v
	}
	return nil
}

// Config returns the configuration the dialect was built from, with every
// default filled in.
func (d *Dialect) Config() DialectConfig { return d.cfg }

// Request returns the request spec: what the receiver accepts.
func (d *Dialect) Request() *Spec { return d.request }

// Result returns the result spec: what the sender sends (the request spec
// unless configured).
func (d *Dialect) Result() *Spec { return d.result }

// Reply returns the reply spec.
func (d *Dialect) Reply() *Spec { return d.reply }

// Charset returns the wire's charset.
func (d *Dialect) Charset() Charset { return d.w.charset }

// Framing returns the framing.
func (d *Dialect) Framing() Framing { return d.cfg.Framing }

// Text returns b, bytes of the wire, decoded to UTF-8 for people (logs,
// the console, reasons): see Charset.Decode.
func (d *Dialect) Text(b []byte) string { return d.w.charset.Decode(b) }

// FromUTF8 returns text, UTF-8 as people type it (a config value, the
// arguments of spoolgate send), in the wire charset. It fails when a
// character has no code in the charset.
func (d *Dialect) FromUTF8(text string) ([]byte, error) { return d.w.charset.encode(text) }

// String returns the dialect in one line, for `spoolgate check` and the
// start-up log, e.g.
//
//	utf-8, delimited by "|", framing lf; request 9 fields, result the request's; reply length,type,process_no,replied_at,code; codes ok 200, invalid 400, unavailable 500; no echo
func (d *Dialect) String() string {
	c, w := &d.cfg, d.w
	var b strings.Builder
	b.WriteString(string(c.Charset))
	if w.fixed {
		fmt.Fprintf(&b, ", fixed width (request %d bytes", d.request.width)
		if d.result != d.request {
			fmt.Fprintf(&b, ", result %d", d.result.width)
		}
		fmt.Fprintf(&b, ", reply %d)", d.reply.width)
	} else {
		fmt.Fprintf(&b, ", delimited by %q", c.Separator)
	}
	if w.length {
		fmt.Fprintf(&b, ", framing length (%d %s bytes counting %s)", w.hdrBytes, c.LengthFormat, map[bool]string{false: "the rest", true: "the header too"}[w.countsAll])
	} else {
		b.WriteString(", framing lf")
	}
	fmt.Fprintf(&b, "; request %d fields", len(d.request.fields))
	if d.result == d.request {
		b.WriteString(", result the request's")
	} else {
		fmt.Fprintf(&b, ", result %d fields", len(d.result.fields))
	}
	fmt.Fprintf(&b, "; reply %s; codes ok %s, invalid %s, unavailable %s; ", strings.Join(d.reply.Names(), ","), c.CodeOK, c.CodeInvalid, c.CodeUnavailable)
	if d.echoField == "" {
		b.WriteString("no echo")
	} else {
		fmt.Fprintf(&b, "echo %s=%s", d.echoField, c.EchoValue)
	}
	return b.String()
}

// NewReader returns the framing reader of the dialect over br: the lf
// Reader, or a LengthReader. max is the longest message: under framing lf
// with its LF, under framing length without its header
// (receiver.max_message_bytes).
func (d *Dialect) NewReader(br *bufio.Reader, max int) MessageReader {
	if d.w.length {
		return &LengthReader{br: br, w: d.w, max: max}
	}
	return NewReader(br, max)
}

// Parse validates msg, a request without its framing, against the request
// spec (Spec.Parse).
func (d *Dialect) Parse(msg []byte) (Message, error) { return d.request.Parse(msg) }

// ProcessNo returns the process_no a reply to raw, a request without its
// framing that may be invalid, carries (Spec.ProcessNo of the request
// spec); nil when replies carry none.
func (d *Dialect) ProcessNo(raw []byte) []byte { return d.request.ProcessNo(raw) }

// ResultProcessNo returns the process_no the reply to msg, a result
// message without its framing (Unframe), must echo: Spec.ProcessNo of the
// result spec; nil when replies carry none.
func (d *Dialect) ResultProcessNo(msg []byte) []byte { return d.result.ProcessNo(msg) }

// CompleteFields returns the part of start, the beginning of a message cut
// short (too long, or a fault of its header), whose fields are whole: in
// the delimited layout up to and including its last separator, in the
// fixed layout all of it (a field is read only when it is whole).
// AppendReply and ProcessNo take the result as raw.
func (d *Dialect) CompleteFields(start []byte) []byte {
	if d.w.fixed {
		return start
	}
	return start[:bytes.LastIndexByte(start, d.w.sep)+1]
}

// KeyIndexes returns the request spec's indexes of names
// (receiver.dedup_key), for Message.AppendKey and Spec.AppendRawKey. The
// error names the first name that is not a request field.
func (d *Dialect) KeyIndexes(names []string) ([]int, error) {
	idx := make([]int, len(names))
	for i, n := range names {
		if idx[i] = d.request.Index(n); idx[i] < 0 {
			return nil, fmt.Errorf("%s is not a field of the request spec (%s)", n, strings.Join(d.request.Names(), ","))
		}
	}
	return idx, nil
}

// IsEcho reports whether raw, a request without its framing (valid or
// not), is the echo telegram: its protocol.echo.field, taken by position,
// holds protocol.echo.value. It allocates nothing.
func (d *Dialect) IsEcho(raw []byte) bool { return d.request.isEcho(raw) }

func (s *Spec) isEcho(raw []byte) bool {
	if s.echo < 0 {
		return false
	}
	v, ok := s.rawField(raw, s.echo)
	return ok && bytes.Equal(v, s.echoValue)
}

// Frame appends msg, a message without its framing (as Message.Line or
// Unframe gives it), framed for the wire: with its LF (framing lf) or
// after its header (framing length). It does not validate msg; it fails
// with ErrTooLong when msg is longer than the framing allows.
func (d *Dialect) Frame(dst, msg []byte) ([]byte, error) { return d.w.frame(dst, msg) }

// Unframe returns the message of frame, one message framed for the wire
// (what Frame, AppendResult and AppendEcho append): without its LF or its
// header.
func (d *Dialect) Unframe(frame []byte) []byte { return d.w.unframe(frame) }

// AppendResult appends the wire bytes of line, one line of a spool file
// (a message without its length field or header, docs/PROTOCOL.md §5):
// under framing lf the length field first and the LF last, under framing
// length the header first; validated against the result spec. Under
// framing lf a line that already starts with a correct length field (as
// request files hold messages) and is valid so goes as it is. The error is
// a *ParseError, or wraps ErrTooLong or one of them with what the line
// looked like; dst is then returned unchanged.
func (d *Dialect) AppendResult(dst, line []byte) ([]byte, error) {
	s, w := d.result, d.w
	if w.length {
		if _, err := s.Parse(line); err != nil {
			return dst, err
		}
		return w.frame(dst, line)
	}
	msg, err := s.appendWithLength(dst, line)
	if err == nil {
		if _, err = s.Parse(msg[len(dst):]); err == nil {
			return append(msg, '\n'), nil
		}
	}
	dst = dst[:len(dst):len(dst)] // the attempt above is not dst's
	n, ok := s.lengthField(line)
	if !ok {
		return dst, err
	}
	if n != len(line)+1 {
		return dst, fmt.Errorf("the line starts with %q, a length field that does not match its %d bytes with LF: "+
			"a spool file holds one message per line without the length field (the sender adds it), "+
			"or with the correct one (as a line without it: %w)", line[:4], len(line)+1, err)
	}
	if _, err := s.Parse(line); err != nil {
		return dst, fmt.Errorf("%w (the line carries its length field; checked as it is)", err)
	}
	return append(append(dst, line...), '\n'), nil
}

// AppendResultKey is AppendRawKey for line, a spool line as
// AppendResult takes it, not validated: the fields of the result spec at
// idx, by position, each after the first preceded by sep. Under framing lf
// a line without its length field has the spec's fields after the first
// (the length field, which it has not: asking for it gives ok false); a
// line that starts with its correct length field is read as it is. ok is
// false when the line lacks a field. It allocates nothing when dst has
// room (the sender's journal keys each line it ends).
func (d *Dialect) AppendResultKey(dst, line []byte, idx []int, sep byte) (out []byte, ok bool) {
	s := d.result
	skip := 1 // the length field (4 digits, and the separator when delimited)
	if d.w.length {
		skip = 0
	} else if n, ok := s.lengthField(line); ok && n == len(line)+1 {
		skip = 0
	}
	return s.appendKeyAt(dst, line, idx, sep, skip)
}

// lengthField returns the value of a leading length field of line: 4
// digits and the separator (delimited), or 4 digits in a line as wide as
// a message with its length field (fixed). Framing lf only.
func (s *Spec) lengthField(line []byte) (int, bool) {
	if len(line) < 5 || (!s.w.fixed && line[4] != s.w.sep) || (s.w.fixed && len(line) != s.width) {
		return 0, false
	}
	if !allDigits(line[:4], 4) {
		return 0, false
	}
	return atoi(line[:4]), true
}

// Heartbeat returns the wire bytes of the sender's heartbeat: text, the
// echo telegram as a spool line in the config's UTF-8
// (sender.heartbeat.message), converted to the charset and framed by
// AppendEcho.
func (d *Dialect) Heartbeat(text string) ([]byte, error) {
	line, err := d.FromUTF8(text)
	if err != nil {
		return nil, err
	}
	return d.AppendEcho(nil, line)
}

// AppendEcho appends the wire bytes of line, the echo telegram in the
// spool format, framed as AppendResult frames a line but without checking
// the result spec beyond the echo field: an echo telegram need not be a
// valid message, only one the partner recognizes. In the fixed layout a
// line narrower than the result spec is padded with spaces to its width
// (a config value cannot end in spaces). It fails when the line holds CR
// or LF, is too long, or its echo field (by position in the result spec)
// does not hold protocol.echo.value.
func (d *Dialect) AppendEcho(dst, line []byte) ([]byte, error) {
	s, w := d.result, d.w
	if s.echo < 0 {
		return dst, fmt.Errorf("no echo telegram: protocol.echo.field is not set or not a field of the result spec")
	}
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		return dst, fmt.Errorf("the echo telegram holds a CR or LF at byte %d", i)
	}
	if w.fixed {
		if pad := s.width - w.lf()*4 - len(line); pad > 0 {
			line = append(slices.Clone(line), bytes.Repeat([]byte{' '}, pad)...)
		}
	}
	msg := line
	start := len(dst)
	if !w.length {
		var err error
		if dst, err = s.appendWithLength(dst, line); err != nil {
			return dst[:start], err
		}
		msg = dst[start:]
	}
	if v, ok := s.rawField(msg, s.echo); !ok || !bytes.Equal(v, s.echoValue) {
		return dst[:start], fmt.Errorf("not the echo telegram: its field %s is %q, protocol.echo.value is %q",
			s.fields[s.echo].Name, w.charset.Decode(v), w.charset.Decode(s.echoValue))
	}
	if !w.length {
		return append(dst, '\n'), nil
	}
	return w.frame(dst, line)
}

// AppendReply appends the reply to raw, a request without its framing
// (valid or not; for a message cut short, CompleteFields of its start),
// built from the reply spec and framed for the wire: the length field and
// LF under framing lf, the header under framing length. A reply field
// named like a request field echoes it (taken by position, padding
// removed) when its value fits the reply field's rule, else the rule's
// zero value; the code field carries the value of code (CodeOK,
// CodeInvalid, anything else CodeUnavailable); a time field is at, in
// local time as the caller passes it; a const its text. In the fixed
// layout each value is right-padded with spaces to its width. The default
// dialect's reply is docs/PROTOCOL.md §2's, byte for byte. It allocates
// nothing when dst has room.
func (d *Dialect) AppendReply(dst, raw []byte, code int, at time.Time) []byte {
	w, s := d.w, d.reply
	start := len(dst)
	if w.length {
		var hdr [8]byte
		dst = append(dst, hdr[:w.hdrBytes]...) // the header, filled in below
	}
	k := 2
	switch code {
	case CodeOK:
		k = 0
	case CodeInvalid:
		k = 1
	}
	lengthAt := -1
	for i := range s.fields {
		f, fl := &s.fields[i], &d.fills[i]
		if i > 0 && !w.fixed {
			dst = append(dst, w.sep)
		}
		vs := len(dst)
		switch fl.kind {
		case fillLength:
			lengthAt = len(dst)
			dst = append(dst, "0000"...)
		case fillConst:
			dst = append(dst, f.Rule.cw...)
		case fillTime:
			dst = appendTime(dst, at, f.Rule.tokens)
		case fillCode:
			dst = append(dst, d.codes[k]...)
		case fillEcho:
			if v, ok := d.request.rawField(raw, fl.req); ok && f.Rule.valid(v, 0, w) {
				dst = append(dst, v...)
			} else {
				dst = append(dst, fl.zero...)
			}
		}
		if w.fixed {
			for n := len(dst) - vs; n < f.width; n++ {
				dst = append(dst, ' ')
			}
		}
	}
	if w.length {
		n := uint64(len(dst) - start - w.hdrBytes)
		if w.countsAll {
			n += uint64(w.hdrBytes)
		}
		for i := start + w.hdrBytes - 1; i >= start; i-- {
			if w.hdrBinary {
				dst[i], n = byte(n), n>>8
			} else {
				dst[i], n = byte('0'+n%10), n/10
			}
		}
		return dst
	}
	dst = append(dst, '\n')
	if lengthAt >= 0 {
		n := len(dst) - start
		dst[lengthAt], dst[lengthAt+1], dst[lengthAt+2], dst[lengthAt+3] = byte('0'+n/1000%10), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10)
	}
	return dst
}

// ParseReply parses msg, a reply without its framing (under framing lf a
// trailing LF is ignored), against the reply spec, and maps its code back:
// Code is CodeOK, CodeInvalid or CodeUnavailable, or 0 when the code is
// none of protocol.reply.code.* (CodeText then holds it). ProcessNo is the
// reply's process_no ("" when the reply spec has none: compare it with
// string(ResultProcessNo(msg)), which is then empty too), At its first
// time field when that has a date. It allocates only the ProcessNo string
// on success. The error wraps the *ParseError.
func (d *Dialect) ParseReply(msg []byte) (Reply, error) {
	if !d.w.length {
		msg = bytes.TrimSuffix(msg, []byte{'\n'})
	}
	m, err := d.reply.Parse(msg)
	if err != nil {
		return Reply{}, fmt.Errorf("parse reply %s: %w", strconv.Quote(d.Text(msg)), err)
	}
	var r Reply
	switch code := m.FieldAt(d.codeIdx); {
	case bytes.Equal(code, d.codes[0]):
		r.Code = CodeOK
	case bytes.Equal(code, d.codes[1]):
		r.Code = CodeInvalid
	case bytes.Equal(code, d.codes[2]):
		r.Code = CodeUnavailable
	default:
		r.CodeText = d.Text(code)
	}
	if d.pnoIdx >= 0 {
		r.ProcessNo = string(m.FieldAt(d.pnoIdx))
	}
	if d.timeIdx >= 0 {
		r.At, _ = timeOf(m.FieldAt(d.timeIdx), d.reply.fields[d.timeIdx].Rule.tokens)
	}
	return r, nil
}

// SampleValues returns values that make a valid message of the spec with
// Encode, one per field after the length field (framing lf) or per field:
// seq in every digits field (its last digits) and in class fields of
// digits, at in every time field, each const, and class and text fields of
// their least length (at least 1) of a byte they admit. For tests, `spoolgate
// bench` and examples; a caller replaces the values it cares about.
func (s *Spec) SampleValues(seq int, at time.Time) []string {
	var out []string
	for i := range s.fields {
		r := &s.fields[i].Rule
		switch r.Kind {
		case KindLength:
			continue
		case KindDigits:
			out = append(out, string(appendInt(nil, seq, r.Width)))
		case KindConst:
			out = append(out, r.cw)
		case KindTime:
			out = append(out, string(appendTime(nil, at, r.tokens)))
		case KindClass:
			n := max(r.Min, min(1, r.Max))
			if digitsClass(&r.set) {
				out = append(out, string(appendInt(nil, seq, n)))
			} else {
				out = append(out, strings.Repeat(string(zeroValue(&Rule{Kind: KindClass, Min: 1, set: r.set})), n))
			}
		case KindText:
			out = append(out, strings.Repeat("x", max(r.Min, min(1, r.Max))))
		}
	}
	return out
}

func digitsClass(set *[256]bool) bool {
	for c := '0'; c <= '9'; c++ {
		if !set[c] {
			return false
		}
	}
	return true
}
