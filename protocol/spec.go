// Package protocol is the wire of spoolgate: the dialect (charset, layout,
// framing), the message specs as data (fields and their rules), parsing
// and validation with typed reasons, encoding, replies, echo, and the
// framing readers. A Dialect is built once from configuration
// (NewDialect) and everything else asks it; NewSpec, ParseRule,
// DefaultRequestSpec and NewReader (the framing lf reader) speak the
// default dialect of docs/PROTOCOL.md §1. It is pure: no sockets, no
// files.
package protocol

import (
	"fmt"
	"strconv"
	"strings"
)

// Reply codes (docs/PROTOCOL.md §2).
const (
	CodeOK          = 200 // valid and stored durably
	CodeInvalid     = 400 // violates the spec; do not retry as is
	CodeUnavailable = 500 // valid but not stored now; retry later
)

// MaxMessageBytes is the longest message the 4-digit length field allows,
// including its LF.
const MaxMessageBytes = 9999

// MaxFields is the most fields a spec may have.
const MaxFields = 64

// Kind is the kind of a field rule.
type Kind uint8

// The rule kinds. See ParseRule for their syntax.
const (
	KindLength Kind = iota + 1 // the message length field: Width digits
	KindDigits                 // exactly Width ASCII digits
	KindConst                  // exactly Const
	KindTime                   // a calendar time in Layout
	KindClass                  // Min..Max bytes, each in the class
	KindText                   // Min..Max bytes of text in the charset, without the separator, CR, LF, NUL
)

// Rule is the rule one field must satisfy. Build it with ParseRule.
type Rule struct {
	Kind     Kind
	Width    int    // KindLength, KindDigits
	Const    string // KindConst
	Layout   string // KindTime, e.g. yyyyMMddHHmmss
	Min, Max int    // KindClass, KindText: byte length bounds
	Class    string // KindClass: the class as written, e.g. A-Z0-9

	set    [256]bool // KindClass: allowed bytes
	tokens []timeTok // KindTime
	text   string    // canonical form, for reasons
	cw     string    // KindConst: Const in the wire charset
}

// Bytes returns the width of a field of the rule in the fixed layout
// (docs/PROTOCOL.md §1): digits N and length N: N; const T: T's bytes in the
// wire charset; time L: len(L); class and text: MAX.
func (r *Rule) Bytes() int {
	switch r.Kind {
	case KindLength, KindDigits:
		return r.Width
	case KindConst:
		return len(r.cw)
	case KindTime:
		return layoutLen(r.tokens)
	}
	return r.Max
}

// padded reports whether a value of the rule may be shorter than the
// field's width in the fixed layout (right-padded with spaces).
func (r *Rule) padded() bool { return r.Kind == KindClass || r.Kind == KindText }

// String returns the rule in the config syntax, e.g. "digits 9".
func (r *Rule) String() string { return r.text }

// Field is one named field of a spec.
type Field struct {
	Name string
	Rule Rule

	off, width int // fixed layout: where the field sits in the message
}

// Spec is an ordered list of fields in a dialect: under framing lf the
// first is the length field, under framing length there is none.
// A Spec is immutable after construction and safe for concurrent use.
type Spec struct {
	fields    []Field
	processNo int // index of the field named process_no, or -1
	w         *wire
	width     int    // fixed layout: the message's bytes, the sum of the widths
	widthRule string // fixed layout: "fixed width N", the reason of a wrong length

	// The process_no replies carry (ProcessNo): a value is echoed when it
	// fits pnoRule, the reply's process_no rule, else pnoZero goes.
	// pnoRule nil: replies carry none.
	pnoRule *Rule
	pnoZero []byte

	echo      int    // index of protocol.echo.field, or -1
	echoValue []byte // its value in the wire charset
}

// wire is what the specs of one dialect share: the charset, how fields sit
// in a message, and how messages are framed.
type wire struct {
	charset   Charset
	fixed     bool // layout fixed; else delimited by sep
	sep       byte // delimited: the separator
	textSep   byte // the separator where a text may not hold it; 0 (NUL, never allowed) in the fixed layout
	length    bool // framing length: a header before each message, no length field, no LF
	hdrBinary bool
	hdrBytes  int
	countsAll bool
	pairs     *[8192]byte // the Korean charsets: cp949Pairs; nil: utf-8
	euc       bool        // charset euc-kr: pairs of A1-FE only
}

// defaultWire is docs/PROTOCOL.md §1: UTF-8, fields joined by |, a length
// field first, LF at the end.
var defaultWire = &wire{charset: CharsetUTF8, sep: '|', textSep: '|', hdrBytes: 4}

// lf returns 1 when the framing adds an LF that the length field and the
// size limit count, else 0.
func (w *wire) lf() int {
	if w.length {
		return 0
	}
	return 1
}

// RuleError reports a rule or spec that cannot be built.
type RuleError struct {
	Field string // the field name, "" for the field list itself
	Rule  string // the rule text as given
	Want  string // what is expected
}

