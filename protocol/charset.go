package protocol

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/encoding/korean"
)

// Charset is the value of protocol.charset: the character set of the
// wire, in which `text` fields are validated and `const` texts are sent
// (docs/PROTOCOL.md §1). Widths and lengths always count wire bytes; stored
// and forwarded bytes are never transcoded.
type Charset string

// The charsets. CP949 is a superset of EUC-KR; both are ASCII-compatible
// (every byte below 0x80 is the ASCII character), so every rule other than
// `text` and `const` reads the same bytes in all three.
const (
	CharsetUTF8  Charset = "utf-8"  // RFC 3629 UTF-8
	CharsetEUCKR Charset = "euc-kr" // KS X 1001 in EUC: ASCII, and pairs A1-FE A1-FE that KS X 1001 assigns
	CharsetCP949 Charset = "cp949"  // Windows code page 949 (Unified Hangul Code): EUC-KR plus pairs 81-FE 41-FE
)

// Charsets lists the values of protocol.charset, the default first.
var Charsets = []Charset{CharsetUTF8, CharsetEUCKR, CharsetCP949}

// korean reports whether c is a two-byte Korean charset.
func (c Charset) korean() bool { return c == CharsetEUCKR || c == CharsetCP949 }

// cp949Pairs is a bitset over lead<<8|trail of the two-byte sequences that
// CP949 assigns a character, as golang.org/x/text/encoding/korean (the
// WHATWG euc-kr index, which is code page 949) decodes them. It is built
// once, when the first Korean dialect is built.
var cp949Pairs = sync.OnceValue(func() *[8192]byte {
	var set [8192]byte
	var src [2]byte
	var dst [8]byte
	dec := korean.EUCKR.NewDecoder()
	for lead := 0x81; lead <= 0xfe; lead++ {
		for trail := 0x41; trail <= 0xfe; trail++ {
			src[0], src[1] = byte(lead), byte(trail)
			dec.Reset()
			n, nSrc, err := dec.Transform(dst[:], src[:], true)
			if err != nil || nSrc != 2 {
				continue
			}
			r, size := utf8.DecodeRune(dst[:n])
			if r == utf8.RuneError || size != n {
				continue // invalid: the decoder gave U+FFFD (and maybe the trail as ASCII)
			}
			i := lead<<8 | trail
			set[i>>3] |= 1 << (i & 7)
		}
	}
	return &set
})

// pairOK reports whether lead, trail is a character of the Korean charset
// c. EUC-KR admits the CP949 pairs whose bytes are both A1-FE.
func pairOK(set *[8192]byte, euc bool, lead, trail byte) bool {
	if euc && (lead < 0xa1 || trail < 0xa1) {
		return false
	}
	i := int(lead)<<8 | int(trail)
	return set[i>>3]&(1<<(i&7)) != 0
}

// validKorean reports whether v is text of the Korean charset of the wire
// (w.pairs set) without the bytes a text may not hold (NUL, CR, LF and, in
// the delimited layout, the separator). Rule.valid checks UTF-8 itself. It
// allocates nothing.
func (w *wire) validKorean(v []byte) bool {
	sep, set, euc := w.textSep, w.pairs, w.euc
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x80 {
			if c == 0 || c == '\n' || c == '\r' || c == sep {
				return false
			}
			continue
		}
		if i+1 >= len(v) || !pairOK(set, euc, c, v[i+1]) {
			return false
		}
		i++
	}
	return true
}

// textProblem says why a text rule refused v: the first bad byte, or a
// character cut at the end of the field. For the log, not a hot path.
func (w *wire) textProblem(v []byte) string {
	if !w.charset.korean() {
		for i := 0; i < len(v); {
			c := v[i]
			if c == 0 || c == '\n' || c == '\r' || c == w.textSep {
				return fmt.Sprintf("forbidden byte %q at byte %d", c, i)
			}
			if c < utf8.RuneSelf {
				i++
				continue
			}
			r, size := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && size <= 1 {
				if !utf8.FullRune(v[i:]) {
					return fmt.Sprintf("a character cut at the field's end (byte %d)", i)
				}
				return fmt.Sprintf("invalid UTF-8 at byte %d", i)
			}
			i += size
		}
		return "invalid UTF-8"
	}
	euc := w.charset == CharsetEUCKR
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x80 {
			if c == 0 || c == '\n' || c == '\r' || c == w.textSep {
				return fmt.Sprintf("forbidden byte %q at byte %d", c, i)
			}
			continue
		}
		if i+1 >= len(v) {
			if c >= 0x81 && c != 0xff && (!euc || c >= 0xa1) {
				return fmt.Sprintf("a character cut at the field's end (byte %d)", i)
			}
			return fmt.Sprintf("invalid %s at byte %d (%#02x)", w.charset, i, c)
		}
		if !pairOK(w.pairs, euc, c, v[i+1]) {
			return fmt.Sprintf("invalid %s at byte %d (%#02x %#02x)", w.charset, i, c, v[i+1])
		}
		i++
	}
	return "invalid " + string(w.charset)
}

// encode converts s, UTF-8 text of the config file, to the charset: a
// const's text, a reply code, the echo value. It fails when a character
// has no code in the charset.
func (c Charset) encode(s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("not valid UTF-8")
	}
	if !c.korean() {
		return []byte(s), nil
	}
	b, err := korean.EUCKR.NewEncoder().Bytes([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("a character of %q has no code in %s", s, c)
	}
	if c == CharsetEUCKR {
		for i := 0; i < len(b); i++ {
			if b[i] >= 0x80 {
				if i+1 >= len(b) || b[i] < 0xa1 || b[i+1] < 0xa1 { // the encoder writes whole pairs
					return nil, fmt.Errorf("a character of %q is in cp949 but not in euc-kr", s)
				}
				i++
			}
		}
	}
	return b, nil
}

// Decode returns b, bytes of the wire, as UTF-8 text for people (logs, the
// console, reasons): a byte or pair that is not a character of the charset
// becomes U+FFFD. The Korean charsets are decoded as CP949 either way, so a
// character outside EUC-KR still shows as what it is.
func (c Charset) Decode(b []byte) string {
	if !c.korean() {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	out, err := korean.EUCKR.NewDecoder().Bytes(b)
	if err != nil { // not expected: the decoder replaces what it cannot decode
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(out)
}
