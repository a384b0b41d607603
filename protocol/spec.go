// Package protocol is the spoolgate message spec as data: fields and their
// rules, parsing and validation with typed reasons, encoding with the length
// field, replies, and a framing reader. It is pure: no sockets, no files.
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
	KindText                   // Min..Max bytes of UTF-8 without | CR LF NUL
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
}

// String returns the rule in the config syntax, e.g. "digits 9".
func (r *Rule) String() string { return r.text }

// Field is one named field of a spec.
type Field struct {
	Name string
	Rule Rule
}

// Spec is an ordered list of fields; the first is the length field.
// A Spec is immutable after construction and safe for concurrent use.
type Spec struct {
	fields    []Field
	processNo int // index of the field named process_no, or -1
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

// ParseRule parses the config syntax of a field rule:
//
//	length 4                  the length field (always the first field)
//	digits 9                  exactly 9 ASCII digits
//	const REQ                 exactly the text REQ
//	time yyyyMMddHHmmss       a real calendar time; tokens yyyy MM dd HH mm ss
//	class A-Z0-9_.- 1..40     1 to 40 bytes, each a listed byte or in a listed range
//	text 0..8000              0 to 8000 bytes of UTF-8 without | CR LF NUL
//
// The returned error is a *RuleError with an empty Field.
func ParseRule(s string) (Rule, error) {
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
		if arg == "" || strings.ContainsAny(arg, "|\r\n\x00") {
			return bad("const needs a text without | CR LF NUL, e.g. const REQ")
		}
		r.Kind, r.Const, r.text = KindConst, arg, "const "+arg
	case "time":
		toks, ok := parseLayout(arg)
		if !ok {
			return bad("time needs a layout of yyyy MM dd HH mm ss tokens, e.g. time yyyyMMddHHmmss")
		}
		r.Kind, r.Layout, r.tokens, r.text = KindTime, arg, toks, "time "+arg
	case "class":
		class, rng, _ := strings.Cut(arg, " ")
		lo, hi, ok := parseRange(strings.TrimSpace(rng))
		if !ok || class == "" || !buildClass(class, &r.set) {
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
// ASCII bytes and ranges a-b. A '-' first or last is literal. '|' is never
// allowed.
func buildClass(class string, set *[256]bool) bool {
	for i := 0; i < len(class); i++ {
		c := class[i]
		if c <= ' ' || c >= 0x7f || c == '|' {
			return false
		}
		if i+2 < len(class) && class[i+1] == '-' {
			hi := class[i+2]
			if hi < c || hi <= ' ' || hi >= 0x7f || hi == '|' {
				return false
			}
			for b := int(c); b <= int(hi); b++ {
				set[b] = b != '|'
			}
			i += 2
			continue
		}
		set[c] = true
	}
	return true
}

// NewSpec builds a spec from a field list and a rule per field, in the
// syntax of ParseRule. The first field must have the rule "length 4"; no
// other field may. Errors are *RuleError naming the field.
func NewSpec(names []string, rules map[string]string) (*Spec, error) {
	if len(names) < 2 || len(names) > MaxFields {
		return nil, &RuleError{Rule: strings.Join(names, ","), Want: fmt.Sprintf("a list of 2 to %d field names, the first the length field", MaxFields)}
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
		r, err := ParseRule(text)
		if err != nil {
			re := err.(*RuleError)
			re.Field = name
			return nil, re
		}
		if (i == 0) != (r.Kind == KindLength) {
			return nil, &RuleError{Field: name, Rule: text, Want: "the first field, and only the first, is the length field: length 4"}
		}
		fields[i] = Field{Name: name, Rule: r}
	}
	return newSpec(fields), nil
}

func newSpec(fields []Field) *Spec {
	s := &Spec{fields: fields, processNo: -1}
	for i, f := range fields {
		if f.Name == "process_no" {
			s.processNo = i
		}
	}
	return s
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

var defaultSpec = func() *Spec {
	s, err := NewSpec(DefaultRequestNames, DefaultRequestRules)
	if err != nil {
		panic("protocol: default spec: " + err.Error()) // a bug in this file, not input
	}
	return s
}()

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

// Index returns the position of the named field, or -1.
func (s *Spec) Index(name string) int {
	for i, f := range s.fields {
		if f.Name == name {
			return i
		}
	}
	return -1
}
