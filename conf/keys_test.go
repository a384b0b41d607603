package conf

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestKeyDocs holds conf.properties (and through it the README reference,
// TestREADMEConfigReference) to the table: every key's default is written
// there as the table has it, and the one-line comment above it is the
// table's doc. The protocol.* block has a longer comment and no doc.
func TestKeyDocs(t *testing.T) {
	f, err := os.Open("conf.properties")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type seen struct{ def, comment string }
	file := map[string]seen{}
	var comment string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			comment = ""
		case strings.HasPrefix(line, "#"):
			comment = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		default:
			k, v, _ := strings.Cut(line, "=")
			file[strings.TrimSpace(k)] = seen{strings.TrimSpace(v), comment}
			comment = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.doc == "" {
			if !strings.HasPrefix(k.name, "protocol.") {
				t.Errorf("%s: no doc in the table", k.name)
			}
			continue
		}
		got, ok := file[k.name]
		switch {
		case !ok:
			t.Errorf("%s: not in conf.properties", k.name)
		case got.def != k.def:
			t.Errorf("%s: conf.properties has default %q, the table %q", k.name, got.def, k.def)
		case got.comment != k.doc:
			t.Errorf("%s: conf.properties says\n\t%s\nthe table says\n\t%s", k.name, got.comment, k.doc)
		}
	}
}