func (e *RuleError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("spec %q: %s", e.Rule, e.Want)
	}
	return fmt.Sprintf("field %s: rule %q: %s", e.Field, e.Rule, e.Want)
}

const ruleSyntax = "one of: length 4 | digits N | const TEXT | time yyyyMMddHHmmss | class A-Z0-9 MIN..MAX | text MIN..MAX"

// ParseRule parses the config syntax of a field rule in the default
// dialect:
//
//	length 4                  the length field (always the first field)
//	digits 9                  exactly 9 ASCII digits
//	const REQ                 exactly the text REQ
//	time yyyyMMddHHmmss       a real calendar time; tokens yyyy MM dd HH mm ss
//	class A-Z0-9_.- 1..40     1 to 40 bytes, each a listed byte or in a listed range
//	text 0..8000              0 to 8000 bytes of UTF-8 without | CR LF NUL
//
// In another dialect the separator takes the place of | and text is in
// the dialect's charset (NewDialect). The returned error is a *RuleError
// with an empty Field.
func ParseRule(s string) (Rule, error) { return parseRule(s, defaultWire) }

func parseRule(s string, w *wire) (Rule, error) {
	s = strings.TrimSpace(s)
	kind, arg, _ := strings.Cut(s, " ")
	arg = strings.TrimSpace(arg)
	bad := func(want string) (Rule, error) { return Rule{}, &RuleError{Rule: s, Want: want} }
	r := Rule{}
	switch kind {
	case "length", "digits":
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > 32 {
			return bad(kind + " needs a width from 1 to 32, e.g. " + kind + " 4")
		}
		r.Kind, r.Width = KindDigits, n
		if kind == "length" {
			if n != 4 {
				return bad("the length field is 4 digits: length 4")
			}
			r.Kind = KindLength
		}
		r.text = kind + " " + strconv.Itoa(n)
	case "const":
		if arg == "" || strings.ContainsAny(arg, "\r\n\x00") || (w.textSep != 0 && strings.IndexByte(arg, w.textSep) >= 0) {
			return bad("const needs a text without " + w.sepWord() + "CR LF NUL, e.g. const REQ")
		}
		cw, err := w.charset.encode(arg)
		if err != nil {
			return bad("const needs a text the charset " + string(w.charset) + " can carry: " + err.Error())
		}
		r.Kind, r.Const, r.cw, r.text = KindConst, arg, string(cw), "const "+arg
	case "time":
		toks, ok := parseLayout(arg, w.textSep)
		if !ok {
			return bad("time needs a layout of yyyy MM dd HH mm ss tokens, e.g. time yyyyMMddHHmmss")
		}
		r.Kind, r.Layout, r.tokens, r.text = KindTime, arg, toks, "time "+arg
	case "class":
		class, rng, _ := strings.Cut(arg, " ")
		lo, hi, ok := parseRange(strings.TrimSpace(rng))
		if !ok || class == "" || !buildClass(class, &r.set, w.textSep) {
			return bad("class needs bytes and a length range, e.g. class A-Z0-9 2..10")
		}
		r.Kind, r.Class, r.Min, r.Max = KindClass, class, lo, hi
		r.text = fmt.Sprintf("class %s %d..%d", class, lo, hi)
	case "text":
		lo, hi, ok := parseRange(arg)
		if !ok {
			return bad("text needs a byte length range, e.g. text 0..8000")
		}
		r.Kind, r.Min, r.Max = KindText, lo, hi
		r.text = fmt.Sprintf("text %d..%d", lo, hi)
	default:
		return bad(ruleSyntax)
	}
	return r, nil
}

