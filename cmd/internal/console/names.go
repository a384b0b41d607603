package console

import (
	"encoding/base64"
	"fmt"
	"html"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/korean"
)

// File names come from the disk as bytes, and need not be UTF-8: a
// producer on an EUC-KR system drops "보고서.txt" as EUC-KR bytes. The
// page and the JSON are UTF-8, so such a name is shown with each byte that
// is not UTF-8 written \xNN (and, when the bytes read as EUC-KR, that
// reading beside it), and carried back for a requeue as base64 of its
// bytes (file_base64=), never as the text shown.

// shownName returns name as valid UTF-8: itself when it is, else with
// each byte that is not part of a UTF-8 character written \xNN.
func shownName(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); {
		r, n := utf8.DecodeRuneInString(name[i:])
		if r == utf8.RuneError && n <= 1 {
			fmt.Fprintf(&b, `\x%02X`, name[i])
			i++
			continue
		}
		b.WriteString(name[i : i+n])
		i += n
	}
	return b.String()
}

// nameBase64 returns the bytes of name in base64 (standard, padded) when
// name is not valid UTF-8, else "": a UTF-8 name is carried as itself.
func nameBase64(name string) string {
	if utf8.ValidString(name) {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(name))
}

// eucKR returns name read as EUC-KR (CP949) when it is not UTF-8 and every
// byte of it decodes, else "".
func eucKR(name string) string {
	if utf8.ValidString(name) {
		return ""
	}
	s, err := korean.EUCKR.NewDecoder().String(name)
	if err != nil || strings.ContainsRune(s, utf8.RuneError) {
		return ""
	}
	return s
}

// nameHTML is the escaped name cell of a file: the shown name and, when it
// reads as EUC-KR, that reading.
func nameHTML(name string) string {
	h := html.EscapeString(shownName(name))
	if k := eucKR(name); k != "" {
		h += ` <small class="enc">(EUC-KR: ` + html.EscapeString(k) + `)</small>`
	}
	return h
}

// requeueNames returns the files a requeue form names: file= as given,
// file_base64= decoded to the name's bytes.
func requeueNames(files, b64 []string) ([]string, error) {
	names := append([]string(nil), files...)
	for _, e := range b64 {
		raw, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			return nil, fmt.Errorf("file_base64 %q: not base64", e)
		}
		names = append(names, string(raw))
	}
	return names, nil
}