func parseRange(s string) (lo, hi int, ok bool) {
	a, b, found := strings.Cut(s, "..")
	if !found {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || lo < 0 || hi < lo || hi > MaxMessageBytes {
		return 0, 0, false
	}
	return lo, hi, true
}

// buildClass fills set from a class such as "A-Z0-9_.-": single printable
// ASCII bytes and ranges a-b. A '-' first or last is literal. sep (the
// separator of the delimited layout; 0 in the fixed layout) is never
// allowed.
func buildClass(class string, set *[256]bool, sep byte) bool {
	for i := 0; i < len(class); i++ {
		c := class[i]
		if c <= ' ' || c >= 0x7f || c == sep {
			return false
		}
		if i+2 < len(class) && class[i+1] == '-' {
			hi := class[i+2]
			if hi < c || hi <= ' ' || hi >= 0x7f || hi == sep {
				return false
			}
			for b := int(c); b <= int(hi); b++ {
				set[b] = b != int(sep)
			}
			i += 2
			continue
		}
		set[c] = true
	}
	return true
}

// NewSpec builds a spec of the default dialect from a field list and a
// rule per field, in the syntax of ParseRule. The first field must have the
// rule "length 4"; no other field may. Errors are *RuleError naming the
// field. Specs of other dialects come from NewDialect.
func NewSpec(names []string, rules map[string]string) (*Spec, error) {
	s, err := buildSpec(names, rules, defaultWire)
	if err != nil {
		return nil, err
	}
	s.pnoRule, s.pnoZero = &defaultPNO, zeroProcessNo
	return s, nil
}

// buildSpec builds a spec in the dialect w. Errors are *RuleError.
func buildSpec(names []string, rules map[string]string, w *wire) (*Spec, error) {
	if least := 1 + w.lf(); len(names) < least || len(names) > MaxFields {
		want := fmt.Sprintf("a list of 2 to %d field names, the first the length field", MaxFields)
		if w.length {
			want = fmt.Sprintf("a list of 1 to %d field names", MaxFields)
		}
		return nil, &RuleError{Rule: strings.Join(names, ","), Want: want}
	}
	fields := make([]Field, len(names))
	seen := make(map[string]bool, len(names))
	for i, name := range names {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			return nil, &RuleError{Rule: strings.Join(names, ","), Want: "field names must be unique and not empty"}
		}
		seen[name] = true
		text, ok := rules[name]
		if !ok {
			return nil, &RuleError{Field: name, Want: "a rule is required for every listed field"}
		}
		r, err := parseRule(text, w)
		if err != nil {
			re := err.(*RuleError)
			re.Field = name
			return nil, re
		}
		switch {
		case w.length && r.Kind == KindLength:
			return nil, &RuleError{Field: name, Rule: text, Want: "no length field under protocol.framing=length: the header carries the length"}
		case !w.length && (i == 0) != (r.Kind == KindLength):
			return nil, &RuleError{Field: name, Rule: text, Want: "the first field, and only the first, is the length field: length 4"}
		case w.fixed && r.Bytes() < 1:
			return nil, &RuleError{Field: name, Rule: text, Want: "under protocol.layout=fixed every field needs a width of at least 1 byte (MAX >= 1)"}
		}
		fields[i] = Field{Name: name, Rule: r}
	}
	s := &Spec{fields: fields, processNo: -1, echo: -1, w: w}
	for i := range fields {
		if fields[i].Name == "process_no" {
			s.processNo = i
		}
		if w.fixed {
			fields[i].off, fields[i].width = s.width, fields[i].Rule.Bytes()
			s.width += fields[i].width
		}
	}
	if w.fixed {
		if s.width+w.lf() > MaxMessageBytes {
			return nil, &RuleError{Rule: strings.Join(names, ","), Want: fmt.Sprintf("the fields are %d bytes wide: more than a message may have (%d)", s.width, MaxMessageBytes-w.lf())}
		}
		s.widthRule = "fixed width " + strconv.Itoa(s.width)
	}
	return s, nil
}

// sepWord returns the separator and a space for messages listing the
// bytes a text may not hold, or "" in the fixed layout.
func (w *wire) sepWord() string {
	if w.textSep == 0 {
		return ""
	}
	return string(w.textSep) + " "
}

// DefaultRequestNames and DefaultRequestRules are the default request spec
// of docs/PROTOCOL.md §1 in config form (§7). The default result spec is the same.
var (
	DefaultRequestNames = []string{"length", "type", "process_no", "sent_at", "org_code", "service_code", "key", "payload", "filler"}
	DefaultRequestRules = map[string]string{
		"length":       "length 4",
		"type":         "const REQ",
		"process_no":   "digits 9",
		"sent_at":      "time yyyyMMddHHmmss",
		"org_code":     "class A-Z0-9 2..10",
		"service_code": "class A-Z0-9 4..4",
		"key":          "class A-Za-z0-9_.- 1..40",
		"payload":      "text 0..8000",
		"filler":       "text 0..64",
	}
)

// defaultPNO is the rule of the reply's process_no in the default dialect.
var defaultPNO = Rule{Kind: KindDigits, Width: 9, text: "digits 9"}

// defaultSpec is the default dialect's request spec.
var defaultSpec = defaultDialect.request

// DefaultRequestSpec returns the request spec of docs/PROTOCOL.md §1, which is also the
// default result spec. The returned spec is shared and immutable.
func DefaultRequestSpec() *Spec { return defaultSpec }

// Names returns the field names in order.
func (s *Spec) Names() []string {
	out := make([]string, len(s.fields))
	for i, f := range s.fields {
		out[i] = f.Name
	}
	return out
}

// Fields returns a copy of the fields in order.
func (s *Spec) Fields() []Field { return append([]Field(nil), s.fields...) }

// Len returns the number of fields.
func (s *Spec) Len() int { return len(s.fields) }

// Width returns the bytes of a message of the spec in the fixed layout
// (the sum of the field widths, the length field included), or 0 in the
// delimited layout.
func (s *Spec) Width() int { return s.width }

// Index returns the position of the named field, or -1.
func (s *Spec) Index(name string) int {
	for i, f := range s.fields {
		if f.Name == name {
			return i
		}
	}
	return -1
}
